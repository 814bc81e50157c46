"""The desk for people who use a keyboard or a screen reader, in headless Chromium:
every repeated button names its article; after each button the focus is back on it
(or on the item, or on the status message saying what was dropped); a Korean story on
an English list is marked Korean; an editor can do a whole edition with the keyboard
alone, seeing where the focus is; and axe-core finds nothing serious on any desk page,
light or dark, wide or 320 px narrow.

Names are read from Chromium's accessibility tree (the DevTools protocol), as a
screen reader gets them, not from the markup."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import CDPSession, Locator, Page, expect
from sqlalchemy import update

from digest.app import App
from digest.models import Article
from tests.conftest import Clock
from tests.test_curate import TITLES, add_articles
from tests.web.axe import assert_accessible
from tests.web.conftest import EDITOR_EMAIL, PASSWORD, World
from tests.web.test_browser_desk import headlines, item, log_in, pictures

pytestmark = pytest.mark.browser

COUNT = 8  # 4 told in full, 1 in "also new", 3 proposed


@pytest.fixture
def news(app: App, clock: Clock, world: World) -> World:
    """`world`, and 8 articles for "news" (an English list): the Korean headlines are
    marked Korean, as a feed that says so leaves them."""
    add_articles(app, clock, "news", COUNT)
    with app.sessions() as s:
        for i in range(COUNT):
            s.execute(update(Article).where(Article.guid == f"news-{i}")
                      .values(language="ko" if i % 2 == 0 else "en"))
        s.commit()
    app.settings = app.settings.with_overrides(edition__max_items=4, edition__brief_max=1)
    return world


def title(i: int) -> str:
    return TITLES[i % 2].format(i=i)


@pytest.fixture
def desk(page: Page, live_url: str, news: World, users: dict[str, str]) -> Iterator[str]:
    """The editor logged in, on the desk of a started draft: items 0-3 in full, 4 in
    "also new", 5-7 proposed."""
    url = f"{live_url}/desk/news"
    pictures(page)
    log_in(page, url)
    page.get_by_role("button", name="Start the next edition").click()
    expect(page.get_by_role("status")).to_have_text("The draft is started.")
    yield url


# -- the accessibility tree -----------------------------------------------------------


def cdp(page: Page) -> CDPSession:
    session = page.context.new_cdp_session(page)
    session.send("Accessibility.enable")
    return session


def ax_node(session: CDPSession, expression: str) -> dict[str, Any]:
    """The accessibility node of the element `expression` evaluates to: role, name,
    properties ({} for none)."""
    found = session.send("Runtime.evaluate", {"expression": expression})["result"]
    if "objectId" not in found:
        return {}
    nodes = session.send("Accessibility.getPartialAXTree",
                         {"objectId": found["objectId"], "fetchRelatives": False})["nodes"]
    session.send("Runtime.releaseObject", {"objectId": found["objectId"]})
    return dict(nodes[0]) if nodes else {}


def name_of(node: dict[str, Any]) -> str:
    return str(node.get("name", {}).get("value", ""))


def role_of(node: dict[str, Any]) -> str:
    return str(node.get("role", {}).get("value", ""))


def disabled(node: dict[str, Any]) -> bool:
    return any(p["name"] == "disabled" and p["value"].get("value")
               for p in node.get("properties", []))


def focused(session: CDPSession) -> dict[str, Any]:
    return ax_node(session, "document.activeElement")


# What a button shows: its text without the visually hidden part.
SHOWN = """(el) => { const copy = el.cloneNode(true);
    copy.querySelectorAll('.visually-hidden').forEach(h => h.remove());
    return copy.textContent.replace(/\\s+/g, ' ').trim(); }"""


def buttons(page: Page, session: CDPSession) -> list[tuple[str, str, bool]]:
    """(shown text, accessible name, disabled) of every button and disclosure
    (<summary>) on the page that a screen reader has now; the Save button of each
    closed edit form is not among them (page.evaluate opens them first)."""
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    found = []
    for n in range(page.locator("button, summary").count()):
        expression = f"document.querySelectorAll('button, summary')[{n}]"
        node = ax_node(session, expression)
        assert node and not node.get("ignored"), f"button {n} is not in the tree"
        shown = page.locator("button, summary").nth(n).evaluate(SHOWN)
        found.append((shown, name_of(node), disabled(node)))
    return found


def test_every_repeated_desk_button_names_its_article(page: Page, desk: str) -> None:
    # WCAG 2.4.6 and 4.1.2: "Drop" five times is five buttons a screen reader's list of
    # buttons cannot tell apart; 2.5.3: the name starts with the label a user sees.
    item(page, title(1)).get_by_role("button", name="Pin").click()  # one Unpin too
    expect(page.get_by_role("status")).to_contain_text("Pinned")
    assert len(headlines(page)) >= 3 and page.locator("li.proposal").count() >= 3
    found = buttons(page, cdp(page))
    shown = {text for text, _name, _off in found}
    assert {"Up", "Down", "Pin", "Unpin", "Drop", "Move to Also new", "Tell in full",
            "Save", "Add", "Edit headline, blurb and note"} <= shown
    enabled = [name for _text, name, off in found if not off]
    assert sorted(n for n in set(enabled) if enabled.count(n) > 1) == []
    for text, name, _off in found:
        assert name.startswith(text), (text, name)
    assert ("Drop “" + title(2) + "”", False) in {(n, off) for _t, n, off in found}
    assert ("Add “" + title(5) + "”", False) in {(n, off) for _t, n, off in found}


def focus(page: Page) -> Locator:
    """The focused element. Chromium focuses the `autofocus` element when it next
    renders, a moment after the page shows: `expect` on this waits for it."""
    return page.locator(":focus")


def test_the_focus_stays_on_the_control_that_was_used(page: Page, desk: str) -> None:

    item(page, title(1)).get_by_role("button", name="Pin").click()
    expect(page.get_by_role("status")).to_contain_text(f"Pinned “{title(1)}”")
    # The same button, now Unpin: pressed again, it unpins.
    expect(focus(page)).to_have_accessible_name(f"Unpin “{title(1)}”")
    assert headlines(page)[0] == title(1)
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text(f"Unpinned “{title(1)}”.")
    expect(focus(page)).to_have_accessible_name(f"Pin “{title(1)}”")

    item(page, title(3)).get_by_role("button", name="Up").click()
    expect(page.get_by_role("status")).to_have_text(f"Moved “{title(3)}” up, to number 3.")
    expect(focus(page)).to_have_accessible_name(f"Up “{title(3)}”")
    page.keyboard.press("Enter")  # again: to number 2
    expect(page.get_by_role("status")).to_contain_text("to number 2.")
    expect(focus(page)).to_have_accessible_name(f"Up “{title(3)}”")
    page.keyboard.press("Enter")  # to the top: Up is disabled there, the item has focus
    expect(page.get_by_role("status")).to_contain_text("to number 1.")
    assert headlines(page)[0] == title(3)
    expect(focus(page)).to_have_id(item(page, title(3)).get_attribute("id") or "?")
    item(page, title(3)).get_by_role("button", name="Down").click()
    expect(page.get_by_role("status")).to_contain_text(f"“{title(3)}” down, to number 2.")
    expect(focus(page)).to_have_accessible_name(f"Down “{title(3)}”")

    item(page, title(2)).get_by_role("button", name="Move to Also new").click()
    expect(page.get_by_role("status")).to_contain_text(f"Moved “{title(2)}” to \"Also new\"")
    expect(focus(page)).to_have_accessible_name(f"Tell in full “{title(2)}”")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text(f"Told in full: “{title(2)}”.")
    expect(focus(page)).to_have_accessible_name(f"Move to Also new “{title(2)}”")

    row = item(page, title(0))
    row.get_by_text("Edit headline, blurb and note").click()
    row.get_by_label("Blurb", exact=True).fill("Boats are back.")
    row.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text(f"Saved “{title(0)}”.")
    # Its form is open, showing what was saved.
    expect(focus(page)).to_have_accessible_name(f"Save “{title(0)}”")
    expect(item(page, title(0)).get_by_label("Blurb", exact=True)
           ).to_have_value("Boats are back.")

    page.locator("li.proposal").filter(has_text=title(6)).get_by_role("button").click()
    expect(page.get_by_role("status")).to_contain_text(f"Added “{title(6)}”")
    expect(focus(page)).to_have_id(item(page, title(6)).get_attribute("id") or "?")

    item(page, title(1)).get_by_role("button", name="Drop").click()
    status = page.get_by_role("status")
    expect(status).to_have_text(
        f"Dropped “{title(1)}”. Its article is among the proposals again.")
    expect(focus(page)).to_have_role("status")
    expect(focus(page)).to_contain_text(title(1))
    expect(page.locator("li.proposal").filter(has_text=title(1))).to_have_count(1)


def test_a_korean_story_on_an_english_list_is_marked_korean(page: Page, desk: str) -> None:
    # WCAG 3.1.2: a screen reader reads a headline in the voice its lang names.
    korean, english = item(page, title(0)), item(page, title(1))
    for part in ("h3", "p.summary"):
        expect(korean.locator(part)).to_have_attribute("lang", "ko")
        expect(english.locator(part)).not_to_have_attribute("lang", re.compile("."))
    expect(korean.locator("h3")).to_have_attribute("dir", "auto")
    # Also inside the buttons' names: "Drop" in English, the headline in Korean.
    drop = korean.get_by_role("button", name="Drop")
    expect(drop).not_to_have_attribute("lang", re.compile("."))
    expect(drop.locator("[lang]")).to_have_attribute("lang", "ko")
    expect(drop.locator("[lang]")).to_have_text(title(0))


# -- the keyboard alone ---------------------------------------------------------------


def outlined(page: Page) -> bool:
    """The focused element shows it: an outline or a box shadow. Asked a few times:
    Tab into a date field focuses its first part a moment after the field itself."""
    for _ in range(10):
        outline, width, shadow = page.evaluate("""() => {
            const s = getComputedStyle(document.activeElement);
            return [s.outlineStyle, s.outlineWidth, s.boxShadow]; }""")
        if (outline != "none" and width != "0px") or shadow != "none":
            return True
        page.wait_for_timeout(50)
    return False


def tab_to(page: Page, session: CDPSession, name: str | re.Pattern[str], *,
           back: bool = False, limit: int = 120) -> None:
    """Press Tab (Shift+Tab with `back`) until the focused element's accessible name is
    `name` (or matches it), checking that each stop on the way shows its focus."""
    for _ in range(limit):
        page.keyboard.press("Shift+Tab" if back else "Tab")
        if page.evaluate("document.activeElement === document.body"):
            continue  # past the end of the page, in the browser's own controls
        node = focused(session)
        if not node or role_of(node) in ("RootWebArea", "Iframe"):
            continue  # the frame's own document, which Chromium outlines itself
        found = name_of(node)
        assert outlined(page), f"no visible focus on {role_of(node)} {found!r}"
        if (found == name if isinstance(name, str) else name.fullmatch(found)):
            return
    raise AssertionError(f"{name!r} not reached in {limit} presses of Tab")


def test_an_editor_does_an_edition_with_the_keyboard_alone(
        page: Page, live_url: str, news: World, users: dict[str, str]) -> None:
    pictures(page)
    page.goto(f"{live_url}/desk/news")  # typed in the address bar
    session = cdp(page)
    tab_to(page, session, "Email")
    page.keyboard.type(EDITOR_EMAIL)
    tab_to(page, session, "Password")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{live_url}/desk/news")

    tab_to(page, session, "Start the next edition")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("The draft is started.")
    expect(focus(page)).to_have_role("status")  # the message is read out
    assert outlined(page)
    assert headlines(page) == [title(i) for i in range(5)]

    tab_to(page, session, f"Add “{title(5)}”")
    page.keyboard.press("Space")
    expect(page.get_by_role("status")).to_contain_text(f"Added “{title(5)}”")
    expect(focus(page)).to_have_id(item(page, title(5)).get_attribute("id") or "?")
    assert title(5) in headlines(page)

    # Reorder: the fourth up twice; the focus stays on its Up button between presses.
    tab_to(page, session, f"Up “{title(3)}”", back=True)
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("to number 3.")
    expect(focus(page)).to_have_accessible_name(f"Up “{title(3)}”")
    assert outlined(page)
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("to number 2.")
    assert headlines(page)[:4] == [title(0), title(3), title(1), title(2)]

    tab_to(page, session, "Preview", back=True)
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{live_url}/desk/news/preview")
    expect(page.get_by_role("heading", level=1)).to_have_text("Preview")
    tab_to(page, session, "Desktop preview")  # the frame's box scrolls on a phone
    tab_to(page, session, "Back to the desk", back=True)
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{live_url}/desk/news")

    tab_to(page, session, "Approve")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("Approved.")
    expect(page.locator("p.state")).to_contain_text("Approved · 6 articles")
    assert headlines(page)[:2] == [title(0), title(3)]


# -- axe ------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_nothing_serious_on_the_desk(page: Page, desk: str, scheme: str) -> None:
    page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
    item(page, title(1)).get_by_role("button", name="Pin").click()
    expect(page.get_by_role("status")).to_contain_text("Pinned")
    shown = {"/desk": desk.removesuffix("/news"), "/desk/news": page.url,  # with its status
             "/desk/news/preview": f"{desk}/preview", "/desk/news/send": f"{desk}/send"}
    for width in (1280, 320):
        page.set_viewport_size({"width": width, "height": 800})
        for path, url in shown.items():
            page.goto(url)
            assert_accessible(page, f"{path} {scheme} {width}px")
