"""Fixtures shared by the whole suite: databases (SQLite, and PostgreSQL when CI starts
one), a ready App, and a controllable clock."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from digest.app import App
from digest.config import defaults

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
POSTGRES_URL = os.environ.get("DIGEST_TEST_POSTGRES_URL", "")


class Clock:
    """A clock the test moves by hand: `clock()` is now, `clock.advance(minutes=5)`."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(dt.datetime(2026, 11, 27, 6, 0, tzinfo=dt.UTC))


def _backends() -> list[str]:
    return ["sqlite", "postgresql"] if POSTGRES_URL else ["sqlite"]


@pytest.fixture(params=_backends())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: SQLite in tmp_path, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/digest.db"
        return
    name = "digest_test_" + uuid.uuid4().hex[:12]
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests look at pages, which do not depend on the database: they run on
    SQLite alone, but for those marked `both_databases` (an editor's and a reader's
    whole way through), which run on PostgreSQL too. What each page does to the
    database is tested on both without a browser (tests/web's TestClient tests)."""
    kept, dropped = [], []
    for item in items:
        spec = getattr(item, "callspec", None)
        on_pg = spec is not None and spec.params.get("database_url") == "postgresql"
        if (on_pg and item.get_closest_marker("browser")
                and not item.get_closest_marker("both_databases")):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture
def pg_url(database_url: str) -> str:
    """`database_url` when it is PostgreSQL (parametrize it indirectly), else a skip."""
    if not database_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL deployment")
    return database_url


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder another user may enter (pytest's tmp_path is its owner's alone), for
    tests that run digest as someone else (`tests.test_startup.as_someone_else`)."""
    path = Path(tempfile.mkdtemp(prefix="digest-startup-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def settings(database_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    return defaults().with_overrides(
        database__url=database_url, data_dir=str(tmp_path / "var"),
        # Chosen, not the default: on PostgreSQL a default outbox is refused to senders.
        delivery__backend="outbox", delivery__outbox_dir=str(tmp_path / "outbox"),
        public_url="https://news.example.org",
    )


@pytest.fixture
def app(settings, clock: Clock) -> Iterator[App]:  # type: ignore[no-untyped-def]
    """An App on a migrated, empty database, with the test's clock."""
    app = App(settings, clock=clock)
    app.init_db()
    yield app
    app.close()
