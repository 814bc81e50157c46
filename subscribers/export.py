"""Export of a list's members with their consent record, as CSV or JSON Lines.

Both stream: rows come from the database in batches (`yield_per`) and go straight to
the file, so a million members cost no more memory than a thousand. The CSV is made to
be opened in a spreadsheet and imported back (`importing.import_csv` reads it, keeping
attributes and tags and ignoring the bookkeeping columns); JSON Lines is for programs.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any, TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from subscribers.members import check_status
from subscribers.models import MailingList, Membership, Subscriber

# The columns of both formats, in order: who, where they stand, and the consent record.
EXPORT_COLUMNS = ("email", "name", "status", "origin", "created_at", "created_ip",
                  "confirmed_at", "confirmed_ip", "unsubscribed_at", "unsubscribe_reason",
                  "attributes", "tags")
SUBSCRIBER_COLUMNS = ("email", "name", "attributes", "tags")
# Spreadsheets run a cell starting with one of these as a formula: the CSV prefixes "'".
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
BATCH = 5000


def export_csv(s: Session, mlist: MailingList, out: TextIO, *,
               status: str | None = None) -> int:
    """Write the members of `mlist` (of one `status`, or all) as CSV; the number of rows.

    Attributes and tags are JSON in their cells (`{"city": "Lyon"}`, `["vip"]`).
    """
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    n = 0
    for row in _rows(s, mlist, status):
        writer.writerow([_cell(value) for value in row])
        n += 1
    return n


def export_jsonl(s: Session, mlist: MailingList, out: TextIO, *,
                 status: str | None = None) -> int:
    """Write the members of `mlist` (of one `status`, or all) as JSON Lines: one object
    per member with the CSV's keys, times in ISO 8601 or null; the number of lines."""
    n = 0
    for row in _rows(s, mlist, status):
        record = {key: _json_value(value) for key, value in zip(EXPORT_COLUMNS, row, strict=True)}
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        n += 1
    return n


def _rows(s: Session, mlist: MailingList, status: str | None) -> Iterator[Any]:
    columns = [getattr(Subscriber if c in SUBSCRIBER_COLUMNS else Membership, c)
               for c in EXPORT_COLUMNS]
    stmt = (
        select(*columns)
        .join(Subscriber, Subscriber.id == Membership.subscriber_id)
        .where(Membership.list_id == mlist.id)
        .order_by(Membership.id)
        .execution_options(yield_per=BATCH)
    )
    if status is not None:
        stmt = stmt.where(Membership.status == check_status(status))
    yield from s.execute(stmt)


def _cell(value: Any) -> str:
    """A value as a CSV cell, safe to open in a spreadsheet."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        text = value.isoformat()
    elif isinstance(value, dict | list):
        text = json.dumps(value, ensure_ascii=False) if value else ""
    else:
        text = str(value)
    return spreadsheet_safe(text)


def spreadsheet_safe(text: str) -> str:
    """`text` as a CSV cell a spreadsheet shows as text: a leading "'" when it would
    start a formula. Every CSV the project writes for people passes its cells here."""
    return "'" + text if text.startswith(FORMULA_START) else text


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime) else value


def unescape(text: str) -> str:
    """Undo `spreadsheet_safe`, so an export imports back as it was."""
    return text[1:] if text.startswith("'") and text[1:].startswith(FORMULA_START) else text
