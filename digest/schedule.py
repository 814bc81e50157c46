"""The scheduler: the jobs that fetch sources and run editions, and APScheduler around them.

The jobs (`run_edition_job`, `run_due`, `draft_reviews`, `release_scheduled`,
`fetch_due`) act on an `App` and take the time from its clock, so tests drive them with a
hand-moved clock; which times are due is `digest.cron`'s pure arithmetic. `Scheduler`
runs them from an APScheduler 3 BackgroundScheduler in `digest serve`.

Whatever fires a scheduled time — the list's cron job, the catch-up at start, or a
second scheduler by mistake — ends in `run_edition_job`, which is idempotent: an edition
is unique per (list, scheduled_for), and `lists.last_scheduled_for` records the times
already dealt with, sent or not.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.orm import Session

from digest import imports, review
from digest.cron import Due, due_editions, list_trigger, next_runs
from digest.db import make_engine, utcnow
from digest.deliver.backends import make_backend
from digest.errors import InvalidInput, NotReady
from digest.gather.sources import BUSY, SourceReport, gather
from digest.models import Edition, EditionKind, EditionStatus, Source
from digest.publication import NOTIFY, REVIEW
from subscribers.lists import get_list
from subscribers.models import MailingList

if TYPE_CHECKING:
    from digest.app import App
    from digest.config import Settings

log = logging.getLogger(__name__)
#: The fetch jitter's own generator: the scheduler's thread never moves the global
#: `random` state under code that seeds it.
_JITTER = random.Random()

# What run_edition_job did with a scheduled time.
STARTED = "sending"  # the edition is sending (the worker delivers it)
HELD = "held"  # review mode: not approved, kept as a draft
EMPTY = "empty"  # no new articles: no edition
NOT_READY = "not ready"  # the edition may not go out (no articles left): kept as a draft
MISSED = "missed"  # later than the grace window: skipped
DONE = "done"  # dealt with already (by us or another scheduler)
STOPPED = "cancelled"  # an editor cancelled the edition for this time

MAX_BACKOFF = dt.timedelta(hours=6)  # a failing source is still tried this often


@dataclass(frozen=True)
class ScheduleOptions:
    """From the `[schedule]` settings."""

    fetch_interval: dt.timedelta = dt.timedelta(minutes=15)
    grace: dt.timedelta = dt.timedelta(hours=6)
    review_lead: dt.timedelta = dt.timedelta(minutes=120)

    @classmethod
    def of(cls, settings: Settings) -> ScheduleOptions:
        return cls(
            fetch_interval=dt.timedelta(minutes=settings["schedule.fetch_minutes"]),
            grace=dt.timedelta(hours=settings["schedule.grace_hours"]),
            review_lead=dt.timedelta(minutes=settings["schedule.review_lead_minutes"]),
        )


def next_fetch(now: dt.datetime, interval: dt.timedelta, failures: int,
               rand: Callable[[], float] = _JITTER.random) -> dt.datetime | None:
    """When a source is fetched again: None (at the next round) after a success or one
    failure; after n failures in a row it sits out 2^(n-1) - 1 rounds, at most
    MAX_BACKOFF, give or take a tenth so failing sources of one host drift apart."""
    if failures <= 1:
        return None
    wait = min(interval * ((1 << min(failures - 1, 20)) - 1), MAX_BACKOFF)
    return now + wait * (0.9 + 0.2 * rand())


# -- jobs --------------------------------------------------------------------------------


def run_due(app: App, list_ids: Sequence[int] | None = None) -> list[tuple[str, str]]:
    """Run what is due now for every active list (or those given): [(list, outcome)].

    The catch-up at start and each list's cron job call this; one list's failure is
    logged and the others go on.
    """
    now = app.clock()
    grace = ScheduleOptions.of(app.settings).grace
    with app.sessions() as s:
        query = select(MailingList).where(MailingList.archived_at.is_(None))
        if list_ids is not None:
            query = query.where(MailingList.id.in_(list_ids))
        dues = due_editions(s.scalars(query), now, grace)
    results = []
    for due in dues:
        try:
            results.append((due.list_name, _run(app, due, now, grace)))
        except Exception:
            log.exception("list %s: the scheduled edition failed", due.list_name)
    return results


def _run(app: App, due: Due, now: dt.datetime, grace: dt.timedelta) -> str:
    if due.skipped_from is not None:
        instead = (f"the one due at {_utc(due.scheduled_for)} goes out instead"
                   if due.scheduled_for else "skipped")
        log.warning("list %s: the edition due at %s was missed (digest was not running, "
                    "and [schedule] grace_hours is %s); %s", due.list_name,
                    _utc(due.skipped_from), grace, instead)
    if due.scheduled_for is None:
        with app.sessions() as s:
            mark_done(s, due.list_id, now)
            s.commit()
        return MISSED
    return run_edition_job(app, due.list_name, due.scheduled_for)


def run_edition_job(app: App, list_name: str, scheduled_for: dt.datetime) -> str:
    """Deal with one scheduled time of a list, once however often it is called.

    Builds the edition for that time (or takes the draft waiting for it) and starts
    sending it — the sender worker delivers — unless review mode holds it or it may
    not go out. Returns what happened: STARTED, HELD, EMPTY, NOT_READY, MISSED, DONE
    or STOPPED.

    NOT_READY is an edition `require_sendable` refuses, such as a draft whose every
    article an editor dropped: a warning says why, the time counts as dealt with, and
    the draft waits for the editors as a held one does, carried to the next scheduled
    time (it is not replaced by a new edition behind their back).
    """
    now = app.clock()
    opts = ScheduleOptions.of(app.settings)
    with app.sessions() as s:
        mlist = get_list(s, list_name)
        done = mlist.last_scheduled_for
        if mlist.archived_at is not None or (done is not None and done >= scheduled_for):
            return DONE
        if now - scheduled_for > opts.grace:
            log.warning("list %s: the edition due at %s is %s late, beyond [schedule] "
                        "grace_hours; skipped", list_name, _utc(scheduled_for),
                        now - scheduled_for)
            mark_done(s, mlist.id, scheduled_for)
            s.commit()
            return MISSED
        edition = app.build_scheduled(s, mlist, scheduled_for)
        outcome = EMPTY if edition is None else _release(app, s, mlist, edition)
        first = mark_done(s, mlist.id, scheduled_for)
        s.commit()
        log.info("list %s, %s: %s", list_name, _utc(scheduled_for), outcome)
        if edition is not None and outcome == HELD and first:
            _tell_editors(app, mlist, edition, now)
    return outcome


def _release(app: App, s: Session, mlist: MailingList, edition: Edition) -> str:
    """Start sending the edition unless review holds it or it may not go out. The row
    is locked first: on PostgreSQL a second scheduler waits here and then finds it
    sending. (SQLite has one writer at a time, and enqueueing skips rows already
    queued.)"""
    edition = s.get_one(Edition, edition.id, with_for_update=True, populate_existing=True)
    if edition.status == EditionStatus.CANCELLED:
        return STOPPED
    if edition.status not in (EditionStatus.DRAFT, EditionStatus.APPROVED):
        return STARTED
    if review.must_wait(mlist, edition):
        return HELD
    try:
        app.start_sending(s, edition, mlist)
    except NotReady as exc:  # refused before anything changed
        log.warning("list %s: edition #%d did not go out at its scheduled time: %s",
                    mlist.name, edition.number, exc)
        return NOT_READY
    return STARTED


def _tell_editors(app: App, mlist: MailingList, edition: Edition, now: dt.datetime) -> None:
    if mlist.review_policy != NOTIFY:
        log.warning("list %s: edition #%d is held until an editor approves it",
                    mlist.name, edition.number)
        return
    upcoming = next_runs(list_trigger(mlist.schedule, mlist.timezone), now, 1)
    # Its own backend: the sender worker's may be mid-batch in another thread.
    backend = make_backend(app.settings)
    try:
        review.notify_editors(backend, mlist, edition, upcoming[0] if upcoming else None, now)
    finally:
        backend.close()


def mark_done(s: Session, list_id: int, scheduled_for: dt.datetime) -> bool:
    """Move the list's `last_scheduled_for` forward to `scheduled_for`; whether this call
    moved it (so of two schedulers, one alone mails the editors)."""
    result: CursorResult[Any] = s.execute(  # type: ignore[assignment]
        update(MailingList)
        .where(MailingList.id == list_id, or_(MailingList.last_scheduled_for.is_(None),
                                              MailingList.last_scheduled_for < scheduled_for))
        .values(last_scheduled_for=scheduled_for),
        execution_options={"synchronize_session": False},
    )
    return result.rowcount == 1


def draft_reviews(app: App) -> list[Edition]:
    """Build the draft of each review-mode list whose next time is within the lead."""
    now = app.clock()
    lead = ScheduleOptions.of(app.settings).review_lead
    drafts = []
    with app.sessions() as s:
        lists = s.scalars(select(MailingList).where(
            MailingList.mode == REVIEW, MailingList.archived_at.is_(None))).all()
        for mlist in lists:
            try:
                upcoming = next_runs(list_trigger(mlist.schedule, mlist.timezone), now, 1)
            except InvalidInput:
                continue  # logged by the edition job
            if not upcoming or upcoming[0] - lead > now:
                continue
            edition = app.build_scheduled(s, mlist, upcoming[0])
            if edition is not None:
                drafts.append(edition)
    return drafts


def release_scheduled(app: App) -> list[int]:
    """Start sending every approved edition whose scheduled time has come, within
    `[schedule] grace_hours`; returns their ids. The scheduler calls it each minute;
    it is safe to call from several at once (the row is locked, the status rechecked).

    One that may not go out (an editor dropped every article after scheduling it) is
    logged as a warning and its time taken away, as `schedule(s, edition, None)` does:
    the time is dealt with, so it is not tried each minute, and the edition waits for
    an editor; if they fill it, it goes at the list's next scheduled time.
    """
    now = app.clock()
    grace = ScheduleOptions.of(app.settings).grace
    started = []
    with app.sessions() as s:
        due = s.scalars(select(Edition.id).where(
            Edition.kind == EditionKind.DIGEST, Edition.status == EditionStatus.APPROVED,
            Edition.scheduled_for <= now, Edition.scheduled_for > now - grace,
        ).order_by(Edition.scheduled_for)).all()
        for edition_id in due:
            edition = s.get_one(Edition, edition_id, with_for_update=True,
                                populate_existing=True)
            mlist = s.get_one(MailingList, edition.list_id)
            if edition.status != EditionStatus.APPROVED:  # sent by another since the query
                s.rollback()
                continue
            try:
                app.start_sending(s, edition, mlist)
            except NotReady as exc:
                edition.scheduled_for = None
                s.commit()
                log.warning("list %s: edition #%d did not go out at its scheduled time: %s",
                            mlist.name, edition.number, exc)
                continue
            except Exception:  # one list's broken template must not hold up the others
                s.rollback()
                log.exception("list %s: scheduled edition #%d could not start",
                              mlist.name, edition.number)
                continue
            log.info("list %s: scheduled edition #%d started sending", mlist.name,
                     edition.number)
            started.append(edition_id)
    return started


def fetch_due(app: App, rand: Callable[[], float] = _JITTER.random) -> list[SourceReport]:
    """Fetch every source not sitting out a backoff, and set when each is due again.

    Two rounds may overlap (the catch-up's and the next one, say): each source's lease
    lets one of them fetch it, and the other skips it (BUSY) and leaves its due time
    to the fetch that has it.
    """
    now = app.clock()
    interval = ScheduleOptions.of(app.settings).fetch_interval
    with app.sessions() as s:
        due = list(s.scalars(
            select(Source)
            .where(or_(Source.next_fetch_at.is_(None), Source.next_fetch_at <= now))
            .order_by(Source.id)
        ))
        reports = gather(s, app.http, app.fetch_options(), app.clock, due)
        fetched = {r.source_id for r in reports if r.status != BUSY}
        for source in due:
            if source.id in fetched:
                source.next_fetch_at = next_fetch(now, interval,
                                                  source.consecutive_failures, rand)
        s.commit()
    return reports


def _utc(when: dt.datetime | None) -> str:
    return f"{when:%Y-%m-%d %H:%M} UTC" if when else "-"


# -- APScheduler ---------------------------------------------------------------------------

JOBS_TABLE = "apscheduler_jobs"
PURGE_JOB = "purge-imports"  # `digest.imports.purge`: at start, then hourly
_running: Scheduler | None = None  # this process's scheduler, where the jobs find their App


class Scheduler:
    """APScheduler 3's BackgroundScheduler running an App's jobs.

    Each list's edition job is kept in the database (SQLAlchemyJobStore, table
    `apscheduler_jobs`), so a restart keeps its next run time, and a run missed while
    digest was down fires once if it is inside the grace window (misfire_grace_time,
    coalesce). The fetch round, the planning round (edition jobs kept in step with the
    lists; review drafts), the purge of old import files and the catch-up at start are
    made afresh at each start.
    Run one per database: two running schedulers must not share a job store.
    """

    def __init__(self, app: App) -> None:
        self.app = app
        opts = ScheduleOptions.of(app.settings)
        self._fetch_seconds = opts.fetch_interval.total_seconds()
        # Its own engine, as the job store disposes of it at shutdown.
        self._store_engine = make_engine(app.settings["database.url"])
        store = SQLAlchemyJobStore(engine=self._store_engine, tablename=JOBS_TABLE)
        self.aps = BackgroundScheduler(
            jobstores={"default": store, "memory": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(4)},
            job_defaults={"coalesce": True, "max_instances": 1,
                          "misfire_grace_time": int(opts.grace.total_seconds())},
            timezone=dt.UTC,
        )

    def start(self, *, paused: bool = False) -> None:
        """Start the jobs: the catch-up (a fetch, then what is due) runs at once."""
        global _running
        _running = self
        self.aps.start(paused=True)  # opens the store; nothing runs before sync()
        self.sync()
        self.aps.add_job(fetch_job, IntervalTrigger(seconds=self._fetch_seconds,
                                                    jitter=self._fetch_seconds / 10),
                         id="fetch", jobstore="memory", replace_existing=True)
        self.aps.add_job(plan_job, IntervalTrigger(minutes=1), id="plan", jobstore="memory",
                         replace_existing=True)
        self.aps.add_job(catch_up_job, id="catch-up", jobstore="memory",
                         next_run_time=utcnow(), replace_existing=True)
        self.aps.add_job(purge_job, IntervalTrigger(hours=1), id=PURGE_JOB,
                         jobstore="memory", next_run_time=utcnow(), replace_existing=True)
        if not paused:
            self.aps.resume()
        log.info("scheduler started: %d lists on their schedules; sources fetched every %s",
                 sum(j.id.startswith("edition:") for j in self.aps.get_jobs()),
                 dt.timedelta(seconds=self._fetch_seconds))

    def sync(self) -> None:
        """Add, change or remove the edition jobs to match the active lists."""
        with self.app.sessions() as s:
            lists = s.scalars(select(MailingList).where(MailingList.archived_at.is_(None)))
            wanted = {}
            for mlist in lists:
                try:
                    trigger = list_trigger(mlist.schedule, mlist.timezone)
                except InvalidInput as exc:
                    log.error("list %s: %s", mlist.name, exc)
                    continue
                wanted[f"edition:{mlist.id}"] = (mlist.id, mlist.name, trigger)
        for job in self.aps.get_jobs(jobstore="default"):
            if job.id.startswith("edition:") and job.id not in wanted:
                job.remove()
        for job_id, (list_id, name, trigger) in wanted.items():
            job = self.aps.get_job(job_id, jobstore="default")
            if job is None:
                self.aps.add_job(edition_job, trigger, args=(list_id,), id=job_id,
                                 name=f"edition of {name}", jobstore="default")
            elif repr(job.trigger) != repr(trigger):  # the schedule or timezone changed
                job.reschedule(trigger)

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop; with `wait`, after the jobs running now finish."""
        global _running
        if self.aps.running:
            self.aps.shutdown(wait=wait)
        # APScheduler's thread may have looked for due jobs once more after the store
        # let go of its connections; it has ended now, so this closes the last one.
        self._store_engine.dispose()
        if _running is self:
            _running = None


def _app() -> App:
    if _running is None:
        raise RuntimeError("no digest Scheduler is running in this process")
    return _running.app


# The job store keeps jobs as references to these functions with plain arguments.

def edition_job(list_id: int) -> None:
    """A list's cron fired: run what is due for it."""
    run_due(_app(), [list_id])


def fetch_job() -> None:
    fetch_due(_app())


def plan_job() -> None:
    if _running is not None:
        _running.sync()
        draft_reviews(_running.app)
        # Editions an editor scheduled for a time of their own, not the list's cron.
        release_scheduled(_running.app)


def purge_job() -> None:
    """Files of imports no job needs any more, expired rejects among them."""
    imports.purge(_app())


def catch_up_job() -> None:
    """At start: fresh articles first, then whatever came due while digest was down."""
    app = _app()
    fetch_due(app)
    run_due(app)
