"""The account page: a logged-in user changes their own password, with the rules of
`digest users`, throttled like a login; the other sessions end, this one goes on with
a new cookie; a mistake is tied to its field."""

from __future__ import annotations

import lxml.html
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from digest.app import App
from digest.login_throttle import PAIR_FREE
from digest.models import LoginSession, User
from digest.web.auth import COOKIE
from tests.web.axe import assert_accessible
from tests.web.conftest import PASSWORD, csrf, form_csrf, log_in

NEW = "a new and longer passphrase"


def change(client: TestClient, current: str, new: str, again: str | None = None):  # type: ignore[no-untyped-def]
    return client.post("/account", data={"current": current, "new": new,
                                         "again": new if again is None else again,
                                         "csrf_token": csrf(client)})


def sessions_of(app: App, email: str) -> int:
    with app.sessions() as s:
        return s.scalar(select(func.count()).select_from(LoginSession).join(
            User, LoginSession.user_id == User.id).where(User.email == email)) or 0


def test_the_nav_links_to_the_account_page(editor_client: TestClient) -> None:
    r = editor_client.get("/desk")
    doc = lxml.html.document_fromstring(r.text)
    assert doc.xpath("//header//a[@href='/account']/text()") == ["Account"]
    page = editor_client.get("/account")
    assert page.status_code == 200
    assert "editor@example.org" in page.text and "Change your password" in page.text


def test_the_account_page_needs_a_login(client: TestClient, users: dict[str, str]) -> None:
    r = client.get("/account", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_a_new_password_ends_the_other_sessions_and_keeps_this_one(
        web: FastAPI, app: App, editor_client: TestClient, users: dict[str, str]) -> None:
    email = users["editor"]
    with TestClient(web) as phone:
        log_in(phone, email)
        assert sessions_of(app, email) == 2
        cookie_before = editor_client.cookies[COOKIE]
        r = change(editor_client, PASSWORD, NEW)
        assert r.status_code == 200, r.text
        doc = lxml.html.document_fromstring(r.text)
        status = doc.xpath("//*[@role='status']")[0]
        assert "password is changed" in status.text_content()
        assert "Every other session" in status.text_content()
        assert status.get("autofocus") is not None
        # This browser: a new cookie, still logged in; the phone: logged out.
        assert editor_client.cookies[COOKIE] != cookie_before
        assert editor_client.get("/account").status_code == 200
        assert phone.get("/account", follow_redirects=False).status_code == 303
        assert sessions_of(app, email) == 1
    # The new password logs in; the old one does not.
    with TestClient(web) as other:
        log_in(other, email, NEW)
    with TestClient(web) as other:
        page = other.get("/login")
        r = other.post("/login", data={"email": email, "password": PASSWORD,
                                       "csrf_token": form_csrf(page.text)})
        assert r.status_code == 400


@pytest.mark.parametrize(("current", "new", "again", "field", "words"), [
    ("wrong password", NEW, NEW, "current", "not your current password"),
    ("", NEW, NEW, "current", "Enter your current password"),
    (PASSWORD, "short", "short", "new", "too short; use at least 10 characters"),
    (PASSWORD, "x" * 1001, "x" * 1001, "new", "too long"),
    (PASSWORD, NEW, NEW + "!", "again", "differ"),
    (PASSWORD, PASSWORD, PASSWORD, "new", "is the one you have"),
])
def test_a_mistake_is_tied_to_its_field_and_changes_nothing(
        app: App, editor_client: TestClient, users: dict[str, str], current: str,
        new: str, again: str, field: str, words: str) -> None:
    r = change(editor_client, current, new, again)
    assert r.status_code == 400
    doc = lxml.html.document_fromstring(r.text)
    assert doc.xpath("string(//title)") == "Error: Account"
    alert = doc.xpath("//*[@role='alert']")[0]
    assert words in alert.text_content()
    bad = doc.xpath("//input[@aria-invalid='true']")
    assert [i.get("id") for i in bad] == [field]
    assert alert.get("id") in bad[0].get("aria-describedby").split()
    assert bad[0].get("autofocus") is not None
    assert NEW not in r.text and PASSWORD not in r.text  # never sent back
    assert sessions_of(app, users["editor"]) == 1
    assert editor_client.get("/account").status_code == 200


def test_wrong_current_passwords_are_throttled_like_logins(
        editor_client: TestClient, users: dict[str, str]) -> None:
    for _ in range(PAIR_FREE):
        assert change(editor_client, "wrong password", NEW).status_code == 400
    r = change(editor_client, PASSWORD, NEW)  # even the right one must wait now
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert "Too many wrong passwords" in r.text


def test_the_form_needs_its_csrf_token(editor_client: TestClient) -> None:
    r = editor_client.post("/account", data={"current": PASSWORD, "new": NEW, "again": NEW})
    assert r.status_code == 403


@pytest.mark.browser
@pytest.mark.parametrize(("scheme", "width"), [(scheme, width) for scheme in ("light", "dark")
                                               for width in (1280, 320)])
def test_the_account_page_passes_axe(page: Page, live_url: str, users: dict[str, str],
                                     scheme: str, width: int) -> None:
    page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(live_url + "/login?next=/account")
    page.get_by_label("Email").fill(users["editor"])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("h1")).to_have_text("Account")
    assert_accessible(page, f"account ({scheme}, {width} px)")
    page.get_by_label("Current password").fill("not my password")
    page.get_by_label("New password", exact=True).fill(NEW)
    page.get_by_label("New password again").fill(NEW)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_label("Current password")).to_be_focused()
    assert_accessible(page, f"account, a failed change ({scheme}, {width} px)")
