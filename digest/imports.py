"""CSV imports started from the web: a job row per upload, run in a thread of the web
process by `subscribers.importing.import_csv`, as `digest subscribers import` runs it.

The file is kept under `<data_dir>/imports/` with its rejects next to it. While the
import runs, its progress callback writes the rows done so far and a heartbeat to the
job row, and commits, at most every PROGRESS_SECONDS: in the import's own transaction,
because on SQLite a second connection could not write while the import holds the write
lock. Committing there is safe: the import is committed in parts anyway (see
`subscribers.importing`), and running it again only finds the rows already in
("unchanged").

A process that dies mid-import (a deploy, a crash) leaves its job "running" with an old
heartbeat. Whoever reads the job next (`get_job`, `recent_jobs`) marks such a job
failed as interrupted, after STALE_AFTER without a heartbeat; the import's
committed part stays, and uploading the file again finishes it.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from digest.app import App
from digest.deliver import confirm
from digest.errors import DigestError, NotFound
from subscribers.importing import import_csv
from subscribers.models import ImportJob, ImportStatus, MailingList

log = logging.getLogger(__name__)

#: Largest upload accepted, in bytes. A million rows with a few columns is ~60 MB.
MAX_UPLOAD = 200 * 1024 * 1024
#: The job row is updated (and the import committed) at most this often.
PROGRESS_SECONDS = 2.0
#: A job not heard from for this long is taken for dead. Far above the longest gap
#: between two heartbeats (a batch and a commit of 100,000 rows: seconds).
STALE_AFTER = dt.timedelta(minutes=5)
INTERRUPTED = ("interrupted: the web process stopped during the import (restart or "
               "crash); what was imported before stays. Upload the file again to finish: "
               "rows already in count as unchanged")

_threads: dict[int, threading.Thread] = {}
_threads_lock = threading.Lock()


def imports_dir(app: App) -> Path:
    """Where uploads and their rejects are kept: `<data_dir>/imports`."""
    folder = app.settings.path("data_dir") / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def upload_path(app: App) -> Path:
    """A new, unguessable file name for an upload."""
    return imports_dir(app) / f"{dt.date.today():%Y%m%d}-{secrets.token_hex(8)}.csv"


def create_job(s: Session, mlist: MailingList, *, filename: str, path: Path, size: int,
               confirmed: bool, created_by: str, now: dt.datetime) -> ImportJob:
    """A queued job for an uploaded file, already stored at `path`."""
    job = ImportJob(list_id=mlist.id, filename=filename[:300], path=str(path), size=size,
                    confirmed=confirmed, created_by=created_by, status=ImportStatus.QUEUED,
                    created_at=now, heartbeat_at=now)
    s.add(job)
    s.flush()
    return job


def start(app: App, job_id: int) -> threading.Thread:
    """Run the job in a daemon thread of this process (see `run`)."""
    thread = threading.Thread(target=run, args=(app, job_id), name=f"import-{job_id}",
                              daemon=True)
    with _threads_lock:
        _threads[job_id] = thread
    thread.start()
    return thread


def wait(timeout: float | None = None) -> bool:
    """Wait for this process's import threads to end; whether they all did. For a
    clean shutdown, and tests."""
    deadline = None if timeout is None else time.monotonic() + timeout
    with _threads_lock:
        threads = list(_threads.values())
    for thread in threads:
        thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
    return not any(t.is_alive() for t in threads)


def run(app: App, job_id: int) -> None:
    """Import the job's file, recording progress and the outcome on the job. Never
    raises: a failure is the job's `error`. After a done import of addresses nobody
    vouched for, their confirmation mails are queued for the sender."""
    try:
        try:
            list_name = _import(app, job_id)
        except DigestError as exc:  # the file's fault: the message says what to fix
            log.warning("import job %s failed: %s", job_id, exc)
            _fail(app, job_id, str(exc))
            return
        except Exception as exc:
            log.exception("import job %s failed", job_id)
            _fail(app, job_id, f"unexpected {type(exc).__name__}: {exc}; the web "
                               "server's log has the details")
            return
        if list_name:
            app.mail_queued.set()  # the sender mails them; this thread never sends
    finally:
        with _threads_lock:
            _threads.pop(job_id, None)


def _import(app: App, job_id: int) -> str | None:
    """The import; the list's name if confirmation mails were queued."""
    with app.sessions() as s:
        job = s.get_one(ImportJob, job_id)
        mlist = s.get_one(MailingList, job.list_id)
        now = app.clock()
        job.status, job.started_at, job.heartbeat_at = ImportStatus.RUNNING, now, now
        s.commit()
        path = Path(job.path)
        vouched = job.confirmed or not mlist.double_optin
        report = import_csv(s, mlist, path, confirmed=vouched, now=now,
                            rejects_path=path.with_name(path.stem + ".rejects.csv"),
                            progress=_progress(app, s, job_id))
        queued = 0 if vouched else confirm.queue_pending(s, mlist, app.clock())
        s.execute(update(ImportJob).where(ImportJob.id == job_id).values(
            status=ImportStatus.DONE, rows=report.rows, added=report.added,
            updated=report.updated, unchanged=report.unchanged, rejected=report.rejected,
            suppressed=report.suppressed, confirmations=queued,
            rejects_path=str(report.rejects_path or ""), error="",
            heartbeat_at=app.clock(), finished_at=app.clock()))
        s.commit()
        return mlist.name if queued else None


def _progress(app: App, s: Session, job_id: int) -> Callable[[int], None]:
    """import_csv's progress callback: rows done, written and committed every
    PROGRESS_SECONDS (see the module docstring)."""
    done = 0
    last = time.monotonic()

    def advance(rows: int) -> None:
        nonlocal done, last
        done += rows
        if time.monotonic() - last >= PROGRESS_SECONDS:
            s.execute(update(ImportJob).where(ImportJob.id == job_id)
                      .values(rows=done, heartbeat_at=app.clock()))
            s.commit()
            last = time.monotonic()

    return advance


def _fail(app: App, job_id: int, error: str) -> None:
    """Record the failure; the core names the file by its stored name, the admin knows
    it by the one they uploaded."""
    with app.sessions() as s:
        job = s.get_one(ImportJob, job_id)
        job.status, job.finished_at = ImportStatus.FAILED, app.clock()
        job.error = error.replace(Path(job.path).name, job.filename)[:2000]
        s.commit()


def get_job(s: Session, job_id: int, *, now: dt.datetime) -> ImportJob:
    """The job, marked failed first if its process is gone (see the module docstring)."""
    fail_stale(s, now)
    job = s.get(ImportJob, job_id)
    if job is None:
        raise NotFound(f"no import job {job_id}")
    return job


def recent_jobs(s: Session, *, now: dt.datetime, list_id: int | None = None,
                limit: int = 20) -> list[ImportJob]:
    """The newest jobs, of one list or all."""
    fail_stale(s, now)
    stmt = select(ImportJob).order_by(ImportJob.id.desc()).limit(limit)
    if list_id is not None:
        stmt = stmt.where(ImportJob.list_id == list_id)
    return list(s.scalars(stmt))


def fail_stale(s: Session, now: dt.datetime) -> int:
    """Mark queued or running jobs without a heartbeat for STALE_AFTER as failed
    (interrupted), but for those whose thread runs in this process; how many.

    Looked for with a read first: on SQLite even an UPDATE of no rows waits for the
    write lock, which a running import holds between its commits."""
    unfinished = ImportJob.status.in_((ImportStatus.QUEUED, ImportStatus.RUNNING))
    stale = set(s.scalars(select(ImportJob.id).where(
        unfinished,
        or_(ImportJob.heartbeat_at.is_(None), ImportJob.heartbeat_at < now - STALE_AFTER))))
    with _threads_lock:
        stale -= {job_id for job_id, thread in _threads.items() if thread.is_alive()}
    if not stale:
        return 0
    result = s.execute(
        update(ImportJob)
        .where(ImportJob.id.in_(stale), unfinished)
        .values(status=ImportStatus.FAILED, error=INTERRUPTED, finished_at=now))
    s.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]
