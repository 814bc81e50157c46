"""Adding an article by its URL: the page fetched, its article extracted and sanitized.

The page is untrusted. It is fetched with the feeds' limits (deadline, size cap,
redirects, http(s) only), extracted with trafilatura and passed through the same
allowlist as feed HTML; the item keeps only plain text (headline, blurb, caption) and
http(s) URLs, like every item. It becomes an item with no article row: no source is
made for its site, since every source is fetched as a feed.

An editor chooses the URL, so the fetch must not become a way into the server's own
network (a database port on 127.0.0.1, cloud metadata at 169.254.169.254, an intranet
page): it reaches public addresses only (`digest.gather.guard`, checked before
connecting and on the connected socket, at every redirect), unless `[web]
fetch_private_addresses` is on.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from sqlalchemy.orm import Session

from digest.curate.draft import (
    SUMMARY_MAX,
    TITLE_MAX,
    changing,
    draft_for,
    empty_draft,
    next_position,
)
from digest.editions import EditionRules, shorten
from digest.errors import InvalidInput
from digest.gather.clean import safe_url
from digest.gather.extract import extract_article
from digest.gather.fetch import fetch
from digest.gather.guard import Reach
from digest.gather.sources import FetchOptions
from digest.models import Edition, EditionItem
from subscribers.models import MailingList

_HTML_TYPES = ("", "text/html", "application/xhtml+xml")
# Some servers label their pages wrongly (text/plain, application/xml): a body that
# opens like an HTML document is one, whatever the header says.
_HTML_START = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html)[\s>]",
                         re.IGNORECASE | re.DOTALL)

@dataclass(frozen=True)
class FetchedPage:
    """An article page fetched and extracted for `add_page`: plain text and safe URLs."""

    url: str  # after redirects
    title: str
    text: str
    image_url: str
    image_caption: str
    site: str  # the host, without "www."


def fetch_page(http: requests.Session, url: str, opts: FetchOptions, *,
               private_addresses: bool = False) -> FetchedPage:
    """Fetch the article page at `url` with the feeds' limits and extract its article.

    Only from public addresses unless `private_addresses` (`[web] fetch_private_addresses`).

    Call it before opening a transaction: it may take up to `opts.timeout`. Raises
    InvalidInput for a URL that is not http(s) or a page without an article, and
    FetchError when the page cannot be fetched.
    """
    target = safe_url(url)
    if not target or len(target) > 2000:
        raise InvalidInput(f"{url.strip()[:100]!r} is not a web address; paste the "
                           "article's full http(s) URL")
    result = fetch(http, target, timeout=opts.timeout, max_bytes=opts.max_bytes,
                   max_redirects=opts.max_redirects, user_agent=opts.user_agent,
                   allow_files=False,
                   reach=Reach(anywhere=private_addresses,
                               setting="[web] fetch_private_addresses"))
    extracted = None
    if (result.content_type.split(";")[0].strip().lower() in _HTML_TYPES
            or _HTML_START.match(result.body[:4096])):
        extracted = extract_article(result.body, result.url)
    if extracted is None:
        raise InvalidInput(f"no article found at {result.url}; add the address of the "
                           "article's own page, not of a home page or a file")
    return FetchedPage(
        url=safe_url(result.url) or target, title=extracted.title, text=extracted.text,
        image_url=extracted.image_url, image_caption=extracted.image_caption,
        site=(urlsplit(result.url).hostname or "").removeprefix("www."),
    )


# -- into the edition ----------------------------------------------------------------------


def add_page(s: Session, edition: Edition, page: FetchedPage, *, now: dt.datetime,
             rules: EditionRules) -> EditionItem:
    """Append a page from `fetch_page` to the edition, as an item without an article.
    Its time is `now`: a page tells its publication date unreliably."""
    with changing(s, edition) as edition:  # the first item of an empty draft leads
        if any(i.link == page.url for i in edition.items):
            raise InvalidInput(f"{page.url} is already in this edition")
        item = EditionItem(
            article_id=None, position=next_position(edition),
            title=shorten(page.title or page.site or page.url, TITLE_MAX), link=page.url,
            summary=shorten(page.text, rules.summary_chars), image_url=page.image_url,
            image_caption=shorten(page.image_caption, SUMMARY_MAX),
            source_title=page.site[:300], published_at=now,
        )
        edition.items.append(item)
        s.flush()
        return item


def start_with_page(s: Session, mlist: MailingList, page: FetchedPage, *,
                    now: dt.datetime, rules: EditionRules) -> tuple[Edition, EditionItem]:
    """Add the page to the list's open edition; when there is none, to a new draft
    (of the new articles, or of just this page when there are none)."""
    edition = draft_for(s, mlist, now=now, rules=rules) or empty_draft(s, mlist, now, rules)
    item = add_page(s, edition, page, now=now, rules=rules)  # gives an empty draft its subject
    return edition, item
