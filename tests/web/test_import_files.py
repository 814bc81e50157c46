"""What a console import leaves on disk (issue 9, finding 12): the upload is deleted when
its job ends, however it ends; only the rejects file stays, owner-only, for
`[imports] keep_rejects_days`, after which the scheduler purges it; `digest subscribers
forget` takes the person out of every rejects file. Run under umask 022, which would
leave files group- and world-readable."""

from __future__ import annotations

import csv
import io
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from sqlalchemy import select

from digest import imports, schedule
from digest.app import App
from digest.cli import main
from subscribers.lists import get_list
from subscribers.models import ImportJob, ImportStatus
from tests.conftest import Clock
from tests.test_file_modes import mode, umask_022  # noqa: F401 (a fixture)
from tests.web.api_support import *  # noqa: F403 (admin_api: a fixture)
from tests.web.conftest import ADMIN_EMAIL, ALICE, World, log_in
from tests.web.test_admin_imports import finished, upload

BAD_ROW = ("email,name\n"
           "dana@example.org,Dana\n"
           "not-an-address,Nobody\n")  # line 3: rejected


@pytest.fixture(autouse=True)
def _no_import_left_running() -> Iterator[None]:
    yield
    assert imports.wait(30), "an import thread was still running after the test"


def folder(app: App) -> Path:
    return Path(app.settings["data_dir"]) / "imports"


def job_of(app: App, job_url: str) -> ImportJob:
    with app.sessions() as s:
        return s.get_one(ImportJob, int(job_url.rsplit("/", 1)[1]))


@pytest.mark.usefixtures("umask_022")
def test_an_upload_is_deleted_when_its_job_ends_and_only_its_rejects_stay(
        admin_client: TestClient, world: World, app: App) -> None:
    done = finished(admin_client, upload(admin_client, BAD_ROW.encode()).headers["location"])
    assert "Done" in done.text and "Download rejects" in done.text
    failed = finished(admin_client, upload(admin_client, b"name\nDana\n").headers["location"])
    assert "The import failed" in failed.text

    done_job, failed_job = job_of(app, done.url.path), job_of(app, failed.url.path)
    assert not Path(done_job.path).exists(), "the upload of a finished job was kept"
    assert not Path(failed_job.path).exists(), "the upload of a failed job was kept"
    rejects = Path(done_job.rejects_path)
    assert [p.name for p in folder(app).iterdir()] == [rejects.name]
    assert mode(rejects) == oct(0o600)
    assert mode(folder(app)) == oct(0o700)
    download = admin_client.get(f"{done.url.path}/rejects.csv")
    assert download.status_code == 200 and "not-an-address,Nobody" in download.text


@pytest.mark.usefixtures("umask_022")
def test_the_upload_of_an_abandoned_job_is_private_and_deleted_when_it_is_found_dead(
        admin_client: TestClient, world: World, app: App, clock: Clock) -> None:
    """A web process that died mid-import leaves its job running; whoever finds it dead
    deletes its upload and the rejects it had begun."""
    path, size = imports.store_upload(app, io.BytesIO(BAD_ROW.encode()))
    assert path.parent == folder(app) and size == len(BAD_ROW)
    assert mode(path) == oct(0o600) and mode(folder(app)) == oct(0o700)
    begun = path.with_name(path.stem + ".rejects.csv")
    begun.write_text("line,row,reason\n3,\"not-an-address,Nobody\",bad\n")
    with app.sessions() as s:
        job = imports.create_job(s, get_list(s, "news"), filename="people.csv", path=path,
                                 size=size, confirmed=True, created_by="admin@example.org",
                                 now=clock())
        job.status = ImportStatus.RUNNING  # as a killed web process left it
        s.commit()
        job_id = job.id
    assert "Check progress" in admin_client.get(f"/admin/imports/{job_id}").text
    assert path.exists()  # alive as far as anyone knows

    clock.advance(minutes=6)
    page = admin_client.get(f"/admin/imports/{job_id}")
    assert "The import failed: interrupted" in page.text
    assert list(folder(app).iterdir()) == []


def run_purge(app: App) -> None:
    """The scheduler of `digest serve` started, and its imports purge run once."""
    ran = threading.Event()
    events: list[JobExecutionEvent] = []

    def listen(event: JobExecutionEvent) -> None:
        if event.job_id == schedule.PURGE_JOB:
            events.append(event)
            ran.set()

    sched = schedule.Scheduler(app)
    sched.aps.add_listener(listen, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    sched.start(paused=True)
    try:
        assert sched.aps.get_job(schedule.PURGE_JOB) is not None, "no purge job"
        for job in sched.aps.get_jobs():  # no fetches or editions: this is about files
            if job.id != schedule.PURGE_JOB:
                job.remove()
        sched.aps.resume()
        assert ran.wait(10), "the purge did not run at start"
    finally:
        sched.shutdown()
    assert events[0].exception is None, events[0].traceback


def relog(client: TestClient) -> None:
    """A fresh login: a month on, the admin's session may have expired."""
    client.cookies.clear()
    log_in(client, ADMIN_EMAIL)


def test_rejects_are_kept_for_keep_rejects_days_then_purged_by_the_scheduler(
        admin_client: TestClient, world: World, app: App, clock: Clock) -> None:
    assert app.settings["imports.keep_rejects_days"] == 30
    page = finished(admin_client, upload(admin_client, BAD_ROW.encode()).headers["location"])
    job_url = page.url.path
    rejects = Path(job_of(app, job_url).rejects_path)
    assert "kept until 2026-12-27 06:00 UTC" in page.text

    clock.advance(days=29, hours=23)
    run_purge(app)
    assert rejects.exists(), "purged before its time"
    relog(admin_client)
    download = admin_client.get(f"{job_url}/rejects.csv")
    assert download.status_code == 200 and "not-an-address" in download.text

    clock.advance(hours=2)
    run_purge(app)
    assert not rejects.exists(), "the rejects outlived [imports] keep_rejects_days"
    assert list(folder(app).iterdir()) == []
    relog(admin_client)
    assert admin_client.get(f"{job_url}/rejects.csv").status_code == 404
    page = admin_client.get(job_url)
    assert "Download rejects" not in page.text
    assert "its rejects file was deleted after 30 days" in page.text


def test_the_purge_sweeps_what_no_job_needs(
        admin_client: TestClient, world: World, app: App, clock: Clock) -> None:
    """Uploads kept before uploads were deleted, and files a crash left behind, go; a
    file younger than an hour may be an upload whose job is about to be made: it stays."""
    page = finished(admin_client, upload(admin_client, BAD_ROW.encode()).headers["location"])
    job = job_of(app, page.url.path)
    kept_upload = Path(job.path)  # as every upload was kept before
    kept_upload.write_text(BAD_ROW)
    stray = folder(app) / "20250101-0123456789abcdef.csv"
    stray.write_text(BAD_ROW)
    hour_ago = time.time() - 3700
    for path in (kept_upload, stray):
        os.utime(path, (hour_ago, hour_ago))
    arriving = folder(app) / "20261127-fedcba9876543210.csv"
    arriving.write_text(BAD_ROW)

    run_purge(app)
    assert sorted(p.name for p in folder(app).iterdir()) == sorted(
        [Path(job.rejects_path).name, arriving.name])


def rejects_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


@pytest.mark.usefixtures("umask_022")
def test_forget_takes_the_person_out_of_every_rejects_file(
        admin_client: TestClient, world: World, app: App, clock: Clock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    first = ("email,name\n"
             f"{ALICE},Alice,one field too many\n"  # line 2
             "malice@example.org,Mal,x\n"  # line 3: another address that contains hers
             "not-an-address,Nobody\n")  # line 4
    second = ("email,name\n"
              "x@@example.org,ALICE@Example.ORG\n"  # line 2: hers, in another column
              "=1+1,Formula\n")  # line 3
    jobs = []
    for body in (first, second):
        page = finished(admin_client, upload(admin_client, body.encode()).headers["location"])
        jobs.append(job_of(app, page.url.path))
    paths = [Path(j.rejects_path) for j in jobs]
    assert [len(rejects_rows(p)) for p in paths] == [4, 3]
    # An import still running: its files are its own until it ends.
    running = folder(app) / "20261127-00000000000000aa.csv"
    running.write_text(f"email\n{ALICE}\n")
    busy = running.with_name(running.stem + ".rejects.csv")
    busy.write_text(f"line,row,reason\n2,\"{ALICE},x\",row has 2 fields\n")
    with app.sessions() as s:
        job = imports.create_job(s, get_list(s, "news"), filename="more.csv", path=running,
                                 size=1, confirmed=True, created_by="admin@example.org",
                                 now=clock())
        job.status = ImportStatus.RUNNING
        s.commit()

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIGEST_CONFIG", raising=False)
    result = CliRunner().invoke(main, ["subscribers", "forget", ALICE, "--yes"], env={
        "DIGEST_DATABASE_URL": app.settings["database.url"],
        "DIGEST_DATA_DIR": str(Path(app.settings["data_dir"]).resolve()),
    })
    assert result.exit_code == 0, result.output
    assert "Erased 2 rows naming alice@example.org from the rejects of console " \
           "imports" in result.output
    assert "1 import is still running" in result.output

    assert [r[:2] for r in rejects_rows(paths[0])] == [
        ["line", "row"], ["3", "malice@example.org,Mal,x"], ["4", "not-an-address,Nobody"]]
    assert [r[:2] for r in rejects_rows(paths[1])] == [["line", "row"], ["3", "'=1+1,Formula"]]
    for path in paths:
        assert mode(path) == oct(0o600)
        assert "alice@" not in path.read_text().lower().replace("malice@", "")
    assert ALICE in busy.read_text()  # left to its import
    assert sorted(p.name for p in folder(app).iterdir()) == sorted(
        [*(p.name for p in paths), running.name, busy.name])  # no temporary file left
    download = admin_client.get(f"/admin/imports/{jobs[1].id}/rejects.csv")
    assert download.status_code == 200 and "Formula" in download.text
    with app.sessions() as s:
        assert s.scalars(select(ImportJob.rejects_path).where(
            ImportJob.id == jobs[0].id)).one() == str(paths[0])


def test_an_upload_that_cannot_be_stored_gets_a_page_saying_why_not_a_500(
        admin_client: TestClient, world: World, app: App) -> None:
    # As root no folder is unwritable, so the imports folder is blocked by a file
    # instead: the same OSError from store_upload (tests/test_startup.py runs the
    # permission case as another user).
    folder(app).parent.mkdir(parents=True, exist_ok=True)
    folder(app).write_text("in the way")
    r = upload(admin_client, BAD_ROW.encode())
    assert r.status_code == 503
    assert "The file could not be stored, so nothing was imported" in r.text
    assert f"{folder(app)} is not a folder" in r.text
    with app.sessions() as s:
        assert s.scalars(select(ImportJob)).all() == []


VICTIM = "victim2@example.com"


def forget_cli(app: App, address: str) -> Result:
    return CliRunner().invoke(main, ["subscribers", "forget", address, "--yes"], env={
        "DIGEST_DATABASE_URL": app.settings["database.url"],
        "DIGEST_DATA_DIR": str(Path(app.settings["data_dir"]).resolve()),
        "DIGEST_DELIVERY_OUTBOX_DIR": str(Path(app.settings["delivery.outbox_dir"]).resolve()),
    })


@pytest.mark.usefixtures("umask_022")
def test_forget_erases_an_address_that_was_never_a_subscriber(
        admin_client: TestClient, admin_api: TestClient, world: World, app: App,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = ("email,name\n"
            "bad@@x,y,contact VICTIM2@example.com please\n"
            "VICTIM2@EXAMPLE.COM;,z,\n"
            "not-an-address,Nobody\n"
            "x@@y,victim3@example.com\n")
    page = finished(admin_client, upload(admin_client, body.encode()).headers["location"])
    rejects = Path(job_of(app, page.url.path).rejects_path)
    assert len(rejects_rows(rejects)) == 5
    new = Path(app.settings["delivery.outbox_dir"]) / "new"
    new.mkdir(parents=True, exist_ok=True)
    (new / "1.M1P1Q1.host").write_bytes(
        b"To: Victim <VICTIM2@example.com>\r\nSubject: Confirm\r\n\r\n/confirm/x\r\n")
    (new / "1.M1P1Q2.host").write_bytes(
        b"To: dana@example.org\r\nSubject: News\r\n\r\nwrite to victim2@example.com\r\n")

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIGEST_CONFIG", raising=False)
    result = forget_cli(app, VICTIM)
    assert result.exit_code == 0, result.output
    assert "Erased 2 rows naming victim2@example.com" in result.output
    assert "Deleted 1 messages to victim2@example.com from the outbox" in result.output
    assert "victim2" not in rejects.read_text().lower()
    assert [r[0] for r in rejects_rows(rejects)] == ["line", "4", "5"]
    assert mode(rejects) == oct(0o600)
    assert [p.name for p in new.iterdir()] == ["1.M1P1Q2.host"]  # another reader's mail
    assert world.suppressed(VICTIM)  # kept out, as a hash
    again = forget_cli(app, VICTIM)  # harmless to repeat: the address is forgotten
    assert again.exit_code == 0 and "Nothing but a suppression" in again.output, again.output
    nobody = forget_cli(app, "nobody@example.com")
    assert nobody.exit_code == 1 and "nothing is stored about" in nobody.output, nobody.output

    # The API the same: 200 with what went, then 404 only for what nothing names.
    answer = admin_api.delete("/subscribers/victim3@example.com")
    assert answer.status_code == 200, answer.text
    assert answer.json()["rejected_rows"] == 1 and answer.json()["placeholder"] is None
    assert answer.json()["removed"]["subscriber"] is None
    assert "victim3" not in rejects.read_text()
    assert admin_api.delete("/subscribers/victim3@example.com").status_code == 200
    assert admin_api.delete("/subscribers/nobody@example.com").status_code == 404
