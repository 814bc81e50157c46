from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.errors import InvalidInput
from subscribers.export import EXPORT_COLUMNS, export_csv, export_jsonl
from subscribers.importing import import_csv
from subscribers.lists import create_list
from subscribers.members import add_member, confirm, remove_member
from subscribers.models import MailingList, Membership, Subscriber

LATER = dt.timedelta(days=1)


def members(db: Session, mlist: MailingList) -> dict[str, tuple[object, ...]]:
    """What a list holds about each person, without ids and times."""
    rows = db.execute(
        select(Subscriber.email, Subscriber.name, Membership.status, Subscriber.attributes,
               Subscriber.tags)
        .join(Membership)
        .where(Membership.list_id == mlist.id)
    )
    return {email: tuple(rest) for email, *rest in rows}


@pytest.fixture
def filled(db: Session, mlist: MailingList, now: dt.datetime) -> MailingList:
    """Three members: confirmed with attributes and tags, pending with a name a
    spreadsheet would run, and one who left."""
    ann, _ = add_member(db, mlist, "ann@example.org", name='Ann, "the" First', origin="form",
                        ip="192.0.2.1", now=now)
    assert ann is not None
    confirm(db, ann, now=now + LATER, ip="192.0.2.2")
    ann.subscriber.attributes = {"city": "Lyon", "seats": 3}
    ann.subscriber.tags = ["early", "vip"]
    add_member(db, mlist, "=1+1@example.org", name='=HYPERLINK("http://x")', now=now)
    add_member(db, mlist, "left@example.org", confirmed=True, now=now)
    remove_member(db, mlist, "left@example.org", now=now + 2 * LATER, reason="too much mail")
    db.commit()
    return mlist


def test_csv_has_status_and_consent_columns(db: Session, filled: MailingList) -> None:
    out = io.StringIO()
    assert export_csv(db, filled, out) == 3
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == EXPORT_COLUMNS
    assert rows[0] == {
        "email": "ann@example.org",
        "name": 'Ann, "the" First',
        "status": "confirmed",
        "origin": "form",
        "created_at": "2026-03-01T07:00:00+00:00",
        "created_ip": "192.0.2.1",
        "confirmed_at": "2026-03-02T07:00:00+00:00",
        "confirmed_ip": "192.0.2.2",
        "unsubscribed_at": "",
        "unsubscribe_reason": "",
        "attributes": '{"city": "Lyon", "seats": 3}',
        "tags": '["early", "vip"]',
    }
    # Cells a spreadsheet would run as formulas are defused.
    assert (rows[1]["email"], rows[1]["name"]) == ("'=1+1@example.org", '\'=HYPERLINK("http://x")')
    assert (rows[1]["attributes"], rows[1]["tags"]) == ("", "")
    assert (rows[2]["status"], rows[2]["unsubscribed_at"], rows[2]["unsubscribe_reason"]) == (
        "unsubscribed", "2026-03-03T07:00:00+00:00", "too much mail")


def test_jsonl_has_the_same_keys_with_json_values(db: Session, filled: MailingList) -> None:
    out = io.StringIO()
    assert export_jsonl(db, filled, out) == 3
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [tuple(r) for r in records] == [EXPORT_COLUMNS] * 3
    assert records[0]["attributes"] == {"city": "Lyon", "seats": 3}
    assert records[0]["tags"] == ["early", "vip"]
    assert records[0]["confirmed_at"] == "2026-03-02T07:00:00+00:00"
    # Not a spreadsheet: values as they are; no time is null.
    assert records[1]["name"] == '=HYPERLINK("http://x")'
    assert (records[1]["confirmed_at"], records[1]["attributes"]) == (None, {})
    assert records[2]["unsubscribe_reason"] == "too much mail"


def test_status_filter(db: Session, filled: MailingList) -> None:
    for status, emails in (("confirmed", ["ann@example.org"]),
                           ("pending", ["=1+1@example.org"]),
                           ("unsubscribed", ["left@example.org"])):
        out = io.StringIO()
        assert export_jsonl(db, filled, out, status=status) == 1
        assert [json.loads(line)["email"] for line in out.getvalue().splitlines()] == emails
        out = io.StringIO()
        assert export_csv(db, filled, out, status=status) == 1
    with pytest.raises(InvalidInput, match="status 'gone' is not one of pending, confirmed"):
        export_csv(db, filled, io.StringIO(), status="gone")


def test_round_trip_into_another_list(
    db: Session, filled: MailingList, now: dt.datetime, tmp_path: Path
) -> None:
    """Export, import into another list: the same people with the same statuses (the
    file's status limits --confirmed; who left is not added), names, attributes and
    tags; the bookkeeping columns do not become attributes."""
    path = tmp_path / "export.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        export_csv(db, filled, f)
    copy = create_list(db, "copy", from_addr="c@example.org")
    report = import_csv(db, copy, path, confirmed=True, now=now)
    assert (report.added, report.updated, report.unchanged, report.rejected) == (2, 0, 1, 0)
    expected = members(db, filled)
    del expected["left@example.org"]
    assert members(db, copy) == expected
    again = import_csv(db, copy, path, confirmed=True, now=now + LATER)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 3)
    # Into the list it came from: nothing changes.
    report = import_csv(db, filled, path, confirmed=True, now=now + LATER)
    assert (report.added, report.updated, report.unchanged) == (0, 0, 3)


def test_streams_past_one_batch(
    db: Session, mlist: MailingList, now: dt.datetime, tmp_path: Path
) -> None:
    n = 12_345  # more than two batches of `yield_per`
    path = tmp_path / "many.csv"
    path.write_text("email,city\n" + "".join(f"p{i}@example.org,c{i % 7}\n" for i in range(n)))
    assert import_csv(db, mlist, path, confirmed=True, now=now).added == n
    out = io.StringIO()
    assert export_csv(db, mlist, out) == n
    lines = out.getvalue().splitlines()
    assert len(lines) == n + 1 and lines[-1].startswith(f"p{n - 1}@example.org,")
    out = io.StringIO()
    assert export_jsonl(db, mlist, out, status="confirmed") == n
