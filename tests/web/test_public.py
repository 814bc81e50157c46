"""The public pages: unsubscribe (page and RFC 8058 one-click POST), confirm, health,
and the headers every page carries."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests
from fastapi.testclient import TestClient
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select

from digest.app import App
from digest.web import create_app
from subscribers.lists import get_list
from subscribers.members import remove_member
from subscribers.models import Suppression
from tests.conftest import Clock
from tests.web.conftest import ALICE, BOB, World
from tests.web.test_subscribe import subscribe

ONE_CLICK = {"List-Unsubscribe": "One-Click"}
# What RFC 8058 senders put in front of the POST: form encoding, no cookies, their agent.
PROVIDER_HEADERS = {
    "Content-Type": "application/x-www-form-urlencoded",
    "User-Agent": "Mozilla/5.0 (compatible; one-click-unsubscribe/1.0)",
}


def unsubscribe_url(world: World, email: str, list_name: str) -> str:
    """The path the sender puts in List-Unsubscribe: {public_url}/unsubscribe/{token}."""
    return "/unsubscribe/" + world.token("unsubscribe", email, list_name)


def tampered(token: str) -> str:
    """`token` with one character of its payload changed."""
    i = 3
    return token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1:]


def assert_refused(r: Any, *leaks: str, heading: str = "This link does not work") -> None:
    """A 400 page that says the link does not work, and nothing about its insides."""
    assert r.status_code == 400
    assert heading in r.text
    for leak in ("Traceback", "BadSignature", "itsdangerous", *leaks):
        assert leak not in r.text


# -- unsubscribe: the page ----------------------------------------------------------------


def test_page_shows_who_and_which_list_and_changes_nothing(
        client: TestClient, world: World) -> None:
    before = world.statuses()
    for _ in range(3):  # a scanner, a preview, the reader
        r = client.get(unsubscribe_url(world, ALICE, "news"))
        assert r.status_code == 200
    assert world.statuses() == before
    body = r.text
    assert "a***@example.org" in body and ALICE not in body
    assert "Morning News" in body
    assert '<form method="post">' in body
    assert '<input type="hidden" name="List-Unsubscribe" value="One-Click">' in body
    assert '<input type="hidden" name="scope" value="all">' in body
    assert '<html lang="en">' in body
    assert r.headers["Cache-Control"] == "no-store"


def test_page_marks_the_list_title_with_its_language(client: TestClient, world: World) -> None:
    body = client.get(unsubscribe_url(world, ALICE, "sport")).text
    assert '<strong lang="ko" dir="auto">스포츠 소식</strong>' in body


def test_page_escapes_what_it_shows(client: TestClient, app: App, world: World) -> None:
    with app.sessions() as s:
        get_list(s, "news").title = '<script>alert("x")</script> & Co'
        s.commit()
    body = client.get(unsubscribe_url(world, ALICE, "news")).text
    assert "<script>" not in body
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co" in body


def test_page_says_when_already_unsubscribed(client: TestClient, world: World) -> None:
    url = unsubscribe_url(world, ALICE, "news")
    client.post(url, data=ONE_CLICK)
    r = client.get(url)
    assert r.status_code == 200
    assert "Already unsubscribed" in r.text
    assert 'value="One-Click"' not in r.text
    assert 'name="scope" value="all"' in r.text  # leaving everything is still offered


# -- unsubscribe: the one-click POST ------------------------------------------------------


def test_one_click_post_leaves_that_list_only(client: TestClient, world: World) -> None:
    before = world.statuses()
    r = client.post(unsubscribe_url(world, ALICE, "news"), data=ONE_CLICK)
    assert r.status_code == 200
    assert "You are unsubscribed" in r.text
    assert r.headers["Cache-Control"] == "no-store"
    member = world.member(ALICE, "news")
    assert member.status == "unsubscribed"
    assert member.unsubscribe_reason == "one-click"
    # The token was for news: sport and Bob are as they were; nobody is suppressed.
    assert world.statuses() == {**before, (ALICE, "news"): "unsubscribed"}
    assert not world.suppressed(ALICE)


def test_one_click_post_is_idempotent(client: TestClient, world: World, clock: Clock) -> None:
    url = unsubscribe_url(world, ALICE, "news")
    client.post(url, data=ONE_CLICK)
    first = world.member(ALICE, "news")
    clock.advance(hours=1)
    r = client.post(url, data=ONE_CLICK)
    assert r.status_code == 200
    assert "Already unsubscribed" in r.text
    again = world.member(ALICE, "news")
    assert (again.unsubscribed_at, again.unsubscribe_reason) == (
        first.unsubscribed_at, first.unsubscribe_reason)


def test_the_pages_button_is_recorded_as_a_link(client: TestClient, world: World) -> None:
    r = client.post(unsubscribe_url(world, ALICE, "news"), data={**ONE_CLICK, "via": "page"})
    assert r.status_code == 200
    assert world.member(ALICE, "news").unsubscribe_reason == "link"


def test_one_click_as_multipart(client: TestClient, world: World) -> None:
    # RFC 8058 allows multipart/form-data; a part without a filename is a plain field.
    r = client.post(unsubscribe_url(world, ALICE, "news"),
                    files={"List-Unsubscribe": (None, "One-Click")})
    assert r.status_code == 200
    assert world.status(ALICE, "news") == "unsubscribed"


def test_one_click_without_content_type_is_still_read(client: TestClient, world: World) -> None:
    r = client.post(unsubscribe_url(world, ALICE, "news"), content=b"List-Unsubscribe=One-Click")
    assert r.status_code == 200
    assert world.status(ALICE, "news") == "unsubscribed"


@pytest.mark.parametrize("kwargs", [
    {},
    {"data": {"List-Unsubscribe": "Yes"}},
    {"data": {"List-Unsubscribe": ""}},
    {"data": {"One-Click": "List-Unsubscribe"}},
    {"data": {"scope": "list"}},
    {"json": ONE_CLICK},
    {"content": b"List-Unsubscribe=One-Click-Please"},
], ids=["empty", "wrong-value", "blank-value", "swapped", "other-scope", "json", "suffix"])
def test_post_without_the_right_body_changes_nothing(
        client: TestClient, world: World, kwargs: dict[str, object]) -> None:
    before = world.statuses()
    r = client.post(unsubscribe_url(world, ALICE, "news"), **kwargs)  # type: ignore[arg-type]
    assert r.status_code == 400
    assert "List-Unsubscribe=One-Click" in r.text
    assert world.statuses() == before


def test_post_with_a_file_part_is_refused(client: TestClient, world: World) -> None:
    r = client.post(unsubscribe_url(world, ALICE, "news"),
                    files={"List-Unsubscribe": ("x.txt", b"One-Click")})
    assert r.status_code == 400
    assert world.status(ALICE, "news") == "confirmed"


def test_huge_body_is_refused(client: TestClient, world: World) -> None:
    body = b"List-Unsubscribe=One-Click&pad=" + b"x" * 20_000
    r = client.post(unsubscribe_url(world, ALICE, "news"), content=body,
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413
    assert world.status(ALICE, "news") == "confirmed"


def test_scope_all_leaves_every_list_and_suppresses(
        client: TestClient, app: App, world: World) -> None:
    url = unsubscribe_url(world, ALICE, "news")
    r = client.post(url, data={"scope": "all", "via": "page"})
    assert r.status_code == 200
    assert "You will get no more mail from us" in r.text
    with app.sessions() as s:
        row = s.scalars(select(Suppression)).one()
        assert (row.reason, row.detail) == ("unsubscribe_all", "link")
    assert world.status(ALICE, "news") == world.status(ALICE, "sport") == "unsubscribed"
    assert world.member(ALICE, "sport").unsubscribe_reason == "unsubscribe_all"
    assert world.suppressed(ALICE)
    assert world.status(BOB, "news") == "pending" and not world.suppressed(BOB)
    r = client.post(url, data={"scope": "all"})
    assert r.status_code == 200
    assert "was already" in r.text


# -- tokens that must not work --------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "post"])
def test_tampered_token_is_refused(client: TestClient, world: World, method: str) -> None:
    before = world.statuses()
    token = world.token("unsubscribe", ALICE, "news")
    for bad in (tampered(token), token[:-2], token + "x", "not-a-token", "x" * 2000):
        url = f"/unsubscribe/{bad}"
        r = client.get(url) if method == "get" else client.post(url, data=ONE_CLICK)
        assert_refused(r, ALICE, f">{world.ids[ALICE]}<")
    assert world.statuses() == before


def test_token_for_another_subscriber_acts_on_nobody_else(
        client: TestClient, world: World) -> None:
    # Bob's link only ever touches Bob's membership, whoever posts it.
    r = client.post(unsubscribe_url(world, BOB, "news"), data=ONE_CLICK)
    assert r.status_code == 200
    assert world.status(BOB, "news") == "unsubscribed"
    assert world.status(ALICE, "news") == "confirmed"


def test_token_with_alices_id_but_another_address_is_refused(
        client: TestClient, app: App, world: World) -> None:
    # Well signed, but made for a different address than the one stored under that id
    # (an id reused after `forget`, or a token forged with a leaked key for another person).
    before = world.statuses()
    token = app.tokens.make("unsubscribe", world.ids[ALICE], world.lists["news"], BOB)
    assert_refused(client.get(f"/unsubscribe/{token}"))
    assert_refused(client.post(f"/unsubscribe/{token}", data=ONE_CLICK))
    assert_refused(client.post(f"/unsubscribe/{token}", data={"scope": "all"}))
    assert world.statuses() == before


def test_token_for_a_list_they_are_not_on_is_refused(
        client: TestClient, app: App, world: World) -> None:
    token = app.tokens.make("unsubscribe", world.ids[BOB], world.lists["sport"], BOB)
    before = world.statuses()
    # Refused in sport's language (ko): a link we signed for it came in its mail.
    assert_refused(client.post(f"/unsubscribe/{token}", data={"scope": "all"}),
                   heading="이 링크는 사용할 수 없습니다")
    assert world.statuses() == before and not world.suppressed(BOB)


def test_token_signed_with_another_key_is_refused(client: TestClient, world: World) -> None:
    # Same payload, signed by someone who does not hold our key.
    payload = [world.ids[ALICE], world.lists["news"], "0" * 8]
    forged = URLSafeTimedSerializer("guessed", salt="digest.unsubscribe").dumps(payload)
    assert_refused(client.post(f"/unsubscribe/{forged}", data=ONE_CLICK))
    assert world.status(ALICE, "news") == "confirmed"


def test_confirm_token_cannot_unsubscribe_nor_the_reverse(
        client: TestClient, world: World) -> None:
    confirm = world.token("confirm", BOB, "news")
    assert_refused(client.post(f"/unsubscribe/{confirm}", data=ONE_CLICK))
    assert world.status(BOB, "news") == "pending"
    unsub = world.token("unsubscribe", BOB, "news")
    assert_refused(client.get(f"/confirm/{unsub}"))
    assert_refused(client.post(f"/confirm/{unsub}"))
    assert world.status(BOB, "news") == "pending"


def test_refusal_offers_the_mailto_when_there_is_one(app: App, clock: Clock,
                                                      world: World) -> None:
    app.settings = app.settings.with_overrides(
        delivery__unsubscribe_mailto="News <leave@example.org>")
    with TestClient(create_app(app)) as client:
        r = client.get("/unsubscribe/not-a-token")
    assert r.status_code == 400
    assert 'href="mailto:leave@example.org?subject=unsubscribe"' in r.text


# -- confirm --------------------------------------------------------------------------------


def test_opening_the_confirm_link_asks_and_only_the_button_confirms(
        client: TestClient, world: World) -> None:
    """Mail scanners and link previews open every link: opening one confirms nobody."""
    url = "/confirm/" + world.token("confirm", BOB, "news")
    for _ in range(3):
        page = client.get(url)
        assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
        assert "Confirm your subscription to" in page.text and "b***@example.net" in page.text
        assert world.status(BOB, "news") == "pending"
    [form] = re.findall(r'<form method="post">(.*?)</form>', page.text, re.S)
    assert "<button" in form
    assert client.post(url).status_code == 200
    assert world.status(BOB, "news") == "confirmed"
    assert "Already confirmed" in client.get(url).text


def test_confirm_then_confirm_again(client: TestClient, world: World, clock: Clock) -> None:
    url = "/confirm/" + world.token("confirm", BOB, "news")
    r = client.post(url)
    assert r.status_code == 200
    assert "Subscription confirmed" in r.text and "b***@example.net" in r.text
    first = world.member(BOB, "news")
    assert first.status == "confirmed"
    assert first.confirmed_at == clock()
    assert first.confirmed_ip == "testclient"  # TestClient's peer; uvicorn's in the live test
    clock.advance(minutes=5)
    r = client.post(url)
    assert r.status_code == 200
    assert "Already confirmed" in r.text
    assert world.member(BOB, "news").confirmed_at == first.confirmed_at
    assert r.headers["Cache-Control"] == "no-store"


def test_head_requests_change_nothing(client: TestClient, world: World) -> None:
    before = world.statuses()
    assert client.head(unsubscribe_url(world, ALICE, "news")).status_code == 200
    assert client.head("/confirm/" + world.token("confirm", BOB, "news")).status_code == 405
    assert world.statuses() == before


def test_confirm_link_works_for_seven_days(client: TestClient, world: World,
                                           clock: Clock) -> None:
    url = "/confirm/" + world.token("confirm", BOB, "news")
    clock.advance(days=7, seconds=-1)
    assert client.post(url).status_code == 200
    assert world.status(BOB, "news") == "confirmed"


def test_expired_confirm_link(client: TestClient, world: World, clock: Clock) -> None:
    url = "/confirm/" + world.token("confirm", BOB, "news")
    clock.advance(days=7, seconds=1)
    assert client.post(url).status_code == 410
    r = client.get(url)
    assert r.status_code == 410
    assert "This link has expired" in r.text
    assert "7 days" in r.text and "Sign up again" in r.text
    assert world.status(BOB, "news") == "pending"


def test_expired_and_tampered_is_just_refused(client: TestClient, world: World,
                                              clock: Clock) -> None:
    url = "/confirm/" + tampered(world.token("confirm", BOB, "news"))
    clock.advance(days=8)
    assert_refused(client.get(url))
    assert_refused(client.post(url))


def test_old_confirm_link_does_not_undo_an_unsubscribe(
        client: TestClient, app: App, world: World, clock: Clock) -> None:
    url = "/confirm/" + world.token("confirm", BOB, "news")
    with app.sessions() as s:
        remove_member(s, get_list(s, "news"), BOB, now=clock(), reason="admin")
        s.commit()
    for r in (client.get(url), client.post(url)):
        assert r.status_code == 400
        assert "cancelled" in r.text
    assert world.status(BOB, "news") == "unsubscribed"


def test_a_confirm_link_is_good_only_for_the_sign_up_it_was_sent_for(
        client: TestClient, app: App, world: World, clock: Clock) -> None:
    """Bob's old link, from before he left, must not confirm a stranger's later sign-up
    of his address; the link mailed for that sign-up does."""
    old = "/confirm/" + world.token("confirm", BOB, "news")
    assert client.post(old).status_code == 200
    clock.advance(days=1)
    with app.sessions() as s:
        remove_member(s, get_list(s, "news"), BOB, now=clock(), reason="link")
        s.commit()
    clock.advance(days=1)
    assert subscribe(client, BOB, "news").status_code == 200  # someone else, by the form
    assert world.status(BOB, "news") == "pending"
    for r in (client.get(old), client.post(old)):
        assert r.status_code == 400 and "earlier sign-up" in r.text
    assert world.status(BOB, "news") == "pending"
    new = "/confirm/" + world.token("confirm", BOB, "news")  # as the new mail has it
    assert client.post(new).status_code == 200
    assert world.status(BOB, "news") == "confirmed"


def test_a_link_mailed_before_sign_ups_were_numbered(
        client: TestClient, app: App, world: World, clock: Clock) -> None:
    """Links in mail sent before migration 0010 carry no sign-up number: they confirm
    the sign-up they were sent for, and nothing after the address left and came back."""
    legacy = "/confirm/" + app.tokens.make("confirm", world.ids[BOB], world.lists["news"], BOB)
    assert "Confirm your subscription" in client.get(legacy).text
    with app.sessions() as s:
        remove_member(s, get_list(s, "news"), BOB, now=clock(), reason="admin")
        s.commit()
    assert subscribe(client, BOB, "news").status_code == 200  # seconds later
    for r in (client.get(legacy), client.post(legacy)):
        assert r.status_code == 400 and "earlier sign-up" in r.text
    assert world.status(BOB, "news") == "pending"


def test_confirm_for_another_subscriber_is_refused(
        client: TestClient, app: App, world: World) -> None:
    token = app.tokens.make("confirm", world.ids[BOB], world.lists["news"], ALICE)
    assert_refused(client.get(f"/confirm/{token}"))
    assert_refused(client.post(f"/confirm/{token}"))
    assert world.status(BOB, "news") == "pending"


# -- health, headers, errors ------------------------------------------------------------------


def test_healthz(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    assert client.head("/healthz").status_code == 200


def test_every_response_carries_the_security_headers(client: TestClient,
                                                     world: World) -> None:
    token = world.token("unsubscribe", ALICE, "news")
    responses = [
        client.get(f"/unsubscribe/{token}"),
        client.post(f"/unsubscribe/{token}"),  # 400: no body
        client.get("/unsubscribe/bad"),
        client.get("/confirm/bad"),
        client.get("/healthz"),
        client.get("/nowhere"),  # 404
        client.put(f"/unsubscribe/{token}"),  # 405
    ]
    css = client.get("/unsubscribe/" + token).text.split('rel="stylesheet" href="')[1]
    responses.append(client.get(css.split('"')[0]))
    for r in responses:
        h = r.headers
        assert h["X-Content-Type-Options"] == "nosniff"
        assert h["Referrer-Policy"] == "no-referrer"
        assert h["X-Frame-Options"] == "DENY"
        csp = h["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert "script-src" not in csp  # so scripts fall back to 'none'
    assert [r.status_code for r in responses] == [200, 400, 400, 400, 200, 404, 405, 200]
    assert responses[-1].headers["Content-Type"].startswith("text/css")
    for r in responses[:4]:
        assert r.headers["Cache-Control"] == "no-store"
    assert "Page not found" in responses[5].text


def test_server_error_page_hides_the_details(app: App, world: World) -> None:
    web = create_app(app)

    @web.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret detail")

    with TestClient(web, raise_server_exceptions=False) as client:
        r = client.get("/boom")
    assert r.status_code == 500
    assert "secret detail" not in r.text
    assert r.headers["X-Frame-Options"] == "DENY"


# -- a real server, as a mail provider sees it -----------------------------------------------


def test_one_click_over_a_real_server(live_url: str, world: World) -> None:
    url = live_url + unsubscribe_url(world, ALICE, "news")
    with requests.Session() as http:
        r = http.post(url, data="List-Unsubscribe=One-Click", headers=PROVIDER_HEADERS,
                      allow_redirects=False, timeout=10)
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("text/html")
        assert "set-cookie" not in r.headers
        assert world.status(ALICE, "news") == "unsubscribed"
        assert world.member(ALICE, "news").unsubscribe_reason == "one-click"
        assert world.status(ALICE, "sport") == "confirmed"

        # A provider retrying, and one that sends multipart: both harmless.
        r = http.post(url, files={"List-Unsubscribe": (None, "One-Click")},
                      headers={"User-Agent": PROVIDER_HEADERS["User-Agent"]}, timeout=10)
        assert r.status_code == 200

        # Without the body, nothing happens.
        other = live_url + unsubscribe_url(world, BOB, "news")
        r = http.post(other, data="", headers=PROVIDER_HEADERS, timeout=10)
        assert r.status_code == 400
        assert world.status(BOB, "news") == "pending"

        # The confirm link records the peer address uvicorn saw.
        r = http.post(live_url + "/confirm/" + world.token("confirm", BOB, "news"), timeout=10)
        assert r.status_code == 200
        assert world.member(BOB, "news").confirmed_ip == "127.0.0.1"
        assert http.get(live_url + "/healthz", timeout=10).json() == {"status": "ok"}
