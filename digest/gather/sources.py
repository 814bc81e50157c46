"""Sources in the database: adding them, fetching each, storing new and edited
articles, health.

One source's failure is recorded on it (last error, consecutive failures) and the
others go on; nothing a feed sends can stop a run. For a full-text source, the page of
each new or edited entry is fetched too; a page that fails only keeps the feed's own
text (an edited article, the page's text it had). A source that another fetch holds
(its lease, digest.gather.lease) is skipped.

A 200 whose body is the one read last time (many feeds send no ETag or Last-Modified,
so nothing else tells) is not read again: `body_digest` says when, and the fetch counts
as a success with the same entries, nothing new and nothing edited ("unchanged").
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import ipaddress
import json
import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from sqlalchemy import CursorResult, Row, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from digest import __version__
from digest.errors import FetchError, InvalidInput
from digest.gather.clean import content_hash
from digest.gather.extract import PageEnricher
from digest.gather.feeds import Entry, Feed, feed_format, html_page, parse_feed
from digest.gather.fetch import FetchResult, fetch
from digest.gather.guard import Reach
from digest.gather.identity import (
    BLURB_CHARS,
    GUID_CHARS,
    Edit,
    Identity,
    identity,
    match_entries,
)
from digest.gather.language import infer_language
from digest.gather.lease import lease_length, new_owner, release_lease, take_lease
from digest.gather.links import LINK_MAX, link_key, whole_link
from digest.models import Article, ListSource, Source
from subscribers.models import MailingList


@dataclass(frozen=True)
class FetchOptions:
    """From the `[gather]` settings."""

    timeout: float = 20.0
    max_bytes: int = 10_000_000
    max_redirects: int = 5
    user_agent: str = "digest"
    max_entries: int = 200
    allow_files: bool = False  # the CLI allows local feed files; the web app does not
    private_addresses: bool = False  # [gather] fetch_private_addresses (gather.guard)


Clock = Callable[[], dt.datetime]
log = logging.getLogger(__name__)
BUSY = "busy"  # another fetch holds the source's lease: skipped, nothing recorded
# How digest reads a feed into articles. Bump it with a change to that reading (a parser
# or cleaning fix) that feeds which do not change should get too: every source's next
# fetch then reads its body again, as a new digest version does (`body_digest`).
READING = 1


@dataclass(frozen=True)
class SourceReport:
    source_id: int
    url: str
    status: str  # ok | not_modified | error | BUSY
    new: int = 0
    seen: int = 0
    error: str = ""
    pages_failed: int = 0  # full-text sources: new entries that kept the feed's text
    backlog: int = 0  # of the new: undated on the source's first fetch, never offered
    page_error: str = ""  # why the first article page that could not be fetched was not
    # ok, and the body was the one read last time: not read again, `seen` as it was then
    unchanged: bool = False

    @property
    def note(self) -> str:
        """What a summary shows beside the status: the error, why it was skipped, or why
        article pages could not be read (a page the fetcher refused says which setting)."""
        if self.status == BUSY:
            return "being fetched elsewhere"
        if self.error:
            return self.error
        if self.unchanged:
            return "unchanged since the last fetch: not read again"
        notes = []
        if self.backlog:
            notes.append(f"{self.backlog} undated on this first fetch: old news of unknown "
                         "age, not offered (an editor can add them)")
        if self.page_error:
            notes.append(f"{self.pages_failed} article pages kept the feed's text; the "
                         f"first could not be fetched: {self.page_error}")
        return "; ".join(notes)


_EXAMPLE = "give the feed's whole address, e.g. https://example.org/feed.xml"
_HOST_RE = re.compile(r"[^\W_](?:[\w-]*[^\W_])?(?:\.[^\W_](?:[\w-]*[^\W_])?)*\.?")


def _checked_http(url: str) -> str:
    """`url` if it is a usable http(s) address: a host name, no spaces, a port that is a
    number; else InvalidInput saying what is wrong with it."""
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise InvalidInput(f"{url!r} has a space or control character in it, which no "
                           f"address has; write a space in a path as %20, or {_EXAMPLE}")
    parts = urlsplit(url)
    try:
        host, _port = parts.hostname, parts.port
    except ValueError:
        raise InvalidInput(f"{url!r} has a port that is not a number from 1 to 65535; "
                           f"{_EXAMPLE}") from None
    if not host:
        raise InvalidInput(f"{url!r} has no host name; {_EXAMPLE}")
    if not (host.startswith("[") or _is_ip(host) or _HOST_RE.fullmatch(host)):
        raise InvalidInput(f"{url!r}: {host!r} is not a host name; {_EXAMPLE}")
    return url


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def normalize_source_url(url: str, allow_files: bool) -> str:
    """An http(s) URL as given, or a local path turned into an absolute file:// URL."""
    url = url.strip()
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        return _checked_http(url)
    if allow_files and scheme in ("", "file"):
        path = Path(url[7:] if scheme == "file" else url).expanduser().resolve()
        if not path.is_file():
            raise InvalidInput(f"feed file {path} does not exist{_web_hint(url, scheme)}")
        return path.as_uri()
    raise InvalidInput(f"{url!r} is not an http(s) URL; give the feed's full address")


def _web_hint(given: str, scheme: str) -> str:
    """"; did you mean https://…?" when a path that is no file reads as a web address
    without its scheme (example.org/feed.xml, www.example.org)."""
    host = given.split("/", 1)[0]
    if scheme or not re.fullmatch(r"(?:[\w-]+\.)+[a-z]{2,}(?::\d+)?", host, re.IGNORECASE):
        return ""
    return (f"; did you mean https://{given}? A web address needs its http:// or "
            "https://")


def add_source(s: Session, url: str, mlist: MailingList, *, full_text: bool = False,
               allow_files: bool = False) -> tuple[Source, bool]:
    """Attach the feed at `url` to `mlist`, creating the source if it is new.

    Returns (source, attached): attached is False when it already fed this list.
    """
    url = normalize_source_url(url, allow_files)
    source = s.scalar(select(Source).where(Source.url == url))
    if source is None:
        source = Source(url=url, full_text=full_text)
        s.add(source)
        s.flush()
    elif full_text and not source.full_text:
        source.full_text = True
    link = s.get(ListSource, (mlist.id, source.id))
    if link is None:
        s.add(ListSource(list_id=mlist.id, source_id=source.id))
        s.flush()
    return source, link is None


@dataclass(frozen=True)
class FeedCheck:
    """What `check_feed` found at a URL: a feed, and what it holds now."""

    format: str  # "RSS", "Atom", "JSON" or "" (feed_format)
    title: str
    entries: int
    newest: dt.datetime | None  # the newest entry's date, None when none has one


def check_feed(http: requests.Session, url: str, opts: FetchOptions,
               now: dt.datetime) -> FeedCheck:
    """Fetch `url` once, as a source there is fetched (the same limits and reach), and
    read it as a feed; nothing is stored.

    Unreachable when the network does not answer; FetchError when something answered
    that is no feed, saying what it is and, for an HTML page that names its feed, that
    feed's URL.
    """
    result = _fetch_feed(http, url, opts)
    try:
        feed = parse_feed(result.body, result.url, result.content_type, now=now)
    except FetchError:
        page = html_page(result.body, result.url)
        if page is None:
            raise
        title, found = page
        what = f"an HTML page titled “{title}”" if title else "an HTML page"
        raise FetchError(f"{what}; " + (f"it names its feed at {found}: add that instead"
                                        if found else "look on it for a link to its feed")
                         ) from None
    dated = [e.published for e in feed.entries if e.published is not None]
    return FeedCheck(feed_format(result.body), feed.title, len(feed.entries),
                     max(dated, default=None))


def remove_source(s: Session, source_id: int) -> bool:
    """Delete the source; the database's ON DELETE rules take its articles and its links
    to lists, and editions, drafts too, keep their own copies of its stories. False when
    there was no such source.

    One DELETE, not `s.delete(source)`: the ORM would first set its loaded articles'
    source_id to NULL, which the column refuses, so that failed on any source with
    articles."""
    result: CursorResult[Any] = s.execute(  # type: ignore[assignment]
        delete(Source).where(Source.id == source_id))
    return bool(result.rowcount)


def gather(s: Session, http: requests.Session, opts: FetchOptions, clock: Clock,
           sources: Iterable[Source] | None = None,
           progress: Callable[[SourceReport], None] | None = None) -> list[SourceReport]:
    """Fetch every source (or those given), store new articles, record health.

    Each source's time is the clock's when its fetch starts: a lease taken at the
    time the run started could have run out before a late source's turn. A paused
    source (`digest sources pause`) is skipped, whoever asks: the scheduler or a command.
    """
    todo = list(sources) if sources is not None else list(
        s.scalars(select(Source).order_by(Source.id))
    )
    todo = [source for source in todo if not source.paused]
    reports = []
    for source in todo:
        report = fetch_source(s, http, source, opts, clock)
        reports.append(report)
        if progress:
            progress(report)
    return reports


def fetch_source(s: Session, http: requests.Session, source: Source, opts: FetchOptions,
                 clock: Clock) -> SourceReport:
    """Fetch one source and commit what it brought; a failure is recorded, not raised.

    Skipped (BUSY) while another fetch holds the source's lease; the lease is freed in
    the commit that records the outcome.
    """
    now, owner = clock(), new_owner()
    pages = opts.max_entries if source.full_text else 0  # a full-text fetch's page cap
    if not take_lease(s, source.id, owner, now, lease_length(opts.timeout, pages)):
        return SourceReport(source.id, source.url, BUSY)
    s.refresh(source)  # as the last fetch left it: its validators, its title
    try:
        report = _fetch(s, http, source, opts, now)
        release_lease(s, source.id, owner)
        s.commit()
        return report
    except FetchError as exc:
        return _record_failure(s, source, str(exc), now, owner)
    except Exception as exc:  # a parser bug on hostile input must not end the run
        return _record_failure(s, source, f"unexpected {type(exc).__name__}: {exc}", now,
                               owner)
    except BaseException:  # Ctrl-C: nothing of this fetch is kept, and its lease freed
        with contextlib.suppress(Exception):  # else it runs out by itself
            s.rollback()
            release_lease(s, source.id, owner)
            s.commit()
        raise


def _fetch(s: Session, http: requests.Session, source: Source, opts: FetchOptions,
           now: dt.datetime) -> SourceReport:
    result = _fetch_feed(http, source.url, opts, etag=source.etag,
                         last_modified=source.last_modified)
    if result.not_modified:
        _record_success(source, now)
        return SourceReport(source.id, source.url, "not_modified")
    read = body_digest(source, opts, result)
    source.etag, source.last_modified = result.etag, result.last_modified
    if read == source.body_digest and source.last_success_at is not None:
        # Read whole last time, and its articles committed with the digest: reading it
        # again would find every entry stored as it is (no page fetched either: a
        # full-text source fetches the pages of new and edited entries only). A source
        # whose success was reset is read as on its first fetch (store_entries' backlog).
        _record_success(source, now)
        return SourceReport(source.id, source.url, "ok", seen=source.body_entries,
                            unchanged=True)
    feed = parse_feed(result.body, result.url, result.content_type, now=now)
    enrich = _page_enricher(http, opts, _reach(source.url, opts)) if source.full_text else None
    new, seen, backlog = store_entries(s, source, feed, now, opts.max_entries, enrich)
    # In the commit of the articles (fetch_source's): a fetch that fails before it ends
    # rolls this back with them, and the next reads the body in full.
    source.body_digest, source.body_entries = read, seen
    _record_success(source, now)
    return SourceReport(source.id, source.url, "ok", new=new, seen=seen, backlog=backlog,
                        pages_failed=enrich.failed if enrich else 0,
                        page_error=enrich.first_error if enrich else "")


def body_digest(source: Source, opts: FetchOptions, result: FetchResult) -> str:
    """A sha256 (hex) of a fetched body and of everything else that decides which
    articles it is read into: the same again means the same articles.

    That is the source's URL, kind and full-text mode (a full-text source's articles
    take their pages' text: turned on, the body is read again, though only new and
    edited entries get their pages, as always), the final URL and Content-Type (relative
    links, the XML's encoding), `[gather] max_entries` (raised, the older entries come
    in), and digest's version and `READING` (a fixed parser reaches unchanged feeds).
    Not the time of reading: it only dates entries, and a stored article keeps its date.
    Pages that are not feeds (an HTML page added as a source) never get a digest: their
    reading fails, so each fetch tries them again and says why.
    """
    how = json.dumps([__version__, READING, source.url, source.kind, source.full_text,
                      opts.max_entries, result.url, result.content_type])
    return hashlib.sha256(how.encode() + b"\n" + result.body).hexdigest()


def _fetch_feed(http: requests.Session, url: str, opts: FetchOptions, *, etag: str = "",
                last_modified: str = "") -> FetchResult:
    """GET a source's feed within the `[gather]` limits, as far as its `_reach` allows:
    the one way a fetch and `check_feed` read a source."""
    return fetch(http, url, etag=etag, last_modified=last_modified, timeout=opts.timeout,
                 max_bytes=opts.max_bytes, max_redirects=opts.max_redirects,
                 user_agent=opts.user_agent, allow_files=opts.allow_files,
                 reach=_reach(url, opts))


def _reach(url: str, opts: FetchOptions) -> Reach:
    """An admin added the source at `url`, so its own host may be on this machine's
    network; the links in its items and every redirect may go there too, and nowhere
    else private."""
    return Reach(home=url, anywhere=opts.private_addresses)


def _page_enricher(http: requests.Session, opts: FetchOptions, reach: Reach) -> PageEnricher:
    """Fetches article pages with the feed's limits and reach; never local files,
    whatever the CLI allows."""
    get_page = functools.partial(
        fetch, http, timeout=opts.timeout, max_bytes=opts.max_bytes,
        max_redirects=opts.max_redirects, user_agent=opts.user_agent, allow_files=False,
        reach=reach,
    )
    return PageEnricher(get_page, limit=opts.max_entries)


def _record_success(source: Source, now: dt.datetime) -> None:
    source.last_fetch_at = source.last_success_at = now
    source.consecutive_failures = 0
    source.fetches += 1
    source.last_error = ""


def _record_failure(s: Session, source: Source, error: str, now: dt.datetime,
                    owner: str) -> SourceReport:
    s.rollback()  # drop any half-stored articles of this source
    source = s.get_one(Source, source.id)
    source.last_fetch_at = source.last_error_at = now
    source.last_error = error
    source.consecutive_failures += 1
    source.fetches += 1
    source.fetch_failures += 1
    release_lease(s, source.id, owner)
    s.commit()
    return SourceReport(source.id, source.url, "error", error=error)


def store_entries(s: Session, source: Source, feed: Feed, now: dt.datetime,
                  max_entries: int,
                  enrich: Callable[[Entry], Entry] | None = None) -> tuple[int, int, int]:
    """Insert the feed's new entries and store the edits of known ones; returns (new,
    seen, backlog: how many of the new are undated ones of a first fetch).

    Which entries are new, and under which guid, and which are edits of which stored
    article, digest.gather.identity says, against the source's stored articles and the
    document's other entries. An edited article takes the entry's words and link and
    keeps its guid, date and first-seen time (digest.stories offers an article by when
    it was first seen: one that went out is not news again). `enrich` (a full-text
    source's page fetcher) sees new and edited entries only, and the hash stays the
    feed's, so the next fetch recognizes them. An entry that another fetch stored
    meanwhile is not stored again (Article's identity is unique) and is not counted.
    Undated entries of the source's first successful fetch are its backlog (Article).
    """
    # Feeds list entries in any order; keep the newest when there are too many.
    entries = sorted(feed.entries, key=lambda e: e.published or now, reverse=True)
    entries = [_whole_link(source, e) for e in entries[:max_entries]]
    hashes = [content_hash(e.title, e.summary) for e in entries]
    stored = _stored(s, source.id, entries, hashes)
    found = match_entries(entries, hashes, stored)
    if found.new and source.full_text:  # one may be stored under its page's canonical link
        known = {k.row for k in stored}
        found = match_entries(entries, hashes,
                              stored + [k for k in _renamed(s, source.id) if k.row not in known])
    first = source.last_success_at is None  # recorded after this, on success
    rows_new = [_article(source, enrich(entry) if enrich else entry, digest_hash, guid, now,
                         first)
                for entry, digest_hash, guid in found.new]
    edits = [_edited(edit, enrich) for edit in found.edits]
    # Every write waits for the pages: the first would hold SQLite's write lock (on
    # PostgreSQL, the source's row) for as long as they take, stalling other writers.
    _name_source(source, feed)
    for row, values in edits:
        s.execute(update(Article).where(Article.id == row).values(values),
                  execution_options={"synchronize_session": False})
    new = _insert(s, rows_new)
    return new, len(entries), min(new, sum(row["backlog"] for row in rows_new))


def _name_source(source: Source, feed: Feed) -> None:
    if feed.title and not source.title:
        source.title = feed.title[:300]
    if feed.site_url and not source.site_url:
        source.site_url = feed.site_url


def _insert(s: Session, rows: list[dict[str, Any]]) -> int:
    """Insert the articles, but none whose identity is already stored (a fetch that
    outlived its lease races the one that took it over); how many went in. On
    PostgreSQL an insert waits for the other fetch's uncommitted row, then skips it."""
    make = postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert
    new = 0
    for row in rows:
        # SQLAlchemy keeps the row count of an INSERT only when asked to.
        result: CursorResult[Any] = s.execute(  # type: ignore[assignment]
            make(Article).values(row).on_conflict_do_nothing(),
            execution_options={"preserve_rowcount": True})
        new += max(result.rowcount or 0, 0)
    return new


def _edited(edit: Edit, enrich: Callable[[Entry], Entry] | None) -> tuple[int, dict[str, Any]]:
    """An edited article's row and new values: its entry's words (and link and hash,
    when they may move), never its guid, date, first-seen time or backlog mark. A
    full-text article whose page gives nothing this time (the enricher hands the entry
    back as it was) keeps the page's words it has and takes the feed's headline."""
    e = enrich(edit.entry) if enrich else edit.entry
    values = {"title": e.title} if enrich and e is edit.entry else _told(e)
    if edit.moves:
        values.update(_where(e), content_hash=edit.digest_hash)
    return edit.row, values


def _stored(s: Session, source_id: int, entries: list[Entry],
            hashes: list[str]) -> list[Identity]:
    """The source's articles that share a guid, a link, a link's key or a text with an
    entry: the only ones that can be it."""
    guids = [e.guid[:GUID_CHARS] for e in entries if e.guid]
    links = [e.link for e in entries if e.link]
    keys = [key for key in map(link_key, links) if key]
    rows = s.execute(
        select(*_IDENTITY).where(
            Article.source_id == source_id,
            or_(Article.guid.in_(guids), Article.link.in_(links),
                Article.link_key.in_(keys), Article.content_hash.in_(hashes)),
        )
    )
    return _identities(rows)


def _renamed(s: Session, source_id: int) -> list[Identity]:
    """The source's articles whose key is not their link's but their page's canonical
    link's: the feed's link, all the next fetch has, matches neither the row's link (it
    may have gained or lost tracking parameters) nor its key. A row whose link does not
    contain its key is one (or has its query in another order: compared, no harm)."""
    rows = s.execute(
        select(*_IDENTITY).where(
            Article.source_id == source_id, Article.link_key != "",
            ~Article.link.contains(Article.link_key)))
    return _identities(rows)


# The summary's start only: identity compares no more of it (a full-text article's is
# its whole page).
_IDENTITY = (Article.id, Article.guid, Article.link, Article.link_key, Article.content_hash,
             Article.title, func.substr(Article.summary, 1, 2 * BLURB_CHARS),
             Article.published_at, Article.date_from_feed)


def _identities(rows: Iterable[Row[int, str, str, str, str, str, str, dt.datetime, bool]],
                ) -> list[Identity]:
    # A row's key is its page's canonical link's when the page named one: the feed's
    # own link, all the next fetch has, is recognised by its own key.
    return [identity(guid, link, digest_hash, key, title=title, summary=summary,
                     published=published if dated else None, row=row)
            for row, guid, link, key, digest_hash, title, summary, published, dated in rows]


def _article(source: Source, e: Entry, digest_hash: str, guid: str, now: dt.datetime,
             first_fetch: bool) -> dict[str, Any]:
    undated = e.published is None
    return dict(
        source_id=source.id, guid=guid, content_hash=digest_hash, **_where(e), **_told(e),
        # Undated: the first-seen time stands in, never shown as the article's date.
        published_at=e.published or now, date_from_feed=not undated,
        first_seen_at=now, backlog=undated and first_fetch,
    )


def _whole_link(source: Source, e: Entry) -> Entry:
    """`e`, without its link when that is too long to store whole (`whole_link`): the
    story is kept and told without a link, and the next fetch knows it again."""
    if whole_link(e.link) == e.link:
        return e
    log.warning("%s: the link of %r is %d characters long, more than %d: told without "
                "its link", source.url, e.title[:80], len(e.link), LINK_MAX)
    return replace(e, link="")


def _where(e: Entry) -> dict[str, Any]:
    """An article's link and the key every link to its page shares."""
    return dict(link=e.link[:2000], link_key=link_key(e.canonical or e.link)[:2000])


def _told(e: Entry) -> dict[str, Any]:
    """What an article says: the columns an edit of it changes besides its link."""
    return dict(
        title=e.title, author=e.author[:300], summary=e.summary, content_html=e.content_html,
        image_url=whole_link(e.image_url), image_caption=e.image_caption,
        image_credit=e.image_credit, image_width=e.image_width, image_height=e.image_height,
        # A declared language (the entry's, the feed's, the page's) always wins; only an
        # article that declares none has its language told from its text.
        language=(e.language or infer_language(e.title, e.summary))[:16],
    )


def source_label(source: Source) -> str:
    """The source's title, else its URL's host or file name, for tables and items."""
    if source.title:
        return source.title
    parts = urlsplit(source.url)
    return parts.netloc or os.path.basename(parts.path)
