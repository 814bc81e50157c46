"""CSV imports in the console: the upload form, a job's progress and summary, and its
rejects as a download. The work itself is `digest.imports`.

The upload is refused before it is read when its Content-Length says it is too large
(or there is none: browsers always send one for a form). Starlette's form parser keeps
at most 1 MB of a file in memory and spools the rest to a temporary file, which is then
copied into `<data_dir>/imports/` in blocks (`digest.imports.store_upload`, mode 0600):
a 200 MB file never sits in memory. The copy is deleted when its job ends.
The size is checked after the admin's role and before the CSRF token, because reading
the token means reading the body.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from digest import imports
from digest.app import App
from digest.errors import NotFound
from digest.web.admin.common import AdminPage, ListParam, list_or_404, render, see_other, when
from digest.web.auth import AdminUser, CsrfForm, Viewer
from digest.web.deps import AppDep, PagesDep, RowId
from digest.web.pages import Pages, WebSession
from subscribers.lists import all_lists
from subscribers.models import ImportJob, ImportStatus, MailingList

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
#: Room for the form's other fields and the multipart framing around the file.
FORM_OVERHEAD = 64 * 1024


@dataclass(frozen=True)
class JobView:
    """An import job as the pages show it."""

    id: int
    list_name: str
    filename: str
    size: int
    confirmed: bool
    created_by: str
    status: str  # queued | running | done | failed
    rows: int
    added: int
    updated: int
    unchanged: int
    rejected: int
    suppressed: int
    confirmations: int
    error: str
    created: str
    finished: str
    has_rejects: bool
    rejects_until: str  # when the rejects file is deleted ("" without one)
    rejects_gone: bool  # it was, after keep_days
    keep_days: int  # [imports] keep_rejects_days

    @property
    def working(self) -> bool:
        return self.status in (ImportStatus.QUEUED, ImportStatus.RUNNING)


@dataclass(frozen=True, kw_only=True)
class ImportsPage(AdminPage):
    """web/admin/imports.html: the upload form (`list_name` chosen, `error` after a
    refused upload, about the field `error_at`: file, list, or none) and recent jobs."""

    lists: list[str]
    list_name: str
    jobs: list[JobView]
    max_mb: int = imports.MAX_UPLOAD // (1024 * 1024)
    error: str = ""
    error_at: str = ""


@dataclass(frozen=True, kw_only=True)
class JobPage(AdminPage):
    """web/admin/import.html: one job. It never reloads itself (WCAG 2.2.1: a reload
    nobody asked for moves the keyboard to the top and cannot be stopped); while the
    job works a "Check progress" button asks for the page again, and `checked` says it
    was pressed (or that the upload just led here), so the status gets the focus and a
    screen reader reads the figures."""

    job: JobView
    checked: bool = False


def upload_size(request: Request) -> int:
    """The request's declared size, refused (411, 413) before its body is read."""
    length = request.headers.get("content-length", "")
    if not length.isdigit():
        raise HTTPException(411, "send the file from the import form")
    if int(length) > imports.MAX_UPLOAD + FORM_OVERHEAD:
        raise HTTPException(413)
    return int(length)


UploadSize = Annotated[int, Depends(upload_size)]


@router.get("/admin/imports")
def imports_page(user: AdminUser, session: Viewer, app: AppDep, pages: PagesDep,
                 list_name: ListParam = "") -> Response:
    return _imports_page(app, pages, session, list_name)


@router.post("/admin/imports")
async def upload(request: Request, user: AdminUser, _size: UploadSize, _: CsrfForm,
                 session: Viewer, app: AppDep, pages: PagesDep) -> Response:
    form = await request.form()
    try:
        return await _accept(app, pages, session, form, user.email)
    finally:
        await form.close()  # the spooled upload: parsed by hand, so closed by hand


async def _accept(app: App, pages: Pages, session: WebSession, form: FormData,
                  created_by: str) -> Response:
    file = form.get("file")
    list_name = str(form.get("list", ""))
    if not await run_in_threadpool(_list_exists, app, list_name):
        return _imports_page(app, pages, session, "", status=400,
                             error="Choose the list to import into.", error_at="list")
    if not isinstance(file, UploadFile) or not file.filename:
        return _imports_page(app, pages, session, list_name, status=400,
                             error="Choose a CSV file to import.", error_at="file")
    try:
        path, size = await run_in_threadpool(imports.store_upload, app, file.file)
    except OSError as exc:  # the state folder is not writable, or the disk is full
        log.error("an import upload could not be stored: %s", exc)
        return _imports_page(app, pages, session, list_name, status=503,
                             error=imports.unstorable(app, exc))
    if size == 0:
        path.unlink(missing_ok=True)
        return _imports_page(app, pages, session, list_name, status=400,
                             error=f"{file.filename} is empty.", error_at="file")
    try:
        job_id = await run_in_threadpool(_create, app, list_name, file.filename, path, size,
                                         "confirmed" in form, created_by)
    except BaseException:
        path.unlink(missing_ok=True)  # no job will delete it
        raise
    imports.start(app, job_id)
    # Focus on the job's status on arrival too, so a screen reader says it has begun.
    return see_other(f"/admin/imports/{job_id}?checked=1")


@router.get("/admin/imports/{job_id}")
def job_page(job_id: RowId, user: AdminUser, session: Viewer, app: AppDep,
             pages: PagesDep, checked: bool = False) -> Response:
    """`?checked=1` comes from the page's own "Check progress" button."""
    job = _job(app, job_id)
    page = JobPage(title=f"Import of {job.filename}", section="imports", job=job,
                   checked=checked)
    return render(pages, "web/admin/import.html", page, session)


@router.get("/admin/imports/{job_id}/rejects.csv")
def rejects(job_id: RowId, user: AdminUser, app: AppDep) -> Response:
    """The refused rows: line, row as it was, reason."""
    with app.sessions() as s:
        job = s.get(ImportJob, job_id)
        path = Path(job.rejects_path) if job and job.rejects_path else None
        filename = Path(job.filename).stem if job else ""
    # Only ever a file of the imports folder, whatever the row says.
    if path is None or not path.is_file() \
            or path.resolve().parent != imports.imports_dir(app).resolve():
        raise HTTPException(404)
    return FileResponse(path, media_type="text/csv; charset=utf-8",
                        filename=f"{filename or 'import'}-rejects.csv",
                        headers={"Cache-Control": "no-store"})


def _list_exists(app: App, list_name: str) -> bool:
    with app.sessions() as s:
        return s.scalar(select(MailingList.id).where(MailingList.name == list_name)) is not None


def _create(app: App, list_name: str, filename: str, path: Path, size: int,
            confirmed: bool, created_by: str) -> int:
    with app.sessions() as s:
        mlist = list_or_404(s, list_name)
        job = imports.create_job(s, mlist, filename=Path(filename).name, path=path,
                                 size=size, confirmed=confirmed, created_by=created_by,
                                 now=app.clock())
        s.commit()
        return job.id


def _job(app: App, job_id: int) -> JobView:
    with app.sessions() as s:
        try:
            return _view(app, imports.get_job(s, job_id, now=app.clock()))
        except NotFound:
            raise HTTPException(404) from None


def _imports_page(app: App, pages: Pages, session: WebSession, list_name: str, *,
                  status: int = 200, error: str = "", error_at: str = "") -> Response:
    with app.sessions() as s:
        mlist = list_or_404(s, list_name) if list_name else None
        jobs = imports.recent_jobs(s, now=app.clock(), list_id=mlist.id if mlist else None)
        page = ImportsPage(title=f"Import subscribers into {list_name}" if list_name
                           else "Import subscribers", section="imports",
                           lists=[m.name for m in all_lists(s)], list_name=list_name,
                           jobs=[_view(app, j) for j in jobs], error=error,
                           error_at=error_at)
    return render(pages, "web/admin/imports.html", page, session, status=status)


def _view(app: App, job: ImportJob) -> JobView:
    until = imports.rejects_until(app, job)
    return JobView(
        id=job.id, list_name=job.mailing_list.name, filename=job.filename, size=job.size,
        confirmed=job.confirmed, created_by=job.created_by, status=job.status,
        rows=job.rows, added=job.added, updated=job.updated, unchanged=job.unchanged,
        rejected=job.rejected, suppressed=job.suppressed, confirmations=job.confirmations,
        error=job.error, created=when(job.created_at), finished=when(job.finished_at),
        has_rejects=until is not None, rejects_until=when(until) if until else "",
        rejects_gone=job.status == ImportStatus.DONE and job.rejected > 0 and until is None,
        keep_days=app.settings["imports.keep_rejects_days"])
