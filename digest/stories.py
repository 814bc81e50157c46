"""Which articles are new to a list, with one story told by several sources as one.

An article is new to a list when the list first saw it after the window began (the
previous edition's cutoff, or `[edition] window_hours` back for a list's first edition)
and no edition of the list carried it or its twin, whatever date it claims: feeds
publish late, fetches run every few minutes and clocks differ, so an article dated
before the last send but fetched after it is news to the reader all the same.

Stories an edition had no room for (beyond `[edition] max_items` and `brief_max`) are
held over (`Edition.held`): the next edition takes them, whenever they were first seen.

Two guards keep old news out:

- a dated article is left out when it is dated before the window's `floor` (the window
  start less `[edition] late_hours`; a first edition has no late arrivals, so its floor
  is the window start): a source added today would otherwise pour its archive, all
  first seen now, into the next edition;
- an undated article found on its source's first fetch (`Article.backlog`) is old news
  of unknown age and never offered; an undated article seen later is new by the time
  it was first seen.

Twins: articles of two sources whose links are one page (`Article.link_key`:
http/https, trailing slash and tracking parameters aside; posts of one page told apart
by their anchors, scripting.com's day pages, are each a story, and a link without an
anchor is one of them) or whose headlines are nearly the same (see `same_headline`)
and whose blurbs say much the same (two towns' "Police investigate after man found
dead in park" are two stories) are one story. Two articles of one source are two posts
whatever their links (a council's feed links every notice to one news page): its
identity at store (`digest.gather.identity`) told them apart.

The story is told by the article with a picture and the most text (then the one seen
first), and names every source. A twin of an item already in an edition of the list
(one that went out, or the open one; not a cancelled one) is not new: it was carried
with that item; nor is a page another source of the list brought before the window
began.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from urllib.parse import urlsplit

from sqlalchemy import Select, and_, exists, func, or_, select
from sqlalchemy.orm import Session, aliased, defer

from digest.gather.links import link_key
from digest.gather.sources import source_label
from digest.models import Article, Edition, EditionItem, EditionStatus, ListSource, Source
from subscribers.models import MailingList

#: Headlines shorter than this (after `headline_key`) are never matched by their words
#: alone: "Podcast", "Daily briefing" or "Weather" from two sources are two stories.
HEADLINE_MIN_CHARS = 24
#: Two sources' articles whose blurbs begin with the same words, at least this many, are
#: one text: one story when their headlines share most words (`HEADLINE_SHARED`),
#: however short or retouched ("- Reuters", "UPDATE:", a synonym). So one post in two
#: feeds of its site is one story (Daring Fireball's Atom feed links "Bad App Citizens"
#: to the page it quotes, its JSON Feed to the post), and two sources' "Weather" over
#: other words are two.
SAME_BLURB_WORDS = 8
#: Of the shorter headline's words (minor words aside), how many the other must have
#: (or with another ending) for one text under both to be one story.
HEADLINE_SHARED = 0.6
#: How alike two headlines must be (difflib's ratio, 0..1) to be one story.
HEADLINE_RATIO = 0.85
#: How many of the words below the headline two twins' blurbs must share (of the
#: shorter's), when each has at least `BLURB_MIN_WORDS` of its own.
BLURB_SHARED = 0.5
BLURB_MIN_WORDS = 4
#: Words two headlines of one story may differ by: "the", "says" for "said". Any other
#: word is the news ("North" or "South" Korea, "opens" or "closes").
MINOR_WORDS = frozenset((
    "a", "an", "the", "of", "to", "in", "on", "at", "for", "with", "and", "as", "by", "from",
    "is", "are", "was", "were", "be", "been", "s", "its", "it", "this", "that", "these",
    "those", "their", "his", "her", "has", "have", "had", "will", "would", "say", "says",
    "said"))
#: Longest `source_title` an item can hold (`EditionItem.source_title`).
SOURCES_MAX = 300
_NUMBERS = re.compile(r"\d+")


@dataclass(frozen=True)
class Window:
    """What is new: first seen in (since, until]; if dated, dated at `floor` or later;
    and the articles the previous edition `held` over, had it no room for them."""

    since: dt.datetime
    until: dt.datetime
    floor: dt.datetime
    held: frozenset[int] = frozenset()


def window(since: dt.datetime, until: dt.datetime, *, first: bool,
           late_hours: int, held: frozenset[int] = frozenset()) -> Window:
    """The window of an edition covering (since, until]. A first edition (no previous
    one sent) has no late arrivals to catch: its floor is `since`."""
    floor = since if first else since - dt.timedelta(hours=late_hours)
    return Window(since, until, floor, held)


@dataclass(frozen=True)
class Story:
    """One story: the article that tells it and its twins from elsewhere."""

    article: Article
    twins: tuple[Article, ...]
    sources: str  # "Yonhap · The Korea Herald": the teller's source first

    @property
    def when(self) -> dt.datetime:
        """When it happened, as far as we know: its date, or when it was first seen if
        that is earlier (a date in the future is a feed's clock or time zone wrong)."""
        a = self.article
        return min(a.published_at, a.first_seen_at)


def new_stories(s: Session, mlist: MailingList, w: Window) -> list[Story]:
    """The stories new to `mlist` in window `w`, newest first; an open edition's items
    count as carried. Three queries: articles, recent items, source labels."""
    carried = _carried(mlist)
    # A page another source of the list brought before the window, or that went out
    # (under any tracking tags), is not new when this one brings it: it went out, or
    # went out as a twin, or was passed over then. (Two articles of one source at one
    # link are two posts: its identity at store told them apart, digest.gather.identity.)
    # A story held over was seen before the window too, and so were its twins: its
    # page is not "seen" for it.
    held = sorted(w.held)
    held_keys = select(Article.link_key).where(Article.id.in_(held), Article.link_key != "")
    list_sources = select(ListSource.source_id).where(ListSource.list_id == mlist.id)
    seen = aliased(Article)
    taken = (seen.link_key != "",
             or_(seen.id.in_(carried),
                 and_(seen.source_id.in_(list_sources), seen.first_seen_at <= w.since,
                      seen.link_key.not_in(held_keys))))
    page_taken = exists().where(seen.link_key == Article.link_key,
                                seen.source_id != Article.source_id, *taken)
    rows = s.execute(
        select(Article, func.length(Article.content_html))
        .options(defer(Article.content_html))
        .join(ListSource, ListSource.source_id == Article.source_id)
        .where(ListSource.list_id == mlist.id,
               or_(and_(Article.first_seen_at > w.since, Article.first_seen_at <= w.until,
                        Article.backlog.is_(False),
                        or_(Article.date_from_feed.is_(False),
                            Article.published_at >= w.floor)),
                   Article.id.in_(held)),
               Article.id.not_in(carried),
               # A post told by its anchor is checked below, against the anchors
               # carried and seen of its page.
               or_(Article.link_key == "", Article.link.contains("#"), ~page_taken))
    ).all()
    if not rows:
        return []
    fullness = {a.id: (bool(a.image_url), n or len(a.summary)) for a, n in rows}
    recent = _recent_items(s, mlist, w)
    pages = _Pages((link, source) for _title, _summary, link, source in recent)
    anchored = {_key(a) for a, _n in rows if _page(a)[1]} - {""}
    if anchored:
        pages.add_all((link, source) for link, source in s.execute(
            select(seen.link, seen.source_id).where(seen.link_key.in_(anchored), *taken)))
    headlines = _Headlines((title, summary, source) for title, summary, _link, source in recent)
    fresh = [a for a, _n in rows
             if not pages.has(*_page(a), a.source_id) and not headlines.has(a)]
    labels = {src.id: source_label(src) for src in s.scalars(
        select(Source).join(ListSource, ListSource.source_id == Source.id)
        .where(ListSource.list_id == mlist.id))}
    stories = [_story(group, fullness, labels) for group in twins(fresh)]
    # Newest first; stories of one moment (undated ones found in one fetch) in the
    # order their feed lists them, which is the order they were stored in.
    return sorted(stories, key=lambda t: (t.when, -t.article.id), reverse=True)


def archived(s: Session, mlist: MailingList, w: Window) -> int:
    """How many articles first seen in window `w` are left out as old news: dated
    before its floor (a new source's archive), and not carried."""
    carried = _carried(mlist)
    return s.scalar(
        select(func.count()).select_from(Article)
        .join(ListSource, ListSource.source_id == Article.source_id)
        .where(ListSource.list_id == mlist.id, Article.first_seen_at > w.since,
               Article.first_seen_at <= w.until, Article.date_from_feed.is_(True),
               Article.published_at < w.floor, Article.id.not_in(carried))) or 0


def _carried(mlist: MailingList) -> Select[int | None]:
    """The articles an edition of the list carries (one that went out, or the open one;
    not a cancelled one), as a subquery."""
    return (select(EditionItem.article_id)
            .join(Edition, Edition.id == EditionItem.edition_id)
            .where(Edition.list_id == mlist.id, EditionItem.article_id.is_not(None),
                   Edition.status != EditionStatus.CANCELLED))


def twins(articles: Sequence[Article]) -> list[list[Article]]:
    """`articles` in groups of one story: same link key, or near-identical headlines
    from two sources (see `same_headline`)."""
    parent = list(range(len(articles)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(i: int, j: int) -> None:
        parent[find(i)] = find(j)

    # One page from two sources: the same key, and the same anchor or either without
    # one. (Within one source, its identity at store tells posts apart.)
    by_key: dict[str, list[int]] = {}
    for i, a in enumerate(articles):
        key = _key(a)
        if key:
            by_key.setdefault(key, []).append(i)
    for group in by_key.values():
        for n, i in enumerate(group):
            for j in group[n + 1:]:
                a, b = articles[i], articles[j]
                anchor_a, anchor_b = _page(a)[1], _page(b)[1]
                if a.source_id != b.source_id and (
                        anchor_a == anchor_b or not anchor_a or not anchor_b):
                    join(i, j)
    titled = sorted(((headline_key(a.title), i) for i, a in enumerate(articles)),
                    key=lambda t: len(t[0]))
    # One text under two headlines that share most words: a wire story retold.
    by_blurb: dict[tuple[str, ...], list[int]] = {}
    for i, a in enumerate(articles):
        if start := _blurb_start(a.summary):
            by_blurb.setdefault(start, []).append(i)
    for group in by_blurb.values():
        for n, i in enumerate(group):
            for j in group[n + 1:]:
                a, b = articles[i], articles[j]
                if (a.source_id != b.source_id and find(i) != find(j)
                        and _one_text(a.title, a.summary, b.title, b.summary)):
                    join(i, j)
    titled = [(h, i) for h, i in titled if _weight(h) >= HEADLINE_MIN_CHARS]
    for n, (h, i) in enumerate(titled):
        for h2, j in titled[n + 1:]:
            if 2 * len(h) < HEADLINE_RATIO * (len(h) + len(h2)):
                break  # sorted by length: every later one is too long to be alike
            a, b = articles[i], articles[j]
            if (a.source_id != b.source_id and find(i) != find(j) and _alike(h, h2)
                    and _told_alike(h, a.summary, b.summary)):
                join(i, j)
    groups: dict[int, list[Article]] = {}
    for i, a in enumerate(articles):
        groups.setdefault(find(i), []).append(a)
    return list(groups.values())


def headline_key(title: str) -> str:
    """A headline as compared: Unicode NFKC, casefolded, punctuation and symbols as
    spaces, whitespace collapsed ("‘Harbour’ reopens —  today" → "harbour reopens today")."""
    text = unicodedata.normalize("NFKC", title).casefold()
    kept = "".join(c if unicodedata.category(c)[0] in "LNM" else " " for c in text)
    return " ".join(kept.split())


def same_headline(a: str, b: str) -> bool:
    """Could these two headlines be one story's? Alike after `headline_key`, apart only
    by minor words or endings, and long enough to say so (`HEADLINE_MIN_CHARS`)."""
    ka, kb = headline_key(a), headline_key(b)
    return min(_weight(ka), _weight(kb)) >= HEADLINE_MIN_CHARS and _alike(ka, kb)


def _weight(key: str) -> int:
    """A headline key's length for `HEADLINE_MIN_CHARS`, a wide (CJK) character counting
    two, as Twitter weighs them: Korean says in 16 characters what English says in 30."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in key)


def _alike(a: str, b: str) -> bool:
    """Two headline keys of one story: alike letter by letter, the same numbers, and
    apart only by minor words or a word's ending (`MINOR_WORDS`)."""
    if a == b:
        return True
    if _NUMBERS.findall(a) != _NUMBERS.findall(b):
        return False  # "..., day 12" and "..., day 13" are two stories
    m = SequenceMatcher(None, a, b, autojunk=False)
    return (m.real_quick_ratio() >= HEADLINE_RATIO and m.quick_ratio() >= HEADLINE_RATIO
            and m.ratio() >= HEADLINE_RATIO and _same_words(a.split(), b.split()))


def _same_words(a: list[str], b: list[str]) -> bool:
    only_a = set(a) - set(b) - MINOR_WORDS
    only_b = set(b) - set(a) - MINOR_WORDS
    for word in sorted(only_a):
        other = next((w for w in sorted(only_b) if _one_word(word, w)), None)
        if other is None:
            return False
        only_b.discard(other)
    return not only_b


def _one_word(a: str, b: str) -> bool:
    """One word with two endings: "reopens" and "reopened", "어선들이" and "어선들은"."""
    stem = next((n for n, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                min(len(a), len(b)))
    return stem >= (4 if a.isascii() else 2) and len(a) - stem <= 3 and len(b) - stem <= 3


def _told_alike(headline: str, a: str, b: str) -> bool:
    """Do two blurbs under one headline tell one story? They share half the words of
    their own (the headline's and minor words aside), or one has too few to tell."""
    drop = set(headline.split()) | MINOR_WORDS
    wa = {w for w in headline_key(a).split()[:80] if w not in drop}
    wb = {w for w in headline_key(b).split()[:80] if w not in drop}
    if min(len(wa), len(wb)) < BLURB_MIN_WORDS:
        return True
    return len(wa & wb) >= BLURB_SHARED * min(len(wa), len(wb))


def _blurb_start(summary: str) -> tuple[str, ...]:
    """A blurb's first `SAME_BLURB_WORDS` words, () when it has fewer."""
    words = headline_key(summary).split()[:SAME_BLURB_WORDS]
    return tuple(words) if len(words) == SAME_BLURB_WORDS else ()


def _one_text(title_a: str, summary_a: str, title_b: str, summary_b: str) -> bool:
    """One text under two headlines: the blurbs begin with the same words, at least
    `SAME_BLURB_WORDS` (the shorter whole, up to 30: one may be cut shorter), and the
    headlines share `HEADLINE_SHARED` of the shorter's words."""
    wa, wb = headline_key(summary_a).split()[:30], headline_key(summary_b).split()[:30]
    n = min(len(wa), len(wb))
    if n < SAME_BLURB_WORDS or wa[:n] != wb[:n]:
        return False
    ka, kb = headline_key(title_a), headline_key(title_b)
    if ka == kb:
        return True
    ha = [w for w in ka.split() if w not in MINOR_WORDS]
    hb = [w for w in kb.split() if w not in MINOR_WORDS]
    short, long = sorted((ha, hb), key=len)
    if not short:
        return False
    shared = sum(1 for w in short if any(w == x or _one_word(w, x) for x in long))
    return shared >= HEADLINE_SHARED * len(short)


class _Headlines:
    """Headlines already carried, their blurbs and their sources (None: added by URL),
    for asking whether a new article from another source tells one of them."""

    def __init__(self, carried: Iterable[tuple[str, str, int | None]]) -> None:
        told = set(carried)
        self.carried = [(k, summary, source) for k, summary, source in
                        {(headline_key(t), summary, source) for t, summary, source in told}
                        if _weight(k) >= HEADLINE_MIN_CHARS]
        # By the start of their blurbs, for `_one_text`.
        self.texts: dict[tuple[str, ...], list[tuple[str, str, int | None]]] = {}
        for title, summary, source in told:
            if start := _blurb_start(summary):
                self.texts.setdefault(start, []).append((title, summary, source))

    def has(self, a: Article) -> bool:
        if any(source != a.source_id and _one_text(a.title, a.summary, title, summary)
               for title, summary, source in self.texts.get(_blurb_start(a.summary), ())):
            return True
        key = headline_key(a.title)
        if _weight(key) < HEADLINE_MIN_CHARS:
            return False
        return any(source != a.source_id and _alike(key, k)
                   and _told_alike(key, a.summary, summary)
                   for k, summary, source in self.carried)


class _Pages:
    """The pages (link keys) and their anchors already carried or seen, and through
    which source (None: added by URL), for asking whether an article of another source
    is one of them: the same page and anchor, or either without an anchor (a post of
    scripting.com's day page is not its next post)."""

    def __init__(self, links: Iterable[tuple[str, int | None]]) -> None:
        self.anchors: dict[str, set[tuple[str, int | None]]] = {}
        self.add_all(links)

    def add_all(self, links: Iterable[tuple[str, int | None]]) -> None:
        for link, source in links:
            key = link_key(link)
            if key:
                self.anchors.setdefault(key, set()).add((urlsplit(link).fragment, source))

    def has(self, key: str, anchor: str, source_id: int) -> bool:
        return any(source != source_id and (not anchor or not theirs or anchor == theirs)
                   for theirs, source in self.anchors.get(key, ()) if key)


def _key(a: Article) -> str:
    # Articles stored before link keys were kept have none: work it out.
    return a.link_key or link_key(a.link)


def _page(a: Article) -> tuple[str, str]:
    """The article's page (link key) and anchor ("" for none)."""
    key = _key(a)
    return key, urlsplit(a.link).fragment if key else ""


def _recent_items(s: Session, mlist: MailingList,
                  w: Window) -> list[tuple[str, str, str, int | None]]:
    """(headline, blurb, link, source) of the items a new article could be a twin of:
    those of the list's editions cut off after the window's floor (the open one too)."""
    rows = s.execute(
        select(EditionItem.title, EditionItem.summary, EditionItem.link, Article.source_id)
        .join(Edition, Edition.id == EditionItem.edition_id)
        .outerjoin(Article, Article.id == EditionItem.article_id)
        .where(Edition.list_id == mlist.id, Edition.cutoff > w.floor,
               Edition.status != EditionStatus.CANCELLED))
    return [(title, summary, link, source) for title, summary, link, source in rows]


def _story(group: list[Article], fullness: dict[int, tuple[bool, int]],
           labels: dict[int, str]) -> Story:
    """The group's story, told by the article with a picture and the most text, then
    the one seen first."""
    teller = max(group, key=lambda a: (*fullness[a.id], -a.first_seen_at.timestamp(), -a.id))
    others = tuple(a for a in group if a is not teller)
    names: list[str] = []
    for a in (teller, *others):
        name = labels.get(a.source_id, "")
        if name and name not in names:
            names.append(name)
    sources = " · ".join(names)
    if len(sources) > SOURCES_MAX:
        sources = sources[: SOURCES_MAX - 1].rstrip(" ·") + "…"
    return Story(teller, others, sources)
