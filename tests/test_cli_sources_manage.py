"""Issue 14: `digest sources rm|set|pause|resume`, run as a user runs them, and what the
database holds afterwards; and a paused source is skipped by every fetch."""

from __future__ import annotations

from pathlib import Path

from digest import schedule
from digest.app import App
from digest.models import Source
from tests import test_cli_contract
from tests.test_cli_contract import FEED, morning, rows, said

run = test_cli_contract.run  # the fixture: `digest …` in a folder of its own


def db(tmp_path: Path) -> Path:
    return tmp_path / "var" / "digest.db"


def test_rm_removes_a_source_by_number_or_url_with_its_articles_and_links(  # type: ignore[no-untyped-def]
        run, tmp_path: Path) -> None:
    morning(run)
    assert "Built edition #1" in said(run("edition", "build", "--list", "morning"))
    r = run("sources", "rm", str(FEED))  # by the path it was added with
    assert r.exit_code == 0, r.output
    assert said(r).startswith(f"Removed source 1 {FEED.as_uri()}, with its 3 articles "
                              "(it fed: morning).")
    assert rows(db(tmp_path), "SELECT count(*) FROM sources") == [(0,)]
    assert rows(db(tmp_path), "SELECT count(*) FROM articles") == [(0,)]
    assert rows(db(tmp_path), "SELECT count(*) FROM list_sources") == [(0,)]
    # The draft keeps its copies of the stories.
    assert rows(db(tmp_path), "SELECT count(*), count(article_id) FROM edition_items") == [
        (3, 0)]
    r = run("sources", "rm", "1")
    assert r.exit_code == 1 and r.output.startswith("Error: no source '1'; `digest sources "
                                                    "ls` lists them"), r.output


def test_set_turns_full_text_on_and_off(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    morning(run)
    r = run("sources", "set", "1", "--full-text")
    assert r.exit_code == 0 and "now fetches the full text" in said(r), r.output
    assert rows(db(tmp_path), "SELECT full_text FROM sources") == [(1,)]
    assert "No change" in run("sources", "set", "1", "--full-text").output
    r = run("sources", "set", FEED.as_uri(), "--no-full-text")
    assert r.exit_code == 0 and "now keeps the feed's text" in said(r), r.output
    assert rows(db(tmp_path), "SELECT full_text FROM sources") == [(0,)]
    r = run("sources", "set", "1")
    assert r.exit_code == 2 and "nothing to change; give --full-text or --no-full-text" in r.output


def test_a_paused_source_is_not_fetched_until_resumed(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for args in (["init"], ["lists", "create", "morning", "--from", "m@news.example.org"],
                 ["sources", "add", str(FEED), "--list", "morning"]):
        assert run(*args).exit_code == 0
    r = run("sources", "pause", "1")
    assert r.exit_code == 0 and said(r).startswith(f"Paused source 1 {FEED.as_uri()}: no "
                                                   "fetch takes it"), r.output
    assert rows(db(tmp_path), "SELECT paused FROM sources") == [(1,)]
    assert "paused" in run("sources", "ls").output
    r = run("fetch")
    assert r.exit_code == 0 and "0 new articles from 0 sources" in said(r), r.output
    r = run("fetch", "--source", "1")
    assert r.exit_code == 1 and r.output.startswith(
        "Error: source 1 is paused; `digest sources resume 1`"), r.output
    assert rows(db(tmp_path), "SELECT count(*) FROM articles") == [(0,)]
    assert "No change" in run("sources", "pause", "1").output
    r = run("sources", "resume", "1")
    assert r.exit_code == 0 and "Resumed source 1" in r.output
    assert rows(db(tmp_path), "SELECT paused FROM sources") == [(0,)]
    assert "3 new articles from 1 source" in said(run("fetch"))


def test_the_scheduler_skips_a_paused_source(app: App) -> None:
    with app.sessions() as s:
        # Nothing listens there: a fetch would record an error.
        s.add(Source(url="http://127.0.0.1:9/feed.xml", paused=True))
        s.commit()
    assert schedule.fetch_due(app, rand=lambda: 0.5) == []
    with app.sessions() as s:
        [source] = s.query(Source).all()
        assert source.last_fetch_at is None and source.last_error == ""
