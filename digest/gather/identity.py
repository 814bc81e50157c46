"""Which of a feed's entries are articles its source already has, which of those were
edited, and the guid a new one is stored under.

Five things tell an article: its guid, its link (by `links.link_key`, so tracking
parameters, http or https and a trailing slash make no difference; the anchor counts),
its headline and its blurb (the feed's title and summary; together, hashed, its text),
and the date the feed gives it. Feeds get each of them wrong somewhere, so no one of
them decides alone; an entry can be an article already known when:

- the guid is the same, and the headline is alike, or the blurb is alike, or the link
  is the same: an edited post (new words), a post whose link moved, and a post whose
  headline and slug an editor fixed at once ("Minister resigns over expenses" at
  /minister-resigns, then "... scandal, says sorry" at /minister-resigns-over-...)
  stay one article, whatever date the feed gives them now (a CMS often bumps the date
  of an edited post). Only when each of the three that both sides have differs has
  the feed handed an old guid to a new post; with none of them on both sides, the guid
  is all there is, and it holds. "Alike" (`_alike`): the same after case, punctuation
  and spacing are set aside, or one the start of the other, or difflib's ratio at
  least `ALIKE_RATIO` (a long text sharing half its words first, a quicker test);
- the guids differ but the text is the same and the link is not another one (the
  same, or missing on a side): a feed that changed how it writes guids. A new guid
  and a new link are a new post whatever the words: a podcast's "The Daily Update",
  "Weather" or "Today's crossword" says the same every day. A different guid with the
  same link and other words is another post too (Daring Fireball thanking this week's
  sponsor at the address it linked months before);
- without a guid on either side: the link is the same, else the text.

Each stored article is at most one entry of a document, and each entry at most one
article: both are there at once, so no two entries are edits of one article (a feed
that reuses one guid and link for two posts, as scripting.com does for two posts of a
minute, edits one and adds the other in one fetch). The pairs are taken best first:
the same text, then the same guid, headline, link and date, date, link, then the
nearer date, then the feed's order. An entry left over is a new article, unless it
repeats another entry of the document word for word (a feed that lists a post twice).
A paired entry whose text or link changed is an edit
(`Edit`): the stored article takes its words, and keeps its guid, its first-seen time
and its date, so an article that went out is not news again.

A new article whose guid a stored article of the source already has is stored under
`<guid>#reused-<12 hex digits>` (see `Article`), derived from its link and text, so the
unique index on (source, guid) holds and the next fetch, which compares guids by that
stem, recognises both. A new article without a guid whose link another guid-less one
has is stored under `#reused-<12 hex digits>`, for the same reason (the unique index on
the link of guid-less articles). An edit that would give a guid-less article the link
(or, without links, the text) another one has keeps its old link and hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from difflib import SequenceMatcher
from functools import lru_cache
from urllib.parse import urlsplit

from digest.gather.clean import content_hash
from digest.gather.feeds import Entry
from digest.gather.links import link_key

GUID_CHARS = 2000  # Article.guid's length
_REUSED = "#reused-"
_REUSED_TAIL = re.compile(re.escape(_REUSED) + r"[0-9a-f]{12}\Z")
_STEM_CHARS = GUID_CHARS - len(_REUSED) - 12
NO_TEXT = content_hash("", "")
_FAR = float("inf")  # how far apart two dates are when one is unknown
#: How alike (difflib's ratio, 0..1) two headlines or blurbs under one guid must be to
#: tell one post: "Ferry bakc in service" and "Ferry back in service" are (0.95).
ALIKE_RATIO = 0.8
#: How much of a blurb is compared (after `_words`): enough to tell two posts apart,
#: and a stored full-text article's summary is its whole page.
BLURB_CHARS = 600
#: Texts longer than this are compared by their words before letter by letter (difflib
#: takes milliseconds for two blurbs; a feed that gives every post one guid has each
#: entry compared with each stored post).
_WORDS_FIRST = 60


@dataclass(frozen=True)
class Identity:
    """What the dedup compares of an article, stored or in the feed."""

    guid: str
    link: str  # as stored
    keys: frozenset[str]  # the link's key and anchor; its page's canonical link's key
    text: str  # the text's hash; "" when there is none to tell the article by
    title: str = ""  # the headline as compared (`_words`); "" without one
    blurb: str = ""  # the blurb's start as compared (`_words`); "" without one
    published: dt.datetime | None = None  # the feed's date; None when it gave none
    row: int = 0  # the stored article's id; 0 for an entry


@dataclass(frozen=True)
class Edit:
    """A stored article (`row`) that an entry of the feed is, with other words or
    another link. `moves`: its link and hash may become the entry's (false when another
    guid-less article of the source has them)."""

    entry: Entry
    digest_hash: str
    row: int
    moves: bool


@dataclass(frozen=True)
class Matches:
    """What a feed's entries are: new articles (entry, its text's hash, the guid to
    store it under), in the feed's order, and edits of stored ones."""

    new: list[tuple[Entry, str, str]]
    edits: list[Edit]


def identity(guid: str, link: str, digest_hash: str, key: str = "", *, title: str = "",
             summary: str = "", published: dt.datetime | None = None,
             row: int = 0) -> Identity:
    """An article's identity from its guid, its link and its text's hash; `key`: the
    stored `Article.link_key`, its page's canonical link's when that is not the link's.
    An article without text is told by guid and link; with neither, the hash of nothing
    is all it has, as it is its identity in the table. `title` and `summary` tell
    whether a post under an old guid is that post; they and `published` (None when
    undated) tell apart entries that could each be one stored article (`row`)."""
    keys = {_anchored_key(link)}
    if key and key != link_key(link):
        keys.add(key)
    keys.discard("")
    has_text = digest_hash != NO_TEXT or not (guid or keys)
    return Identity(guid[:GUID_CHARS], link[:GUID_CHARS], frozenset(keys),
                    digest_hash if has_text else "", _words(title),
                    _words(summary[:BLURB_CHARS * 2])[:BLURB_CHARS], published, row)


def match_entries(entries: Sequence[Entry], hashes: Sequence[str],
                  stored: Sequence[Identity]) -> Matches:
    """Pair the entries with the stored articles they are (each with at most one, best
    match first), and say which of the others are new and under which guid."""
    mine = [identity(e.guid, e.link, h, title=e.title, summary=e.summary,
                     published=e.published)
            for e, h in zip(entries, hashes, strict=True)]
    paired = _pair(mine, stored)
    pool = list(stored)  # as the table will hold them, for `_one_row`
    edits = []
    for i, j in sorted(paired.items()):
        me, k = mine[i], stored[j]
        if me.text == k.text and me.keys <= k.keys:
            continue  # the article as stored
        moved = replace(k, link=me.link, keys=me.keys, text=me.text)
        moves = not any(_one_row(moved, other) for n, other in enumerate(pool) if n != j)
        if moves:
            pool[j] = moved
        edits.append(Edit(entries[i], hashes[i], k.row, moves))
    new = []
    for i, (entry, digest_hash, me) in enumerate(zip(entries, hashes, mine, strict=True)):
        if i in paired or any(me.text and other.text == me.text and _same(me, other)
                              for n, other in enumerate(mine) if n < i or n in paired):
            continue
        guid = _reused(me) if any(_one_row(me, k) for k in pool) else me.guid
        pool.append(replace(me, guid=guid))
        new.append((entry, digest_hash, guid))
    return Matches(new, edits)


def _pair(mine: Sequence[Identity], stored: Sequence[Identity]) -> dict[int, int]:
    """Entry index -> stored index, each side used once, the likest pairs first."""
    candidates = sorted(
        ((_likeness(me, k), i, j) for i, me in enumerate(mine)
         for j, k in enumerate(stored) if _same(me, k)),
        key=lambda c: (c[0], -c[1], -c[2]), reverse=True)
    paired: dict[int, int] = {}
    taken: set[int] = set()
    for _score, i, j in candidates:
        if i not in paired and j not in taken:
            paired[i] = j
            taken.add(j)
    return paired


def _likeness(a: Identity, b: Identity) -> tuple[float, ...]:
    """How alike an entry and a stored article are, compared as a tuple: the same text,
    guid, headline, link and date, date, link; then the nearer date."""
    text = bool(a.text) and a.text == b.text
    guid = bool(a.guid) and _stem(a.guid) == _stem(b.guid)
    title = bool(a.title) and a.title == b.title
    date = a.published is not None and a.published == b.published
    link = _linked(a, b) is True
    far = (abs((a.published - b.published).total_seconds())
           if a.published is not None and b.published is not None else _FAR)
    return (text, guid, title, link and date, date, link, -far)


def _anchored_key(link: str) -> str:
    """The link's key with its anchor: within a source, a page's anchors can be its
    posts (scripting.com's day pages), which a guid-less feed tells apart by no other
    link. (Across sources, the anchor is left out: `Article.link_key`.)"""
    key = link_key(link)
    anchor = urlsplit(link).fragment if key else ""
    return f"{key}#{anchor}" if anchor else key


def _same(a: Identity, b: Identity) -> bool:
    """Could `a` and `b` be one post? (Which one of several it is, `_pair` decides.)"""
    text = a.text == b.text if a.text and b.text else None
    link = _linked(a, b)
    if a.guid and b.guid:
        if _stem(a.guid) == _stem(b.guid):
            if link is True:
                return True
            told = [link, _alike(a.title, b.title)]
            if True not in told:  # the blurbs last: the longest to compare
                told.append(_alike(a.blurb, b.blurb))
            return True in told or False not in told
        return text is True and link is not False
    return link is True or text is True


def _alike(a: str, b: str) -> bool | None:
    """Do two headlines (or blurbs), as `_words` gives them, say one post's? None when
    one is empty. The same, one the start of the other (a headline a word longer, a
    blurb a sentence longer), or alike letter by letter (a typo fixed)."""
    if not a or not b:
        return None
    short, long = sorted((a, b), key=len)
    if long.startswith(short):
        return True
    if 2 * len(short) < ALIKE_RATIO * (len(short) + len(long)):
        return False  # difflib's real_quick_ratio, before it indexes `long`
    if len(short) > _WORDS_FIRST and not _share_words(a, b):
        return False
    m = SequenceMatcher(None, a, b, autojunk=False)
    return m.quick_ratio() >= ALIKE_RATIO and m.ratio() >= ALIKE_RATIO


def _share_words(a: str, b: str) -> bool:
    """Do two texts share half their words (counted with repeats)? Texts letter by
    letter alike do; another story's seldom does, and this is quick to tell."""
    wa, wb = _bag(a), _bag(b)
    return 2 * sum((wa & wb).values()) >= (wa.total() + wb.total()) / 2


@lru_cache(maxsize=1024)  # a text is compared with each of a fetch's candidates
def _bag(text: str) -> Counter[str]:
    return Counter(text.split())


def _words(text: str) -> str:
    """Text as compared: Unicode NFKC, casefolded, punctuation and symbols as spaces,
    whitespace collapsed ("‘Ferry’ back — today" → "ferry back today")."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    kept = "".join(c if unicodedata.category(c)[0] in "LNM" else " " for c in folded)
    return " ".join(kept.split())


def _linked(a: Identity, b: Identity) -> bool | None:
    """Do they link to one page? None when one has no link."""
    return any(_one_page(x, y) for x in a.keys for y in b.keys) if a.keys and b.keys else None


def _one_row(a: Identity, b: Identity) -> bool:
    """Would the table take `a` and `b` for one row (Article's unique identity)?"""
    if a.guid or b.guid:
        return a.guid == b.guid
    if a.link or b.link:
        return a.link == b.link
    return a.text == b.text


def _one_page(a: str, b: str) -> bool:
    """Two keys of one page: the same, or one without an anchor (a feed that adds one
    to every link, Macworld's "#tk.rss_all", still links to its stored articles)."""
    page_a, _, anchor_a = a.partition("#")
    page_b, _, anchor_b = b.partition("#")
    return page_a == page_b and (anchor_a == anchor_b or not anchor_a or not anchor_b)


def _stem(guid: str) -> str:
    """The feed's guid of an article stored under a reused one's name; cut as that is."""
    return _REUSED_TAIL.sub("", guid)[:_STEM_CHARS]


def _reused(me: Identity) -> str:
    tell = hashlib.sha256("\n".join([*sorted(me.keys), me.text]).encode()).hexdigest()
    return f"{me.guid[:_STEM_CHARS]}{_REUSED}{tell[:12]}"
