"""`digest demo`: the whole flow on the bundled feeds, as a new user runs it."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.demo.run import PEOPLE


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
