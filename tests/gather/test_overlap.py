"""Two fetches of one source at once — the scheduler's round and the console's "Fetch
now", or `digest fetch` in another process — store each article once.

Each fetch is the real path (`App.fetch`, its own App, so its own engine and HTTP
session, as another process would have) against the loopback server, whose gate holds
requests until the test opens it, so the fetches overlap for as long as the test wants.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from digest.app import App
from digest.cli import main
from digest.config import Settings
from digest.gather.lease import SLACK, lease_length, release_lease, take_lease
from digest.gather.sources import SourceReport
from digest.models import Article, Source
from tests.conftest import Clock

from .conftest import Handler, Loopback, fetch_one

STORIES = ("ferry", "festival", "sea-wall")


class Gate:
    """Holds the first `hold` requests it sees until opened; later ones pass at once."""

    def __init__(self, hold: int) -> None:
        self.hold = hold
        self.opened = threading.Event()
        self.arrived = 0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    def __call__(self, h: Handler) -> None:
        with self._lock:
            self.arrived += 1
            held = self.arrived <= self.hold
            self._changed.notify_all()
        if held:
            self.opened.wait(10)

    def wait_for(self, count: int, unless: Callable[[], bool] = lambda: False) -> bool:
        """Until `count` requests arrived (True), or `unless()` holds (False)."""
        deadline = time.monotonic() + 10
        with self._lock:
            while self.arrived < count and not unless():
                assert time.monotonic() < deadline, "the fetch never reached the server"
                self._changed.wait(0.02)
            return self.arrived >= count


def _feed(base: str) -> bytes:
    items = "".join(
        f"<item><title>Story {name}</title><link>{base}/story/{name}</link>"
        f'<guid isPermaLink="false">harbour-{name}</guid>'
        f"<description>Feed teaser of {name}.</description>"
        f"<pubDate>Fri, 27 Nov 2026 0{i}:00:00 GMT</pubDate></item>"
        for i, name in enumerate(STORIES))
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Harbour</title>'
            f"{items}</channel></rss>").encode()


def _page(name: str) -> bytes:
    text = " ".join([f"The full story of {name}, told at length."] * 40)
    return (f"<html><head><title>{name}</title></head><body><article><h1>{name}</h1>"
            f"<p>{text}</p></article></body></html>").encode()


def _serve(server: Loopback, gate: Gate) -> None:
    """The feed at once; each story's page through the gate."""
    server.route("/feed.xml")(
        lambda h: h.reply(_feed(server.base), Content_Type="application/rss+xml"))
    for name in STORIES:
        def page(h: Handler, name: str = name) -> None:
            gate(h)
            h.reply(_page(name), Content_Type="text/html")
        server.route(f"/story/{name}")(page)


@pytest.fixture
def other(settings: Settings, clock: Clock) -> Iterator[App]:
    """A second App on the same database: another process's worth."""
    app = App(settings, clock=clock)
    yield app
    app.close()


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(2) as pool:
        yield pool


def _add_source(app: App, server: Loopback, title: str = "Harbour") -> int:
    """A full-text source, fetched before when it has its title: between reading which
    entries are new and storing them, a fetch spends as long as their pages take."""
    with app.sessions() as s:
        source = Source(url=server.url("/feed.xml"), title=title, full_text=True)
        s.add(source)
        s.commit()
        return source.id


def _stored(app: App, source_id: int) -> list[str]:
    with app.sessions() as s:
        return sorted(s.scalars(select(Article.guid).where(Article.source_id == source_id)))


GUIDS = sorted(f"harbour-{name}" for name in STORIES)


def test_two_fetches_of_one_source_at_once_store_each_article_once(
        app: App, other: App, server: Loopback, pool: ThreadPoolExecutor) -> None:
    gate = Gate(hold=2)
    _serve(server, gate)
    source_id = _add_source(app, server)
    first = pool.submit(fetch_one, app, source_id)
    gate.wait_for(1)
    second: Future[SourceReport] = pool.submit(fetch_one, other, source_id)
    # The second fetch either reaches the pages too (and is held with the first, both
    # having read which entries are new) or is refused the source at once; either way,
    # then both may go on.
    gate.wait_for(2, unless=second.done)
    gate.opened.set()
    reports = [first.result(10), second.result(10)]
    assert _stored(app, source_id) == GUIDS
    assert [(r.status, r.new) for r in reports] == [("ok", 3), ("busy", 0)]
    assert reports[1].note == "being fetched elsewhere"
    assert [seen.path for seen in server.seen].count("/feed.xml") == 1


@pytest.mark.parametrize("title", ["Harbour", ""], ids=["fetched-before", "first-fetch"])
def test_a_fetch_that_outlived_its_lease_stores_nothing_twice(
        app: App, other: App, server: Loopback, clock: Clock, pool: ThreadPoolExecutor,
        title: str) -> None:
    # The first fetch has read which entries are new and is fetching their pages when
    # the second one, the lease having run out, fetches and stores them all. (On a
    # first fetch the feed names the source: that write must wait for the pages too, or
    # it holds SQLite's write lock, or PostgreSQL's lock on the row, all along.)
    gate = Gate(hold=1)
    _serve(server, gate)
    source_id = _add_source(app, server, title)
    started = clock()
    first = pool.submit(fetch_one, app, source_id)
    gate.wait_for(1)
    opts = app.fetch_options()
    with app.sessions() as s:
        until = s.get_one(Source, source_id).fetch_lease_until
    assert until == started + lease_length(opts.timeout, opts.max_entries)
    clock.now = until  # it has run out
    second = fetch_one(other, source_id)
    assert (second.status, second.new) == ("ok", 3)
    gate.opened.set()
    late = first.result(10)
    assert (late.status, late.new, late.error) == ("ok", 0, "")
    assert _stored(app, source_id) == GUIDS
    with app.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Article)) == 3


def test_digest_fetch_says_a_source_is_being_fetched_elsewhere(
        app: App, server: Loopback, clock: Clock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _serve(server, Gate(hold=0))
    source_id = _add_source(app, server)
    with app.sessions() as s:
        # The command runs on the wall clock: a lease it cannot see run out.
        assert take_lease(s, source_id, "the scheduler", clock(), dt.timedelta(days=36500))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIGEST_CONFIG", raising=False)
    monkeypatch.setenv("DIGEST_DATABASE_URL", app.settings["database.url"])
    r = CliRunner().invoke(main, ["fetch", "--source", str(source_id)])
    assert r.exit_code == 0, r.output
    row = next(line for line in r.output.splitlines() if "/feed.xml" in line)
    assert "busy" in row and "being fetched elsewhere" in row
    assert r.output.splitlines()[-1] == (
        "0 new articles from 1 source, 0 failed, 1 skipped: being fetched elsewhere.")
    assert server.seen == []


def test_the_lease_is_one_fetchers_until_it_runs_out(app: App, clock: Clock) -> None:
    length = dt.timedelta(minutes=5)
    with app.sessions() as s:
        source = Source(url="https://example.org/feed.xml")
        s.add(source)
        s.commit()
        assert take_lease(s, source.id, "first", clock(), length)
        clock.advance(minutes=4, seconds=59)
        assert not take_lease(s, source.id, "second", clock(), length)
        clock.advance(seconds=1)
        assert take_lease(s, source.id, "second", clock(), length)  # ran out: taken over
        release_lease(s, source.id, "first")  # the first, finishing late, frees nothing
        s.commit()
        assert not take_lease(s, source.id, "third", clock(), length)
        release_lease(s, source.id, "second")
        s.commit()
        assert take_lease(s, source.id, "third", clock(), length)


def test_the_lease_lasts_as_long_as_the_longest_fetch_the_settings_allow() -> None:
    # The feed, then for a full-text source a page per new entry, each up to the timeout.
    assert lease_length(20, 0) == dt.timedelta(seconds=20) + SLACK
    assert lease_length(20, 200) == dt.timedelta(seconds=20 * 201) + SLACK
