"""Issue 13's figure: gathering 50 feeds of 100 items each from a loopback server.

    python -m tests.bench_gather [--feeds 50] [--items 100] [--keep]

The feeds are generated (a third each RSS 2.0 as WordPress writes it, with Media RSS on
half of those, Atom, and JSON Feed 1.1): every item unique, with a few paragraphs of
HTML, a figure with an image (relative in Atom and JSON Feed) and its caption, a link
with tracking parameters, a date, Korean text (a fifth of the feeds are Korean through
and through), and now and then an embed's <script> or a WordPress footer that cleaning
must drop. They are served by a plain HTTP/1.1 server in another process (`--serve`,
below), as a real site would: gzip when asked, an ETag and a Last-Modified, and 304 to
a conditional GET.

Issue 13's 3 s holds for both warm runs ("everything 304 or unchanged"): a body with no
validators that is the very one read last time is recognised by its digest
(`Source.body_digest`) and not read again.

The fetch is the real one: `App.fetch(s)`, what `digest fetch` runs, on a fresh SQLite
database with the 50 feeds as sources of one list, each run with a new `App` (a new
process's HTTP session and connections), timed as wall clock and as this process's CPU
(the server's work is in its own process and not counted):

- cold: the first fetch; every item parsed, cleaned and stored;
- warm: the second; the server answers 304 to all;
- unchanged: the server forgets its validators and sends every feed again, 200 with
  the same bytes: none parsed again, none stored, none edited.

Each run's outcome is checked, not just timed (SystemExit says what is wrong): 5,000
articles stored by the cold run, dated, with their image, their Korean text and no
script; nothing new or changed by the warm runs; and exactly one request per feed each
time (the sources are not full-text ones: no article page is fetched).
"""

from __future__ import annotations

import argparse
import datetime as dt
import email.utils
import gzip
import hashlib
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape as xml_escape

ROOT = Path(__file__).resolve().parent.parent
TARGET_COLD_S = 20.0
TARGET_WARM_S = 3.0
KST = dt.timezone(dt.timedelta(hours=9))

# --- the feeds ------------------------------------------------------------------------

EN_SUBJECTS = ("The harbour authority", "City council", "The ferry operator", "Local fishers",
               "The university", "A new bakery", "The regional hospital", "Rail engineers",
               "The mayor", "A community garden", "The football club", "Volunteers",
               "The weather service", "Shipbuilders", "The public library", "Teachers")
EN_VERBS = ("approves", "delays", "unveils", "questions", "celebrates", "rebuilds",
            "expands", "rethinks", "funds", "opens", "closes", "reviews", "defends")
EN_OBJECTS = ("the new breakwater", "a night market", "winter timetables", "the old lighthouse",
              "a cycling lane", "the fish auction", "flood defences", "school meals",
              "a solar roof", "the coastal path", "its budget", "a tidal power pilot",
              "the ferry terminal", "housing plans", "a heritage trail", "bus routes")
EN_WORDS = ("harbour", "storm", "season", "residents", "morning", "report", "council",
            "budget", "weeks", "plans", "tide", "boats", "market", "families", "island",
            "bridge", "workers", "ministry", "coast", "schools", "visitors", "engineers",
            "survey", "winter", "summer", "repairs", "evening", "neighbours", "trade")
KO_TITLES = ("항구 재개장", "어선 귀환", "태풍 피해 복구", "시의회 예산안 통과", "지하철 연장 개통",
             "수출 실적 호조", "기준금리 동결", "초등학교 신설", "문화재 복원", "해양 쓰레기 수거",
             "야시장 개장", "방파제 공사", "버스 노선 개편", "도서관 확장", "축제 준비")
KO_WORDS = ("주민들은", "시청은", "오늘", "지난주", "항구에서", "발표했다", "예정이다",
            "관계자는", "말했다", "올해", "예산을", "늘렸다", "어민들이", "환영했다", "공사가",
            "시작됐다", "전문가들은", "우려를", "나타냈다", "내년", "계획을", "밝혔다", "바다",
            "날씨가", "좋아서", "많은", "사람들이", "찾았다")
CREDITS = ("Reuters", "AP Photo", "Yonhap", "Staff photographer", "연합뉴스")


def _sentence(rng: random.Random, words: tuple[str, ...], n: int) -> str:
    text = " ".join(rng.choice(words) for _ in range(n))
    return text[0].upper() + text[1:] + "."


def _paragraph(rng: random.Random, korean: bool) -> str:
    words = KO_WORDS if korean else EN_WORDS
    return " ".join(_sentence(rng, words, rng.randint(7, 16)) for _ in range(rng.randint(3, 5)))


@dataclass(frozen=True)
class Item:
    guid: str
    link: str
    title: str
    author: str
    published: dt.datetime
    html: str  # the body as the site publishes it (some of it is for cleaning to drop)
    excerpt: str  # plain text
    image: str  # absolute, as the feed's image fields give it


def make_item(f: int, i: int, korean_feed: bool, now: dt.datetime) -> Item:
    rng = random.Random(f * 100_003 + i)
    site = f"https://news{f}.example.com"
    number = f * 10_000 + i
    published = (now - dt.timedelta(minutes=17 * i + 3 * f + 5)).replace(microsecond=0)
    if korean_feed:
        title = f"{rng.choice(KO_TITLES)}… {rng.choice(KO_WORDS)} {rng.choice(KO_WORDS)} ({number})"
    else:
        title = (f"{rng.choice(EN_SUBJECTS)} {rng.choice(EN_VERBS)} {rng.choice(EN_OBJECTS)}: "
                 f"{rng.choice(KO_TITLES)} ({number})")
    slug = f"{published:%Y/%m}/story-{number}"
    link = f"{site}/{slug}/"
    image = f"{site}/wp-content/uploads/{published:%Y/%m}/photo-{number}.jpg"
    paragraphs = [_paragraph(rng, korean_feed) for _ in range(rng.randint(3, 5))]
    ko_line = _sentence(rng, KO_WORDS, 9)  # every item has some Korean text
    parts = [f"<p>{escape(paragraphs[0])}</p>",
             # WordPress writes absolute URLs in RSS; Atom (xml:base) and JSON Feed items
             # get a relative one, resolved against the item's link.
             f'<figure><img src="{image if f % 3 == 0 else image[len(site):]}" '
             f'width="1200" height="800" alt="{escape(title)}" loading="lazy">'
             f"<figcaption>{escape(ko_line)} (Photo: {rng.choice(CREDITS)})</figcaption>"
             "</figure>"]
    for n, text in enumerate(paragraphs[1:]):
        if n == 0:
            text = escape(text) + (f' <a href="https://ref.example.org/report/{number}'
                                   '?utm_source=rss&amp;utm_medium=feed">the full report</a>')
            parts.append(f"<p>{text}</p>")
        elif n == 1:
            parts.append(f"<blockquote><p>{escape(text)}</p></blockquote>")
        else:
            parts.append(f"<p>{escape(text)}</p>")
    parts.append(f"<p lang=\"ko\">{escape(ko_line)}</p>")
    if i % 10 == 3:  # an embed, as sites paste them
        parts.append('<blockquote class="twitter-tweet"><p>What a morning at the harbour'
                     '</p></blockquote><script async src="https://platform.twitter.com/'
                     'widgets.js" charset="utf-8"></script>')
    if f % 3 == 0:  # WordPress's feed footer
        parts.append(f'<p>The post <a href="{link}">{escape(title)}</a> appeared first on '
                     f'<a href="{site}">News {f}</a>.</p>')
    return Item(guid=f"{site}/?p={number}", link=link, title=title,
                author=rng.choice(("Kim Min-ji", "Lee Jun-ho", "Ada Lovelace", "Sam Porter")),
                published=published, html="".join(parts), excerpt=paragraphs[0][:280],
                image=image)


def _rss(f: int, items: list[Item], korean: bool) -> bytes:
    media = f % 2 == 0
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" '
           'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
           'xmlns:dc="http://purl.org/dc/elements/1.1/" '
           'xmlns:atom="http://www.w3.org/2005/Atom"'
           + (' xmlns:media="http://search.yahoo.com/mrss/"' if media else "") + ">\n<channel>\n"
           f"<title>News {f}</title>\n<link>https://news{f}.example.com</link>\n"
           f"<description>Harbour news {f}</description>\n"
           f"<language>{'ko-KR' if korean else 'en-US'}</language>\n"
           "<generator>https://wordpress.org/?v=6.7</generator>\n"]
    zone = KST if korean else dt.UTC
    for it in items:
        out.append(
            f"<item>\n<title>{xml_escape(it.title)}</title>\n<link>{it.link}</link>\n"
            f"<dc:creator><![CDATA[{it.author}]]></dc:creator>\n"
            f"<pubDate>{email.utils.format_datetime(it.published.astimezone(zone))}</pubDate>\n"
            "<category><![CDATA[Local]]></category>\n"
            f'<guid isPermaLink="false">{xml_escape(it.guid)}</guid>\n'
            f"<description><![CDATA[{it.excerpt} [&#8230;]]]></description>\n"
            f"<content:encoded><![CDATA[{it.html}]]></content:encoded>\n")
        if media:
            out.append(f'<media:content url="{it.image}" medium="image" width="1200" '
                       'height="800"><media:credit>Reuters</media:credit></media:content>\n')
        out.append("</item>\n")
    out.append("</channel>\n</rss>\n")
    return "".join(out).encode()


def _atom(f: int, items: list[Item], korean: bool) -> bytes:
    out = ['<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom"'
           f' xml:lang="{"ko" if korean else "en"}">\n<title>News {f}</title>\n'
           f'<link href="https://news{f}.example.com/" rel="alternate"/>\n'
           f"<id>tag:news{f}.example.com,2026:feed</id>\n"
           f"<updated>{items[0].published.isoformat()}</updated>\n"]
    for it in items:
        out.append(
            f"<entry>\n<title type=\"html\">{xml_escape(escape(it.title))}</title>\n"
            f'<link href="{it.link}" rel="alternate"/>\n<id>{xml_escape(it.guid)}</id>\n'
            f"<published>{it.published.isoformat()}</published>\n"
            f"<updated>{it.published.isoformat()}</updated>\n"
            f"<author><name>{xml_escape(it.author)}</name></author>\n"
            f"<summary type=\"html\">{xml_escape(escape(it.excerpt))}</summary>\n"
            f'<content type="html" xml:base="{it.link}">{xml_escape(it.html)}</content>\n'
            "</entry>\n")
    out.append("</feed>\n")
    return "".join(out).encode()


def _json_feed(f: int, items: list[Item], korean: bool) -> bytes:
    return json.dumps({
        "version": "https://jsonfeed.org/version/1.1", "title": f"News {f}",
        "home_page_url": f"https://news{f}.example.com/",
        "feed_url": f"https://news{f}.example.com/feed.json",
        "language": "ko" if korean else "en",
        "items": [{"id": it.guid, "url": it.link, "title": it.title,
                   "content_html": it.html, "summary": it.excerpt, "image": it.image,
                   "date_published": it.published.astimezone(KST).isoformat(),
                   "authors": [{"name": it.author}], "tags": ["local"]}
                  for it in items],
    }, ensure_ascii=False, indent=1).encode()


FORMATS: tuple[tuple[str, str, Callable[[int, list[Item], bool], bytes]], ...] = (
    ("rss", "application/rss+xml; charset=UTF-8", _rss),
    ("atom", "application/atom+xml; charset=utf-8", _atom),
    ("json", "application/feed+json", _json_feed),
)


def make_feeds(folder: Path, feeds: int, items: int,
               now: dt.datetime) -> dict[str, list[Item]]:
    """Write the feeds into `folder`: {file name: its items}."""
    made = {}
    for f in range(feeds):
        kind, _, write = FORMATS[f % 3]
        korean = f % 5 == 4
        entries = [make_item(f, i, korean, now) for i in range(items)]
        name = f"feed{f:02d}.{kind}"
        (folder / name).write_bytes(write(f, entries, korean))
        made[name] = entries
    return made


# --- the server (its own process) -------------------------------------------------------

def serve(folder: Path) -> None:
    """Serve the folder's feeds on a free loopback port, printed first on stdout.

    As a real site: gzip when asked, ETag and Last-Modified, 304 to a conditional GET.
    GET /_control/plain makes it a server without validators (always 200, the same
    bytes); /_stats is what it answered so far, as JSON."""
    from collections import Counter
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    last_modified = email.utils.formatdate(time.time() - 3600, usegmt=True)
    types = {kind: ctype for kind, ctype, _ in FORMATS}
    files = {}
    for path in sorted(folder.iterdir()):
        body = path.read_bytes()
        files["/" + path.name] = (body, gzip.compress(body, 6),
                                  '"' + hashlib.sha1(body).hexdigest()[:20] + '"',
                                  types[path.suffix[1:]])
    state = {"validators": True}
    stats: Counter[str] = Counter()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as every real server
        # Replies in one segment, as real servers send them (TCP_NODELAY): with Nagle's
        # algorithm each gzip reply waited ~40 ms for the client's delayed ACK.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            if self.path == "/_control/plain":
                state["validators"] = False
                return self._send(200, b"ok", "text/plain")
            if self.path == "/_stats":
                return self._send(200, json.dumps(stats).encode(), "application/json")
            found = files.get(self.path)
            stats["requests"] += 1
            if found is None:
                stats["other_paths"] += 1
                return self._send(404, b"not found", "text/plain")
            body, zipped, etag, ctype = found
            headers = {}
            if state["validators"]:
                headers = {"ETag": etag, "Last-Modified": last_modified}
                since = self.headers.get("If-Modified-Since")
                match = self.headers.get("If-None-Match")
                if match is not None or since is not None:
                    stats["conditional"] += 1
                # RFC 9110: If-None-Match decides when present.
                if (match is not None and etag in [m.strip() for m in match.split(",")]) or (
                        match is None and since == last_modified):
                    stats["304"] += 1
                    return self._send(304, b"", None, headers)
            stats["200"] += 1
            if "gzip" in self.headers.get("Accept-Encoding", ""):
                headers["Content-Encoding"] = "gzip"
                body = zipped
            stats["bytes_sent"] += len(body)
            self._send(200, body, ctype, {**headers, "Vary": "Accept-Encoding",
                                          "Cache-Control": "max-age=300"})

        def _send(self, status: int, body: bytes, ctype: str | None,
                  headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if status != 304:
                if ctype:
                    self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


class Server:
    """The `serve` process, started and stopped by the bench."""

    def __init__(self, folder: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.bench_gather", "--serve", str(folder)],
            cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.isdigit():
            self.stop()
            raise SystemExit(f"the feed server did not start (it said {line!r})")
        self.base = f"http://127.0.0.1:{line}"

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.base + path, timeout=10) as resp:
            return bytes(resp.read())

    def stats(self) -> dict[str, int]:
        return dict(json.loads(self.get("/_stats")))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


# --- the runs -----------------------------------------------------------------------

@dataclass
class Run:
    wall: float
    cpu: float
    reports: list[Any]
    served: dict[str, int]  # what the server answered during the run
    asked: list[str]  # every URL the App's HTTP session fetched


def _fetch_all(make_app: Callable[..., Any], server: Server) -> Run:
    """One `App.fetch` of every source, by a new App (as a new `digest fetch` process),
    its HTTP session counting every request it makes (feeds, and article pages if any)."""
    import requests
    from sqlalchemy import text

    asked: list[str] = []
    http = requests.Session()
    http.hooks["response"].append(lambda resp, *args, **kwargs: asked.append(resp.url))
    app = make_app(http=http)
    try:
        with app.sessions() as s:
            s.execute(text("SELECT 1"))  # the database open, as the CLI's has it by now
        before = server.stats()
        with app.sessions() as s:
            t0, c0 = time.perf_counter(), time.process_time()
            reports = app.fetch(s)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        after = server.stats()
    finally:
        app.close()
    served = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    return Run(wall, cpu, reports, served, asked)


def _fingerprint(make_app: Callable[..., Any]) -> tuple[int, str]:
    """How many articles are stored, and a hash of everything they say."""
    from sqlalchemy import select

    from digest.models import Article

    app = make_app()
    try:
        with app.sessions() as s:
            rows = s.execute(select(
                Article.id, Article.source_id, Article.guid, Article.link, Article.link_key,
                Article.content_hash, Article.title, Article.author, Article.summary,
                Article.content_html, Article.image_url, Article.image_caption,
                Article.published_at, Article.language).order_by(Article.id)).all()
    finally:
        app.close()
    digest = hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()
    return len(rows), digest


def _fail(what: str) -> None:
    raise SystemExit(f"bench_gather: {what}")


def _check_served(run: Run, label: str, feed_urls: list[str], *, status: str) -> None:
    """One request per feed, answered `status`, and none for anything else: no article
    page was fetched (the sources are not full-text ones)."""
    feeds = len(feed_urls)
    got = {k: run.served.get(k, 0) for k in ("requests", "200", "304", "other_paths")}
    if got["requests"] != feeds or got["other_paths"] or got[status] != feeds:
        _fail(f"{label}: the server expected {feeds} feed requests, all {status}, "
              f"and got {got}")
    if sorted(run.asked) != sorted(feed_urls):
        pages = [u for u in run.asked if u not in feed_urls]
        _fail(f"{label}: the client made {len(run.asked)} requests for {feeds} feeds; "
              f"others: {pages[:5]}")
    if failed := [r for r in run.reports if r.pages_failed or r.page_error]:
        _fail(f"{label}: article pages were tried: {failed[0].page_error}")


def _check_stored(make_app: Callable[..., Any], made: dict[str, list[Item]],
                  base: str) -> None:
    """The cold run's articles: one per item, with its date, image, Korean and no script."""
    from sqlalchemy import select

    from digest.models import Article, Source

    expected = {it.guid: (name, it) for name, items in made.items() for it in items}
    app = make_app()
    try:
        with app.sessions() as s:
            rows = s.execute(select(Article, Source.url).join(
                Source, Source.id == Article.source_id)).all()
            problems: list[str] = []
            for article, url in rows:
                name, it = expected.pop(article.guid, (None, None))
                if it is None:
                    problems.append(f"an article nobody published: {article.guid!r}")
                    continue
                published = article.published_at.replace(tzinfo=article.published_at.tzinfo
                                                          or dt.UTC)
                checks = {
                    "source": url == f"{base}/{name}",
                    "link": article.link == it.link,
                    "date": article.date_from_feed and published == it.published,
                    "title": article.title == it.title,
                    "image": article.image_url == it.image,
                    "korean": any("\uac00" <= ch <= "\ud7a3" for ch in article.content_html),
                    "no script": "<script" not in article.content_html
                                 and "platform.twitter.com" not in article.content_html,
                    "no footer": "appeared first on" not in article.content_html,
                    "summary": bool(article.summary.strip()),
                    "absolute image": f'src="{it.image}"' in article.content_html,
                    "not backlog": not article.backlog,
                }
                if bad := [k for k, ok in checks.items() if not ok]:
                    problems.append(f"{it.guid}: {', '.join(bad)}")
            if expected:
                problems.append(f"{len(expected)} items not stored, e.g. "
                                f"{next(iter(expected))}")
            if problems:
                _fail(f"{len(problems)} articles are not right:\n  "
                      + "\n  ".join(problems[:10]))
    finally:
        app.close()


def bench_gather(feeds: int = 50, items: int = 100,
                 keep: bool = False) -> tuple[list[tuple[str, str, str]], dict[str, Any]]:
    """Run the three fetches and check them: (rows for the table, figures for JSON).
    SystemExit when a run's outcome is not right."""
    from digest.app import App
    from digest.config import defaults
    from digest.gather.sources import add_source
    from digest.publication import create_list

    folder = Path(tempfile.mkdtemp(prefix="digest-bench-gather-"))
    feed_dir = folder / "feeds"
    feed_dir.mkdir()
    now = dt.datetime.now(dt.UTC)
    made = make_feeds(feed_dir, feeds, items, now)
    feed_bytes = sum(p.stat().st_size for p in feed_dir.iterdir())
    total = feeds * items
    settings = defaults().with_overrides(database__url=f"sqlite:///{folder}/digest.db",
                                         data_dir=str(folder))

    def make_app(http: Any = None) -> App:
        return App(settings, http=http)

    server = Server(feed_dir)
    feed_urls = [f"{server.base}/{name}" for name in made]
    try:
        app = make_app()
        app.init_db()
        with app.sessions() as s:
            mlist = create_list(s, "daily", title="Daily", from_addr="Daily <d@news.example.org>")
            for url in feed_urls:
                add_source(s, url, mlist)
            s.commit()
        app.close()

        cold = _fetch_all(make_app, server)
        bad = [r for r in cold.reports if r.status != "ok" or r.seen != items]
        if len(cold.reports) != feeds or bad:
            _fail(f"cold: {len(cold.reports)} reports, not right: "
                  + "; ".join(f"{r.url} {r.status} seen {r.seen} {r.error}" for r in bad[:5]))
        stored, print_cold = _fingerprint(make_app)
        cold_new = sum(r.new for r in cold.reports)
        if cold_new != total or stored != total:
            _fail(f"cold: {cold_new} new articles reported and {stored} stored, "
                  f"of {total} items served")
        _check_served(cold, "cold", feed_urls, status="200")
        _check_stored(make_app, made, server.base)

        warm = _fetch_all(make_app, server)
        if [r.status for r in warm.reports] != ["not_modified"] * feeds:
            _fail(f"warm: not all 304: {sorted({r.status for r in warm.reports})}")
        _check_served(warm, "warm", feed_urls, status="304")
        if warm.served.get("conditional", 0) != feeds:
            _fail(f"warm: {warm.served.get('conditional', 0)} conditional GETs of {feeds}")
        stored, print_warm = _fingerprint(make_app)
        if stored != total or print_warm != print_cold:
            _fail(f"warm: {stored} articles stored after it, or their words changed")

        server.get("/_control/plain")  # the same bytes from now on, without validators
        same = _fetch_all(make_app, server)
        bad = [r for r in same.reports if r.status != "ok" or r.new or r.seen != items]
        if len(same.reports) != feeds or bad:
            _fail("unchanged: " + "; ".join(f"{r.url} {r.status} new {r.new} seen {r.seen} "
                                            f"{r.error}" for r in bad[:5]))
        _check_served(same, "unchanged", feed_urls, status="200")
        stored, print_same = _fingerprint(make_app)
        if stored != total or print_same != print_cold:
            _fail(f"unchanged: {stored} articles stored after it, or their words changed "
                  "(an identical feed was taken for edits)")
    finally:
        server.stop()
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)

    def verdict(seconds: float, target: float) -> str:
        return f"{'under' if seconds < target else 'OVER'} {target:g} s"

    kinds = ", ".join(f"{sum(1 for n in made if n.endswith('.' + k))} {k}"
                      for k, _, _ in FORMATS)
    size = f"{feeds} feeds × {items} items ({kinds}), {feed_bytes / 1e6:.1f} MB"
    rows = [
        ("gather cold (App.fetch, loopback)", size,
         f"{cold.wall:.2f} s, CPU {cold.cpu:.2f} s, {total / cold.wall:,.0f} items/s, "
         f"{total:,} stored: {verdict(cold.wall, TARGET_COLD_S)}"),
        ("gather warm (all 304)", f"{feeds} conditional GETs",
         f"{warm.wall:.2f} s, CPU {warm.cpu:.2f} s, 0 new: {verdict(warm.wall, TARGET_WARM_S)}"),
        ("gather warm (200, same bytes, no validators)", size,
         f"{same.wall:.2f} s, CPU {same.cpu:.2f} s, 0 new, 0 edited: "
         f"{verdict(same.wall, TARGET_WARM_S)}"),
    ]
    figures = {
        "gather_cold_s": round(cold.wall, 3), "gather_cold_cpu_s": round(cold.cpu, 3),
        "gather_warm_s": round(warm.wall, 3), "gather_warm_cpu_s": round(warm.cpu, 3),
        "gather_unchanged_s": round(same.wall, 3),
        "gather_unchanged_cpu_s": round(same.cpu, 3),
        "feeds": feeds, "items": total, "feed_bytes": feed_bytes,
        "feed_bytes_sent_gzip": cold.served.get("bytes_sent", 0),
        "articles_stored": total, "warm_not_modified": feeds,
        "warm_new": sum(r.new for r in warm.reports),
        "unchanged_new": sum(r.new for r in same.reports),
        # Checked: the client asked for the feeds once a run and for nothing else.
        "page_fetches": len(cold.asked) + len(warm.asked) + len(same.asked) - 3 * feeds,
        "target_cold_s": TARGET_COLD_S, "target_warm_s": TARGET_WARM_S,
        "cold_under_target": cold.wall < TARGET_COLD_S,
        "warm_under_target": warm.wall < TARGET_WARM_S,
        "unchanged_under_target": same.wall < TARGET_WARM_S,
    }
    return rows, figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=50)
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # the server process
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    from rich.console import Console
    from rich.table import Table

    rows, figures = bench_gather(args.feeds, args.items, keep=args.keep)
    table = Table("step", "size", "result")
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    if args.json:
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
