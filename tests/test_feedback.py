"""The feedback core: editions really sent (to the outbox), then bounce and complaint
notices recorded against them, and what an admin sees afterwards: each delivery's
feedback, the suppression list, the edition's stats."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from email.utils import format_datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update

from digest.app import App
from digest.deliver.backends import Backend
from digest.feedback import NOTICES_KEPT, Feedback, first_sight, record
from digest.gather.sources import add_source
from digest.models import Delivery, DeliveryStatus
from digest.publication import create_list
from digest.stats import edition_stats
from subscribers.lists import get_list
from subscribers.members import add_member, remove_member
from subscribers.models import Subscriber
from subscribers.suppress import suppression_of, suppressions
from tests.conftest import Clock

ANN, BOB, CY = "ann@example.org", "bob@example.org", "cy@example.org"


class Newsroom:
    """A list `daily` fed by a feed file the test writes; editions go out through the
    app's backend (the outbox) or the one given."""

    def __init__(self, app: App, clock: Clock, folder: Path,
                 backend: Backend | None = None) -> None:
        self.clock = clock
        self.feed = folder / "feed.xml"
        self.items: list[str] = []
        self.write()
        self.app = App(app.settings, clock=clock, backend=backend)
        with self.app.sessions() as s:
            mlist = create_list(s, "daily", title="Daily", from_addr="Daily <d@example.org>")
            add_source(s, str(self.feed), mlist, allow_files=True)
            s.commit()

    def join(self, *emails: str) -> None:
        with self.app.sessions() as s:
            for email in emails:
                add_member(s, get_list(s, "daily"), email, confirmed=True, now=self.clock())
            s.commit()

    def publish(self, title: str) -> int:
        """A new article, fetched, built into an edition and sent; the edition's id."""
        when = format_datetime(self.clock() - dt.timedelta(minutes=5))
        self.items.append(f"<item><title>{title}</title><guid>{title}</guid>"
                          f"<link>https://example.org/{len(self.items)}</link>"
                          f"<pubDate>{when}</pubDate><description>{title}.</description></item>")
        self.write()
        with self.app.sessions() as s:
            self.app.fetch(s, allow_files=True)
        report = self.app.send("daily")
        assert report is not None and report.finished
        self.clock.advance(hours=1)
        return report.edition_id

    def delivery(self, edition_id: int, email: str) -> Delivery:
        with self.app.sessions() as s:
            return s.execute(
                select(Delivery).join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                .where(Delivery.edition_id == edition_id, Subscriber.email == email)
            ).scalar_one()

    def record(self, fb: Feedback, *, soft_limit: int = 3) -> str:
        with self.app.sessions() as s:
            outcome = record(s, fb, soft_limit=soft_limit, now=self.clock())
            s.commit()
            return outcome

    def reason(self, email: str) -> tuple[str, str] | None:
        """The suppression of an address: (reason, detail), or None."""
        with self.app.sessions() as s:
            row = suppression_of(s, email)
            return (row.reason, row.detail) if row else None

    def write(self) -> None:
        self.feed.write_text('<?xml version="1.0"?><rss version="2.0"><channel>'
                             "<title>Wire</title>" + "".join(self.items) + "</channel></rss>")

    def close(self) -> None:
        self.app.close()


@pytest.fixture
def room(app: App, clock: Clock, tmp_path: Path) -> Iterator[Newsroom]:
    newsroom = Newsroom(app, clock, tmp_path)
    newsroom.join(ANN, BOB, CY)
    yield newsroom
    newsroom.close()


def notice(kind: str, email: str, at: dt.datetime, **kw: object) -> Feedback:
    return Feedback(provider=str(kw.pop("provider", "postmark")), kind=kind,  # type: ignore[arg-type]
                    email=email, at=at, **kw)  # type: ignore[arg-type]


def test_a_hard_bounce_suppresses_the_reader_and_marks_the_delivery_once(room: Newsroom,
                                                                         clock: Clock) -> None:
    edition = room.publish("Ferry strike")
    sent = room.delivery(edition, BOB)
    at = clock() - dt.timedelta(minutes=20)
    fb = notice("hard_bounce", BOB, at, message_id=sent.message_id,
                detail="550 5.1.1 user unknown")
    assert room.record(fb) == "suppressed"
    marked = room.delivery(edition, BOB)
    assert (marked.feedback, marked.feedback_at) == ("hard_bounce", at)
    reason, detail = room.reason(BOB) or ("", "")
    assert reason == "hard_bounce"
    assert "postmark" in detail and at.strftime("%Y-%m-%d %H:%M") in detail and "5.1.1" in detail
    # The same notice again changes nothing; the others are untouched.
    assert room.record(fb) == "duplicate"
    with room.app.sessions() as s:
        assert len(suppressions(s)) == 1
    assert room.delivery(edition, ANN).feedback == ""
    # The stats page counts it against the edition.
    with room.app.sessions() as s:
        [stats] = edition_stats(s, get_list(s, "daily"))
    assert (stats.bounced, stats.complained) == (1, 0)
    # A reader suppressed is not mailed again.
    later = room.publish("Ferry strike ends")
    with room.app.sessions() as s:
        got = set(s.scalars(select(Subscriber.email).join(
            Delivery, Delivery.subscriber_id == Subscriber.id).where(
            Delivery.edition_id == later, Delivery.status == DeliveryStatus.DELIVERED)))
    assert got == {ANN, CY}


def test_a_complaint_after_unsubscribing_still_suppresses(room: Newsroom, clock: Clock) -> None:
    edition = room.publish("Budget")
    sent = room.delivery(edition, ANN)
    with room.app.sessions() as s:
        remove_member(s, get_list(s, "daily"), ANN, now=clock(), reason="link")
        s.commit()
    fb = notice("complaint", ANN, clock(), provider="ses", delivery_id=sent.id)
    assert room.record(fb) == "suppressed"
    assert room.reason(ANN) == ("complaint", room.reason(ANN)[1])  # type: ignore[index]
    assert room.delivery(edition, ANN).feedback == "complaint"
    with room.app.sessions() as s:
        [stats] = edition_stats(s, get_list(s, "daily"))
    assert (stats.bounced, stats.complained, stats.unsubscribed) == (0, 1, 1)


def test_a_complaint_outranks_an_earlier_bounce_but_not_the_reverse(room: Newsroom,
                                                                     clock: Clock) -> None:
    edition = room.publish("Rain")
    sent = room.delivery(edition, CY)
    assert room.record(notice("soft_bounce", CY, clock(), message_id=sent.message_id)) \
        == "counted"
    assert room.record(notice("complaint", CY, clock(), message_id=sent.message_id)) \
        == "suppressed"
    assert room.record(notice("hard_bounce", CY, clock(), message_id=sent.message_id)) \
        == "duplicate"
    assert room.delivery(edition, CY).feedback == "complaint"
    assert room.reason(CY) is not None and room.reason(CY)[0] == "complaint"  # type: ignore[index]


def test_an_unknown_message_is_unmatched_and_changes_nothing(room: Newsroom, clock: Clock,
                                                             caplog: pytest.LogCaptureFixture
                                                             ) -> None:
    room.publish("Tides")
    caplog.set_level(logging.INFO, logger="digest.feedback")
    for fb in (notice("hard_bounce", BOB, clock(), message_id="<nobody@example.org>"),
               notice("hard_bounce", BOB, clock(), delivery_id=999_999),
               notice("complaint", BOB, clock())):
        assert room.record(fb) == "unmatched"
    assert room.reason(BOB) is None
    assert "no such delivery" in caplog.text


def test_the_delivery_decides_whose_address_is_suppressed(room: Newsroom, clock: Clock,
                                                           caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    edition = room.publish("Harbour")
    # Only the case differs: the subscriber's address, nothing logged.
    sent = room.delivery(edition, ANN)
    assert room.record(notice("hard_bounce", "Ann@Example.ORG", clock(),
                              message_id=sent.message_id.strip("<>"))) == "suppressed"
    assert room.reason(ANN) is not None
    assert "Ann@Example.ORG" not in caplog.text
    # Forwarded mail: a DSN names the address it was forwarded to.
    caplog.set_level(logging.WARNING, logger="digest.feedback")
    sent = room.delivery(edition, BOB)
    assert room.record(notice("hard_bounce", "bob.forward@elsewhere.example", clock(),
                              provider="dsn", message_id=sent.message_id)) == "suppressed"
    assert room.reason(BOB) is not None and room.reason("bob.forward@elsewhere.example") is None
    assert "bob.forward@elsewhere.example" in caplog.text and BOB in caplog.text


def test_a_provider_notice_naming_another_address_is_unmatched(
        room: Newsroom, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    """Providers report the address we sent to: a notice whose id names a delivery to
    someone else is not that delivery's (a wrong or forged id), and suppresses no one."""
    edition = room.publish("Harbour")
    ann, bob = room.delivery(edition, ANN), room.delivery(edition, BOB)
    caplog.set_level(logging.INFO, logger="digest.feedback")
    for fb in (notice("hard_bounce", CY, clock(), delivery_id=ann.id),
               notice("complaint", CY, clock(), message_id=bob.message_id),
               notice("hard_bounce", CY, clock(), provider="ses", delivery_id=ann.id,
                      message_id=bob.message_id)):
        caplog.clear()
        assert room.record(fb) == "unmatched"
        assert len(caplog.records) == 1 and "not taken" in caplog.text
    assert [room.reason(e) for e in (ANN, BOB, CY)] == [None, None, None]
    # The id is wrong but the message id and the address agree: that delivery.
    assert room.record(notice("hard_bounce", BOB, clock(), delivery_id=ann.id,
                              message_id=bob.message_id)) == "suppressed"
    assert room.reason(BOB) is not None and room.reason(ANN) is None


def test_one_provider_id_for_a_batch_finds_the_reader_named(room: Newsroom,
                                                             clock: Clock) -> None:
    """Mailgun gives one id to a batch sent with recipient-variables."""
    edition = room.publish("Markets")
    with room.app.sessions() as s:
        s.execute(update(Delivery).where(Delivery.edition_id == edition)
                  .values(message_id="20261127060000.1.abc@mg.example.org"))
        s.commit()
    fb = notice("hard_bounce", CY, clock(), provider="mailgun",
                message_id="<20261127060000.1.abc@mg.example.org>")
    assert room.record(fb) == "suppressed"
    assert [room.delivery(edition, e).feedback for e in (ANN, BOB, CY)] == ["", "", "hard_bounce"]


def test_soft_bounces_suppress_only_when_the_latest_mails_all_bounced(room: Newsroom,
                                                                       clock: Clock) -> None:
    editions = [room.publish(f"Story {n}") for n in range(6)]

    def soft(n: int, email: str) -> str:
        sent = room.delivery(editions[n], email)
        return room.record(notice("soft_bounce", email, clock(), provider="dsn",
                                  message_id=sent.message_id, detail="452 4.2.2 mailbox full"))

    # Ann: 0 and 1 bounced, 2 went through, 3 bounced: never three in a row.
    assert [soft(n, ANN) for n in (0, 1, 3)] == ["counted"] * 3
    assert room.reason(ANN) is None
    # Ann's 4 and 5 bounce too: the latest three all bounced.
    assert soft(4, ANN) == "counted"
    assert soft(5, ANN) == "suppressed"
    reason, detail = room.reason(ANN) or ("", "")
    assert reason == "hard_bounce" and "3 soft bounces in a row" in detail and "4.2.2" in detail
    # Bob: a late bounce for an old mail counts only while the newer ones bounced too.
    assert [soft(n, BOB) for n in (5, 4, 3)] == ["counted", "counted", "suppressed"]
    assert soft(3, BOB) == "duplicate"
    # Cy's soft bounces with the limit at 0 are only counted.
    for n in range(6):
        sent = room.delivery(editions[n], CY)
        assert room.record(notice("soft_bounce", CY, clock(), message_id=sent.message_id),
                           soft_limit=0) == "counted"
    assert room.reason(CY) is None
    with room.app.sessions() as s:
        stats = edition_stats(s, get_list(s, "daily"))
    assert sum(e.bounced for e in stats) == 2


def test_first_sight_remembers_a_notice_and_forgets_it_after_a_week(app: App,
                                                                     clock: Clock) -> None:
    with app.sessions() as s:
        assert first_sight(s, "sendgrid", "evt-1", clock())
        assert not first_sight(s, "sendgrid", "evt-1", clock())
        assert first_sight(s, "mailgun", "evt-1", clock())  # another provider's key
        s.commit()
    with app.sessions() as s:
        assert not first_sight(s, "sendgrid", "evt-1", clock() + dt.timedelta(hours=30))
        s.commit()
    with app.sessions() as s:
        assert first_sight(s, "sendgrid", "evt-1", clock() + NOTICES_KEPT
                           + dt.timedelta(hours=31))
        s.commit()
