"""Subscribers in the console: search, add one, and a list's export as a download.

The search must stay fast on a million subscribers, so it never counts: it pages by
key (`?before=<id>`, newest first) with a LIMIT of one more row than it shows, which
says whether there is a next page. Its filters use indexes where SQL can:

- a whole address: the unique index on `email`;
- the start of an address (text with "@"): on SQLite a range on that index (its
  binary order makes `email >= 'ab' AND email < 'ac'` exactly the prefix); on
  PostgreSQL `LIKE 'ab%'`, which its index serves under the C collation;
- a list (and status): the (list, subscriber) unique index of memberships, read
  backwards from the newest subscriber;
- a word without "@" also matches inside names: that is a scan, stopped by the LIMIT
  as soon as a page is full.
"""

from __future__ import annotations

import io
import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO, cast

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import ColumnElement, exists, or_, select
from sqlalchemy.orm import Session

from digest.app import App
from digest.deliver.confirm import queue_confirmation
from digest.errors import InvalidInput
from digest.web.admin.common import (
    AdminPage,
    Fields,
    ListParam,
    list_or_404,
    notice,
    render,
    see_other,
)
from digest.web.auth import AdminUser, CsrfForm, Viewer
from digest.web.deps import AppDep, PagesDep
from digest.web.forms import in_transaction
from digest.web.pages import Pages, WebSession, sentence
from subscribers.addresses import normalize
from subscribers.export import export_csv, export_jsonl
from subscribers.lists import all_lists
from subscribers.members import SUPPRESSED, add_member, check_status, clean_tag, has_tag
from subscribers.models import Membership, MembershipStatus, Subscriber

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50
QUERY_MAX = 320
ADMIN_ORIGIN = "admin"  # Membership.origin of members added here


@dataclass(frozen=True)
class Filters:
    """The search as typed (kept in the form and the next page's link)."""

    q: str = ""
    list_name: str = ""
    status: str = ""
    tag: str = ""


@dataclass(frozen=True)
class Found:
    id: int
    email: str
    name: str
    tags: list[str]
    status: str  # on the chosen list; "" without one


@dataclass(frozen=True, kw_only=True)
class SearchPage(AdminPage):
    """web/admin/subscribers.html: the search form and a page of results. `next_before`
    is the key of the next page (None: this is the last). The add form keeps what was
    typed (`add_email`, `add_name`, `add_list`) when it comes back with `error`."""

    filters: Filters
    found: list[Found]
    next_before: int | None
    paged: bool  # not the first page
    lists: list[str]
    statuses: tuple[str, ...] = tuple(MembershipStatus)
    error: str = ""
    add_error: str = ""
    add_email: str = ""
    add_name: str = ""
    add_list: str = ""


def _title(filters: Filters) -> str:
    """"Subscribers", with what the search is for: "Subscribers of news, confirmed"."""
    parts = [f"matching “{filters.q}”" if filters.q else "",
             f"of {filters.list_name}" if filters.list_name else "",
             filters.status, f"tagged {filters.tag}" if filters.tag else ""]
    said = [p for p in parts if p]
    return "Subscribers" + (" " + ", ".join(said) if said else "")


@router.get("/admin/subscribers")
def search_page(user: AdminUser, session: Viewer, app: AppDep, pages: PagesDep,
                q: str = "", list_name: ListParam = "", status: str = "", tag: str = "",
                before: int | None = None, done: str = "") -> Response:
    filters = Filters(q.strip()[:QUERY_MAX], list_name, status, tag.strip()[:64])
    with app.sessions() as s:
        try:
            found, more = search(s, filters, before=before)
            error = ""
        except InvalidInput as exc:
            found, more, error = [], False, sentence(str(exc))
        page = SearchPage(
            # Each search its own title (WCAG 2.4.2): tabs and history tell them apart.
            title=_title(filters), section="subscribers", notice=notice(done),
            filters=filters,
            found=found, next_before=found[-1].id if more else None, paged=before is not None,
            lists=[m.name for m in all_lists(s)], error=error, add_list=list_name)
    return render(pages, "web/admin/subscribers.html", page, session,
                  status=400 if error else 200)


def search(s: Session, filters: Filters, *, before: int | None = None,
           limit: int = PAGE_SIZE) -> tuple[list[Found], bool]:
    """A page of subscribers matching `filters`, newest first, below id `before`; and
    whether there are more."""
    key: Any = Subscriber.id
    columns: list[Any] = [Subscriber.id, Subscriber.email, Subscriber.name, Subscriber.tags]
    conditions: list[ColumnElement[bool]] = []
    stmt = select()
    if filters.list_name:
        mlist = list_or_404(s, filters.list_name)
        key = Membership.subscriber_id
        columns.append(Membership.status)
        stmt = stmt.select_from(Membership).join(Subscriber,
                                                 Subscriber.id == Membership.subscriber_id)
        conditions.append(Membership.list_id == mlist.id)
        if filters.status:
            conditions.append(Membership.status == check_status(filters.status))
    elif filters.status:
        conditions.append(exists().where(Membership.subscriber_id == Subscriber.id,
                                         Membership.status == check_status(filters.status)))
    if filters.tag:
        conditions.append(has_tag(s, clean_tag(filters.tag)))
    if filters.q:
        conditions.append(_matching(s, filters.q))
    if before is not None:
        conditions.append(key < before)
    rows = list(s.execute(stmt.add_columns(*columns).where(*conditions)
                          .order_by(key.desc()).limit(limit + 1)))
    found = [Found(r[0], r[1], r[2], list(r[3] or []), r[4] if len(r) > 4 else "")
             for r in rows[:limit]]
    return found, len(rows) > limit


def _matching(s: Session, q: str) -> ColumnElement[bool]:
    try:
        return Subscriber.email == normalize(q)
    except InvalidInput:
        pass
    prefix = q.lower()
    starts = Subscriber.email.startswith(prefix, autoescape=True)
    if s.get_bind().dialect.name == "sqlite":
        # Binary order: every address starting with `prefix` sorts in [prefix, upper).
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        starts = starts & (Subscriber.email >= prefix) & (Subscriber.email < upper)
    if "@" in q:
        return starts
    return or_(starts, Subscriber.name.icontains(q, autoescape=True))


@router.post("/admin/subscribers")
def add(user: AdminUser, _: CsrfForm, form: Fields, session: Viewer, app: AppDep,
        pages: PagesDep) -> Response:
    """Put one address on a list, as `digest subscribers add` does: pending with a
    confirmation mail on a double opt-in list, unless the admin vouches (confirmed)."""
    email, name, list_name = form.get("email"), form.get("name"), form.get("list")
    vouched = form.flag("confirmed")

    def work(s: Session) -> tuple[int, str, bool]:
        mlist = list_or_404(s, list_name)
        member, outcome = add_member(s, mlist, email, name=name,
                                     confirmed=vouched or not mlist.double_optin,
                                     origin=ADMIN_ORIGIN, now=app.clock())
        if member is None or outcome == SUPPRESSED:
            raise InvalidInput(f"{normalize(email)} is suppressed (bounced, complained, "
                               "left all mail, blocked or forgotten); not subscribed")
        return member.subscriber_id, member.status, queue_confirmation(s, member, app.clock())

    try:
        subscriber_id, status, queued = in_transaction(app, work)
    except InvalidInput as exc:
        return _add_refused(pages, session, app, form, sentence(str(exc)))
    if queued:
        app.mail_queued.set()  # the sender mails it; a request never sends
    done = "member-pending" if queued else f"member-{status}"
    return see_other(f"/admin/subscribers/{subscriber_id}?done={done}")


def _add_refused(pages: Pages, session: WebSession, app: App, form: Any,
                 error: str) -> Response:
    with app.sessions() as s:
        found, more = search(s, Filters())
        page = SearchPage(
            title="Subscribers", section="subscribers", filters=Filters(), found=found,
            next_before=found[-1].id if more else None, paged=False,
            lists=[m.name for m in all_lists(s)], add_error=error,
            add_email=form.get("email"), add_name=form.get("name"), add_list=form.get("list"))
    return render(pages, "web/admin/subscribers.html", page, session, status=400)


# -- export ----------------------------------------------------------------------------

FORMATS = {"csv": ("text/csv; charset=utf-8", export_csv),
           "jsonl": ("application/x-ndjson; charset=utf-8", export_jsonl)}


@router.get("/admin/lists/{list_name}/export")
def export(list_name: str, user: AdminUser, app: AppDep, format: str = "csv",
           status: str = "") -> Response:
    """The list's members with their consent record, streamed as it is read."""
    if format not in FORMATS or (status and status not in tuple(MembershipStatus)):
        raise HTTPException(400, "format is csv or jsonl; status one of "
                                 + ", ".join(MembershipStatus))
    with app.sessions() as s:
        list_or_404(s, list_name)
    media_type, _write = FORMATS[format]
    filename = f"{list_name}{'-' + status if status else ''}.{format}"
    return StreamingResponse(
        _stream(app, list_name, format, status or None), media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"',
                 "Cache-Control": "no-store"})


class _Pipe(io.TextIOBase):
    """A text file the export writes to in its thread, read as byte chunks by the
    response: the queue is short, so a slow client slows the export down instead of
    filling memory; a client gone stops the export at its next write."""

    CHUNK = 64 * 1024

    def __init__(self) -> None:
        super().__init__()
        self.chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self.buffer: list[str] = []
        self.size = 0
        self.gone = threading.Event()

    def write(self, text: str) -> int:
        if self.gone.is_set():
            raise BrokenPipeError("the client went away")
        self.buffer.append(text)
        self.size += len(text)
        if self.size >= self.CHUNK:
            self.flush()
        return len(text)

    def flush(self) -> None:
        if self.buffer:
            data = "".join(self.buffer).encode()
            self.buffer, self.size = [], 0
            self.put(data)

    def put(self, item: bytes | None) -> None:
        while not self.gone.is_set():
            try:
                self.chunks.put(item, timeout=1)
                return
            except queue.Full:
                continue


def _stream(app: App, list_name: str, fmt: str, status: str | None) -> Iterator[bytes]:
    pipe = _Pipe()

    def produce() -> None:
        try:
            with app.sessions() as s:
                # A file-like object is all the export uses of its TextIO.
                out = cast(TextIO, pipe)
                FORMATS[fmt][1](s, list_or_404(s, list_name), out, status=status)
            pipe.flush()
        except BrokenPipeError:
            pass
        except Exception:
            log.exception("exporting %s", list_name)
        finally:
            pipe.put(None)

    thread = threading.Thread(target=produce, name=f"export-{list_name}", daemon=True)
    thread.start()
    try:
        while (chunk := pipe.chunks.get()) is not None:
            yield chunk
    finally:
        pipe.gone.set()
