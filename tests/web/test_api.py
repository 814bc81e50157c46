"""The JSON API's lists, members, people, suppressions and sources, over HTTP with bearer
tokens: each endpoint's answer, its main refusals, and what the database holds after."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from digest.app import App
from digest.models import Article, Source
from subscribers.models import Membership
from tests.conftest import Clock
from tests.web.api_support import *  # noqa: F403
from tests.web.api_support import error_of, mail_in, sent_to, walk_pages
from tests.web.conftest import ALICE, BOB, World

NEW_LIST = {"name": "weekly", "title": "The Weekly", "from_addr": "Weekly <w@example.org>",
            "schedule": "0 8 * * mon", "timezone": "Europe/Berlin", "mode": "review",
            "review_policy": "notify", "editor_emails": "ed@example.org", "local_time": True}


# -- lists ------------------------------------------------------------------------------


def test_editors_read_lists_with_their_counts(editor_api: TestClient, world: World) -> None:
    page = editor_api.get("/lists").json()
    assert page["next"] is None
    assert [item["name"] for item in page["data"]] == ["news", "sport"]
    news = page["data"][0]
    assert news["title"] == "Morning News"
    assert news["members"] == {"pending": 1, "confirmed": 1, "unsubscribed": 0}
    one = editor_api.get("/lists/sport").json()
    assert one["title"] == "스포츠 소식" and one["language"] == "ko"
    assert one["recipients"] == 1 and one["editions"] == 0 and one["last_sent_at"] is None


def test_admins_create_a_list_with_every_setting(admin_api: TestClient, world: World) -> None:
    answer = admin_api.post("/lists", json=NEW_LIST)
    assert answer.status_code == 201, answer.text
    assert answer.headers["location"] == "http://testserver/api/v1/lists/weekly"
    created = answer.json()
    for key, value in NEW_LIST.items():
        assert created[key] == value, key
    assert created["double_optin"] is True and created["archived_at"] is None
    assert admin_api.get("/lists/weekly").json() == created


def test_a_list_is_refused_with_the_reason(admin_api: TestClient, world: World) -> None:
    error = error_of(admin_api.post("/lists", json={**NEW_LIST, "name": "news"}), 422,
                     "invalid_value")
    assert error["message"] == "list 'news' exists; pick another name or use that list"
    error = error_of(admin_api.post("/lists", json={**NEW_LIST, "timezone": "Mars/Olympus"}),
                     422, "invalid_value")
    assert "time zone 'Mars/Olympus' is unknown" in error["message"]
    error = error_of(admin_api.post("/lists", json={"name": "x", "titel": "typo"}), 422,
                     "invalid_request")
    assert {(d["in"], d["field"]) for d in error["details"]} == {
        ("body", "from_addr"), ("body", "titel")}
    names = [item["name"] for item in admin_api.get("/lists").json()["data"]]
    assert names == ["news", "sport"]


def test_the_mail_settings_of_issue_11_are_in_the_api(admin_api: TestClient,
                                                      world: World) -> None:
    news = admin_api.get("/lists/news").json()
    assert {k: news[k] for k in ("postal_address", "layout", "toc", "accent_color",
                                 "logo_url")} == {"postal_address": "", "layout": "hero",
                                                  "toc": False, "accent_color": "",
                                                  "logo_url": ""}
    changed = admin_api.patch("/lists/news", json={
        "postal_address": "1 Quay St\nBristol BS1", "layout": "compact", "toc": True,
        "accent_color": "#A52", "logo_url": "https://example.org/logo.png"}).json()
    assert (changed["postal_address"], changed["layout"], changed["toc"],
            changed["accent_color"], changed["logo_url"]) == (
        "1 Quay St\nBristol BS1", "compact", True, "#aa5522", "https://example.org/logo.png")
    error = error_of(admin_api.patch("/lists/news", json={"logo_url": "ftp://x/l.png"}), 422,
                     "invalid_value")
    assert "logo URL 'ftp://x/l.png' is not an absolute https://" in error["message"]
    error_of(admin_api.patch("/lists/news", json={"layout": "grid"}), 422, "invalid_request")


def test_admins_change_rename_archive_and_restore_a_list(
        admin_api: TestClient, world: World, clock: Clock) -> None:
    changed = admin_api.patch("/lists/news", json={"title": "Evening News", "public": False,
                                                   "description": None}).json()
    assert changed["title"] == "Evening News" and changed["public"] is False
    assert changed["keep_tracking"] is False
    changed = admin_api.patch("/lists/news", json={"keep_tracking": True}).json()
    assert changed["keep_tracking"] is True
    assert admin_api.get("/lists/news").json()["keep_tracking"] is True
    renamed = admin_api.patch("/lists/news", json={"name": "evening"}).json()
    assert renamed["name"] == "evening"
    error_of(admin_api.get("/lists/news"), 404, "not_found")

    archived = admin_api.delete("/lists/evening").json()
    assert archived["archived_at"] == clock().isoformat().replace("+00:00", "Z")
    assert [item["name"] for item in admin_api.get("/lists").json()["data"]] == ["sport"]
    listed = admin_api.get("/lists", params={"archived": True}).json()["data"]
    assert [item["name"] for item in listed] == ["evening", "sport"]
    restored = admin_api.patch("/lists/evening", json={"archived": False}).json()
    assert restored["archived_at"] is None
    assert restored["members"] == {"pending": 1, "confirmed": 1, "unsubscribed": 0}


def test_a_bad_change_changes_nothing(admin_api: TestClient, world: World) -> None:
    error = error_of(admin_api.patch("/lists/news", json={"title": "New", "schedule": "daily"}),
                     422, "invalid_value")
    assert "schedule 'daily' is not a cron expression" in error["message"]
    assert admin_api.get("/lists/news").json()["title"] == "Morning News"


def test_an_unknown_list_is_a_404_that_says_which_lists_there_are(
        editor_api: TestClient, world: World) -> None:
    error = error_of(editor_api.get("/lists/nope"), 404, "not_found")
    assert error["message"].startswith("list 'nope' not found; lists are: news, sport")


# -- members of a list ------------------------------------------------------------------


def test_adding_a_subscriber_queues_a_confirmation_for_the_worker(
        admin_api: TestClient, world: World, app: App) -> None:
    answer = admin_api.post("/lists/news/subscribers",
                            json={"email": "Carol@Example.org", "name": "Carol"})
    assert answer.status_code == 201, answer.text
    member = answer.json()
    assert member["email"] == "carol@example.org" and member["status"] == "pending"
    assert member["outcome"] == "added" and member["confirmation_queued"] is True
    assert member["origin"] == "api"
    assert mail_in(app) == []  # queued: the sender worker sends it
    app.send_confirmations("news")  # what the worker does
    [mail] = [m for m in mail_in(app) if "carol@example.org" in m["To"]]
    assert "https://news.example.org/confirm/" in mail.get_body(("plain",)).get_content()

    again = admin_api.post("/lists/news/subscribers", json={"email": "carol@example.org"})
    assert again.status_code == 200
    assert again.json()["outcome"] == "unchanged"
    assert again.json()["confirmation_queued"] is False  # one mail per ten minutes


def test_a_vouched_subscriber_is_confirmed_at_once_without_mail(
        admin_api: TestClient, world: World, app: App) -> None:
    member = admin_api.post("/lists/news/subscribers",
                            json={"email": "dan@example.org", "confirmed": True}).json()
    assert member["status"] == "confirmed" and member["confirmation_queued"] is False
    assert member["confirmed_at"] is not None
    app.send_confirmations("news")
    assert "dan@example.org" not in sent_to(app)


def test_a_suppressed_address_is_refused_with_409(
        admin_api: TestClient, world: World) -> None:
    admin_api.post("/suppressions", json={"email": "eve@example.org", "reason": "complaint"})
    error = error_of(admin_api.post("/lists/news/subscribers", json={"email": "eve@example.org"}),
                     409, "suppressed")
    assert "eve@example.org is suppressed" in error["message"]
    error_of(admin_api.post("/lists/news/subscribers", json={"email": "not an address"}), 422,
             "invalid_value")


def test_members_are_listed_by_status_and_tag(admin_api: TestClient, world: World) -> None:
    page = admin_api.get("/lists/news/subscribers").json()
    assert [(m["email"], m["status"]) for m in page["data"]] == [
        (ALICE, "confirmed"), (BOB, "pending")]
    assert page["next"] is None
    pending = admin_api.get("/lists/news/subscribers", params={"status": "pending"}).json()
    assert [m["email"] for m in pending["data"]] == [BOB]
    admin_api.patch(f"/subscribers/{ALICE}", json={"add_tags": ["VIP"]})
    tagged = admin_api.get("/lists/news/subscribers", params={"tag": "vip"}).json()
    assert [(m["email"], m["tags"]) for m in tagged["data"]] == [(ALICE, ["vip"])]
    error = error_of(admin_api.get("/lists/news/subscribers", params={"status": "gone"}), 422,
                     "invalid_request")
    assert error["details"][0]["in"] == "query" and error["details"][0]["field"] == "status"


def test_pages_of_members_hold_each_member_once(admin_api: TestClient, world: World) -> None:
    rows = [{"email": f"reader{i:03}@example.org"} for i in range(123)]
    result = admin_api.post("/lists/sport/subscribers/bulk",
                            json={"subscribers": rows, "confirmed": True}).json()
    assert result["added"] == 123
    members, pages = walk_pages(admin_api, "/lists/sport/subscribers", limit=10)
    assert pages == 13
    emails = [m["email"] for m in members]
    assert emails == [ALICE] + [r["email"] for r in rows]
    error_of(admin_api.get("/lists/sport/subscribers", params={"after": "x1"}), 422,
             "invalid_value")
    error_of(admin_api.get("/lists/sport/subscribers", params={"limit": 501}), 422,
             "invalid_request")


def test_bulk_add_counts_every_outcome_and_gives_reasons(
        admin_api: TestClient, world: World, app: App) -> None:
    admin_api.patch(f"/lists/news/subscribers/{ALICE}", json={"status": "unsubscribed"})
    admin_api.post("/suppressions", json={"domain": "blocked.example"})
    rows = [
        {"email": "new@example.org", "name": "New"},  # added
        {"email": BOB, "name": "Bob B."},  # updated: a name
        {"email": ALICE},  # unchanged: an import never re-subscribes
        {"email": "x@blocked.example"},  # suppressed
        {"email": "no-at-sign"},  # rejected
        {"email": "  "},  # rejected
        {"email": "two\nlines@example.org"},  # rejected
    ]
    answer = admin_api.post("/lists/news/subscribers/bulk", json={"subscribers": rows})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert {k: result[k] for k in ("added", "updated", "unchanged", "suppressed", "rejected")} \
        == {"added": 1, "updated": 1, "unchanged": 1, "suppressed": 1, "rejected": 3}
    assert [(r["index"], r["email"]) for r in result["rejects"]] == [
        (4, "no-at-sign"), (5, "  "), (6, "two\nlines@example.org")]
    assert "not a valid email address" in result["rejects"][0]["reason"]
    assert result["rejects"][1]["reason"] == "no email address"
    assert result["confirmations_queued"] == 2  # the new one, and Bob (pending, never sent)
    assert world.status(ALICE, "news") == "unsubscribed"
    app.send_confirmations("news")
    assert sorted(sent_to(app)) == [BOB, "new@example.org"]


def test_bulk_add_to_a_single_opt_in_list_confirms_at_once(
        admin_api: TestClient, world: World) -> None:
    admin_api.patch("/lists/sport", json={"double_optin": False})
    result = admin_api.post("/lists/sport/subscribers/bulk",
                            json={"subscribers": [{"email": "kim@example.kr"}]}).json()
    assert (result["added"], result["confirmations_queued"]) == (1, 0)
    assert admin_api.get("/lists/sport/subscribers/kim@example.kr").json()["status"] \
        == "confirmed"


def test_bulk_add_is_capped_at_ten_thousand(admin_api: TestClient, world: World) -> None:
    rows = [{"email": f"r{i}@example.org"} for i in range(10_001)]
    error = error_of(admin_api.post("/lists/news/subscribers/bulk", json={"subscribers": rows}),
                     422, "invalid_request")
    assert error["details"][0]["field"] == "subscribers"


def test_status_changes_of_a_member(admin_api: TestClient, world: World, app: App,
                                    clock: Clock) -> None:
    confirmed = admin_api.patch(f"/lists/news/subscribers/{BOB}",
                                json={"status": "confirmed"}).json()
    assert confirmed["status"] == "confirmed" and confirmed["changed"] is True
    left = admin_api.patch(f"/lists/news/subscribers/{BOB}",
                           json={"status": "unsubscribed"}).json()
    assert left["status"] == "unsubscribed" and left["unsubscribe_reason"] == "api"
    again = admin_api.patch(f"/lists/news/subscribers/{BOB}",
                            json={"status": "unsubscribed"}).json()
    assert again["changed"] is False
    error = error_of(admin_api.patch(f"/lists/news/subscribers/{BOB}",
                                     json={"resend_confirmation": True}), 409, "not_pending")
    assert "is unsubscribed on news, not pending" in error["message"]
    error_of(admin_api.patch("/lists/news/subscribers/nobody@example.org",
                             json={"status": "confirmed"}), 404, "not_found")
    assert admin_api.get(f"/lists/news/subscribers/{BOB}").json()["status"] == "unsubscribed"


def test_a_pending_member_gets_a_new_link_at_most_every_ten_minutes(
        admin_api: TestClient, world: World, app: App, clock: Clock) -> None:
    first = admin_api.patch(f"/lists/news/subscribers/{BOB}", json={"resend_confirmation": True})
    assert first.json()["confirmation_queued"] is True
    app.send_confirmations("news")
    assert sent_to(app) == [BOB]
    soon = admin_api.patch(f"/lists/news/subscribers/{BOB}", json={"resend_confirmation": True})
    assert soon.json()["confirmation_queued"] is False
    clock.advance(minutes=11)
    later = admin_api.patch(f"/lists/news/subscribers/{BOB}", json={"resend_confirmation": True})
    assert later.json()["confirmation_queued"] is True
    app.send_confirmations("news")
    assert sent_to(app) == [BOB, BOB]


# -- people -----------------------------------------------------------------------------


def test_people_are_found_by_the_start_of_their_address(
        admin_api: TestClient, world: World) -> None:
    admin_api.post("/lists/sport/subscribers/bulk", json={"subscribers": [
        {"email": f"al{i}@example.org"} for i in range(5)] + [{"email": "a_b@example.org"}]})
    found, pages = walk_pages(admin_api, "/subscribers", q="AL", limit=2)
    assert [p["email"] for p in found] == [f"al{i}@example.org" for i in range(5)] + [ALICE]
    assert pages == 3
    assert found[-1]["lists"] == {"news": "confirmed", "sport": "confirmed"}
    # LIKE's wildcards are plain characters here.
    assert [p["email"] for p in admin_api.get("/subscribers", params={"q": "a_"}).json()
            ["data"]] == ["a_b@example.org"]


def test_a_person_is_shown_changed_and_forgotten(
        admin_api: TestClient, world: World, app: App) -> None:
    shown = admin_api.get(f"/subscribers/{ALICE.upper()}").json()
    assert shown["email"] == ALICE
    assert [m["list"] for m in shown["memberships"]] == ["news", "sport"]
    changed = admin_api.patch(f"/subscribers/{ALICE}", json={
        "name": "Alice A.", "timezone": "Asia/Seoul", "attributes": {"city": "Busan", "n": 2},
        "add_tags": ["vip", "press"]}).json()
    sub = changed["subscriber"]
    assert (sub["name"], sub["timezone"]) == ("Alice A.", "Asia/Seoul")
    assert sub["attributes"] == {"city": "Busan", "n": 2}
    assert sub["tags"] == ["press", "vip"]
    changed = admin_api.patch(f"/subscribers/{ALICE}", json={
        "attributes": {"n": None}, "remove_tags": ["press"]}).json()
    assert changed["subscriber"]["attributes"] == {"city": "Busan"}
    assert changed["subscriber"]["tags"] == ["vip"]
    error = error_of(admin_api.patch(f"/subscribers/{ALICE}", json={"attributes": {"email": 1}}),
                     422, "invalid_value")
    assert "'email' is not an attribute" in error["message"]

    forgotten = admin_api.delete(f"/subscribers/{ALICE}").json()
    assert forgotten["removed"]["subscriber"]["name"] == "Alice A."
    assert forgotten["placeholder"].startswith("forgotten-")
    assert forgotten["memberships"] == 2 and forgotten["suppression_reason"] == "forgotten"
    after = admin_api.get(f"/subscribers/{ALICE}").json()
    assert after["subscriber"] is None and after["suppression"]["reason"] == "forgotten"
    assert world.suppressed(ALICE)
    error_of(admin_api.post("/lists/news/subscribers", json={"email": ALICE}), 409, "suppressed")


def test_nobody_stored_is_a_404(admin_api: TestClient, world: World) -> None:
    for answer in (admin_api.get("/subscribers/who@example.org"),
                   admin_api.delete("/subscribers/who@example.org"),
                   admin_api.patch("/subscribers/who@example.org", json={"name": "Who"})):
        error = error_of(answer, 404, "not_found")
        assert "who@example.org" in error["message"]


# -- suppressions -----------------------------------------------------------------------


def test_suppressions_added_listed_and_lifted(admin_api: TestClient, world: World) -> None:
    first = admin_api.post("/suppressions", json={"email": BOB, "reason": "hard_bounce",
                                                  "detail": "550 no such user"})
    assert first.status_code == 201 and first.json()["created"] is True
    again = admin_api.post("/suppressions", json={"email": BOB})
    assert again.status_code == 200 and again.json()["reason"] == "hard_bounce"
    domain = admin_api.post("/suppressions", json={"domain": "Spam.Example"}).json()
    assert (domain["scope"], domain["domain"], domain["email"]) == ("domain", "spam.example", None)
    for _ in range(3):
        admin_api.post("/suppressions", json={"email": f"gone{_}@example.org"})

    rows, pages = walk_pages(admin_api, "/suppressions", limit=2)
    assert pages == 3
    assert [r["email"] or r["domain"] for r in rows] == [
        None, None, None, "spam.example", BOB]  # newest first; unknown addresses: hash only
    bounces = admin_api.get("/suppressions", params={"reason": "hard_bounce"}).json()["data"]
    assert [r["detail"] for r in bounces] == ["550 no such user"]

    assert admin_api.get(f"/lists/news/subscribers/{BOB}").json()["suppressed"] is True
    assert admin_api.delete(f"/suppressions/{BOB}").json() == {"removed": True}
    assert admin_api.delete("/suppressions/spam.example").json() == {"removed": True}
    error_of(admin_api.delete(f"/suppressions/{BOB}"), 404, "not_found")
    error_of(admin_api.delete("/suppressions/spam.example"), 404, "not_found")
    error = error_of(admin_api.post("/suppressions", json={"email": BOB, "domain": "x.org"}),
                     422, "invalid_value")
    assert "either `email`" in error["message"]


# -- sources ----------------------------------------------------------------------------


def test_sources_added_read_detached_and_removed(
        admin_api: TestClient, editor_api: TestClient, world: World, app: App) -> None:
    feed = "https://feeds.example.org/news.xml"
    added = admin_api.post("/sources", json={"url": feed, "list": "news"})
    assert added.status_code == 201 and added.json()["attached"] is True
    source = added.json()
    again = admin_api.post("/sources", json={"url": feed, "list": "sport", "full_text": True})
    assert again.status_code == 201 and again.json()["lists"] == ["news", "sport"]
    assert again.json()["full_text"] is True
    same = admin_api.post("/sources", json={"url": feed, "list": "sport"})
    assert same.status_code == 200 and same.json()["attached"] is False

    shown = editor_api.get(f"/sources/{source['id']}").json()
    assert shown["consecutive_failures"] == 0 and shown["last_error"] == ""
    assert [s["url"] for s in editor_api.get("/sources", params={"list": "news"}).json()
            ["data"]] == [feed]

    assert admin_api.delete(f"/sources/{source['id']}", params={"list": "news"}).status_code \
        == 204
    assert editor_api.get("/sources", params={"list": "news"}).json()["data"] == []
    error_of(admin_api.delete(f"/sources/{source['id']}", params={"list": "news"}), 404)
    assert admin_api.delete(f"/sources/{source['id']}").status_code == 204
    error_of(editor_api.get(f"/sources/{source['id']}"), 404, "not_found")
    with app.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Source)) == 0


def test_a_source_must_be_a_web_address(admin_api: TestClient, world: World) -> None:
    error = error_of(admin_api.post("/sources", json={"url": "/etc/passwd", "list": "news"}),
                     422, "invalid_value")
    assert "is not an http(s) URL" in error["message"]
    error_of(admin_api.post("/sources", json={"url": "https://x.org/f", "list": "nope"}), 404)


def test_removing_a_source_takes_its_articles(admin_api: TestClient, world: World,
                                             app: App, clock: Clock) -> None:
    source = admin_api.post("/sources", json={"url": "https://x.org/f", "list": "news"}).json()
    with app.sessions() as s:
        s.add(Article(source_id=source["id"], title="One", link="https://x.org/1",
                      content_hash="h1", published_at=clock()))
        s.commit()
    assert admin_api.get(f"/sources/{source['id']}").json()["articles"] == 1
    admin_api.delete(f"/sources/{source['id']}")
    with app.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Article)) == 0
        assert s.scalar(select(func.count()).select_from(Membership)) == 3  # untouched
