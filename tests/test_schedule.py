"""The scheduler, driven by a hand-moved clock: cron in a timezone across DST changes,
restarts, downtime inside and beyond the grace window, two schedulers firing the same
edition, fetch backoff, and APScheduler's job store keeping the schedule."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from collections.abc import Iterator

import pytest
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
)
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from sqlalchemy import func, select

from digest import curate, schedule
from digest.app import App
from digest.cron import cron_weekdays, due_editions, fire_times, list_trigger, next_runs
from digest.errors import InvalidInput
from digest.gather.lease import take_lease
from digest.models import Article, Delivery, Edition, EditionKind, EditionStatus, ListSource, Source
from digest.publication import create_list
from subscribers.lists import archive_list, get_list
from subscribers.members import add_member
from subscribers.models import MailingList
from tests.conftest import Clock
from tests.loopback import feed_server

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    """"2026-11-27 07:00" in UTC."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- helpers shared with test_review -----------------------------------------------------


def make_list(app: App, clock: Clock, name: str = "news", *, schedule: str = "0 7 * * *",
              timezone: str = "UTC", members: int = 2, **settings: object) -> int:
    """A list created now (by the clock) with one source and confirmed members."""
    with app.sessions() as s:
        mlist = create_list(s, name, from_addr=f"News <{name}@news.example.org>",
                            schedule=schedule, timezone=timezone,
                            postal_address="1 Harbour Road, Portsmouth PO1 2AB")
        mlist.created_at = clock()
        for key, value in settings.items():
            setattr(mlist, key, value)
        source = Source(url=f"https://feeds.example.org/{name}.xml", title=name.title())
        s.add(source)
        s.flush()
        s.add(ListSource(list_id=mlist.id, source_id=source.id))
        for i in range(members):
            add_member(s, mlist, f"reader{i}@example.org", confirmed=True, now=clock())
        s.commit()
        return mlist.id


def add_articles(app: App, list_name: str, times: list[dt.datetime]) -> None:
    """One article of the list's source published at each time."""
    with app.sessions() as s:
        mlist = get_list(s, list_name)
        source_id = s.scalars(select(ListSource.source_id)
                              .where(ListSource.list_id == mlist.id)).first()
        for t in times:
            key = uuid.uuid4().hex
            s.add(Article(source_id=source_id, guid=key, link=f"https://example.org/{key}",
                          content_hash=key, title=f"News of {t:%Y-%m-%d %H:%M}",
                          published_at=t, first_seen_at=t))
        s.commit()


def hourly(start: dt.datetime, hours: int) -> list[dt.datetime]:
    return [start + dt.timedelta(hours=h, minutes=30) for h in range(hours)]


def editions(app: App, list_name: str = "news") -> list[Edition]:
    with app.sessions() as s:
        mlist = get_list(s, list_name)
        return list(s.scalars(select(Edition).where(Edition.list_id == mlist.id,
                                                    Edition.kind == EditionKind.DIGEST)
                              .order_by(Edition.number)))


def deliveries(app: App) -> int:
    with app.sessions() as s:
        return s.scalar(select(func.count()).select_from(Delivery)) or 0


def drop_every_article(app: App, clock: Clock, list_name: str = "news") -> int:
    """An editor drafts the list's next edition on the desk now and drops every article
    of it; returns the edition's id."""
    with app.sessions() as s:
        edition = curate.draft_for(s, get_list(s, list_name), now=clock(),
                                   rules=app.edition_rules())
        assert edition is not None and edition.items
        for item_id in [i.id for i in edition.items]:
            curate.drop_item(s, edition, item_id)
        s.commit()
        return edition.id


def run_every(app: App, clock: Clock, until: dt.datetime, minutes: int) -> list[str]:
    """Move the clock in steps, running what is due at each, like a live scheduler."""
    outcomes = []
    while clock() < until:
        clock.advance(minutes=minutes)
        outcomes += [outcome for _name, outcome in schedule.run_due(app)]
    return outcomes


# -- cron arithmetic ---------------------------------------------------------------------


@pytest.mark.parametrize(("cron", "aps"), [
    ("*", "*"), ("?", "*"), ("0", "sun"), ("7", "sun"), ("1-5", "mon,tue,wed,thu,fri"),
    ("mon-fri", "mon,tue,wed,thu,fri"), ("5-7", "fri,sat,sun"), ("fri-sun", "fri,sat,sun"),
    ("*/2", "tue,thu,sat,sun"), ("0,6", "sat,sun"), ("0-6", "*"), ("1/3", "mon,thu"),
])
def test_cron_weekdays_count_from_sunday(cron: str, aps: str) -> None:
    assert cron_weekdays(cron) == aps


def test_unusable_schedules_say_why() -> None:
    with pytest.raises(InvalidInput, match="not both"):
        list_trigger("0 7 1 * mon", "UTC")
    with pytest.raises(InvalidInput, match="0-7 or sun-sat"):
        list_trigger("0 7 * * 8", "UTC")
    with pytest.raises(InvalidInput, match="Mars/Olympus"):
        list_trigger("0 7 * * *", "Mars/Olympus")
    with pytest.raises(InvalidInput, match="digest lists set"):
        list_trigger("61 7 * * *", "UTC")


def test_weekday_numbers_mean_what_cron_means() -> None:
    sunday = list_trigger("0 8 * * 0", "UTC")
    runs = next_runs(sunday, at("2026-11-27 00:00"), 2)  # a Friday
    assert [r.strftime("%a %d %H:%M") for r in runs] == ["Sun 29 08:00", "Sun 06 08:00"]


def test_seoul_morning_is_the_evening_before_in_utc() -> None:
    runs = next_runs(list_trigger("0 7 * * *", "Asia/Seoul"), at("2026-11-27 06:00"), 2)
    assert runs == [at("2026-11-27 22:00"), at("2026-11-28 22:00")]


def test_cron_follows_new_york_across_both_dst_changes() -> None:
    trigger = list_trigger("0 7 * * *", "America/New_York")
    assert list(fire_times(trigger, at("2026-03-06 00:00"), at("2026-03-10 00:00"))) == [
        at("2026-03-06 12:00"), at("2026-03-07 12:00"),  # EST, UTC-5
        at("2026-03-08 11:00"), at("2026-03-09 11:00")]  # EDT from 8 March
    assert list(fire_times(trigger, at("2026-10-31 00:00"), at("2026-11-03 00:00"))) == [
        at("2026-10-31 11:00"), at("2026-11-01 12:00"), at("2026-11-02 12:00")]


def test_a_fixed_time_in_the_repeated_hour_fires_once() -> None:
    # Berlin falls back at 03:00 CEST on 25 October 2026: 02:30 happens twice.
    daily = list_trigger("30 2 * * *", "Europe/Berlin")
    assert list(fire_times(daily, at("2026-10-24 00:00"), at("2026-10-27 00:00"))) == [
        at("2026-10-24 00:30"), at("2026-10-25 00:30"), at("2026-10-26 01:30")]
    # An hourly schedule keeps both 02:00s: they are an hour apart.
    hourly_ = list_trigger("0 * * * *", "Europe/Berlin")
    got = list(fire_times(hourly_, at("2026-10-24 23:30"), at("2026-10-25 02:30")))
    assert got == [at("2026-10-25 00:00"), at("2026-10-25 01:00"), at("2026-10-25 02:00")]


def test_a_time_that_does_not_exist_fires_an_hour_later() -> None:
    # Berlin springs forward at 02:00 CET on 29 March 2026: no 02:30 that day.
    daily = list_trigger("30 2 * * *", "Europe/Berlin")
    assert list(fire_times(daily, at("2026-03-28 00:00"), at("2026-03-31 00:00"))) == [
        at("2026-03-28 01:30"), at("2026-03-29 01:30"), at("2026-03-30 00:30")]


def test_due_editions_is_pure_over_schedules_and_markers() -> None:
    def mlist(last: dt.datetime | None) -> MailingList:
        return MailingList(id=1, name="news", schedule="0 * * * *", timezone="UTC",
                           created_at=at("2026-11-27 00:10"), last_scheduled_for=last)

    grace = dt.timedelta(hours=2)
    # Nothing since the last run.
    assert due_editions([mlist(at("2026-11-27 07:00"))], at("2026-11-27 07:30"), grace) == []
    # The newest time runs; the ones before it are passed over (coalesced).
    [due] = due_editions([mlist(at("2026-11-27 04:00"))], at("2026-11-27 07:30"), grace)
    assert (due.scheduled_for, due.skipped_from) == (at("2026-11-27 07:00"),
                                                     at("2026-11-27 05:00"))
    # Never run: counted from the list's creation.
    [due] = due_editions([mlist(None)], at("2026-11-27 01:05"), grace)
    assert (due.scheduled_for, due.skipped_from) == (at("2026-11-27 01:00"), None)
    # Every time older than the grace window: nothing runs, the oldest is reported.
    daily = MailingList(id=2, name="daily", schedule="0 7 * * *", timezone="UTC",
                        created_at=at("2026-11-01 00:00"),
                        last_scheduled_for=at("2026-11-20 07:00"))
    [due] = due_editions([daily], at("2026-11-27 10:00"), grace)
    assert (due.scheduled_for, due.skipped_from) == (None, at("2026-11-21 07:00"))


# -- editions on schedule ----------------------------------------------------------------


def test_an_edition_goes_out_at_its_time_and_once(app: App, clock: Clock) -> None:
    make_list(app, clock, members=3)
    add_articles(app, "news", hourly(at("2026-11-27 00:00"), 7))
    assert schedule.run_due(app) == []  # 06:00: nothing due yet
    clock.advance(hours=1)  # 07:00
    assert schedule.run_due(app) == [("news", schedule.STARTED)]
    [ed] = editions(app)
    assert ed.scheduled_for == at("2026-11-27 07:00") and ed.status == EditionStatus.SENDING
    assert deliveries(app) == 3
    assert schedule.run_due(app) == []
    assert schedule.run_edition_job(app, "news", at("2026-11-27 07:00")) == schedule.DONE
    assert len(editions(app)) == 1 and deliveries(app) == 3


def test_daily_list_across_the_dst_change_gets_one_edition_a_day(
    app: App, clock: Clock
) -> None:
    clock.now = at("2026-10-30 13:00")
    make_list(app, clock, timezone="America/New_York")
    add_articles(app, "news", hourly(clock(), 24 * 4))
    run_every(app, clock, at("2026-11-03 13:00"), minutes=20)
    assert [e.scheduled_for for e in editions(app)] == [
        at("2026-10-31 11:00"), at("2026-11-01 12:00"), at("2026-11-02 12:00"),
        at("2026-11-03 12:00")]


def test_berlin_fall_back_night_brings_one_edition(app: App, clock: Clock) -> None:
    clock.now = at("2026-10-23 12:00")
    make_list(app, clock, schedule="30 2 * * *", timezone="Europe/Berlin")
    add_articles(app, "news", hourly(clock(), 24 * 3))
    run_every(app, clock, at("2026-10-26 12:00"), minutes=15)
    assert [e.scheduled_for for e in editions(app)] == [
        at("2026-10-24 00:30"), at("2026-10-25 00:30"), at("2026-10-26 01:30")]


def test_a_restart_mid_day_keeps_the_schedule(app: App, clock: Clock, settings) -> None:  # type: ignore[no-untyped-def]
    make_list(app, clock, schedule="0 7,19 * * *")
    add_articles(app, "news", hourly(at("2026-11-27 00:00"), 24))
    clock.now = at("2026-11-27 07:00")
    assert schedule.run_due(app) == [("news", schedule.STARTED)]
    app.close()
    clock.now = at("2026-11-27 12:34")  # a new process on the same database
    restarted = App(settings, clock=clock)
    try:
        assert schedule.run_due(restarted) == []
        clock.now = at("2026-11-27 19:00")
        assert schedule.run_due(restarted) == [("news", schedule.STARTED)]
        assert [e.scheduled_for for e in editions(restarted)] == [
            at("2026-11-27 07:00"), at("2026-11-27 19:00")]
    finally:
        restarted.close()


def test_downtime_inside_the_grace_window_sends_the_missed_edition_once(
    app: App, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    make_list(app, clock)
    add_articles(app, "news", hourly(at("2026-11-27 00:00"), 36))
    clock.now = at("2026-11-27 07:00")
    schedule.run_due(app)
    clock.now = at("2026-11-28 12:59")  # down from before 07:00 until now: 5 h 59 late
    assert schedule.run_due(app) == [("news", schedule.STARTED)]
    assert schedule.run_due(app) == []
    eds = editions(app)
    assert [e.scheduled_for for e in eds] == [at("2026-11-27 07:00"), at("2026-11-28 07:00")]
    assert eds[1].cutoff == at("2026-11-28 12:59")  # it carries what came meanwhile
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_downtime_beyond_the_grace_window_skips_with_a_log_line(
    app: App, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    make_list(app, clock)
    add_articles(app, "news", hourly(at("2026-11-27 00:00"), 60))
    clock.now = at("2026-11-27 07:00")
    schedule.run_due(app)
    clock.now = at("2026-11-28 13:01")  # 6 h 1 min late
    caplog.clear()  # the INFO line of 07:00's run, when an earlier test left INFO on
    with caplog.at_level(logging.WARNING, logger="digest.schedule"):
        assert schedule.run_due(app) == [("news", schedule.MISSED)]
        assert schedule.run_due(app) == []  # logged once, not at every round
    [line] = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "news" in line and "2026-11-28 07:00 UTC was missed" in line
    assert "grace_hours" in line and "skipped" in line
    assert len(editions(app)) == 1
    clock.now = at("2026-11-29 07:00")  # the next day goes out as usual
    assert schedule.run_due(app) == [("news", schedule.STARTED)]
    assert [e.scheduled_for for e in editions(app)][-1] == at("2026-11-29 07:00")


def test_a_late_call_for_an_old_time_is_skipped(app: App, clock: Clock) -> None:
    make_list(app, clock)
    add_articles(app, "news", hourly(at("2026-11-27 00:00"), 6))
    clock.now = at("2026-11-28 14:00")
    assert schedule.run_edition_job(app, "news", at("2026-11-28 07:00")) == schedule.MISSED
    assert editions(app) == []


def test_many_missed_times_make_one_edition(app: App, clock: Clock) -> None:
    make_list(app, clock, schedule="0 * * * *")
    add_articles(app, "news", hourly(at("2026-11-27 00:00"), 12))
    clock.now = at("2026-11-27 11:20")  # 06:00's list; 07:00 … 11:00 all missed
    assert schedule.run_due(app) == [("news", schedule.STARTED)]
    assert [e.scheduled_for for e in editions(app)] == [at("2026-11-27 11:00")]


def test_an_empty_time_is_not_filled_later(app: App, clock: Clock) -> None:
    make_list(app, clock)
    clock.now = at("2026-11-27 07:00")
    assert schedule.run_due(app) == [("news", schedule.EMPTY)]
    add_articles(app, "news", [at("2026-11-27 07:30")])
    clock.now = at("2026-11-27 08:00")  # a restart: 07:00 was dealt with already
    assert schedule.run_due(app) == []
    assert editions(app) == []


def test_an_edition_with_every_article_dropped_does_not_go_out(
    app: App, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    make_list(app, clock, members=3)
    add_articles(app, "news", hourly(at("2026-11-27 00:00"), 6))
    drop_every_article(app, clock)  # 06:00
    clock.now = at("2026-11-27 07:00")
    with caplog.at_level(logging.WARNING, logger="digest.schedule"):
        outcomes = schedule.run_due(app)
    assert deliveries(app) == 0
    [ed] = editions(app)  # left for the editors, at the time it missed
    assert (ed.status, ed.scheduled_for) == (EditionStatus.DRAFT, at("2026-11-27 07:00"))
    assert outcomes == [("news", schedule.NOT_READY)]
    [line] = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "news" in line and "edition #1" in line and "no articles" in line
    assert "/desk/news" in line  # where to add one
    assert schedule.run_edition_job(app, "news", at("2026-11-27 07:00")) == schedule.DONE


def test_two_schedulers_firing_the_same_time_make_one_edition(
    app: App, clock: Clock, settings
) -> None:  # type: ignore[no-untyped-def]
    make_list(app, clock, members=5)
    add_articles(app, "news", hourly(at("2026-11-27 00:00"), 7))
    clock.now = at("2026-11-27 07:00")
    other = App(settings, clock=clock)
    try:
        first = schedule.run_edition_job(app, "news", at("2026-11-27 07:00"))
        second = schedule.run_edition_job(other, "news", at("2026-11-27 07:00"))
        assert (first, second) == (schedule.STARTED, schedule.DONE)
        assert len(editions(app)) == 1 and deliveries(app) == 5
    finally:
        other.close()


def test_two_schedulers_at_the_same_moment_make_one_edition(
    app: App, clock: Clock, settings
) -> None:  # type: ignore[no-untyped-def]
    make_list(app, clock, schedule="0 * * * *", members=5)
    add_articles(app, "news", hourly(at("2026-11-27 00:00"), 12))
    apps = [App(settings, clock=clock) for _ in range(2)]
    times = [at("2026-11-27 07:00") + dt.timedelta(hours=h) for h in range(4)]
    outcomes: list[list[str]] = []
    try:
        for when in times:  # a race each hour, so that one of them is close
            clock.now = when
            outcomes.append(_race(apps, when))
    finally:
        for a in apps:
            a.close()
    for pair in outcomes:
        assert sorted(pair) == [schedule.DONE, schedule.STARTED] or pair == [
            schedule.STARTED, schedule.STARTED]  # both saw it and found it sending
    assert [e.scheduled_for for e in editions(app)] == times
    assert deliveries(app) == 5 * len(times)


def _race(apps: list[App], when: dt.datetime) -> list[str]:
    """Both Apps run the same scheduled time in threads released at once."""
    start = threading.Barrier(len(apps))
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def fire(a: App) -> None:
        try:
            start.wait()
            outcomes.append(schedule.run_edition_job(a, "news", when))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=fire, args=(a,)) for a in apps]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return outcomes


def test_archived_lists_get_nothing(app: App, clock: Clock) -> None:
    make_list(app, clock)
    add_articles(app, "news", hourly(at("2026-11-27 00:00"), 7))
    with app.sessions() as s:
        archive_list(s, get_list(s, "news"), now=clock())
        s.commit()
    clock.now = at("2026-11-27 07:00")
    assert schedule.run_due(app) == []
    assert schedule.run_edition_job(app, "news", at("2026-11-27 07:00")) == schedule.DONE


# -- fetching ----------------------------------------------------------------------------


def test_next_fetch_backs_off_with_jitter() -> None:
    now, every = at("2026-11-27 06:00"), dt.timedelta(minutes=15)
    assert schedule.next_fetch(now, every, 0) is None
    assert schedule.next_fetch(now, every, 1) is None  # one failure: the next round
    assert schedule.next_fetch(now, every, 2, rand=lambda: 0.5) == now + every
    assert schedule.next_fetch(now, every, 4, rand=lambda: 0.5) == now + 7 * every
    assert schedule.next_fetch(now, every, 4, rand=lambda: 0.0) == now + 7 * every * 0.9
    assert schedule.next_fetch(now, every, 40, rand=lambda: 0.5) == now + schedule.MAX_BACKOFF


@pytest.fixture
def flaky_server() -> Iterator[tuple[str, list[str]]]:
    """A feed server whose /down.xml always answers 500; records every path asked."""
    asked: list[str] = []
    feed = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>Up</title>'
            b"<item><title>Hello</title><link>https://example.org/1</link>"
            b"<guid>1</guid></item></channel></rss>")

    def answer(path: str) -> bytes | None:
        asked.append(path)
        return None if path == "/down.xml" else feed

    with feed_server(answer) as base:
        yield base, asked


def test_a_failing_source_is_fetched_less_and_less_often(
    app: App, clock: Clock, flaky_server: tuple[str, list[str]]
) -> None:
    base, asked = flaky_server
    with app.sessions() as s:
        s.add_all([Source(url=f"{base}/up.xml"), Source(url=f"{base}/down.xml")])
        s.commit()
    for _round in range(16):  # four hours of 15-minute rounds
        schedule.fetch_due(app, rand=lambda: 0.5)
        clock.advance(minutes=15)
    assert asked.count("/up.xml") == 16
    # Failures 1, 2, 3, 4 wait 0, 1, 3, 7 rounds: tried at rounds 0, 1, 3, 7 and 15.
    assert asked.count("/down.xml") == 5
    with app.sessions() as s:
        down = s.scalars(select(Source).where(Source.url.endswith("down.xml"))).one()
        assert down.consecutive_failures == 5 and down.next_fetch_at is not None
        up = s.scalars(select(Source).where(Source.url.endswith("up.xml"))).one()
        assert up.next_fetch_at is None and up.last_error == ""


def test_a_round_skips_a_source_being_fetched_elsewhere(
    app: App, clock: Clock, flaky_server: tuple[str, list[str]]
) -> None:
    base, asked = flaky_server
    with app.sessions() as s:
        source = Source(url=f"{base}/down.xml", consecutive_failures=3)
        s.add(source)
        s.commit()
        assert take_lease(s, source.id, "the console", clock(), dt.timedelta(minutes=5))
    [report] = schedule.fetch_due(app, rand=lambda: 0.5)
    assert (report.status, report.note) == ("busy", "being fetched elsewhere")
    assert asked == []
    with app.sessions() as s:  # its due time is left to the fetch that has it
        assert s.get_one(Source, source.id).next_fetch_at is None
    clock.advance(minutes=5)  # that fetch died: its lease ran out
    [report] = schedule.fetch_due(app, rand=lambda: 0.5)
    assert report.status == "error" and asked == ["/down.xml"]


# -- APScheduler ---------------------------------------------------------------------------


def test_the_job_store_keeps_the_schedule_across_a_restart(
    app: App, clock: Clock, settings
) -> None:  # type: ignore[no-untyped-def]
    news = make_list(app, clock, timezone="Asia/Seoul")
    first = schedule.Scheduler(app)
    first.start(paused=True)
    try:
        job = first.aps.get_job(f"edition:{news}")
        expected = next_runs(list_trigger("0 7 * * *", "Asia/Seoul"), dt.datetime.now(UTC), 1)
        assert job.next_run_time == expected[0]
        assert job.misfire_grace_time == 6 * 3600 and job.coalesce
    finally:
        first.shutdown()

    restarted = App(settings, clock=clock)
    second = schedule.Scheduler(restarted)
    second.start(paused=True)
    try:
        again = second.aps.get_job(f"edition:{news}")
        assert again.next_run_time == expected[0]  # read back from the database
        assert str(again.trigger.timezone) == "Asia/Seoul"
        with restarted.sessions() as s:  # a changed schedule is picked up
            mlist = get_list(s, "news")
            mlist.schedule = "30 6 * * *"
            other = create_list(s, "other", from_addr="o@example.org")
            s.commit()
        second.sync()
        moved = second.aps.get_job(f"edition:{news}")
        assert moved.next_run_time.astimezone(dt.timezone(dt.timedelta(hours=9))).strftime(
            "%H:%M") == "06:30"
        assert second.aps.get_job(f"edition:{other.id}") is not None
        with restarted.sessions() as s:
            archive_list(s, get_list(s, "other"), now=clock())
            s.commit()
        second.sync()
        assert second.aps.get_job(f"edition:{other.id}") is None
    finally:
        second.shutdown()
        restarted.close()


def test_the_cron_job_runs_the_edition_through_apscheduler(app: App, clock: Clock) -> None:
    news = make_list(app, clock)
    add_articles(app, "news", hourly(at("2026-11-27 00:00"), 7))
    clock.now = at("2026-11-27 07:00:03")  # the App's time; APScheduler keeps its own
    ran = threading.Event()
    events: list[JobExecutionEvent] = []

    def listen(event: JobExecutionEvent) -> None:
        if event.job_id == f"edition:{news}":
            events.append(event)
            ran.set()

    sched = schedule.Scheduler(app)
    sched.aps.add_listener(listen, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    sched.start(paused=True)
    try:
        sched.aps.get_job("catch-up").remove()  # this test fires the cron job alone
        sched.aps.modify_job(f"edition:{news}", next_run_time=dt.datetime.now(UTC))
        sched.aps.resume()
        assert ran.wait(10)
    finally:
        sched.shutdown()
    assert events[0].exception is None
    assert [e.scheduled_for for e in editions(app)] == [at("2026-11-27 07:00")]
    assert deliveries(app) == 2


@pytest.mark.parametrize(("late", "fires"), [(dt.timedelta(hours=1), True),
                                             (dt.timedelta(hours=7), False)],
                         ids=["inside-grace", "beyond-grace"])
def test_a_stored_run_missed_while_down_fires_once_if_inside_grace(
    app: App, clock: Clock, settings, late: dt.timedelta, fires: bool  # type: ignore[no-untyped-def]
) -> None:
    # APScheduler judges misfires by the system clock, which no test controls. So the
    # list's daily time is the stored run time itself: the next one is a day after it,
    # and no other run falls between it and now, whatever the hour the suite runs at.
    missed = (dt.datetime.now(UTC) - late).replace(second=0, microsecond=0)
    clock.now = missed - dt.timedelta(hours=8)
    news = make_list(app, clock, schedule=f"{missed.minute} {missed.hour} * * *")
    add_articles(app, "news", hourly(missed - dt.timedelta(hours=7), 7))
    job_id = f"edition:{news}"
    before = schedule.Scheduler(app)
    before.start(paused=True)
    before.shutdown()
    # Digest went down before the stored run time, which is `late` in the past now.
    store = SQLAlchemyJobStore(engine=app.engine, tablename=schedule.JOBS_TABLE)
    store.start(None, "default")
    job = store.lookup_job(job_id)
    job.next_run_time = missed
    store.update_job(job)

    clock.now = missed + dt.timedelta(hours=1)  # the App's time: the run was an hour ago
    restarted = App(settings, clock=clock)
    seen: list[int] = []
    done = threading.Event()

    def listen(event: JobExecutionEvent) -> None:
        if event.job_id == job_id:
            seen.append(event.code)
            done.set()

    after = schedule.Scheduler(restarted)
    after.aps.add_listener(listen, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)
    after.start(paused=True)
    try:
        after.aps.get_job("catch-up").remove()  # APScheduler's own misfire handling alone
        after.aps.resume()
        assert done.wait(10)
        assert after.aps.get_job(job_id).next_run_time > dt.datetime.now(UTC)
    finally:
        after.shutdown()
        restarted.close()
    assert seen == [EVENT_JOB_EXECUTED if fires else EVENT_JOB_MISSED]
    assert [e.scheduled_for for e in editions(app)] == ([missed] if fires else [])
