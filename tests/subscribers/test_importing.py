from __future__ import annotations

import csv
import datetime as dt
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from digest.db import make_engine
from digest.errors import InvalidInput
from digest.privacy import forget
from subscribers.importing import PAD, ImportReport, _Bulk, _padded, import_csv
from subscribers.lists import create_list
from subscribers.members import add_member, remove_member, unsubscribe_all
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


def rejects_of(path: Path) -> list[tuple[int, str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return [(int(r["line"]), r["row"], r["reason"]) for r in csv.DictReader(f)]


def test_every_rejects_reason(
    db: Session, mlist: MailingList, now: dt.datetime, tmp_path: Path
) -> None:
    huge = "x" * (csv.field_size_limit() + 1)
    path = write(tmp_path, (
        "email,name,status,tags,attributes\n"
        "ok@example.org,Ok,,,\n"
        ",No Address,,,\n"
        "not-an-address,Bad,,,\n"
        "two..dots@example.org,Bad,,,\n"
        "a@localhost,Bad,,,\n"
        "wide@example.org,Wide,,,,surplus\n"
        "maybe@example.org,Maybe,maybe,,\n"
        'json@example.org,Json,,,"{""unclosed"": 1"\n'
        'list@example.org,List,,,"[1, 2]"\n'
        'tags@example.org,Tags,,"[1, 2]",\n'
        "word@example.org,Word,,two words,\n"
        f"huge@example.org,{huge},,,\n"
        "last@example.org,Last,,,\n"
    ))
    report = import_csv(db, mlist, path, now=now)
    assert counts(report) == (2, 0, 0, 11, 0)
    assert set(people(db, mlist)) == {"ok@example.org", "last@example.org"}
    assert report.rejects_path is not None
    rejects = rejects_of(report.rejects_path)
    assert [(line, row) for line, row, _ in rejects][:10] == [
        (3, ",No Address,,,"),
        (4, "not-an-address,Bad,,,"),
        (5, "two..dots@example.org,Bad,,,"),
        (6, "a@localhost,Bad,,,"),
        (7, "wide@example.org,Wide,,,,surplus"),
        (8, "maybe@example.org,Maybe,maybe,,"),
        (9, 'json@example.org,Json,,,"{""unclosed"": 1"'),
        (10, 'list@example.org,List,,,"[1, 2]"'),
        (11, 'tags@example.org,Tags,,"[1, 2]",'),
        (12, "word@example.org,Word,,two words,"),
    ]
    assert rejects[10][:2] == (13, "")  # the reader gave up on the row: no fields to show
    assert [reason for _, _, reason in rejects] == [
        "no email address",
        "'not-an-address' is not a valid email address: An email address must have an @-sign.",
        "'two..dots@example.org' is not a valid email address: "
        "An email address cannot have two periods in a row.",
        "'a@localhost' is not a valid email address: "
        "The part after the @-sign is not valid. It should have a period.",
        "row has 6 fields, the header has 5",
        "status 'maybe' is not pending, confirmed or unsubscribed",
        """attributes '{"unclosed": 1' is not a JSON object like {"city": "Lyon"}""",
        """attributes '[1, 2]' is not a JSON object like {"city": "Lyon"}""",
        "tags '[1, 2]' is not a JSON list of words",
        "tag 'two words' is not usable: use one word of 1-64 letters, digits and '_', '-', "
        "'.', ':', '/' or '+', e.g. vip or source:fair-2026",
        f"unreadable CSV: field larger than field limit ({csv.field_size_limit()})",
    ]


def test_utf16_from_excel(
    db: Session, mlist: MailingList, now: dt.datetime, tmp_path: Path
) -> None:
    path = tmp_path / "unicode.csv"
    path.write_text("email\tname\nzoe@example.org\tZoë\n", encoding="utf-16")
    import_csv(db, mlist, path, now=now)
    assert people(db, mlist) == {"zoe@example.org": ("Zoë", "pending", {})}


def test_internationalized_addresses(
    db: Session, mlist: MailingList, now: dt.datetime, tmp_path: Path
) -> None:
    """Punycode and Unicode domains, upper and lower case, are one subscriber each."""
    report = import_csv(db, mlist, copy("idn.csv", tmp_path), now=now)
    assert counts(report) == (3, 0, 3, 0, 0)
    assert {e: v[0] for e, v in people(db, mlist).items()} == {
        "user@bücher.de": "Bücher Fan",
        "josé@example.org": "José",
        "用户@例子.广告": "用户",
    }
    again = import_csv(db, mlist, copy("idn.csv", tmp_path), now=now)
    assert counts(again) == (0, 0, 6, 0, 0)


def test_reimport_with_changes_updates_in_place(
    db: Session, mlist: MailingList, now: dt.datetime, tmp_path: Path
) -> None:
    import_csv(db, mlist, write(tmp_path, "email,name,city\na@example.org,A,Lyon\n"), now=now)
    path = write(tmp_path, "email,name,city,plan\nA@example.org,,,pro\nb@example.org,B,,\n")
    report = import_csv(db, mlist, path, confirmed=True, now=now + dt.timedelta(hours=1))
    assert counts(report) == (1, 1, 0, 0, 0)
    assert people(db, mlist) == {
        "a@example.org": ("A", "confirmed", {"city": "Lyon", "plan": "pro"}),
        "b@example.org": ("B", "confirmed", {}),
    }
    assert db.execute(select(func.count()).select_from(Subscriber)).scalar() == 2


def test_tags_and_attributes_columns(
    db: Session, mlist: MailingList, now: dt.datetime, tmp_path: Path
) -> None:
    path = write(tmp_path, (
        "email,tags,attributes,city\n"
        'a@example.org,"VIP, early","{""plan"": ""pro"", ""seats"": 3}",Lyon\n'
        'b@example.org,"[""fair:2026""]",,\n'
    ))
    assert counts(import_csv(db, mlist, path, now=now)) == (2, 0, 0, 0, 0)
    stored = {e: (t, a) for e, t, a in db.execute(
        select(Subscriber.email, Subscriber.tags, Subscriber.attributes))}
    assert stored == {
        "a@example.org": (["early", "vip"], {"plan": "pro", "seats": 3, "city": "Lyon"}),
        "b@example.org": (["fair:2026"], {}),
    }
    # Tags are added to what is stored, never taken away.
    path = write(tmp_path, "email,tags\na@example.org,press\nb@example.org,fair:2026\n")
    assert counts(import_csv(db, mlist, path, now=now)) == (0, 1, 1, 0, 0)
    tags = {e: t for e, t in db.execute(select(Subscriber.email, Subscriber.tags))}
    assert tags == {"a@example.org": ["early", "press", "vip"], "b@example.org": ["fair:2026"]}


def test_suppression_survives_reimport(
    db: Session, mlist: MailingList, now: dt.datetime, tmp_path: Path
) -> None:
    """Bounced, left all mail, forgotten: a re-import brings none of them back and says
    "suppressed" for each, every time."""
    who = ("stay", "bounced", "left", "gone")
    path = write(tmp_path, "email,name\n" + "".join(f"{w}@example.org,{w}\n" for w in who))
    assert counts(import_csv(db, mlist, path, now=now)) == (4, 0, 0, 0, 0)
    suppress(db, "bounced@example.org", "hard_bounce", now=now)
    unsubscribe_all(db, "left@example.org", now=now)
    forget(db, "gone@example.org", now=now, imports_dir=None)
    db.commit()
    # The first time, the one who stayed is confirmed (updated); then nothing changes.
    for expected in ((0, 1, 0, 0, 3), (0, 0, 1, 0, 3)):
        report = import_csv(db, mlist, path, confirmed=True, now=now + dt.timedelta(days=1))
        assert counts(report) == expected
        assert {e: v[1] for e, v in people(db, mlist).items()} == {
            "stay@example.org": "confirmed", "bounced@example.org": "pending",
            "left@example.org": "unsubscribed", "forgotten-4@invalid": "unsubscribed",
        }
        # The same people typed in capitals: the same hashes.
        path = write(tmp_path, "email,name\n" + "".join(f"{w.upper()}@EXAMPLE.ORG,{w}\n"
                                                        for w in who))
    assert db.execute(select(func.count()).select_from(Subscriber)).scalar() == 4


def test_rows_as_add_member_writes_them(
    db: Session, mlist: MailingList, now: dt.datetime, tmp_path: Path
) -> None:
    """The bulk writes bypass the ORM: what they store, byte for byte, is what the ORM
    stores (dates in the same format, JSON the same), on each database."""
    add_member(db, mlist, "orm@example.org", name="Same", confirmed=True, origin="import",
               now=now)
    db.commit()
    import_csv(db, mlist, write(tmp_path, "email,name\nbulk@example.org,Same\n"),
               confirmed=True, now=now)

    def stored(table: str, skip: set[str]) -> list[dict[str, object]]:
        rows = db.execute(text(f"SELECT * FROM {table} ORDER BY id")).mappings()
        return [{k: v for k, v in row.items() if k not in skip} for row in rows]

    orm, bulk = stored("subscribers", {"id", "email", "email_hash"})
    assert orm == bulk
    orm, bulk = stored("memberships", {"id", "subscriber_id"})
    assert orm == bulk


def test_commits_as_it_goes(
    db: Session, mlist: MailingList, now: dt.datetime, tmp_path: Path, database_url: str
) -> None:
    """Every `commit_every` rows the work so far is committed: another connection sees
    it while the import goes on, and an interrupted import keeps it."""
    path = write(tmp_path, "email\n" + "".join(f"p{i}@example.org\n" for i in range(27)))
    outside = make_engine(database_url)
    seen = []

    def progress(n: int) -> None:
        with outside.connect() as conn:
            seen.append(conn.execute(select(func.count()).select_from(Membership)).scalar())

    import_csv(db, mlist, path, now=now, chunk=5, commit_every=10, progress=progress)
    outside.dispose()
    assert seen == [0, 10, 10, 20, 20, 20]
    assert len(people(db, mlist)) == 27


def test_sqlite_page_cache_is_put_back(
    db: Session, mlist: MailingList, now: dt.datetime, tmp_path: Path
) -> None:
    if db.get_bind().dialect.name != "sqlite":
        pytest.skip("a SQLite setting")
    before = db.connection().exec_driver_sql("PRAGMA cache_size").scalar()
    import_csv(db, mlist, write(tmp_path, "email\na@example.org\n"), now=now)
    assert db.connection().exec_driver_sql("PRAGMA cache_size").scalar() == before


def test_address_added_meanwhile_is_not_an_error(
    db: Session, mlist: MailingList, now: dt.datetime
) -> None:
    """Someone signs up between the batch's SELECT and its INSERT: the INSERT skips
    them (ON CONFLICT DO NOTHING) and the membership goes to the row that is there."""
    bulk = _Bulk(db, mlist.id, now)
    states = bulk.load(db, ["race@example.org"])
    add_member(db, create_list(db, "other", from_addr="o@example.org"), "race@example.org",
               name="Form", now=now)
    st = states["race@example.org"]
    st.new_subscriber, st.name, st.status = True, "Import", "confirmed"
    bulk.write(db, states)
    db.commit()
    assert people(db, mlist) == {"race@example.org": ("Form", "confirmed", {})}


def test_in_lists_are_padded_to_few_sizes() -> None:
    for n in (0, 1, PAD - 1, PAD, PAD + 1, 4321):
        keys = [f"{i:064x}" for i in range(n)]
        padded = _padded(keys)
        assert padded[:n] == keys and len(padded) % PAD == 0 and len(padded) - n < PAD
        assert len(set(padded)) == len(padded)
        assert all(len(k) < 64 for k in padded[n:])  # never a real hash
