"""A web request's deadline for its waits: for a worker thread and for the database
together, `[database] timeout` at most (issue 9, finding 6).

The wait for a thread (anyio's limiter, `[web] threads`) has no timeout of its own, and
the database's waits (SQLite's write lock) start afresh when a thread is obtained: 130
sign-ups while another process held the write lock, with 40 threads, were answered 503
after 30, 60 and 70 s, past a proxy's 60 s. The web app gives each request a `Deadline`
(`digest.web.app.RequestDeadline`, through the context variable `DEADLINE`, which
anyio copies into the worker thread); the engine's `begin` listener reads it:

- a request's first transaction, begun past the deadline, is refused at once with
  `DeadlinePassed` (a `sqlalchemy.exc.TimeoutError`, answered 503 with Retry-After):
  the request has done nothing yet but wait;
- on SQLite, a transaction waits for the write lock only until the deadline, and at
  least LATE_WAIT once the request is at work (its earlier transactions done: a refusal
  for a lock held a moment would undo work already in hand for little gain).

Commands and `digest serve`'s own threads have no deadline: `[database] timeout` alone.
The web app installs the listener on its engine (`bound_waits`); this module imports
nothing of the project.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, event
from sqlalchemy import exc as sa_exc

#: The least a transaction of a request already at work waits for SQLite's write lock.
LATE_WAIT = 1.0


@dataclass
class Deadline:
    """When (time.monotonic()) a request's waits must end; mutable, so that the web app
    can move it on by the time the client took to send its body."""

    at: float
    began: bool = False  # whether the request has begun a transaction yet


DEADLINE: ContextVar[Deadline | None] = ContextVar("digest_deadline", default=None)


class DeadlinePassed(sa_exc.TimeoutError):
    """A request reached its first transaction after its deadline."""


def bound_waits(engine: Engine, timeout: float) -> None:
    """Have every transaction of `engine` begun for a request keep to its deadline."""
    sqlite = engine.dialect.name == "sqlite"

    def begin(conn: Connection) -> None:
        wait = _wait(timeout)
        if sqlite:
            _busy_timeout(conn, round(wait * 1000), round(timeout * 1000))

    event.listen(engine, "begin", begin)


def _wait(timeout: float) -> float:
    """How long this transaction may wait for the database: `timeout` outside a
    request; within one, what is left of it (refused when nothing is, at the first)."""
    deadline = DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline.at - time.monotonic()
    if left <= 0 and not deadline.began:
        raise DeadlinePassed(f"waited [database] timeout ({timeout:g} s) for a thread "
                             "before any database work")
    deadline.began = True
    return min(timeout, max(left, LATE_WAIT))


def _busy_timeout(conn: Connection, ms: int, default_ms: int) -> None:
    """Set SQLite's busy timeout to `ms` on `conn`, when it is not that already (the
    pragma set at connect is `default_ms`)."""
    info = conn.info  # the DBAPI connection's own, kept from one checkout to the next
    if info.get("busy_ms", default_ms) == ms:
        return
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(f"PRAGMA busy_timeout={int(ms)}")
    finally:
        cursor.close()
    info["busy_ms"] = ms
