"""What happened to each edition after it went out: sent, failed, bounced, complained,
unsubscribed. Read by the admin console's stats page and the JSON API's stats.

The definitions (also in docs/web.md, "The admin console"):

- recipients: the edition's deliveries in the ledger, one per person it was queued for
  (those skipped later, unsubscribed or suppressed before their turn, included).
- sent, failed: deliveries with status "sent" and "failed". The rest are waiting,
  being sent, uncertain (a sender died mid-handover) or skipped.
- bounced, complained: suppressions with reason "hard_bounce" or "complaint" of the
  edition's recipients, recorded in the edition's window: those `digest.feedback`
  records from webhooks and DSNs (soft bounces in a row included, as "hard_bounce") and
  those an admin typed in.
- unsubscribed: memberships of the list that became unsubscribed in the window, however
  they left (link, one-click, mail, preferences, an admin, forget).

An edition's window runs from the start of its send to the start of the next edition's
send of the same list (open-ended for the newest): whatever happens in between is
counted against the last edition those people got. So one bounce or one unsubscribe
counts once per list, never in two editions.

Suppressions are stored as the sha256 of the address (they outlive `forget`); they are
matched to recipients through `Subscriber.email_hash`, the same column sending uses. A
person forgotten since has another hash, so their bounce no longer counts: nothing links
them to it any more, which is what forgetting is for. Domain blocks are not bounces.

Cost: the ledger counts are one GROUP BY over the editions' index entries (on a list
of a million, a million entries per edition: 100-150 ms on SQLite), kept in memory
once an edition is sent, when they no longer change. Suppressions are few and read by
their (reason, created_at) index, then matched to the editions' deliveries by the
(edition, subscriber) unique index; unsubscribes by the (list, unsubscribed_at) index.
"""

from __future__ import annotations

import bisect
import datetime as dt
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import case, func, literal, select
from sqlalchemy.orm import Session

from digest.models import Delivery, DeliveryStatus, Edition, EditionKind, EditionStatus
from subscribers.models import MailingList, Membership, Subscriber, Suppression

HARD_BOUNCE, COMPLAINT = "hard_bounce", "complaint"
# Suppressed subscribers looked up per query: a bound parameter each.
_CHUNK = 500
# Ledger counts of finished editions, by (database, edition, sent_at); see `_ledger_counts`.
_FINISHED: dict[tuple[str, int, dt.datetime | None], dict[str, int]] = {}
_FINISHED_MAX = 10_000
_finished_lock = threading.Lock()


@dataclass(frozen=True)
class EditionStats:
    """The numbers of one edition (see the module docstring for what each counts)."""

    edition_id: int
    list_id: int
    list_name: str
    number: int
    subject: str
    status: str  # sending | sent
    send_started_at: dt.datetime
    sent_at: dt.datetime | None  # when the last delivery was done; None while sending
    recipients: int
    sent: int
    failed: int
    bounced: int
    complained: int
    unsubscribed: int


def edition_stats(s: Session, mlist: MailingList, *, limit: int = 30,
                  before: int | None = None) -> list[EditionStats]:
    """The numbers of the newest `limit` editions of `mlist` that started sending (with
    `before`: of those numbered below it, for paging), newest first."""
    stmt = (
        select(Edition)
        .where(Edition.list_id == mlist.id, Edition.kind == EditionKind.DIGEST,
               Edition.send_started_at.is_not(None))
        .order_by(Edition.number.desc())
        .limit(max(limit, 0))
    )
    if before is not None:
        stmt = stmt.where(Edition.number < before)
    editions = list(s.scalars(stmt))
    if not editions:
        return []
    # The window of the oldest shown ends where the next one starts, and the newest's
    # ends at the next edition that started, which may not be shown (paging).
    later = s.scalar(
        select(func.min(Edition.send_started_at))
        .where(Edition.list_id == mlist.id, Edition.kind == EditionKind.DIGEST,
               Edition.number > editions[0].number)
    )
    return _numbers(s, mlist, editions, later)


def stats_of_edition(s: Session, edition: Edition) -> EditionStats | None:
    """The numbers of one edition; None if it has not started sending (or is not a
    digest)."""
    if edition.kind != EditionKind.DIGEST or edition.send_started_at is None:
        return None
    mlist = s.get_one(MailingList, edition.list_id)
    return edition_stats(s, mlist, limit=1, before=edition.number + 1)[0]


def _numbers(s: Session, mlist: MailingList, editions: Sequence[Edition],
             later: dt.datetime | None) -> list[EditionStats]:
    oldest_first = sorted(editions, key=lambda e: _start(e))
    starts = [_start(e) for e in oldest_first]
    ids = [e.id for e in oldest_first]
    ledger = _ledger_counts(s, oldest_first)
    reports = _suppressions(s, ids, starts, later)
    unsubscribed = _unsubscribes(s, mlist.id, ids, starts, later)
    return [
        EditionStats(
            edition_id=e.id, list_id=mlist.id, list_name=mlist.name, number=e.number,
            subject=e.subject, status=e.status, send_started_at=_start(e), sent_at=e.sent_at,
            recipients=sum(ledger.get(e.id, {}).values()),
            sent=ledger.get(e.id, {}).get(DeliveryStatus.DELIVERED, 0),
            failed=ledger.get(e.id, {}).get(DeliveryStatus.FAILED, 0),
            bounced=reports.get((e.id, HARD_BOUNCE), 0),
            complained=reports.get((e.id, COMPLAINT), 0),
            unsubscribed=unsubscribed.get(e.id, 0),
        )
        for e in editions
    ]


def _start(edition: Edition) -> dt.datetime:
    assert edition.send_started_at is not None  # selected that way
    return edition.send_started_at


def _ledger_counts(s: Session, editions: Sequence[Edition]) -> dict[int, dict[str, int]]:
    """edition id -> deliveries per status. Those of a finished edition no longer
    change, so they are kept in `_FINISHED`: counting a million deliveries takes SQLite
    about 150 ms, and the stats page shows up to 30 editions."""
    where = str(s.get_bind().engine.url)
    counts: dict[int, dict[str, int]] = {}
    todo = []
    with _finished_lock:
        for e in editions:
            known = _FINISHED.get((where, e.id, e.sent_at))
            if known is not None:
                counts[e.id] = known
            else:
                todo.append(e.id)
    if todo:
        rows = s.execute(
            select(Delivery.edition_id, Delivery.status, func.count())
            .where(Delivery.edition_id.in_(todo))
            .group_by(Delivery.edition_id, Delivery.status)
        )
        for edition_id, status, n in rows:
            counts.setdefault(edition_id, {})[status] = n
    with _finished_lock:
        for e in editions:
            if e.id in todo and e.status == EditionStatus.SENT and e.sent_at is not None:
                if len(_FINISHED) >= _FINISHED_MAX:
                    _FINISHED.clear()
                _FINISHED[(where, e.id, e.sent_at)] = counts.get(e.id, {})
    return counts


def _suppressions(s: Session, ids: list[int], starts: list[dt.datetime],
                  later: dt.datetime | None) -> dict[tuple[int, str], int]:
    """(edition id, reason) -> bounces or complaints of its recipients in its window.

    Driven from the suppressions, which are few: their subscribers first, then which of
    the editions those people were sent, by the ledger's (edition, subscriber) index."""
    stmt = (
        select(Subscriber.id, Suppression.reason, Suppression.created_at)
        .join(Subscriber, Subscriber.email_hash == Suppression.email_hash)
        .where(Suppression.reason.in_((HARD_BOUNCE, COMPLAINT)),
               Suppression.created_at >= starts[0])
    )
    if later is not None:
        stmt = stmt.where(Suppression.created_at < later)
    found = {sid: (reason, at) for sid, reason, at in s.execute(stmt)}
    counts: dict[tuple[int, str], int] = {}
    people = list(found)
    for i in range(0, len(people), _CHUNK):
        chunk = people[i:i + _CHUNK]
        received = s.execute(
            select(Delivery.subscriber_id, Delivery.edition_id)
            .where(Delivery.edition_id.in_(ids), Delivery.subscriber_id.in_(chunk))
        )
        for sid, edition_id in received:
            reason, at = found[sid]
            if ids[_window(starts, at)] == edition_id:
                key = (edition_id, reason)
                counts[key] = counts.get(key, 0) + 1
    return counts


def _unsubscribes(s: Session, list_id: int, ids: list[int], starts: list[dt.datetime],
                  later: dt.datetime | None) -> dict[int, int]:
    """edition id -> memberships of the list unsubscribed in its window: one query,
    bucketed by the database. (The bucket is a subquery's column, because PostgreSQL
    does not see a CASE with bound values in GROUP BY as the one selected.)"""
    at = Membership.unsubscribed_at
    whens = [(at < start, edition_id) for edition_id, start in zip(ids, starts[1:],
                                                                    strict=False)]
    bucket = case(*whens, else_=ids[-1]) if whens else literal(ids[-1])
    rows = select(bucket.label("edition_id")).where(Membership.list_id == list_id,
                                                    at >= starts[0])
    if later is not None:
        rows = rows.where(at < later)
    inner = rows.subquery()
    stmt = select(inner.c.edition_id, func.count()).group_by(inner.c.edition_id)
    return {edition_id: n for edition_id, n in s.execute(stmt)}


def _window(starts: list[dt.datetime], at: dt.datetime) -> int:
    """The index of the edition whose window holds `at` (`at` >= starts[0])."""
    return bisect.bisect_right(starts, at) - 1
