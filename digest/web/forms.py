"""Handling a form that changes something, for every part of the site: its body read
with a size cap (`read_body`), and its work done in one transaction that is run once
more when a concurrent request conflicts with it (`in_transaction`), so a double click
or a mail provider's retry changes things once and fails nobody.

A database that stays busy past `[database] timeout` (no connection free, SQLite's
write lock taken all along) is not waited for twice: the error goes up, and the web
app and the API answer it 503 with `Retry-After: BUSY_RETRY_AFTER`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from fastapi import HTTPException, Request
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from digest.app import App
from digest.db import lock_wait_ran_out, reason

log = logging.getLogger(__name__)
T = TypeVar("T")

# An RFC 8058 body is 26 bytes; the few fields of the public forms fit easily.
MAX_BODY = 16 * 1024
#: Seconds a client is asked to wait (Retry-After) when the database was too busy.
BUSY_RETRY_AFTER = 5


def in_transaction(app: App, work: Callable[[Session], T]) -> T:
    """`work` in a transaction, committed. Run once more when a concurrent request (a
    double click, a provider retrying) made it conflict: the second run sees the first's
    result and changes nothing. Not when SQLite's write lock stayed taken for the whole
    busy timeout: that error goes up (503) rather than waiting as long again."""
    try:
        return _commit(app, work)
    except (IntegrityError, OperationalError) as exc:
        if lock_wait_ran_out(exc):
            raise
        # One line: a conflict is expected under load, not a bug worth a traceback.
        log.info("retrying after a conflicting concurrent request: %s", reason(exc))
        return _commit(app, work)


def _commit(app: App, work: Callable[[Session], T]) -> T:
    with app.sessions() as s:
        result = work(s)
        s.commit()
        return result


async def read_body(request: Request) -> bytes:
    """The request's body, refused with 413 once it passes MAX_BODY (read in chunks, so
    an oversized body is never held whole)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise HTTPException(413)
        chunks.append(chunk)
    return b"".join(chunks)
