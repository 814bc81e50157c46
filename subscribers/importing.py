"""CSV import of a list's members (the export is in `subscribers.export`).

Import streams: rows are parsed one at a time and applied in batches of `chunk` rows,
each with one SELECT of the subscribers and memberships it names (by `email_hash`), one
of suppressed addresses, one of blocked domains, then bulk INSERTs and UPDATEs. Memory
stays flat whatever the file's size (a million rows: under 150 MiB peak).

Rows are applied in file order with the rules of `members` (an import never
re-subscribes anyone who unsubscribed). Each data row counts once in the report: added,
updated, unchanged, suppressed or rejected; a second row for the same address is
compared with what the first one left, so an identical duplicate counts as unchanged.
Rejected rows go to a rejects CSV (line, row, reason; `subscribers.rejects`, mode
0600) and never stop the import.

Speed (a million rows in about 40 s on SQLite here; `python -m tests.bench_import`)
comes from choices each measured on that file: SQL at the driver's level, with values
converted once by the columns' own types (see `_Bulk`); IN lists padded to a few sizes
(see `_padded`); a 64 MiB SQLite page cache while importing; and a commit every
`commit_every` rows rather than every batch, because a SQLite commit writes out every
index page the batch touched, and random addresses touch one per row: committing every
5,000 rows made the inserts take twice as long.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import datetime as dt
import itertools
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import Column, Connection, Table, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from digest.errors import InvalidInput
from subscribers.addresses import domain_of, email_hash, normalize
from subscribers.export import (
    EXPORT_COLUMNS,
    export_csv,
    export_jsonl,
    unescape,
)
from subscribers.members import (
    ADDED,
    UNCHANGED,
    UPDATED,
    clean_name,
    clean_tag,
    next_status,
    transition,
)
from subscribers.models import MailingList, Membership, MembershipStatus, Subscriber, Suppression
from subscribers.rejects import Rejects, rejects_of

__all__ = ["ImportReport", "export_csv", "export_jsonl", "import_csv", "require_regular_file",
           "sniff_encoding"]

EMAIL_HEADERS = ("email", "e-mail", "email address", "email_address")
NAME_HEADERS = ("name", "full name", "full_name")
# An export's columns that are not the person's data: not kept as attributes when an
# export is imported. `status` limits what the import does (see `_Entry`); times and IPs
# are not carried over, because the import is where this list's consent record begins.
BOOKKEEPING = tuple(c for c in EXPORT_COLUMNS if c not in ("email", "name", "attributes", "tags"))
COMMIT_EVERY = 100_000
SUBSCRIBER_COLUMNS = ["email", "email_hash", "domain", "name", "timezone", "attributes",
                      "tags", "created_at", "updated_at"]
PAD = 512  # IN lists are padded to a multiple of this (see `_padded`)
CHUNK_MAX = 10_000  # a batch binds up to twice as many parameters; SQLite allows 32,766
SQLITE_CACHE_KIB = 64 * 1024  # SQLite's default is 2 MiB


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


@dataclass(slots=True)
class _Entry:
    """A valid row. `status` is the file's own (an export's), limiting the import:
    "pending" is never confirmed, "unsubscribed" is not added."""

    address: str
    name: str
    attributes: dict[str, Any]
    tags: list[str]
    status: str


@dataclass(slots=True)
class _State:
    """What an address will look like after the rows of this batch seen so far."""

    hash: str
    subscriber_id: int | None = None
    name: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    membership_id: int | None = None
    original_status: MembershipStatus | None = None
    status: MembershipStatus | None = None
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
    commit_every: int = COMMIT_EVERY,
) -> ImportReport:
    """Add the addresses of a CSV file to `mlist`.

    The header row names the columns in any order: `email` is required, `name`
    optional; `tags` (comma-separated, or an export's JSON list) adds tags, `attributes`
    (an export's JSON object) and every other column set attributes. Rejects are
    written to `rejects_path`, by default `<file>.rejects.csv` next to the file. Rows
    are applied `chunk` at a time (at most CHUNK_MAX) and committed every
    `commit_every` rows and at the end: an interrupted import keeps what it committed
    and can simply be run again. On SQLite a commit ends a hold of the write lock of
    about 4 s per 100,000 rows; other writers wait (busy_timeout) meanwhile. After
    each batch, `progress` gets the number of data rows it processed (an increment, as
    a progress bar's `advance` wants), rejected rows included, blank lines not.
    """
    report = ImportReport()
    rejects = Rejects(rejects_path or rejects_of(path))
    bulk = _Bulk(s, mlist.id, now)
    with path.open(encoding=sniff_encoding(path), errors="replace", newline="") as f:
        rows = _parse(f, path.name, _sniff_delimiter(f))
        uncommitted = 0
        try:
            while batch := list(itertools.islice(rows, min(max(chunk, 1), CHUNK_MAX))):
                entries = _entries(batch, rejects, report)
                bulk.grow_cache(s)
                _apply(s, bulk, entries, confirmed, report)
                uncommitted += len(entries)
                if uncommitted >= commit_every:
                    s.commit()
                    uncommitted = 0
                if progress:
                    progress(len(batch))
        finally:
            bulk.restore_cache(s)
            rejects.close()
        s.commit()
    report.rejects_path = rejects.path if report.rejected else None
    return report


def _entries(batch: list[tuple[int, list[str], _Entry | str]], rejects: Rejects,
             report: ImportReport) -> list[_Entry]:
    """The valid rows of a batch; the others go to the rejects file."""
    entries = []
    for line, fields, result in batch:
        if isinstance(result, _Entry):
            entries.append(result)
        else:
            rejects.write(line, fields, result)
            report.rejected += 1
    return entries


def require_regular_file(path: Path) -> None:
    """InvalidInput for a pipe (`<(zcat export.csv.gz)`) or a device: an import reads
    its file twice, first to tell its encoding before a row is imported."""
    if path.exists() and not path.is_file():
        raise InvalidInput(f"{path} is not a file (a pipe?): an import reads its file "
                           "twice, first to tell its encoding; save it to a file first, "
                           "e.g. `zcat export.csv.gz > export.csv`")


def sniff_encoding(path: Path) -> str:
    """utf-8-sig if the whole file is UTF-8 (BOM or not), utf-16 if it starts with its
    BOM, else cp1252, which is what Excel on Windows writes as "CSV"."""
    require_regular_file(path)
    try:
        f = path.open("rb")
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    with f:
        head = f.read(4)
        if head.startswith(b"\x1f\x8b"):
            raise InvalidInput(f"{path} is gzip-compressed: decompress it first "
                               f"(`gunzip -c {path} > {path.stem}.unpacked.csv`; "
                               "gunzip alone refuses a name not ending in .gz) and import "
                               "the file it gives")
        if head == b"PK\x03\x04":
            raise InvalidInput(f"{path} is a ZIP archive (an Excel workbook?), not CSV: "
                               "save the sheet as CSV (UTF-8) and import that")
        if head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
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
    header: list[str] | None = None
    for line, fields, error in _rows(reader):
        if error:
            if header is None:
                raise InvalidInput(f"{filename} line {line}: {error}")
            yield line, fields, error
        elif header is None:
            header = fields
            columns = _columns(header, filename)
        else:
            yield line, fields, _entry(fields, columns)
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
    """Where each field is in a row; `width` (one past the header) when it is absent."""

    width: int
    email: int
    name: int
    status: int
    attributes_json: int
    tags: int
    attributes: list[tuple[int, str]]


def _columns(header: list[str], filename: str) -> _Columns:
    keys = [unescape(cell).strip().lstrip("\ufeff").lower() for cell in header]
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
    width = len(header)
    name = next((i for i, k in enumerate(keys) if k in NAME_HEADERS), width)

    def index(key: str) -> int:
        return keys.index(key) if key in keys else width

    special = (index("status"), index("attributes"), index("tags"))
    skip = {email, name, *special, *(i for i, k in enumerate(keys) if not k or k in BOOKKEEPING)}
    attributes = [(i, header[i].strip()) for i in range(width) if i not in skip]
    return _Columns(width, email, name, *special, attributes)


def _entry(fields: list[str], columns: _Columns) -> _Entry | str:
    """A valid row, or why it was rejected."""
    width = len(fields)
    if width > columns.width and any(cell.strip() for cell in fields[columns.width:]):
        return f"row has {width} fields, the header has {columns.width}"
    cells = [(unescape(c) if c.startswith("'") else c).strip() for c in fields]
    cells += [""] * (columns.width + 1 - width)  # short rows, and the absent columns
    raw = cells[columns.email]
    if not raw:
        return "no email address"
    try:
        address = normalize(raw)
    except InvalidInput as exc:
        return str(exc)
    status = cells[columns.status].lower()
    if status and status not in tuple(MembershipStatus):
        return f"status {status!r} is not pending, confirmed or unsubscribed"
    try:
        attributes = _json_object(cells[columns.attributes_json])
        tags = _tags(cells[columns.tags]) if cells[columns.tags] else []
    except InvalidInput as exc:
        return str(exc)
    for i, key in columns.attributes:
        if value := cells[i]:
            attributes[key] = value
    return _Entry(address, clean_name(cells[columns.name]), attributes, tags, status)


def _json_object(text: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise InvalidInput(
            f"attributes {text[:40]!r} is not a JSON object like {{\"city\": \"Lyon\"}}"
        )
    return value


def _tags(text: str) -> list[str]:
    """Tags as comma-separated words, or the JSON list an export writes."""
    if text.startswith("["):
        try:
            words = json.loads(text)
        except ValueError:
            words = None
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise InvalidInput(f"tags {text[:40]!r} is not a JSON list of words")
    else:
        words = text.split(",")
    return sorted({clean_tag(w) for w in words if w.strip()})


# -- applying a batch -------------------------------------------------------------------


def _apply(s: Session, bulk: _Bulk, entries: list[_Entry], confirmed: bool,
           report: ImportReport) -> None:
    """Apply one batch of rows in file order and write it in bulk."""
    if not entries:
        return
    states = bulk.load(s, dict.fromkeys(e.address for e in entries))
    suppressed = bulk.suppressed(s, [st.hash for st in states.values()])
    blocked = bulk.blocked_domains(s)
    for entry in entries:
        st = states[entry.address]
        if st.hash in suppressed or domain_of(entry.address) in blocked:
            report.suppressed += 1
            continue
        if entry.status == MembershipStatus.UNSUBSCRIBED:
            report.unchanged += 1
            continue
        outcome = _step(st, entry, confirmed and entry.status != MembershipStatus.PENDING)
        setattr(report, outcome, getattr(report, outcome) + 1)
    bulk.write(s, states)


def _step(st: _State, entry: _Entry, confirmed: bool) -> str:
    """Move `st` by one row; the row's outcome."""
    outcome = UNCHANGED
    if st.subscriber_id is None and not st.new_subscriber:
        st.new_subscriber, st.name = True, entry.name
        st.attributes, st.tags = entry.attributes, entry.tags
        outcome = ADDED
    else:
        attributes = {**st.attributes, **entry.attributes}
        tags = sorted({*st.tags, *entry.tags}) if entry.tags else st.tags
        if (entry.name and entry.name != st.name) or attributes != st.attributes \
                or tags != st.tags:
            st.name, st.attributes, st.tags = entry.name or st.name, attributes, tags
            st.subscriber_changed = not st.new_subscriber
            outcome = UPDATED
    new = next_status(st.status, confirmed=confirmed, revive=False)
    if new is not None:
        outcome = ADDED if st.status is None or outcome == ADDED else UPDATED
        st.status = new
    return outcome


# -- the import's SQL -------------------------------------------------------------------

#: A membership's status before and after the batch (None: not on the list before).
_Move = tuple[MembershipStatus | None, MembershipStatus]


class _Bulk:
    """Lookups and writes of whole batches, at the driver's level.

    Through SQLAlchemy, processing each row's parameters cost more than SQLite's own
    work, and an IN list of 5,000 values took 5 ms to render per query. Here, writes
    are `executemany` of plain tuples, and values are converted for the database by
    each column's own SQLAlchemy type (UTC dates, JSON), so they are stored and read
    exactly as the ORM does; the constant ones (`now`, a transition's fields) once.
    The SQL is portable: the driver's placeholder, and `ON CONFLICT DO NOTHING`
    (SQLite 3.24+, PostgreSQL 9.5+), so that an address added by someone else between
    our SELECT and INSERT is skipped instead of failing the batch.
    """

    def __init__(self, s: Session, list_id: int, now: dt.datetime) -> None:
        self.list_id = list_id
        self.dialect = dialect = s.get_bind().dialect
        if dialect.paramstyle not in ("qmark", "format", "pyformat"):
            raise NotImplementedError(f"bulk import on {dialect.name!r}")
        self.mark = "?" if dialect.paramstyle == "qmark" else "%s"
        columns = _table(Subscriber).c
        self.now = self._to_db(columns.updated_at)(now)
        to_json = self._to_db(columns.attributes)
        empty_object, empty_list = to_json({}), to_json([])

        def json_value(value: dict[str, Any] | list[str]) -> Any:
            if value:
                return to_json(value)
            return empty_object if isinstance(value, dict) else empty_list

        self.json = json_value
        self.from_json = columns.attributes.type.dialect_impl(dialect).result_processor(
            dialect, None) or _same
        self._now = now
        self._transitions: dict[_Move, tuple[list[str], tuple[Any, ...]]] = {}
        self._cache_size: Any = None

    # -- reading

    def load(self, s: Session, addresses: Iterable[str]) -> dict[str, _State]:
        """The current state of each address (in file order), in one query by hash."""
        states = {a: _State(email_hash(a)) for a in addresses}
        by_hash = {st.hash: st for st in states.values()}
        rows = self._select_in(
            s,
            "SELECT s.email_hash, s.id, s.name, s.attributes, s.tags, m.id, m.status "
            "FROM subscribers s LEFT OUTER JOIN memberships m "
            f"ON m.subscriber_id = s.id AND m.list_id = {self.mark} WHERE s.email_hash",
            [self.list_id], list(by_hash))
        for hashed, sid, name, attributes, tags, mid, status in rows:
            st = by_hash[hashed]
            st.subscriber_id, st.name = sid, name
            st.attributes, st.tags = self.from_json(attributes) or {}, self.from_json(tags) or []
            st.membership_id = mid
            st.original_status = st.status = MembershipStatus(status) if status else None
        return states

    def suppressed(self, s: Session, hashes: list[str]) -> set[str]:
        """Which of `hashes` are suppressed addresses (`suppress.suppressed_among` for
        addresses, without its SQL rendering per batch)."""
        rows = self._select_in(
            s, "SELECT email_hash FROM suppressions WHERE email_hash", [], hashes)
        return {hashed for (hashed,) in rows}

    def blocked_domains(self, s: Session) -> set[str]:
        """Blocked domains are few: read them all (by the `domain` index) rather than
        look up the batch's thousands of domains."""
        return set(s.scalars(select(Suppression.domain).where(Suppression.domain > "")))

    def _select_in(self, s: Session, sql: str, params: list[Any],
                   keys: list[str]) -> list[Any]:
        keys = _padded(keys)
        marks = ", ".join([self.mark] * len(keys))
        return list(s.connection().exec_driver_sql(f"{sql} IN ({marks})", (*params, *keys)))

    # -- writing

    def write(self, s: Session, states: dict[str, _State]) -> None:
        """INSERT and UPDATE what the batch changed."""
        conn = s.connection()
        new = [(a, st.hash, domain_of(a), st.name, "", self.json(st.attributes),
                self.json(st.tags), self.now, self.now)
               for a, st in states.items() if st.new_subscriber]
        self._insert(conn, "subscribers", SUBSCRIBER_COLUMNS, new)
        changed = [(st.name, self.json(st.attributes), self.json(st.tags), self.now,
                    st.subscriber_id) for st in states.values() if st.subscriber_changed]
        self._update(conn, "subscribers", ["name", "attributes", "tags", "updated_at"], changed)
        # Grouped by transition: the rows of one group share their SQL and values.
        new_members: dict[_Move, list[tuple[Any, ...]]] = {}
        changed_members: dict[_Move, list[tuple[Any, ...]]] = {}
        for st in states.values():
            if st.status is None or st.status == st.original_status:
                continue
            key: _Move = (st.original_status, st.status)
            values = self._transition(*key)[1]
            if st.membership_id is None:
                new_members.setdefault(key, []).append((self.list_id, st.hash, *values))
            else:
                changed_members.setdefault(key, []).append((*values, st.membership_id))
        # The database finds each subscriber's id by hash as the row goes in: new
        # subscribers have no id here (executemany returns none).
        by_hash = f"(SELECT id FROM subscribers WHERE email_hash = {self.mark})"
        for key, rows in new_members.items():
            columns = ["list_id", "subscriber_id", *self._transition(*key)[0]]
            self._insert(conn, "memberships", columns, rows, {"subscriber_id": by_hash})
        for key, rows in changed_members.items():
            self._update(conn, "memberships", self._transition(*key)[0], rows)

    def _transition(self, current: MembershipStatus | None,
                    new: MembershipStatus) -> tuple[list[str], tuple[Any, ...]]:
        """The membership columns and converted values for `current` -> `new`: the same
        for every row of the import, so converted once."""
        key = (current, new)
        if key not in self._transitions:
            fields = transition(current, new, origin="import", ip="", now=self._now)
            columns = _table(Membership).c
            self._transitions[key] = (list(fields), tuple(
                self._to_db(columns[k])(v) for k, v in fields.items()))
        return self._transitions[key]

    def _insert(self, conn: Connection, table: str, columns: list[str],
                rows: list[tuple[Any, ...]], sql: dict[str, str] | None = None) -> None:
        """INSERT `rows`; `sql` gives the expression of a column that is not just a
        placeholder."""
        if rows:
            values = ", ".join((sql or {}).get(c, self.mark) for c in columns)
            conn.exec_driver_sql(f"INSERT INTO {table} ({', '.join(columns)}) "
                                 f"VALUES ({values}) ON CONFLICT DO NOTHING", rows)

    def _update(self, conn: Connection, table: str, columns: list[str],
                rows: list[tuple[Any, ...]]) -> None:
        """UPDATE `columns` by id; each row is the values, then the id."""
        if rows:
            sets = ", ".join(f"{c} = {self.mark}" for c in columns)
            conn.exec_driver_sql(f"UPDATE {table} SET {sets} WHERE id = {self.mark}", rows)

    def _to_db(self, column: Column[Any]) -> Callable[[Any], Any]:
        process = column.type.dialect_impl(self.dialect).bind_processor(self.dialect)
        return process or _same

    # -- SQLite's page cache

    def grow_cache(self, s: Session) -> None:
        """SQLite: give the connection this batch runs on a bigger page cache. Random
        addresses touch a different page of the `email_hash` and `email` indexes per
        row; from the cache they cost no system call, and a commit's dirty pages stay
        there instead of spilling to the WAL early. Set per batch because after a
        commit the session may be handed another connection of the pool."""
        if self.dialect.name == "sqlite":
            conn = s.connection()
            if self._cache_size is None:
                self._cache_size = conn.exec_driver_sql("PRAGMA cache_size").scalar()
            conn.exec_driver_sql(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")

    def restore_cache(self, s: Session) -> None:
        if self._cache_size is not None:
            # If the import failed, the session failed with it: that error is the news.
            with contextlib.suppress(SQLAlchemyError):
                s.connection().exec_driver_sql(f"PRAGMA cache_size = {int(self._cache_size)}")


def _padded(keys: list[str]) -> list[str]:
    """`keys` and as many dummies (never a hash) as make their number a multiple of
    PAD. An IN list has a placeholder per value, and Python's sqlite3 keeps the last
    128 statements it prepared per connection, each of thousands of parameters holding
    about a megabyte: unpadded, every batch size was a new statement, and the import
    grew by 150 MiB in 300,000 rows. Padded, a few sizes recur."""
    return keys + [f"-{i}" for i in range(-len(keys) % PAD)]


def _same(value: Any) -> Any:
    return value


def _table(model: type[Subscriber | Membership]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)  # mapped to a Table, typed as any FromClause
    return table
