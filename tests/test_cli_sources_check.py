"""Issue 14 item 3: `digest sources add` fetches the URL once first (--check, the
default) and adds it only if it is a feed, saying what the feed is; a page or an error
is refused with what was found, and a network that does not answer adds it unchecked.
Run as a user runs it, against feeds on a loopback server."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from tests import test_cli_contract
from tests.conftest import DATA
from tests.loopback import feed_server, uvicorn_server
from tests.test_cli_contract import rows, said

run = test_cli_contract.run  # the fixture: `digest …` in a folder of its own

FEED = (DATA / "flow" / "news.xml").read_bytes()  # "Harbour Gazette", 3 items of 2026-11-27
PAGE = b"""<!doctype html>
<html><head><title>Harbour Gazette: news from the quay</title>
<link rel="alternate" type="application/rss+xml" title="News" href="/feeds/news.xml">
</head><body><h1>Harbour Gazette</h1></body></html>"""


def pages(path: str) -> bytes | None:
    return {"/feeds/news.xml": FEED, "/": PAGE}.get(path)  # else a 500


def ready(run) -> None:  # type: ignore[no-untyped-def]
    for args in (["init"], ["lists", "create", "morning", "--from", "m@news.example.org"]):
        r = run(*args)
        assert r.exit_code == 0, r.output


def stored(tmp_path: Path) -> list[tuple[object, ...]]:
    return rows(tmp_path / "var" / "digest.db", "SELECT url FROM sources")


async def not_found(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app that answers every request with 404."""
    await send({"type": "http.response.start", "status": 404,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"not here"})


def test_a_feed_is_added_with_what_it_is(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ready(run)
    with feed_server(pages) as base:
        r = run("sources", "add", f"{base}/feeds/news.xml", "--list", "morning")
    assert r.exit_code == 0, r.output
    assert said(r) == (f"Added source 1 {base}/feeds/news.xml → list morning: RSS feed "
                       "“Harbour Gazette”, 3 entries, newest 2026-11-27."), r.output
    assert stored(tmp_path) == [(f"{base}/feeds/news.xml",)]
    # The next fetch stores the entries, not the check.
    assert rows(tmp_path / "var" / "digest.db", "SELECT count(*) FROM articles") == [(0,)]


def test_an_html_page_is_refused_naming_the_feed_it_announces(  # type: ignore[no-untyped-def]
        run, tmp_path: Path) -> None:
    ready(run)
    with feed_server(pages) as base:
        r = run("sources", "add", f"{base}/", "--list", "morning")
    assert r.exit_code == 1, r.output
    assert said(r).startswith(f"Error: {base}/ is not a feed: an HTML page titled “Harbour "
                              f"Gazette: news from the quay”; it names its feed at "
                              f"{base}/feeds/news.xml: add that instead"), r.output
    assert "--no-check to add it anyway" in said(r)
    assert stored(tmp_path) == []


def test_an_http_error_is_refused(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ready(run)
    with uvicorn_server(not_found) as base:
        r = run("sources", "add", f"{base}/feed.xml", "--list", "morning")
    assert r.exit_code == 1, r.output
    assert said(r).startswith(f"Error: {base}/feed.xml is not a feed: HTTP 404"), r.output
    with feed_server(pages) as base:
        r = run("sources", "add", f"{base}/gone.xml", "--list", "morning")
    assert r.exit_code == 1, r.output
    assert said(r).startswith(f"Error: {base}/gone.xml is not a feed: HTTP 500"), r.output
    assert stored(tmp_path) == []


def test_a_network_that_does_not_answer_adds_it_unchecked(  # type: ignore[no-untyped-def]
        run, tmp_path: Path) -> None:
    ready(run)
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/feed.xml"
        r = run("sources", "add", url, "--list", "morning")
    assert r.exit_code == 0, r.output
    assert said(r).startswith(f"Warning: could not reach {url} (could not connect "
                              "(Connection refused)"), r.output
    assert "added unchecked: `digest fetch` will try it." in said(r)
    assert f"Added source 1 {url} → list morning" in said(r)
    assert stored(tmp_path) == [(url,)]


def test_no_check_adds_a_page_as_before(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ready(run)
    with feed_server(pages) as base:
        r = run("sources", "add", f"{base}/", "--list", "morning", "--no-check")
    assert r.exit_code == 0, r.output
    assert said(r) == f"Added source 1 {base}/ → list morning", r.output
    assert stored(tmp_path) == [(f"{base}/",)]


def test_a_feed_file_is_checked_by_reading_it(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ready(run)
    page = tmp_path / "page.html"
    page.write_bytes(PAGE)
    r = run("sources", "add", str(page), "--list", "morning")
    assert r.exit_code == 1 and "is not a feed: an HTML page titled" in said(r), r.output
    assert stored(tmp_path) == []
    r = run("sources", "add", str(DATA / "flow" / "news.xml"), "--list", "morning")
    assert r.exit_code == 0 and "RSS feed “Harbour Gazette”, 3 entries" in said(r), r.output
