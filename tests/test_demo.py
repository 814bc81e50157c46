"""`digest demo`: the whole flow on the bundled feeds, as a new user runs it."""

from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from digest.app import App
from digest.cli import main
from digest.demo.run import PEOPLE
from digest.web import create_app


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_demo_mails_every_confirmed_subscriber_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "demo"
    code, output = _run("demo", "--dir", str(folder))
    assert code == 0, output
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
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "demo"
    code, output = _run("demo", "--dir", str(folder))
    assert code == 0, output
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
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "demo"
    code, output = _run("demo", "--dir", str(folder))
    assert code == 0, output
    sources = _images((folder / "preview.html").read_text(encoding="utf-8"))
    assert len(sources) >= 5
    for src in sources:  # files beside the preview, which a browser opens offline
        assert not urlsplit(src).scheme, src
        assert (folder / src).read_bytes()[:3] == b"\xff\xd8\xff", src
