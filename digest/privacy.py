"""Everything stored about a person, to show them (a GDPR export) or to erase
(`forget`): the people layer's records (`subscribers.people`) and the delivery ledger's;
`forget` also takes them out of the rejects files of console imports and the outbox,
whether or not they were ever a subscriber.

The CLI, the console and the API call these, never `subscribers.people.person_data` or
`forget` directly, so an export is whole and an erasure leaves no address behind in an
error text the ledger kept or a rejected row of an import.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
from pathlib import Path
from typing import Any

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from digest.deliver.backends import outbox
from digest.errors import NotFound
from digest.models import Delivery
from subscribers import people, rejects
from subscribers.models import ImportJob, ImportStatus
from subscribers.people import ForgetReport

log = logging.getLogger(__name__)


def person_data(s: Session, email: str) -> dict[str, Any]:
    """`subscribers.people.person_data` and `deliveries`: how many were made to the
    person, in total and per status."""
    data = people.person_data(s, email)
    subscriber = data["subscriber"]
    by_status: dict[str, int] = {}
    if subscriber is not None:
        rows = s.execute(
            select(Delivery.status, func.count())
            .where(Delivery.subscriber_id == subscriber["id"])
            .group_by(Delivery.status)
            .order_by(Delivery.status)
        )
        by_status = {status: n for status, n in rows}
    data["deliveries"] = {"total": sum(by_status.values()), "by_status": by_status}
    return data


def forget(s: Session, email: str, *, now: dt.datetime, imports_dir: Path | None,
           outbox_dir: Path | None = None) -> ForgetReport:
    """Erase the person at `email` wherever digest keeps them, a subscriber or not:

    - every rejects file in `imports_dir` (`digest.imports.imports_dir`; None only where
      no import ever ran, as in tests of the database alone) is rewritten without the
      rows naming them, but for those of imports running now: their files are the
      import's until it ends (its upload is deleted then), and the report counts them;
    - the messages to them in the outbox Maildir `outbox_dir` are deleted;
    - `subscribers.people.forget`, and the error text of every delivery to them erased
      (a bounce often quotes the address); the ledger rows stay, so past editions still
      add up. An address found only in those files (a rejected row of an import) is
      suppressed too, as a hash, like any forgotten address.

    NotFound only when nothing at all names the address: no subscriber, no suppression,
    no row, no message. The files are changed before the caller commits; a failed commit
    leaves the person stored and their files clean, and forget can simply be run again."""
    pattern = rejects.naming(email)
    rows, running = _erase_rejects(s, pattern, imports_dir)
    messages = 0
    if outbox_dir is not None and outbox_dir.is_dir():
        messages = outbox.erase_to(outbox_dir, pattern)
    if rows or messages:
        log.info("forget: %d rows taken out of the rejects files in %s, %d messages out "
                 "of the outbox", rows, imports_dir, messages)
    try:
        report = people.forget(s, email, now=now, found_elsewhere=bool(rows or messages))
    except NotFound as exc:
        wait = (f"; {running} imports are running, whose files are left to them: run "
                "this again when they have ended" if running else "")
        raise NotFound(f"{exc}, and no rejects file of a console import or message in "
                       f"the outbox names it{wait}") from None
    if report.subscriber_id is not None:
        erased: CursorResult[Any] = s.execute(  # type: ignore[assignment]
            update(Delivery).where(Delivery.subscriber_id == report.subscriber_id)
            .values(last_error="")
        )
        report = dataclasses.replace(report, deliveries=erased.rowcount)
    return dataclasses.replace(report, rejected_rows=rows, running_imports=running,
                               outbox_messages=messages)


def _erase_rejects(s: Session, pattern: re.Pattern[str], imports_dir: Path | None
                   ) -> tuple[int, int]:
    """The rows matching `pattern` taken out of the rejects files of `imports_dir` but
    those of running imports: how many rows went, how many imports are running."""
    if imports_dir is None or not imports_dir.is_dir():
        return 0, 0
    running = list(s.scalars(select(ImportJob.path).where(
        ImportJob.status.in_((ImportStatus.QUEUED, ImportStatus.RUNNING)))))
    busy = {rejects.rejects_of(Path(path)).name for path in running}
    rows = 0
    for path in sorted(imports_dir.glob("*.rejects.csv")):
        if path.name not in busy and path.is_file() and not path.is_symlink():
            try:
                rows += rejects.erase(path, pattern)
            except FileNotFoundError:  # purged meanwhile
                continue
    return rows, len(running)
