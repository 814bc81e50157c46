"""A feed sent again as it was is not read again.

Many feeds send no ETag or Last-Modified: nothing but the body tells that it is the one
of the last fetch. Such a body (200, the same bytes) is not parsed, cleaned and matched
again: the fetch says so ("unchanged") and counts as a success. A changed body is read,
a body whose reading failed is read in full the next time, and what changes how a body
is read (full-text mode, `[gather] max_entries`) gets it read again.

Feeds are served on loopback without validators and fetched through `App.fetch` (and
`digest fetch`), as the scheduler and a user do.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from click.testing import CliRunner
from sqlalchemy import bindparam, inspect, select, text

import digest.gather.sources as sources
from digest.app import App
from digest.cli import main
from digest.config import Settings
from digest.db import UTCDateTime
from digest.gather.feeds import Feed
from digest.migrations import _config, upgrade
from digest.models import Article, Source
from digest.publication import create_list
from tests.conftest import Clock

from .conftest import Handler, Loopback, fetch_one

DAY = "Thu, 26 Nov 2026"


def _item(n: int, title: str = "", blurb: str = "") -> str:
    return (f"<item><title>{title or f'Harbour story {n}'}</title>"
            f"<link>https://harbour.example.org/story/{n}</link>"
            f"<guid>https://harbour.example.org/?p={n}</guid>"
            f"<pubDate>{DAY} {n:02d}:00:00 +0000</pubDate>"
            f"<description>{blurb or f'What happened at the harbour, part {n}.'}"
            "</description></item>")


def _rss(*items: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
            "<title>Harbour</title><link>https://harbour.example.org/</link>"
            f"{''.join(items)}</channel></rss>").encode()


class Served:
    """The body at /feed.xml, 200 and no ETag or Last-Modified (or `status` alone)."""

    def __init__(self, server: Loopback, body: bytes) -> None:
        self.body, self.status = body, 200
        server.route("/feed.xml")(self._reply)

    def _reply(self, h: Handler) -> None:
        if self.status != 200:
            h.send_error(self.status)
            return
        h.reply(self.body, Content_Type="application/rss+xml; charset=utf-8")


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URL of every body read into entries (parse_feed) since the test began."""
    read: list[str] = []
    parse = sources.parse_feed

    def counted(body: bytes, url: str, content_type: str = "", **kw: Any) -> Feed:
        read.append(url)
        return parse(body, url, content_type, **kw)

    monkeypatch.setattr(sources, "parse_feed", counted)
    return read


def _source(app: App, server: Loopback, *, full_text: bool = False) -> int:
    with app.sessions() as s:
        mlist = create_list(s, "daily", title="Daily", from_addr="d@news.example.org")
        source, _ = sources.add_source(s, server.url("/feed.xml"), mlist, full_text=full_text)
        s.commit()
        return source.id


def _get(app: App, source_id: int) -> Source:
    with app.sessions() as s:
        return s.get_one(Source, source_id)


def _articles(app: App) -> dict[str, tuple[str, str]]:
    with app.sessions() as s:
        return {a.guid: (a.title, a.summary) for a in s.scalars(select(Article))}


def test_a_feed_sent_again_unchanged_is_not_read_again(app: App, server: Loopback,
                                                      clock: Clock, reads: list[str]) -> None:
    Served(server, _rss(_item(2), _item(1)))
    source_id = _source(app, server)
    first = fetch_one(app, source_id)
    assert (first.status, first.new, first.seen, first.unchanged) == ("ok", 2, 2, False)
    stored = _articles(app)

    later = clock.advance(minutes=30)
    again = fetch_one(app, source_id)
    # A success with the feed's entries as they were, nothing new, and the reason.
    assert (again.status, again.new, again.seen, again.unchanged) == ("ok", 0, 2, True)
    assert again.note == "unchanged since the last fetch: not read again"
    assert reads == [server.url("/feed.xml")]  # read once: the first time
    assert _articles(app) == stored
    source = _get(app, source_id)
    assert (source.last_fetch_at, source.last_success_at) == (later, later)
    assert (source.fetches, source.fetch_failures, source.consecutive_failures) == (2, 0, 0)
    assert (source.fetch_lease_until, source.fetch_lease_owner) == (None, "")


def test_an_unchanged_feed_after_a_failure_clears_the_error(app: App, server: Loopback,
                                                           clock: Clock) -> None:
    served = Served(server, _rss(_item(1)))
    source_id = _source(app, server)
    assert fetch_one(app, source_id).status == "ok"
    served.status = 503
    clock.advance(minutes=30)
    assert fetch_one(app, source_id).status == "error"
    assert _get(app, source_id).consecutive_failures == 1
    served.status = 200
    back = clock.advance(minutes=30)
    report = fetch_one(app, source_id)
    assert (report.status, report.unchanged, report.error) == ("ok", True, "")
    source = _get(app, source_id)
    assert (source.last_error, source.consecutive_failures) == ("", 0)
    assert source.last_success_at == back and source.fetch_failures == 1


def test_a_changed_body_after_an_unchanged_one_is_read(app: App, server: Loopback,
                                                       clock: Clock, reads: list[str]) -> None:
    served = Served(server, _rss(_item(2), _item(1)))
    source_id = _source(app, server)
    assert fetch_one(app, source_id).new == 2
    clock.advance(minutes=30)
    assert fetch_one(app, source_id).unchanged
    # A new story on top, and the blurb of story 1 rewritten.
    served.body = _rss(_item(3), _item(2), _item(1, blurb="Fixed: the ferry came back."))
    clock.advance(minutes=30)
    changed = fetch_one(app, source_id)
    assert (changed.status, changed.new, changed.seen, changed.unchanged) == ("ok", 1, 3, False)
    assert len(reads) == 2
    stored = _articles(app)
    assert stored["https://harbour.example.org/?p=1"][1] == "Fixed: the ferry came back."
    assert "https://harbour.example.org/?p=3" in stored
    clock.advance(minutes=30)
    same = fetch_one(app, source_id)
    assert (same.new, same.seen, same.unchanged) == (0, 3, True)
    assert len(reads) == 2


def test_a_body_whose_reading_failed_is_read_in_full_next_time(
        app: App, server: Loopback, clock: Clock, reads: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    served = Served(server, _rss(_item(1)))
    source_id = _source(app, server)
    assert fetch_one(app, source_id).new == 1
    before = _get(app, source_id).body_digest
    served.body = _rss(_item(2), _item(1, blurb="Fixed: the ferry came back."))
    insert = sources._insert

    def broken(*args: Any) -> int:  # the edit is written, then storing fails
        raise RuntimeError("disk full")

    monkeypatch.setattr(sources, "_insert", broken)
    clock.advance(minutes=30)
    failed = fetch_one(app, source_id)
    assert (failed.status, failed.error) == ("error", "unexpected RuntimeError: disk full")
    assert _get(app, source_id).body_digest == before  # not the body that failed
    assert len(_articles(app)) == 1
    monkeypatch.setattr(sources, "_insert", insert)
    clock.advance(minutes=30)
    retried = fetch_one(app, source_id)
    assert (retried.status, retried.new, retried.unchanged) == ("ok", 1, False)
    assert len(reads) == 3
    stored = _articles(app)
    assert stored["https://harbour.example.org/?p=1"][1] == "Fixed: the ferry came back."
    assert "https://harbour.example.org/?p=2" in stored


def test_turning_full_text_on_reads_an_unchanged_feed_again(
        app: App, server: Loopback, clock: Clock, reads: list[str]) -> None:
    Served(server, _rss(_item(1)))
    source_id = _source(app, server)
    assert fetch_one(app, source_id).new == 1
    with app.sessions() as s:  # `digest sources add URL --full-text` again
        sources.add_source(s, server.url("/feed.xml"), create_list(
            s, "weekly", title="Weekly", from_addr="w@news.example.org"), full_text=True)
        s.commit()
    clock.advance(minutes=30)
    assert not fetch_one(app, source_id).unchanged
    clock.advance(minutes=30)
    assert fetch_one(app, source_id).unchanged
    assert len(reads) == 2


def test_raising_max_entries_reads_an_unchanged_feed_again(
        settings: Settings, server: Loopback, clock: Clock) -> None:
    """The entries a smaller `[gather] max_entries` left out come in once it is raised,
    though the feed has not changed."""
    Served(server, _rss(_item(3), _item(2), _item(1)))
    small = App(settings.with_overrides(gather__max_entries=2), clock=clock)
    try:
        small.init_db()
        source_id = _source(small, server)
        assert (fetch_one(small, source_id).new, fetch_one(small, source_id).unchanged) == (
            2, True)
    finally:
        small.close()
    app = App(settings, clock=clock)
    try:
        report = fetch_one(app, source_id)
        assert (report.new, report.seen, report.unchanged) == (1, 3, False)
        assert len(_articles(app)) == 3
    finally:
        app.close()


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """`digest …` in an empty folder with its own database, as a user runs it."""
    monkeypatch.chdir(tmp_path)
    for name in ("DIGEST_CONFIG", "DIGEST_DATABASE_URL", "DIGEST_DELIVERY_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DIGEST_PUBLIC_URL", "https://news.example.org")
    runner = CliRunner()

    def invoke(*args: str) -> str:
        result = runner.invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    yield invoke


def _column(table: str, n: int) -> str:
    """The text of a table's n-th column, header first, its folded lines joined again."""
    rows = [line for line in table.splitlines() if line.count("│") + line.count("┃") > n]
    return " ".join(re.split(r"[│┃]", line)[n].strip() for line in rows)


def test_digest_fetch_says_a_feed_is_unchanged(run: Any, server: Loopback) -> None:
    Served(server, _rss(_item(2), _item(1)))
    run("init")
    run("lists", "create", "daily", "--from", "d@news.example.org")
    run("sources", "add", server.url("/feed.xml"), "--list", "daily")
    first = run("fetch")
    assert "2 new articles from 1 source, 0 failed" in first
    assert "unchanged" not in first
    again = run("fetch")
    assert "0 new articles from 1 source, 0 failed" in again
    assert "unchanged since the last fetch: not read again" in " ".join(
        _column(again, 5).split())
    assert _column(again, 2) == "status ok"
    assert _column(again, 4) == "in feed 2"


def test_migration_0015_adds_the_body_digest_and_takes_it_away(settings: Settings,
                                                               clock: Clock) -> None:
    """0015 gives the sources there are no digest (their next fetch reads them as ever);
    its downgrade drops it and keeps the sources and their articles."""
    app = App(settings, clock=clock)
    try:
        upgrade(app.engine, "0014")
        with app.sessions() as s:
            s.execute(text("INSERT INTO sources (id, url, kind, title, site_url, full_text, "
                           "created_at, etag, last_modified, last_error, "
                           "consecutive_failures, fetch_lease_owner) VALUES (1, "
                           "'https://example.org/feed', 'feed', '', '', false, :now, '', '', "
                           "'', 0, '')").bindparams(bindparam("now", clock(), UTCDateTime())))
            s.commit()
        upgrade(app.engine)
        with app.sessions() as s:
            source = s.get_one(Source, 1)
            assert (source.body_digest, source.body_entries) == ("", 0)
            s.add(Article(source_id=1, guid="g", link="https://example.org/a", link_key="",
                          content_hash="h", title="A", published_at=clock(),
                          first_seen_at=clock()))
            s.commit()
        _downgrade(app, "0014")
        with app.engine.connect() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns("sources")}
            assert not {"body_digest", "body_entries"} & columns
            assert conn.scalar(text("SELECT count(*) FROM articles")) == 1
            assert conn.scalar(text("SELECT url FROM sources")) == "https://example.org/feed"
    finally:
        app.close()


def _downgrade(app: App, revision: str) -> None:
    """As digest.migrations.upgrade runs the revisions: on SQLite, foreign keys off
    while the batch copy rebuilds `sources` (its DROP would cascade to the articles)."""
    cfg = _config()
    sqlite = app.engine.dialect.name == "sqlite"
    with app.engine.connect() as conn:
        if sqlite:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        with conn.begin():
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, revision)
        if sqlite:
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            conn.commit()
