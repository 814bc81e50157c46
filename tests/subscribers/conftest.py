"""A fresh database per test (SQLite, and PostgreSQL when DIGEST_TEST_POSTGRES_URL is
set: see `database_url` in tests/conftest.py), a fixed `now`, and a list to put people on."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from digest.db import make_engine, session_factory
from digest.migrations import upgrade
from subscribers.lists import create_list
from subscribers.models import MailingList

CSV = Path(__file__).resolve().parent.parent / "data" / "csv"


@pytest.fixture
def db(database_url: str) -> Iterator[Session]:
    """A session on a database migrated to the newest schema, as `digest init` leaves it."""
    engine = make_engine(database_url)
    upgrade(engine)
    with session_factory(engine)() as s:
        yield s
    engine.dispose()


@pytest.fixture
def now() -> dt.datetime:
    return dt.datetime(2026, 3, 1, 7, 0, tzinfo=dt.UTC)


@pytest.fixture
def mlist(db: Session) -> MailingList:
    mlist = create_list(db, "news", from_addr="News <news@example.org>")
    db.commit()
    return mlist
