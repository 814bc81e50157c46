"""A real SQLite database per test, a fixed `now`, and a list to put people on."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

import digest.models  # noqa: F401  (register tables)
import subscribers.models  # noqa: F401
from digest.db import Base, make_engine, session_factory
from subscribers.lists import create_list
from subscribers.models import MailingList

CSV = Path(__file__).resolve().parent.parent / "data" / "csv"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Session]:
    engine = make_engine(f"sqlite:///{tmp_path}/t.db")
    Base.metadata.create_all(engine)
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
