"""fetch: against a real HTTP server on loopback (see conftest.py), no mocks.

These are about the fetch's limits, so every fetch here may reach this machine's
network (as with `[gather] fetch_private_addresses`); what it may reach is
tests/gather/test_reach.py's subject."""

from __future__ import annotations

import functools
import gzip
import socket
import time
import zlib
from pathlib import Path

import pytest
import requests

from digest.errors import FetchError
from digest.gather import fetch as fetching
from digest.gather.feeds import parse_feed
from digest.gather.guard import Reach

from .conftest import Handler, Loopback

FEEDS = Path(__file__).resolve().parent.parent / "data" / "feeds"
RSS = (b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Loop</title>'
       b"<item><title>First</title><link>https://loop.example/1</link></item></channel></rss>")
UA = "digest-test/1.0 (+https://news.example.org)"
MB = 1024 * 1024
fetch = functools.partial(fetching.fetch, reach=Reach(anywhere=True))


def rss(title: str, encoding: str | None) -> str:
    decl = f'<?xml version="1.0" encoding="{encoding}"?>' if encoding else ""
    return (f'{decl}<rss version="2.0"><channel><title>Enc</title><item><title>{title}</title>'
            "<link>https://loop.example/e</link></item></channel></rss>")


def test_conditional_get(server: Loopback, http: requests.Session) -> None:
    @server.route("/feed")
    def feed(h: Handler) -> None:
        if h.headers.get("If-None-Match") == '"v1"':
            h.send_response(304)
            h.send_header("ETag", '"v1"')
            h.end_headers()
            return
        h.reply(RSS, Content_Type="application/rss+xml; charset=utf-8", ETag='"v1"',
                Last_Modified="Wed, 25 Nov 2026 10:00:00 GMT")

    first = fetch(http, server.url("/feed"), user_agent=UA)
    assert (first.status, first.body, first.not_modified) == (200, RSS, False)
    assert first.content_type == "application/rss+xml; charset=utf-8"
    assert (first.etag, first.last_modified) == ('"v1"', "Wed, 25 Nov 2026 10:00:00 GMT")
    assert first.url == server.url("/feed")

    again = fetch(http, server.url("/feed"), etag=first.etag,
                  last_modified=first.last_modified, user_agent=UA)
    assert again.not_modified and again.status == 304 and again.body == b""
    # The server repeated only the ETag: the Last-Modified given is kept.
    assert (again.etag, again.last_modified) == ('"v1"', "Wed, 25 Nov 2026 10:00:00 GMT")

    plain, conditional = server.seen
    assert plain.headers["user-agent"] == UA
    assert "gzip" in plain.headers["accept-encoding"]
    assert "application/rss+xml" in plain.headers["accept"]
    assert "if-none-match" not in plain.headers
    assert conditional.headers["if-none-match"] == '"v1"'
    assert conditional.headers["if-modified-since"] == "Wed, 25 Nov 2026 10:00:00 GMT"


def redirect(h: Handler, status: int, location: str) -> None:
    h.send_response(status)
    h.send_header("Location", location)
    h.send_header("Content-Length", "0")
    h.end_headers()


def test_redirects_are_followed_to_the_final_url(server: Loopback,
                                                 http: requests.Session) -> None:
    server.route("/feed")(lambda h: h.reply(RSS, Content_Type="application/rss+xml"))
    server.route("/r3")(lambda h: redirect(h, 301, "/r2"))
    server.route("/r2")(lambda h: redirect(h, 302, server.url("/r1")))  # absolute
    server.route("/r1")(lambda h: redirect(h, 308, "feed"))  # relative to the path
    result = fetch(http, server.url("/r3"), max_redirects=3)
    assert result.url == server.url("/feed") and result.body == RSS
    assert [s.path for s in server.seen] == ["/r3", "/r2", "/r1", "/feed"]


def test_too_many_redirects(server: Loopback, http: requests.Session) -> None:
    for n in range(1, 8):
        server.route(f"/hop{n}")(lambda h, n=n: redirect(h, 302, f"/hop{n + 1}"))
    with pytest.raises(FetchError, match=r"more than 5 redirects \(\[gather\] max_redirects\)"):
        fetch(http, server.url("/hop1"), max_redirects=5)
    assert len(server.seen) == 6  # the first request and five redirects, no more


def test_redirect_loop(server: Loopback, http: requests.Session) -> None:
    server.route("/a")(lambda h: redirect(h, 302, "/b"))
    server.route("/b")(lambda h: redirect(h, 307, "/a"))
    with pytest.raises(FetchError, match="redirect loop"):
        fetch(http, server.url("/a"))
    assert len(server.seen) == 2


def test_redirect_to_a_local_file_is_refused(server: Loopback, http: requests.Session) -> None:
    server.route("/sneaky")(lambda h: redirect(h, 302, "file:///etc/passwd"))
    with pytest.raises(FetchError, match="not http"):
        fetch(http, server.url("/sneaky"), allow_files=True)


def test_slow_answer_hits_the_total_timeout(server: Loopback, http: requests.Session) -> None:
    @server.route("/sleepy")
    def sleepy(h: Handler) -> None:
        server.stopping.wait(5)  # answers after 5 s, or when the test ends
        h.reply(RSS)

    started = time.monotonic()
    with pytest.raises(FetchError, match=r"within 1 s \(\[gather\] timeout\)"):
        fetch(http, server.url("/sleepy"), timeout=1.0)
    assert time.monotonic() - started < 2.0


def test_trickling_body_hits_the_total_timeout(server: Loopback,
                                               http: requests.Session) -> None:
    # A byte every 50 ms never trips a per-read timeout; only a total deadline stops it.
    @server.route("/trickle")
    def trickle(h: Handler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "1000")
        h.end_headers()
        for _ in range(1000):
            if server.stopping.wait(0.05):
                return
            h.write_body(b"x")

    started = time.monotonic()
    with pytest.raises(FetchError, match="timeout"):
        fetch(http, server.url("/trickle"), timeout=1.0)
    assert time.monotonic() - started < 2.0
    assert server.done["/trickle"].wait(3)  # the server saw the client go
    assert server.sent["/trickle"] < 100


def test_huge_body_is_cut_at_max_bytes(server: Loopback, http: requests.Session) -> None:
    chunk = b"<!-- padding -->" * 4096  # 64 KiB, reused: 50 MB is never in memory

    @server.route("/huge")
    def huge(h: Handler) -> None:
        h.send_response(200)  # no Content-Length: the size is known only by reading
        h.send_header("Content-Type", "application/rss+xml")
        h.end_headers()
        for _ in range(50 * MB // len(chunk)):
            h.write_body(chunk)

    with pytest.raises(FetchError, match=r"larger than 10,000,000 bytes \(\[gather\] max_bytes\)"):
        fetch(http, server.url("/huge"), max_bytes=10_000_000)
    assert server.done["/huge"].wait(5)
    # What the kernel buffers took is all the server got rid of after the client left.
    assert server.sent["/huge"] < 30 * MB


def test_declared_length_over_the_limit_is_refused_before_reading(
        server: Loopback, http: requests.Session) -> None:
    server.route("/big")(lambda h: h.reply(b"x" * 2000))
    with pytest.raises(FetchError, match="larger than 1,000 bytes"):
        fetch(http, server.url("/big"), max_bytes=1000)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_response_is_decoded(server: Loopback, http: requests.Session,
                                        encoding: str) -> None:
    packed = gzip.compress(RSS) if encoding == "gzip" else zlib.compress(RSS)
    server.route("/packed")(lambda h: h.reply(packed, Content_Encoding=encoding,
                                              Content_Type="application/rss+xml"))
    result = fetch(http, server.url("/packed"))
    assert result.body == RSS
    assert parse_feed(result.body, result.url).entries[0].title == "First"


def test_gzip_bomb_is_stopped_by_the_decoded_size(server: Loopback,
                                                  http: requests.Session) -> None:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
    zeros = bytes(MB)
    bomb = b"".join(packer.compress(zeros) for _ in range(50)) + packer.flush()
    assert len(bomb) < 100_000  # 50 MB of zeros
    server.route("/bomb")(lambda h: h.reply(bomb, Content_Encoding="gzip"))
    with pytest.raises(FetchError, match="larger than 10,000,000 bytes"):
        fetch(http, server.url("/bomb"), max_bytes=10_000_000)


def test_corrupt_gzip(server: Loopback, http: requests.Session) -> None:
    server.route("/corrupt")(lambda h: h.reply(b"not gzip at all" * 10, Content_Encoding="gzip"))
    with pytest.raises(FetchError, match="corrupt compressed body"):
        fetch(http, server.url("/corrupt"))


@pytest.mark.parametrize(("status", "words"), [
    (404, "HTTP 404 Not Found; the feed is not there"),
    (410, "HTTP 410 Gone; the site says the feed is gone"),
    (500, "HTTP 500 Internal Server Error; the site has a problem"),
    (503, "HTTP 503 Service Unavailable"),
])
def test_http_errors(server: Loopback, http: requests.Session, status: int,
                     words: str) -> None:
    server.route("/err")(lambda h: h.send_error(status))
    url = server.url("/err")
    with pytest.raises(FetchError, match=words) as info:
        fetch(http, url)
    # The reason first, the URL after: a long URL does not push the reason out of sight.
    assert str(info.value).startswith(f"HTTP {status} ")
    assert str(info.value).endswith(f" ({url})")


def test_every_fetch_error_puts_the_reason_before_the_url(
        server: Loopback, http: requests.Session, tmp_path: Path) -> None:
    long_url = server.url("/loop?" + "x" * 150)
    server.route("/loop")(lambda h: redirect(h, 302, long_url))
    with pytest.raises(FetchError) as loop:
        fetch(http, long_url)
    assert str(loop.value).startswith("redirect loop at ")
    assert str(loop.value).endswith(f"({long_url})")
    with pytest.raises(FetchError) as scheme:
        fetch(http, "ftp://example.com/feed")
    assert str(scheme.value) == ("cannot fetch ftp: URLs; give the feed's http(s) address "
                                 "(ftp://example.com/feed)")
    missing = tmp_path / "missing.xml"
    with pytest.raises(FetchError) as unreadable:
        fetch(http, str(missing), allow_files=True)
    assert str(unreadable.value) == (
        f"cannot read the file: No such file or directory; check the path ({missing})")


def test_a_cut_transfer_says_truncated(server: Loopback, http: requests.Session) -> None:
    whole = (FEEDS / "nnw_DaringFireball.atom").read_bytes()

    @server.route("/short")
    def short(h: Handler) -> None:  # announces the whole feed, sends half, hangs up
        h.send_response(200)
        h.send_header("Content-Type", "application/atom+xml")
        h.send_header("Content-Length", str(len(whole)))
        h.end_headers()
        h.write_body(whole[:10_000])

    @server.route("/chunks")
    def chunks(h: Handler) -> None:  # one chunk, then the connection closes: no 0 chunk
        h.send_response(200)
        h.send_header("Content-Type", "application/atom+xml")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        h.write_body(b"%x\r\n" % 10_000 + whole[:10_000] + b"\r\n")

    with pytest.raises(FetchError) as announced:
        fetch(http, server.url("/short"))
    assert str(announced.value) == (
        f"truncated: the server sent 10,000 bytes of the {len(whole):,} it announced; it "
        f"will be tried again at the next fetch ({server.url('/short')})")
    with pytest.raises(FetchError) as chunked:
        fetch(http, server.url("/chunks"))
    assert str(chunked.value) == (
        "truncated: the server sent 10,000 bytes, and never sent the end of its chunked "
        f"answer; it will be tried again at the next fetch ({server.url('/chunks')})")


def test_connection_refused(http: requests.Session) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and is closed now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(FetchError, match=r"could not connect \(Connection refused\)"):
        fetch(http, f"http://127.0.0.1:{port}/feed", timeout=2.0)


@pytest.mark.parametrize(("declared", "body", "title"), [
    # The header says UTF-8 but the bytes are Latin-1 (no XML declaration).
    ("text/xml; charset=utf-8", rss("Café über", None).encode("latin-1"), "Café über"),
    # The header says UTF-8, the bytes and the declaration are windows-1251.
    ("application/rss+xml; charset=utf-8",
     rss("Привет, мир", "windows-1251").encode("cp1251"), "Привет, мир"),
    # The header says ISO-8859-1 but the bytes are UTF-8.
    ("application/xml; charset=iso-8859-1", rss("Café Привет", "utf-8").encode(),
     "Café Привет"),
])
def test_wrong_declared_encoding_end_to_end(server: Loopback, http: requests.Session,
                                            declared: str, body: bytes, title: str) -> None:
    server.route("/enc")(lambda h: h.reply(body, Content_Type=declared))
    result = fetch(http, server.url("/enc"))
    feed = parse_feed(result.body, result.url, result.content_type)
    assert feed.entries[0].title == title


def test_malformed_xml_end_to_end(server: Loopback, http: requests.Session) -> None:
    broken = b"<?xml version='1.0'?><rss version='2.0'><channel><title>x</title><item><title><![CD"
    server.route("/broken")(lambda h: h.reply(broken, Content_Type="application/rss+xml"))
    result = fetch(http, server.url("/broken"))
    with pytest.raises(FetchError, match=r"^truncated: the feed ends in the middle"):
        parse_feed(result.body, result.url, result.content_type)


def test_local_files_only_when_allowed(http: requests.Session, tmp_path: Path) -> None:
    path = FEEDS / "fj_a10.xml"
    for url in (path.as_uri(), str(path)):
        with pytest.raises(FetchError, match="only http and https"):
            fetch(http, url)
        result = fetch(http, url, allow_files=True)
        assert result.body == path.read_bytes() and result.url == path.as_uri()
        assert len(parse_feed(result.body, result.url).entries) == 5
    with pytest.raises(FetchError, match=r"cannot read the file: No such file.*missing\.xml"):
        fetch(http, str(tmp_path / "missing.xml"), allow_files=True)
    with pytest.raises(FetchError, match="larger than 100 bytes"):
        fetch(http, str(path), allow_files=True, max_bytes=100)


@pytest.mark.parametrize("url", ["ftp://example.com/feed", "javascript:alert(1)",
                                 "gopher://example.com/"])
def test_other_schemes_are_refused(http: requests.Session, url: str) -> None:
    with pytest.raises(FetchError, match="give the feed's http"):
        fetch(http, url, allow_files=True)
