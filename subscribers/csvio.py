"""CSV import and export of a list's members.

Import streams: rows are parsed one at a time and applied in chunks, each chunk with one
SELECT of the subscribers it names, one of their memberships, one of suppressions, then
bulk INSERTs and UPDATEs and a commit. Memory stays flat and a million rows stay
within reach of SQLite's bulk speed; an interrupted import can simply be run again.

Rows are applied in file order with the rules of `members` (an import never
re-subscribes anyone who unsubscribed). Each data row counts once in the report: added,
updated, unchanged, suppressed or rejected; a second row for the same address is
compared with what the first one left, so an identical duplicate counts as unchanged.
Rejected rows go to a rejects CSV (line, row, reason) and never stop the import.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.orm import Session

from digest.errors import InvalidInput
from subscribers.addresses import domain_of, email_hash, normalize
from subscribers.members import (
    ADDED,
    UNCHANGED,
    UPDATED,
    clean_name,
    next_status,
    subscriber_row,
    transition,
)
from subscribers.models import CONFIRMED, PENDING, UNSUBSCRIBED, MailingList, Membership, Subscriber
from subscribers.suppress import suppressed_among

EXPORT_COLUMNS = ("email", "name", "status", "origin", "created_at", "confirmed_at",
                  "unsubscribed_at")
EMAIL_HEADERS = ("email", "e-mail", "email address", "email_address")
NAME_HEADERS = ("name", "full name", "full_name")
# The export's bookkeeping columns: not kept as attributes when an export is imported.
# `status` limits what the import does (see `_Entry`); the times are not carried over,
# because the import is where this list's consent record begins.
BOOKKEEPING = ("status", "origin", "created_at", "confirmed_at", "unsubscribed_at")
# Spreadsheets run a cell starting with one of these as a formula: export prefixes "'".
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    suppressed: int = 0
    rejects_path: Path | None = None  # None when nothing was rejected

    @property
    def rows(self) -> int:
        return self.added + self.updated + self.unchanged + self.rejected + self.suppressed


@dataclass
class _Entry:
    """A valid row. `status` is the file's own (an export's), limiting the import:
    "pending" is never confirmed, "unsubscribed" is not added."""

    address: str
    name: str
    attributes: dict[str, str]
    status: str


@dataclass
class _State:
    """What an address will look like after the rows of this chunk seen so far."""

    subscriber_id: int | None
    name: str
    attributes: dict[str, Any]
    membership_id: int | None
    original_status: str | None
    status: str | None
    hash: str
    new_subscriber: bool = False
    subscriber_changed: bool = False


def import_csv(
    s: Session,
    mlist: MailingList,
    path: Path,
    *,
    confirmed: bool = False,
    now: dt.datetime,
    rejects_path: Path | None = None,
    progress: Callable[[int], None] | None = None,
    chunk: int = 5000,
) -> ImportReport:
    """Add the addresses of a CSV file to `mlist`, committing every `chunk` rows.

    The header row names the columns in any order: `email` is required, `name` optional,
    every other column is kept in the subscriber's `attributes`. Rejects are written to
    `rejects_path`, by default `<file>.rejects.csv` next to the file. After each chunk,
    `progress` gets the number of data rows that chunk processed (an increment, as a
    progress bar's `advance` wants), rejected rows included, blank lines not.
    """
    report = ImportReport()
    rejects = _Rejects(rejects_path or path.with_name(path.stem + ".rejects.csv"))
    with path.open(encoding=sniff_encoding(path), errors="replace", newline="") as f:
        batch: list[_Entry] = []
        done = 0
        try:
            for line, fields, result in _parse(f, path.name, _sniff_delimiter(f)):
                if isinstance(result, _Entry):
                    batch.append(result)
                else:
                    rejects.write(line, fields, result)
                    report.rejected += 1
                if len(batch) >= chunk:
                    _apply(s, mlist, batch, confirmed, now, report)
                    batch.clear()
                    done = _progress(progress, report.rows, done)
            _apply(s, mlist, batch, confirmed, now, report)
            _progress(progress, report.rows, done)
        finally:
            rejects.close()
    report.rejects_path = rejects.path if report.rejected else None
    return report


def export_csv(s: Session, mlist: MailingList, out: TextIO) -> int:
    """Write every member of `mlist` (any status) as CSV to `out`; the number of rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    columns = [getattr(Subscriber if c in ("email", "name") else Membership, c)
               for c in EXPORT_COLUMNS]
    stmt = (
        select(*columns)
        .join(Subscriber, Subscriber.id == Membership.subscriber_id)
        .where(Membership.list_id == mlist.id)
        .order_by(Membership.id)
        .execution_options(yield_per=5000)
    )
    n = 0
    for row in s.execute(stmt):
        writer.writerow([_cell(value) for value in row])
        n += 1
    return n


def sniff_encoding(path: Path) -> str:
    """utf-8-sig if the whole file is UTF-8 (BOM or not), utf-16 if it starts with its
    BOM, else cp1252, which is what Excel on Windows writes as "CSV"."""
    try:
        f = path.open("rb")
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    with f:
        head = f.read(2)
        if head in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
            return "utf-16"
        f.seek(0)
        # Checked up front, in blocks, so a bad byte on line 900,000 cannot leave
        # half the file imported under the wrong encoding.
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            for block in iter(lambda: f.read(1 << 20), b""):
                decoder.decode(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "cp1252"
    return "utf-8-sig"


# -- parsing ----------------------------------------------------------------------------


def _sniff_delimiter(f: TextIO) -> str:
    """",", or ";" or tab when the header line has more of those: Excel writes ";" in
    locales where "," is the decimal point."""
    sample = f.read(1 << 16)
    f.seek(0)
    header = next((line for line in sample.splitlines() if line.strip()), "")
    return max((",", ";", "\t"), key=header.count)


def _parse(
    f: TextIO, filename: str, delimiter: str
) -> Iterator[tuple[int, list[str], _Entry | str]]:
    """(line, fields, entry or reason) for each data row; blank rows are skipped."""
    reader = csv.reader(f, delimiter=delimiter)
    rows = _rows(reader)
    header: list[str] | None = None
    for line, fields, error in rows:
        if error:
            if header is None:
                raise InvalidInput(f"{filename} line {line}: {error}")
            yield line, fields, error
        elif header is None:
            header = fields
            columns = _columns(header, filename)
        else:
            yield line, fields, _entry(fields, columns, header)
    if header is None:
        raise InvalidInput(f"{filename} is empty; it needs a header row with an email column")


def _rows(reader: Any) -> Iterator[tuple[int, list[str], str]]:
    """(first line of the row, fields, "" or a parse error), skipping blank rows."""
    while True:
        start = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, [], f"unreadable CSV: {exc}"
            if reader.line_num < start:  # the reader cannot get past it: stop, not spin
                return
            continue
        if any(cell.strip() for cell in fields):
            yield start, fields, ""


@dataclass
class _Columns:
    email: int
    name: int | None
    status: int | None
    attributes: list[tuple[int, str]]


def _columns(header: list[str], filename: str) -> _Columns:
    keys = [_unescape(cell).strip().lstrip("\ufeff").lower() for cell in header]
    seen = [k for k in keys if k]
    dupes = sorted({k for k in seen if seen.count(k) > 1})
    if dupes:
        raise InvalidInput(f"{filename}: column {dupes[0]!r} appears twice in the header")
    email = next((i for i, k in enumerate(keys) if k in EMAIL_HEADERS), None)
    if email is None:
        found = ", ".join(repr(h) for h in header) or "nothing"
        raise InvalidInput(
            f"{filename} has no 'email' column; its first row has {found}. "
            "Name the address column email (add a header row if there is none)"
        )
    name = next((i for i, k in enumerate(keys) if k in NAME_HEADERS), None)
    status = keys.index("status") if "status" in keys else None
    skip = {email, name, *(i for i, k in enumerate(keys) if not k or k in BOOKKEEPING)}
    attributes = [(i, header[i].strip()) for i in range(len(header)) if i not in skip]
    return _Columns(email, name, status, attributes)


def _entry(fields: list[str], columns: _Columns, header: list[str]) -> _Entry | str:
    """A valid row, or why it was rejected."""
    if len(fields) > len(header) and any(cell.strip() for cell in fields[len(header):]):
        return f"row has {len(fields)} fields, the header has {len(header)}"

    def cell(index: int | None) -> str:
        return _unescape(fields[index]).strip() if index is not None and index < len(fields) else ""

    raw = cell(columns.email)
    if not raw:
        return "no email address"
    try:
        address = normalize(raw)
    except InvalidInput as exc:
        return str(exc)
    status = cell(columns.status).lower()
    if status not in ("", PENDING, CONFIRMED, UNSUBSCRIBED):
        return f"status {status!r} is not pending, confirmed or unsubscribed"
    attributes = {key: value for i, key in columns.attributes if (value := cell(i))}
    return _Entry(address, clean_name(cell(columns.name)), attributes, status)


# -- applying a chunk -------------------------------------------------------------------


def _apply(s: Session, mlist: MailingList, entries: list[_Entry], confirmed: bool,
           now: dt.datetime, report: ImportReport) -> None:
    """Apply one chunk of rows in file order, write it in bulk, commit."""
    if not entries:
        return
    states = _load_states(s, mlist, {e.address for e in entries})
    suppressed = suppressed_among(
        s, [st.hash for st in states.values()], {domain_of(a) for a in states}
    )
    for entry in entries:
        st = states[entry.address]
        if st.hash in suppressed or domain_of(entry.address) in suppressed:
            report.suppressed += 1
            continue
        if entry.status == UNSUBSCRIBED:
            report.unchanged += 1
            continue
        outcome = _step(st, entry, confirmed and entry.status != PENDING)
        setattr(report, outcome, getattr(report, outcome) + 1)
    _write(s, mlist, states, now)
    s.commit()


def _load_states(s: Session, mlist: MailingList, addresses: set[str]) -> dict[str, _State]:
    """The current state of each address, in two queries."""
    found = s.execute(
        select(Subscriber.id, Subscriber.email, Subscriber.name, Subscriber.attributes).where(
            Subscriber.email.in_(addresses)
        )
    ).all()
    memberships = {
        sid: (mid, status)
        for mid, sid, status in s.execute(
            select(Membership.id, Membership.subscriber_id, Membership.status).where(
                Membership.list_id == mlist.id,
                Membership.subscriber_id.in_([row.id for row in found]),
            )
        )
    }
    states = {a: _State(None, "", {}, None, None, None, email_hash(a)) for a in addresses}
    for sid, address, name, attributes in found:
        mid, status = memberships.get(sid, (None, None))
        states[address] = _State(
            sid, name, dict(attributes or {}), mid, status, status, email_hash(address)
        )
    return states


def _step(st: _State, entry: _Entry, confirmed: bool) -> str:
    """Move `st` by one row; the row's outcome."""
    outcome = UNCHANGED
    if st.subscriber_id is None and not st.new_subscriber:
        st.new_subscriber, st.name, st.attributes = True, entry.name, dict(entry.attributes)
        outcome = ADDED
    else:
        merged = {**st.attributes, **entry.attributes}
        if (entry.name and entry.name != st.name) or merged != st.attributes:
            st.name, st.attributes = entry.name or st.name, merged
            st.subscriber_changed = not st.new_subscriber
            outcome = UPDATED
    new = next_status(st.status, confirmed=confirmed, revive=False)
    if new is not None:
        outcome = ADDED if st.status is None or outcome == ADDED else UPDATED
        st.status = new
    return outcome


def _write(s: Session, mlist: MailingList, states: dict[str, _State], now: dt.datetime) -> None:
    """Bulk INSERT and UPDATE what the chunk changed."""
    new_subs = [subscriber_row(a, st.name, st.attributes, now)
                for a, st in states.items() if st.new_subscriber]
    if new_subs:
        # Core executemany without RETURNING is SQLite's fastest path (the ORM's bulk
        # insert costs 3x); the ids come back in one indexed SELECT.
        s.execute(insert(_table(Subscriber)), new_subs)
        emails = [row["email"] for row in new_subs]
        for sid, address in s.execute(
            select(Subscriber.id, Subscriber.email).where(Subscriber.email.in_(emails))
        ):
            states[address].subscriber_id = sid
    changed_subs = [
        {"id": st.subscriber_id, "name": st.name, "attributes": st.attributes, "updated_at": now}
        for st in states.values() if st.subscriber_changed
    ]
    if changed_subs:
        s.execute(update(Subscriber), changed_subs)

    new_members, changed_members = [], []
    for st in states.values():
        if st.status is None or st.status == st.original_status:
            continue
        fields = transition(st.original_status, st.status, origin="import", ip="", now=now)
        if st.membership_id is None:
            new_members.append({"list_id": mlist.id, "subscriber_id": st.subscriber_id, **fields})
        else:
            changed_members.append({"id": st.membership_id, **fields})
    if new_members:
        s.execute(insert(_table(Membership)), new_members)
    if changed_members:
        s.execute(update(Membership), changed_members)


def _table(model: type[Subscriber | Membership]) -> Table:
    return cast(Table, model.__table__)  # mapped to a Table, typed as any FromClause


def _progress(progress: Callable[[int], None] | None, rows: int, done: int) -> int:
    if progress and rows > done:
        progress(rows - done)
    return rows


# -- files ------------------------------------------------------------------------------


class _Rejects:
    """The rejects CSV, opened at the first reject so a clean import leaves no file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO | None = None
        self._writer: Any = None

    def write(self, line: int, fields: list[str], reason: str) -> None:
        if self._writer is None:
            self._file = self.path.open("w", encoding="utf-8", newline="")
            self._writer = csv.writer(self._file, lineterminator="\n")
            self._writer.writerow(["line", "row", "reason"])
        raw = io.StringIO()
        csv.writer(raw, lineterminator="").writerow(fields)
        self._writer.writerow([line, raw.getvalue(), reason])

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _cell(value: Any) -> str:
    """A value as an export cell, safe to open in a spreadsheet."""
    if value is None:
        return ""
    text = value.isoformat() if isinstance(value, dt.datetime) else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def _unescape(text: str) -> str:
    """Undo `_cell`'s formula guard, so an export imports back as it was."""
    return text[1:] if text.startswith("'") and text[1:].startswith(FORMULA_START) else text
