"""Sender heartbeats: each running sender has a row in `senders` (host, pid, backend,
when it started, its last heartbeat, what it has written to the ledger since), renewed
every `[delivery] heartbeat_seconds` by a thread of its own, also while it has nothing to
send, and removed when it stops cleanly.

A thread rather than the send loop, so that a long batch (a slow server, a low rate
limit) does not look like a dead sender; the thread runs only while the loop does
(`digest.sender.run_worker`), so a loop that ended stops beating. /healthz fails when
no sender has beaten for `[delivery] heartbeat_timeout`; `digest status` and /metrics
list the rows. Times come from the App's clock, so tests move them by hand.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from digest.files import process_alive
from digest.models import SenderBeat

log = logging.getLogger(__name__)

#: What a sender counts, as `LedgerEvents` names its outcomes: "sent", "failed",
#: "uncertain", "deferred" (a temporary failure queued again).
OUTCOMES = ("sent", "failed", "deferred", "uncertain")
#: A row silent this long is deleted by the next sender that starts: its process died
#: long ago (on this host, a dead pid is deleted at once).
FORGET_AFTER = dt.timedelta(days=1)


@dataclass(frozen=True)
class SenderInfo:
    """One row of `senders`, with its age at the time asked."""

    host: str
    pid: int
    backend: str
    started_at: dt.datetime
    beat_at: dt.datetime
    age_seconds: float
    counts: dict[str, int]


def new_tally() -> Counter[str]:
    """The counts a sender keeps; every key present from the start, so that the
    heartbeat thread can copy it while the sender adds to it."""
    return Counter(dict.fromkeys(OUTCOMES, 0))


def senders(s: Session, now: dt.datetime) -> list[SenderInfo]:
    """Every sender row, freshest first."""
    rows = s.scalars(select(SenderBeat).order_by(SenderBeat.beat_at.desc())).all()
    return [SenderInfo(r.host, r.pid, r.backend, r.started_at, r.beat_at,
                       max((now - r.beat_at).total_seconds(), 0.0),
                       {k: getattr(r, k) for k in OUTCOMES}) for r in rows]


def last_beat(s: Session) -> dt.datetime | None:
    """The newest heartbeat of any sender (one indexed lookup), or None."""
    return s.scalar(select(SenderBeat.beat_at).order_by(SenderBeat.beat_at.desc()).limit(1))


def silence(s: Session, now: dt.datetime, timeout: float) -> str | None:
    """None while some sender has beaten within `timeout` seconds; else what /healthz
    says."""
    last = last_beat(s)
    if last is None:
        return "no sender is running (no digest worker, no sender thread of digest serve)"
    age = (now - last).total_seconds()
    if age > timeout:
        return (f"no sender has reported for {age:.0f} s (the last at "
                f"{last:%Y-%m-%d %H:%M:%S} UTC; [delivery] heartbeat_timeout is "
                f"{timeout:g} s)")
    return None


class Heartbeat:
    """A sender's row, renewed every `interval` seconds by a daemon thread until `stop`.

    `tally` is the sender's count of outcomes, written with each beat. A beat that
    fails (the database away) is logged and tried again at the next; a row deleted
    meanwhile (by hand) is made again."""

    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], dt.datetime],
                 backend: str, tally: Counter[str], *, interval: float) -> None:
        self.sessions, self.clock, self.backend, self.tally = sessions, clock, backend, tally
        self.interval = interval
        self.row_id: int | None = None
        self._started = clock()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="digest-heartbeat",
                                        daemon=True)

    def start(self) -> None:
        """Write the row now (a caller sees it at once), then beat in the thread."""
        self._beat()
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and delete the row (a clean stop)."""
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join(self.interval + 5)
        if self.row_id is None:
            return
        try:
            with self.sessions() as s:
                s.execute(delete(SenderBeat).where(SenderBeat.id == self.row_id))
                s.commit()
        except SQLAlchemyError as exc:  # it ages out; the next sender deletes it
            log.warning("could not delete this sender's heartbeat row: %s", exc)

    def _run(self) -> None:
        while not self._halt.wait(self.interval):
            self._beat()

    def _beat(self) -> None:
        now = self.clock()
        counts = {k: self.tally[k] for k in OUTCOMES}
        try:
            with self.sessions() as s:
                if self.row_id is not None:
                    renewed: CursorResult[Any] = s.execute(  # type: ignore[assignment]
                        update(SenderBeat).where(SenderBeat.id == self.row_id)
                        .values(beat_at=now, **counts))
                    if renewed.rowcount:
                        s.commit()
                        return
                if self.row_id is None:
                    _forget_dead(s, now)
                row = SenderBeat(host=socket.gethostname(), pid=os.getpid(),
                                 backend=self.backend, started_at=self._started,
                                 beat_at=now, **counts)
                s.add(row)
                s.commit()
                self.row_id = row.id
        except SQLAlchemyError as exc:
            log.warning("sender heartbeat not written: %s", exc)


def _forget_dead(s: Session, now: dt.datetime) -> None:
    """Delete the rows of senders that are gone: dead pids on this host, and any row
    silent for FORGET_AFTER."""
    host = socket.gethostname()
    dead = [r.id for r in s.scalars(select(SenderBeat).where(SenderBeat.host == host))
            if not process_alive(r.pid)]
    s.execute(delete(SenderBeat).where(
        (SenderBeat.id.in_(dead)) | (SenderBeat.beat_at < now - FORGET_AFTER)))
