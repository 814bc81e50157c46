from __future__ import annotations

import csv
import datetime as dt
import io
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.errors import InvalidInput
from subscribers.csvio import ImportReport, export_csv, import_csv
from subscribers.lists import create_list
from subscribers.members import add_member, remove_member
from subscribers.models import MailingList, Membership, Subscriber
from subscribers.suppress import block_domain, suppress
from tests.subscribers.conftest import CSV


def counts(r: ImportReport) -> tuple[int, int, int, int, int]:
    return (r.added, r.updated, r.unchanged, r.rejected, r.suppressed)


def people(db: Session, mlist: MailingList) -> dict[str, tuple[str, str, dict[str, str]]]:
    rows = db.execute(
        select(Subscriber.email, Subscriber.name, Membership.status, Subscriber.attributes)
        .join(Membership)
        .where(Membership.list_id == mlist.id)
    )
    return {email: (name, status, attrs) for email, name, status, attrs in rows}


def copy(name: str, tmp_path: Path) -> Path:
    return Path(shutil.copy(CSV / name, tmp_path / name))


def write(tmp_path: Path, text: str, name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_mixed_file(db: Session, mlist: MailingList, now: dt.datetime, tmp_path: Path) -> None:
    path = copy("mixed.csv", tmp_path)
    report = import_csv(db, mlist, path, now=now)
    assert counts(report) == (5, 0, 1, 3, 0)
    assert report.rejects_path == tmp_path / "mixed.rejects.csv"
    found = people(db, mlist)
    assert found == {
        "ada@example.org": ("Ada Lovelace", "pending", {"city": "Berlin", "plan": "pro"}),
        "grace@example.org": (
            "Hopper, Grace",
            "pending",
            {"city": "Paris, France", "plan": "free"},
        ),
        "multi@example.org": ("Multi Line", "pending", {"city": "Kyiv"}),
        "用户@例子.广告": ("用户", "pending", {"city": "Tokyo", "plan": "free"}),
        "trail@example.org": ("Commas", "pending", {"city": "Trailing", "plan": "free"}),
    }
    with report.rejects_path.open(encoding="utf-8", newline="") as f:
        rejects = list(csv.DictReader(f))
    assert [(r["line"], r["row"]) for r in rejects] == [
        ("5", "Oslo,Nobody,,free"),
        ("6", "Rome,Broken,not-an-address,free"),
        ("7", "Lima,Too Many,many@example.org,free,surplus"),
    ]
    assert [r["reason"] for r in rejects] == [
        "no email address",
        "'not-an-address' is not a valid email address: An email address must have an @-sign.",
        "row has 5 fields, the header has 4",
    ]


def test_reimport_is_idempotent(
    db: Session, mlist: MailingList, now: dt.datetime, tmp_path: Path
) -> None:
    path = copy("mixed.csv", tmp_path)
    import_csv(db, mlist, path, now=now)
    again = import_csv(db, mlist, path, now=now + dt.timedelta(hours=1))
    assert counts(again) == (0, 0, 6, 3, 0)
    assert db.get_one(Subscriber, 1).updated_at == now


def test_bom(db: Session, mlist: MailingList, now: dt.datetime, tmp_path: Path) -> None:
    report = import_csv(db, mlist, copy("bom.csv", tmp_path), confirmed=True, now=now)
    assert counts(report) == (2, 0, 0, 0, 0) and report.rejects_path is None
    assert people(db, mlist) == {
        "zoe@example.org": ("Zoë", "confirmed", {}),
        "ada@example.org": ("Ada", "confirmed", {}),
    }
    assert not (tmp_path / "bom.rejects.csv").exists()


def test_cp1252_from_excel(
    db: Session, mlist: MailingList, now: dt.datetime, tmp_path: Path
) -> None:
    import_csv(db, mlist, copy("cp1252.csv", tmp_path), now=now)
    names = {e: v[0] for e, v in people(db, mlist).items()}
    assert names == {"rene@example.org": "René Müller", "jurgen@example.org": "Jürgen"}


def test_semicolons_and_header_aliases(
    db: Session, mlist: MailingList, now: dt.datetime, tmp_path: Path
) -> None:
    import_csv(db, mlist, copy("semicolon.csv", tmp_path), now=now)
    assert people(db, mlist) == {"lea@example.org": ("Léa", "pending", {"city": "Lyon"})}


def test_no_email_column_names_what_was_found(
    db: Session, mlist: MailingList, now: dt.datetime, tmp_path: Path
) -> None:
    path = write(tmp_path, "address,who\na@example.org,A\n")
    with pytest.raises(
        InvalidInput, match=r"in\.csv has no 'email' column; its first row has 'address', 'who'"
    ):
        import_csv(db, mlist, path, now=now)
    with pytest.raises(InvalidInput, match="is empty"):
        import_csv(db, mlist, write(tmp_path, "\n\n"), now=now)
    with pytest.raises(InvalidInput, match="column 'email' appears twice"):
        import_csv(db, mlist, write(tmp_path, "email,Email\n"), now=now)


def test_suppressed_rows_are_counted_not_added(
    db: Session, mlist: MailingList, now: dt.datetime, tmp_path: Path
) -> None:
    suppress(db, "bounced@example.org", "hard_bounce", now=now)
    block_domain(db, "spam.example", now=now)
    path = write(tmp_path, "email\nBOUNCED@example.org\nok@example.org\nbot@spam.example\n")
    report = import_csv(db, mlist, path, confirmed=True, now=now)
    assert counts(report) == (1, 0, 0, 0, 2)
    assert set(people(db, mlist)) == {"ok@example.org"}


def test_existing_members_and_the_rules(
    db: Session, mlist: MailingList, now: dt.datetime, tmp_path: Path
) -> None:
    add_member(db, mlist, "pending@example.org", name="P", now=now)
    add_member(db, mlist, "left@example.org", confirmed=True, now=now)
    remove_member(db, mlist, "left@example.org", now=now)
    add_member(db, mlist, "same@example.org", name="Same", confirmed=True, now=now)
    other = create_list(db, "other", from_addr="o@example.org")
    add_member(db, other, "elsewhere@example.org", name="E", now=now)
    db.commit()
    path = write(
        tmp_path,
        (
            "email,name\n"
            "pending@example.org,\n"  # pending -> confirmed: updated
            "left@example.org,\n"  # an import never re-subscribes: unchanged
            "same@example.org,Same\n"  # unchanged
            "elsewhere@example.org,\n"  # known subscriber, new on this list: added
            "new@example.org,New\n"  # added
            "NEW@example.org,Newer\n"  # rows apply in order: updated
        ),
    )
    report = import_csv(db, mlist, path, confirmed=True, now=now, chunk=2)
    assert counts(report) == (2, 2, 2, 0, 0)
    assert {e: v[:2] for e, v in people(db, mlist).items()} == {
        "pending@example.org": ("P", "confirmed"),
        "left@example.org": ("", "unsubscribed"),
        "same@example.org": ("Same", "confirmed"),
        "elsewhere@example.org": ("E", "confirmed"),
        "new@example.org": ("Newer", "confirmed"),
    }


def test_chunks_commit_and_report_progress(
    db: Session, mlist: MailingList, now: dt.datetime, tmp_path: Path
) -> None:
    lines = [f"user{i}@example.org" for i in range(25)] + ["bad", "user3@example.org"]
    path = write(tmp_path, "email\n" + "\n".join(lines) + "\n")
    seen: list[int] = []
    report = import_csv(db, mlist, path, now=now, chunk=10, progress=seen.append)
    assert counts(report) == (25, 0, 1, 1, 0)
    assert sum(seen) == 27 and len(seen) == 3


def test_export_roundtrip(
    db: Session, mlist: MailingList, now: dt.datetime, tmp_path: Path
) -> None:
    add_member(db, mlist, "ann@example.org", name='Ann, "the" First', confirmed=True, now=now)
    add_member(db, mlist, "=1+1@example.org", name='=HYPERLINK("http://x")', now=now)
    add_member(db, mlist, "left@example.org", confirmed=True, now=now)
    remove_member(db, mlist, "left@example.org", now=now + dt.timedelta(days=1))
    out = io.StringIO()
    assert export_csv(db, mlist, out) == 3
    text = out.getvalue()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == [
        "email",
        "name",
        "status",
        "origin",
        "created_at",
        "confirmed_at",
        "unsubscribed_at",
    ]
    assert rows[0] == {
        "email": "ann@example.org",
        "name": 'Ann, "the" First',
        "status": "confirmed",
        "origin": "cli",
        "created_at": "2026-03-01T07:00:00+00:00",
        "confirmed_at": "2026-03-01T07:00:00+00:00",
        "unsubscribed_at": "",
    }
    # Cells a spreadsheet would run as formulas are defused.
    assert (rows[1]["email"], rows[1]["name"]) == ("'=1+1@example.org", '\'=HYPERLINK("http://x")')
    assert rows[2]["status"] == "unsubscribed"

    # Into another list: same people; the file's status limits what --confirmed does,
    # and bookkeeping columns do not become attributes.
    copy_list = create_list(db, "copy", from_addr="c@example.org")
    path = write(tmp_path, text, "export.csv")
    report = import_csv(db, copy_list, path, confirmed=True, now=now)
    assert counts(report) == (2, 0, 1, 0, 0)
    assert people(db, copy_list) == {
        "ann@example.org": ('Ann, "the" First', "confirmed", {}),
        "=1+1@example.org": ('=HYPERLINK("http://x")', "pending", {}),
    }


def test_status_column_values_are_checked(
    db: Session, mlist: MailingList, now: dt.datetime, tmp_path: Path
) -> None:
    path = write(tmp_path, "email,status\na@example.org,maybe\n")
    report = import_csv(db, mlist, path, now=now, rejects_path=tmp_path / "r.csv")
    assert report.rejected == 1 and report.rejects_path == tmp_path / "r.csv"
    assert (
        "status 'maybe' is not pending, confirmed or unsubscribed"
        in (tmp_path / "r.csv").read_text()
    )


def test_unreadable_row_is_rejected_and_the_rest_goes_on(
    db: Session, mlist: MailingList, now: dt.datetime, tmp_path: Path
) -> None:
    huge = "x" * (csv.field_size_limit() + 10)
    path = write(tmp_path, f"email,name\na@example.org,A\nb@example.org,{huge}\nc@example.org,C\n")
    report = import_csv(db, mlist, path, now=now)
    assert report.rejected == 1
    assert "unreadable CSV" in (tmp_path / "in.rejects.csv").read_text()
    assert {"a@example.org", "c@example.org"} <= set(people(db, mlist))
