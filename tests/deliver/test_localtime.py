"""Local-time delivery: each subscriber gets the edition at the list's send time in their
own time zone. Decided when the edition is queued (a due time per row); the worker, on a
hand-moved clock, sends nobody early and everybody once their time has come."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select, update

from digest.app import App
from digest.deliver import ledger, worker
from digest.models import Delivery, Edition, EditionStatus
from digest.sender import run_worker
from subscribers.lists import get_list
from subscribers.models import Subscriber
from tests.conftest import Clock
from tests.deliver.test_send import _addresses, _prepare
from tests.deliver.test_worker import outbox_recipients

UTC = dt.UTC


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


# 07:00 in Seoul on 28 November is 22:00 UTC the day before.
SEOUL_SEVEN = utc(2026, 11, 27, 22, 0)


@pytest.mark.parametrize(("zone", "expected"), [
    ("Asia/Seoul", SEOUL_SEVEN),
    ("", SEOUL_SEVEN),  # no zone of their own: the list's
    ("Not/A_Zone", SEOUL_SEVEN),  # unknown: the list's
    ("Europe/Berlin", utc(2026, 11, 28, 6, 0)),  # 07:00 CET
    ("America/New_York", utc(2026, 11, 28, 12, 0)),  # 07:00 EST
    ("Asia/Kolkata", utc(2026, 11, 28, 1, 30)),  # 07:00 IST, half an hour off
    ("Pacific/Kiritimati", utc(2026, 11, 28, 17, 0)),  # already noon there: tomorrow
])
def test_the_next_local_send_time_in_each_zone(zone: str, expected: dt.datetime) -> None:
    at = ledger.local_send_times("Asia/Seoul", SEOUL_SEVEN, SEOUL_SEVEN)
    assert at(zone) == expected


def test_daylight_saving_time_of_the_subscriber_counts_not_the_reference() -> None:
    # 07:00 in Seoul on Sunday 25 October 2026; Berlin leaves summer time at 03:00 that
    # morning, New York a week later.
    reference = utc(2026, 10, 24, 22, 0)
    at = ledger.local_send_times("Asia/Seoul", reference, reference)
    assert at("Europe/Berlin") == utc(2026, 10, 25, 6, 0)  # 07:00 CET, not CEST
    assert at("America/New_York") == utc(2026, 10, 25, 11, 0)  # 07:00 EDT


def test_a_late_edition_goes_at_once_to_those_whose_hour_has_passed() -> None:
    now = SEOUL_SEVEN + dt.timedelta(hours=3)  # sent late, after downtime
    at = ledger.local_send_times("Asia/Seoul", SEOUL_SEVEN, now)
    assert at("Asia/Seoul") == now
    assert at("Asia/Tokyo") == now  # 07:00 in Tokyo came with Seoul's
    assert at("Europe/Berlin") == utc(2026, 11, 28, 6, 0)


ZONES = {"Asia/Seoul": 0, "Europe/Berlin": 1, "America/New_York": 2, "": 3}


def _local_time_edition(app: App, tmp_path: Path, clock: Clock) -> tuple[int, dict[str, str]]:
    """A Seoul list at 07:00 with local-time delivery and a reader in each of ZONES,
    queued at its scheduled time; returns the edition id and {address: zone}."""
    edition_id = _prepare(app, tmp_path, len(ZONES))
    people = {_addresses(len(ZONES))[i]: zone for zone, i in ZONES.items()}
    clock.now = SEOUL_SEVEN
    with app.sessions() as s:
        for address, zone in people.items():
            s.execute(update(Subscriber).where(Subscriber.email == address)
                      .values(timezone=zone))
        mlist = get_list(s, "daily")
        mlist.timezone = "Asia/Seoul"
        mlist.local_time = True
        edition = s.get_one(Edition, edition_id)
        edition.scheduled_for = SEOUL_SEVEN
        s.commit()
        assert worker.start_sending(s, edition, mlist, app.templates,
                                    app.settings["public_url"], clock()) == len(ZONES)
    return edition_id, people


def test_three_time_zones_each_at_their_own_seven(
    app: App, tmp_path: Path, clock: Clock
) -> None:
    edition_id, people = _local_time_edition(app, tmp_path, clock)
    due = {
        "Asia/Seoul": SEOUL_SEVEN, "": SEOUL_SEVEN,
        "Europe/Berlin": utc(2026, 11, 28, 6, 0),
        "America/New_York": utc(2026, 11, 28, 12, 0),
    }
    with app.sessions() as s:
        rows = s.execute(select(Subscriber.timezone, Delivery.next_attempt_at)
                         .join(Subscriber, Subscriber.id == Delivery.subscriber_id)).all()
    assert dict(rows) == due

    received: Counter[str] = Counter()
    for when in sorted(set(due.values())):
        clock.now = when - dt.timedelta(seconds=1)
        run_worker(app, threading.Event(), once=True)
        assert outbox_recipients(app) == received, f"someone got it before {when}"
        clock.now = when
        run_worker(app, threading.Event(), once=True)
        received.update(a for a, zone in people.items() if due[zone] == when)
        assert outbox_recipients(app) == received, f"not everyone due at {when} got it"
    assert set(received) == set(people) and set(received.values()) == {1}
    with app.sessions() as s:
        edition = s.get_one(Edition, edition_id)
        assert edition.status == EditionStatus.SENT


def test_without_local_time_everyone_is_due_at_once(
    app: App, tmp_path: Path, clock: Clock
) -> None:
    edition_id = _prepare(app, tmp_path, 3)
    with app.sessions() as s:
        s.execute(update(Subscriber).values(timezone="America/New_York"))
        edition = s.get_one(Edition, edition_id)
        worker.start_sending(s, edition, get_list(s, "daily"), app.templates,
                             app.settings["public_url"], clock())
        assert set(s.scalars(select(Delivery.next_attempt_at))) == {clock()}
