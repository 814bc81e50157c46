"""Edition stats: editions really sent through an SMTP server on loopback that refuses
one address, then bounces, complaints and unsubscribes recorded at known times, and
the numbers each edition gets."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from email.utils import format_datetime
from pathlib import Path

import pytest

from digest.app import App
from digest.deliver.backends.smtp import SmtpBackend
from digest.gather.sources import add_source
from digest.models import Edition, EditionStatus
from digest.privacy import forget
from digest.publication import create_list
from digest.stats import EditionStats, edition_stats, stats_of_edition
from subscribers.lists import get_list
from subscribers.members import add_member, remove_member
from subscribers.suppress import block_domain, suppress
from tests.conftest import Clock
from tests.deliver.conftest import SmtpSink, smtp_server  # noqa: F401  (a fixture)

PEOPLE = [f"reader{i}@example.org" for i in range(6)]


class Newsroom:
    """A list `daily` fed by a feed file the test writes, sending through `sink`."""

    def __init__(self, app: App, sink: SmtpSink, clock: Clock, folder: Path) -> None:
        self.clock = clock
        self.feed = folder / "feed.xml"
        self.items: list[str] = []
        self.write()
        backend = SmtpBackend(sink.host, sink.port, tls="none", connections=1, timeout=10)
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
        """A new article in the feed, fetched, built into an edition and sent; its id."""
        when = format_datetime(self.clock() - dt.timedelta(minutes=5))
        self.items.append(f"<item><title>{title}</title><guid>{title}</guid>"
                          f"<link>https://example.org/{len(self.items)}</link>"
                          f"<pubDate>{when}</pubDate><description>{title}.</description></item>")
        self.write()
        with self.app.sessions() as s:
            self.app.fetch(s, allow_files=True)
        report = self.app.send("daily")
        assert report is not None and report.finished
        return report.edition_id

    def stats(self, **kwargs: int) -> list[EditionStats]:
        with self.app.sessions() as s:
            return edition_stats(s, get_list(s, "daily"), **kwargs)

    def close(self) -> None:
        self.app.close()

    def write(self) -> None:
        self.feed.write_text('<?xml version="1.0"?><rss version="2.0"><channel>'
                             "<title>Wire</title>" + "".join(self.items) + "</channel></rss>")


@pytest.fixture
def newsroom(app: App, smtp_server: Callable[..., SmtpSink],  # noqa: F811
             clock: Clock, tmp_path: Path) -> Iterator[Newsroom]:
    room = Newsroom(app, smtp_server(reject={PEOPLE[1]}), clock, tmp_path)
    yield room
    room.close()


def _numbers(row: EditionStats) -> dict[str, int]:
    return {k: getattr(row, k) for k in
            ("recipients", "sent", "failed", "bounced", "complained", "unsubscribed")}


def _at(app: App, fn: Callable[..., object], *args: object, **kwargs: object) -> None:
    with app.sessions() as s:
        fn(s, *args, **kwargs)
        s.commit()


def test_one_edition_with_a_failure_a_bounce_a_complaint_and_an_unsubscribe(
        newsroom: Newsroom, clock: Clock) -> None:
    app = newsroom.app
    newsroom.join(*PEOPLE[:5])
    # Before the send: a bounce of someone who then gets nothing, and someone who left.
    _at(app, suppress, PEOPLE[4], "hard_bounce", now=clock())
    _at(app, lambda s: remove_member(s, get_list(s, "daily"), PEOPLE[3], now=clock()))
    clock.advance(hours=1)
    edition_id = newsroom.publish("Ferry news")
    clock.advance(hours=2)
    _at(app, suppress, PEOPLE[2], "hard_bounce", "550 mailbox gone", now=clock())
    _at(app, suppress, PEOPLE[0], "complaint", now=clock())
    _at(app, lambda s: remove_member(s, get_list(s, "daily"), PEOPLE[0], now=clock()))
    # A blocked domain is not a bounce.
    _at(app, block_domain, "example.org", now=clock())

    [row] = newsroom.stats()
    assert row.edition_id == edition_id and row.number == 1 and row.status == EditionStatus.SENT
    assert row.subject and row.list_name == "daily"
    assert row.send_started_at == clock() - dt.timedelta(hours=2)
    assert _numbers(row) == {"recipients": 3, "sent": 2, "failed": 1, "bounced": 1,
                             "complained": 1, "unsubscribed": 1}
    with app.sessions() as s:
        assert stats_of_edition(s, s.get_one(Edition, edition_id)) == row


def test_later_events_count_against_the_edition_people_got_last(
        newsroom: Newsroom, clock: Clock) -> None:
    app = newsroom.app
    newsroom.join(PEOPLE[0], PEOPLE[2], PEOPLE[3])
    first = newsroom.publish("One")
    clock.advance(hours=1)
    _at(app, lambda s: remove_member(s, get_list(s, "daily"), PEOPLE[0], now=clock()))
    clock.advance(hours=23)
    newsroom.join(PEOPLE[5])
    second = newsroom.publish("Two")
    clock.advance(hours=1)
    _at(app, suppress, PEOPLE[2], "hard_bounce", now=clock())
    _at(app, suppress, PEOPLE[5], "complaint", now=clock())
    _at(app, lambda s: remove_member(s, get_list(s, "daily"), PEOPLE[3], now=clock()))

    newest, oldest = newsroom.stats()
    assert (newest.edition_id, oldest.edition_id) == (second, first)
    assert _numbers(oldest) == {"recipients": 3, "sent": 3, "failed": 0, "bounced": 0,
                                "complained": 0, "unsubscribed": 1}
    assert _numbers(newest) == {"recipients": 3, "sent": 3, "failed": 0, "bounced": 1,
                                "complained": 1, "unsubscribed": 1}
    # Paging: the older edition alone still ends its window where the next one starts.
    [alone] = newsroom.stats(limit=1, before=newest.number)
    assert alone == oldest
    assert newsroom.stats(limit=1) == [newest]


def test_a_forgotten_person_no_longer_counts_as_a_bounce(
        newsroom: Newsroom, clock: Clock) -> None:
    app = newsroom.app
    newsroom.join(PEOPLE[0], PEOPLE[2])
    newsroom.publish("One")
    clock.advance(minutes=30)
    _at(app, suppress, PEOPLE[2], "hard_bounce", now=clock())
    assert newsroom.stats()[0].bounced == 1
    _at(app, forget, PEOPLE[2], now=clock(), imports_dir=None)
    [row] = newsroom.stats()
    assert (row.bounced, row.recipients, row.unsubscribed) == (0, 2, 1)


def test_editions_not_yet_sending_have_no_stats(newsroom: Newsroom, clock: Clock) -> None:
    newsroom.join(PEOPLE[0])
    assert newsroom.stats() == []
    newsroom.publish("One")
    clock.advance(hours=1)
    newsroom.items.append("<item><title>Two</title><guid>two</guid>"
                          "<link>https://example.org/two</link></item>")
    newsroom.write()
    with newsroom.app.sessions() as s:
        newsroom.app.fetch(s, allow_files=True)
        draft, _ = newsroom.app.build(s, "daily")
        assert draft is not None and draft.status == EditionStatus.DRAFT
        assert stats_of_edition(s, draft) is None
    assert [row.number for row in newsroom.stats()] == [1]
