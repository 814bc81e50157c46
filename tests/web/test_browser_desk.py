"""The editor's desk in a real browser (headless Chromium) against uvicorn on loopback:
log in, start the edition, drop one article, reorder others with Up and Down, write an
intro, check the preview's frames, confirm and send; the outbox then holds the edition
for each confirmed subscriber, in the new order, without the dropped article.
Screenshots of the desk (desktop and phone) and of the preview go to test-artifacts/."""

from __future__ import annotations

import struct
import time
import zlib
from email.message import EmailMessage

import pytest
from playwright.sync_api import Page, Route, expect

from digest.app import App
from subscribers.lists import get_list
from subscribers.members import add_member
from tests.conftest import Clock
from tests.test_curate import TITLES, add_articles, outbox
from tests.web.browser import Artifacts, assert_no_horizontal_scroll
from tests.web.conftest import ALICE, EDITOR_EMAIL, PASSWORD, World

pytestmark = pytest.mark.browser

CAROL = "carol@example.com"
INTRO = "Good morning from the harbour. The storm has passed."
COLOURS = [(31, 95, 191), (155, 34, 38), (46, 125, 50), (230, 160, 30), (90, 60, 150)]


def png(rgb: tuple[int, int, int]) -> bytes:
    """A 4x3 picture of one colour: the articles' thumbnails, served by the browser's
    router, since the test has no network."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    rows = b"".join(b"\x00" + bytes(rgb) * 4 for _ in range(3))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 3, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def pictures(page: Page) -> None:
    def answer(route: Route) -> None:
        number = int(route.request.url.rsplit("/", 1)[1].split(".")[0])
        route.fulfill(status=200, content_type="image/png", body=png(COLOURS[number % 5]))
    page.context.route("https://images.example.org/**", answer)


def log_in(page: Page, url: str) -> None:
    page.goto(url)
    expect(page).to_have_url(f"{url.split('/desk')[0]}/login?next=/desk/news")
    page.get_by_label("Email").fill(EDITOR_EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(url)


def headlines(page: Page) -> list[str]:
    return page.locator("li.item h3").all_inner_texts()


def item(page: Page, title: str):  # type: ignore[no-untyped-def]
    return page.locator("li.item").filter(has_text=title)


def body(mail: EmailMessage, kind: str) -> str:
    part = mail.get_body((kind,))
    assert part is not None
    return str(part.get_content())


def in_order(text: str, titles: list[str]) -> bool:
    found = [text.find(t) for t in titles]
    return -1 not in found and found == sorted(found)


@pytest.mark.both_databases
def test_an_editor_drops_reorders_writes_previews_and_sends(
        page: Page, phone: Page, live_url: str, app: App, world: World, clock: Clock,
        users: dict[str, str], artifacts: Artifacts) -> None:
    add_articles(app, clock, "news", 6)
    with app.sessions() as s:
        add_member(s, get_list(s, "news"), CAROL, confirmed=True, now=clock())
        s.commit()
    t = [TITLES[i % 2].format(i=i) for i in range(6)]  # newest first
    desk = f"{live_url}/desk/news"
    pictures(page)
    log_in(page, desk)
    page.get_by_role("button", name="Start the next edition").click()
    expect(page.get_by_role("status")).to_have_text("The draft is started.")
    assert headlines(page) == t

    item(page, t[1]).get_by_role("button", name="Drop").click()
    expect(page.get_by_role("status")).to_contain_text("Dropped")
    item(page, t[3]).get_by_role("button", name="Up").click()  # t3 above t2
    expect(page.get_by_role("status")).to_have_text(f"Moved “{t[3]}” up, to number 2.")
    item(page, t[0]).get_by_role("button", name="Down").click()  # t0 below t3
    expect(page.locator("li.item h3").first).to_have_text(t[3])
    order = [t[3], t[0], t[2], t[4], t[5]]
    assert headlines(page) == order

    page.get_by_label("Introduction").fill(INTRO)
    page.get_by_role("button", name="Save subject and introduction").click()
    expect(page.get_by_role("status")).to_have_text("Subject and introduction saved.")
    expect(page.get_by_label("Introduction")).to_have_value(INTRO)
    artifacts.screenshot(page, "desk-desktop")

    pictures(phone)
    log_in(phone, desk)
    expect(phone.locator("li.item h3").first).to_have_text(t[3])
    assert_no_horizontal_scroll(phone)
    artifacts.screenshot(phone, "desk-phone")

    page.get_by_role("link", name="Preview").click()
    expect(page).to_have_url(f"{desk}/preview")
    for frame_title in ("The email at desktop width", "The email at phone width"):
        email = page.frame_locator(f"iframe[title='{frame_title}']").locator("body")
        expect(email).to_contain_text(INTRO)
        shown = email.inner_text()
        assert in_order(shown, order) and t[1] not in shown, frame_title
    # The frames are sandboxed, and Chromium paints a sandboxed frame in a process of
    # its own, only where the window shows it: a window as tall as the page, for the
    # picture.
    size = page.viewport_size
    assert size is not None
    page.set_viewport_size({"width": size["width"],
                            "height": page.evaluate("document.documentElement.scrollHeight")})
    artifacts.screenshot(page, "preview")
    page.set_viewport_size(size)
    phone.goto(f"{desk}/preview")
    expect(phone.frame_locator("iframe[title='The email at phone width']").locator("body")
           ).to_contain_text(INTRO)
    assert_no_horizontal_scroll(phone)  # the desktop frame scrolls inside its box
    artifacts.screenshot(phone, "preview-phone")

    page.goto(desk)
    page.get_by_role("link", name="Send now…").click()
    expect(page.locator(".count")).to_have_text("This edition goes to 2 subscribers.")
    artifacts.screenshot(page, "send-confirm")
    page.get_by_role("button", name="Send to 2 subscribers").click()
    expect(page.get_by_role("status")).to_contain_text("Sending has started")

    # The live server's sender thread delivers them, as in `digest serve`.
    deadline = time.monotonic() + 15
    while len(mails := outbox(app)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(str(m["To"]) for m in mails) == [ALICE, CAROL]
    for mail in mails:
        text, html = body(mail, "plain"), body(mail, "html")
        assert INTRO in text and in_order(text, order) and t[1] not in text
        assert in_order(html[html.index("Good morning"):], order) and t[1] not in html
