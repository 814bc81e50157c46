"""The preference page behind a signed "manage" link: see, change, leave all; and the
way there from the unsubscribe page."""

from __future__ import annotations

from typing import Any

import lxml.html
from fastapi.testclient import TestClient

from digest.app import App
from digest.publication import create_list
from subscribers.members import add_member
from subscribers.suppress import suppress
from tests.conftest import Clock
from tests.web.conftest import ALICE, BOB, World
from tests.web.test_public import tampered


def manage_url(world: World, email: str) -> str:
    """The preference page's path for `email`: a manage token names no list."""
    return "/preferences/" + world.app.tokens.make("manage", world.ids[email], None, email)


def ticked(r: Any) -> list[str]:
    return sorted(lxml.html.fromstring(r.text).xpath('//input[@name="lists"][@checked]/@value'))


def offered(r: Any) -> list[str]:
    return sorted(lxml.html.fromstring(r.text).xpath('//input[@name="lists"]/@value'))


def save(client: TestClient, url: str, *lists: str) -> Any:
    return client.post(url, data={"action": "save", "lists": list(lists)})


def test_page_shows_the_masked_address_and_current_lists_and_changes_nothing(
        client: TestClient, world: World) -> None:
    before = world.statuses()
    for method in ("HEAD", "GET"):
        r = client.request(method, manage_url(world, ALICE))
        assert r.status_code == 200
    assert world.statuses() == before
    assert r.headers["Cache-Control"] == "no-store"
    assert "a***@example.org" in r.text and ALICE not in r.text
    assert offered(r) == ["news", "sport"] and ticked(r) == ["news", "sport"]
    assert '<strong lang="ko" dir="auto">스포츠 소식</strong>' in r.text
    doc = lxml.html.fromstring(r.text)
    assert doc.xpath('//button[@name="action"][@value="save"]')
    assert doc.xpath('//form[input[@name="scope"][@value="all"]]//button')[0].text_content() \
        == "Leave all mail"
    # Bob waits for his confirmation on news; sport he may join.
    r = client.get(manage_url(world, BOB))
    assert ticked(r) == ["news"] and "waiting for you to confirm" in r.text


def test_unticking_a_list_leaves_it(client: TestClient, world: World) -> None:
    r = save(client, manage_url(world, ALICE), "news")
    assert r.status_code == 200
    assert "Your choices are saved." in r.text and ticked(r) == ["news"]
    member = world.member(ALICE, "sport")
    assert (member.status, member.unsubscribe_reason) == ("unsubscribed", "preferences")
    assert world.status(ALICE, "news") == "confirmed"
    assert not world.suppressed(ALICE)
    # Saving the same again changes nothing, not even the time she left.
    left_at = member.unsubscribed_at
    save(client, manage_url(world, ALICE), "news")
    assert world.member(ALICE, "sport").unsubscribed_at == left_at


def test_ticking_joins_confirmed_because_the_link_proves_the_address(
        client: TestClient, world: World) -> None:
    r = save(client, manage_url(world, BOB), "news", "sport")
    assert ticked(r) == ["news", "sport"]
    sport = world.member(BOB, "sport")
    assert (sport.status, sport.origin, sport.confirmed_ip) == (
        "confirmed", "preferences", "testclient")
    # His pending news, kept ticked, is confirmed the same way.
    assert world.status(BOB, "news") == "confirmed"
    # And one he had left comes back.
    save(client, manage_url(world, BOB), "sport")
    assert world.status(BOB, "news") == "unsubscribed"
    save(client, manage_url(world, BOB), "news", "sport")
    assert world.status(BOB, "news") == "confirmed"


def test_leave_all_mail(client: TestClient, world: World) -> None:
    url = manage_url(world, ALICE)
    r = client.post(url, data={"scope": "all", "via": "page"})
    assert r.status_code == 200
    assert "You will get no more mail from us." in r.text
    assert world.status(ALICE, "news") == world.status(ALICE, "sport") == "unsubscribed"
    assert world.suppressed(ALICE)
    # The page now says so, and ticking a list does not bring mail back.
    assert "gets no mail from us" in r.text and ticked(r) == []
    save(client, url, "news")
    assert world.status(ALICE, "news") == "unsubscribed"


def test_private_lists_can_be_left_not_joined(
        client: TestClient, app: App, world: World, clock: Clock) -> None:
    with app.sessions() as s:
        staff = create_list(s, "staff", title="Staff Only", from_addr="s@example.org",
                            public=False)
        add_member(s, staff, ALICE, confirmed=True, now=clock())
        s.commit()
        world.lists["staff"] = staff.id
    assert offered(client.get(manage_url(world, ALICE))) == ["news", "sport", "staff"]
    r = client.get(manage_url(world, BOB))
    assert offered(r) == ["news", "sport"] and "Staff Only" not in r.text
    save(client, manage_url(world, BOB), "news", "staff")
    assert ("bob@example.net", "staff") not in world.statuses()
    save(client, manage_url(world, ALICE), "news", "sport")
    assert world.status(ALICE, "staff") == "unsubscribed"


def test_a_bare_post_changes_nothing(client: TestClient, world: World) -> None:
    before = world.statuses()
    for body in ({}, {"List-Unsubscribe": "One-Click"}, {"lists": "news"}):
        r = client.post(manage_url(world, ALICE), data=body)
        assert r.status_code == 400 and "Nothing was changed" in r.text
    assert world.statuses() == before


def test_bad_links_do_nothing(client: TestClient, app: App, world: World,
                              clock: Clock) -> None:
    before = world.statuses()
    good = manage_url(world, ALICE)
    token = good.rpartition("/")[2]
    wrong = [
        "/preferences/" + tampered(token),
        "/preferences/" + world.token("unsubscribe", ALICE, "news"),  # another purpose
        "/preferences/" + "x" * 600,
    ]
    for url in wrong:
        assert client.get(url).status_code == 400
        r = client.post(url, data={"scope": "all"})
        assert r.status_code == 400 and "This link does not work" in r.text
        r = save(client, url)
        assert r.status_code == 400
    clock.advance(days=31)
    r = save(client, good)
    assert r.status_code == 410 and "This link has expired" in r.text
    assert world.statuses() == before and not world.suppressed(ALICE)


def test_suppressed_address_cannot_join(client: TestClient, app: App, world: World,
                                        clock: Clock) -> None:
    with app.sessions() as s:
        suppress(s, BOB, "hard_bounce", now=clock())
        s.commit()
    r = save(client, manage_url(world, BOB), "news", "sport")
    assert "gets no mail from us" in r.text
    assert ("bob@example.net", "sport") not in world.statuses()
    assert world.status(BOB, "news") == "pending"


def test_the_unsubscribe_page_leads_to_the_preferences(
        client: TestClient, world: World) -> None:
    r = client.get("/unsubscribe/" + world.token("unsubscribe", ALICE, "sport"))
    # sport is Korean: the link says so in Korean, and the page it opens does too.
    [link] = lxml.html.fromstring(r.text).xpath('//a[text()="수신 설정"]/@href')
    assert link.startswith("/preferences/")
    r = client.get(link)
    assert '<html lang="ko">' in r.text and "<h1>메일 수신 설정</h1>" in r.text
    assert r.status_code == 200 and ticked(r) == ["news", "sport"]
    save(client, link, "sport")
    assert world.status(ALICE, "news") == "unsubscribed"
    assert world.status(ALICE, "sport") == "confirmed"
