"""Fetch a feed over HTTP with the limits a public fetcher needs.

Conditional GET (ETag, Last-Modified), a total deadline, a size cap on the decoded body
(so a gzip bomb stops too), a bounded number of redirects, and http(s) only: local files
are read only when the caller allows it (the CLI does; the web app must not, or anyone
who can add a source could read the server's files), and this machine's network only
where the fetch's `Reach` allows (`digest.gather.guard`). Every failure is a FetchError
that says what happened and which setting or step helps first, and the URL last.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from dataclasses import dataclass
from http.client import IncompleteRead
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import requests
import urllib3.exceptions

from digest.errors import FetchError
from digest.gather.guard import PUBLIC_ONLY, Reach, guard, reaching, refusal_in

ACCEPT = ("application/rss+xml, application/atom+xml, application/feed+json, "
          "application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5")
_CHUNK = 64 * 1024
_HINTS = {
    401: "the site wants a login, which digest does not send",
    403: "the site refuses digest; it may block unknown clients",
    404: "the feed is not there; check the URL or look for its new address",
    410: "the site says the feed is gone for good; remove the source",
    429: "the site asks for fewer requests; it will be tried again at the next fetch",
}


class Unreachable(FetchError):
    """The network did not answer: no such host, the connection refused, no answer in
    time. Raised where a fetch first connects, so a later fetch may well succeed
    (`digest sources add` adds such a source unchecked); every other failure is a
    plain FetchError."""


@dataclass(frozen=True)
class FetchResult:
    url: str            # final URL after redirects
    status: int         # 2xx (normally 200) or 304
    body: bytes         # b"" on 304
    content_type: str   # the Content-Type header ("" if none)
    etag: str           # "" if none
    last_modified: str  # "" if none

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def fetch(http: requests.Session, url: str, *, etag: str = "", last_modified: str = "",
          timeout: float = 20.0, max_bytes: int = 10_000_000, max_redirects: int = 5,
          user_agent: str = "digest", allow_files: bool = False,
          reach: Reach = PUBLIC_ONLY) -> FetchResult:
    """GET `url` conditionally; `timeout` bounds the whole fetch, redirects and body included.

    Every hop connects only where `reach` allows (public addresses, by default); the
    guard is armed on `http` if it is not yet. On 304 the result keeps the validators
    given when the server does not repeat them.
    """
    url = url.strip()
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        headers = {"User-Agent": user_agent, "Accept": ACCEPT, "Accept-Encoding": "gzip, deflate"}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        limits = _Limits(time.monotonic() + timeout, timeout, max_bytes)
        guard(http)
        with reaching(reach):
            return _fetch_http(http, url, headers, limits, max_redirects,
                               (etag, last_modified))
    # A one-letter "scheme" is a Windows drive (C:\feeds\x.xml): a path.
    if scheme in ("", "file") or len(scheme) == 1:
        if not allow_files:
            raise _failed(url, "only http and https URLs can be fetched here; local feed "
                               "files can be added from the command line only")
        return _read_file(url, max_bytes)
    raise _failed(url, f"cannot fetch {scheme}: URLs; give the feed's http(s) address")


@dataclass(frozen=True)
class _Limits:
    deadline: float  # time.monotonic() value
    timeout: float
    max_bytes: int

    def remaining(self, url: str) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self.timed_out(url)
        return left

    def timed_out(self, url: str) -> FetchError:
        return _failed(url, f"no complete answer within {self.timeout:g} s ([gather] "
                            "timeout); the site is slow or down: it will be tried again, "
                            "or raise the setting")

    def too_big(self, url: str) -> FetchError:
        return _failed(url, f"the response is larger than {self.max_bytes:,} bytes "
                            "([gather] max_bytes); raise the setting if this feed is "
                            "really that large")


def _fetch_http(http: requests.Session, url: str, headers: dict[str, str], limits: _Limits,
                max_redirects: int, validators: tuple[str, str]) -> FetchResult:
    # Redirects are followed here rather than by requests: the count is ours (the
    # session's max_redirects is shared state), each hop gets only the time left,
    # and a loop is named as one.
    current, seen = url, {url}
    for _ in range(max_redirects + 1):
        resp = _get(http, current, headers, limits)
        if not resp.is_redirect:
            with resp:
                return _finish(resp, current, limits, validators)
        resp.close()
        target = urljoin(current, resp.headers["Location"])
        if urlsplit(target).scheme.lower() not in ("http", "https"):
            raise _failed(url, f"redirected to {target}, which is not http(s); check the URL")
        if target in seen:
            raise _failed(url, f"redirect loop at {target}; check the URL in a browser")
        seen.add(target)
        current = target
    raise _failed(url, f"more than {max_redirects} redirects ([gather] max_redirects); "
                       f"the last went to {current}: add that URL instead")


def _get(http: requests.Session, url: str, headers: dict[str, str],
         limits: _Limits) -> requests.Response:
    left = limits.remaining(url)
    try:
        # (connect, read) both capped by the time left; the body has its own watchdog.
        return http.get(url, headers=headers, stream=True, allow_redirects=False,
                        timeout=(left, left))
    except requests.Timeout:
        raise Unreachable(*limits.timed_out(url).args) from None
    except requests.exceptions.SSLError as exc:
        raise _failed(url, f"TLS failed ({_reason(exc)}); the site's certificate may be "
                           "invalid or expired") from None
    except requests.ConnectionError as exc:
        if refused := refusal_in(exc):
            raise _failed(url, f"refused: {refused}") from None
        raise Unreachable(*_failed(url, f"could not connect ({_reason(exc)}); check the URL "
                                        "and that the site is up").args) from None
    except requests.RequestException as exc:
        raise _failed(url, f"request failed ({_reason(exc)}); check the URL") from None


def _finish(resp: requests.Response, url: str, limits: _Limits,
            validators: tuple[str, str]) -> FetchResult:
    content_type = resp.headers.get("Content-Type", "")
    etag = resp.headers.get("ETag", "")
    last_modified = resp.headers.get("Last-Modified", "")
    if resp.status_code == 304:
        return FetchResult(url, 304, b"", content_type, etag or validators[0],
                           last_modified or validators[1])
    if not 200 <= resp.status_code < 300:
        hint = _HINTS.get(resp.status_code) or (
            "the site has a problem; it will be tried again at the next fetch"
            if resp.status_code >= 500 else "check the URL")
        status = f"HTTP {resp.status_code} {resp.reason or ''}".rstrip()
        raise _failed(url, f"{status}; {hint}")
    body = _read_body(resp, url, limits)
    return FetchResult(url, resp.status_code, body, content_type, etag, last_modified)


def _read_body(resp: requests.Response, url: str, limits: _Limits) -> bytes:
    """The decoded body, stopped as soon as it passes the size cap or the deadline."""
    length = resp.headers.get("Content-Length", "")
    if (length.isdigit() and int(length) > limits.max_bytes
            and not resp.headers.get("Content-Encoding")):
        raise limits.too_big(url)  # said so up front: do not start reading
    raw = resp.raw
    # iter_content (and urllib3's read(amt)) waits for a full chunk, so a server that
    # trickles a byte a second would hold us far past the deadline. read1 returns what
    # has arrived; the watchdog shuts the socket if even that wait outlasts the deadline.
    watchdog = threading.Timer(limits.remaining(url), _cut, (raw,))
    watchdog.daemon = True
    watchdog.start()
    body = bytearray()
    try:
        while chunk := raw.read1(_CHUNK, decode_content=True):
            body += chunk  # urllib3 >= 2.6 decodes at most _CHUNK per call: bombs stop too
            if len(body) > limits.max_bytes:
                raise limits.too_big(url)
            limits.remaining(url)
    except urllib3.exceptions.DecodeError as exc:
        raise _failed(url, f"the server sent a corrupt compressed body ({_reason(exc)}); "
                           "it will be tried again at the next fetch") from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        if time.monotonic() >= limits.deadline:
            raise limits.timed_out(url) from None
        if _incomplete(exc):
            raise _failed(url, _truncation(resp)) from None
        raise _failed(url, f"the connection broke while reading ({_reason(exc)}); it "
                           "will be tried again at the next fetch") from None
    finally:
        watchdog.cancel()
    if time.monotonic() >= limits.deadline:
        raise limits.timed_out(url)  # the watchdog cut the body short
    return bytes(body)


def _incomplete(exc: BaseException) -> bool:
    """Whether urllib3 gave up because the body ended before its announced end (a
    Content-Length not reached, a chunked answer without its last chunk)."""
    seen: list[object] = [exc]
    while seen:
        found = seen.pop()
        if isinstance(found, (IncompleteRead, urllib3.exceptions.IncompleteRead)):
            return True
        if isinstance(found, BaseException):
            seen += [*found.args, found.__cause__, found.__context__]
    return False


def _truncation(resp: requests.Response) -> str:
    """What a body cut short says: how much of it came, of how much when announced."""
    sent = resp.raw.tell()  # bytes as sent (compressed, when they were), as is the length
    length = resp.headers.get("Content-Length", "")
    whole = f" of the {int(length):,} it announced" if length.isdigit() else (
        ", and never sent the end of its chunked answer")
    return (f"truncated: the server sent {sent:,} bytes{whole}; it will be tried again at "
            "the next fetch")


def _cut(raw: urllib3.HTTPResponse) -> None:
    """Unblock a read that outlived the deadline (runs in the watchdog's thread)."""
    # Too late is fine: the body was complete and the connection went back to the pool.
    with contextlib.suppress(ValueError, RuntimeError, OSError):
        raw.shutdown()


def _read_file(url: str, max_bytes: int) -> FetchResult:
    parts = urlsplit(url)
    path = Path(unquote(parts.path) if parts.scheme.lower() == "file" else url).expanduser()
    try:
        with path.open("rb") as f:
            body = f.read(max_bytes + 1)
    except OSError as exc:
        raise _failed(str(path), f"cannot read the file: {exc.strerror or exc}; check the "
                                 "path") from None
    if len(body) > max_bytes:
        raise _failed(str(path), f"the file is larger than {max_bytes:,} bytes ([gather] "
                                 "max_bytes); raise the setting if this feed is really "
                                 "that large")
    return FetchResult(path.resolve().as_uri(), 200, body, "", "", "")


def _failed(url: str, what: str) -> FetchError:
    """A fetch failure: what happened and what to do first, then the URL (it may be long)."""
    return FetchError(f"{what} ({url})")


def _reason(exc: BaseException) -> str:
    """The useful end of requests' nested error text ("[Errno 111] Connection refused")."""
    text = str(exc)
    found: list[str] = re.findall(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if found:
        return found[-1].strip()
    return text[:200] or type(exc).__name__
