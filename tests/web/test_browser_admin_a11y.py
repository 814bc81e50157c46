"""The admin console for people who do not use a mouse or do not see the screen, in
headless Chromium against uvicorn on loopback:

- an import job's page never reloads itself (WCAG 2.2.1); "Check progress", pressed
  with the keyboard, brings the figures back with the focus on the job's status;
- buttons and links repeated per row ("Remove" per source, "Unlink" per list source)
  each have a name of their own that starts with what the button shows (WCAG 2.5.3);
- a refused form has a summary of what is wrong at the top, focused, its fields marked
  invalid and described by their own messages, and "Error:" in the tab's title;
- axe-core (tests/web/axe.py) on every console page, light and dark, at 1280 and 320
  CSS px: no violation at impact serious or critical."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import update

from digest import imports
from digest.app import App
from digest.gather.sources import add_source
from digest.users import get_user, make_token
from subscribers.lists import get_list
from subscribers.models import ImportJob, ImportStatus
from tests.conftest import Clock
from tests.deliver.conftest import SmtpSink, smtp_server  # noqa: F401  (a fixture)
from tests.web.axe import assert_accessible
from tests.web.conftest import ADMIN_EMAIL, ALICE, World
from tests.web.test_browser_admin import _sent_editions, log_in

pytestmark = pytest.mark.browser

MODES = [(scheme, width) for scheme in ("light", "dark") for width in (1280, 320)]
UPLOAD = "email,name\ndana@example.org,Dana\nerin@example.org,Erin\nnot an address,X\n"
# Two sources with titles, two never fetched from one host: their labels (the host) are
# the same, so their buttons must say more than the label.
FEEDS = [("https://gazette.example.org/rss", "Harbour Gazette"),
         ("https://desk.example.net/atom", "City Desk"),
         ("https://feeds.example.com/sport.xml", ""),
         ("https://feeds.example.com/weather.xml", "")]

# The text of an element as drawn: text inside a box at most 1 px wide (the
# visually-hidden pattern) is for screen readers only.
VISIBLE_TEXT = """el => {
    const walk = n => n.nodeType === Node.TEXT_NODE ? n.textContent
        : [...n.childNodes].filter(c => c.nodeType === Node.TEXT_NODE
                                        || c.getBoundingClientRect().width > 1)
                           .map(walk).join('');
    return walk(el).replace(/\\s+/g, ' ').trim();
}"""


def show(page: Page, scheme: str, width: int) -> None:
    page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
    page.set_viewport_size({"width": width, "height": 900})


def add_sources(app: App) -> None:
    """FEEDS, all feeding news (the first two also sport)."""
    with app.sessions() as s:
        news, sport = get_list(s, "news"), get_list(s, "sport")
        for i, (url, title) in enumerate(FEEDS):
            source, _ = add_source(s, url, news)
            source.title = title
            if i < 2:
                add_source(s, url, sport)
        s.commit()


def running_job(app: App, clock: Clock, tmp_path: Path, rows: int = 1200) -> int:
    """An import job that shows as running and never ends (no thread works on it)."""
    path = tmp_path / "slow.csv"
    path.write_text(UPLOAD)
    with app.sessions() as s:
        job = imports.create_job(s, get_list(s, "news"), filename="slow.csv", path=path,
                                 size=path.stat().st_size, confirmed=True,
                                 created_by=ADMIN_EMAIL, now=clock())
        job.status, job.rows = ImportStatus.RUNNING, rows
        s.commit()
        return job.id


def press(button: Locator) -> None:
    """Press a button as a keyboard user does: focus it, then Enter; back when the
    page it asks for has loaded."""
    button.focus()
    expect(button).to_be_focused()
    with button.page.expect_navigation():
        button.page.keyboard.press("Enter")


def accessible_name(element: Locator) -> str:
    """The name Playwright computes for the element (as in get_by_role(name=...))."""
    match = re.match(r'- \w+ "(.*)"', element.aria_snapshot())
    assert match, element.aria_snapshot()
    return match.group(1).replace('\\"', '"')


# -- the import job's progress -------------------------------------------------------


def test_check_progress_by_keyboard_focuses_the_figures_until_the_summary(
        page: Page, live_url: str, world: World, users: dict[str, str], app: App,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The upload's job waits until the test starts it, so the page can be seen while
    # the job works, however fast the machine.
    held: list[int] = []
    start = imports.start
    monkeypatch.setattr(imports, "start", lambda app, job_id: held.append(job_id))
    people = tmp_path / "few.csv"
    people.write_text(UPLOAD)

    log_in(page, live_url, "/admin/imports")
    page.get_by_label("CSV file").set_input_files(people)
    page.get_by_label("Into the list").select_option("news")
    page.get_by_label("Already confirmed").check()
    answer = page.expect_response(re.compile(r"/admin/imports/\d+(\?checked=1)?$"))
    with answer as info:
        page.get_by_role("button", name="Upload and import").click()
    assert "refresh" not in info.value.headers
    assert page.locator("meta[http-equiv]").count() == 0
    check = page.get_by_role("button", name="Check progress")
    expect(check).to_be_visible()
    expect(page.get_by_text("This page does not reload by itself")).to_be_visible()
    # Arriving from the upload, focus is on the job's status, so a screen reader says
    # the import has begun (a live region filled before the page loads is not read).
    status = page.get_by_role("status")
    expect(status).to_be_focused()
    press(check)
    expect(page).to_have_url(re.compile(r"/admin/imports/\d+\?checked=1$"))
    expect(status).to_be_focused()
    expect(status).to_contain_text("Waiting to start… 0 rows done so far.")

    # The import thread's heartbeat, as it writes the rows done so far.
    with app.sessions() as s:
        s.execute(update(ImportJob).where(ImportJob.id == held[0])
                  .values(status=ImportStatus.RUNNING, rows=2))
        s.commit()
    press(check)
    expect(status).to_be_focused()
    expect(status).to_contain_text("Importing… 2 rows done so far.")

    start(app, held[0])
    assert imports.wait(30)
    press(check)
    expect(status).to_be_focused()
    expect(status).to_contain_text(re.compile(r"Done at .*: 3 rows\."))
    expect(check).to_have_count(0)
    summary = page.get_by_role("table", name="What each row did")
    for label, count in (("Added", "2"), ("Rejected", "1")):
        row = summary.get_by_role("row").filter(
            has=page.get_by_role("rowheader", name=label, exact=True))
        expect(row.get_by_role("cell").first).to_have_text(count)


# -- names of repeated buttons ---------------------------------------------------------


def assert_buttons_named_apart(page: Page) -> list[str]:
    """Every enabled button of the page has a name no other has, starting with the
    text it shows; the names."""
    names = []
    for button in page.get_by_role("button").all():
        if button.is_disabled():
            continue
        shown = button.evaluate(VISIBLE_TEXT)
        name = accessible_name(button)
        assert name.startswith(shown), (shown, name)
        names.append(name)
    repeated = sorted({n for n in names if names.count(n) > 1})
    assert not repeated, f"buttons sharing a name on {page.url}: {repeated}"
    return names


def test_repeated_buttons_each_say_what_they_act_on(
        page: Page, live_url: str, world: World, users: dict[str, str], app: App) -> None:
    add_sources(app)
    log_in(page, live_url, "/admin/sources")
    names = assert_buttons_named_apart(page)
    assert "Remove “Harbour Gazette”" in names and "Fetch now “City Desk”" in names
    assert "Remove “feeds.example.com” (https://feeds.example.com/sport.xml)" in names
    expect(page.get_by_role("button", name="Remove", exact=True)).to_have_count(0)

    page.goto(live_url + "/admin/lists/news")
    names = assert_buttons_named_apart(page)
    assert len([n for n in names if n.startswith("Unlink")]) == 4
    assert "Unlink “Harbour Gazette”" in names

    page.goto(live_url + f"/admin/subscribers/{world.ids[ALICE]}")
    names = assert_buttons_named_apart(page)
    assert {"Set status on news", "Set status on sport"} <= set(names)


def test_revoke_buttons_name_their_token(page: Page, live_url: str, world: World,
                                         users: dict[str, str], app: App,
                                         clock: Clock) -> None:
    with app.sessions() as s:
        admin = get_user(s, ADMIN_EMAIL)
        make_token(s, admin, name="zapier", now=clock())
        make_token(s, admin, name="zapier", now=clock())
        make_token(s, admin, name="", now=clock())
        admin_id = admin.id
        s.commit()
    log_in(page, live_url, f"/admin/users/{admin_id}")
    names = assert_buttons_named_apart(page)
    revokes = [n for n in names if n.startswith("Revoke")]
    assert len(revokes) == 3
    assert all(re.fullmatch(r"Revoke the token (“zapier”, )?starting dg_\S+", n)
               for n in revokes), revokes


def test_per_row_links_say_which_row(page: Page, live_url: str, world: World,
                                     users: dict[str, str]) -> None:
    log_in(page, live_url, "/admin")
    stats = page.get_by_role("main").get_by_role("link", name=re.compile("^Stats"))
    expect(stats).to_have_count(2)
    assert [accessible_name(link) for link in stats.all()] == ["Stats of news",
                                                               "Stats of sport"]


# -- a refused form ------------------------------------------------------------------


def assert_errors_tied_to_fields(page: Page) -> None:
    """Every element whose id speaks of an error is the description of some field."""
    loose = page.evaluate("""() => {
        const used = new Set([...document.querySelectorAll('[aria-describedby]')]
            .flatMap(el => el.getAttribute('aria-describedby').split(/\\s+/)));
        return [...document.querySelectorAll('[id*=error]')].map(el => el.id)
            .filter(id => !used.has(id));
    }""")
    assert loose == [], f"error messages no field refers to: {loose}"


def test_a_refused_new_list_says_what_is_wrong_at_the_top_and_at_each_field(
        page: Page, live_url: str, world: World, users: dict[str, str]) -> None:
    log_in(page, live_url, "/admin/lists")
    name = page.get_by_role("textbox", name=re.compile("^Name"))
    name.fill("Bad Name!")
    page.get_by_role("textbox", name=re.compile("^From")).fill("News <n@example.org>")
    page.get_by_role("textbox", name=re.compile("^Schedule")).fill("whenever")
    page.get_by_role("button", name="Create list").click()

    assert page.title().startswith("Error: ")
    summary = page.get_by_role("alert")
    expect(summary).to_be_focused()
    expect(summary).to_contain_text("The list was not created")
    # At the top: before the tables and the form.
    assert summary.bounding_box()["y"] < page.get_by_role("table").bounding_box()["y"]

    schedule = page.get_by_role("textbox", name=re.compile("^Schedule"))
    expect(schedule).to_have_attribute("aria-invalid", "true")
    message = page.locator("#" + schedule.get_attribute("aria-describedby"))
    expect(message).to_be_visible()
    expect(message).to_contain_text("whenever")
    expect(schedule).to_have_accessible_description(message.inner_text())
    expect(page.get_by_role("textbox", name=re.compile("^Title"))).not_to_have_attribute(
        "aria-invalid", "true")
    assert_errors_tied_to_fields(page)

    # Each problem in the summary leads to its field.
    summary.get_by_role("link", name=re.compile("whenever")).click()
    expect(schedule).to_be_focused()


def test_refused_settings_users_and_sources_are_tied_to_their_fields(
        page: Page, live_url: str, world: World, users: dict[str, str]) -> None:
    log_in(page, live_url, "/admin/lists/news")
    page.get_by_role("textbox", name=re.compile("^Language")).fill("not a language")
    page.get_by_role("button", name="Save settings").click()
    assert page.title().startswith("Error: ")
    expect(page.get_by_role("alert")).to_be_focused()
    language = page.get_by_role("textbox", name=re.compile("^Language"))
    expect(language).to_have_attribute("aria-invalid", "true")
    expect(language).to_have_accessible_description(re.compile("not a language"))
    assert_errors_tied_to_fields(page)

    page.goto(live_url + "/admin/users")
    page.get_by_role("textbox", name="Email").fill("new@example.org")
    page.get_by_label("Initial password").fill("short")
    page.get_by_label("Initial password").evaluate("el => el.form.noValidate = true")
    page.get_by_role("button", name="Add user").click()
    assert page.title().startswith("Error: ")
    expect(page.get_by_role("alert")).to_be_focused()
    password = page.get_by_label("Initial password")
    expect(password).to_have_attribute("aria-invalid", "true")
    expect(password).to_have_accessible_description(re.compile("too short"))
    expect(page.get_by_role("textbox", name="Email")).not_to_have_attribute(
        "aria-invalid", "true")
    assert_errors_tied_to_fields(page)

    page.goto(live_url + "/admin/sources")
    page.get_by_label("Feed URL").fill("not a url")
    page.get_by_role("button", name="Add source").click()
    assert page.title().startswith("Error: ")
    expect(page.get_by_role("alert")).to_be_focused()
    expect(page.get_by_label("Feed URL")).to_have_accessible_description(
        re.compile("not an http"))
    assert_errors_tied_to_fields(page)


# -- axe on every page -----------------------------------------------------------------


def test_every_console_page_passes_axe(
        page: Page, request: pytest.FixtureRequest, world: World, users: dict[str, str],
        app: App, clock: Clock, smtp_server: Callable[..., SmtpSink],  # noqa: F811
        tmp_path: Path) -> None:
    _sent_editions(app, smtp_server(), clock, tmp_path)  # editions of `daily`, charted
    # Served only now: live_url's sender would claim the editions' deliveries.
    live_url: str = request.getfixturevalue("live_url")
    add_sources(app)
    with app.sessions() as s:
        admin = get_user(s, ADMIN_EMAIL)
        make_token(s, admin, name="zapier", now=clock())
        admin_id = admin.id
        s.commit()
    running = running_job(app, clock, tmp_path)
    people = tmp_path / "few.csv"
    people.write_text(UPLOAD)

    log_in(page, live_url, "/admin/imports")
    page.get_by_label("CSV file").set_input_files(people)
    page.get_by_role("button", name="Upload and import").click()
    assert imports.wait(30)
    done = page.url.removeprefix(live_url).split("?")[0]
    pages = {
        "overview": "/admin", "lists": "/admin/lists", "list": "/admin/lists/news",
        "sources": "/admin/sources", "subscribers": "/admin/subscribers",
        "subscriber": f"/admin/subscribers/{world.ids[ALICE]}",
        "imports": "/admin/imports", "import-running": f"/admin/imports/{running}",
        "import-running-checked": f"/admin/imports/{running}?checked=1",
        "import-done": done, "import-done-checked": done + "?checked=1",
        "stats": "/admin/stats", "stats-list": "/admin/stats/daily",
        "stats-empty": "/admin/stats/news", "users": "/admin/users",
        "user": f"/admin/users/{admin_id}",
    }
    failures = []
    for scheme, width in MODES:
        show(page, scheme, width)
        for label, path in pages.items():
            response = page.goto(live_url + path)
            assert response is not None and response.ok, path
            assert "refresh" not in response.headers, path
            failures += _axe(page, f"{label} ({scheme}, {width} px)")
        page.goto(live_url + "/admin/lists/news")
        page.get_by_role("textbox", name=re.compile("^Schedule")).fill("whenever")
        page.get_by_role("button", name="Save settings").click()
        expect(page.get_by_role("alert")).to_be_focused()
        failures += _axe(page, f"list, refused ({scheme}, {width} px)")
        page.goto(live_url + "/admin/lists")
        page.get_by_role("button", name="Create list").click()
        expect(page.get_by_role("alert")).to_be_focused()
        failures += _axe(page, f"lists, refused ({scheme}, {width} px)")
    assert not failures, "\n\n".join(failures)


def _axe(page: Page, label: str) -> list[str]:
    """assert_accessible's complaint, kept so every page is checked in one run."""
    try:
        assert_accessible(page, label)
    except AssertionError as exc:
        return [str(exc)]
    return []
