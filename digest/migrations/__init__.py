"""The schema's history: Alembic's environment (`env.py`) and revisions (`versions/`),
and `upgrade`, which brings a database to the newest of them.

It sits above `digest.models` and `subscribers.models` (it must know every table) and
below the `App`; `digest.db` knows none of them."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect

import digest.models  # noqa: F401  (register tables)
import subscribers.models  # noqa: F401
from digest.errors import DigestError


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade the schema to the newest Alembic revision (or to `revision`).

    On SQLite, foreign keys are off while the revisions run: a batch migration rebuilds a
    table (copy, DROP, rename), and with them on, the DROP would delete every row that
    refers to the table through ON DELETE CASCADE. They are checked when the revisions
    are done, before the commit (Alembic's advice for SQLite batch mode)."""
    cfg = _config()
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        raw = conn.connection.driver_connection if sqlite else None
        level = raw.isolation_level if sqlite else None  # type: ignore[union-attr]
        if sqlite:  # outside a transaction, or SQLite ignores it
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
            # All revisions in one transaction, as on PostgreSQL: Python's sqlite3 opens
            # one only before DML, so each CREATE TABLE committed by itself, and an init
            # stopped midway (Ctrl-C) left tables without a revision that no later init
            # could get past. Here the BEGIN is ours; commit and rollback end it.
            raw.isolation_level = None  # type: ignore[union-attr]
        try:
            with conn.begin():
                if sqlite:
                    conn.exec_driver_sql("BEGIN")
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
                if sqlite:
                    _check_foreign_keys(conn)
        finally:
            if sqlite:  # the connection goes back to the pool as the engine made it
                raw.isolation_level = level  # type: ignore[union-attr]
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()


def require_current(engine: Engine) -> None:
    """DigestError unless the database's schema is at the newest revision this code
    knows, saying what to do: `digest init` for a database with no tables or an older
    revision, a newer digest for a revision this one does not know."""
    head, known = _revisions()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
        tables = set(inspect(conn).get_table_names()) if current is None else set()
    if current == head:
        return
    if current is None:
        if tables - {"apscheduler_jobs"}:
            raise DigestError(
                f"the database has tables ({', '.join(sorted(tables)[:3])}, ...) but no "
                "schema revision (alembic_version): it was not made by `digest init`; "
                "point [database] url / DIGEST_DATABASE_URL at digest's own database")
        raise DigestError("the database has no tables yet; run `digest init` first")
    if current not in known:
        raise DigestError(
            f"the database's schema is at revision {current}, which this version of digest "
            f"does not know (its newest is {head}): a newer digest upgraded it; run that "
            "version, or restore the backup made before the upgrade")
    raise DigestError(
        f"the database needs an upgrade from revision {current} to {head}: run "
        "`digest init` (back the database up first; see docs/operations.md)")


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent))
    return cfg


@cache
def _revisions() -> tuple[str, frozenset[str]]:
    """The newest revision and every one this code knows (read once a process)."""
    script = ScriptDirectory.from_config(_config())
    head = script.get_current_head()
    assert head is not None  # there are revisions
    return head, frozenset(rev.revision for rev in script.walk_revisions())


def _check_foreign_keys(conn: Connection) -> None:
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        table, rowid, parent = broken[0][:3]
        raise DigestError(f"after the upgrade, {len(broken)} row(s) point at rows that do "
                          f"not exist (the first: {table} row {rowid}, to {parent}); restore "
                          "the copy of the database made before upgrading and report this")
