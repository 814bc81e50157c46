"""Subscribers in the admin console: search and paging, one person's page, adding
(with the confirmation mail), editing, status per list, suppress, forget, and export
as a download."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import httpx2 as httpx
from fastapi.testclient import TestClient
from sqlalchemy import select

from digest.app import App
from subscribers.importing import import_csv
from subscribers.lists import get_list
from subscribers.members import add_member
from subscribers.models import Subscriber
from subscribers.people import tag_subscriber
from subscribers.suppress import suppress
from tests.conftest import Clock
from tests.web.conftest import ALICE, BOB, World, csrf
from tests.web.test_subscribe import mail_to, text_of


def _post(client: TestClient, path: str, /, **data: str) -> httpx.Response:
    return client.post(path, data={"csrf_token": csrf(client), **data}, follow_redirects=False)


def _found(html: str) -> list[str]:
    """The addresses in the results table, in order."""
    table = html.split('<table class="found">', 1)[1].split("</table>", 1)[0]
    return re.findall(r'<a href="/admin/subscribers/\d+">([^<]+)</a>', table)


def test_search_by_address_prefix_name_tag_list_and_status(
        admin_client: TestClient, world: World, app: App, clock: Clock) -> None:
    with app.sessions() as s:
        add_member(s, get_list(s, "sport"), "carol@example.com", name="Carol Alison",
                   now=clock())
        tag_subscriber(s, ALICE, ["vip"], now=clock())
        s.commit()

    def search(**query: str) -> list[str]:
        page = admin_client.get("/admin/subscribers", params=query)
        assert page.status_code == 200, page.text
        return _found(page.text)

    assert search() == ["carol@example.com", BOB, ALICE]  # newest first
    assert search(q="Alice@Example.org") == [ALICE]  # a whole address: exact
    assert search(q="bob@") == [BOB]  # the start of an address
    assert search(q="ali") == ["carol@example.com", ALICE]  # a name, or an address's start
    assert search(q="nobody") == []
    assert search(tag="VIP") == [ALICE]
    assert search(list="news") == [BOB, ALICE]
    assert search(list="news", status="pending") == [BOB]
    assert search(status="pending") == ["carol@example.com", BOB]
    assert search(q="%") == [] and search(q="_") == []  # no wildcards of SQL's own
    bad = admin_client.get("/admin/subscribers", params={"tag": "no spaces"})
    assert bad.status_code == 400 and "Tag &#39;no spaces&#39; is not usable" in bad.text


def test_search_pages_by_key_without_counting(admin_client: TestClient, world: World,
                                              app: App, clock: Clock) -> None:
    with app.sessions() as s:
        news = get_list(s, "news")
        for i in range(60):
            add_member(s, news, f"reader{i:02d}@example.org", confirmed=True, now=clock())
        s.commit()
    first = admin_client.get("/admin/subscribers", params={"list": "news"})
    shown = _found(first.text)
    assert len(shown) == 50 and shown[0] == "reader59@example.org"
    following = re.search(r'href="(/admin/subscribers\?[^"]+)" rel="next"', first.text)
    assert following is not None
    second = admin_client.get(following.group(1).replace("&amp;", "&"))
    rest = _found(second.text)
    assert rest == [f"reader{i:02d}@example.org" for i in range(9, -1, -1)] + [BOB, ALICE]
    assert 'rel="next"' not in second.text and "First page" in second.text


def test_a_persons_page_shows_their_consent_and_deliveries(
        admin_client: TestClient, world: World) -> None:
    page = admin_client.get(f"/admin/subscribers/{world.ids[ALICE]}")
    assert page.status_code == 200
    assert ALICE in page.text and "from cli" in page.text and "confirmed 2026-11-27 06:00" \
        in page.text
    assert "Nothing sent to them yet." in page.text
    assert admin_client.get("/admin/subscribers/9999").status_code == 404


def test_adding_someone_sends_a_confirmation_mail(admin_client: TestClient, world: World,
                                                  app: App) -> None:
    answer = _post(admin_client, "/admin/subscribers", email="Dana@Example.org",
                   name="Dana", list="news")
    assert answer.status_code == 303
    page = admin_client.get(answer.headers["location"])
    assert "Added as pending: a confirmation mail is on its way." in page.text
    [mail] = mail_to(app, "dana@example.org")
    assert "https://news.example.org/confirm/" in text_of(mail)
    with app.sessions() as s:
        dana = s.scalars(select(Subscriber).where(Subscriber.email == "dana@example.org")).one()
        assert [(m.status, m.origin) for m in dana.memberships] == [("pending", "admin")]


def test_adding_someone_vouched_for_confirms_them_without_mail(
        admin_client: TestClient, world: World, app: App) -> None:
    answer = _post(admin_client, "/admin/subscribers", email="erin@example.org",
                   list="sport", confirmed="on")
    assert "They are on the list, confirmed." in admin_client.get(
        answer.headers["location"]).text
    assert mail_to(app, "erin@example.org") == []


def test_a_suppressed_address_is_not_added(admin_client: TestClient, world: World,
                                           app: App, clock: Clock) -> None:
    with app.sessions() as s:
        suppress(s, "gone@example.org", "hard_bounce", now=clock())
        s.commit()
    answer = _post(admin_client, "/admin/subscribers", email="gone@example.org", list="news")
    assert answer.status_code == 400
    assert "Gone@example.org is suppressed" in answer.text
    assert 'value="gone@example.org"' in answer.text


def test_editing_name_time_zone_tags_and_attributes(admin_client: TestClient, world: World,
                                                   app: App) -> None:
    alice = world.ids[ALICE]
    answer = _post(admin_client, f"/admin/subscribers/{alice}", name="Alice Liddell",
                   timezone="Asia/Seoul", tags="vip, Early-Bird",
                   attributes="city=Berlin\nage=42")
    assert answer.status_code == 303
    page = admin_client.get(f"/admin/subscribers/{alice}").text
    assert "age=42\ncity=Berlin" in page and 'value="early-bird, vip"' in page
    # The whole set is what the form holds: a line taken out is a key removed.
    _post(admin_client, f"/admin/subscribers/{alice}", name="Alice Liddell",
          timezone="Asia/Seoul", tags="vip", attributes='age=42\ncode="42"\nzip=01234')
    with app.sessions() as s:
        sub = s.get_one(Subscriber, alice)
        assert (sub.name, sub.timezone, sub.tags) == ("Alice Liddell", "Asia/Seoul", ["vip"])
        assert sub.attributes == {"age": 42, "code": "42", "zip": "01234"}
    # Shown so that saving the form again keeps each value's type.
    assert "age=42\ncode=&#34;42&#34;\nzip=01234<" in admin_client.get(
        f"/admin/subscribers/{alice}").text
    bad = _post(admin_client, f"/admin/subscribers/{alice}", name="A", timezone="Europe",
                tags="", attributes="")
    assert bad.status_code == 400 and "Time zone &#39;Europe&#39; is unknown" in bad.text
    assert 'value="Europe"' in bad.text


def test_status_per_list(admin_client: TestClient, world: World, app: App) -> None:
    bob = world.ids[BOB]
    assert _post(admin_client, f"/admin/subscribers/{bob}/status", list="news",
                 status="confirmed").status_code == 303
    assert world.status(BOB, "news") == "confirmed"
    refused = _post(admin_client, f"/admin/subscribers/{bob}/status", list="news",
                    status="pending")
    assert refused.status_code == 400 and "never set back to pending" in refused.text
    _post(admin_client, f"/admin/subscribers/{bob}/status", list="news", status="unsubscribed")
    assert world.member(BOB, "news").unsubscribe_reason == "admin"
    _post(admin_client, f"/admin/subscribers/{bob}/status", list="sport", status="pending")
    assert world.status(BOB, "sport") == "pending"
    assert len(mail_to(app, BOB)) == 1


def test_suppress_and_lift(admin_client: TestClient, world: World) -> None:
    alice = world.ids[ALICE]
    answer = _post(admin_client, f"/admin/subscribers/{alice}/suppress", reason="complaint",
                   detail="abuse report")
    assert answer.status_code == 303 and world.suppressed(ALICE)
    page = admin_client.get(answer.headers["location"]).text
    assert "suppressed</span> complaint" in page and "abuse report" in page
    _post(admin_client, f"/admin/subscribers/{alice}/unsuppress")
    assert not world.suppressed(ALICE)
    bad = _post(admin_client, f"/admin/subscribers/{alice}/suppress", reason="because")
    assert bad.status_code == 400 and "Suppression reason &#39;because&#39;" in bad.text


def test_forget_asks_first_then_erases(admin_client: TestClient, world: World,
                                       app: App) -> None:
    alice = world.ids[ALICE]
    ask = admin_client.get(f"/admin/subscribers/{alice}/forget")
    assert "This cannot be undone" in ask.text and "2 memberships" in ask.text
    unconfirmed = _post(admin_client, f"/admin/subscribers/{alice}/forget")
    assert unconfirmed.headers["location"].endswith("/forget")
    assert world.status(ALICE, "news") == "confirmed"
    done = _post(admin_client, f"/admin/subscribers/{alice}/forget", confirm="yes")
    assert done.status_code == 303
    assert "The person is forgotten" in admin_client.get(done.headers["location"]).text
    with app.sessions() as s:
        assert s.get_one(Subscriber, alice).email == f"forgotten-{alice}@invalid"
    assert world.suppressed(ALICE)
    assert _found(admin_client.get("/admin/subscribers", params={"q": ALICE}).text) == []
    after = admin_client.get(f"/admin/subscribers/{alice}")
    assert after.status_code == 200 and "This person was forgotten" in after.text


def test_export_downloads_the_members_with_their_consent(
        admin_client: TestClient, world: World) -> None:
    answer = admin_client.get("/admin/lists/news/export", params={"format": "csv"})
    assert answer.status_code == 200
    assert answer.headers["content-disposition"] == 'attachment; filename="news.csv"'
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [(r["email"], r["status"], r["origin"]) for r in rows] == [
        (ALICE, "confirmed", "cli"), (BOB, "pending", "cli")]
    lines = admin_client.get("/admin/lists/news/export",
                             params={"format": "jsonl", "status": "pending"})
    assert lines.headers["content-disposition"] == 'attachment; filename="news-pending.jsonl"'
    assert [json.loads(line)["email"] for line in lines.text.splitlines()] == [BOB]
    assert admin_client.get("/admin/lists/news/export",
                            params={"format": "xlsx"}).status_code == 400
    assert admin_client.get("/admin/lists/nope/export").status_code == 404


def test_a_big_export_streams_every_row(admin_client: TestClient, world: World, app: App,
                                        clock: Clock, tmp_path: Path) -> None:
    people = tmp_path / "many.csv"
    people.write_text("email,name\n" + "".join(f"many{i:04d}@example.org,{'x' * 40}\n"
                                               for i in range(3000)))
    with app.sessions() as s:
        import_csv(s, get_list(s, "news"), people, now=clock())
    with admin_client.stream("GET", "/admin/lists/news/export") as answer:
        chunks = list(answer.iter_bytes())
    body = b"".join(chunks).decode()
    assert body.count("\n") == 3003 and "many2999@example.org" in body
