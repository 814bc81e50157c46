"""Engine and session factory, SQLite pragmas, the declarative Base: the ground floor,
which imports nothing of the project but `digest.errors` (`digest.migrations.upgrade`
brings a database to the newest schema)."""

from __future__ import annotations

import datetime as dt
import os
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Engine, Enum, MetaData, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from digest.errors import ConfigError

# Stable constraint names so Alembic migrations work the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every database.

    SQLite stores no zone, so values are normalized to UTC on the way in and tagged UTC
    on the way out; naive values are refused, because a naive time is a bug waiting.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}; pass an aware UTC datetime")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def str_enum(enum: type[StrEnum], length: int = 16) -> Enum:
    """The column type for a `StrEnum` (a state machine's states, an edition's kind):
    VARCHAR(length) holding the members' values, just as a String(length) column, with
    no CHECK constraint and no database enum type, so adding a member changes no schema.
    Rows read back as the enum's members; a value it does not know is a LookupError."""
    return Enum(enum, native_enum=False, create_constraint=False, length=length,
                values_callable=lambda members: [m.value for m in members])


def utcnow() -> dt.datetime:
    """The wall clock, aware, in UTC. Core functions take `now` instead of calling this."""
    return dt.datetime.now(dt.UTC)


def make_engine(url: str) -> Engine:
    """An engine for `url`; for SQLite: WAL, foreign keys, a busy timeout, the folder made."""
    try:
        parsed = make_url(url)
    except Exception:
        raise ConfigError(
            f"database url {url!r} is not a SQLAlchemy URL; e.g. sqlite:///var/digest.db "
            "or postgresql+psycopg://user@host/db (set DIGEST_DATABASE_URL)"
        ) from None
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if db and db != ":memory:" and not db.startswith("file:"):
            Path(db).parent.mkdir(parents=True, exist_ok=True)
            _create_private(Path(db))
        # Worker threads each take their own connection; SQLite serializes the writes.
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _create_private(path: Path) -> None:
    """Create the database file empty (SQLite takes it for a new database) and readable
    by its owner alone, whatever the umask: it holds every subscriber's address. SQLite's
    unix VFS gives the -wal, -shm and -journal files the database file's permissions, so
    they are 0600 too. An existing file keeps its mode."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)  # the umask may only have taken bits away; this is exact
    finally:
        os.close(fd)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    # WAL + NORMAL: durable across application crashes, each commit costs no fsync.
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)

