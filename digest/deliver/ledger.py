"""The delivery ledger: enqueue, claim, and record each message's fate.

One row per (edition, subscriber), unique. The life of a row:

    queued ──claim──▶ claimed ──hand_over──▶ sending ──▶ sent | failed
       ▲                 │                          │
       └── deferred (4xx, retry with backoff) ◀─────┘
    claimed whose worker died or whose lease ran out ──▶ queued (nothing was handed over)
    sending whose worker died ──▶ uncertain (the body reached the server; only the
                                  closing "." may not have: not sent again)

"sending" is committed right before the final step that makes the server accept the
message, for every message ready for it at that moment in one commit (a group), so a
hard kill can leave at most one row per connection in doubt, and those are never mailed
twice. Outcomes are written with the next group's commit (outcomes.py), so a row whose
outcome was not written yet is still `sending`, and a crash makes it `uncertain`. A live
worker renews the leases of its claims as it goes, so only a dead or stuck one loses
them; a row whose claim was lost anyway is not handed over (ClaimLost).

Rows may be queued for later, for local-time delivery: `next_attempt_at` per row.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    CursorResult,
    Integer,
    String,
    and_,
    func,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from digest.db import UTCDateTime
from digest.files import process_alive
from digest.models import Delivery, DeliveryStatus, Edition
from subscribers.members import recipients_among, recipients_query
from subscribers.models import Membership, MembershipStatus, Subscriber

#: A row in one of these is not finished yet.
PENDING_STATUSES = (DeliveryStatus.QUEUED, DeliveryStatus.CLAIMED, DeliveryStatus.HANDING_OVER)
Clock = Callable[[], dt.datetime]
#: When a subscriber in a time zone gets the edition, for local-time delivery.
SendTimes = Callable[[str], dt.datetime]


def worker_id() -> str:
    """host:pid:random — the host and pid let a restarted sender free a dead one's claims."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    retry_seconds: int = 60

    def next_attempt(self, attempts: int, now: dt.datetime) -> dt.datetime:
        """Exponential backoff: retry_seconds, ×2 each attempt, capped at a day."""
        delay = min(self.retry_seconds * 2 ** max(attempts - 1, 0), 86_400)
        return now + dt.timedelta(seconds=delay)


@dataclass(frozen=True)
class Claimed:
    delivery_id: int
    subscriber_id: int
    email: str
    name: str
    signup: int = 0  # the membership's sign-up number, which a confirm link names
    # When they joined the list (confirmed, else created): the footer says since when.
    subscribed_at: dt.datetime | None = None


def enqueue(s: Session, edition: Edition, now: dt.datetime,
            audience: MembershipStatus = MembershipStatus.CONFIRMED,
            at: SendTimes | None = None) -> int:
    """A queued row for every unsuppressed member of `audience` (confirmed for a digest,
    pending for confirmation mail); rows already there are kept. With `at`, each row is
    due when `at(subscriber's timezone)` says, else now.

    One INSERT … SELECT (one per distinct send time with `at`), so a million members
    cost one statement, not a million.
    """
    members = recipients_query(edition.list_id, audience)
    if at is None:
        return _insert(s, edition, members, now)
    zones = s.scalars(members.with_only_columns(Subscriber.timezone).distinct()).all()
    by_time: dict[dt.datetime, list[str]] = {}
    for zone in zones:
        by_time.setdefault(at(zone), []).append(zone)
    return sum(_insert(s, edition, members.where(Subscriber.timezone.in_(group)), when)
               for when, group in sorted(by_time.items()))


def _insert(s: Session, edition: Edition, recipients: Any, due: dt.datetime) -> int:
    members = recipients.subquery()
    rows = select(
        literal(edition.id, Integer), members.c.subscriber_id,
        literal(DeliveryStatus.QUEUED.value, String), literal(0, Integer),
        literal(due, UTCDateTime), literal("", String), literal("", String), literal("", String),
    ).where(true())  # SQLite parses ON CONFLICT after INSERT … SELECT only past a WHERE
    columns = ["edition_id", "subscriber_id", "status", "attempts", "next_attempt_at",
               "claimed_by", "message_id", "last_error"]
    # Rows already there are left alone by the unique (edition, subscriber) index, not by
    # a NOT EXISTS: PostgreSQL, its statistics saying the table is empty, ran that as a
    # scan of every row inserted so far, per row (20 s for 30,000, quadratic).
    dialect = s.get_bind().dialect.name
    make = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = make(Delivery).from_select(columns, rows).on_conflict_do_nothing(
        index_elements=["edition_id", "subscriber_id"])
    # SQLAlchemy keeps the row count of an INSERT only when asked to.
    result: CursorResult[Any] = s.execute(  # type: ignore[assignment]
        statement, execution_options={"preserve_rowcount": True})
    return max(result.rowcount or 0, 0)


def local_send_times(home_zone: str, reference: dt.datetime, now: dt.datetime) -> SendTimes:
    """For local-time delivery: a subscriber in zone Z gets the edition at the next
    occurrence, from `reference` (the scheduled time) on, of the reference's wall-clock
    time in `home_zone` (the list's), read in Z; never before `now`. "" or an unknown
    zone means the list's own. Dates are stepped in Z, so DST changes are kept."""
    home = _zone(home_zone) or ZoneInfo("UTC")
    wall = reference.astimezone(home).time()

    def at(zone_name: str) -> dt.datetime:
        zone = _zone(zone_name) or home
        day = reference.astimezone(zone).date()
        when = dt.datetime.combine(day, wall, zone).astimezone(dt.UTC)
        if when < reference:
            when = dt.datetime.combine(day + dt.timedelta(days=1), wall, zone).astimezone(dt.UTC)
        return max(when, now)

    return at


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name) if name else None
    # Not a zone name (KeyError: ZoneInfoNotFoundError), or a folder such as "Europe"
    # (IsADirectoryError, an OSError).
    except (ValueError, KeyError, OSError):
        return None


def _due_kinds(now: dt.datetime) -> tuple[Any, Any]:
    """Rows to claim, in the order they are taken: claimed by a worker whose lease ran
    out, then queued and due."""
    return (
        and_(Delivery.status == DeliveryStatus.CLAIMED, Delivery.lease_until < now),
        and_(Delivery.status == DeliveryStatus.QUEUED, Delivery.next_attempt_at <= now),
    )


def _due(now: dt.datetime) -> Any:
    """Rows to claim, of either kind."""
    return or_(*_due_kinds(now))


def has_work(s: Session, edition_id: int, now: dt.datetime, *, finishing: bool) -> bool:
    """Whether a worker has anything to do for the edition now: rows to claim, or (with
    `finishing`) none pending any more, so that the edition can be marked sent."""
    if s.scalar(select(Delivery.id).where(Delivery.edition_id == edition_id, _due(now))
                .limit(1)) is not None:
        return True
    return finishing and pending(s, edition_id) == 0


def claim(
    s: Session, edition_id: int, worker: str, limit: int, now: dt.datetime, lease_seconds: int
) -> list[Claimed]:
    """Take up to `limit` rows that are due, or whose lease ran out, for `worker`.

    On PostgreSQL the inner SELECTs skip rows other workers have locked, so any number
    of workers share an edition; SQLite serializes writers, so one worker is the rule.
    Each SELECT walks the queue index (edition, status, due time) from its start and
    stops after `limit` rows, so a claim costs the same at the millionth row as at the
    first: rows taken first are those whose lease ran out, then the earliest due.
    """
    lease = now + dt.timedelta(seconds=lease_seconds)
    claimed: list[int] = []
    for due in _due_kinds(now):
        if len(claimed) >= limit:
            break
        ids = (
            select(Delivery.id)
            .where(Delivery.edition_id == edition_id, due)
            # The index's own order: no sort of every due row to find the first few.
            .order_by(Delivery.next_attempt_at)
            .limit(limit - len(claimed))
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        claimed += s.scalars(
            update(Delivery)
            .where(Delivery.id.in_(ids))
            .values(status=DeliveryStatus.CLAIMED, claimed_by=worker, lease_until=lease)
            .returning(Delivery.id)
        ).all()
    s.commit()
    if not claimed:
        return []
    rows = s.execute(
        select(Delivery.id, Delivery.subscriber_id, Subscriber.email, Subscriber.name,
               func.coalesce(Membership.signup, 0),
               func.coalesce(Membership.confirmed_at, Membership.created_at))
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .join(Edition, Edition.id == Delivery.edition_id)
        .outerjoin(Membership, and_(Membership.list_id == Edition.list_id,
                                    Membership.subscriber_id == Delivery.subscriber_id))
        .where(Delivery.id.in_(claimed))
        .order_by(Delivery.id)
    )
    return [Claimed(*row) for row in rows]


def skip_unwanted(s: Session, list_id: int, claimed: Sequence[Claimed],
                  audience: MembershipStatus = MembershipStatus.CONFIRMED) -> list[Claimed]:
    """Checks suppression and membership again right before sending.

    Someone may have unsubscribed or bounced since the edition was queued; their rows
    become `skipped` and the rest is returned.
    """
    wanted = recipients_among(s, list_id, [c.subscriber_id for c in claimed], audience)
    unwanted = [c.delivery_id for c in claimed if c.subscriber_id not in wanted]
    if unwanted:
        s.execute(
            update(Delivery).where(Delivery.id.in_(unwanted))
            .values(status=DeliveryStatus.SKIPPED,
                    last_error="unsubscribed or suppressed after queueing")
        )
        s.commit()
    return [c for c in claimed if c.subscriber_id in wanted]


def release(s: Session, edition_id: int, worker: str) -> int:
    """Gives the worker's claims on the edition that it did not attempt back to the queue
    (it stopped, or its backend failed); returns how many."""
    result: CursorResult[Any] = s.execute(  # type: ignore[assignment]
        update(Delivery)
        .where(Delivery.edition_id == edition_id, Delivery.claimed_by == worker,
               Delivery.status == DeliveryStatus.CLAIMED)
        .values(status=DeliveryStatus.QUEUED, claimed_by="", lease_until=None)
    )
    s.commit()
    return result.rowcount or 0


def release_dead(s: Session, edition_id: int, now: dt.datetime) -> dict[str, int]:
    """Frees the rows of senders that are gone: dead processes on this host, or leases
    that ran out anywhere. Claimed rows go back to the queue; rows caught `sending`
    become `uncertain` (their body reached the server, so they are not sent again)."""
    host = socket.gethostname()
    holders = s.scalars(
        select(Delivery.claimed_by).distinct().where(
            Delivery.edition_id == edition_id,
            Delivery.status.in_((DeliveryStatus.CLAIMED, DeliveryStatus.HANDING_OVER)),
        )
    ).all()
    dead = [w for w in holders if _is_dead_local(w, host)]
    gone = or_(Delivery.claimed_by.in_(dead), Delivery.lease_until < now)
    freed: CursorResult[Any] = s.execute(  # type: ignore[assignment]
        update(Delivery)
        .where(Delivery.edition_id == edition_id, Delivery.status == DeliveryStatus.CLAIMED,
               gone)
        .values(status=DeliveryStatus.QUEUED, claimed_by="", lease_until=None)
    )
    doubtful: CursorResult[Any] = s.execute(  # type: ignore[assignment]
        update(Delivery)
        .where(Delivery.edition_id == edition_id,
               Delivery.status == DeliveryStatus.HANDING_OVER, gone)
        .values(status=DeliveryStatus.UNCERTAIN,
                last_error="sender stopped while handing the message over")
    )
    s.commit()
    return {"requeued": freed.rowcount or 0, "uncertain": doubtful.rowcount or 0}


def _is_dead_local(worker: str, host: str) -> bool:
    parts = worker.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
        return False
    return not process_alive(int(parts[1]))  # our own earlier claims are live


def status_counts(s: Session, edition_id: int) -> dict[str, int]:
    """{status: count} for the edition's deliveries."""
    rows = s.execute(
        select(Delivery.status, func.count()).where(Delivery.edition_id == edition_id)
        .group_by(Delivery.status)
    )
    return dict(rows.all())


def next_retry(s: Session, edition_id: int) -> dt.datetime | None:
    """When the earliest deferred row is due, or None if nothing waits."""
    return s.scalar(
        select(func.min(Delivery.next_attempt_at)).where(
            Delivery.edition_id == edition_id, Delivery.status == DeliveryStatus.QUEUED
        )
    )


def pending(s: Session, edition_id: int) -> int:
    """Deliveries of the edition not finished yet."""
    return s.scalar(
        select(func.count()).select_from(Delivery).where(
            Delivery.edition_id == edition_id, Delivery.status.in_(PENDING_STATUSES)
        )
    ) or 0
