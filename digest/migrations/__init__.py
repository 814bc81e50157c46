"""The schema's history: Alembic's environment (`env.py`) and revisions (`versions/`),
and `upgrade`, which brings a database to the newest of them.

It sits above `digest.models` and `subscribers.models` (it must know every table) and
below the `App`; `digest.db` knows none of them."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine

import digest.models  # noqa: F401  (register tables)
import subscribers.models  # noqa: F401
from digest.errors import DigestError


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade the schema to the newest Alembic revision (or to `revision`).

    On SQLite, foreign keys are off while the revisions run: a batch migration rebuilds a
    table (copy, DROP, rename), and with them on, the DROP would delete every row that
    refers to the table through ON DELETE CASCADE. They are checked when the revisions
    are done, before the commit (Alembic's advice for SQLite batch mode)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent))
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        if sqlite:  # outside a transaction, or SQLite ignores it
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        try:
            with conn.begin():
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
                if sqlite:
                    _check_foreign_keys(conn)
        finally:
            if sqlite:  # the connection goes back to the pool as the engine made it
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()


def _check_foreign_keys(conn: Connection) -> None:
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        table, rowid, parent = broken[0][:3]
        raise DigestError(f"after the upgrade, {len(broken)} row(s) point at rows that do "
                          f"not exist (the first: {table} row {rowid}, to {parent}); restore "
                          "the copy of the database made before upgrading and report this")
