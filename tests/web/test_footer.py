"""The footer every digest carries (issue 11): in both parts of the mail a reader
receives, why they get it, the postal address, and links to unsubscribe, to their
preferences and to the edition in the browser; each link works when followed, for a
public list and for a private one, whose edition page opens only with its own key."""

from __future__ import annotations

import email
import email.policy
import logging
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import lxml.html
import pytest
from fastapi.testclient import TestClient

from digest.app import App
from digest.editions import open_edition
from digest.publication import create_list, update_list
from subscribers.lists import get_list
from subscribers.members import add_member
from tests.conftest import Clock
from tests.web.conftest import ALICE, BOB, World
from tests.web.test_archive import publish

ADDRESS = "Morning News Ltd\n1 Harbour Road\nPortsmouth PO1 2AB, UK"
LINKS = ("Unsubscribe", "Manage preferences", "View in browser")


def _outbox(app: App) -> list[EmailMessage]:
    """The outbox, oldest first: by when each file was written, as Maildir names sort
    by the second only (two editions sent within one second came in either order)."""
    folder = Path(app.settings["delivery.outbox_dir"]) / "new"
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in sorted(folder.iterdir(), key=lambda p: (p.stat().st_mtime_ns, p.name))]


def _mail_of(app: App, list_name: str, to: str) -> tuple[str, str]:
    """The (text, html) parts of the newest mail of `list_name` to `to`."""
    found = [m for m in _outbox(app)
             if f"<{list_name}." in str(m["List-Id"]) and to in str(m["To"])]
    assert found, f"no mail of {list_name} to {to}"
    msg = found[-1]
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    return text.replace("\r\n", "\n"), msg.get_body(("html",)).get_content()  # type: ignore[union-attr]


def _footer_links(html: str) -> dict[str, str]:
    doc = lxml.html.document_fromstring(html)
    return {a.text_content().strip(): a.get("href") for a in doc.xpath("//a[@class='footer-link']")}


def _path(url: str) -> str:
    parts = urlsplit(url)
    assert parts.netloc == "news.example.org", url
    return parts.path + (f"?{parts.query}" if parts.query else "")


@pytest.fixture
def sent(app: App, world: World, clock: Clock) -> None:
    """news (public) and staff (private) with a postal address; one edition of each
    sent to Alice, and a second of staff."""
    with app.sessions() as s:
        update_list(s, get_list(s, "news"), postal_address=ADDRESS)
        staff = create_list(s, "staff", title="Staff Only", from_addr="s@example.org",
                            public=False, postal_address="Staff Office\nQuay 2, Hull")
        add_member(s, staff, ALICE, confirmed=True, now=clock())
        s.commit()
        world.lists["staff"] = staff.id
    publish(app, clock, "news", "Ferry timetable changes")
    publish(app, clock, "staff", "Staff party on Friday")
    publish(app, clock, "staff", "Canteen closed Monday")


@pytest.mark.parametrize("list_name, address, headline", [
    ("news", ADDRESS, "Ferry timetable changes"),
    ("staff", "Staff Office\nQuay 2, Hull", "Canteen closed Monday"),
])
def test_the_footer_is_in_both_parts_and_every_link_works(
        client: TestClient, app: App, world: World, sent: None, list_name: str, address: str,
        headline: str) -> None:
    text, html = _mail_of(app, list_name, ALICE)
    links = _footer_links(html)
    assert set(LINKS) <= set(links), links
    title = "Morning News" if list_name == "news" else "Staff Only"
    joined = world.member(ALICE, list_name).confirmed_at
    assert joined is not None
    reason = f"You subscribed to {title} on {joined.day} {joined:%B %Y}."
    # Every link and the postal address in the text part too: it is the whole mail for
    # some readers.
    for label in LINKS:
        assert f"{label}: {links[label]}" in text
    assert reason in text and address in text
    doc = lxml.html.document_fromstring(html)
    assert reason in doc.text_content()
    footer = [p for p in doc.xpath("//p[@class='footer']") if "Hull" in p.text_content()
              or "Portsmouth" in p.text_content()]
    assert footer and footer[0].text_content() == address.replace("\n", "")
    assert "<br>" in lxml.html.tostring(footer[0], encoding="unicode")

    unsubscribe = client.get(_path(links["Unsubscribe"]))
    assert unsubscribe.status_code == 200 and "Unsubscribe" in unsubscribe.text
    preferences = client.get(_path(links["Manage preferences"]))
    assert preferences.status_code == 200
    assert "Your email preferences" in preferences.text and "a***@example.org" in preferences.text
    page = client.get(_path(links["View in browser"]))
    assert page.status_code == 200 and headline in page.text
    # Followed, the links changed nothing: Alice is still on the list.
    assert world.status(ALICE, list_name) == "confirmed"


def test_a_private_editions_page_opens_with_its_own_key_only(
        client: TestClient, app: App, sent: None) -> None:
    first, second = (
        _footer_links(html)["View in browser"]
        for html in sorted((m.get_body(("html",)).get_content()  # type: ignore[union-attr]
                            for m in _outbox(app) if "<staff." in str(m["List-Id"])),
                           key=lambda h: "Canteen" in h))
    news_link = _footer_links(_mail_of(app, "news", ALICE)[1])["View in browser"]
    assert "key=" not in news_link and news_link.endswith("/archive/news/1")
    assert first.split("?")[0].endswith("/archive/staff/1") and "?key=" in first
    assert second.split("?")[0].endswith("/archive/staff/2") and "?key=" in second
    assert "Staff party on Friday" in client.get(_path(first)).text

    # Without a key the private list is not there at all, as before.
    assert client.get("/archive/staff/1").status_code == 404
    # The second edition's key does not open the first.
    other = client.get("/archive/staff/1?" + urlsplit(second).query)
    assert other.status_code == 403
    assert "another edition" in other.text and "Staff party" not in other.text
    assert "Canteen" not in other.text
    # A key changed by one character, or cut short, is no key. (Not the last character:
    # base64 leaves two bits of it unused, so 'B', 'C' and 'D' there may read as 'A'.)
    key = urlsplit(first).query.removeprefix("key=")
    for bad in (key[:-5] + ("A" if key[-5] != "A" else "B") + key[-4:], key[:10]):
        refused = client.get(f"/archive/staff/1?key={bad}")
        assert refused.status_code == 403, bad
        assert "This link does not work" in refused.text and "Staff party" not in refused.text
    # A key never opens an edition that does not exist, nor another list's.
    assert client.get(f"/archive/staff/9?key={key}").status_code == 403
    assert client.get(f"/archive/news/1?key={key}").status_code == 200  # public anyway
    assert client.get(_path(first)).headers["cache-control"] == "private, no-store"
    # A key that is not the list's says nothing of whether the list exists: a private
    # list's name answers as a name nobody uses, with a damaged or a foreign key.
    with app.sessions() as s:
        hidden = create_list(s, "hidden", title="Hidden", from_addr="h@example.org",
                             public=False)
        s.commit()
        foreign = app.edition_links.key(hidden.id + 1, 1)
    for bad in ("x", key[:10], foreign):
        there, nowhere = (client.get(f"/archive/{name}/1?key={bad}")
                          for name in ("hidden", "no-such-list"))
        assert (there.status_code, there.text) == (nowhere.status_code, nowhere.text), bad
        assert there.status_code == 403 and "This link does not work" in there.text


def test_korean_footer_and_no_address_warning_once_per_edition(
        client: TestClient, app: App, world: World, clock: Clock,
        caplog: pytest.LogCaptureFixture) -> None:
    """sport (ko) has no postal address: sending its edition warns once, naming the
    setting; its footer speaks Korean."""
    caplog.set_level(logging.WARNING, logger="digest.deliver.worker")
    with app.sessions() as s:
        add_member(s, get_list(s, "sport"), BOB, confirmed=True, now=clock())
        s.commit()
    publish(app, clock, "sport", "서울 마라톤 개최")
    publish(app, clock, "sport", "부산 마라톤 개최")
    # Two editions of two readers each: one warning per edition, not per message.
    warnings = [r.getMessage() for r in caplog.records if "postal address" in r.getMessage()]
    assert len(warnings) == 2, warnings
    assert "digest lists set sport --postal-address" in warnings[0]
    text, html = _mail_of(app, "sport", ALICE)
    joined = world.member(ALICE, "sport").confirmed_at
    assert joined is not None
    reason = f"{joined.year}년 {joined.month}월 {joined.day}일에 스포츠 소식 뉴스레터를 구독하셔서"
    assert reason in text and reason in lxml.html.document_fromstring(html).text_content()
    links = _footer_links(html)
    assert {"구독 취소", "수신 설정", "브라우저에서 보기"} <= set(links), links
    assert client.get(_path(links["수신 설정"])).status_code == 200
    # The message says its language (RFC 3282), as the HTML part's lang does: a mail
    # client picks its spell checker, translation offer and reader voice by it.
    languages = {str(m["Content-Language"]) for m in _outbox(app)
                 if "<sport." in str(m["List-Id"])}
    assert languages == {"ko"}
    assert {str(m["Content-Language"]) for m in _outbox(app)
            if "<news." in str(m["List-Id"])} <= {"en"}


def test_an_editions_page_is_there_while_it_is_still_being_sent(
        client: TestClient, app: App, world: World, clock: Clock) -> None:
    """Readers follow "view in browser" while the rest of the list is still being mailed
    (local-time delivery spreads it over a day): the page is there from the start; the
    list of editions shows it once it is sent."""
    publish(app, clock, "news", "Ferry timetable changes", send=False)
    with app.sessions() as s:
        news = get_list(s, "news")
        edition = open_edition(s, news)
        assert edition is not None
        app.start_sending(s, edition, news)
        view = app.view_url(edition, news)
    assert view == "https://news.example.org/archive/news/1"
    page = client.get(_path(view))
    assert page.status_code == 200 and "Ferry timetable changes" in page.text
    assert "/archive/news/1" not in client.get("/archive/news").text


def _reader_words(page: lxml.html.HtmlElement) -> list[str]:
    return [a.text_content().strip() for a in page.xpath("//a")
            if a.text_content().strip() in ("Unsubscribe", "Manage preferences")]


def test_the_archive_copy_has_no_reader_links_nor_an_empty_reason(
        client: TestClient, app: App, sent: None) -> None:
    """In the browser there is no reader: no Unsubscribe or Manage preferences (they led
    to the sign-up form, or a 404 for a private list), and no empty line where the
    reader's reason was; a public list's page offers Subscribe instead."""
    views = {name: _footer_links(_mail_of(app, name, ALICE)[1])["View in browser"]
             for name in ("news", "staff")}
    for name, view in views.items():
        page = client.get(_path(view))
        assert page.status_code == 200
        doc = lxml.html.document_fromstring(page.text)
        assert _reader_words(doc) == [], name
        footers = doc.xpath("//p[contains(@class, 'footer')]")
        assert footers and all(p.text_content().strip() for p in footers), name
        hrefs = [a.get("href") for a in doc.xpath("//a")]
        assert not any("/subscribe/" in h and name == "staff" for h in hrefs)
        # "View in browser" in the browser would lead to the page itself.
        assert "View in browser" not in doc.text_content(), name
        assert "Portsmouth" in doc.text_content() or "Hull" in doc.text_content()
    news = lxml.html.document_fromstring(client.get(_path(views["news"])).text)
    subscribe = news.xpath("//a[normalize-space(.)='Subscribe']/@href")
    assert subscribe == ["https://news.example.org/subscribe/news"]
    assert client.get(_path(subscribe[0])).status_code == 200


def test_the_footers_site_link_opens_a_page_that_lists_the_lists(
        client: TestClient, app: App, sent: None) -> None:
    """The footer names the site (news.example.org): following it lands on the public
    lists, each with its sign-up, never a 404; the private list is not shown."""
    links = _footer_links(_mail_of(app, "news", ALICE)[1])
    home = client.get(_path(links["news.example.org"]))
    assert home.status_code == 200, home.status_code
    shown = lxml.html.document_fromstring(home.text).text_content()
    assert "Morning News" in shown and "Staff Only" not in shown
    assert 'href="/subscribe/news"' in home.text
