"""Sources in the console: their health, adding one to a list, removing one, and
fetching one now.

"Fetch now" runs `App.fetch` for the source in a worker thread and waits for it up to
FETCH_WAIT seconds. Most feeds answer in a second, and then the page shows what came
of it at once; a full-text source fetches a page per new article, each allowed
`[gather] timeout`, which can take minutes, longer than a proxy keeps a request open.
Then the answer comes back after FETCH_WAIT saying it is still running, and the
fetch goes on and records its outcome on the source, where this page shows it. (A
BackgroundTask would always make the admin reload; a bare synchronous fetch could
hang the request.) A source that is being fetched already, by an earlier click, the
scheduler or `digest fetch`, is not fetched again: its lease says so at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from digest.app import App
from digest.errors import InvalidInput
from digest.gather.sources import BUSY, SourceReport, add_source, remove_source, source_label
from digest.models import ListSource, Source
from digest.web.admin.common import (
    AdminPage,
    Fields,
    ListParam,
    ago,
    get_or_404,
    list_or_404,
    notice,
    render,
    see_other,
    when,
)
from digest.web.auth import AdminUser, CsrfForm, Viewer
from digest.web.deps import AppDep, PagesDep, RowId
from digest.web.forms import in_transaction
from digest.web.pages import sentence
from subscribers.lists import all_lists
from subscribers.models import MailingList

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

#: Seconds "Fetch now" waits for the fetch before answering that it is still running.
FETCH_WAIT = 15.0
OK, FAILING, NEVER = "ok", "failing", "never"


@dataclass(frozen=True)
class SourceRow:
    id: int
    label: str
    url: str
    kind: str
    full_text: bool
    lists: list[str]
    health: str  # ok | failing | never
    last_success: str
    last_success_ago: str
    failures: int
    last_error: str
    next_fetch: str


@dataclass(frozen=True, kw_only=True)
class SourcesPage(AdminPage):
    """web/admin/sources.html: every source with its health, and the add form (`url`,
    `list_name`, `full_text` as typed; `error` the core's refusal). `result` says what
    a "Fetch now" just did."""

    sources: list[SourceRow]
    lists: list[str]
    url: str = ""
    list_name: str = ""
    full_text: bool = False
    error: str = ""
    result: str = ""


def health(source: Source) -> str:
    """ok, failing (the last fetch failed) or never (never fetched)."""
    if source.consecutive_failures:
        return FAILING
    return OK if source.last_success_at else NEVER


@router.get("/admin/sources")
def sources_page(user: AdminUser, session: Viewer, app: AppDep, pages: PagesDep,
                 list_name: ListParam = "", done: str = "", fetched: int | None = None,
                 new: int = 0, fetching: int | None = None,
                 busy: int | None = None) -> Response:
    with app.sessions() as s:
        page = _page(s, app.clock(), list_name=list_name, done=notice(done),
                     result=_result(s, fetched, new, fetching, busy))
    return render(pages, "web/admin/sources.html", page, session)


@router.post("/admin/sources")
def add(user: AdminUser, _: CsrfForm, form: Fields, session: Viewer, app: AppDep,
        pages: PagesDep) -> Response:
    url, list_name, full_text = form.get("url"), form.get("list"), form.flag("full_text")

    def work(s: Session) -> bool:
        mlist = s.scalar(select(MailingList).where(MailingList.name == list_name))
        if mlist is None:
            raise InvalidInput("choose the list this source feeds")
        known = s.scalar(select(Source.id).where(Source.url == url.strip())) is not None
        add_source(s, url, mlist, full_text=full_text)
        return known

    try:
        known = in_transaction(app, work)
    except InvalidInput as exc:
        with app.sessions() as s:
            page = _page(s, app.clock(), list_name=list_name, url=url, full_text=full_text,
                         error=sentence(str(exc)))
        return render(pages, "web/admin/sources.html", page, session, status=400)
    return see_other(f"/admin/sources?done={'source-known' if known else 'source-added'}")


@router.post("/admin/sources/{source_id}/remove")
def remove(source_id: RowId, user: AdminUser, _: CsrfForm, app: AppDep) -> Response:
    """Delete a source, its list links and articles (sent editions keep their copies)."""
    def work(s: Session) -> None:
        if not remove_source(s, source_id):
            raise HTTPException(404)

    in_transaction(app, work)
    return see_other("/admin/sources?done=source-removed")


@router.post("/admin/sources/{source_id}/fetch")
async def fetch_now(source_id: RowId, user: AdminUser, _: CsrfForm, app: AppDep) -> Response:
    await run_in_threadpool(_exists, app, source_id)
    job = asyncio.get_running_loop().run_in_executor(None, _fetch, app, source_id)
    try:
        # shield: on timeout the fetch goes on (a thread cannot be stopped anyway).
        report = await asyncio.wait_for(asyncio.shield(job), FETCH_WAIT)
    except TimeoutError:
        return see_other(f"/admin/sources?fetching={source_id}")
    if report is not None and report.status == BUSY:
        return see_other(f"/admin/sources?busy={source_id}")
    new = report.new if report else 0
    return see_other(f"/admin/sources?fetched={source_id}&new={new}")


def _exists(app: App, source_id: int) -> None:
    with app.sessions() as s:
        get_or_404(s, Source, source_id)


def _fetch(app: App, source_id: int) -> SourceReport | None:
    """Fetch one source; its report (None if that failed, as logged). Failures of the
    fetch itself are recorded on the source."""
    try:
        with app.sessions() as s:
            (report,) = app.fetch(s, source_id)
        return report
    except Exception:  # the thread's only caller may have stopped waiting
        log.exception("fetching source %s", source_id)
        return None


def _result(s: Session, fetched: int | None, new: int, fetching: int | None,
            busy: int | None) -> str:
    """What "Fetch now" did, from the source's own record (nothing from the URL but ids
    and a count)."""
    source = s.get(Source, fetched or fetching or busy or 0)
    if source is None:
        return ""
    label = source_label(source)
    if fetching:
        return (f"{label} is still being fetched; reload this page in a minute to see "
                "what came of it.")
    if busy:
        return (f"{label} is being fetched elsewhere (by the scheduler, the command line "
                "or an earlier Fetch now), so it was not fetched twice; reload this page "
                "in a minute to see what came of it.")
    if health(source) == FAILING:
        return f"Fetching {label} failed: {source.last_error}"
    return f"Fetched {label}: {max(new, 0)} new article{'s' if new != 1 else ''}."


def _page(s: Session, now: dt.datetime, *, list_name: str = "", url: str = "",
          full_text: bool = False, error: str = "", done: str = "",
          result: str = "") -> SourcesPage:
    names: dict[int, list[str]] = {}
    for source_id, name in s.execute(
            select(ListSource.source_id, MailingList.name)
            .join(MailingList, MailingList.id == ListSource.list_id)
            .order_by(MailingList.name)):
        names.setdefault(source_id, []).append(name)
    rows = [
        SourceRow(
            id=src.id, label=source_label(src), url=src.url, kind=src.kind,
            full_text=src.full_text, lists=names.get(src.id, []), health=health(src),
            last_success=when(src.last_success_at),
            last_success_ago=ago(src.last_success_at, now),
            failures=src.consecutive_failures, last_error=src.last_error,
            next_fetch=when(src.next_fetch_at) if src.next_fetch_at else "with the next round",
        )
        for src in s.scalars(select(Source).order_by(Source.consecutive_failures.desc(),
                                                     Source.id))
    ]
    if list_name:
        list_or_404(s, list_name)
    return SourcesPage(title=f"Sources of {list_name}" if list_name else "Sources",
                       section="sources", notice=done, sources=rows,
                       lists=[m.name for m in all_lists(s)], url=url, list_name=list_name,
                       full_text=full_text, error=error, result=result)
