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
from typing import Any

from sqlalchemy import Engine, select, update

from digest.deliver.backends.base import ClaimLost, SendResult
from digest.deliver.ledger import Clock, RetryPolicy
from digest.deliver.message import Outgoing
from digest.models import Delivery, DeliveryStatus

log = logging.getLogger(__name__)


class LedgerEvents:
    """The backend's reports, written to the ledger as they come, one transaction each.

    Backends call these from one thread. Every update is guarded by `claimed_by`, so a
    worker whose lease was lost and taken over cannot overwrite the new owner's record.
    With `edition_id` and `lease_seconds`, the worker's claims on the edition are renewed
    every third of a lease while messages keep settling.
    """

    def __init__(self, engine: Engine, worker: str, policy: RetryPolicy, clock: Clock, *,
                 edition_id: int | None = None, lease_seconds: int = 0) -> None:
        self.engine = engine
        self.worker = worker
        self.policy = policy
        self.clock = clock
        self.counts: dict[str, int] = {
            DeliveryStatus.DELIVERED: 0, DeliveryStatus.FAILED: 0, DeliveryStatus.UNCERTAIN: 0,
            "deferred": 0}
        pg = engine.dialect.driver == "psycopg"
        self._writer: _Writer = _PgWriter(engine, worker) if pg else _Writer(engine, worker)
        self._edition_id = edition_id
        self._lease = lease_seconds
        self._renew_at = time.monotonic() + lease_seconds / 3

    def close(self) -> None:
        self._writer.close()

    def handing_over(self, msg: Outgoing) -> None:
        """Commit `sending` for the message; the backend then writes the final step.
        Raises ClaimLost if the row is no longer this worker's."""
        self._writer.mark_sending(msg)

    def done(self, result: SendResult) -> None:
        now = self.clock()
        if self._lease and self._edition_id is not None and time.monotonic() >= self._renew_at:
            self._renew(now)
        if result.status == "sent":
            self._writer.finish(result.delivery_id, status=DeliveryStatus.DELIVERED,
                                sent_at=now, last_error="")
            self.counts[DeliveryStatus.DELIVERED] += 1
        elif result.status == "failed":
            self._writer.finish(result.delivery_id, status=DeliveryStatus.FAILED,
                                last_error=result.detail)
            self.counts[DeliveryStatus.FAILED] += 1
        elif result.status == "uncertain":
            self._writer.finish(result.delivery_id, status=DeliveryStatus.UNCERTAIN,
                                last_error=result.detail)
            self.counts[DeliveryStatus.UNCERTAIN] += 1
        else:
            status = self._defer(result, now)
            self.counts[DeliveryStatus.FAILED if status == DeliveryStatus.FAILED
                        else "deferred"] += 1

    def _renew(self, now: dt.datetime) -> None:
        self._writer.settle()
        self._renew_at = time.monotonic() + self._lease / 3
        with self.engine.begin() as conn:
            conn.execute(
                update(Delivery)
                .where(Delivery.edition_id == self._edition_id,
                       Delivery.status.in_((DeliveryStatus.CLAIMED, DeliveryStatus.HANDING_OVER)),
                       Delivery.claimed_by == self.worker)
                .values(lease_until=now + dt.timedelta(seconds=self._lease))
            )

    def _defer(self, result: SendResult, now: dt.datetime) -> DeliveryStatus:
        """Queue the row again with backoff, or fail it after max_attempts; the status."""
        self._writer.settle()  # the row's `sending` is committed first
        with self.engine.begin() as conn:
            attempts = conn.scalar(
                select(Delivery.attempts).where(Delivery.id == result.delivery_id)
            ) or 0
            attempts += 1
            if attempts >= self.policy.max_attempts:
                status = DeliveryStatus.FAILED
                values: dict[str, object] = {
                    "status": status, "attempts": attempts,
                    "last_error": f"gave up after {attempts} attempts: {result.detail}",
                }
            else:
                status = DeliveryStatus.QUEUED
                values = {
                    "status": status, "attempts": attempts, "claimed_by": "",
                    "lease_until": None, "last_error": result.detail,
                    "next_attempt_at": self.policy.next_attempt(attempts, now),
                }
            conn.execute(
                update(Delivery)
                .where(Delivery.id == result.delivery_id, Delivery.claimed_by == self.worker)
                .values(**values)
            )
        return status


class _Writer:
    """The handover and the final outcome of each message, for any database.

    A hard kill after the handover's commit and before the backend's final write is the
    one moment the ledger can be wrong (it would call a message uncertain that never
    arrived), so that commit is the last thing done: a plain DB-API statement on a
    connection kept open, nothing from the ORM or the pool after it.
    """

    def __init__(self, engine: Engine, worker: str) -> None:
        self.engine = engine
        self.worker = worker
        self._raw: Any = None
        mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._sql = (f"UPDATE deliveries SET status = {mark}, message_id = {mark} "
                     f"WHERE id = {mark} AND claimed_by = {mark}")

    def connection(self) -> Any:
        if self._raw is None:
            self._raw = self.engine.raw_connection()
        return self._raw

    def mark_sending(self, msg: Outgoing) -> None:
        raw = self.connection()
        cursor = raw.cursor()
        cursor.execute(self._sql, (DeliveryStatus.HANDING_OVER.value, msg.message_id,
                                   msg.delivery_id, self.worker))
        changed = cursor.rowcount
        cursor.close()
        if changed != 1:
            raw.rollback()
            raise _lost(msg)
        raw.commit()

    def finish(self, delivery_id: int, **values: object) -> None:
        """Records an outcome (guarded by claimed_by), committed."""
        with self.engine.begin() as conn:
            conn.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id, Delivery.claimed_by == self.worker)
                .values(**values)
            )

    def settle(self) -> None:
        """Waits for writes sent earlier; they are all done here."""

    def close(self) -> None:
        if self._raw is not None:
            raw, self._raw = self._raw, None
            raw.close()


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
        self._send(b"COMMIT")

    def finish(self, delivery_id: int, **values: object) -> None:
        self.settle()
        self.connection()
        assignments = b", ".join(name.encode() + b" = " + self._literal(value)
                                 for name, value in values.items())
        self._send(b"SET LOCAL synchronous_commit TO off; UPDATE deliveries SET "
                   + assignments + self._where(delivery_id))

    def settle(self) -> None:
        """Reads the answers to the query sent last; a failure is logged, and costs the
        record of one message at most (its row stays `sending`: uncertain later)."""
        if not self._waiting:
            return
        self._waiting = False
        try:
            self._results()
        except Exception as exc:  # the connection broke: psycopg's errors, OSError
            log.warning("a ledger write failed: %s", exc)
            self.close()

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

    def _send(self, query: bytes) -> None:
        self._pgconn.send_query(query)
        while self._pgconn.flush():  # psycopg runs libpq non-blocking: 1 while bytes remain
            os_select.select([], [self._pgconn.socket], [])
        self._waiting = True

    def _run(self, query: bytes) -> list[Any]:
        """Sends `query` and waits for its answers; on failure the connection is let go
        (it may be inside an aborted transaction)."""
        self._send(query)
        self._waiting = False
        try:
            return self._results()
        except BaseException:
            super().close()
            raise

    def _results(self) -> list[Any]:
        """Every answer to the query sent last (all must be read), or _WriteFailed."""
        results, errors = [], []
        while (result := self._pgconn.get_result()) is not None:
            if result.error_message:
                errors.append(result.error_message.decode(errors="replace").strip())
            results.append(result)
        if errors:
            raise _WriteFailed("; ".join(errors))
        return results


class _WriteFailed(Exception):
    """PostgreSQL refused a ledger write."""
