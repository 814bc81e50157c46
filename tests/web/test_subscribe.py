"""The subscribe form: fields, double opt-in by mail, the same answer for every address,
the honeypot, the per-IP limit, the signed form token."""

from __future__ import annotations

import email
import email.policy
import re
import threading
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path
from typing import Any

import lxml.html
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from digest.app import App
from digest.publication import create_list
from digest.sender import run_worker
from digest.web.subscribe import SUBSCRIBE_LIMIT, SUBSCRIBE_WINDOW
from digest.web.throttle import Throttle, retry_after_header
from subscribers.lists import archive_list, get_list
from subscribers.members import add_member, remove_member
from subscribers.models import Subscriber
from subscribers.suppress import suppress
from tests.conftest import Clock
from tests.web.conftest import ALICE, BOB, World

CAROL = "carol@example.com"


def outbox(app: App) -> list[EmailMessage]:
    """Every message in the outbox, oldest first, once the sender (as `digest serve`
    runs it) has delivered what the web app queued."""
    run_worker(app, threading.Event(), once=True)
    folder = Path(app.settings["delivery.outbox_dir"]) / "new"
    if not folder.exists():
        return []
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
            for p in sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime_ns)]


def mail_to(app: App, address: str) -> list[EmailMessage]:
    return [m for m in outbox(app) if address in {a for _, a in getaddresses([str(m["To"])])}]


def text_of(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def form_token(client: TestClient, path: str = "/subscribe") -> str:
    r = client.get(path)
    assert r.status_code == 200
    [token] = lxml.html.fromstring(r.text).xpath('//input[@name="form_token"]/@value')
    return str(token)


def subscribe(client: TestClient, address: str, *lists: str, path: str = "/subscribe",
              **fields: Any) -> Any:
    """Fill in the form at `path` as a person would, and send it."""
    data = {"email": address, "name": "", "website": "", "lists": list(lists),
            "form_token": form_token(client, path), **fields}
    return client.post(path, data=data)


# -- the form --------------------------------------------------------------------------


def test_form_offers_public_lists_with_the_expected_fields(
        client: TestClient, app: App, world: World, clock: Clock) -> None:
    with app.sessions() as s:
        create_list(s, "staff", title="Staff Only", from_addr="s@example.org", public=False)
        old = create_list(s, "old", title="Old Times", from_addr="o@example.org")
        archive_list(s, old, now=clock())
        get_list(s, "news").description = "What happened overnight"
        s.commit()
    r = client.get("/subscribe")
    assert r.status_code == 200
    assert r.headers["Cache-Control"] == "no-store"
    doc = lxml.html.fromstring(r.text)
    [form] = doc.xpath("//form")
    assert form.get("method") == "post" and form.get("action") == "/subscribe"
    [address] = form.xpath('.//input[@name="email"]')
    assert address.get("type") == "email" and address.get("required") is not None
    assert form.xpath('.//input[@name="name"][@type="text"]')
    assert [b.text_content() for b in form.xpath(".//button")] == ["Subscribe"]
    boxes = form.xpath('.//input[@name="lists"]')
    assert [(b.get("type"), b.get("value")) for b in boxes] == [
        ("checkbox", "news"), ("checkbox", "sport")]
    assert not any(b.get("checked") is not None for b in boxes)
    assert "Staff Only" not in r.text and "Old Times" not in r.text
    assert "What happened overnight" in r.text
    # The Korean list's title is there, marked with its language.
    assert '<strong lang="ko" dir="auto">스포츠 소식</strong>' in r.text
    # The honeypot: hidden from people by CSS, from screen readers and the tab order.
    [trap] = form.xpath('.//input[@name="website"]')
    assert (trap.get("tabindex"), trap.get("autocomplete")) == ("-1", "off")
    [wrapper] = trap.xpath('ancestor::div[@aria-hidden="true"]')
    assert "hp" in wrapper.get("class").split()
    css = client.get(doc.xpath('//link[@rel="stylesheet"]/@href')[0]).text
    assert re.search(r"\.hp \{[^}]*left: -10000px", css)
    # No script anywhere: the form works without.
    assert not doc.xpath("//script")


def test_form_for_one_list_ticks_it_and_hides_the_rest(
        client: TestClient, app: App, world: World) -> None:
    with app.sessions() as s:
        create_list(s, "staff", title="Staff Only", from_addr="s@example.org", public=False)
        s.commit()
    r = client.get("/subscribe/sport")
    assert r.status_code == 200
    doc = lxml.html.fromstring(r.text)
    [box] = doc.xpath('//input[@name="lists"]')
    assert box.get("value") == "sport" and box.get("checked") is not None
    assert doc.xpath("//form/@action") == ["/subscribe/sport"]
    assert "스포츠 소식" in doc.xpath("//h1")[0].text_content()  # in its own language
    for missing in ("/subscribe/staff", "/subscribe/nope"):
        assert client.get(missing).status_code == 404


# -- signing up ------------------------------------------------------------------------


def test_new_address_gets_one_mail_whose_link_confirms(
        client: TestClient, app: App, world: World) -> None:
    r = subscribe(client, CAROL, "sport", name="Carol")
    assert r.status_code == 200
    assert "Check your inbox" in r.text and "스포츠 소식" in r.text
    with app.sessions() as s:
        carol = s.scalars(select(Subscriber).where(Subscriber.email == CAROL)).one()
        [membership] = carol.memberships
        assert carol.name == "Carol"
        assert (membership.status, membership.origin, membership.created_ip) == (
            "pending", "web", "testclient")

    [mail] = mail_to(app, CAROL)
    assert len(outbox(app)) == 1
    assert "스포츠 소식" in str(mail["Subject"])
    [link] = re.findall(r"https://news\.example\.org(/confirm/\S+)", text_of(mail))
    # sport is Korean: so are the pages its confirmation link opens (issue 11).
    page = client.get(link).text
    assert '<html lang="ko">' in page and "<title>스포츠 소식 구독 확인</title>" in page
    assert ">구독 확인</button>" in page and "Confirm" not in page
    r = client.post(link)
    assert r.status_code == 200 and "<h1>구독이 확인되었습니다</h1>" in r.text
    assert '<html lang="ko">' in r.text and "Subscription confirmed" not in r.text
    world.ids[CAROL] = carol.id
    assert world.status(CAROL, "sport") == "confirmed"


def test_several_lists_at_once(client: TestClient, app: App, world: World) -> None:
    r = subscribe(client, CAROL, "news", "sport")
    assert r.status_code == 200
    assert sorted(str(m["Subject"]) for m in mail_to(app, CAROL)) == [
        "Confirm your subscription to Morning News", "스포츠 소식 구독을 확인해 주세요"]


def test_same_answer_whoever_the_address_belongs_to(
        client: TestClient, app: App, world: World, clock: Clock) -> None:
    with app.sessions() as s:
        news = get_list(s, "news")
        add_member(s, news, "gone@example.org", confirmed=True, now=clock())
        remove_member(s, news, "gone@example.org", now=clock())
        add_member(s, news, "bounced@example.org", confirmed=True, now=clock())
        suppress(s, "bounced@example.org", "hard_bounce", now=clock())
        s.commit()
    addresses = {
        "unknown": CAROL, "confirmed": ALICE, "pending": BOB,
        "unsubscribed": "gone@example.org", "suppressed": "bounced@example.org",
    }
    answers = {}
    for state, address in addresses.items():
        r = subscribe(client, address, "news")
        answers[state] = (r.status_code, r.headers["content-type"], r.content)
        clock.advance(seconds=SUBSCRIBE_WINDOW)  # stay under the per-IP limit
    assert len(set(answers.values())) == 1, "the answer tells one address from another"
    assert answers["unknown"][0] == 200

    # Mail goes only where consent is still to be given, and only to the address itself.
    got = {state: len(mail_to(app, address)) for state, address in addresses.items()}
    assert got == {"unknown": 1, "confirmed": 0, "pending": 1, "unsubscribed": 1,
                   "suppressed": 0}
    assert len(outbox(app)) == 3
    # Nobody who was subscribed, or suppressed, was changed by a stranger's form.
    assert world.status(ALICE, "news") == "confirmed"
    with app.sessions() as s:
        known = dict(s.execute(select(Subscriber.email, Subscriber.id)).all())
    world.ids.update(known)
    assert world.status("gone@example.org", "news") == "pending"  # until they confirm
    assert world.status("bounced@example.org", "news") == "confirmed"
    assert world.suppressed("bounced@example.org")


def test_a_stranger_cannot_rename_a_subscriber(
        client: TestClient, app: App, world: World) -> None:
    subscribe(client, ALICE, "news", name="Not Alice")
    with app.sessions() as s:
        assert s.scalars(select(Subscriber.name).where(Subscriber.email == ALICE)).one() == ""


def test_single_opt_in_list_confirms_at_once_but_not_who_left(
        client: TestClient, app: App, world: World, clock: Clock) -> None:
    with app.sessions() as s:
        news = get_list(s, "news")
        news.double_optin = False
        remove_member(s, news, ALICE, now=clock())
        s.commit()
    form = lxml.html.fromstring(client.get("/subscribe/news").text)
    note = form.xpath('//p[@class="note"]')[0].text_content()
    assert "confirm" not in note and "link to unsubscribe" in note
    answers = [subscribe(client, who, "news").text for who in (CAROL, ALICE)]
    # One answer for both, which says what happened to each kind of address, and
    # promises no mail to the one who gets none.
    assert answers[0] == answers[1]
    said = " ".join(lxml.html.fromstring(answers[0]).xpath("//main")[0].text_content().split())
    assert "Check your inbox" not in said
    assert "If the address is new to Morning News, it is subscribed" in said
    assert "If it left before, we have sent it an email with a link to confirm" in said
    with app.sessions() as s:
        world.ids[CAROL] = s.scalars(select(Subscriber.id).where(Subscriber.email == CAROL)).one()
    assert world.status(CAROL, "news") == "confirmed"
    assert mail_to(app, CAROL) == []
    # Alice left; only a click in her own inbox brings her back.
    assert world.status(ALICE, "news") == "pending"
    assert len(mail_to(app, ALICE)) == 1


# -- coming back after leaving (issue 9, finding 10) ----------------------------------


def links_in(mail: EmailMessage) -> tuple[str, str]:
    """The confirm and unsubscribe paths of a confirmation mail, as the reader clicks them."""
    [confirm_path] = re.findall(r"https://news\.example\.org(/confirm/\S+)", text_of(mail))
    [leave] = re.findall(r"https://news\.example\.org(/unsubscribe/[^>\s]+)",
                         str(mail["List-Unsubscribe"]))
    return confirm_path, leave


def carol_joins(client: TestClient, app: App, world: World) -> EmailMessage:
    """Carol signs up for news by the form; the confirmation mail she gets."""
    assert subscribe(client, CAROL, "news").status_code == 200
    with app.sessions() as s:
        world.ids[CAROL] = s.scalars(select(Subscriber.id).where(Subscriber.email == CAROL)).one()
    return mail_to(app, CAROL)[-1]


@pytest.mark.parametrize("wait", [0, 40, 70])
@pytest.mark.parametrize("leaves_by", ["admin", "link"])
def test_an_old_confirm_link_never_confirms_a_later_sign_up(
        client: TestClient, app: App, world: World, clock: Clock, wait: int,
        leaves_by: str) -> None:
    """However soon after the first sign-up the address leaves and is signed up again
    (seconds, within the clock skew once allowed, or later), the first mail's link is
    refused: it was made for that sign-up alone. The second mail's link confirms."""
    old, leave = links_in(carol_joins(client, app, world))
    clock.advance(seconds=wait)
    if leaves_by == "admin":  # as `digest subscribers rm carol@… --list news`
        with app.sessions() as s:
            remove_member(s, get_list(s, "news"), CAROL, now=clock(), reason="admin")
            s.commit()
    else:
        assert client.post(leave, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert world.status(CAROL, "news") == "unsubscribed"
    second = carol_joins(client, app, world)  # a stranger, or Carol again
    assert world.status(CAROL, "news") == "pending"
    for r in (client.get(old), client.post(old)):
        assert r.status_code == 400 and "earlier sign-up" in r.text
    assert world.status(CAROL, "news") == "pending"
    new, _ = links_in(second)
    assert new != old
    assert client.post(new).status_code == 200
    assert world.status(CAROL, "news") == "confirmed"


def test_coming_back_soon_after_leaving_gets_a_new_mail_at_once(
        client: TestClient, app: App, world: World, clock: Clock) -> None:
    """The resend limit is for the same sign-up, whose mailed link still works; a new
    sign-up after leaving gets its own mail at once, as the first one's link is dead."""
    first, leave = links_in(carol_joins(client, app, world))
    clock.advance(minutes=1)
    assert client.post(leave, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    clock.advance(minutes=1)
    second, _ = links_in(carol_joins(client, app, world))
    assert len(mail_to(app, CAROL)) == 2 and second != first
    # The form posted again for this pending sign-up: its link still works, so no mail
    # until RESEND_AFTER has passed since the last one.
    clock.advance(minutes=1)
    subscribe(client, CAROL, "news")
    assert len(mail_to(app, CAROL)) == 2
    clock.advance(minutes=10)
    subscribe(client, CAROL, "news")
    assert len(mail_to(app, CAROL)) == 3
    assert client.post(second).status_code == 200  # the newest mail's link, or this one
    assert world.status(CAROL, "news") == "confirmed"


def test_a_stranger_posting_the_form_cannot_mail_someone_at_will(
        web: FastAPI, app: App, world: World, clock: Clock) -> None:
    """Each post of the form for a pending address mails it at most once in
    RESEND_AFTER; only the person leaving (a click in their own inbox) starts a new
    sign-up that is mailed at once. Posts from many networks change nothing."""
    for i in range(20):  # 20 posts in under 10 minutes, the sender at work meanwhile
        with TestClient(web, client=(f"198.51.100.{i + 1}", 4000)) as stranger:
            assert subscribe(stranger, CAROL, "news").status_code == 200
        assert len(mail_to(app, CAROL)) == 1
        clock.advance(seconds=29)
    clock.advance(seconds=21)  # 10 minutes since the first mail went
    with TestClient(web, client=("198.51.100.99", 4000)) as stranger:
        subscribe(stranger, CAROL, "news")
        subscribe(stranger, CAROL, "news")
    assert len(mail_to(app, CAROL)) == 2


def test_honeypot_gets_the_same_answer_and_nothing_happens(
        client: TestClient, app: App, world: World, clock: Clock) -> None:
    human = subscribe(client, "dave@example.net", "news")
    clock.advance(seconds=1)
    before = world.statuses()
    mails = len(outbox(app))
    bot = subscribe(client, CAROL, "news", website="https://cheap-pills.example")
    assert (bot.status_code, bot.content) == (human.status_code, human.content)
    assert world.statuses() == before
    assert len(outbox(app)) == mails
    with app.sessions() as s:
        assert s.scalar(select(Subscriber).where(Subscriber.email == CAROL)) is None


def test_per_ip_limit_answers_429_with_retry_after(
        web: FastAPI, app: App, world: World, clock: Clock) -> None:
    with TestClient(web, client=("203.0.113.9", 4000)) as client:
        token = form_token(client)
        for i in range(SUBSCRIBE_LIMIT):
            r = client.post("/subscribe", data={"email": f"p{i}@example.com", "lists": "news",
                                                "form_token": token})
            assert r.status_code == 200
            clock.advance(seconds=10)
        r = client.post("/subscribe", data={"email": CAROL, "lists": "news",
                                            "form_token": token})
        assert r.status_code == 429
        assert "Too many sign-ups" in r.text
        assert 0 < int(r.headers["Retry-After"]) <= SUBSCRIBE_WINDOW
        with app.sessions() as s:
            assert s.scalar(select(Subscriber).where(Subscriber.email == CAROL)) is None
        # Another network is not held up by this one.
        with TestClient(web, client=("198.51.100.7", 4000)) as other:
            assert subscribe(other, CAROL, "news").status_code == 200
        # The window slides: once the first post is old enough, one more is allowed.
        clock.advance(seconds=int(r.headers["Retry-After"]))
        r = client.post("/subscribe", data={"email": "erin@example.com", "lists": "news",
                                            "form_token": token})
        assert r.status_code == 200


def test_invalid_address_gets_the_form_back_with_what_was_typed(
        client: TestClient, app: App, world: World) -> None:
    before = world.statuses()
    r = subscribe(client, "carol at example", "sport", name="Carol Kim")
    assert r.status_code == 400
    doc = lxml.html.fromstring(r.text)
    [error] = doc.xpath('//*[@role="alert"]')
    assert "is not a valid email address" in error.text_content()
    assert doc.xpath('//input[@name="email"]/@value') == ["carol at example"]
    assert doc.xpath('//input[@name="name"]/@value') == ["Carol Kim"]
    assert doc.xpath('//input[@name="lists"][@checked]/@value') == ["sport"]
    assert doc.xpath('//input[@name="form_token"]/@value')  # ready to send again
    assert world.statuses() == before and outbox(app) == []


def test_no_list_ticked_or_only_a_private_one(client: TestClient, app: App,
                                               world: World) -> None:
    with app.sessions() as s:
        create_list(s, "staff", title="Staff Only", from_addr="s@example.org", public=False)
        s.commit()
    for lists in ((), ("staff",), ("nope",)):
        r = subscribe(client, CAROL, *lists)
        assert r.status_code == 400
        assert "tick at least one list" in r.text
        assert "Staff Only" not in r.text
    with app.sessions() as s:
        assert s.scalar(select(Subscriber).where(Subscriber.email == CAROL)) is None


def test_missing_forged_or_stale_form_token_is_refused(
        client: TestClient, app: App, world: World, clock: Clock) -> None:
    good = form_token(client)
    forged = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    for token in ("", "nonsense", forged):
        r = client.post("/subscribe", data={"email": CAROL, "lists": "news",
                                            "form_token": token})
        assert r.status_code == 400
        assert "reload the page" in r.text
    clock.advance(hours=25)
    r = client.post("/subscribe", data={"email": CAROL, "lists": "news", "form_token": good})
    assert r.status_code == 400 and "reload the page" in r.text
    with app.sessions() as s:
        assert s.scalar(select(Subscriber).where(Subscriber.email == CAROL)) is None
    assert outbox(app) == []
    # The form is not tied to a cookie: a fresh one works from a fresh client.
    assert not client.cookies
    assert subscribe(client, CAROL, "news").status_code == 200


# -- the throttle itself (the login throttle uses it too) ------------------------------


class Ticks:
    """A clock in seconds, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_throttle_is_a_sliding_window() -> None:
    ticks = Ticks()
    throttle = Throttle(3, 60, clock=ticks)
    ticks.now += 50
    assert [throttle.hit("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert throttle.hit("a") == pytest.approx(60)
    assert throttle.hit("b") == 0.0  # keys are counted apart
    # A fixed window would start afresh at 60 s; a sliding one waits for the oldest hit.
    ticks.now += 15
    assert throttle.hit("a") == pytest.approx(45)
    ticks.now += 45
    assert throttle.hit("a") == 0.0
    assert throttle.hit("a") == 0.0  # the other two left the window at the same moment
    assert throttle.hit("a") == 0.0
    assert throttle.hit("a") > 0


def test_throttle_peek_and_reset() -> None:
    ticks = Ticks()
    throttle = Throttle(2, 60, clock=ticks)
    assert throttle.peek("ip") == 0.0
    throttle.hit("ip")
    assert throttle.peek("ip") == 0.0  # peeking counts nothing
    throttle.hit("ip")
    assert throttle.peek("ip") == pytest.approx(60)
    throttle.reset("ip")
    assert throttle.peek("ip") == 0.0


def test_throttle_memory_stays_bounded() -> None:
    ticks = Ticks()
    throttle = Throttle(1, 60, clock=ticks, max_keys=100)
    for i in range(1000):
        ticks.now += 1
        throttle.hit(f"ip{i}")
    assert len(throttle._hits) <= 100
    assert throttle.hit("ip999") > 0  # the newest are still remembered


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    assert [retry_after_header(w) for w in (0.2, 1.0, 59.01)] == ["1", "1", "60"]
    with pytest.raises(ValueError):
        Throttle(0, 60)
