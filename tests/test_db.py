"""The database: migrations match the models, SQLite runs in WAL with foreign keys."""

from __future__ import annotations

import datetime as dt

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from digest.app import App
from digest.db import Base
from digest.models import Source


def test_migrations_create_exactly_the_models(app: App) -> None:
    with app.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], "models changed without a migration: add one under digest/migrations"


def test_init_twice_is_harmless(app: App) -> None:
    app.init_db()
    with app.engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM alembic_version")) == 1


def test_sqlite_pragmas(app: App) -> None:
    if app.engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    with app.engine.connect() as conn:
        assert conn.scalar(text("PRAGMA journal_mode")) == "wal"
        assert conn.scalar(text("PRAGMA foreign_keys")) == 1


def test_times_are_stored_and_read_as_utc(app: App) -> None:
    seoul = dt.timezone(dt.timedelta(hours=9))
    with app.sessions() as s:
        src = Source(url="https://example.org/f", last_fetch_at=dt.datetime(2026, 3, 1, 9, 0,
                                                                            tzinfo=seoul))
        s.add(src)
        s.commit()
        s.expire_all()
        got = s.get_one(Source, src.id).last_fetch_at
    assert got == dt.datetime(2026, 3, 1, 0, 0, tzinfo=dt.UTC) and got.tzinfo is not None
    with app.sessions() as s, pytest.raises(Exception, match="naive datetime"):
        s.add(Source(url="https://example.org/g", last_fetch_at=dt.datetime(2026, 3, 1)))
        s.commit()
