"""The admin console's lists, sources and users, through a logged-in admin's client:
what the pages show, what the forms change, and what they refuse (with the core's
words, and the typed values kept)."""

from __future__ import annotations

import datetime as dt
import re

import httpx2 as httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from digest.app import App
from digest.gather.lease import take_lease
from digest.models import ApiToken, Article, ListSource, Source, User
from digest.users import token_user
from subscribers.lists import get_list
from subscribers.models import MailingList
from tests.conftest import DATA, Clock
from tests.loopback import feed_server
from tests.web.conftest import ADMIN_EMAIL, PASSWORD, World, csrf, log_in

FEED = (DATA / "flow" / "news.xml").read_bytes()


def _post(client: TestClient, path: str, /, **data: str) -> httpx.Response:
    return client.post(path, data={"csrf_token": csrf(client), **data}, follow_redirects=False)


def _cells(html: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>",
                                                                   html, re.S)]


# -- lists -------------------------------------------------------------------------------


def test_the_lists_table_counts_members_per_status(admin_client: TestClient,
                                                   world: World) -> None:
    page = admin_client.get("/admin/lists")
    assert page.status_code == 200
    cells = _cells(page.text)
    news = cells.index("news")
    assert cells[news:news + 6] == ["news", "Morning News", "1", "1", "0", "active"]
    assert page.headers["cache-control"] == "no-store"


def test_creating_a_list_with_a_bad_cron_shows_the_cores_message_and_keeps_the_form(
        admin_client: TestClient, world: World, app: App) -> None:
    answer = _post(admin_client, "/admin/lists", name="weekly", title="Weekly Roundup",
                   from_addr="Weekly <w@example.org>", schedule="every monday",
                   timezone="Mars/Olympus", language="en", double_optin="on")
    assert answer.status_code == 400
    html = answer.text
    assert "Schedule &#39;every monday&#39; is not a cron expression of 5 fields" in html
    assert "Time zone &#39;Mars/Olympus&#39; is unknown" in html
    assert 'value="Weekly Roundup"' in html and 'value="weekly"' in html
    with app.sessions() as s:
        assert s.scalar(select(MailingList).where(MailingList.name == "weekly")) is None
    assert admin_client.get("/admin/lists/weekly").status_code == 404


def test_a_taken_name_is_refused_by_the_core(admin_client: TestClient, world: World) -> None:
    answer = _post(admin_client, "/admin/lists", name="news", title="Again",
                   from_addr="n@example.org", schedule="0 7 * * *", timezone="UTC",
                   language="en")
    assert answer.status_code == 400
    assert "List &#39;news&#39; exists; pick another name" in answer.text


def test_a_list_is_created_then_its_settings_saved(admin_client: TestClient, world: World,
                                                    app: App) -> None:
    answer = _post(admin_client, "/admin/lists", name="weekly", title="Weekly",
                   from_addr="Weekly <w@example.org>", schedule="0 8 * * mon",
                   timezone="Europe/Berlin", language="de", double_optin="on")
    assert answer.status_code == 303
    page = admin_client.get(answer.headers["location"])
    assert "The list is created." in page.text and 'value="0 8 * * mon"' in page.text
    saved = _post(admin_client, "/admin/lists/weekly", title="Weekly Digest",
                  description="Every Monday", from_addr="Weekly <w@example.org>",
                  reply_to="", schedule="30 6 * * mon-fri", timezone="Asia/Seoul",
                  mode="review", review_policy="notify", editor_emails="Ed <ed@example.org>",
                  language="ko", local_time="on")
    assert saved.status_code == 303
    with app.sessions() as s:
        weekly = get_list(s, "weekly")
        assert (weekly.title, weekly.schedule, weekly.timezone, weekly.mode) == (
            "Weekly Digest", "30 6 * * mon-fri", "Asia/Seoul", "review")
        assert (weekly.review_policy, weekly.editor_emails, weekly.language) == (
            "notify", "ed@example.org", "ko")
        # Unticked boxes are off: double opt-in, public and keep tracking were not sent.
        assert (weekly.local_time, weekly.double_optin, weekly.public) == (True, False, False)
        assert weekly.keep_tracking is False


def test_keep_tracking_is_ticked_on_the_settings_form(admin_client: TestClient, world: World,
                                                      app: App) -> None:
    form = admin_client.get("/admin/lists/news").text
    assert 'name="keep_tracking"' in form and "Keep tracking in links" in form
    saved = _post(admin_client, "/admin/lists/news", title="Morning News",
                  from_addr="News <n@example.org>", reply_to="", schedule="0 7 * * *",
                  timezone="UTC", mode="auto", review_policy="hold", editor_emails="",
                  language="en", double_optin="on", public="on", keep_tracking="on")
    assert saved.status_code == 303
    with app.sessions() as s:
        assert get_list(s, "news").keep_tracking is True
    assert 'name="keep_tracking" checked' in admin_client.get("/admin/lists/news").text


def test_the_mail_settings_of_issue_11_are_on_the_console(admin_client: TestClient,
                                                         world: World, app: App) -> None:
    """The create form asks for the postal address; the settings form shows a warning while
    there is none and saves it with the layout, contents, accent colour and logo."""
    assert 'name="postal_address"' in admin_client.get("/admin/lists").text
    created = _post(admin_client, "/admin/lists", name="weekly", title="Weekly",
                    from_addr="Weekly <w@example.org>", postal_address="1 Quay St\nBristol",
                    schedule="0 8 * * mon", timezone="UTC", language="en")
    assert created.status_code == 303
    with app.sessions() as s:
        assert get_list(s, "weekly").postal_address == "1 Quay St\nBristol"
    form = admin_client.get("/admin/lists/news").text
    assert "This list has no postal address" in form
    settings = dict(title="Morning News", from_addr="News <n@example.org>", reply_to="",
                    schedule="0 7 * * *", timezone="UTC", mode="auto", review_policy="hold",
                    editor_emails="", language="en", public="on")
    refused = _post(admin_client, "/admin/lists/news", **settings, layout="grid",
                    accent_color="blue", logo_url="logo.png", postal_address="2 Pier Rd")
    assert refused.status_code == 400
    for message in ("Layout &#39;grid&#39; is not one of hero, compact",
                    "Accent colour &#39;blue&#39; is not a colour like #1a73e8",
                    "Logo URL &#39;logo.png&#39; is not an absolute https://"):
        assert message in refused.text
    saved = _post(admin_client, "/admin/lists/news", **settings, layout="compact", toc="on",
                  accent_color="#075", logo_url="https://example.org/logo.png",
                  postal_address="2 Pier Rd\nBrighton BN1")
    assert saved.status_code == 303
    with app.sessions() as s:
        news = get_list(s, "news")
        assert (news.postal_address, news.layout, news.toc, news.accent_color, news.logo_url) == (
            "2 Pier Rd\nBrighton BN1", "compact", True, "#007755", "https://example.org/logo.png")
    form = admin_client.get("/admin/lists/news").text
    assert "This list has no postal address" not in form
    assert '<option value="compact" selected>' in form and 'name="toc" checked' in form


def test_bad_settings_change_nothing_and_come_back_as_typed(
        admin_client: TestClient, world: World, app: App) -> None:
    answer = _post(admin_client, "/admin/lists/news", title="Evening News",
                   from_addr="not an address", schedule="0 7 * * *", timezone="UTC",
                   mode="auto", review_policy="sometimes", language="en", double_optin="on",
                   public="on")
    assert answer.status_code == 400
    html = answer.text
    assert "Review policy &#39;sometimes&#39; is not one of hold, notify, send" in html
    assert "not a valid email address" in html
    assert 'value="Evening News"' in html
    with app.sessions() as s:
        assert get_list(s, "news").title == "Morning News"


def test_archive_and_bring_back(admin_client: TestClient, world: World, app: App) -> None:
    assert _post(admin_client, "/admin/lists/news/archive",
                 action="archive").status_code == 303
    with app.sessions() as s:
        assert get_list(s, "news").archived_at is not None
    assert "archived" in admin_client.get("/admin/lists").text
    _post(admin_client, "/admin/lists/news/archive", action="unarchive")
    with app.sessions() as s:
        assert get_list(s, "news").archived_at is None


# -- sources -----------------------------------------------------------------------------


def test_add_fetch_link_unlink_and_remove_a_source(admin_client: TestClient, world: World,
                                                   app: App) -> None:
    with feed_server(lambda path: FEED if path == "/feed" else None) as base:
        added = _post(admin_client, "/admin/sources", url=f"{base}/feed", list="news")
        assert added.status_code == 303
        page = admin_client.get("/admin/sources")
        assert "never fetched" in page.text and f"{base}/feed" in page.text
        with app.sessions() as s:
            source_id = s.scalars(select(Source.id)).one()
        fetched = _post(admin_client, f"/admin/sources/{source_id}/fetch")
        assert fetched.status_code == 303
        page = admin_client.get(fetched.headers["location"])
        assert "Fetched Harbour Gazette: 3 new articles." in page.text
        assert 'badge-ok">ok<' in page.text

        # The same feed failing: the health says so, with the error.
        added = _post(admin_client, "/admin/sources", url=f"{base}/broken", list="sport")
        with app.sessions() as s:
            broken = s.scalars(select(Source.id).where(Source.url.endswith("/broken"))).one()
        fetched = _post(admin_client, f"/admin/sources/{broken}/fetch")
        page = admin_client.get(fetched.headers["location"])
        assert "Fetching 127.0.0.1" in page.text and "500" in page.text
        assert 'badge-failing">failing<' in page.text
        assert "Sources needing attention" in (overview := admin_client.get("/admin").text)
        assert "failing" in overview

    assert _post(admin_client, "/admin/lists/sport/sources",
                 source_id=str(source_id)).status_code == 303
    with app.sessions() as s:
        assert s.get(ListSource, (world.lists["sport"], source_id)) is not None
    _post(admin_client, f"/admin/lists/sport/sources/{source_id}/unlink")
    with app.sessions() as s:
        assert s.get(ListSource, (world.lists["sport"], source_id)) is None
    _post(admin_client, f"/admin/sources/{broken}/remove")
    with app.sessions() as s:
        assert s.get(Source, broken) is None

    # The source with articles goes too, with them and its links.
    removed = _post(admin_client, f"/admin/sources/{source_id}/remove")
    assert removed.status_code == 303, removed.text
    assert "The source and its articles are removed." in admin_client.get(
        removed.headers["location"]).text
    with app.sessions() as s:
        assert s.get(Source, source_id) is None
        assert s.scalars(select(Article.id)).all() == []
        assert s.scalars(select(ListSource)).all() == []


def test_fetch_now_of_a_source_being_fetched_elsewhere_says_so(
        admin_client: TestClient, world: World, app: App, clock: Clock) -> None:
    asked: list[str] = []
    with feed_server(lambda path: asked.append(path) or FEED) as base:
        with app.sessions() as s:
            source = Source(url=f"{base}/feed", title="Harbour Gazette")
            s.add(source)
            s.commit()
            assert take_lease(s, source.id, "the scheduler", clock(), dt.timedelta(minutes=5))
        fetched = _post(admin_client, f"/admin/sources/{source.id}/fetch")
        assert fetched.headers["location"] == f"/admin/sources?busy={source.id}"
        page = admin_client.get(fetched.headers["location"])
        assert "Harbour Gazette is being fetched elsewhere" in page.text
        assert asked == []


def test_a_source_must_be_a_web_url(admin_client: TestClient, world: World) -> None:
    answer = _post(admin_client, "/admin/sources", url="/etc/passwd", list="news")
    assert answer.status_code == 400
    assert "is not an http(s) URL" in answer.text
    assert 'value="/etc/passwd"' in answer.text


# -- users -------------------------------------------------------------------------------


def test_an_admin_adds_a_user_who_can_then_log_in(admin_client: TestClient, app: App,
                                                  web: FastAPI) -> None:
    answer = _post(admin_client, "/admin/users", email="New@Example.org", name="Nia",
                   role="editor", password="a long enough password")
    assert answer.status_code == 303
    assert "The user is added" in admin_client.get(
        answer.headers["location"]).text
    with TestClient(web) as other:
        log_in(other, "new@example.org", "a long enough password")
        assert other.get("/admin", follow_redirects=False).status_code == 403  # an editor


def test_adding_a_user_with_a_short_password_is_refused(admin_client: TestClient) -> None:
    answer = _post(admin_client, "/admin/users", email="new@example.org", name="Nia",
                   role="editor", password="short")
    assert answer.status_code == 400
    assert "The password is too short" in answer.text
    assert 'value="new@example.org"' in answer.text


def _user_id(app: App, email: str) -> int:
    with app.sessions() as s:
        return s.scalars(select(User.id).where(User.email == email)).one()


def test_the_last_admin_cannot_demote_or_disable_themselves(
        admin_client: TestClient, app: App) -> None:
    me = _user_id(app, ADMIN_EMAIL)
    for data in ({"action": "role", "role": "editor"}, {"action": "disable"}):
        answer = _post(admin_client, f"/admin/users/{me}", **data)
        assert answer.status_code == 400
        assert ("This would leave no active admin: "
                f"{ADMIN_EMAIL} is the last one.") in answer.text
    with app.sessions() as s:
        user = s.get_one(User, me)
        assert (user.role, user.disabled) == ("admin", False)
    assert admin_client.get("/admin").status_code == 200  # still logged in


def test_with_a_second_admin_one_may_step_down(admin_client: TestClient, app: App,
                                               users: dict[str, str]) -> None:
    editor = _user_id(app, users["editor"])
    _post(admin_client, f"/admin/users/{editor}", action="role", role="admin")
    me = _user_id(app, ADMIN_EMAIL)
    answer = _post(admin_client, f"/admin/users/{me}", action="role", role="editor")
    assert answer.status_code == 303
    # Their session ended with the role change.
    assert admin_client.get("/admin", follow_redirects=False).status_code == 303


def test_disable_enable_and_reset_a_password(admin_client: TestClient, app: App,
                                             users: dict[str, str], web: FastAPI) -> None:
    editor = _user_id(app, users["editor"])
    _post(admin_client, f"/admin/users/{editor}", action="disable")
    with app.sessions() as s:
        assert s.get_one(User, editor).disabled
    _post(admin_client, f"/admin/users/{editor}", action="enable")
    answer = _post(admin_client, f"/admin/users/{editor}", action="password",
                   password="a brand new passphrase")
    assert answer.status_code == 303
    with TestClient(web) as other:
        log_in(other, users["editor"], "a brand new passphrase")
    with TestClient(web) as other:
        page = other.get("/login")
        assert page.status_code == 200
        bad = other.post("/login", data={"email": users["editor"], "password": PASSWORD,
                                         "csrf_token": csrf(other)}, follow_redirects=False)
        assert bad.status_code == 400


def test_a_token_is_shown_once_works_and_can_be_revoked(
        admin_client: TestClient, app: App, users: dict[str, str], clock: Clock) -> None:
    editor = _user_id(app, users["editor"])
    made = _post(admin_client, f"/admin/users/{editor}/tokens", name="zapier")
    assert made.status_code == 200
    assert made.headers["cache-control"] == "no-store"
    raw = re.search(r'id="new-token">([^<]+)<', made.text).group(1)  # type: ignore[union-attr]
    with app.sessions() as s:
        user = token_user(s, raw, now=clock())
        assert user is not None and user.email == users["editor"]
        token_id = s.scalars(select(ApiToken.id)).one()
    page = admin_client.get(f"/admin/users/{editor}").text
    assert raw not in page and raw[:8] in page and "zapier" in page
    _post(admin_client, f"/admin/users/{editor}/tokens/{token_id}/revoke")
    with app.sessions() as s:
        assert token_user(s, raw, now=clock()) is None
    assert "revoked" in admin_client.get(f"/admin/users/{editor}").text
