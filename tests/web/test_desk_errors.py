"""A desk form that is refused, as a screen reader user meets it (headless Chromium,
accessibility tree): the page's title starts "Error:", the message at the top names the
article by its headline and has the focus, the field it is about is aria-invalid and
described by the message next to it, and what was typed is still in the form (an item's
edit form open). A button from a page that is out of date (the article was dropped in
another tab) ends on the desk's own address, saying which article, never by its row id.

The forms are sent with `noValidate` set, as a browser without the checks would send
them, so that the server's own refusal is what is tested."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.web.axe import assert_accessible
from tests.web.test_browser_desk import item
from tests.web.test_browser_desk_a11y import desk, focus, news, title

pytestmark = pytest.mark.browser
__all__ = ["desk", "news"]  # fixtures, from the desk's other browser tests


def unchecked(form: Locator) -> None:
    """The form sent as it is: the browser's own checks (required, type=url) off."""
    form.evaluate("form => { form.noValidate = true; }")


def refused(page: Page, field: Locator, reason: str | re.Pattern[str], typed: str) -> None:
    """What assistive tech gets of a refused form: an error page, the focus on the
    message, the field invalid, described by `reason` and holding what was `typed`."""
    expect(page).to_have_title(re.compile(r"^Error: "))
    message = page.locator("#error")
    expect(message).to_have_attribute("role", "alert")
    expect(focus(page)).to_have_id("error")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_accessible_description(reason)
    expect(field).to_have_value(typed)


def test_an_empty_headline_is_refused_naming_the_article(page: Page, desk: str) -> None:
    row = item(page, title(0))
    row.get_by_text("Edit headline, blurb and note").click()
    unchecked(row.locator("form[action$='/edit']"))
    row.get_by_label("Headline").fill("   ")
    row.get_by_label("Blurb", exact=True).fill("Boats are back.")
    row.get_by_label("Editor's note").fill("Our reporter was there.")
    row.get_by_role("button", name="Save").click()

    reason = "The headline cannot be empty; drop the article instead."
    row = item(page, title(0))  # the page again: its headline is the one saved
    refused(page, row.get_by_label("Headline"), reason, "   ")
    expect(page.locator("#error")).to_have_text(
        f"“{title(0)}” was not changed: the headline cannot be empty; drop the article "
        "instead.")
    expect(row.locator("details.edit")).to_have_attribute("open", "")
    expect(row.get_by_label("Blurb", exact=True)).to_have_value("Boats are back.")
    expect(row.get_by_label("Editor's note")).to_have_value("Our reporter was there.")
    assert_accessible(page, "/desk/news refused headline")


def test_an_empty_subject_is_refused_and_kept(page: Page, desk: str) -> None:
    form = page.locator("form[action$='/intro']")
    unchecked(form)
    form.get_by_label("Subject").fill("  ")
    form.get_by_label("Introduction").fill("Good morning.")
    form.get_by_role("button", name="Save subject and introduction").click()

    form = page.locator("form[action$='/intro']")
    refused(page, form.get_by_label("Subject"), "The subject cannot be empty.", "  ")
    expect(page.locator("#error")).to_have_text("The subject cannot be empty.")
    expect(form.get_by_label("Introduction")).to_have_value("Good morning.")


def test_an_address_that_is_not_a_web_page_is_refused_and_kept(page: Page, desk: str) -> None:
    form = page.locator("form[action$='/add-url']")
    unchecked(form)
    form.get_by_label("Article URL").fill("file:///etc/passwd")
    form.get_by_role("button", name="Fetch and add").click()

    field = page.get_by_label("Article URL")
    refused(page, field, re.compile(r"^'file:///etc/passwd' is not a web address"),
            "file:///etc/passwd")
    expect(page.locator("#error")).to_contain_text("is not a web address")


def test_a_time_in_the_past_is_refused_and_kept(page: Page, desk: str) -> None:
    form = page.locator("form.schedule")
    unchecked(form)
    form.get_by_label("Send at").fill("2020-01-01T07:00")
    form.get_by_role("button", name="Schedule").click()

    reason = "That time has passed; pick a time in the future, or send now."
    refused(page, page.get_by_label("Send at"), reason, "2020-01-01T07:00")
    expect(page.locator("#error")).to_have_text(reason)


@pytest.mark.parametrize("button", ["Drop", "Save", "Down"])
def test_a_button_for_an_article_dropped_in_another_tab(
        page: Page, desk: str, button: str) -> None:
    other = page.context.new_page()  # tab B, on the same desk
    other.goto(desk)
    item(page, title(1)).get_by_role("button", name="Drop").click()  # tab A drops it
    expect(page.get_by_role("status")).to_contain_text(f"Dropped “{title(1)}”")

    row = item(other, title(1))
    if button == "Save":
        row.get_by_text("Edit headline, blurb and note").click()
    row.get_by_role("button", name=button).click()

    # The desk's own address (a redirect): reloading it posts nothing again.
    expect(other).to_have_url(re.compile(r"/desk/news\?error=gone&article=\d+$"))
    expect(other).to_have_title(re.compile(r"^Error: "))
    message = other.locator("#error")
    expect(message).to_have_attribute("role", "alert")
    expect(message).to_have_text(
        f"The article “{title(1)}” is no longer in this edition (it was dropped in "
        "another tab, or by another editor); nothing was changed.")
    expect(focus(other)).to_have_id("error")
    said = message.inner_text()
    assert "reload" not in said.lower() and not re.search(r"\bitem\b", said, re.I)
    other.reload()  # nothing posted again: the same message, the desk as it is
    expect(other.locator("#error")).to_contain_text(title(1))
    expect(item(other, title(1))).to_have_count(0)
    other.close()
