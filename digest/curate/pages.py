"""Adding an article by its URL: the page fetched, its article extracted and sanitized.

The page is untrusted. It is fetched with the feeds' limits (deadline, size cap,
redirects, http(s) only), extracted with trafilatura and passed through the same
allowlist as feed HTML; the item keeps only plain text (headline, blurb, caption) and
http(s) URLs, like every item. It becomes an item with no article row: no source is
made for its site, since every source is fetched as a feed.

An editor chooses the URL, so the fetch must not become a way into the server's own
network (a database port on 127.0.0.1, cloud metadata at 169.254.169.254, an intranet
page): `page_session` refuses every address that is not public, checked both before
connecting (every address the name resolves to) and on the connected socket (so a name
that resolves differently the second time, or a redirect, is caught too), unless
`ALLOW_PRIVATE_ADDRESSES`. Through an HTTP proxy only the first check applies: the
proxy connects, so it is the proxy's own rules that hold there.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from sqlalchemy.orm import Session
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

from digest.curate.draft import (
    SUMMARY_MAX,
    TITLE_MAX,
    draft_for,
    editable,
    empty_draft,
    next_position,
)
from digest.editions import EditionRules, default_subject, shorten
from digest.errors import InvalidInput
from digest.gather.clean import safe_url
from digest.gather.extract import extract_article
from digest.gather.fetch import fetch
from digest.gather.sources import FetchOptions
from digest.models import Edition, EditionItem
from subscribers.models import MailingList

_HTML_TYPES = ("", "text/html", "application/xhtml+xml")
# Some servers label their pages wrongly (text/plain, application/xml): a body that
# opens like an HTML document is one, whatever the header says.
_HTML_START = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html)[\s>]",
                         re.IGNORECASE | re.DOTALL)

#: Whether "add by URL" may fetch from loopback, private, link-local and other addresses
#: that are not on the public internet. Off in production; tests that serve pages on
#: loopback turn it on (and so could a `page_session(allow_private=True)` caller).
ALLOW_PRIVATE_ADDRESSES = False


@dataclass(frozen=True)
class FetchedPage:
    """An article page fetched and extracted for `add_page`: plain text and safe URLs."""

    url: str  # after redirects
    title: str
    text: str
    image_url: str
    image_caption: str
    site: str  # the host, without "www."


def fetch_page(http: requests.Session, url: str, opts: FetchOptions) -> FetchedPage:
    """Fetch the article page at `url` with the feeds' limits and extract its article.

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
                   allow_files=False)
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


# -- refusing addresses that are not public ----------------------------------------------


class PrivateAddress(requests.ConnectionError):
    """The URL's host is not on the public internet, and fetching it is not allowed."""


def page_session(*, allow_private: bool | None = None) -> requests.Session:
    """A `requests.Session` for `fetch_page` that refuses non-public addresses (see the
    module docstring), unless `allow_private` (default: ALLOW_PRIVATE_ADDRESSES)."""
    http = requests.Session()
    allowed = ALLOW_PRIVATE_ADDRESSES if allow_private is None else allow_private
    if not allowed:
        for prefix in ("http://", "https://"):
            http.mount(prefix, _PublicOnlyAdapter())
    return http


def is_public(address: str) -> bool:
    """Whether an IP address is on the public internet: not loopback, private,
    link-local (cloud metadata), shared, reserved, multicast or unspecified."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])  # fe80::1%eth0
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _refusal(host: str, address: str) -> str:
    return (f"{host} is at {address}, which is not a public internet address; add by "
            "URL fetches only public web pages")


class _PublicOnlyAdapter(HTTPAdapter):
    """Checks every address the host resolves to before connecting, and connects
    through pools whose sockets check the address they reached."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _PublicHTTPPool,
                                                   "https": _PublicHTTPSPool}

    def send(self, request: requests.PreparedRequest, *args: Any,
             **kwargs: Any) -> requests.Response:
        host = urlsplit(request.url or "").hostname or ""
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            infos = []  # the connection fails with its own message (or the proxy resolves)
        for *_, sockaddr in infos:
            if not is_public(str(sockaddr[0])):
                raise PrivateAddress(_refusal(host, str(sockaddr[0])), request=request)
        return super().send(request, *args, **kwargs)


class _PublicConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        if self.proxy is None:  # through a proxy, the proxy is the peer
            peer = str(sock.getpeername()[0])
            if not is_public(peer):
                sock.close()
                raise NewConnectionError(self, _refusal(self.host, peer))
        return sock


class _PublicHTTPSConnection(_PublicConnection, HTTPSConnection):
    pass


class _PublicHTTPPool(HTTPConnectionPool):
    ConnectionCls = _PublicConnection


class _PublicHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _PublicHTTPSConnection


# -- into the edition ----------------------------------------------------------------------


def add_page(s: Session, edition: Edition, page: FetchedPage, *, now: dt.datetime,
             rules: EditionRules) -> EditionItem:
    """Append a page from `fetch_page` to the edition, as an item without an article.
    Its time is `now`: a page tells its publication date unreliably."""
    edition = editable(s, edition)
    if any(i.link == page.url for i in edition.items):
        raise InvalidInput(f"{page.url} is already in this edition")
    item = EditionItem(
        article_id=None, position=next_position(edition),
        title=shorten(page.title or page.site or page.url, TITLE_MAX), link=page.url,
        summary=shorten(page.text, rules.summary_chars), image_url=page.image_url,
        image_caption=shorten(page.image_caption, SUMMARY_MAX), source_title=page.site[:300],
        published_at=now,
    )
    edition.items.append(item)
    s.flush()
    return item


def start_with_page(s: Session, mlist: MailingList, page: FetchedPage, *,
                    now: dt.datetime, rules: EditionRules) -> tuple[Edition, EditionItem]:
    """Add the page to the list's open edition; when there is none, to a new draft
    (of the new articles, or of just this page when there are none)."""
    edition = draft_for(s, mlist, now=now, rules=rules) or empty_draft(s, mlist, now, rules)
    item = add_page(s, edition, page, now=now, rules=rules)
    if not edition.subject:
        edition.subject = default_subject(mlist, item.title)
    return edition, item
