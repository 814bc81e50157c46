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
heartbeat. Whoever reads the job next (`get_job`, `recent_jobs`, `purge`) marks such a
job failed as interrupted, after STALE_AFTER without a heartbeat; the import's
committed part stays, and uploading the file again finishes it.

The files hold people's addresses, so they live no longer than they serve: the upload
is deleted when its job ends, however it ends (done, failed, found dead); a done job's
rejects file stays for the admin to download, `[imports] keep_rejects_days` after the
job ended, and the rejects of a job that did not finish go with its upload. `purge`,
which `digest serve`'s scheduler runs at start and hourly, deletes expired rejects and
whatever else no job needs. The folder is 0700, the files 0600, whatever the umask.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from digest import state
from digest.app import App
from digest.deliver import confirm
from digest.errors import DigestError, NotFound
from digest.files import FOLDER, private_folder
from subscribers.importing import import_csv
from subscribers.models import ImportJob, ImportStatus, MailingList
from subscribers.rejects import PRIVATE, rejects_of

log = logging.getLogger(__name__)

#: Largest upload accepted, in bytes. A million rows with a few columns is ~60 MB.
MAX_UPLOAD = 200 * 1024 * 1024
#: The job row is updated (and the import committed) at most this often.
PROGRESS_SECONDS = 2.0
#: A job not heard from for this long is taken for dead. Far above the longest gap
#: between two heartbeats (a batch and a commit of 100,000 rows: seconds).
STALE_AFTER = dt.timedelta(minutes=5)
#: A file in the folder that no job needs is deleted by `purge` once it is this old: a
#: younger one may be an upload whose job is being created.
LEFTOVER_AFTER = dt.timedelta(hours=1)
INTERRUPTED = ("interrupted: the web process stopped during the import (restart or "
               "crash); what was imported before stays. Upload the file again to finish: "
               "rows already in count as unchanged")

UNFINISHED = (ImportStatus.QUEUED, ImportStatus.RUNNING)

_threads: dict[int, threading.Thread] = {}
_threads_lock = threading.Lock()


def imports_dir(app: App) -> Path:
    """Where uploads and their rejects are kept: `<data_dir>/imports`."""
    return state.imports_dir(app.settings)


def store_upload(app: App, source: BinaryIO) -> tuple[Path, int]:
    """Copy an upload, in blocks, to a new file of the imports folder under an
    unguessable name, readable by its owner alone; the file and its size."""
    folder = imports_dir(app)
    private_folder(folder)
    folder.chmod(FOLDER)  # also a folder made before, or under a umask taking more
    path = folder / f"{app.clock():%Y%m%d}-{secrets.token_hex(8)}.csv"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
    try:
        os.fchmod(fd, PRIVATE)  # exact, whatever the umask
        source.seek(0)
        with open(fd, "wb", closefd=False) as target:
            shutil.copyfileobj(source, target, 1024 * 1024)
            return path, target.tell()
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)


def unstorable(app: App, exc: OSError) -> str:
    """What to tell the admin when `store_upload` failed: what the operator must fix."""
    try:
        state.require_writable(app.settings, imports=True)
    except DigestError as problem:
        why = str(problem)
    else:  # writable, yet it failed: a full disk, a quota
        why = f"{exc.strerror or exc} in {imports_dir(app)}"
    return (f"The file could not be stored, so nothing was imported: {why}. Ask whoever "
            "runs the server to fix this, then upload the file again.")


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
    vouched for, their confirmation mails are queued for the sender. However it ends,
    the upload is deleted, and the rejects too unless the job is done."""
    path: Path | None = None
    done = False
    try:
        try:
            with app.sessions() as s:
                path = Path(s.get_one(ImportJob, job_id).path)
            list_name = _import(app, job_id, path)
            done = True
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
        if path is not None:
            _discard([path] if done else [path, rejects_of(path)])
        with _threads_lock:
            _threads.pop(job_id, None)


def _import(app: App, job_id: int, path: Path) -> str | None:
    """The import; the list's name if confirmation mails were queued."""
    with app.sessions() as s:
        job = s.get_one(ImportJob, job_id)
        mlist = s.get_one(MailingList, job.list_id)
        now = app.clock()
        job.status, job.started_at, job.heartbeat_at = ImportStatus.RUNNING, now, now
        s.commit()
        vouched = job.confirmed or not mlist.double_optin
        report = import_csv(s, mlist, path, confirmed=vouched, now=now,
                            rejects_path=rejects_of(path), progress=_progress(app, s, job_id))
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
    (interrupted), but for those whose thread runs in this process, and delete their
    upload and the rejects they began; how many.

    Looked for with a read first: on SQLite even an UPDATE of no rows waits for the
    write lock, which a running import holds between its commits."""
    stale = dict(s.execute(select(ImportJob.id, ImportJob.path).where(
        ImportJob.status.in_(UNFINISHED),
        or_(ImportJob.heartbeat_at.is_(None), ImportJob.heartbeat_at < now - STALE_AFTER))
    ).all())
    with _threads_lock:
        for job_id, thread in _threads.items():
            if thread.is_alive():
                stale.pop(job_id, None)
    if not stale:
        return 0
    failed = list(s.scalars(
        update(ImportJob)
        .where(ImportJob.id.in_(stale), ImportJob.status.in_(UNFINISHED))
        .values(status=ImportStatus.FAILED, error=INTERRUPTED, finished_at=now)
        .returning(ImportJob.id)))
    s.commit()
    uploads = [Path(stale[job_id]) for job_id in failed]
    _discard([*uploads, *map(rejects_of, uploads)])
    return len(failed)


def rejects_until(app: App, job: ImportJob) -> dt.datetime | None:
    """When `purge` deletes a done job's rejects file (None: it has none, or the job
    is not done)."""
    if job.status != ImportStatus.DONE or not job.rejects_path or job.finished_at is None:
        return None
    return job.finished_at + _keep_rejects(app)


def purge(app: App) -> list[str]:
    """Delete what the imports folder no longer needs; the names deleted. The rejects of
    jobs done more than `[imports] keep_rejects_days` ago (the job then says it has none),
    the files of jobs found dead (`fail_stale`), and any other file no queued, running
    or done job names once it is LEFTOVER_AFTER old: an upload whose job ended in a
    crash, or every upload kept before uploads were deleted. Run by `digest serve`'s
    scheduler at start and hourly."""
    now = app.clock()
    with app.sessions() as s:
        fail_stale(s, now)
        expired = dict(s.execute(select(ImportJob.id, ImportJob.rejects_path).where(
            ImportJob.status == ImportStatus.DONE, ImportJob.rejects_path != "",
            ImportJob.finished_at < now - _keep_rejects(app))).all())
        if expired:
            s.execute(update(ImportJob).where(ImportJob.id.in_(expired))
                      .values(rejects_path=""))
            s.commit()
        _discard(Path(p) for p in expired.values())
        needed = {Path(p).name for p in s.scalars(
            select(ImportJob.rejects_path).where(ImportJob.rejects_path != ""))}
        for path in s.scalars(select(ImportJob.path).where(
                ImportJob.status.in_(UNFINISHED))):
            needed |= {Path(path).name, rejects_of(Path(path)).name}
    deleted = [Path(p).name for p in expired.values()]
    folder = imports_dir(app)
    if not folder.is_dir():
        return deleted
    old = time.time() - LEFTOVER_AFTER.total_seconds()
    with os.scandir(folder) as entries:
        leftovers = [Path(e.path) for e in entries if e.name not in needed
                     and e.is_file(follow_symlinks=False) and e.stat().st_mtime < old]
    _discard(leftovers)
    deleted += [p.name for p in leftovers]
    if deleted:
        log.info("imports: deleted %s", ", ".join(sorted(deleted)))
    return deleted


def _keep_rejects(app: App) -> dt.timedelta:
    return dt.timedelta(days=max(0, app.settings["imports.keep_rejects_days"]))


def _discard(paths: Iterable[Path]) -> None:
    """Delete files that may or may not be there; a failure is logged, never raised (the
    next `purge` tries again)."""
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.error("could not delete %s: %s; the next purge tries again", path, exc)
