"""The public pages for people who do not use a mouse or do not see the screen, in
headless Chromium against uvicorn on loopback:

- axe-core (tests/web/axe.py) on every public page, light and dark, at 1280 and 320 CSS
  px: no violation at impact serious or critical;
- a form sent back with an error names the field it is about (aria-invalid, the message
  as the field's description, focus on it) and says so in the tab's title;
- form fields have borders of at least 3:1 against what surrounds them (WCAG 1.4.11);
- a reader who uses only the keyboard subscribes, confirms, changes preferences and
  unsubscribes, seeing where focus is at every step."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from digest.app import App
from tests.conftest import Clock
from tests.web.axe import assert_accessible
from tests.web.conftest import ALICE, BOB, World
from tests.web.test_browser_subscriber import (  # noqa: F401  (fixtures)
    Feed,
    Outbox,
    body,
    feed,
    meet,
    send_edition,
    site,
    to,
)

pytestmark = pytest.mark.browser

CAROL = "carol@example.com"
MODES = [(scheme, width) for scheme in ("light", "dark") for width in (1280, 320)]


def show(page: Page, scheme: str, width: int) -> None:
    page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
    page.set_viewport_size({"width": width, "height": 900})


def public_pages(world: World) -> dict[str, str]:
    """Every public page reachable by GET: name -> path."""
    return {
        "front": "/",
        "subscribe": "/subscribe",
        "subscribe-news": "/subscribe/news",
        "subscribe-korean": "/subscribe/sport",
        "confirm": "/confirm/" + world.token("confirm", BOB, "news"),
        "unsubscribe": "/unsubscribe/" + world.token("unsubscribe", ALICE, "news"),
        "unsubscribe-korean": "/unsubscribe/" + world.token("unsubscribe", ALICE, "sport"),
        "preferences": "/preferences/" + world.token("manage", ALICE, "news"),
        "archive": "/archive",
        "archive-news": "/archive/news",
        "login": "/login",
        "bad-link": "/unsubscribe/not-a-token",
        "not-found": "/nowhere",
    }


def send_anyway(page: Page) -> None:
    """Send the page's form past the browser's own checks (`required`, type=email), as
    an old browser or a bot would: the server must answer."""
    page.locator("form.subscribe-form").evaluate("form => { form.noValidate = true; }")
    page.get_by_role("button", name=re.compile("^(Subscribe|구독 신청)$")).click()


@pytest.mark.parametrize(("scheme", "width"), MODES)
def test_every_public_page_passes_axe(page: Page, browser: Browser, site: str,  # noqa: F811
                                      app: App, world: World, feed: Feed,  # noqa: F811
                                      clock: Clock, scheme: str, width: int) -> None:
    send_edition(app, feed, clock, "Ferry timetable changes from Monday")
    show(page, scheme, width)
    for name, path in public_pages(world).items():
        page.goto(site + path)
        assert_accessible(page, f"{name} ({scheme}, {width} px)")

    # An edition in the archive is served with a CSP sandbox that turns scripts off,
    # axe's timers included: it is checked in a context that ignores CSP.
    context = browser.new_context(bypass_csp=True, color_scheme=scheme,  # type: ignore[arg-type]
                                  viewport={"width": width, "height": 900})
    try:
        edition = context.new_page()
        edition.goto(site + "/archive/news/1")
        expect(edition.locator("body")).to_contain_text("Ferry timetable changes")
        assert_accessible(edition, f"archive edition ({scheme}, {width} px)")
    finally:
        context.close()

    # The pages a form leads to.
    page.goto(site + "/subscribe")
    page.get_by_label("Email").fill("nobody@")
    send_anyway(page)
    expect(page.get_by_role("alert")).to_be_visible()
    assert_accessible(page, f"subscribe, a bad address ({scheme}, {width} px)")
    page.get_by_label("Email").fill(CAROL)
    page.locator("input[name=lists][value=news]").check()
    page.get_by_role("button", name="Subscribe").click()
    expect(page.locator("h1")).to_have_text("Check your inbox")
    assert_accessible(page, f"check your inbox ({scheme}, {width} px)")

    page.goto(site + "/login")
    page.get_by_label("Email").fill("someone@example.org")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    assert_accessible(page, f"login, failed ({scheme}, {width} px)")


# -- errors ------------------------------------------------------------------------------


def focused(locator: Locator) -> bool:
    return bool(locator.evaluate("el => el === document.activeElement"))


def test_a_missing_list_is_told_at_the_lists_and_a_bad_address_at_the_address(
        page: Page, site: str, world: World) -> None:  # noqa: F811
    page.goto(site + "/subscribe")
    page.get_by_label("Email").fill(CAROL)
    page.get_by_role("button", name="Subscribe").click()

    message = "Please tick at least one list."
    expect(page).to_have_title(re.compile(r"^Error: "))
    expect(page.get_by_role("alert")).to_have_text(message)
    boxes = page.get_by_role("group", name="Lists").get_by_role("checkbox")
    expect(boxes).to_have_count(2)
    for box in boxes.all():
        expect(box).to_have_attribute("aria-invalid", "true")
        expect(box).to_have_accessible_description(message)
    assert focused(boxes.first), "focus is not on the first list"
    email = page.get_by_label("Email")
    expect(email).not_to_have_attribute("aria-invalid", "true")
    expect(email).to_have_accessible_description("")
    expect(email).to_have_value(CAROL)  # what was typed stays

    email.fill("carol@")
    page.locator("input[name=lists][value=news]").check()
    send_anyway(page)
    expect(page).to_have_title(re.compile(r"^Error: "))
    expect(email).to_have_attribute("aria-invalid", "true")
    said = page.get_by_role("alert").inner_text()
    assert "carol@" in said or "address" in said, said
    expect(email).to_have_accessible_description(said)
    assert focused(email), "focus is not on the address"
    for box in boxes.all():
        expect(box).not_to_have_attribute("aria-invalid", "true")
    expect(page.locator("input[name=lists][value=news]")).to_be_checked()


def test_the_korean_form_says_it_failed_in_korean(page: Page, site: str,  # noqa: F811
                                                   world: World) -> None:
    page.goto(site + "/subscribe/sport")
    title = page.title()
    page.get_by_role("checkbox").uncheck()
    page.locator("input[name=email]").fill(CAROL)
    send_anyway(page)
    expect(page).to_have_title(f"오류: {title}")
    expect(page.get_by_role("checkbox")).to_have_accessible_description(
        "뉴스레터를 하나 이상 선택해 주세요.")


def test_a_failed_login_marks_both_fields(page: Page, site: str, world: World,  # noqa: F811
                                          users: dict[str, str]) -> None:
    page.goto(site + "/login")
    page.get_by_label("Email").fill(users["editor"])
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_title("Error: Log in")
    said = page.get_by_role("alert").inner_text()
    for field in (page.get_by_label("Email"), page.get_by_label("Password")):
        expect(field).to_have_attribute("aria-invalid", "true")
        expect(field).to_have_accessible_description(said)


@pytest.mark.parametrize("path", ["/subscribe", "/login"])
def test_no_error_message_is_left_unreferenced(page: Page, site: str, world: World,  # noqa: F811
                                               path: str) -> None:
    page.goto(site + path)
    page.locator("form:has(button[type=submit])").last.evaluate(
        "form => { form.noValidate = true; }")
    page.locator("button[type=submit]").last.click()
    expect(page.get_by_role("alert")).to_be_visible()
    lonely = page.evaluate("""() => [...document.querySelectorAll('[id]')]
        .filter(el => /error/i.test(el.id))
        .filter(el => !document.querySelector(
            `[aria-describedby~="${el.id}"], [aria-errormessage="${el.id}"]`))
        .map(el => el.id)""")
    assert lonely == [], f"error messages no field refers to: {lonely}"


# -- contrast of field borders ----------------------------------------------------------


def luminance(rgb: tuple[float, ...]) -> float:
    def channel(c: float) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (channel(c) for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


# Each field's border colour, and the colour behind the field: the nearest ancestor
# with a background that is not transparent.
_BORDERS = """() => [...document.querySelectorAll(
        'input:not([type=hidden]):not([type=checkbox]):not([type=radio]), select, textarea')]
    .filter(el => el.offsetParent !== null)
    .map(el => {
        let around = el.parentElement, behind = 'rgba(0, 0, 0, 0)';
        while (around) {
            behind = getComputedStyle(around).backgroundColor;
            if (!/rgba\\(.*, 0\\)$/.test(behind) && behind !== 'transparent') break;
            around = around.parentElement;
        }
        return {field: el.id || el.name, border: getComputedStyle(el).borderTopColor,
                width: getComputedStyle(el).borderTopWidth, behind};
    })"""


def rgb(css: str) -> tuple[float, ...]:
    return tuple(float(n) for n in re.findall(r"[\d.]+", css)[:3])


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_form_fields_have_borders_of_at_least_3_to_1(
        page: Page, site: str, world: World, scheme: str,  # noqa: F811
        users: dict[str, str], log_in_as: Callable[[Page, str], None]) -> None:
    page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
    seen = []
    for path in ("/subscribe", "/login"):
        page.goto(site + path)
        seen += [(path, f) for f in page.evaluate(_BORDERS)]
    log_in_as(page, users["admin"])
    for path in ("/admin/lists/news", "/admin/subscribers", "/desk/news"):
        page.goto(site + path)
        seen += [(path, f) for f in page.evaluate(_BORDERS)]
    assert len(seen) >= 8, seen
    weak = [(path, f["field"], round(contrast(rgb(f["border"]), rgb(f["behind"])), 2))
            for path, f in seen
            if contrast(rgb(f["border"]), rgb(f["behind"])) < 3 or f["width"] == "0px"]
    assert weak == [], f"field borders under 3:1 ({scheme}): {weak}"


@pytest.fixture
def log_in_as(site: str) -> Callable[[Page, str], None]:  # noqa: F811
    def log_in(page: Page, email: str) -> None:
        from tests.web.conftest import PASSWORD
        page.goto(site + "/login")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("button", name="Log out")).to_be_visible()
    return log_in


# -- the keyboard walk ------------------------------------------------------------------


def tab_to(page: Page, target: Locator, *, limit: int = 40) -> None:
    """Press Tab until `target` has focus, as a keyboard user would; each control on
    the way must show where focus is."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        ring = page.evaluate("""() => {
            const el = document.activeElement, style = getComputedStyle(el);
            return {tag: el.tagName, text: (el.innerText || el.value || '').slice(0, 40),
                    outline: style.outlineStyle !== 'none' && style.outlineWidth !== '0px',
                    shadow: style.boxShadow !== 'none'};
        }""")
        if ring["tag"] != "BODY":
            assert ring["outline"] or ring["shadow"], f"no visible focus on {ring}"
        if focused(target):
            return
    raise AssertionError(f"{target} not reached in {limit} presses of Tab")


@pytest.mark.both_databases
def test_a_keyboard_user_subscribes_confirms_changes_preferences_and_leaves(
        page: Page, site: str, app: App, world: World) -> None:  # noqa: F811
    outbox = Outbox(app)
    page.goto(site + "/subscribe")
    assert_accessible(page, "subscribe (keyboard walk)")

    tab_to(page, page.get_by_label("Email"))
    page.keyboard.type(CAROL)
    tab_to(page, page.get_by_label("Name"))
    page.keyboard.type("Carol")
    news = page.get_by_role("checkbox", name="Morning News")
    tab_to(page, news)
    page.keyboard.press("Space")
    expect(news).to_be_checked()
    tab_to(page, page.get_by_role("button", name="Subscribe"))
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Check your inbox")
    meet(world, CAROL)
    assert world.status(CAROL, "news") == "pending"

    [mail] = to(outbox.arrived(wait=5), CAROL)
    [link, *_] = re.findall(r"\S+/confirm/\S+", body(mail, "plain"))
    page.goto(link)
    tab_to(page, page.get_by_role("button", name="Confirm my subscription"))
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Subscription confirmed")
    assert world.status(CAROL, "news") == "confirmed"

    # From the unsubscribe page, the way to preferences instead.
    page.goto(site + "/unsubscribe/" + world.token("unsubscribe", CAROL, "news"))
    tab_to(page, page.get_by_role("link", name="Change your preferences instead"))
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/preferences/"))
    sport = page.get_by_role("checkbox", name="스포츠 소식")
    tab_to(page, sport)
    page.keyboard.press("Space")
    tab_to(page, page.get_by_role("button", name="Save"))
    page.keyboard.press("Enter")
    notice = page.get_by_role("status")
    expect(notice).to_be_visible()
    # Focus is on what the save did, so a screen reader reads it; not back at the top.
    assert focused(notice), "focus is not on the notice after saving"
    assert world.status(CAROL, "sport") in {"pending", "confirmed"}
    assert_accessible(page, "preferences, saved (keyboard walk)")

    page.goto(site + "/unsubscribe/" + world.token("unsubscribe", CAROL, "news"))
    tab_to(page, page.get_by_role("button", name="Unsubscribe", exact=True))
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("You are unsubscribed")
    assert world.status(CAROL, "news") == "unsubscribed"
    assert_accessible(page, "unsubscribed (keyboard walk)")
