"""The whole flow through the App: feeds from a loopback HTTP server → fetch → build →
send into the outbox; what a subscriber receives."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from pathlib import Path

import lxml.html
import premailer
import pytest
from sqlalchemy import select

from digest import slots
from digest.app import App
from digest.gather.sources import add_source
from digest.models import Delivery, DeliveryStatus, Source
from digest.publication import create_list
from subscribers.lists import get_list
from subscribers.members import add_member, remove_member
from subscribers.suppress import suppress
from tests import loopback
from tests.conftest import DATA, Clock

FEEDS = {
    "/news.xml": DATA / "flow" / "news.xml",
    "/hostile.xml": DATA / "feeds" / "hostile.xml",
    "/slots.xml": DATA / "flow" / "slots.xml",
}


@pytest.fixture
def feed_server() -> Iterator[str]:
    """Serves the test feeds on 127.0.0.1; any other path (`/broken.xml`) answers 500."""
    with loopback.feed_server(
        lambda path: FEEDS[path].read_bytes() if path in FEEDS else None
    ) as base:
        yield base


def _populate(app: App, base: str, people: int) -> None:
    with app.sessions() as s:
        mlist = create_list(s, "daily", title="Harbour Daily 항구 소식",
                            from_addr="Harbour Daily <news@news.example.org>",
                            timezone="Asia/Seoul")
        for path in ("/news.xml", "/hostile.xml", "/broken.xml"):
            add_source(s, base + path, mlist)
        for i in range(people):
            add_member(s, mlist, f"reader{i}@example.org", name=f"Reader {i}",
                       confirmed=True, now=app.clock())
        add_member(s, mlist, "waiting@example.org", now=app.clock())  # pending
        add_member(s, mlist, "gone@example.org", confirmed=True, now=app.clock())
        remove_member(s, mlist, "gone@example.org", now=app.clock())
        add_member(s, mlist, "bounced@example.org", confirmed=True, now=app.clock())
        suppress(s, "bounced@example.org", "hard_bounce", now=app.clock())
        s.commit()


def _outbox(app: App) -> list[email.message.EmailMessage]:
    folder = Path(app.settings["delivery.outbox_dir"]) / "new"
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
            for p in sorted(folder.iterdir())]


def test_fetch_build_send_to_outbox(app: App, feed_server: str, clock: Clock) -> None:
    _populate(app, feed_server, people=3)
    with app.sessions() as s:
        reports = app.fetch(s)
        by_url = {r.url.rsplit("/", 1)[1]: r for r in reports}
        assert by_url["news.xml"].status == "ok" and by_url["news.xml"].new >= 3
        assert by_url["broken.xml"].status == "error" and "500" in by_url["broken.xml"].error
        broken = s.scalars(select(Source).where(Source.url.endswith("broken.xml"))).one()
        assert broken.consecutive_failures == 1 and broken.last_error

    report = app.send("daily")
    assert report is not None and report.finished
    assert report.counts == {DeliveryStatus.DELIVERED: 3}

    messages = _outbox(app)
    assert sorted(str(m["To"]) for m in messages) == [
        f"Reader {i} <reader{i}@example.org>" for i in range(3)]
    for msg in messages:
        assert msg.get_content_type() == "multipart/alternative"
        text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
        assert msg["Subject"].startswith("Harbour Daily 항구 소식: ")
        assert msg["Message-ID"] and msg["Date"]
        assert msg["List-Id"] == "Harbour Daily 항구 소식 <daily.news.example.org>"
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert msg["List-Unsubscribe"].startswith("<https://news.example.org/unsubscribe/")
        for part in (text, html):
            assert "{{" not in part and "{%" not in part and "__DIGEST_SLOT_" not in part
            assert "javascript:" not in part.lower()
        _assert_harmless(html)
        unsub = msg["List-Unsubscribe"].split(",")[0].strip("<> ")
        assert unsub in html and unsub in text


def _assert_harmless(html: str) -> None:
    """Nothing hostile from the feed survives: no active elements, no event handlers,
    no link or image that is not http(s) or mailto."""
    doc = lxml.html.document_fromstring(html)
    assert not doc.xpath("//script|//iframe|//object|//embed|//form|//svg|//base")
    for el in doc.iter():
        if not isinstance(el.tag, str):
            continue
        for name, value in el.attrib.items():
            assert not name.lower().startswith("on"), (el.tag, name)
            if name in ("href", "src"):
                assert value.split(":", 1)[0].lower() in ("http", "https", "mailto"), value


def test_second_send_mails_nobody_twice(app: App, feed_server: str) -> None:
    _populate(app, feed_server, people=2)
    with app.sessions() as s:
        app.fetch(s)
    assert app.send("daily") is not None
    again = app.send("daily")  # edition sent, no new articles: nothing happens
    assert again is None
    assert len(_outbox(app)) == 2
    with app.sessions() as s:
        assert len(s.scalars(select(Delivery)).all()) == 2


def test_premailer_runs_once_per_edition_whatever_the_audience(
    app: App, feed_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real = premailer.Premailer.transform

    def counting(self: premailer.Premailer, *args: object, **kwargs: object) -> str:
        calls.append(1)
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(premailer.Premailer, "transform", counting)
    _populate(app, feed_server, people=150)
    with app.sessions() as s:
        app.fetch(s)
    report = app.send("daily")
    assert report is not None and report.counts == {DeliveryStatus.DELIVERED: 150}
    # Once when the draft is built (measured against [edition] html_max_kb), once when
    # sending starts; never once per reader.
    assert len(calls) == 2


def test_a_feed_cannot_fill_the_per_reader_slots(app: App, feed_server: str) -> None:
    """An item that writes slot tokens into its link, image, title and summary must not
    get each reader's address, name or unsubscribe link sent to its server: in either
    part, what came from the feed stays as the feed wrote it."""
    _populate(app, feed_server, people=2)
    with app.sessions() as s:
        add_source(s, feed_server + "/slots.xml", get_list(s, "daily"))
        s.commit()
        app.fetch(s)
    report = app.send("daily")
    assert report is not None and report.counts == {DeliveryStatus.DELIVERED: 2}

    for msg in _outbox(app):
        address = msg["To"].addresses[0]
        unsubscribe_url = str(msg["List-Unsubscribe"]).split(",")[0].strip("<> ")
        secrets = (address.addr_spec, address.display_name, unsubscribe_url,
                   unsubscribe_url.rsplit("/", 1)[1])
        html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
        text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        doc = lxml.html.document_fromstring(html)
        from_feed = [url for url in doc.xpath("//@href | //@src") if "evil.example" in url]
        assert len(from_feed) >= 2, "the item's link and image should be in the mail"
        from_feed += [line for line in text.splitlines() if "evil.example" in line]
        for marker in ("TITLE[", "SUMMARY["):
            for part in (doc.text_content(), text):
                start = part.index(marker)
                from_feed.append(part[start:part.index("]", start) + 1])
        for piece in from_feed:
            assert not any(secret in piece for secret in secrets), (address, piece)


def test_an_edition_rendered_before_slot_keys_still_reaches_its_readers(
        app: App, feed_server: str) -> None:
    """An edition that was sending when digest was upgraded holds unkeyed tokens and an
    empty slot key (migration 0007): its readers still get their own address and link."""
    _populate(app, feed_server, people=2)
    with app.sessions() as s:
        app.fetch(s)
        edition = app.build(s, "daily")[0]
        assert edition is not None
        app.start_sending(s, edition, get_list(s, "daily"))
        key = edition.slot_key
        assert key
        edition.html = edition.html.replace(slots.marker(key), slots.PREFIX)
        edition.text = edition.text.replace(slots.marker(key), slots.PREFIX)
        edition.slot_key = ""
        s.commit()
        edition_id = edition.id
    assert app.deliver(edition_id).counts == {DeliveryStatus.DELIVERED: 2}
    for msg in _outbox(app):
        html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
        assert msg["To"].addresses[0].addr_spec in html and slots.PREFIX not in html
