"""The delivery ledger: enqueue, claim, and record each message's fate.

One row per (edition, subscriber), unique. The life of a row:

    queued ──claim──▶ claimed ──handing_over──▶ sending ──▶ sent | failed
       ▲                 │                          │
       └── deferred (4xx, retry with backoff) ◀─────┘
    claimed whose worker died or whose lease ran out ──▶ queued (nothing was handed over)
    sending whose worker died ──▶ uncertain (the body reached the server; only the
                                  closing "." may not have: not sent again)

"sending" is committed right before the final step that makes the server accept the
message, so a hard kill can leave at most one row per connection in doubt, and those
are never mailed twice. Each outcome is committed on its own as the backend reports
it, so a crash loses at most the messages in flight.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    CursorResult,
    Engine,
    Integer,
    String,
    and_,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from digest.db import UTCDateTime
from digest.deliver.backends.base import SendResult
from digest.deliver.message import Outgoing
from digest.models import (
    CLAIMED,
    DELIVERED,
    FAILED,
    QUEUED,
    SENDING,
    SKIPPED,
    UNCERTAIN,
    Delivery,
    Edition,
)
from subscribers.members import recipients_query
from subscribers.models import CONFIRMED, Subscriber

PENDING_STATUSES = (QUEUED, CLAIMED, SENDING)
Clock = Callable[[], dt.datetime]


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


def enqueue(s: Session, edition: Edition, now: dt.datetime, audience: str = CONFIRMED) -> int:
    """A queued row for every unsuppressed member of `audience` (confirmed for a digest,
    pending for confirmation mail); rows already there are kept.

    One INSERT … SELECT, so a million members cost one statement, not a million.
    """
    members = recipients_query(edition.list_id, audience).subquery()
    already = select(Delivery.id).where(
        Delivery.edition_id == edition.id, Delivery.subscriber_id == members.c.subscriber_id
    )
    rows = select(
        literal(edition.id, Integer), members.c.subscriber_id, literal(QUEUED, String),
        literal(0, Integer), literal(now, UTCDateTime), literal("", String),
        literal("", String), literal("", String),
    ).where(~already.exists())
    columns = ["edition_id", "subscriber_id", "status", "attempts", "next_attempt_at",
               "claimed_by", "message_id", "last_error"]
    # SQLAlchemy keeps the row count of an INSERT only when asked to.
    result: CursorResult[Any] = s.execute(  # type: ignore[assignment]
        insert(Delivery).from_select(columns, rows),
        execution_options={"preserve_rowcount": True})
    return max(result.rowcount or 0, 0)


def claim(
    s: Session, edition_id: int, worker: str, limit: int, now: dt.datetime, lease_seconds: int
) -> list[Claimed]:
    """Take up to `limit` rows that are due, or whose lease ran out, for `worker`.

    On PostgreSQL the inner SELECT skips rows other workers have locked, so any number
    of workers share an edition; SQLite serializes writers, so one worker is the rule.
    """
    due = or_(
        and_(Delivery.status == QUEUED, Delivery.next_attempt_at <= now),
        and_(Delivery.status == CLAIMED, Delivery.lease_until < now),
    )
    ids = (
        select(Delivery.id)
        .where(Delivery.edition_id == edition_id, due)
        .order_by(Delivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    lease = now + dt.timedelta(seconds=lease_seconds)
    claimed = s.scalars(
        update(Delivery)
        .where(Delivery.id.in_(ids))
        .values(status=CLAIMED, claimed_by=worker, lease_until=lease)
        .returning(Delivery.id)
    ).all()
    s.commit()
    if not claimed:
        return []
    rows = s.execute(
        select(Delivery.id, Delivery.subscriber_id, Subscriber.email, Subscriber.name)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.id.in_(claimed))
        .order_by(Delivery.id)
    )
    return [Claimed(*row) for row in rows]


def skip_unwanted(s: Session, list_id: int, claimed: Sequence[Claimed],
                  audience: str = CONFIRMED) -> list[Claimed]:
    """Checks suppression and membership again right before sending.

    Someone may have unsubscribed or bounced since the edition was queued; their rows
    become `skipped` and the rest is returned.
    """
    ids = [c.subscriber_id for c in claimed]
    members = recipients_query(list_id, audience).subquery()
    wanted = set(s.scalars(
        select(members.c.subscriber_id).where(members.c.subscriber_id.in_(ids))
    ))
    unwanted = [c.delivery_id for c in claimed if c.subscriber_id not in wanted]
    if unwanted:
        s.execute(
            update(Delivery).where(Delivery.id.in_(unwanted))
            .values(status=SKIPPED, last_error="unsubscribed or suppressed after queueing")
        )
        s.commit()
    return [c for c in claimed if c.subscriber_id in wanted]


class LedgerEvents:
    """The backend's reports, written to the ledger as they come, one transaction each.

    Backends call these from one thread. Every update is guarded by `claimed_by`, so a
    worker whose lease was lost and taken over cannot overwrite the new owner's record.
    """

    def __init__(self, engine: Engine, worker: str, policy: RetryPolicy, clock: Clock) -> None:
        self.engine = engine
        self.worker = worker
        self.policy = policy
        self.clock = clock
        self.counts = {DELIVERED: 0, FAILED: 0, "deferred": 0}
        self._raw: Any = None
        mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._handover_sql = (
            f"UPDATE deliveries SET status = {mark}, message_id = {mark} "
            f"WHERE id = {mark} AND claimed_by = {mark}"
        )

    def close(self) -> None:
        if self._raw is not None:
            self._raw.close()
            self._raw = None

    def handing_over(self, msg: Outgoing) -> None:
        """Commit `sending` for the message; the backend then writes the final step.

        A hard kill between this commit and that write is the one moment the ledger
        can be wrong (it would call a message uncertain that never arrived), so the
        commit is the last thing done here: a plain DB-API statement on a connection
        kept open, with nothing from the ORM or the pool after it.
        """
        if self._raw is None:
            self._raw = self.engine.raw_connection()
        cursor = self._raw.cursor()
        cursor.execute(self._handover_sql,
                       (SENDING, msg.message_id, msg.delivery_id, self.worker))
        cursor.close()
        self._raw.commit()

    def _update(self, delivery_id: int, **values: object) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id, Delivery.claimed_by == self.worker)
                .values(**values)
            )

    def done(self, result: SendResult) -> None:
        now = self.clock()
        if result.status == "sent":
            self._update(result.delivery_id, status=DELIVERED, sent_at=now, last_error="")
        elif result.status == "failed":
            self._update(result.delivery_id, status=FAILED, last_error=result.detail)
        else:
            self._defer(result, now)
        self.counts[DELIVERED if result.status == "sent" else result.status] += 1

    def _defer(self, result: SendResult, now: dt.datetime) -> None:
        with self.engine.begin() as conn:
            attempts = conn.scalar(
                select(Delivery.attempts).where(Delivery.id == result.delivery_id)
            ) or 0
            attempts += 1
            if attempts >= self.policy.max_attempts:
                values: dict[str, object] = {
                    "status": FAILED, "attempts": attempts,
                    "last_error": f"gave up after {attempts} attempts: {result.detail}",
                }
            else:
                values = {
                    "status": QUEUED, "attempts": attempts, "claimed_by": "",
                    "lease_until": None, "last_error": result.detail,
                    "next_attempt_at": self.policy.next_attempt(attempts, now),
                }
            conn.execute(
                update(Delivery)
                .where(Delivery.id == result.delivery_id, Delivery.claimed_by == self.worker)
                .values(**values)
            )


def release_dead(s: Session, edition_id: int, now: dt.datetime) -> dict[str, int]:
    """Frees the rows of senders that are gone: dead processes on this host, or leases
    that ran out anywhere. Claimed rows go back to the queue; rows caught `sending`
    become `uncertain` (their body reached the server, so they are not sent again)."""
    host = socket.gethostname()
    holders = s.scalars(
        select(Delivery.claimed_by).distinct().where(
            Delivery.edition_id == edition_id, Delivery.status.in_((CLAIMED, SENDING))
        )
    ).all()
    dead = [w for w in holders if _is_dead_local(w, host)]
    gone = or_(Delivery.claimed_by.in_(dead), Delivery.lease_until < now)
    freed: CursorResult[Any] = s.execute(  # type: ignore[assignment]
        update(Delivery)
        .where(Delivery.edition_id == edition_id, Delivery.status == CLAIMED, gone)
        .values(status=QUEUED, claimed_by="", lease_until=None)
    )
    doubtful: CursorResult[Any] = s.execute(  # type: ignore[assignment]
        update(Delivery)
        .where(Delivery.edition_id == edition_id, Delivery.status == SENDING, gone)
        .values(status=UNCERTAIN, last_error="sender stopped while handing the message over")
    )
    s.commit()
    return {"requeued": freed.rowcount or 0, "uncertain": doubtful.rowcount or 0}


def _is_dead_local(worker: str, host: str) -> bool:
    parts = worker.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        return False  # our own earlier claims are live by definition
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


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
            Delivery.edition_id == edition_id, Delivery.status == QUEUED
        )
    )


def pending(s: Session, edition_id: int) -> int:
    """Deliveries of the edition not finished yet."""
    return s.scalar(
        select(func.count()).select_from(Delivery).where(
            Delivery.edition_id == edition_id, Delivery.status.in_(PENDING_STATUSES)
        )
    ) or 0
