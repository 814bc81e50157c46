"""The schema's history: Alembic's environment (`env.py`) and revisions (`versions/`),
and `upgrade`, which brings a database to the newest of them.

It sits above `digest.models` and `subscribers.models` (it must know every table) and
below the `App`; `digest.db` knows none of them."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

import digest.models  # noqa: F401  (register tables)
import subscribers.models  # noqa: F401


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade the schema to the newest Alembic revision (or to `revision`)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
