"""Full text: extract_article scored on the article corpus, and full-text sources end to
end, with a feed and its article pages on a loopback server (see conftest.py), no mocks.

The pages in tests/data/articles are scrapinghub's article-extraction-benchmark (MIT,
see the LICENSE file there); a score is token F1 against the benchmark's articleBody.
"""

from __future__ import annotations

import csv
import email.utils
import gzip
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.app import App
from digest.cli import main
from digest.gather.clean import is_boilerplate
from digest.gather.extract import PageEnricher, extract_article
from digest.gather.feeds import Entry
from digest.gather.fetch import FetchResult
from digest.gather.sources import FetchOptions, add_source, fetch_source
from digest.models import Article, Source
from digest.publication import create_list
from tests.conftest import DATA, Clock

from .conftest import Handler, Loopback

ARTICLES = DATA / "articles"


@dataclass(frozen=True)
class Page:
    domain: str
    url: str    # where the page was captured
    file: Path  # gzipped HTML
    truth: str  # the benchmark's articleBody

    def html(self) -> bytes:
        return gzip.decompress(self.file.read_bytes())


@cache
def corpus() -> dict[str, Page]:
    truth = json.loads((ARTICLES / "ground-truth.json").read_text(encoding="utf-8"))
    rows = csv.DictReader((ARTICLES / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines(),
                          delimiter="\t")
    return {
        row["domain"]: Page(row["domain"], row["url"], ARTICLES / row["file"],
                            truth[Path(row["file"]).name.split(".")[0]]["articleBody"])
        for row in rows
    }


def token_f1(predicted: str, truth: str) -> float:
    """F1 of the bags of words (Unicode \\w+ runs, case-folded) of the two texts."""
    def bag(text: str) -> Counter[str]:
        return Counter(re.findall(r"\w+", text.casefold()))

    got, want = bag(predicted), bag(truth)
    common = sum((got & want).values())
    return 2 * common / (sum(got.values()) + sum(want.values())) if common else 0.0


# --- extract_article -------------------------------------------------------------------

def corpus_scores() -> dict[str, float]:
    """Token F1 of extract_article's text on each corpus page, by domain."""
    scores = {}
    for page in corpus().values():
        extracted = extract_article(page.html(), page.url)
        scores[page.domain] = token_f1(extracted.text if extracted else "", page.truth)
    return scores


# wired.com's article ends halfway through the page for every extractor tried.
ENDS_HALFWAY = frozenset({"www.wired.com"})


def test_corpus_scores_like_the_measurement() -> None:
    scores = corpus_scores()
    assert len(scores) == 44
    mean = sum(scores.values()) / len(scores)
    worst = sorted(scores.items(), key=lambda kv: kv[1])[:4]
    # 0.978 measured with trafilatura 2.3.1 (0.976 before the repeated headline and the
    # caption were left out); trafilatura's default would be 0.944, and keeping comments
    # or images lowers it, which these bounds catch.
    assert mean >= 0.974, (mean, worst)
    assert all(score >= 0.80 for domain, score in scores.items()
               if domain not in ENDS_HALFWAY), worst
    assert scores["www.wired.com"] >= 0.6, worst  # 0.62: trafilatura stops early there


def test_korean_page() -> None:
    page = corpus()["entermedia.co.kr"]
    got = extract_article(page.html(), page.url)
    assert got is not None
    assert got.language == "ko"
    assert got.text.startswith("엘제이의 리벤지인가, 류화영의 코스프레인가")
    assert token_f1(got.text, page.truth) >= 0.95
    assert "<script" not in got.content_html and "class=" not in got.content_html


def test_comments_stay_out() -> None:
    page = corpus()["blog.givewell.org"]  # an open thread with a page of comments
    got = extract_article(page.html(), page.url)
    assert got is not None and "quarterly open threads" in got.text
    assert "Partners in Health" not in got.text and "Comments are closed" not in got.text


def test_related_posts_and_teasers_stay_out() -> None:
    related = corpus()["note100yen.com"]  # ends with a list of thumbnailed related posts
    got = extract_article(related.html(), related.url)
    assert got is not None and "Kindle for PC" in got.text
    assert "Speccyのportable版" not in got.text
    teaser = corpus()["www.rt.com"]
    got = extract_article(teaser.html(), teaser.url)
    assert got is not None and "Share it with a friend" not in got.text
    assert not [block for block in got.text.split("\n\n") if is_boilerplate(block)]


def test_lead_image_is_og_image_else_the_first_photo() -> None:
    bbc = corpus()["www.bbc.com"]
    got = extract_article(bbc.html(), bbc.url)
    assert got is not None and got.image_url.startswith("https://ichef.bbci.co.uk/news/1024/")
    # No og:image; the first image in the article is AddThis's share button, skipped.
    review = corpus()["www.thespacereview.com"]
    got = extract_article(review.html(), review.url)
    assert got is not None
    assert got.image_url == "https://www.thespacereview.com/archive/3834a.jpg"


@pytest.mark.parametrize("garbage", [
    b"", b"   \n", b"\x00" * 200, bytes(range(256)) * 20,
    b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + bytes(range(256)) * 4,
    b"<html><body><img src='a.png'></body></html>",
    b"<html><body>" + b"<div>" * 5000 + b"deep" + b"</div>" * 5000 + b"</body></html>",
    "<html><body><p>\ud800 lone surrogate</p></body></html>",
])
def test_garbage_gives_none(garbage: bytes | str) -> None:
    assert extract_article(garbage, "https://example.org/a") is None


def test_hostile_urls_are_dropped() -> None:
    page = (b"<html><head><meta property='og:image' content='javascript:alert(1)'></head>"
            b"<body><article><p>" + b"A sentence of the article. " * 40 +
            b"</p><img src='javascript:alert(2)'></article></body></html>")
    got = extract_article(page, "https://example.org/a")
    assert got is not None and got.image_url == "" and "javascript" not in got.content_html


# --- PageEnricher, with small fakes for the fetch ----------------------------------------

def _entry(summary: str, link: str = "https://example.org/a") -> Entry:
    return Entry(guid="g", link=link, title="T", author="", published=None,
                 content_html=f"<p>{summary}</p>", summary=summary, image_url="",
                 image_caption="", language="")


def _serving(body: bytes, content_type: str = "text/html") -> PageEnricher:
    def get_page(url: str) -> FetchResult:
        return FetchResult(url, 200, body, content_type, "", "")
    return PageEnricher(get_page, limit=10)


def test_enricher_keeps_the_feed_when_the_page_is_worse() -> None:
    article = corpus()["www.bbc.com"].html()
    as_image = _serving(article, "image/png")
    assert as_image(_entry("Short.")).summary == "Short." and as_image.failed == 1
    # A paywall or consent page gives less text than the feed already had.
    long_feed = _entry("The feed's full story. " * 500)
    paywall = _serving(article)
    assert paywall(long_feed) == long_feed and paywall.failed == 1
    linkless = _serving(article)
    assert linkless(_entry("x", link="")).summary == "x" and linkless.fetched == 0


def test_enricher_stops_at_its_limit() -> None:
    enricher = _serving(corpus()["www.bbc.com"].html())
    enricher.limit = 2
    got = [enricher(_entry("Teaser.", link=f"https://example.org/{i}")) for i in range(4)]
    assert [e.summary == "Teaser." for e in got] == [False, False, True, True]
    assert (enricher.fetched, enricher.enriched, enricher.failed) == (2, 2, 0)


# --- full-text sources end to end -----------------------------------------------------

# path on the loopback site -> corpus page; the feed links to each
FULL = {
    "/news/ko.html": "entermedia.co.kr",             # Korean
    "/news/bbc": "www.bbc.com",                      # redirects; photo from og:image
    "/news/kindle.html": "note100yen.com",           # Japanese, related posts at the end
    "/news/open-thread.html": "blog.givewell.org",   # a page of comments
    "/news/sls.html": "www.thespacereview.com",      # no og:image: the first photo
}
BROKEN = ("/news/missing.html", "/news/garbage.html")  # 404, and bytes that are no page
PLAIN = ("/plain/1.html", "/plain/2.html")


def _item(path: str, when: str, base: str) -> str:
    return (f"<item><title>Story {path}</title><link>{base}{path}</link><guid>{path}</guid>"
            f"<pubDate>{when}</pubDate><description>Feed teaser of {path}…</description>"
            "</item>")


def _serve_site(server: Loopback, clock: Clock, paths: list[str]) -> None:
    """/full.xml lists `paths` (the list may grow), /plain.xml the PLAIN pages."""
    when = email.utils.format_datetime(clock())

    def rss(items: list[str]) -> bytes:
        body = "".join(_item(p, when, server.base) for p in items)
        return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
                f"<title>Loop</title><link>{server.base}/</link>{body}</channel></rss>"
                ).encode()

    server.route("/full.xml")(lambda h: h.reply(rss(paths), Content_Type="application/rss+xml"))
    server.route("/plain.xml")(
        lambda h: h.reply(rss(list(PLAIN)), Content_Type="application/rss+xml"))
    server.route("/news/bbc")(lambda h: h.reply(b"", 301, Location="/news/bbc.html"))
    server.route("/news/garbage.html")(
        lambda h: h.reply(bytes(range(256)) * 40, Content_Type="text/html"))
    pages = {"/news/bbc.html" if p == "/news/bbc" else p: d for p, d in FULL.items()}
    pages |= dict.fromkeys(PLAIN, "www.bbc.com")
    for path, domain in pages.items():
        server.route(path)(_gzipped(corpus()[domain]))


def _gzipped(page: Page) -> Callable[[Handler], None]:
    # gzip on the wire, as sites send it: fetch decodes it within its limits.
    def serve(h: Handler) -> None:
        h.reply(page.file.read_bytes(), Content_Type="text/html", Content_Encoding="gzip")
    return serve


def _requests(server: Loopback, prefix: str) -> int:
    return sum(seen.path.startswith(prefix) for seen in server.seen)


def _setup(s: Session, server: Loopback) -> tuple[Source, Source]:
    mlist = create_list(s, "daily", title="Daily", from_addr="d@news.example.org")
    full, _ = add_source(s, server.url("/full.xml"), mlist, full_text=True)
    plain, _ = add_source(s, server.url("/plain.xml"), mlist)
    s.commit()
    return full, plain


def test_full_text_source_stores_each_pages_article(app: App, server: Loopback,
                                                    clock: Clock) -> None:
    _serve_site(server, clock, [*FULL, *BROKEN])
    with app.sessions() as s:
        full, plain = _setup(s, server)
        reports = {r.url: r for r in app.fetch(s)}
        report = reports[full.url]
        assert (report.status, report.new, report.pages_failed) == ("ok", 7, 2)
        stored = {a.link.removeprefix(server.base): a for a in s.scalars(
            select(Article).where(Article.source_id == full.id))}
        for path, domain in FULL.items():
            article, page = stored[path], corpus()[domain]
            assert token_f1(article.summary, page.truth) >= 0.8, (path, article.summary[:300])
            assert "Feed teaser" not in article.summary
            assert article.title == f"Story {path}"  # the feed's title wins
            assert not [b for b in article.summary.split("\n\n") if is_boilerplate(b)]
        assert stored["/news/ko.html"].language == "ko"
        assert "Partners in Health" not in stored["/news/open-thread.html"].summary
        assert "Speccyのportable版" not in stored["/news/kindle.html"].summary
        assert stored["/news/bbc"].image_url.startswith("https://ichef.bbci.co.uk/")
        # The page came through a redirect: its relative image is resolved against it.
        assert stored["/news/sls.html"].image_url == server.url("/archive/3834a.jpg")
        for path in BROKEN:
            assert stored[path].summary == f"Feed teaser of {path}…"
        # A page failure is no failure of the source.
        s.refresh(full)
        assert (full.consecutive_failures, full.last_error) == (0, "")
        # The plain source keeps its feed's text and never asked for a page.
        assert reports[plain.url].new == 2 and reports[plain.url].pages_failed == 0
        assert _requests(server, "/plain/") == 0
        assert all(a.summary.startswith("Feed teaser") for a in s.scalars(
            select(Article).where(Article.source_id == plain.id)))


def test_only_new_entries_pages_are_fetched(app: App, server: Loopback, clock: Clock) -> None:
    paths = ["/news/ko.html", "/news/missing.html"]
    _serve_site(server, clock, paths)
    with app.sessions() as s:
        full, _ = _setup(s, server)
        app.fetch(s)
        assert _requests(server, "/news/") == 2
        paths.append("/news/kindle.html")
        clock.advance(hours=1)
        report = next(r for r in app.fetch(s) if r.url == full.url)
        assert (report.new, report.seen, report.pages_failed) == (1, 3, 0)
        # The failed page is not retried: the entry was stored with the feed's text.
        assert _requests(server, "/news/") == 3
        assert [seen.path for seen in server.seen if seen.path.startswith("/news/")][-1] \
            == "/news/kindle.html"


def test_pages_per_fetch_are_bounded(app: App, server: Loopback, clock: Clock) -> None:
    _serve_site(server, clock, [p for p in FULL if p != "/news/bbc"])  # no redirect hop
    with app.sessions() as s, requests.Session() as http:
        full, _ = _setup(s, server)
        report = fetch_source(s, http, full, FetchOptions(max_entries=2), clock)
        assert (report.new, report.pages_failed) == (2, 0)
        assert _requests(server, "/news/") == 2


def test_cli_adds_a_full_text_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("DIGEST_CONFIG", "DIGEST_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DIGEST_PUBLIC_URL", "https://news.example.org")
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    run("init")
    run("lists", "create", "daily", "--from", "d@news.example.org")
    feed = DATA / "flow" / "news.xml"
    assert "full text" not in run("sources", "add", str(feed), "--list", "daily")
    out = run("sources", "add", "https://example.org/feed.xml", "--list", "daily",
              "--full-text")
    assert "Added source 2" in out and "fetches the full text of each new article" in out
