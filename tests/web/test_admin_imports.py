"""CSV import in the admin console, end to end: the upload, the job running in a thread
of the web app, its page asked for again ("Check progress") until the summary, the
rejects download, the confirmation mails after, and a job whose process died."""

from __future__ import annotations

import csv
import io
import re
import time
from pathlib import Path

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from digest import imports
from digest.app import App
from subscribers.lists import get_list
from subscribers.models import ImportJob, ImportStatus
from subscribers.suppress import suppress
from tests.conftest import Clock
from tests.web.conftest import ALICE, World, csrf
from tests.web.test_subscribe import mail_to

PEOPLE = (
    "email,name,city\n"
    "dana@example.org,Dana,Lyon\n"  # line 2: added
    "not-an-address,Nobody,\n"  # line 3: rejected
    "erin@example.org,Erin,Oslo\n"  # line 4: added
    "dana@example.org,Dana,Lyon\n"  # line 5: the same again: unchanged
    "gone@example.org,Gone,\n"  # line 6: suppressed
    "frank@@example.org,Frank,\n"  # line 7: rejected
    f"{ALICE},Alice,\n"  # line 8: on the list already, a name now: updated
)


@pytest.fixture(autouse=True)
def _no_import_left_running() -> object:
    yield
    assert imports.wait(30), "an import thread was still running after the test"


FORMULA = ("=", "+", "-", "@", "\t", "\r")


def upload(client: TestClient, body: bytes, *, list_name: str = "news", confirmed: bool = False,
           filename: str = "people.csv") -> httpx.Response:
    data = {"csrf_token": csrf(client), "list": list_name}
    if confirmed:
        data["confirmed"] = "on"
    return client.post("/admin/imports", data=data,
                       files={"file": (filename, body, "text/csv")}, follow_redirects=False)


def finished(client: TestClient, url: str, timeout: float = 30) -> httpx.Response:
    """The job's page once it no longer offers "Check progress"."""
    deadline = time.monotonic() + timeout
    while True:
        page = client.get(url)
        assert page.status_code == 200
        assert "refresh" not in page.headers
        if "Check progress" not in page.text:
            return page
        assert "rows done so far" in page.text
        assert time.monotonic() < deadline, "the import did not finish"
        time.sleep(0.05)


def _summary(html: str) -> dict[str, int]:
    table = html.split('<table class="summary">', 1)[1].split("</table>", 1)[0]
    return {k.lower(): int(v) for k, v in re.findall(
        r'<th scope="row">(\w+)</th><td class="num">(\d+)</td>', table)}


def test_an_import_with_bad_rows_ends_with_a_summary_and_its_rejects(
        admin_client: TestClient, world: World, app: App, clock: Clock) -> None:
    with app.sessions() as s:
        suppress(s, "gone@example.org", "hard_bounce", now=clock())
        s.commit()
    answer = upload(admin_client, PEOPLE.encode(), confirmed=True)
    assert answer.status_code == 303
    job_url = answer.headers["location"]
    assert re.fullmatch(r"/admin/imports/\d+\?checked=1", job_url)

    page = finished(admin_client, job_url)
    assert "Done" in page.text and "7 rows" in page.text
    assert _summary(page.text) == {"added": 2, "updated": 1, "unchanged": 1,
                                   "suppressed": 1, "rejected": 2}
    assert world.statuses()[("dana@example.org", "news")] == "confirmed"
    assert mail_to(app, "dana@example.org") == []  # vouched for: no confirmation mail

    rejects = admin_client.get(f"{job_url.split('?')[0]}/rejects.csv")
    assert rejects.status_code == 200
    assert rejects.headers["content-disposition"] == \
        'attachment; filename="people-rejects.csv"'
    rows = list(csv.reader(io.StringIO(rejects.text)))
    assert rows[0] == ["line", "row", "reason"]
    assert [(r[0], r[1]) for r in rows[1:]] == [("3", "not-an-address,Nobody,"),
                                                ("7", "frank@@example.org,Frank,")]
    assert all("is not a valid email address" in r[2] for r in rows[1:])

    with app.sessions() as s:
        job = s.scalars(select(ImportJob)).one()
        stored = Path(job.path)
    assert stored.parent == Path(app.settings["data_dir"]) / "imports"
    assert not stored.exists()  # the upload goes when its job ends; the rejects stay
    listing = admin_client.get("/admin/imports?list=news").text
    assert "people.csv" in listing and ">done<" in listing


def test_addresses_nobody_vouched_for_get_a_confirmation_mail(
        admin_client: TestClient, world: World, app: App) -> None:
    answer = upload(admin_client, b"email\ngina@example.org\nhal@example.org\n",
                    list_name="sport")
    page = finished(admin_client, answer.headers["location"])
    assert "2 pending subscribers get a confirmation mail" in page.text
    assert "Download rejects" not in page.text
    assert world.statuses()[("gina@example.org", "sport")] == "pending"
    imports.wait(30)  # the mails go out after the job is done
    assert len(mail_to(app, "gina@example.org")) == len(mail_to(app, "hal@example.org")) == 1


def test_a_file_without_an_email_column_fails_with_the_cores_message(
        admin_client: TestClient, world: World) -> None:
    answer = upload(admin_client, b"name,city\nDana,Lyon\n")
    page = finished(admin_client, answer.headers["location"])
    assert "The import failed: people.csv has no &#39;email&#39; column" in page.text


def test_uploads_are_refused_without_a_file_a_list_or_when_too_large(
        admin_client: TestClient, world: World, app: App) -> None:
    empty = upload(admin_client, b"", filename="")
    assert empty.status_code == 400 and "Choose a CSV file to import." in empty.text
    nowhere = upload(admin_client, PEOPLE.encode(), list_name="nope")
    assert nowhere.status_code == 400 and "Choose the list to import into." in nowhere.text
    # Refused on its declared size, before a byte of the body is read.
    huge = admin_client.post(
        "/admin/imports", content=b"x" * 10,
        headers={"content-type": "multipart/form-data; boundary=x",
                 "content-length": str(imports.MAX_UPLOAD * 2)})
    assert huge.status_code == 413
    with app.sessions() as s:
        assert s.scalars(select(ImportJob)).all() == []
    folder = Path(app.settings["data_dir"]) / "imports"
    assert not folder.exists() or list(folder.iterdir()) == []


def test_a_job_whose_process_died_shows_as_interrupted(
        admin_client: TestClient, world: World, app: App, clock: Clock,
        tmp_path: Path) -> None:
    path = tmp_path / "half.csv"
    path.write_text(PEOPLE)
    with app.sessions() as s:
        job = imports.create_job(s, get_list(s, "news"), filename="half.csv", path=path,
                                 size=path.stat().st_size, confirmed=True,
                                 created_by="admin@example.org", now=clock())
        job.status, job.rows = ImportStatus.RUNNING, 5000  # as a killed web process left it
        s.commit()
        job_id = job.id
    running = admin_client.get(f"/admin/imports/{job_id}")
    assert "5,000 rows done so far" in running.text and "Check progress" in running.text
    clock.advance(minutes=6)
    page = admin_client.get(f"/admin/imports/{job_id}")
    assert "Check progress" not in page.text
    assert "The import failed: interrupted: the web process stopped" in page.text
    assert "5,000 rows were processed before it stopped" in page.text
    with app.sessions() as s:
        assert s.get_one(ImportJob, job_id).status == ImportStatus.FAILED
    assert admin_client.get(f"/admin/imports/{job_id}/rejects.csv").status_code == 404


def test_a_running_jobs_page_never_reloads_itself(
        admin_client: TestClient, world: World, app: App, clock: Clock,
        tmp_path: Path) -> None:
    """WCAG 2.2.1: no Refresh header nor <meta http-equiv=refresh>; the admin asks
    for the figures with a button, which comes back to the same page."""
    path = tmp_path / "slow.csv"
    path.write_text(PEOPLE)
    with app.sessions() as s:
        job = imports.create_job(s, get_list(s, "news"), filename="slow.csv", path=path,
                                 size=path.stat().st_size, confirmed=True,
                                 created_by="admin@example.org", now=clock())
        job.status, job.rows = ImportStatus.RUNNING, 1200  # no thread: it stays running
        s.commit()
        job_id = job.id
    for url in (f"/admin/imports/{job_id}", f"/admin/imports/{job_id}?checked=1"):
        page = admin_client.get(url)
        assert page.status_code == 200
        assert "refresh" not in page.headers
        assert "http-equiv" not in page.text.lower()
        assert "1,200 rows done so far" in page.text
        assert re.search(rf'<form method="get" action="/admin/imports/{job_id}"[^>]*>\s*'
                         r'<input type="hidden" name="checked" value="1">\s*'
                         r'<button type="submit"[^>]*>Check progress</button>', page.text)


def test_formulas_in_rejected_rows_come_back_harmless(
        admin_client: TestClient, world: World) -> None:
    """A rejected row is shown as it was uploaded, but no cell of the rejects file may
    start a spreadsheet formula (=, +, -, @, tab, CR): each such cell gets a leading '."""
    body = (b"email,name\n"
            b"=cmd|' /C calc'!A0,Mallory\n"
            b"\"@SUM(1+1)*cmd|' /C calc'!A0\",x\n"
            b"ok@example.org,\"=HYPERLINK(\"\"https://evil.example\"\")\"\n"
            b"+1-2,\"-2+3\"\n")
    page = finished(admin_client, upload(admin_client, body).headers["location"])
    assert _summary(page.text)["rejected"] == 3
    job_url = page.url.path
    rows = list(csv.reader(io.StringIO(admin_client.get(f"{job_url}/rejects.csv").text)))
    cells = [cell for row in rows[1:] for cell in row]
    assert len(rows) == 4 and all(not cell.startswith(FORMULA) for cell in cells), cells
    assert rows[1][1] == "'=cmd|' /C calc'!A0,Mallory"  # the row itself, guarded
