"""The backend's reports on each message, written to the ledger in groups.

`LedgerEvents` is the `SendEvents` a worker hands its backend. `hand_over` commits
`sending` for a group of messages right before their final step (SMTP: the lanes whose
bodies are flushed; an API: the messages of one call), and the same transaction writes
every outcome reported since the last write (`done` only notes them). So a sender writes
once per group, not twice per message, and a hard kill leaves in doubt at most the rows
of one group plus, on each connection, the one message whose reply came after the last
write: never more than one row per connection, as before.

The backend calls these on its event loop, which stands still while they run: every
connection waits. So each write is one round trip at most, with statements built once
per shape (see `_Writer`, `_PgWriter`). A handover's COMMIT is answered before any final
step goes out; outcomes written on their own are not waited for on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import logging
import select as os_select
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Engine, Integer, select, update
from sqlalchemy.exc import SQLAlchemyError

from digest.db import UTCDateTime, reason
from digest.deliver.backends.base import ClaimLost, SendResult
from digest.deliver.ledger import Clock, RetryPolicy
from digest.deliver.message import Outgoing
from digest.errors import DatabaseUnavailable
from digest.models import Delivery, DeliveryStatus

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Outcomes noted are written with the next handover, or at the latest once this many
#: wait or the oldest has waited this long (a sender whose connections all stalled).
FLUSH_ROWS = 500
FLUSH_SECONDS = 0.5
#: After a write failed, outcomes wait this long before `done` tries again.
RETRY_SECONDS = 1.0

Values = dict[str, object]


class LedgerEvents:
    """The backend's reports, written to the ledger in groups, from one thread.

    Every update is guarded by `claimed_by`, so a worker whose lease was lost and taken
    over cannot overwrite the new owner's record. With `edition_id` and `lease_seconds`,
    the worker's claims on the edition are renewed every third of a lease while messages
    keep settling. `counts` (by outcome: sent, failed, uncertain, deferred) may be the
    sender's own tally, kept across runs.

    Outcomes are noted and written with the next group's handover (or by `flush`): a row
    whose outcome is noted but not written is still `sending`, so a kill makes it
    `uncertain`, never sent again. A handover's commit is known to have happened before
    any final step goes out. When the database goes away (a restart, a network cut),
    what could not be written is kept here and written first once it answers: the
    outcomes, and the rows of a handover that failed, given back as claims (their final
    step never went out). Meanwhile `hand_over` raises DatabaseUnavailable, so no new
    message goes out that the ledger cannot record. `close` waits for the database (up
    to a lease) to write what is kept.
    """

    def __init__(self, engine: Engine, worker: str, policy: RetryPolicy, clock: Clock, *,
                 edition_id: int | None = None, lease_seconds: int = 0,
                 counts: dict[str, int] | None = None) -> None:
        self.engine = engine
        self.worker = worker
        self.policy = policy
        self.clock = clock
        self.counts: dict[str, int] = {
            DeliveryStatus.DELIVERED: 0, DeliveryStatus.FAILED: 0, DeliveryStatus.UNCERTAIN: 0,
            "deferred": 0} if counts is None else counts
        pg = engine.dialect.driver == "psycopg"
        self._writer: _Writer = _PgWriter(engine, worker) if pg else _Writer(engine, worker)
        self._edition_id = edition_id
        self._lease = lease_seconds
        self._renew_at = time.monotonic() + lease_seconds / 3
        # delivery id -> the values to write, in the order noted; the latest word on a
        # row replaces an earlier one.
        self._unwritten: dict[int, Values] = {}
        self._since = 0.0  # when the oldest unwritten outcome was noted (monotonic)
        self._away = False  # the last write failed: the database is away
        self._retry_at = 0.0
        #: Handovers by how many messages each carried (size -> count): bounded, however
        #: long the send.
        self.groups: Counter[int] = Counter()

    def close(self, *, patience: float | None = None) -> None:
        """Read the last answers and write what is not written yet, waiting for the
        database up to `patience` seconds (default: the lease, as long as the claims are
        ours); DatabaseUnavailable if it stays away. The connection is let go either way."""
        try:
            when_back(self._wind_up, self._lease if patience is None else patience,
                      lambda: f"{len(self._unwritten)} delivery outcomes wait for it")
        finally:
            self._writer.close()

    def _wind_up(self) -> None:
        """Write what was kept; then no row of this run may still be `sending`, since
        every message handed over has had its outcome. One that is (its outcome never
        reached the ledger) becomes `uncertain`: it may have arrived, so never again."""
        self._write()
        try:
            with self.engine.begin() as conn:
                stranded = conn.scalars(
                    update(Delivery)
                    .where(Delivery.claimed_by == self.worker,
                           Delivery.status == DeliveryStatus.HANDING_OVER)
                    .values(**_HANDED_OVER)
                    .returning(Delivery.id)
                ).all()
        except SQLAlchemyError as exc:
            raise unavailable(exc) from exc
        if stranded:
            log.warning("%d deliveries handed over had no outcome recorded, now uncertain: "
                        "%s", len(stranded), ", ".join(map(str, sorted(stranded))))

    def hand_over(self, msgs: Sequence[Outgoing]) -> dict[int, str]:
        """Commit `sending` for `msgs`, with every outcome noted so far, in one
        transaction; the backend then writes their final step at once. Returns the
        messages that must not be finished, by delivery id, with why: their rows are no
        longer this worker's (another took them over). DatabaseUnavailable if the
        database does not answer: then none of `msgs` may be finished."""
        self._settle()
        try:
            kept = self._writer.write(self._unwritten, msgs)
        except DatabaseUnavailable:
            self._failed()
            # Whether the commit happened is not known, but no final step went out: the
            # rows are this worker's claims again once the database answers, so they
            # are queued again, not left `sending` to end `uncertain` unsent.
            for msg in msgs:
                self._note(msg.delivery_id, {"status": DeliveryStatus.CLAIMED})
            raise
        self._written()
        self.groups[len(msgs)] += 1
        ours = {m.delivery_id for m in kept}
        return {m.delivery_id: str(_lost(m)) for m in msgs if m.delivery_id not in ours}

    def handing_over(self, msg: Outgoing) -> None:
        """`hand_over` of one message; ClaimLost if it must not be finished."""
        if self.hand_over([msg]):
            raise _lost(msg)

    def taken_back(self, msgs: Sequence[Outgoing]) -> None:
        """The provider took none of `msgs`: their rows are this worker's claims again,
        written now and the answer waited for (a wait follows, so the round trip costs
        nothing), so a kill or a stop during that wait leaves nothing `sending`, and
        nobody reading the ledger meanwhile sees them in flight. Kept for later if the
        database is away."""
        self._settle()
        for msg in msgs:  # replaces a handover whose commit was lost: nothing went out
            self._note(msg.delivery_id, {"status": DeliveryStatus.CLAIMED})
        try:
            self._write()
            self._settle()  # a write lost with the connection is noted again, kept
        except DatabaseUnavailable as exc:
            log.warning("could not give back %d deliveries the provider did not take; "
                        "kept for later: %s", len(msgs), exc)

    def done(self, result: SendResult) -> None:
        now = self.clock()
        if self._lease and self._edition_id is not None and time.monotonic() >= self._renew_at:
            self._renew(now)
        if result.status == "sent":
            values: Values = {"status": DeliveryStatus.DELIVERED, "sent_at": now,
                              "last_error": ""}
            if result.provider_id:
                values["message_id"] = result.provider_id
            self._note(result.delivery_id, values)
            self.counts[DeliveryStatus.DELIVERED] += 1
        elif result.status == "failed":
            self._note(result.delivery_id, {"status": DeliveryStatus.FAILED,
                                            "last_error": result.detail})
            self.counts[DeliveryStatus.FAILED] += 1
        elif result.status == "uncertain":
            self._note(result.delivery_id, {"status": DeliveryStatus.UNCERTAIN,
                                            "last_error": result.detail})
            self.counts[DeliveryStatus.UNCERTAIN] += 1
        else:
            status = self._defer(result, now)
            self.counts[DeliveryStatus.FAILED if status == DeliveryStatus.FAILED
                        else "deferred"] += 1
        if self._unwritten and (len(self._unwritten) >= FLUSH_ROWS or (
                time.monotonic() - self._since >= FLUSH_SECONDS)):
            self.flush()

    def flush(self) -> None:
        """Write the outcomes noted so far now; if the database does not answer (logged),
        they are kept for the next write."""
        if self._away and time.monotonic() < self._retry_at:
            return
        try:
            self._write()
        except DatabaseUnavailable as exc:
            log.warning("%d delivery outcomes kept until the database answers: %s",
                        len(self._unwritten), exc)

    def _write(self) -> None:
        """Write what is noted, in one transaction; DatabaseUnavailable if it cannot."""
        self._settle()
        if not self._unwritten:
            return
        kept = len(self._unwritten) if self._away else 0
        try:
            self._writer.write(self._unwritten, ())
        except DatabaseUnavailable:
            self._failed()
            raise
        self._written()
        if kept:
            log.info("%d delivery outcomes written once the database was back", kept)

    def _note(self, delivery_id: int, values: Values) -> None:
        if not self._unwritten:
            self._since = time.monotonic()
        self._unwritten.pop(delivery_id, None)
        self._unwritten[delivery_id] = values

    def _written(self) -> None:
        self._unwritten.clear()
        self._away = False

    def _failed(self) -> None:
        self._away = True
        self._retry_at = time.monotonic() + RETRY_SECONDS

    def _settle(self) -> None:
        """Read the answer to the last write; what it lost is noted again, unless a
        newer word on the row came since (everything noted came after that write)."""
        self._writer.settle()
        lost = self._writer.take_lost()
        if lost:
            self._failed()
        for delivery_id, values in lost.items():
            if delivery_id not in self._unwritten:
                self._note(delivery_id, values)

    def _renew(self, now: dt.datetime) -> None:
        self._settle()
        self._renew_at = time.monotonic() + self._lease / 3
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    update(Delivery)
                    .where(Delivery.edition_id == self._edition_id,
                           Delivery.status.in_((DeliveryStatus.CLAIMED,
                                                DeliveryStatus.HANDING_OVER)),
                           Delivery.claimed_by == self.worker)
                    .values(lease_until=now + dt.timedelta(seconds=self._lease))
                )
        except SQLAlchemyError as exc:  # the next handover says so; the lease holds a while
            log.warning("could not renew the claims' lease: %s", unavailable(exc))

    def _defer(self, result: SendResult, now: dt.datetime) -> DeliveryStatus:
        """Queue the row again with backoff, or fail it after max_attempts; the status.
        Written at once (it reads the row's attempts): deferrals are few."""
        self._settle()
        if self._away or result.delivery_id in self._unwritten:
            return self._defer_later(result, now)
        try:
            with self.engine.begin() as conn:
                attempts = conn.scalar(
                    select(Delivery.attempts).where(Delivery.id == result.delivery_id)
                ) or 0
                status, values = self._retry(attempts + 1, result.detail, now,
                                             result.retry_at)
                conn.execute(
                    update(Delivery)
                    .where(Delivery.id == result.delivery_id,
                           Delivery.claimed_by == self.worker)
                    .values(**values)
                )
        except SQLAlchemyError:
            self._failed()
            return self._defer_later(result, now)
        return status

    def _defer_later(self, result: SendResult, now: dt.datetime) -> DeliveryStatus:
        """The database is away: queue the row again when it answers, this attempt
        uncounted (the count is in the database)."""
        status, values = self._retry(1, result.detail, now, result.retry_at)
        del values["attempts"]
        self._note(result.delivery_id, values)
        return status

    def _retry(self, attempts: int, detail: str, now: dt.datetime,
               retry_at: dt.datetime | None = None) -> tuple[DeliveryStatus, Values]:
        """The row's next values; `retry_at`, the provider's time, when later than ours."""
        if attempts >= self.policy.max_attempts:
            return DeliveryStatus.FAILED, {
                "status": DeliveryStatus.FAILED, "attempts": attempts,
                "last_error": f"gave up after {attempts} attempts: {detail}",
            }
        return DeliveryStatus.QUEUED, {
            "status": DeliveryStatus.QUEUED, "attempts": attempts, "claimed_by": "",
            "lease_until": None, "last_error": detail,
            "next_attempt_at": max(self.policy.next_attempt(attempts, now),
                                   retry_at or now),
        }


def when_back(attempt: Callable[[], T], patience: float, waiting: Callable[[], str]) -> T:
    """`attempt()`, tried again while it raises DatabaseUnavailable, with a pause that
    doubles from half a second up to 10 s, for up to `patience` seconds; then its error.
    `waiting()` says in the log what waits for the database."""
    pause, deadline = 0.5, time.monotonic() + patience
    while True:
        try:
            return attempt()
        except DatabaseUnavailable as exc:
            if time.monotonic() + pause > deadline:
                log.error("%s; gave up after %.0f s: %s", waiting(), patience, exc)
                raise
            log.warning("%s; trying again in %.1f s: %s", waiting(), pause, exc)
            time.sleep(pause)
            pause = min(pause * 2, 10.0)


def unavailable(exc: BaseException) -> DatabaseUnavailable:
    """The database error as DatabaseUnavailable, its first line kept (no password)."""
    return DatabaseUnavailable(f"the database did not answer: {reason(exc)}")


#: What the ledger records for a message handed over whose outcome never reached it: it
#: may have arrived, so it is never sent again.
_HANDED_OVER: Values = {"status": DeliveryStatus.UNCERTAIN,
                        "last_error": "the database went away while the message was handed over"}


def _lost(msg: Outgoing) -> ClaimLost:
    return ClaimLost(f"delivery {msg.delivery_id} was taken over by another worker")


def _shapes(outcomes: Mapping[int, Values]) -> dict[tuple[str, ...], list[tuple[int, Values]]]:
    """The outcomes by the columns they set: one statement per shape (a sent row sets
    status, sent_at and last_error; a failed one status and last_error...)."""
    shapes: dict[tuple[str, ...], list[tuple[int, Values]]] = {}
    for delivery_id, values in outcomes.items():
        shapes.setdefault(tuple(values), []).append((delivery_id, values))
    return shapes


class _Writer:
    """A group's outcomes and handovers in one transaction, on any database.

    A hard kill after the handover's commit and before the backend's final step is the
    one moment the ledger can be wrong (it would call a message uncertain that never
    arrived), so that commit is the last thing done: plain DB-API statements on a
    connection kept open, built once per shape (`executemany`), nothing from the ORM or
    the pool after them. A database that does not answer raises DatabaseUnavailable;
    `take_lost` gives the writes it had accepted and then lost (none here: every write
    is waited for).
    """

    def __init__(self, engine: Engine, worker: str) -> None:
        self.engine = engine
        self.worker = worker
        self._raw: Any = None
        dialect = engine.dialect
        self._mark = "?" if dialect.paramstyle == "qmark" else "%s"
        self._binds = {column.name: column.type.bind_processor(dialect)
                       for column in Delivery.__table__.columns}
        self._statements: dict[tuple[str, ...], str] = {}
        self._lost: dict[int, Values] = {}

    def connection(self) -> Any:
        if self._raw is None:
            try:
                self._raw = self.engine.raw_connection()
            # raw_connection() lets the driver's own errors through, unwrapped
            except (SQLAlchemyError, self.engine.dialect.loaded_dbapi.Error) as exc:
                raise unavailable(exc) from exc
        return self._raw

    def write(self, outcomes: Mapping[int, Values], msgs: Sequence[Outgoing]
              ) -> list[Outgoing]:
        """Write `outcomes` and mark `msgs` `sending`, committed; returns the messages
        whose rows are still this worker's (the others were left as they are)."""
        raw = self.connection()
        try:
            cursor = raw.cursor()
            for names, rows in _shapes(outcomes).items():
                cursor.executemany(self._update(names), [
                    (*self._bound(names, values), delivery_id, self.worker)
                    for delivery_id, values in rows])
            kept = list(msgs)
            if msgs:
                cursor.executemany(self._update(("status", "message_id")), [
                    (DeliveryStatus.HANDING_OVER.value, m.message_id, m.delivery_id,
                     self.worker) for m in msgs])
                if cursor.rowcount != len(msgs):  # some claim was lost: which?
                    ours = self._ours(cursor, msgs)
                    kept = [m for m in msgs if m.delivery_id in ours]
            cursor.close()
            raw.commit()
        except self.engine.dialect.loaded_dbapi.Error as exc:
            self.drop()
            raise unavailable(exc) from exc
        return kept

    def _update(self, names: tuple[str, ...]) -> str:
        if (sql := self._statements.get(names)) is None:
            mark = self._mark
            assignments = ", ".join(f"{name} = {mark}" for name in names)
            sql = self._statements[names] = (
                f"UPDATE deliveries SET {assignments} WHERE id = {mark} AND claimed_by = {mark}")
        return sql

    def _bound(self, names: tuple[str, ...], values: Values) -> Iterable[object]:
        for name in names:
            value, bind = values[name], self._binds[name]
            yield bind(value) if bind is not None else value

    def _ours(self, cursor: Any, msgs: Sequence[Outgoing]) -> set[int]:
        marks = ", ".join([self._mark] * len(msgs))
        cursor.execute(f"SELECT id FROM deliveries WHERE claimed_by = {self._mark} "
                       f"AND status = {self._mark} AND id IN ({marks})",
                       (self.worker, DeliveryStatus.HANDING_OVER.value,
                        *(m.delivery_id for m in msgs)))
        return {row[0] for row in cursor.fetchall()}

    def settle(self) -> None:
        """Waits for writes sent earlier; they are all done here."""

    def take_lost(self) -> dict[int, Values]:
        """The writes sent and then lost with the connection, to be written again."""
        lost, self._lost = self._lost, {}
        return lost

    def close(self) -> None:
        if self._raw is not None:
            raw, self._raw = self._raw, None
            raw.close()

    def drop(self) -> None:
        """Let go of a connection that broke: discarded, not returned to the pool (whose
        rollback on it would fail)."""
        if self._raw is not None:
            raw, self._raw = self._raw, None
            raw.invalidate()


class _PgWriter(_Writer):
    """The same on PostgreSQL, where each wait for the server holds up every connection.

    A group is one round trip: `BEGIN`, an `UPDATE … FROM (VALUES …)` per shape of
    outcome, and the handovers' `UPDATE … RETURNING id`, whose rows say which claims
    still hold, sent as one query; then a COMMIT sent without waiting for its answer, so
    that the backend's final writes follow it at once. (Waiting for that answer, which
    includes the WAL flush, left the kill window open long enough that one kill in two
    lost a message.) Outcomes written without a handover go as one query, not waited
    for, with `synchronous_commit` off: were the database server itself to crash and lose
    them, the rows would be left `sending`, so `uncertain`, never sent twice. Answers are
    read (settle) before the next query on the connection; a write lost with the
    connection is kept for `take_lost`. Values are inlined as escaped literals, since
    only a simple query may hold several statements.
    """

    def __init__(self, engine: Engine, worker: str) -> None:
        super().__init__(engine, worker)
        self._waiting = False  # a query was sent whose answers are not read yet
        # What that query was to write, by delivery id, to record again if it is lost.
        self._inflight: dict[int, Values] = {}
        self._pgconn: Any = None
        self._escaping: Any = None
        # The SQL cast each column's literal needs in a VALUES list (text otherwise).
        self._casts = {column.name: (b"::timestamptz" if isinstance(column.type, UTCDateTime)
                                     else b"::integer" if isinstance(column.type, Integer)
                                     else b"")
                       for column in Delivery.__table__.columns}

    def connection(self) -> Any:
        if self._raw is None:
            from psycopg.pq import Escaping  # psycopg is an optional dependency

            raw = super().connection()
            self._pgconn = raw.driver_connection.pgconn
            self._escaping = Escaping(self._pgconn)
        return self._raw

    def write(self, outcomes: Mapping[int, Values], msgs: Sequence[Outgoing]
              ) -> list[Outgoing]:
        self.settle()
        self.connection()
        statements = [self._update_from(names, rows)
                      for names, rows in _shapes(outcomes).items()]
        if not msgs:
            if statements:
                self._send(b"; ".join([b"SET LOCAL synchronous_commit TO off", *statements]),
                           inflight=dict(outcomes))
            return []
        rows = b", ".join(b"(" + str(int(m.delivery_id)).encode() + b", "
                          + self._literal(m.message_id) + b")" for m in msgs)
        handover = (b"UPDATE deliveries AS d SET status = "
                    + self._literal(DeliveryStatus.HANDING_OVER.value)
                    + b", message_id = v.message_id FROM (VALUES " + rows
                    + b") AS v(id, message_id) WHERE d.id = v.id AND d.claimed_by = "
                    + self._literal(self.worker) + b" RETURNING d.id")
        # The COMMIT's answer is waited for: only a commit known to have happened lets
        # the final steps go out. (Sent without waiting, a COMMIT lost with the
        # connection left the rows `claimed` while their messages had gone, and the
        # sender's memory of them died with it: a kill, or a wait past the lease, sent
        # them twice.) The wait is one round trip a group, without the WAL flush
        # (`synchronous_commit` off): a kill between the commit and the final steps
        # leaves rows `uncertain` that never went, so that moment is kept short. Only
        # the database server itself crashing in the next fraction of a second could
        # undo the commit, and then the sender, still holding the claims, writes the
        # outcomes over them when it is back.
        results = self._run(b"; ".join([b"BEGIN", b"SET LOCAL synchronous_commit TO off",
                                        *statements, handover, b"COMMIT"]))
        returned = results[-2]  # the handovers' RETURNING, before the COMMIT
        ours = {int(returned.get_value(i, 0)) for i in range(returned.ntuples)}
        return [m for m in msgs if m.delivery_id in ours]

    def _update_from(self, names: tuple[str, ...], rows: list[tuple[int, Values]]) -> bytes:
        """One UPDATE for every row of a shape: `… SET a = v.a FROM (VALUES …) AS v`."""
        assignments = b", ".join(name.encode() + b" = v." + name.encode() + self._casts[name]
                                 for name in names)
        values = b", ".join(
            b"(" + str(int(delivery_id)).encode() + b", "
            + b", ".join(self._literal(values[name]) for name in names) + b")"
            for delivery_id, values in rows)
        return (b"UPDATE deliveries AS d SET " + assignments + b" FROM (VALUES " + values
                + b") AS v(id, " + b", ".join(name.encode() for name in names)
                + b") WHERE d.id = v.id AND d.claimed_by = " + self._literal(self.worker))

    def settle(self) -> None:
        """Reads the answers to the query sent last. If the connection broke, what that
        query was to write is kept for `take_lost`, and the connection let go."""
        if not self._waiting:
            return
        self._waiting = False
        inflight, self._inflight = self._inflight, {}
        try:
            self._results()
        except Exception as exc:  # the connection broke: psycopg's errors, OSError
            log.warning("a ledger write was lost with the connection: %s", exc)
            self._lost.update(inflight)
            self.drop()

    def close(self) -> None:
        if self._raw is not None:
            try:
                self.settle()
            finally:
                super().close()

    def _literal(self, value: object) -> bytes:
        if value is None:
            return b"NULL"
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value).encode()
        if isinstance(value, dt.datetime):
            value = value.astimezone(dt.UTC).isoformat()
        if not isinstance(value, str):
            raise TypeError(f"no literal for {value!r}")
        # A server's reply could hold a NUL, which no PostgreSQL text may.
        return bytes(self._escaping.escape_literal(value.replace("\0", "").encode()))

    def _send(self, query: bytes, *, inflight: dict[int, Values] | None = None) -> None:
        try:
            self._pgconn.send_query(query)
            while self._pgconn.flush():  # libpq runs non-blocking: 1 while bytes remain
                os_select.select([], [self._pgconn.socket], [])
        except Exception as exc:  # psycopg's OperationalError, OSError: the server is gone
            self.drop()
            raise unavailable(exc) from exc
        self._waiting, self._inflight = True, inflight or {}

    def _run(self, query: bytes) -> list[Any]:
        """Sends `query` and waits for its answers; on failure the connection is let go
        (it may be inside an aborted transaction) and DatabaseUnavailable raised."""
        self._send(query)
        self._waiting = False
        try:
            return self._results()
        except Exception as exc:
            self.drop()
            raise unavailable(exc) from exc

    def _results(self) -> list[Any]:
        """Every answer to the query sent last (all must be read), or _WriteFailed."""
        results, errors = [], []
        while (result := self._next_result()) is not None:
            if result.error_message:
                errors.append(result.error_message.decode(errors="replace").strip())
            results.append(result)
        if not results:  # libpq gives no result at all once the connection is gone
            errors.append(self._pgconn.get_error_message().decode(errors="replace").strip()
                          or "the server sent no answer")
        if errors:
            raise _WriteFailed("; ".join(errors))
        return results


    def _next_result(self) -> Any:
        """The next answer, waited for in select(), which lets other threads run: libpq's
        own blocking wait holds the GIL (psycopg's binary build), so a write waiting on a
        row lock froze every thread of the process, the one holding the lock included."""
        while self._pgconn.is_busy():
            os_select.select([self._pgconn.socket], [], [])
            self._pgconn.consume_input()
        return self._pgconn.get_result()


class _WriteFailed(Exception):
    """PostgreSQL refused a ledger write."""
