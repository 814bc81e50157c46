"""Which of a feed's entries are articles its source already has, and the guid a new one
is stored under.

Three things tell an article: its guid, its link (by `links.link_key`, so tracking
parameters, http or https and a trailing slash make no difference; the anchor counts)
and its text (the hash of the feed's title and summary). Feeds get each of them wrong
somewhere, so no one of them decides alone; an entry is an article already known when:

- the guid is the same, unless the link and the text both changed: an edited post and a
  post whose link moved stay one article, but a feed that hands an old guid to a new
  post (another link, other words) has written a new article;
- the guids differ but the text is the same (a feed that changed how it writes guids);
  a different guid with the same link and other words is another post (Daring
  Fireball thanking this week's sponsor at the address it linked months before);
- without a guid on either side: the link is the same, else the text.

Two entries of one document are both there at once, so neither is an edit of the
other: they are one article only when their text is the same too (scripting.com lists
two posts of a day under one guid and link). The same holds for a stored article that
an entry of the document is, word for word: another entry cannot be its edit.

A new article whose guid a stored article of the source already has is stored under
`<guid>#reused-<12 hex digits>` (see `Article`), derived from its link and text, so the
unique index on (source, guid) holds and the next fetch, which compares guids by that
stem, recognises both. A new article without a guid whose link another guid-less one
has is stored under `#reused-<12 hex digits>`, for the same reason (the unique index on
the link of guid-less articles).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from digest.gather.clean import content_hash
from digest.gather.feeds import Entry
from digest.gather.links import link_key

GUID_CHARS = 2000  # Article.guid's length
_REUSED = "#reused-"
_REUSED_TAIL = re.compile(re.escape(_REUSED) + r"[0-9a-f]{12}\Z")
_STEM_CHARS = GUID_CHARS - len(_REUSED) - 12
NO_TEXT = content_hash("", "")


@dataclass(frozen=True)
class Identity:
    """What the dedup compares of an article, stored or in the feed."""

    guid: str
    link: str  # as stored
    keys: frozenset[str]  # the link's key and anchor; its page's canonical link's key
    text: str  # the text's hash; "" when there is none to tell the article by


def identity(guid: str, link: str, digest_hash: str, key: str = "") -> Identity:
    """An article's identity from its guid, its link and its text's hash; `key`: the
    stored `Article.link_key`, its page's canonical link's when that is not the link's.
    An article without text is told by guid and link; with neither, the hash of nothing
    is all it has, as it is its identity in the table."""
    keys = {_anchored_key(link)}
    if key and key != link_key(link):
        keys.add(key)
    keys.discard("")
    has_text = digest_hash != NO_TEXT or not (guid or keys)
    return Identity(guid[:GUID_CHARS], link[:GUID_CHARS], frozenset(keys),
                    digest_hash if has_text else "")


def new_entries(entries: Sequence[Entry], hashes: Sequence[str],
                stored: Sequence[Identity]) -> list[tuple[Entry, str, str]]:
    """The entries that are no stored article nor an earlier entry, in order, each with
    its text's hash and the guid to store it under."""
    mine = [identity(e.guid, e.link, h) for e, h in zip(entries, hashes, strict=True)]
    # (identity, present): present when an entry of this document is that article with
    # the same text, so no other entry can be an edit of it.
    pool = [(k, any(m.text and m.text == k.text and _same(m, k) for m in mine))
            for k in stored]
    new = []
    for entry, digest_hash, me in zip(entries, hashes, mine, strict=True):
        if any(_same(me, k) and (not present or me.text == k.text) for k, present in pool):
            continue
        guid = _reused(me) if any(_one_row(me, k) for k, _ in pool) else me.guid
        pool.append((replace(me, guid=guid), True))
        new.append((entry, digest_hash, guid))
    return new


def _anchored_key(link: str) -> str:
    """The link's key with its anchor: within a source, a page's anchors can be its
    posts (scripting.com's day pages), which a guid-less feed tells apart by no other
    link. (Across sources, the anchor is left out: `Article.link_key`.)"""
    key = link_key(link)
    anchor = urlsplit(link).fragment if key else ""
    return f"{key}#{anchor}" if anchor else key


def _same(a: Identity, b: Identity) -> bool:
    text = a.text == b.text if a.text and b.text else None
    link = any(_one_page(x, y) for x in a.keys for y in b.keys) if a.keys and b.keys else None
    if a.guid and b.guid:
        if _stem(a.guid) == _stem(b.guid):
            return not (link is False and text is False)
        return text is True
    return link is True or text is True


def _one_row(a: Identity, b: Identity) -> bool:
    """Would the table take `a` and `b` for one row (Article's unique identity)?"""
    if a.guid or b.guid:
        return a.guid == b.guid
    return bool(a.link) and a.link == b.link


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
