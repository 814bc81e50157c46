"""Everything stored about a person, to show them (a GDPR export) or to erase
(`forget`): the people layer's records (`subscribers.people`) and the delivery ledger's;
`forget` also takes them out of the rejects files of console imports.

The CLI, the console and the API call these, never `subscribers.people.person_data` or
`forget` directly, so an export is whole and an erasure leaves no address behind in an
error text the ledger kept or a rejected row of an import.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from pathlib import Path
from typing import Any

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

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


def forget(s: Session, email: str, *, now: dt.datetime,
           imports_dir: Path | None) -> ForgetReport:
    """`subscribers.people.forget`, and the error text of every delivery to the person
    erased (a bounce often quotes the address); the ledger rows stay, so past editions
    still add up. Then every rejects file in `imports_dir` (`digest.imports.imports_dir`;
    None only where no import ever ran, as in tests of the database alone) is rewritten
    without the rows naming them, but for those of imports running now: their files are
    the import's until it ends (its upload is deleted then), and the report counts them.
    The files are rewritten before the caller commits; a failed commit leaves the
    person stored and their rejected rows gone, and forget can simply be run again."""
    report = people.forget(s, email, now=now)
    if report.subscriber_id is not None:
        erased: CursorResult[Any] = s.execute(  # type: ignore[assignment]
            update(Delivery).where(Delivery.subscriber_id == report.subscriber_id)
            .values(last_error="")
        )
        report = dataclasses.replace(report, deliveries=erased.rowcount)
    if imports_dir is None or not imports_dir.is_dir():
        return report
    running = list(s.scalars(select(ImportJob.path).where(
        ImportJob.status.in_((ImportStatus.QUEUED, ImportStatus.RUNNING)))))
    busy = {rejects.rejects_of(Path(path)).name for path in running}
    rows = 0
    for path in sorted(imports_dir.glob("*.rejects.csv")):
        if path.name not in busy and path.is_file() and not path.is_symlink():
            try:
                rows += rejects.erase(path, email)
            except FileNotFoundError:  # purged meanwhile
                continue
    if rows:
        log.info("forget: %d rows taken out of the rejects files in %s", rows, imports_dir)
    return dataclasses.replace(report, rejected_rows=rows, running_imports=len(running))
