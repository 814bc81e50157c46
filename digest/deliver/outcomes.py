"""The backend's reports on each message, written to the ledger as they come.

`LedgerEvents` is the `SendEvents` a worker hands its backend: `handing_over` commits
`sending` right before the message's final step, `done` records the outcome, and the
worker's claims are renewed as messages keep settling, so a live worker never loses them
to its lease.

The backend calls these on its event loop, which stands still while they run: every
connection waits. So on PostgreSQL (psycopg) the hot writes take one round trip at most
(see `_PgWriter`): one worker went from 127 to 495 messages/s into a loopback server.
"""

from __future__ import annotations

import datetime as dt
import logging
import select as os_select
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Engine, Update, select, update
from sqlalchemy.exc import SQLAlchemyError

from digest.db import reason
from digest.deliver.backends.base import ClaimLost, SendResult
from digest.deliver.ledger import Clock, RetryPolicy
from digest.deliver.message import Outgoing
from digest.errors import DatabaseUnavailable
from digest.models import Delivery, DeliveryStatus

log = logging.getLogger(__name__)
T = TypeVar("T")


class LedgerEvents:
    """The backend's reports, written to the ledger as they come, one transaction each.

    Backends call these from one thread. Every update is guarded by `claimed_by`, so a
    worker whose lease was lost and taken over cannot overwrite the new owner's record.
    With `edition_id` and `lease_seconds`, the worker's claims on the edition are renewed
    every third of a lease while messages keep settling. `counts` (by outcome: sent,
    failed, uncertain, deferred) may be the sender's own tally, kept across runs.

    When the database goes away (a restart, a network cut), what could not be written is
    kept here, in order, and written first once it answers: an outcome, and above all a
    handover whose commit was lost after the message's final step went out, which would
    otherwise leave the row `claimed`, to be sent again. Meanwhile `handing_over` raises
    DatabaseUnavailable, so no new message goes out that the ledger cannot record.
    `close` waits for the database (up to a lease) to write what is kept.
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
        self._unwritten: dict[int, dict[str, object]] = {}  # delivery id -> its values

    def close(self, *, patience: float | None = None) -> None:
        """Read the last answers and write what the database missed, waiting for it up
        to `patience` seconds (default: the lease, as long as the claims are ours);
        DatabaseUnavailable if it stays away. The connection is let go either way."""
        try:
            when_back(self._wind_up, self._lease if patience is None else patience,
                      lambda: f"{len(self._unwritten)} delivery outcomes wait for it")
        finally:
            self._writer.close()

    def _wind_up(self) -> None:
        """Write what was kept; then no row of this run may still be `sending`, since
        every message handed over has had its outcome. One that is (its outcome never
        reached the ledger) becomes `uncertain`: it may have arrived, so never again."""
        self._catch_up()
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

    def handing_over(self, msg: Outgoing) -> None:
        """Commit `sending` for the message; the backend then writes the final step.
        Raises ClaimLost if the row is no longer this worker's, and DatabaseUnavailable
        if the database does not answer (then the message must not be finished)."""
        self._catch_up()
        try:
            self._writer.mark_sending(msg)
        finally:
            self._keep(self._writer.take_lost())

    def taken_back(self, msgs: Sequence[Outgoing]) -> None:
        """The provider took none of `msgs`: their rows are this worker's claims again
        (one statement, guarded by claimed_by), so a kill or a stop during the wait that
        follows leaves nothing `sending`. Kept for later if the database is away."""
        ids = [m.delivery_id for m in msgs]
        self._settle()  # the last handover's COMMIT is read first
        for delivery_id in ids:  # a handover whose commit was lost: nothing went out
            self._unwritten.pop(delivery_id, None)
        if not self._unwritten:
            try:
                with self.engine.begin() as conn:
                    conn.execute(update(Delivery)
                                 .where(Delivery.id.in_(ids),
                                        Delivery.claimed_by == self.worker,
                                        Delivery.status == DeliveryStatus.HANDING_OVER)
                                 .values(status=DeliveryStatus.CLAIMED))
                return
            except SQLAlchemyError as exc:
                log.warning("could not give back %d deliveries the provider did not take; "
                            "kept for later: %s", len(ids), unavailable(exc))
        self._keep({delivery_id: {"status": DeliveryStatus.CLAIMED} for delivery_id in ids})

    def done(self, result: SendResult) -> None:
        now = self.clock()
        if self._lease and self._edition_id is not None and time.monotonic() >= self._renew_at:
            self._renew(now)
        if result.status == "sent":
            values: dict[str, object] = {"status": DeliveryStatus.DELIVERED, "sent_at": now,
                                         "last_error": ""}
            if result.provider_id:
                values["message_id"] = result.provider_id
            self._record(result.delivery_id, **values)
            self.counts[DeliveryStatus.DELIVERED] += 1
        elif result.status == "failed":
            self._record(result.delivery_id, status=DeliveryStatus.FAILED,
                         last_error=result.detail)
            self.counts[DeliveryStatus.FAILED] += 1
        elif result.status == "uncertain":
            self._record(result.delivery_id, status=DeliveryStatus.UNCERTAIN,
                         last_error=result.detail)
            self.counts[DeliveryStatus.UNCERTAIN] += 1
        else:
            status = self._defer(result, now)
            self.counts[DeliveryStatus.FAILED if status == DeliveryStatus.FAILED
                        else "deferred"] += 1

    def _record(self, delivery_id: int, **values: object) -> None:
        """Write an outcome now, or keep it (after those kept already) for later."""
        self._settle()
        if not self._unwritten:
            try:
                self._writer.finish(delivery_id, **values)
                return
            except DatabaseUnavailable:
                self._keep(self._writer.take_lost())
        self._unwritten.pop(delivery_id, None)  # the latest word on a row comes last
        self._unwritten[delivery_id] = values

    def _settle(self) -> None:
        self._writer.settle()
        self._keep(self._writer.take_lost())

    def _keep(self, lost: dict[int, dict[str, object]]) -> None:
        for delivery_id, values in lost.items():
            self._unwritten.pop(delivery_id, None)
            self._unwritten[delivery_id] = values

    def _catch_up(self) -> None:
        """Write what was kept, in one transaction; DatabaseUnavailable if it cannot."""
        self._settle()
        if not self._unwritten:
            return
        try:
            with self.engine.begin() as conn:
                for delivery_id, values in self._unwritten.items():
                    conn.execute(_outcome(delivery_id, self.worker, values))
        except SQLAlchemyError as exc:
            raise unavailable(exc) from exc
        log.info("%d delivery outcomes written once the database was back",
                 len(self._unwritten))
        self._unwritten.clear()

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
        """Queue the row again with backoff, or fail it after max_attempts; the status."""
        self._settle()  # the row's `sending` is committed first
        if self._unwritten:
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
            return self._defer_later(result, now)
        return status

    def _defer_later(self, result: SendResult, now: dt.datetime) -> DeliveryStatus:
        """The database is away: queue the row again when it answers, this attempt
        uncounted (the count is in the database)."""
        status, values = self._retry(1, result.detail, now, result.retry_at)
        del values["attempts"]
        self._keep({result.delivery_id: values})
        return status

    def _retry(self, attempts: int, detail: str, now: dt.datetime,
               retry_at: dt.datetime | None = None) -> tuple[DeliveryStatus, dict[str, object]]:
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


#: What the ledger records for a message whose handover commit was lost after its final
#: step went out: it may have arrived, so it is never sent again.
_HANDED_OVER: dict[str, object] = {"status": DeliveryStatus.UNCERTAIN,
                "last_error": "the database went away while the message was handed over"}


class _Writer:
    """The handover and the final outcome of each message, for any database.

    A hard kill after the handover's commit and before the backend's final write is the
    one moment the ledger can be wrong (it would call a message uncertain that never
    arrived), so that commit is the last thing done: a plain DB-API statement on a
    connection kept open, nothing from the ORM or the pool after it. A database that
    does not answer raises DatabaseUnavailable; `take_lost` gives the writes it had
    accepted and then lost (none here: every write is waited for).
    """

    def __init__(self, engine: Engine, worker: str) -> None:
        self.engine = engine
        self.worker = worker
        self._raw: Any = None
        mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._sql = (f"UPDATE deliveries SET status = {mark}, message_id = {mark} "
                     f"WHERE id = {mark} AND claimed_by = {mark}")
        self._lost: dict[int, dict[str, object]] = {}

    def connection(self) -> Any:
        if self._raw is None:
            try:
                self._raw = self.engine.raw_connection()
            # raw_connection() lets the driver's own errors through, unwrapped
            except (SQLAlchemyError, self.engine.dialect.loaded_dbapi.Error) as exc:
                raise unavailable(exc) from exc
        return self._raw

    def mark_sending(self, msg: Outgoing) -> None:
        raw = self.connection()
        try:
            cursor = raw.cursor()
            cursor.execute(self._sql, (DeliveryStatus.HANDING_OVER.value, msg.message_id,
                                       msg.delivery_id, self.worker))
            changed = cursor.rowcount
            cursor.close()
            if changed != 1:
                raw.rollback()
                raise _lost(msg)
            raw.commit()
        except self.engine.dialect.loaded_dbapi.Error as exc:
            self.drop()
            raise unavailable(exc) from exc

    def finish(self, delivery_id: int, **values: object) -> None:
        """Records an outcome (guarded by claimed_by), committed."""
        try:
            with self.engine.begin() as conn:
                conn.execute(_outcome(delivery_id, self.worker, values))
        except SQLAlchemyError as exc:
            raise unavailable(exc) from exc

    def settle(self) -> None:
        """Waits for writes sent earlier; they are all done here."""

    def take_lost(self) -> dict[int, dict[str, object]]:
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


def _outcome(delivery_id: int, worker: str, values: dict[str, object]) -> Update:
    """The UPDATE recording `values` on a delivery, if it is still the worker's."""
    return (update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.claimed_by == worker)
            .values(**values))


def _lost(msg: Outgoing) -> ClaimLost:
    return ClaimLost(f"delivery {msg.delivery_id} was taken over by another worker")


class _PgWriter(_Writer):
    """The same on PostgreSQL, where each wait for the server holds up every connection.

    The handover is one round trip: `BEGIN; UPDATE` as one query, whose row count says
    the claim still holds, then a COMMIT sent without waiting for its answer, so that the
    backend's final write follows it at once. (Waiting for that answer, which includes
    the WAL flush, left the kill window open long enough that one kill in two lost a
    message.) An outcome is one query sent without waiting, with `synchronous_commit`
    off: were the database server itself to crash and lose it, the row would be left
    `sending`, so `uncertain`, never sent twice. Answers are read (settle) before the
    next query on the connection. Values are inlined as escaped literals, since only a
    simple query may hold several statements.
    """

    def __init__(self, engine: Engine, worker: str) -> None:
        super().__init__(engine, worker)
        self._waiting = False  # a query was sent whose answers are not read yet
        # The row that query was about, and what to record for it if it is lost.
        self._inflight: tuple[int, dict[str, object]] | None = None
        self._pgconn: Any = None
        self._escaping: Any = None

    def connection(self) -> Any:
        if self._raw is None:
            from psycopg.pq import Escaping  # psycopg is an optional dependency

            raw = super().connection()
            self._pgconn = raw.driver_connection.pgconn
            self._escaping = Escaping(self._pgconn)
        return self._raw

    def mark_sending(self, msg: Outgoing) -> None:
        self.settle()
        self.connection()
        results = self._run(b"BEGIN; UPDATE deliveries SET status = "
                            + self._literal(DeliveryStatus.HANDING_OVER.value)
                            + b", message_id = " + self._literal(msg.message_id)
                            + self._where(msg.delivery_id))
        if results[-1].command_tuples != 1:
            self._run(b"ROLLBACK")
            raise _lost(msg)
        # The message's final step follows at once. Should this COMMIT be lost with the
        # connection, the row is recorded as handed over when the database is back
        # (see LedgerEvents): left `claimed`, it would be sent a second time.
        self._send(b"COMMIT", inflight=(msg.delivery_id, _HANDED_OVER))

    def finish(self, delivery_id: int, **values: object) -> None:
        self.settle()
        self.connection()
        assignments = b", ".join(name.encode() + b" = " + self._literal(value)
                                 for name, value in values.items())
        self._send(b"SET LOCAL synchronous_commit TO off; UPDATE deliveries SET "
                   + assignments + self._where(delivery_id), inflight=(delivery_id, values))

    def settle(self) -> None:
        """Reads the answers to the query sent last. If the connection broke, what that
        query was to write is kept for `take_lost`, and the connection let go."""
        if not self._waiting:
            return
        self._waiting = False
        inflight, self._inflight = self._inflight, None
        try:
            self._results()
        except Exception as exc:  # the connection broke: psycopg's errors, OSError
            log.warning("a ledger write was lost with the connection: %s", exc)
            if inflight is not None:
                self._lost[inflight[0]] = inflight[1]
            self.drop()

    def close(self) -> None:
        if self._raw is not None:
            try:
                self.settle()
            finally:
                super().close()

    def _where(self, delivery_id: int) -> bytes:
        return (b" WHERE id = " + str(int(delivery_id)).encode()
                + b" AND claimed_by = " + self._literal(self.worker))

    def _literal(self, value: object) -> bytes:
        if isinstance(value, dt.datetime):
            value = value.astimezone(dt.UTC).isoformat()
        if not isinstance(value, str):
            raise TypeError(f"no literal for {value!r}")
        # A server's reply could hold a NUL, which no PostgreSQL text may.
        return bytes(self._escaping.escape_literal(value.replace("\0", "").encode()))

    def _send(self, query: bytes, *, inflight: tuple[int, dict[str, object]] | None = None
              ) -> None:
        try:
            self._pgconn.send_query(query)
            while self._pgconn.flush():  # libpq runs non-blocking: 1 while bytes remain
                os_select.select([], [self._pgconn.socket], [])
        except Exception as exc:  # psycopg's OperationalError, OSError: the server is gone
            self.drop()
            raise unavailable(exc) from exc
        self._waiting, self._inflight = True, inflight

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
        while (result := self._pgconn.get_result()) is not None:
            if result.error_message:
                errors.append(result.error_message.decode(errors="replace").strip())
            results.append(result)
        if not results:  # libpq gives no result at all once the connection is gone
            errors.append(self._pgconn.get_error_message().decode(errors="replace").strip()
                          or "the server sent no answer")
        if errors:
            raise _WriteFailed("; ".join(errors))
        return results


class _WriteFailed(Exception):
    """PostgreSQL refused a ledger write."""
