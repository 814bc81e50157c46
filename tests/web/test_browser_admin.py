"""An admin in a real browser (headless Chromium) against uvicorn on loopback: logs in,
uploads a CSV with good and bad rows (an invalid address, a duplicate, a suppressed
address), checks the job's progress until its summary, downloads the rejects and reads
them; then the stats of sent editions. Screenshots go to test-artifacts/; the console's
pages are checked on a phone."""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from digest.app import App
from digest.gather.sources import add_source
from subscribers.lists import get_list
from subscribers.members import remove_member
from subscribers.suppress import suppress
from tests.conftest import Clock
from tests.deliver.conftest import SmtpSink, smtp_server  # noqa: F401  (a fixture)
from tests.test_stats import PEOPLE, Newsroom
from tests.web.browser import Artifacts, assert_no_horizontal_scroll
from tests.web.conftest import ADMIN_EMAIL, PASSWORD, World

pytestmark = pytest.mark.browser

UPLOAD = (
    "email,name,city\n"
    "dana@example.org,Dana,Lyon\n"
    "erin@example.org,Erin,Oslo\n"
    "this is not an address,Nobody,\n"  # line 4: rejected
    "dana@example.org,Dana,Lyon\n"  # a duplicate: unchanged
    "gone@example.org,Gone,\n"  # suppressed
    "frank@example,Frank,\n"  # line 7: rejected
)


def log_in(page: Page, base: str, path: str) -> None:
    page.goto(base + path)
    expect(page).to_have_url(f"{base}/login?next={path}")
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(base + path)


def test_an_admin_imports_a_csv_with_bad_rows_and_downloads_the_rejects(
        page: Page, live_url: str, world: World, users: dict[str, str], app: App,
        clock: Clock, tmp_path: Path, artifacts: Artifacts) -> None:
    with app.sessions() as s:
        suppress(s, "gone@example.org", "complaint", now=clock())
        s.commit()
    people = tmp_path / "new-readers.csv"
    people.write_text(UPLOAD)

    log_in(page, live_url, "/admin/imports")
    page.get_by_label("CSV file").set_input_files(people)
    page.get_by_label("Into the list").select_option("news")
    page.get_by_label("Already confirmed").check()
    page.get_by_role("button", name="Upload and import").click()

    # The job page never reloads itself: "Check progress" asks again until it is done.
    expect(page).to_have_url(f"{live_url}/admin/imports/1?checked=1")
    deadline = time.monotonic() + 30
    check = page.get_by_role("button", name="Check progress")
    while check.count():
        assert time.monotonic() < deadline, "the import did not finish"
        check.focus()
        with page.expect_navigation():
            page.keyboard.press("Enter")
        expect(page.get_by_role("status")).to_be_focused()
    expect(page.get_by_role("status")).to_contain_text("Done")
    summary = page.locator("table.summary")
    for label, count in (("Added", "2"), ("Unchanged", "1"), ("Suppressed", "1"),
                         ("Rejected", "2"), ("Updated", "0")):
        row = summary.get_by_role("row").filter(
            has=page.get_by_role("rowheader", name=label, exact=True))
        expect(row.locator("td.num")).to_have_text(count)
    artifacts.screenshot(page, "import-summary")

    with page.expect_download() as info:
        page.get_by_role("link", name="Download rejects").click()
    download = info.value
    assert download.suggested_filename == "new-readers-rejects.csv"
    rows = list(csv.reader(io.StringIO(Path(download.path()).read_text())))
    assert rows[0] == ["line", "row", "reason"]
    assert [(line, row) for line, row, _ in rows[1:]] == [
        ("4", "this is not an address,Nobody,"), ("7", "frank@example,Frank,")]
    assert all("is not a valid email address" in reason for _, _, reason in rows[1:])
    assert world.statuses()[("erin@example.org", "news")] == "confirmed"


def _sent_editions(app: App, sink: SmtpSink, clock: Clock, folder: Path) -> None:
    """Three editions of `daily` sent through `sink`, with bounces, a complaint and
    unsubscribes between them. In a thread of its own: the SMTP backend runs an asyncio
    loop, and Playwright holds one in the test's thread."""
    def work() -> None:
        room = Newsroom(app, sink, clock, folder)
        try:
            room.join(*PEOPLE)
            room.publish("Ferry times change")
            clock.advance(hours=20)
            with room.app.sessions() as s:
                remove_member(s, get_list(s, "daily"), PEOPLE[5], now=clock(), reason="link")
                s.commit()
            clock.advance(hours=4)
            room.publish("Harbour festival")
            clock.advance(hours=2)
            with room.app.sessions() as s:
                suppress(s, PEOPLE[2], "hard_bounce", now=clock())
                suppress(s, PEOPLE[3], "complaint", now=clock())
                s.commit()
            clock.advance(hours=22)
            room.publish("Sea wall approved")
        finally:
            room.close()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(60)


def test_the_stats_page_charts_sent_editions(
        page: Page, request: pytest.FixtureRequest, users: dict[str, str], app: App,
        clock: Clock, smtp_server: Callable[..., SmtpSink], tmp_path: Path,  # noqa: F811
        artifacts: Artifacts) -> None:
    _sent_editions(app, smtp_server(reject={PEOPLE[1]}), clock, tmp_path)
    # Served only now: live_url's sender would claim some of the editions' deliveries
    # for its own backend while the newsroom sends them into the sink.
    live_url: str = request.getfixturevalue("live_url")
    log_in(page, live_url, "/admin/stats/daily")
    chart = page.get_by_role("img", name="Editions of daily over time")
    expect(chart).to_be_visible()
    table = page.locator("table.stats-table")
    expect(table.locator("tbody tr")).to_have_count(3)
    second = table.locator("tbody tr").nth(1)
    expect(second).to_contain_text("Harbour festival")
    expect(second.locator("td")).to_have_text(
        ["2", "Daily: Harbour festival", "2026-11-28 06:00", "5", "4", "1", "1", "1", "0"])
    artifacts.screenshot(page, "stats")


@pytest.mark.parametrize("path", ["/admin", "/admin/lists/news", "/admin/subscribers",
                                  "/admin/sources", "/admin/imports", "/admin/users/1",
                                  "/admin/stats"])
def test_console_pages_fit_a_phone(phone: Page, live_url: str, app: App, world: World,
                                   users: dict[str, str], path: str,
                                   artifacts: Artifacts) -> None:
    """At 390 px: nothing scrolls sideways but tables, which show that they do (a
    shadow at the edge with more to see); the nav takes at most two lines; a source's
    row stays short."""
    _failing_sources(app)
    log_in(phone, live_url, path)
    assert_no_horizontal_scroll(phone)
    nav = phone.evaluate("""() => {
        const links = [...document.querySelectorAll('header.site-nav nav a')];
        const row = links[0].getBoundingClientRect().height;
        const gap = parseFloat(getComputedStyle(links[0].parentElement).rowGap) || 0;
        return {height: document.querySelector('header.site-nav nav')
                            .getBoundingClientRect().height,
                row, gap, lines: new Set(links.map(a =>
                    Math.round(a.getBoundingClientRect().top))).size};
    }""")
    assert nav["lines"] <= 2, nav
    assert nav["height"] <= 2 * nav["row"] + nav["gap"] + 1, nav
    for cue in phone.evaluate("""() => [...document.querySelectorAll('.table-scroll')]
        .filter(box => box.scrollWidth > box.clientWidth + 1)
        .map(box => getComputedStyle(box).backgroundImage)"""):
        assert "gradient" in cue, cue  # the edge shadow of a table that scrolls
    if path == "/admin/sources":
        rows = phone.locator("table.sources tbody tr")
        expect(rows).to_have_count(2)
        heights = [rows.nth(n).bounding_box()["height"]  # type: ignore[index]
                   for n in range(2)]
        assert max(heights) < 140, heights
    artifacts.screenshot(phone, "phone" + path.replace("/", "-"))


def _failing_sources(app: App) -> None:
    """Two sources of the news list, one failing with a long error, as a real console
    shows them."""
    with app.sessions() as s:
        news = get_list(s, "news")
        add_source(s, "https://news.example.org/feeds/all-the-harbour-news.xml", news)
        failing, _ = add_source(s, "https://ferries.example.net/timetables/feed.atom", news)
        failing.title = "Ferry timetables and service changes"
        failing.consecutive_failures = 3
        failing.last_error = ("HTTPSConnectionPool(host='ferries.example.net', port=443): "
                              "Max retries exceeded with url: /timetables/feed.atom "
                              "(Caused by NameResolutionError: failed to resolve)")
        s.commit()
