"""The JSON API's editions (draft, items, approve, schedule, test, send) and stats, over
HTTP with an editor's token, with the outbox as the mail server and `app.deliver`
standing in for the sender worker."""

from __future__ import annotations

import datetime as dt
import gzip
import re

from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import func, select

from digest.app import App
from digest.models import Article, Delivery, Edition, EditionKind, EditionStatus, ListSource, Source
from subscribers.lists import get_list
from subscribers.suppress import suppress
from tests.conftest import DATA, Clock
from tests.loopback import feed_server
from tests.test_edit_send_race import Side, race
from tests.web.api_support import *  # noqa: F403
from tests.web.api_support import error_of, mail_in, sent_to, walk_pages
from tests.web.conftest import ALICE, World

ARTICLE_PAGE = DATA / "articles" / "html" / (
    "14cc2a0ca59c62a8c9f205a171e9ccf4ef4cf69b0c642f51c8c65c051b39024f.html.gz")


def add_articles(app: App, clock: Clock, count: int, list_name: str = "news") -> None:
    """A source feeding `list_name` with `count` articles an hour apart, newest first."""
    now = clock()
    with app.sessions() as s:
        source = Source(url=f"https://feeds.example.org/{list_name}.xml", title="Harbour Times")
        s.add(source)
        s.flush()
        s.add(ListSource(list_id=get_list(s, list_name).id, source_id=source.id))
        s.add_all(Article(
            source_id=source.id, guid=f"a{i}", link=f"https://example.org/{i}",
            content_hash=f"h{i}", title=f"Harbour story {i}", summary=f"What happened, {i}.",
            published_at=now - dt.timedelta(minutes=30 + 60 * i),
            first_seen_at=now - dt.timedelta(minutes=30 + 60 * i)) for i in range(count))
        s.commit()


def draft(api: TestClient) -> dict:  # type: ignore[type-arg]
    answer = api.get("/lists/news/draft")
    assert answer.status_code == 200, answer.text
    edition: dict = answer.json()  # type: ignore[type-arg]
    return edition


def titles(api: TestClient, edition_id: int) -> list[str]:
    return [i["title"] for i in api.get(f"/editions/{edition_id}").json()["items"]]


def test_the_draft_is_made_once_from_the_new_articles(
        editor_api: TestClient, world: World, app: App, clock: Clock) -> None:
    add_articles(app, clock, 3)
    edition = draft(editor_api)
    assert (edition["list"], edition["number"], edition["status"]) == ("news", 1, "draft")
    assert [i["title"] for i in edition["items"]] == [f"Harbour story {i}" for i in range(3)]
    assert edition["items"][0]["source_title"] == "Harbour Times"
    assert edition["subject"] == "Morning News: Harbour story 0"
    assert edition["recipients"] == 1  # Alice; Bob is pending
    assert draft(editor_api)["id"] == edition["id"]
    assert editor_api.get(f"/editions/{edition['id']}").json() == edition
    listed = editor_api.get("/lists/news/editions").json()
    assert [(e["id"], e["item_count"]) for e in listed["data"]] == [(edition["id"], 3)]


def test_the_draft_counts_what_it_held_over_and_what_came_later(
        editor_api: TestClient, world: World, app: App, clock: Clock) -> None:
    """Six new stories, 2 in full and 2 in brief: the other 2 are held for the next
    edition; one first seen after the draft was built is counted as the next one's."""
    app.settings = app.settings.with_overrides(edition__max_items=2, edition__brief_max=2)
    add_articles(app, clock, 6)
    edition = draft(editor_api)
    assert (edition["full_count"], edition["brief_count"], edition["held_count"],
            edition["waiting_count"], edition["later_count"]) == (2, 2, 2, 0, 0)
    clock.advance(minutes=10)
    with app.sessions() as s:
        source = s.scalars(select(Source)).one()
        s.add(Article(source_id=source.id, guid="late", link="https://example.org/late",
                      content_hash="late", title="A late harbour story", summary="Later.",
                      published_at=clock(), first_seen_at=clock()))
        s.commit()
    again = editor_api.get(f"/editions/{edition['id']}").json()
    assert (again["held_count"], again["waiting_count"], again["later_count"]) == (2, 0, 1)


def test_no_new_articles_is_a_404_that_says_so(editor_api: TestClient, world: World) -> None:
    error = error_of(editor_api.get("/lists/sport/draft"), 404, "nothing_to_send")
    assert error["message"] == ("list 'sport' has no open edition and no new articles since "
                                "its last one; nothing to draft")
    error_of(editor_api.get("/lists/nope/draft"), 404, "not_found")
    error_of(editor_api.get("/editions/999"), 404, "not_found")


def test_items_are_dropped_pinned_moved_edited_and_added_back(
        editor_api: TestClient, world: World, app: App, clock: Clock) -> None:
    add_articles(app, clock, 4)
    edition = draft(editor_api)
    eid = edition["id"]
    item = {i["title"]: i["id"] for i in edition["items"]}

    assert editor_api.delete(f"/editions/{eid}/items/{item['Harbour story 1']}").status_code \
        == 204
    assert titles(editor_api, eid) == ["Harbour story 0", "Harbour story 2", "Harbour story 3"]
    proposals = editor_api.get(f"/editions/{eid}/proposals").json()["data"]
    assert [p["title"] for p in proposals] == ["Harbour story 1"]

    pinned = editor_api.patch(f"/editions/{eid}/items/{item['Harbour story 3']}",
                              json={"pinned": True}).json()
    assert (pinned["pinned"], pinned["position"]) == (True, 0)
    moved = editor_api.patch(f"/editions/{eid}/items/{item['Harbour story 0']}",
                             json={"position": 5}).json()
    assert moved["position"] == 2  # the end
    edited = editor_api.patch(f"/editions/{eid}/items/{item['Harbour story 2']}", json={
        "title": "  The  harbour\nreopens ", "summary": "Boats are back.",
        "note": "Our pick"}).json()
    assert (edited["title"], edited["summary"], edited["note"]) == (
        "The harbour reopens", "Boats are back.", "Our pick")
    assert titles(editor_api, eid) == ["Harbour story 3", "The harbour reopens",
                                       "Harbour story 0"]

    added = editor_api.post(f"/editions/{eid}/items",
                            json={"article_id": proposals[0]["article_id"]})
    assert added.status_code == 201 and added.json()["position"] == 3
    error = error_of(editor_api.post(f"/editions/{eid}/items",
                                     json={"article_id": proposals[0]["article_id"]}),
                     422, "invalid_value")
    assert "is already in edition #1" in error["message"]
    error_of(editor_api.post(f"/editions/{eid}/items", json={"article_id": 99999}), 404)
    error_of(editor_api.post(f"/editions/{eid}/items", json={}), 422, "invalid_value")
    error_of(editor_api.patch(f"/editions/{eid}/items/99999", json={"note": "x"}), 404)
    error = error_of(editor_api.patch(f"/editions/{eid}/items/{item['Harbour story 0']}",
                                      json={"title": "  "}), 422, "invalid_value")
    assert "headline cannot be empty" in error["message"]


def test_a_page_is_added_by_its_url(editor_api: TestClient, world: World, app: App,
                                    clock: Clock) -> None:
    add_articles(app, clock, 1)
    # The page comes from a loopback server.
    app.settings = app.settings.with_overrides(web__fetch_private_addresses=True)
    eid = draft(editor_api)["id"]
    html = gzip.decompress(ARTICLE_PAGE.read_bytes())
    with feed_server(lambda path: html if path == "/story" else None) as base:
        added = editor_api.post(f"/editions/{eid}/items", json={"url": f"{base}/story"})
        assert added.status_code == 201, added.text
        item = added.json()
        assert item["link"] == f"{base}/story" and item["article_id"] is None
        assert item["title"] and item["source_title"] == "127.0.0.1"
        error = error_of(editor_api.post(f"/editions/{eid}/items", json={"url": f"{base}/gone"}),
                         422, "fetch_failed")
        assert "500" in error["message"]
    error = error_of(editor_api.post(f"/editions/{eid}/items", json={"url": "file:///etc/passwd"}),
                     422, "invalid_value")
    assert "is not a web address" in error["message"]


def test_pages_on_the_servers_own_network_are_refused(
        editor_api: TestClient, world: World, app: App, clock: Clock) -> None:
    add_articles(app, clock, 1)
    eid = draft(editor_api)["id"]
    with feed_server(lambda path: b"<html>secret</html>") as base:
        error = error_of(editor_api.post(f"/editions/{eid}/items", json={"url": f"{base}/"}),
                         422)
    assert "not a public internet address" in error["message"]
    assert len(editor_api.get(f"/editions/{eid}").json()["items"]) == 1


def test_subject_and_intro(editor_api: TestClient, world: World, app: App,
                           clock: Clock) -> None:
    add_articles(app, clock, 1)
    eid = draft(editor_api)["id"]
    changed = editor_api.patch(f"/editions/{eid}", json={"intro": "Hello.\n\nBoats!"}).json()
    assert changed["intro"] == "Hello.\n\nBoats!"
    assert changed["subject"] == "Morning News: Harbour story 0"
    changed = editor_api.patch(f"/editions/{eid}", json={"subject": "Boats are back"}).json()
    assert (changed["subject"], changed["intro"]) == ("Boats are back", "Hello.\n\nBoats!")
    error_of(editor_api.patch(f"/editions/{eid}", json={"subject": " "}), 422, "invalid_value")
    error_of(editor_api.patch(f"/editions/{eid}", json={"body": "x"}), 422, "invalid_request")


def test_approve_and_schedule(editor_api: TestClient, world: World, app: App,
                              clock: Clock) -> None:
    add_articles(app, clock, 1)
    eid = draft(editor_api)["id"]
    assert editor_api.post(f"/editions/{eid}/approve").json()["status"] == "approved"
    at = "2026-11-28T09:30:45+09:00"
    scheduled = editor_api.post(f"/editions/{eid}/schedule", json={"at": at}).json()
    assert scheduled["scheduled_for"] == "2026-11-28T00:30:00Z"
    cleared = editor_api.post(f"/editions/{eid}/schedule", json={"at": None}).json()
    assert cleared["scheduled_for"] is None
    error = error_of(editor_api.post(f"/editions/{eid}/schedule",
                                     json={"at": "2020-01-01T00:00:00Z"}), 422, "invalid_value")
    assert "that time has passed" in error["message"]
    error = error_of(editor_api.post(f"/editions/{eid}/schedule",
                                     json={"at": "2026-12-01T10:00:00"}), 422, "invalid_request")
    assert error["details"][0]["field"] == "at"  # a time without a zone is ambiguous


def test_an_edition_too_large_to_send_is_not_approved_or_scheduled(
        editor_api: TestClient, world: World, app: App, clock: Clock) -> None:
    """Notes an editor wrote after the draft was built take it over [edition]
    html_max_kb: approving or scheduling it (to go out unattended) is refused with what
    to shorten, rather than accepted and then failing at the scheduled time."""
    app.settings = app.settings.with_overrides(edition__html_max_kb=20)
    add_articles(app, clock, 6)
    edition = draft(editor_api)
    eid = edition["id"]
    for item in edition["items"]:
        answer = editor_api.patch(f"/editions/{eid}/items/{item['id']}",
                                  json={"note": "A long note from the desk. " * 70})
        assert answer.status_code == 200, answer.text
    error = error_of(editor_api.post(f"/editions/{eid}/approve"), 409, "not_ready")
    assert "over the 20 KB limit ([edition] html_max_kb)" in error["message"]
    error = error_of(editor_api.post(f"/editions/{eid}/schedule",
                                     json={"at": "2026-11-28T09:30:00+09:00"}), 409, "not_ready")
    assert "Shorten the longest blurbs and notes" in error["message"]
    assert editor_api.get(f"/editions/{eid}").json()["status"] == "draft"


def test_the_openapi_limits_are_the_servers(editor_api: TestClient, world: World, app: App,
                                           clock: Clock) -> None:
    """A script that keeps to the published schema is not refused for length: each
    limit there is the one the server holds the text to (a 4,999-character headline
    passed the schema and was refused: "keep it to 300")."""
    schema = editor_api.get("/openapi.json").json()["components"]["schemas"]
    item, edition = schema["ItemPatch"]["properties"], schema["EditionPatch"]["properties"]
    limits = {name: next(v["maxLength"] for v in field["anyOf"] if "maxLength" in v)
              for name, field in [*item.items(), *edition.items()]
              if name in ("title", "summary", "note", "subject", "intro")}
    assert limits == {"title": 300, "summary": 2000, "note": 2000, "subject": 200,
                      "intro": 5000}
    add_articles(app, clock, 1)
    edition_id = draft(editor_api)["id"]
    item_id = editor_api.get(f"/editions/{edition_id}").json()["items"][0]["id"]
    answer = editor_api.patch(f"/editions/{edition_id}/items/{item_id}",
                              json={"title": "H" * 300, "note": "N" * 2000})
    assert answer.status_code == 200, answer.text


def test_a_test_mail_goes_to_the_editor_only(editor_api: TestClient, world: World,
                                             app: App, clock: Clock,
                                             users: dict[str, str]) -> None:
    add_articles(app, clock, 2)
    eid = draft(editor_api)["id"]
    sent = editor_api.post(f"/editions/{eid}/test", json={}).json()
    assert sent["to"] == users["editor"]
    [mail] = mail_in(app)
    assert mail["Subject"] == "[Test] Morning News: Harbour story 0"
    assert mail["Message-ID"] == sent["message_id"]
    # Another user of the site (test_proofs.py: nobody else, and how many).
    other = editor_api.post(f"/editions/{eid}/test", json={"to": "Admin@Example.org"}).json()
    assert other["to"] == users["admin"]
    with app.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Delivery)) == 0
    with app.sessions() as s:
        suppress(s, users["admin"], "complaint", now=clock())
        s.commit()
    error_of(editor_api.post(f"/editions/{eid}/test", json={"to": users["admin"]}), 409,
             "suppressed")


def test_preview_renders_the_email(editor_api: TestClient, world: World, app: App,
                                   clock: Clock) -> None:
    add_articles(app, clock, 1)
    eid = draft(editor_api)["id"]
    shown = editor_api.get(f"/editions/{eid}/preview").json()
    assert shown["subject"] == "Morning News: Harbour story 0"
    assert "Harbour story 0" in shown["html"] and "Harbour story 0" in shown["text"]
    assert "/unsubscribe/preview" in shown["html"]


def test_send_queues_the_recipients_and_freezes_the_edition(
        editor_api: TestClient, world: World, app: App, clock: Clock) -> None:
    add_articles(app, clock, 2)
    edition = draft(editor_api)
    eid = edition["id"]
    answer = editor_api.post(f"/editions/{eid}/send")
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"edition_id": eid, "status": "sending", "queued": 1}
    shown = editor_api.get(f"/editions/{eid}").json()
    assert shown["status"] == "sending" and shown["recipients"] is None
    item = edition["items"][0]["id"]
    for refused in (editor_api.patch(f"/editions/{eid}", json={"intro": "late"}),
                    editor_api.delete(f"/editions/{eid}/items/{item}"),
                    editor_api.post(f"/editions/{eid}/send"),
                    editor_api.post(f"/editions/{eid}/approve")):
        error = error_of(refused, 422, "invalid_value")
        assert "edition #1 is already being sent; nothing changed" in error["message"]

    app.deliver(eid)  # what the sender worker does
    assert sent_to(app) == [ALICE]
    stats = editor_api.get("/lists/news/stats").json()
    assert stats["next"] is None
    [row] = stats["data"]
    assert (row["edition_id"], row["recipients"], row["sent"], row["failed"]) == (eid, 1, 1, 0)
    assert row["subject"] == "Morning News: Harbour story 0"


def test_a_change_while_the_send_starts_is_refused_and_not_stored(
        editor_api: TestClient, world: World, app: App, clock: Clock) -> None:
    """A script changes the subject while `digest edition send` is rendering: the
    request waits for the start, then answers 422 saying nothing changed; the mail and
    the stored edition keep the subject that went out."""
    add_articles(app, clock, 2)
    eid = draft(editor_api)["id"]
    send = Side(lambda: app.send("news"))
    patch = Side(lambda: editor_api.patch(f"/editions/{eid}", json={"subject": "Too late"}))
    race(app.engine, send, ("UPDATE editions", "html"), patch)

    assert send.error is None and patch.error is None, (send.error, patch.error)
    assert [m["Subject"] for m in mail_in(app)] == ["Morning News: Harbour story 0"]
    assert editor_api.get(f"/editions/{eid}").json()["subject"] == (
        "Morning News: Harbour story 0")
    assert isinstance(patch.result, Response)
    error = error_of(patch.result, 422, "invalid_value")
    assert re.match(r"edition #1 (is already being sent|was sent already); nothing changed",
                    error["message"]), error


def test_an_empty_edition_is_not_sent(editor_api: TestClient, world: World, app: App,
                                      clock: Clock) -> None:
    add_articles(app, clock, 1)
    edition = draft(editor_api)
    eid = edition["id"]
    editor_api.delete(f"/editions/{eid}/items/{edition['items'][0]['id']}")
    for refused in (editor_api.post(f"/editions/{eid}/send"),
                    editor_api.post(f"/editions/{eid}/approve")):
        error = error_of(refused, 409, "not_ready")
        assert "edition #1 of 'news' has no articles; add one first" in error["message"]
    assert editor_api.get(f"/editions/{eid}").json()["status"] == "draft"
    with app.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Delivery)) == 0


def test_pages_of_editions_and_stats_hold_each_once(
        editor_api: TestClient, world: World, app: App, clock: Clock) -> None:
    now = clock()
    with app.sessions() as s:
        news = get_list(s, "news")
        s.add_all(Edition(list_id=news.id, kind=EditionKind.DIGEST, number=n,
                          status=EditionStatus.SENT, subject=f"No. {n}", since=now, cutoff=now,
                          created_at=now,
                          send_started_at=now + dt.timedelta(hours=n),
                          sent_at=now + dt.timedelta(hours=n)) for n in range(1, 8))
        s.commit()
    editions, pages = walk_pages(editor_api, "/lists/news/editions", limit=3)
    assert [e["number"] for e in editions] == [7, 6, 5, 4, 3, 2, 1] and pages == 3
    numbers, pages = walk_pages(editor_api, "/lists/news/stats", limit=2)
    assert [n["number"] for n in numbers] == [7, 6, 5, 4, 3, 2, 1] and pages == 4
    assert editor_api.get("/lists/sport/stats").json() == {"data": [], "next": None}


def test_an_item_cannot_be_pinned_and_put_in_brief_at_once(
        editor_api: TestClient, world: World, app: App, clock: Clock) -> None:
    add_articles(app, clock, 3)
    edition = draft(editor_api)
    eid, before = edition["id"], titles(editor_api, edition["id"])
    item = edition["items"][2]["id"]
    error = error_of(editor_api.patch(f"/editions/{eid}/items/{item}",
                                      json={"pinned": True, "brief": True, "note": "Ours"}),
                     422, "invalid_request")
    assert "cannot be pinned and in brief at once" in error["message"]
    assert "told in full at the top" in error["message"]
    # Nothing changed: not pinned, not in brief, no note, in its place.
    [shown] = [i for i in editor_api.get(f"/editions/{eid}").json()["items"] if i["id"] == item]
    assert (shown["pinned"], shown["brief"], shown["note"]) == (False, False, "")
    assert titles(editor_api, eid) == before
    # Each alone does what the desk's buttons do; pinned: false with brief: true is no
    # contradiction.
    pinned = editor_api.patch(f"/editions/{eid}/items/{item}", json={"pinned": True}).json()
    assert (pinned["pinned"], pinned["brief"], pinned["position"]) == (True, False, 0)
    briefed = editor_api.patch(f"/editions/{eid}/items/{item}",
                               json={"pinned": False, "brief": True}).json()
    assert (briefed["pinned"], briefed["brief"]) == (False, True)
