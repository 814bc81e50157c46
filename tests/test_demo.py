"""`digest demo`: the whole flow on the bundled feeds, as a new user runs it."""

from __future__ import annotations

import email
import email.policy
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import lxml.html
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from digest.app import App
from digest.cli import main
from digest.demo.run import PEOPLE, demo_settings
from digest.web import create_app
from subscribers.lists import get_list
from subscribers.members import member_counts
from tests.test_serve import free_port


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def _demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """`digest demo` run in `tmp_path`, as `make demo` runs it: the folder it filled,
    and what it said."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "demo"
    code, output = _run("demo", "--dir", str(folder))
    assert code == 0, output
    return folder, output


def test_demo_mails_every_confirmed_subscriber_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, output = _demo(tmp_path, monkeypatch)
    messages = sorted((folder / "outbox" / "new").iterdir())
    confirmed = [p for p in PEOPLE if p[2] and p[0] != "left@example.net"]
    assert len(messages) == len(confirmed) == 4
    recipients = set()
    for path in messages:
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        recipients.add(msg["To"].addresses[0].addr_spec)
        assert msg.get_content_type() == "multipart/alternative"
        parts = [p.get_content_type() for p in msg.iter_parts()]
        assert parts == ["text/plain", "text/html"]
        for header in ("From", "To", "Subject", "Date", "Message-ID", "List-Id",
                       "List-Unsubscribe", "List-Unsubscribe-Post"):
            assert msg[header], header
        for part in msg.iter_parts():
            body = part.get_content()
            assert "{{" not in body and "{%" not in body and "__DIGEST_SLOT_" not in body
        text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        # Korean and English articles, boilerplate gone.
        assert "해림" in text and "Ferry" in text
        assert "No comments" not in text and "Post a Comment" not in text
        assert "댓글 없음" not in text and "공유하기" not in text
        # The footer a bulk sender needs, in the text part as in the HTML.
        for line in ("Manage preferences: ", "View in browser: ", "1 Harbour Road"):
            assert line in text, line
    assert recipients == {p[0] for p in confirmed}
    assert (folder / "preview.html").read_text(encoding="utf-8").count("<img") >= 5
    assert str(folder / "outbox" / "new") in output.replace("\n", "")

    # Again: starts afresh, same result.
    code, _ = _run("demo", "--dir", str(folder))
    assert code == 0 and len(list((folder / "outbox" / "new").iterdir())) == 4


def test_demo_will_not_empty_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    code, output = _run("demo", "--dir", str(tmp_path))
    assert code == 1 and output.startswith("Error: ") and "not a demo folder" in output
    assert (tmp_path / "precious.txt").exists()


def _images(html: str) -> list[str]:
    return re.findall(r'<img[^>]* src="([^"]+)"', html)


def test_demo_mail_shows_photos_that_digest_serve_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, app: App
) -> None:
    folder, _output = _demo(tmp_path, monkeypatch)
    path = sorted((folder / "outbox" / "new").iterdir())[0]
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    sources = _images(html)
    assert len(sources) >= 5
    # The demo runs on the default public_url, where `digest serve` listens by default.
    assert all(src.startswith("http://localhost:8000/demo/images/") for src in sources)
    with TestClient(create_app(app)) as client:
        for src in sources:
            answer = client.get(urlsplit(src).path)
            assert answer.status_code == 200, src
            assert answer.headers["content-type"] == "image/jpeg"
            assert answer.content[:3] == b"\xff\xd8\xff"  # a JPEG
        for wrong in ("/demo/images/harbour-times/nothing.jpg",
                      "/demo/images/..%2Fdemo/ferry-dawn.jpg", "/demo/images/run.py"):
            assert client.get(wrong).status_code == 404, wrong


def test_demo_preview_shows_its_photos_with_no_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, _output = _demo(tmp_path, monkeypatch)
    sources = _images((folder / "preview.html").read_text(encoding="utf-8"))
    assert len(sources) >= 5
    for src in sources:  # files beside the preview, which a browser opens offline
        assert not urlsplit(src).scheme, src
        assert (folder / src).read_bytes()[:3] == b"\xff\xd8\xff", src


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return int(answer.status), answer.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:
        return 0, ""


def _footer(path: Path) -> tuple[dict[str, str], list[str]]:
    """The footer links and the image sources of a demo mail's HTML part."""
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    doc = lxml.html.document_fromstring(html)
    links = {a.text_content().strip(): a.get("href")
             for a in doc.xpath("//a[@class='footer-link']")}
    return links, _images(html)


@pytest.mark.slow  # a real server, as a new user starts it
def test_demo_serve_makes_every_link_of_its_mail_work(tmp_path: Path) -> None:
    """What the README tells a new user: `digest demo --serve`, then open a demo mail
    and follow its links. Each answers (not the 404 and 400s of `make serve`, which
    reads another database with another key), also those of a mail from an earlier
    run, as the demo keeps its key; and nothing a link shows changes anyone."""
    port = free_port()
    folder = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    command = [sys.executable, "-m", "digest", "demo", "--dir", str(folder),
               "--port", str(port)]
    first = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, timeout=120)
    assert first.returncode == 0, first.stderr
    earlier = tmp_path / "earlier.eml"
    earlier.write_bytes(sorted((folder / "outbox" / "new").iterdir())[0].read_bytes())
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen([*command, "--serve"], cwd=tmp_path, env=env, stdout=sink,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while _get(f"http://localhost:{port}/healthz")[0] != 200:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert f"Serving the demo at http://localhost:{port}" in log.read_text()
        mails = sorted((folder / "outbox" / "new").iterdir())
        for mail in (mails[0], earlier):
            links, images = _footer(mail)
            view = links["View in browser"]
            assert view == f"http://localhost:{port}/archive/daily/1"
            status, page = _get(view)
            assert status == 200 and "The Morning Harbour" in page, mail
            status, page = _get(links["Unsubscribe"])
            assert status == 200 and "Unsubscribe" in page, mail
            status, page = _get(links["Manage preferences"])
            assert status == 200 and "Your email preferences" in page, mail
            assert images and all(_get(src)[0] == 200 for src in images), mail
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # Following the links changed nobody: four confirmed readers still.
    app = App(demo_settings(folder, port))
    try:
        with app.sessions() as s:
            assert member_counts(s, get_list(s, "daily"))["confirmed"] == 4
    finally:
        app.close()
