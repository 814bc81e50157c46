"""What a fetch may reach: a feed's own host may be on this machine's network (an admin
added it), the links and redirects in its content may not go anywhere else private.

Two loopback servers play the parts: the intranet feed an admin added (with `--full-text`)
and an internal service on another port whose page must never reach a draft. Everything
goes through the real CLI, as the review did."""

from __future__ import annotations

import email.utils
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from digest import config
from digest.app import App
from digest.cli import main
from digest.models import Article

from .conftest import Loopback

SECRET = "The payroll database password is hunter2"
#: An internal page that reads like an article, so extraction would keep its text.
INTERNAL = ("<!doctype html><html><head><title>Payroll runbook</title></head><body><article>"
            "<h1>Payroll runbook</h1>" + "".join(
                f"<p>{SECRET}. Paragraph {n} of the internal runbook explains, at length, how "
                "the nightly payroll export is run and who may see its output.</p>"
                for n in range(6)) + "</article></body></html>").encode()
#: The feed's own article page, on the feed's host.
OWN = INTERNAL.replace(b"payroll database password is hunter2", b"harbour reopened today")


def _feed(site: Loopback, links: list[str]) -> bytes:
    when = email.utils.format_datetime(email.utils.localtime())
    items = "".join(f"<item><title>Story {n}</title><link>{link}</link><guid>g{n}</guid>"
                    f"<pubDate>{when}</pubDate><description>Teaser {n}.</description></item>"
                    for n, link in enumerate(links))
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Intranet</title><link>{site.base}/</link>{items}</channel></rss>").encode()


def _cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    for name in ("DIGEST_CONFIG", "DIGEST_DATABASE_URL", "DIGEST_GATHER_FETCH_PRIVATE_ADDRESSES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DIGEST_PUBLIC_URL", "https://news.example.org")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return CliRunner()


def _run(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _articles() -> dict[str, str]:
    app = App(config.load())
    try:
        with app.sessions() as s:
            return {a.title: a.summary for a in s.scalars(select(Article))}
    finally:
        app.close()


def _intranet(site: Loopback, service: Loopback) -> None:
    """The admin's feed: one story on its own host, one on the internal service, one on
    its own host that redirects there."""
    links = [site.url("/own.html"), service.url("/runbook.html"), site.url("/hop.html")]
    site.route("/feed.xml")(lambda h: h.reply(_feed(site, links),
                                              Content_Type="application/rss+xml"))
    site.route("/own.html")(lambda h: h.reply(OWN, Content_Type="text/html"))
    site.route("/hop.html")(lambda h: h.reply(b"", 302,
                                              Location=service.url("/runbook.html")))
    service.route("/runbook.html")(lambda h: h.reply(INTERNAL, Content_Type="text/html"))


def test_a_full_text_feed_cannot_reach_another_service_on_this_machine(
        server: Loopback, other_server: Loopback, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _intranet(server, other_server)
    runner = _cli(tmp_path, monkeypatch)
    _run(runner, "init")
    _run(runner, "lists", "create", "daily", "--from", "d@news.example.org")
    _run(runner, "sources", "add", server.url("/feed.xml"), "--list", "daily", "--full-text")
    out = " ".join(_run(runner, "fetch").split())  # the table wraps its cells
    assert "3 new articles from 1 source, 0 failed" in out, out
    # The admin is told why two pages were not read, and which setting would allow them.
    assert "2 article pages kept the feed's text" in out, out
    assert (f"127.0.0.1 is not a public internet address, and only the source's own "
            f"scheme, host name and port ({server.base}, as written when it was added) "
            "may be on this machine's network" in out), out
    assert "[gather] fetch_private_addresses = true" in out, out
    articles = _articles()
    assert set(articles) == {"Story 0", "Story 1", "Story 2"}
    # The feed's own page, on the admin's intranet host, was read in full.
    assert "harbour reopened today" in articles["Story 0"]
    # The other port was never asked, directly or through the redirect; those stories
    # keep their feed's teaser.
    assert other_server.seen == []
    assert SECRET not in "".join(articles.values())
    assert (articles["Story 1"], articles["Story 2"]) == ("Teaser 1.", "Teaser 2.")


def test_a_feed_cannot_redirect_to_another_service_on_this_machine(
        server: Loopback, other_server: Loopback, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    other_server.route("/feed.xml")(lambda h: h.reply(
        _feed(other_server, [other_server.url("/runbook.html")]),
        Content_Type="application/rss+xml"))
    server.route("/feed.xml")(lambda h: h.reply(b"", 301, Location=other_server.url("/feed.xml")))
    runner = _cli(tmp_path, monkeypatch)
    _run(runner, "init")
    _run(runner, "lists", "create", "daily", "--from", "d@news.example.org")
    # `sources add` would refuse it already (its check goes through the same guard):
    # what is tested here is the fetch.
    _run(runner, "sources", "add", server.url("/feed.xml"), "--list", "daily",
         "--no-check")
    result = runner.invoke(main, ["fetch"])
    assert other_server.seen == []
    assert "not a public internet address" in result.output, result.output
    assert "[gather] fetch_private_addresses" in result.output
    assert _articles() == {}


def test_the_setting_lets_feed_content_reach_this_machine(
        server: Loopback, other_server: Loopback, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The admin can widen the rule, and then the same feed reads the other service:
    so the tests above would see it if the guard let it through."""
    _intranet(server, other_server)
    runner = _cli(tmp_path, monkeypatch, DIGEST_GATHER_FETCH_PRIVATE_ADDRESSES="true")
    _run(runner, "init")
    _run(runner, "lists", "create", "daily", "--from", "d@news.example.org")
    _run(runner, "sources", "add", server.url("/feed.xml"), "--list", "daily", "--full-text")
    _run(runner, "fetch")
    articles = _articles()
    assert SECRET in articles["Story 1"] and SECRET in articles["Story 2"]
    assert len(other_server.seen) == 2


def test_through_a_proxy_a_feed_cannot_reach_a_name_only_the_proxy_knows(
        server: Loopback, other_server: Loopback, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With HTTP_PROXY set, the proxy resolves and connects: an item link to a name this
    machine cannot resolve (an intranet name the proxy knows) cannot be checked, so it is
    not fetched. `other_server` plays the proxy, which would serve the internal page."""
    internal = "http://payroll.intranet.invalid/runbook.html"
    server.route("/feed.xml")(lambda h: h.reply(_feed(server, [internal]),
                                                Content_Type="application/rss+xml"))
    other_server.route(internal)(lambda h: h.reply(INTERNAL, Content_Type="text/html"))
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    runner = _cli(tmp_path, monkeypatch, HTTP_PROXY=other_server.base, NO_PROXY="127.0.0.1")
    _run(runner, "init")
    _run(runner, "lists", "create", "daily", "--from", "d@news.example.org")
    _run(runner, "sources", "add", server.url("/feed.xml"), "--list", "daily", "--full-text")
    out = " ".join(_run(runner, "fetch").split())
    assert other_server.seen == []
    assert _articles() == {"Story 0": "Teaser 0."}
    assert "payroll.intranet.invalid does not resolve here" in out, out
    assert "[gather] fetch_private_addresses = true" in out, out
