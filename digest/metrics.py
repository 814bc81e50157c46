"""What /metrics reports, in Prometheus' text format (prometheus-client).

Several processes share one database (`digest serve`, any number of `digest worker`), and
only `digest serve` answers /metrics, so whatever concerns them all is read from the
database at scrape time by `DatabaseCollector`, not counted in this process: each
sender's heartbeat row (digest.heartbeat) carries the outcomes it wrote since it
started, each source its fetches and failures, the ledger its rows. Every query is a
GROUP BY or a lookup on an indexed column, over the editions sending now or finished
within `RECENT`, so a scrape costs milliseconds whatever the ledger's size.

The scheduler runs in `digest serve` alone, so its runs are counted in this process
(`Metrics.watch`), since the process started.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
    JobEvent,
)
from apscheduler.schedulers.base import BaseScheduler
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from digest import heartbeat
from digest.db import reason
from digest.deliver.ledger import PENDING_STATUSES
from digest.models import Delivery, Edition, EditionKind, EditionStatus, Source
from subscribers.models import MailingList

log = logging.getLogger(__name__)

#: Editions reported besides those sending: the ones whose sending ended this recently.
RECENT = dt.timedelta(days=1)


class Metrics:
    """The registry /metrics serves: the database's numbers and the scheduler's runs."""

    def __init__(self, sessions: Callable[[], sessionmaker[Session]],
                 clock: Callable[[], dt.datetime], heartbeat_timeout: float) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(DatabaseCollector(sessions, clock, heartbeat_timeout))
        self.scheduler_runs = Counter(
            "digest_scheduler_runs", "Scheduler job runs in this digest serve since it "
            "started, by job (edition, fetch, plan, catch-up, purge-imports) and outcome "
            "(ok, error, missed).", ["job", "outcome"], registry=self.registry)

    def watch(self, scheduler: BaseScheduler) -> None:
        """Count the runs of `scheduler`'s jobs."""
        scheduler.add_listener(self._job_event,
                               EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)

    def _job_event(self, event: JobEvent) -> None:
        # One series per kind of job: "edition:12" is "edition", so lists add none.
        job = str(event.job_id).split(":", 1)[0]
        outcome = {EVENT_JOB_ERROR: "error", EVENT_JOB_MISSED: "missed"}.get(event.code, "ok")
        self.scheduler_runs.labels(job, outcome).inc()


class DatabaseCollector(Collector):
    """Reads the numbers shared by every process from the database at each scrape."""

    def __init__(self, sessions: Callable[[], sessionmaker[Session]],
                 clock: Callable[[], dt.datetime], heartbeat_timeout: float) -> None:
        self.sessions, self.clock, self.timeout = sessions, clock, heartbeat_timeout

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("digest_database_up",
                               "1 when the database answered this scrape, else 0.")
        try:
            with self.sessions()() as s:
                found = [*_senders(s, self.clock(), self.timeout), *_editions(s, self.clock()),
                         *_sources(s)]
        except SQLAlchemyError as exc:
            log.warning("metrics: the database did not answer: %s", reason(exc))
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from found


def _senders(s: Session, now: dt.datetime, timeout: float) -> list[Metric]:
    labels = ["host", "pid", "backend"]
    outcomes = CounterMetricFamily(
        "digest_sender_deliveries", "Outcomes each running sender wrote to the ledger since "
        "it started, by status (sent, failed, deferred, uncertain) and backend; "
        "rate() of status=\"sent\" is the send rate.", labels=[*labels, "status"])
    age = GaugeMetricFamily("digest_sender_heartbeat_age_seconds",
                            "Seconds since each sender's last heartbeat.", labels=labels)
    rows = heartbeat.senders(s, now)
    for row in rows:
        ids = [row.host, str(row.pid), row.backend]
        age.add_metric(ids, row.age_seconds)
        for status, n in row.counts.items():
            outcomes.add_metric([*ids, status], n)
    last = GaugeMetricFamily(
        "digest_last_sender_heartbeat_age_seconds",
        "Seconds since the newest heartbeat of any sender; +Inf when none is recorded.")
    last.add_metric([], min((r.age_seconds for r in rows), default=float("inf")))
    live = GaugeMetricFamily(
        "digest_senders", "Senders whose heartbeat is within [delivery] heartbeat_timeout.")
    live.add_metric([], sum(r.age_seconds <= timeout for r in rows))
    return [outcomes, age, last, live]


def _editions(s: Session, now: dt.datetime) -> list[Metric]:
    editions = {
        id_: (name, "confirm" if kind == EditionKind.CONFIRM else str(number))
        for id_, number, kind, name in s.execute(
            select(Edition.id, Edition.number, Edition.kind, MailingList.name)
            .join(MailingList, MailingList.id == Edition.list_id)
            .where(or_(Edition.status == EditionStatus.SENDING, Edition.sent_at >= now - RECENT)))
    }
    rows = GaugeMetricFamily(
        "digest_deliveries", "Delivery rows by status, of each edition sending now or sent "
        "within the last day (confirmation mails: edition=\"confirm\").",
        labels=["list", "edition", "status"])
    depth = GaugeMetricFamily(
        "digest_queue_depth", "Deliveries still to send (queued, claimed or sending) of each "
        "edition sending now.", labels=["list", "edition"])
    pending: dict[int, int] = dict.fromkeys(editions, 0)
    if editions:
        # ix_deliveries_queue (edition_id, status, ...) answers this from the index.
        counted = s.execute(
            select(Delivery.edition_id, Delivery.status, func.count())
            .where(Delivery.edition_id.in_(editions))
            .group_by(Delivery.edition_id, Delivery.status))
        for edition_id, status, n in counted:
            rows.add_metric([*editions[edition_id], str(status)], n)
            if status in PENDING_STATUSES:
                pending[edition_id] += n
    sending = set(s.scalars(select(Edition.id).where(Edition.id.in_(editions),
                                                     Edition.status == EditionStatus.SENDING)))
    for edition_id, n in pending.items():
        if edition_id in sending:
            depth.add_metric(list(editions[edition_id]), n)
    return [rows, depth]


def _sources(s: Session) -> list[Metric]:
    labels = ["source"]
    fetches = CounterMetricFamily("digest_source_fetches",
                                  "Fetches of each source (by id), ever.", labels=labels)
    failures = CounterMetricFamily("digest_source_fetch_failures",
                                   "Failed fetches of each source, ever.", labels=labels)
    streak = GaugeMetricFamily("digest_source_consecutive_failures",
                               "Failures in a row of each source.", labels=labels)
    for id_, n, failed, in_row in s.execute(
            select(Source.id, Source.fetches, Source.fetch_failures,
                   Source.consecutive_failures).order_by(Source.id)):
        fetches.add_metric([str(id_)], n)
        failures.add_metric([str(id_)], failed)
        streak.add_metric([str(id_)], in_row)
    return [fetches, failures, streak]
