"""Everything stored about a person, to show them (a GDPR export) or to erase
(`forget`): the people layer's records (`subscribers.people`) and the delivery ledger's.

The CLI, the console and the API call these, never `subscribers.people.person_data` or
`forget` directly, so an export is whole and an erasure leaves no address behind in an
error text the ledger kept.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from digest.models import Delivery
from subscribers import people
from subscribers.people import ForgetReport


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


def forget(s: Session, email: str, *, now: dt.datetime) -> ForgetReport:
    """`subscribers.people.forget`, and the error text of every delivery to the person
    erased (a bounce often quotes the address); the ledger rows stay, so past editions
    still add up."""
    report = people.forget(s, email, now=now)
    if report.subscriber_id is None:
        return report
    erased: CursorResult[Any] = s.execute(  # type: ignore[assignment]
        update(Delivery).where(Delivery.subscriber_id == report.subscriber_id)
        .values(last_error="")
    )
    return dataclasses.replace(report, deliveries=erased.rowcount)
