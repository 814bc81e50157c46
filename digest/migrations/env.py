"""Alembic environment: `digest init` passes a live connection in `config.attributes`."""

from __future__ import annotations

from alembic import context

import digest.models  # noqa: F401  (register tables)
import subscribers.models  # noqa: F401
from digest.db import Base

connection = context.config.attributes.get("connection")
if connection is None:  # `alembic` run by hand: use DIGEST_DATABASE_URL
    from digest.config import load
    from digest.db import make_engine

    connection = make_engine(load()["database.url"]).connect()
    if connection.dialect.name == "sqlite":  # see digest.migrations.upgrade for why
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()



def include_object(obj: object, name: str | None, type_: str, reflected: bool,
                   compare_to: object) -> bool:
    """APScheduler keeps its own table (apscheduler_jobs); it is not ours to migrate."""
    return not (type_ == "table" and name == "apscheduler_jobs")


context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    include_object=include_object,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite can't ALTER most things
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
