"""Engine and session factory, SQLite pragmas, the declarative Base: the ground floor,
which imports nothing of the project but `digest.errors` (`digest.migrations.upgrade`
brings a database to the newest schema)."""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import os
import sqlite3
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from sqlalchemy import DateTime, Engine, Enum, MetaData, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from digest.errors import ConfigError, DigestError
from digest.files import private_folder

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


#: What a database says when it is busy or away, rather than a bug: no connection
#: free in the pool within the timeout (sqlalchemy.exc.TimeoutError), SQLite's write
#: lock still taken when its busy timeout ran out ("database is locked"), a server that
#: does not answer, a transaction PostgreSQL gave up on (deadlock, serialization).
#: Worth trying again in a moment: the web answers them 503 with Retry-After.
UNAVAILABLE: tuple[type[Exception], ...] = (sa_exc.TimeoutError, sa_exc.OperationalError)


def make_engine(url: str, *, pool_size: int = 5, max_overflow: int = 10,
                timeout: float = 30.0) -> Engine:
    """An engine for `url`; for SQLite: WAL, foreign keys, a busy timeout, the folder made.

    The pool keeps `pool_size` connections, opens up to `max_overflow` more, and a
    thread waits `timeout` seconds at most for one; on SQLite a writer also waits at
    most `timeout` for the write lock, on PostgreSQL a new connection as long for the
    server. Past that the wait ends in one of UNAVAILABLE, not in a longer queue."""
    _never_show(url)
    parsed = _supported(url)
    if timeout <= 0:
        raise ConfigError(f"[database] timeout is {timeout:g}; it must be more than 0 "
                          "seconds (the default is 30)")
    if pool_size < 1:
        raise ConfigError(f"[web] threads is {pool_size}; it must be at least 1 (the "
                          "default is 40): it sizes the database pool too")
    kwargs: dict[str, Any] = {}
    db = parsed.database
    if not (parsed.get_backend_name() == "sqlite" and (not db or db == ":memory:")):
        # (an in-memory SQLite database lives in one connection: no pool to size)
        kwargs.update(pool_size=pool_size, max_overflow=max_overflow, pool_timeout=timeout)
    if parsed.get_backend_name() == "sqlite":
        if db and db != ":memory:" and not db.startswith("file:"):
            private_folder(Path(db).parent)
            _create_private(Path(db))
        # Worker threads each take their own connection; SQLite serializes the writes.
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": timeout}
    else:
        kwargs["pool_pre_ping"] = True
        if parsed.get_backend_name() == "postgresql":
            kwargs["connect_args"] = {"connect_timeout": max(2, round(timeout))}  # libpq's least
    engine = create_engine(parsed, **kwargs)
    if engine.dialect.name == "sqlite":
        busy_ms = round(timeout * 1000)

        def pragmas(dbapi_conn: Any, _record: Any) -> None:
            _sqlite_pragmas(dbapi_conn, busy_ms)

        event.listen(engine, "connect", pragmas)
    return engine


#: What digest runs on: SQLite, and PostgreSQL through psycopg (3).
URL_FORMS = ("sqlite:///path/to/digest.db (four slashes for an absolute path) or "
             "postgresql+psycopg://user:password@host:port/database (postgresql://… means "
             "the same; psycopg comes with `pip install '.[postgres]'`), a password's @, :, "
             "/ and % percent-encoded (%40, %3A, %2F, %25)")
_DRIVERS = {"sqlite": "sqlite", "sqlite+pysqlite": "sqlite",
            "postgresql": "postgresql+psycopg", "postgresql+psycopg": "postgresql+psycopg"}


def _supported(url: str) -> URL:
    """`url` parsed (`checked_url`), and psycopg installed when it is PostgreSQL."""
    parsed = checked_url(url)
    if (parsed.drivername == "postgresql+psycopg"
            and importlib.util.find_spec("psycopg") is None):
        raise ConfigError("the database URL is PostgreSQL, and psycopg is not installed: "
                          "`pip install '.[postgres]'` where digest was installed from")
    return parsed


def require_database_file(url: str) -> None:
    """ConfigError (as `checked_url`) for a URL digest cannot use, and DigestError if it
    is a SQLite file that does not exist. Called before the engine is made, which would
    create it empty (at a mistyped path, say) only to find no tables in it."""
    parsed = checked_url(url)
    path = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if path and path != ":memory:" and not path.startswith("file:") and not Path(path).exists():
        raise DigestError(f"the database file {Path(path).absolute()} does not exist: run "
                          "`digest init` to create it, or point [database] url / "
                          "DIGEST_DATABASE_URL at the one you have")


def checked_url(url: str) -> URL:
    """`url` parsed, with the driver digest uses (postgresql:// is psycopg's, whatever
    SQLAlchemy's version picks); ConfigError naming the supported forms for a URL it
    cannot read (a port that is no number, a bracket not closed), a database or driver
    digest does not run on, a password split by an '@' it should have encoded, or a
    SQLite URL with a user, password or host. The URL is never shown: it may hold a
    password. Every command that reads [database] url goes through here, `digest backup`
    (which needs no driver) included."""
    try:
        parsed = make_url(url)
    except Exception:
        raise ConfigError(
            "the database URL ([database] url, DIGEST_DATABASE_URL) is not a SQLAlchemy "
            f"URL; it is not shown, since it may hold a password. Write it as {URL_FORMS}"
        ) from None
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ConfigError(
            f"the database URL starts {parsed.drivername}://, which digest does not run "
            f"on; write it as {URL_FORMS}")
    if parsed.host and "@" in parsed.host:
        # The driver would take the part after the first @ for the host, and print it.
        raise ConfigError(
            "the database URL has two @ before its host: a password holding @ must have it "
            f"percent-encoded as %40 (the URL is not shown). Write it as {URL_FORMS}")
    if driver == "sqlite" and (parsed.username or parsed.password or parsed.host
                               or parsed.port):
        # SQLAlchemy would read sqlite://user:pw@/tmp/x.db as the relative file tmp/x.db.
        raise ConfigError(
            "the database URL is SQLite with a user, password or host, which a SQLite file "
            f"has none of (the URL is not shown). Write it as {URL_FORMS}")
    return parsed.set(drivername=driver)


def shown_url(url: str) -> str:
    """A database URL fit to print or log: its password, if any, as "***"; a URL
    SQLAlchemy cannot read is not shown at all (what part is the password is anyone's
    guess)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(a database URL that cannot be read; not shown)"


#: Passwords of the database URLs this process was given, and pieces of them, which no
#: message shown or logged may hold. A driver quotes what it was given: the host
#: 'Secret@db' of a password whose '@' was not encoded.
_SECRETS: set[str] = set()
#: Shorter pieces are left alone: scrubbing them would garble messages, and give little.
_SHORTEST_SECRET = 3


def secrets_of(url: str) -> set[str]:
    """What of `url` must never be shown: the password as written and percent-decoded,
    and, when the part before the host holds several '@', each piece between them and
    after the ':' (a password split by an '@' it should have encoded)."""
    found: set[str] = set()
    with contextlib.suppress(Exception):
        password = make_url(url).password
        if password:
            found |= {str(password), quote(str(password), safe="")}
    authority = url.partition("://")[2].partition("/")[0] if "://" in url else url
    if "@" in authority:
        userinfo = authority.rpartition("@")[0]
        password = userinfo.partition(":")[2]
        for text in (password, unquote(password)):
            found |= {text, *text.split("@")}
    return {s for s in found if len(s) >= _SHORTEST_SECRET}


def _never_show(url: str) -> None:
    _SECRETS.update(secrets_of(url))


def scrubbed(text: str) -> str:
    """`text` (a driver's message) without the database passwords (`secrets_of`) of the
    URLs this process was given to `make_engine`."""
    for secret in sorted(_SECRETS, key=len, reverse=True):  # the whole before its pieces
        text = text.replace(secret, "***")
    return text


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


def _sqlite_pragmas(dbapi_conn: Any, busy_ms: int) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    # WAL + NORMAL: durable across application crashes, each commit costs no fsync.
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    cur.close()


def lock_wait_ran_out(exc: BaseException) -> bool:
    """Whether `exc` is SQLite's write lock still taken at the end of the busy timeout:
    the whole wait is spent, so trying again at once would only wait as long again."""
    orig = getattr(exc, "orig", None)
    return (isinstance(orig, sqlite3.OperationalError)
            and getattr(orig, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY)


def reason(exc: BaseException) -> str:
    """The first line of what the database said, for a log line: without the statement
    and its parameters, which SQLAlchemy adds and which may hold an address."""
    orig = getattr(exc, "orig", None)
    text = scrubbed(str(orig if orig is not None else exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)

