"""What a review of the web app found, kept found: add by URL cannot reach the server's
own network, feed links on the desk are only ever http(s), the preview is sandboxed,
forms cannot be of any size, refusals that name the visitor are not cached, and an
IPv6 client cannot escape a per-client limit by changing its address."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from typing import Any

import pytest
import requests
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from digest import curate
from digest.app import App
from digest.gather.guard import is_public
from digest.gather.sources import FetchOptions
from digest.login_throttle import ADDRESS_FREE
from digest.models import EditionItem
from digest.web.throttle import client_key
from subscribers.lists import get_list
from tests.conftest import Clock
from tests.loopback import feed_server
from tests.test_curate import _page, add_articles
from tests.web.conftest import PASSWORD, World, csrf, flat_routes, form_csrf
from tests.web.test_desk import items, post, start


@pytest.fixture
def news(app: App, clock: Clock, world: World) -> World:
    add_articles(app, clock, "news", 30)
    return world


# -- add by URL: public addresses only -------------------------------------------------


def test_add_by_url_refuses_the_servers_own_network(
        app: App, editor_client: TestClient, news: World) -> None:
    """An editor cannot make the server fetch a loopback port or cloud metadata."""
    start(editor_client)
    before = len(items(app))
    asked: list[str] = []

    def answer(path: str) -> bytes:
        asked.append(path)
        return _page()

    with feed_server(answer) as base:
        port = base.rsplit(":", 1)[1]
        for url in (f"{base}/story", f"http://localhost:{port}/story",
                    f"http://[::ffff:127.0.0.1]:{port}/story",
                    "http://169.254.169.254/latest/meta-data/"):
            refused = post(editor_client, "/desk/news/add-url", url=url)
            assert refused.status_code == 502, url
            assert "not a public internet address" in unescape(refused.text), url
            assert f"({url})" in unescape(refused.text), url  # as typed, not "Http:"
    assert asked == []  # the loopback server was never reached
    assert len(items(app)) == before


@pytest.mark.parametrize(("address", "public"), [
    ("93.184.215.14", True), ("2606:4700::6810:85e5", True),
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False),
    ("192.168.1.1", False), ("169.254.169.254", False), ("100.64.0.1", False),
    ("0.0.0.0", False), ("::1", False), ("fe80::1%eth0", False), ("fd00::1", False),
    ("::ffff:127.0.0.1", False), ("::ffff:10.0.0.1", False), ("224.0.0.1", False),
    # IPv6 addresses that lead to an IPv4 one: NAT64, 6to4, IPv4-compatible, Teredo.
    ("64:ff9b::7f00:1", False), ("64:ff9b::a9fe:a9fe", False), ("64:ff9b:1::a00:1", False),
    ("2002:7f00:1::1", False), ("2002:c0a8:101::1", False), ("::127.0.0.1", False),
    ("::10.0.0.1", False), ("2001:0:4136:e378:8000:63bf:80ff:fffe", False),
    ("64:ff9b::5db8:d70e", True), ("2002:5db8:d70e::1", True),
    ("not an address", False),
])
def test_which_addresses_are_public(address: str, public: bool) -> None:
    assert is_public(address) is public


def test_the_guard_can_be_lifted_for_one_session() -> None:
    with feed_server(lambda path: _page()) as base, requests.Session() as http:
        assert curate.fetch_page(http, f"{base}/story", FetchOptions(timeout=5.0),
                                 private_addresses=True).title


# -- the desk and its preview ------------------------------------------------------------


def test_the_desk_links_only_http_urls_whatever_put_an_item_in(
        app: App, editor_client: TestClient, news: World) -> None:
    """An item from elsewhere than a feed (the API, an old row) with a javascript: link
    or a data: picture shows as plain text on the desk."""
    start(editor_client)
    with app.sessions() as s:
        edition = curate.current_edition(s, get_list(s, "news"))
        assert edition is not None
        edition.items.append(EditionItem(
            position=len(edition.items), title="Sneaky", link="javascript:alert(1)",
            image_url="javascript:alert(2)", summary="", source_title="elsewhere",
            published_at=edition.created_at))
        s.commit()
    page = editor_client.get("/desk/news").text
    assert "Sneaky" in page
    assert "javascript:" not in page


def test_the_preview_runs_the_email_in_a_sandbox(
        editor_client: TestClient, news: World) -> None:
    start(editor_client)
    page = editor_client.get("/desk/news/preview").text
    frames = re.findall(r"<iframe[^>]*>", page)
    assert len(frames) == 2
    assert all('sandbox="allow-popups allow-popups-to-escape-sandbox"' in f for f in frames)
    email = editor_client.get("/desk/news/preview.html")
    assert "sandbox allow-popups" in email.headers["content-security-policy"]


# -- sizes, caching --------------------------------------------------------------------------


def test_a_huge_form_is_refused_before_it_is_read(
        client: TestClient, editor_client: TestClient, world: World) -> None:
    """FastAPI reads a form before the login and CSRF checks: the routers cap the body,
    for strangers and for editors alike."""
    huge = "intro=" + "x" * 2_000_000
    headers = {"content-type": "application/x-www-form-urlencoded"}
    for who, path in ((client, "/login"), (client, "/logout"),
                      (client, "/desk/news/intro"), (editor_client, "/desk/news/intro")):
        answer = who.post(path, content=huge, headers=headers, follow_redirects=False)
        # Starlette answers a declared length over the cap itself, in plain text.
        assert answer.status_code == 413, path


def test_a_large_but_honest_desk_form_still_goes_through(
        app: App, editor_client: TestClient, news: World) -> None:
    """The cap leaves room for the longest introduction in any script."""
    start(editor_client)
    intro = "가" * curate.INTRO_MAX
    answer = post(editor_client, "/desk/news/intro", subject="긴 소개", intro=intro)
    assert answer.status_code == 303, answer.text[:300]


def test_refusals_that_name_the_visitor_are_not_cached(
        client: TestClient, editor_client: TestClient, world: World) -> None:
    forged = editor_client.post("/desk/news/approve", data={"edition": "1"})
    assert forged.status_code == 403
    assert forged.headers["cache-control"] == "no-store"
    stranger = client.post("/desk/news/approve", data={"edition": "1"})
    assert stranger.status_code == 401
    assert stranger.headers["cache-control"] == "no-store"
    missing = client.get("/no-such-page")
    assert missing.status_code == 404 and "cache-control" not in missing.headers


@pytest.mark.parametrize("next_path", ["//evil.example/", "/\\evil.example/",
                                       "/\t/evil.example/", "https://evil.example/",
                                       "/desk\r\nSet-Cookie: x=1"])
def test_logging_in_never_leaves_the_site(
        client: TestClient, users: dict[str, str], next_path: str) -> None:
    token = form_csrf(client.get("/login").text)
    answer = client.post("/login", data={"email": users["editor"], "password": PASSWORD,
                                         "next": next_path, "csrf_token": token},
                         follow_redirects=False)
    location = answer.headers["location"]
    assert answer.status_code == 303 and location.startswith("/")
    assert not location.startswith(("//", "/\\", "/\t")) and "\n" not in location
    assert "x=1" not in answer.headers.get("set-cookie", "").split(";")[0]


# -- per-client limits and IPv6 ------------------------------------------------------------


def test_a_client_key_is_an_ipv4_address_or_an_ipv6_64() -> None:
    assert client_key("203.0.113.9") == "203.0.113.9"
    assert client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff::9") \
        == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:203.0.113.9") == "203.0.113.9"
    assert client_key("testclient") == "testclient"


@pytest.mark.slow  # 31 logins, each an argon2 verification
def test_bad_logins_from_one_ipv6_network_are_throttled_together(
        web: FastAPI, users: dict[str, str]) -> None:
    """30 wrong guesses (login_throttle.ADDRESS_FREE), each from a fresh address of one
    /64 and at another account: the next, from yet another address there, waits."""
    def guess(n: int) -> int:
        with TestClient(web, client=(f"2001:db8:1:2::{n:x}", 4000)) as c:
            token = form_csrf(c.get("/login").text)
            return c.post("/login", data={"email": f"nobody{n}@example.org",
                                          "password": "wrong password", "csrf_token": token},
                          follow_redirects=False).status_code

    assert [guess(n) for n in range(1, ADDRESS_FREE + 1)] == [400] * ADDRESS_FREE
    assert guess(99) == 429
    with TestClient(web, client=("2001:db8:1:3::1", 4000)) as other:
        token = form_csrf(other.get("/login").text)
        answer = other.post("/login", data={"email": "x@example.org", "password": "wrong",
                                            "csrf_token": token}, follow_redirects=False)
        assert answer.status_code == 400  # another network is not held back


def test_a_page_given_an_unusable_query_value_answers_with_a_page(
        admin_client: TestClient) -> None:
    answer = admin_client.get("/admin/subscribers?before=abc")
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("text/html")
    assert "before" in answer.text and "go back" in answer.text


# -- ids out of range ------------------------------------------------------------------

HUGE = "99999999999999999999999"  # beyond any INTEGER column (and a 64-bit int)


def _routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every page route, through the routers included in others."""
    return (route for route in flat_routes(routes) if isinstance(route, APIRoute))


@pytest.mark.parametrize("number", [HUGE, "0", "-1", "2147483648"])
def test_every_page_answers_an_id_out_of_range_with_400_or_404(
        web: FastAPI, admin_client: TestClient, world: World, number: str) -> None:
    """Each HTML route with a path parameter, every method, a number no row can have in
    each of them (the list name aside): a page saying so, never a 500."""
    token = csrf(admin_client)
    tried = []
    for route in _routes(web.routes):
        if not set(re.findall(r"\{(\w+)", route.path)) - {"list_name"}:
            continue
        url = re.sub(r"\{(\w+)(?::\w+)?\}",
                     lambda m: "news" if m.group(1) == "list_name" else number, route.path)
        for method in sorted(route.methods - {"HEAD"}):
            answer = admin_client.request(method, url, data={"csrf_token": token},
                                          follow_redirects=False)
            assert answer.status_code in (400, 404), (method, url, answer.status_code)
            tried.append(url)
    assert any("/admin/subscribers/" in url for url in tried) and len(tried) > 20
