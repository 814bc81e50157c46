"""A subscriber in a real browser (headless Chromium) against uvicorn on loopback:
subscribe → confirm from the mail in the outbox → receive an edition → unsubscribe,
both by RFC 8058 one-click and by the page's button; every public page on a phone."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
import time
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses
from pathlib import Path
from xml.sax.saxutils import escape

import lxml.html
import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from digest.app import App
from digest.gather.sources import add_source
from digest.models import Edition, EditionStatus
from subscribers.lists import get_list
from subscribers.members import add_member
from subscribers.models import Subscriber
from tests.conftest import Clock
from tests.loopback import feed_server
from tests.web.browser import Artifacts, assert_no_horizontal_scroll
from tests.web.conftest import ALICE, BOB, World

pytestmark = pytest.mark.browser

CAROL = "carol@example.com"


class Outbox:
    """The outbox Maildir, read as mail arrives: `arrived()` gives what came since the
    last call."""

    def __init__(self, app: App) -> None:
        self.folder = Path(app.settings["delivery.outbox_dir"]) / "new"
        self.seen: set[str] = set()

    def arrived(self, *, wait: float = 0) -> list[EmailMessage]:
        """New messages, waiting up to `wait` seconds for at least one."""
        deadline = time.monotonic() + wait
        while True:
            names = sorted(p.name for p in self.folder.glob("*")) if self.folder.exists() else []
            fresh = [n for n in names if n not in self.seen]
            if fresh or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        self.seen.update(fresh)
        return [email.message_from_bytes((self.folder / n).read_bytes(),
                                         policy=email.policy.default)
                for n in fresh]


def to(messages: list[EmailMessage], address: str) -> list[EmailMessage]:
    return [m for m in messages if address in {a for _, a in getaddresses([str(m["To"])])}]


def body(msg: EmailMessage, kind: str) -> str:
    part = msg.get_body((kind,))
    assert part is not None, f"no text/{kind} part"
    return str(part.get_content())


class Feed:
    """An RSS feed served on loopback whose items the test adds as time goes by."""

    def __init__(self) -> None:
        self.items: list[tuple[str, dt.datetime]] = []

    def add(self, title: str, when: dt.datetime) -> None:
        self.items.append((title, when))

    def xml(self) -> bytes:
        items = "".join(
            f"<item><title>{escape(title)}</title>"
            f"<link>https://harbour.example.org/{i}</link><guid>harbour-{i}</guid>"
            f"<pubDate>{format_datetime(when, usegmt=True)}</pubDate>"
            f"<description>{escape(title)}, in a few words.</description></item>"
            for i, (title, when) in enumerate(self.items))
        return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
                f"<title>Harbour Gazette</title><link>https://harbour.example.org/</link>"
                f"<description>Test feed</description>{items}</channel></rss>").encode()


@pytest.fixture
def feed(app: App, world: World) -> Iterator[Feed]:
    """A loopback feed feeding the list news."""
    feed = Feed()
    with feed_server(lambda path: feed.xml() if path == "/feed.xml" else None) as base:
        with app.sessions() as s:
            add_source(s, base + "/feed.xml", get_list(s, "news"))
            s.commit()
        yield feed


@pytest.fixture
def site(app: App, live_url: str) -> str:
    """The live server's URL, which is also the app's public_url: links in mail lead here."""
    app.settings = app.settings.with_overrides(public_url=live_url)
    return live_url


def send_edition(app: App, feed: Feed, clock: Clock, title: str) -> None:
    """A day later, a new article on the feed; fetch it and send the news edition."""
    clock.advance(days=1)
    feed.add(title, clock() - dt.timedelta(hours=1))
    with app.sessions() as s:
        [report] = app.fetch(s)
        assert report.status == "ok" and report.new == 1, report
    sent = app.send("news")
    assert sent is not None
    # The live server's sender shares this app and its outbox: it may have claimed some
    # of the deliveries, and then it is the one that finishes the edition.
    deadline = time.monotonic() + 30
    while _status(app, sent.edition_id) != EditionStatus.SENT and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _status(app, sent.edition_id) == EditionStatus.SENT, sent


def _status(app: App, edition_id: int) -> EditionStatus:
    with app.sessions() as s:
        return s.get_one(Edition, edition_id).status


def meet(world: World, address: str) -> None:
    """Let `world` answer about someone who signed up after it was made."""
    with world.app.sessions() as s:
        world.ids[address] = s.scalars(
            select(Subscriber.id).where(Subscriber.email == address)).one()


def edition_mail(outbox: Outbox, address: str, title: str) -> EmailMessage:
    """The one edition mail to `address` among the mail that just arrived."""
    [mail] = to(outbox.arrived(), address)
    assert title in body(mail, "plain")
    return mail


# -- the acceptance flow ---------------------------------------------------------------


def test_subscribe_confirm_receive_and_one_click_unsubscribe(
        phone: Page, page: Page, site: str, app: App, world: World, feed: Feed,
        clock: Clock, artifacts: Artifacts) -> None:
    outbox = Outbox(app)

    # The form, as it looks on a desktop and on a phone.
    page.goto(f"{site}/subscribe")
    artifacts.screenshot(page, "subscribe-desktop")
    phone.goto(f"{site}/subscribe")
    assert_no_horizontal_scroll(phone)
    artifacts.screenshot(phone, "subscribe-phone")

    # Carol signs up for news on her phone. The honeypot is there, but not for her eyes.
    expect(phone.locator("input[name=website]")).to_have_count(1)
    expect(phone.locator("input[name=website]")).not_to_be_in_viewport()
    phone.locator("input[name=email]").fill(CAROL)
    phone.locator("input[name=name]").fill("Carol")
    phone.locator("input[name=lists][value=news]").check()
    phone.get_by_role("button", name="Subscribe").click()
    expect(phone.locator("body")).to_contain_text("Check your inbox")
    assert_no_horizontal_scroll(phone)
    artifacts.screenshot(phone, "check-your-inbox-phone")
    meet(world, CAROL)
    assert world.status(CAROL, "news") == "pending"

    # The confirmation mail; its link leads to this server.
    [mail] = to(outbox.arrived(wait=5), CAROL)
    links = re.findall(r"\S+/confirm/\S+", body(mail, "plain"))
    assert links and all(link.startswith(f"{site}/confirm/") for link in links), links
    phone.goto(links[0])
    expect(phone.locator("h1")).to_contain_text("Confirm your subscription")
    assert world.status(CAROL, "news") == "pending"  # opening the link confirms nothing
    phone.get_by_role("button", name="Confirm my subscription").click()
    expect(phone.locator("h1")).to_have_text("Subscription confirmed")
    expect(phone.locator("main")).to_contain_text("c***@example.com")
    assert_no_horizontal_scroll(phone)
    artifacts.screenshot(phone, "confirmed-phone")
    member = world.member(CAROL, "news")
    assert (member.status, member.confirmed_ip) == ("confirmed", "127.0.0.1")

    # The next edition reaches her, with the one-click header pointing here.
    send_edition(app, feed, clock, "Ferry timetable changes from Monday")
    mail = edition_mail(outbox, CAROL, "Ferry timetable changes from Monday")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    one_click = str(mail["List-Unsubscribe"]).split(",")[0].strip(" <>")
    assert one_click.startswith(f"{site}/unsubscribe/")

    # Her mail app unsubscribes her with one click (RFC 8058), from the browser context.
    r = phone.request.post(one_click, form={"List-Unsubscribe": "One-Click"})
    assert r.status == 200 and "You are unsubscribed" in r.text()
    member = world.member(CAROL, "news")
    assert (member.status, member.unsubscribe_reason) == ("unsubscribed", "one-click")

    # The next edition goes out, to Alice and not to her.
    send_edition(app, feed, clock, "Council approves new sea wall")
    arrived = outbox.arrived()
    assert to(arrived, ALICE) and not to(arrived, CAROL)
    assert world.status(CAROL, "news") == "unsubscribed"


def test_unsubscribe_by_the_link_at_the_foot_of_an_edition(
        phone: Page, site: str, app: App, world: World, feed: Feed, clock: Clock,
        artifacts: Artifacts) -> None:
    with app.sessions() as s:
        add_member(s, get_list(s, "news"), "dan@example.net", confirmed=True, now=clock())
        s.commit()
    outbox = Outbox(app)
    send_edition(app, feed, clock, "Harbour festival opens this weekend")
    mail = edition_mail(outbox, ALICE, "Harbour festival opens this weekend")
    [link] = lxml.html.fromstring(body(mail, "html")).xpath(
        '//a[contains(@class, "footer-link")][contains(@href, "/unsubscribe/")]/@href')
    assert link.startswith(f"{site}/unsubscribe/")

    # Opening the link changes nothing; the button does.
    phone.goto(link)
    expect(phone.locator("h1")).to_have_text("Unsubscribe from Morning News?")
    assert_no_horizontal_scroll(phone)
    artifacts.screenshot(phone, "unsubscribe-phone")
    assert world.status(ALICE, "news") == "confirmed"
    phone.get_by_role("button", name="Unsubscribe", exact=True).click()
    expect(phone.locator("h1")).to_have_text("You are unsubscribed")
    assert_no_horizontal_scroll(phone)
    artifacts.screenshot(phone, "unsubscribed-phone")
    member = world.member(ALICE, "news")
    assert (member.status, member.unsubscribe_reason) == ("unsubscribed", "link")
    assert world.status(ALICE, "sport") == "confirmed"  # the link was for news only

    # Back on the link later: nothing more to do there.
    phone.goto(link)
    expect(phone.locator("h1")).to_have_text("Already unsubscribed")

    send_edition(app, feed, clock, "Council approves new sea wall")
    arrived = outbox.arrived()
    assert to(arrived, "dan@example.net") and not to(arrived, ALICE)


# -- every public page on a phone ------------------------------------------------------


def test_public_pages_fit_a_phone(phone: Page, site: str, world: World,
                                  artifacts: Artifacts) -> None:
    pages = {
        "subscribe": ("/subscribe", 200),
        "subscribe-news": ("/subscribe/news", 200),
        "unsubscribe": ("/unsubscribe/" + world.token("unsubscribe", ALICE, "news"), 200),
        "unsubscribe-korean": ("/unsubscribe/" + world.token("unsubscribe", ALICE, "sport"), 200),
        "confirm": ("/confirm/" + world.token("confirm", BOB, "news"), 200),
        "bad-link": ("/unsubscribe/not-a-token", 400),
        "not-found": ("/nowhere", 404),
    }
    for name, (path, status) in pages.items():
        response = phone.goto(site + path)
        assert response is not None and response.status == status, (name, response)
        artifacts.screenshot(phone, name)
        assert_no_horizontal_scroll(phone)
    # The preference page, reached as a reader would: from the unsubscribe page.
    phone.goto(site + pages["unsubscribe"][0])
    phone.get_by_role("link", name="Change your preferences instead").click()
    expect(phone).to_have_url(re.compile(r"/preferences/"))
    expect(phone.locator("form")).not_to_have_count(0)
    artifacts.screenshot(phone, "preferences")
    assert_no_horizontal_scroll(phone)


def test_a_long_address_wraps_on_a_phone(phone: Page, site: str, app: App, world: World,
                                         clock: Clock, artifacts: Artifacts) -> None:
    # The pages show the address's whole domain: it must wrap, not push the page wide.
    long = "someone@mail.department-of-marine-engineering.harbour-university.example.ac.uk"
    with app.sessions() as s:
        add_member(s, get_list(s, "news"), long, confirmed=True, now=clock())
        s.commit()
    meet(world, long)
    phone.goto(site + "/unsubscribe/" + world.token("unsubscribe", long, "news"))
    artifacts.screenshot(phone, "unsubscribe")
    assert_no_horizontal_scroll(phone)
    phone.get_by_role("button", name="Unsubscribe", exact=True).click()
    expect(phone.locator("h1")).to_have_text("You are unsubscribed")
    artifacts.screenshot(phone, "unsubscribed")
    assert_no_horizontal_scroll(phone)
