"""Unsubscribing by email: the mailto of List-Unsubscribe, answered as a mail client does."""

from __future__ import annotations

import email
import email.policy
import mailbox
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from click.testing import CliRunner

from digest.app import App
from digest.cli import main
from digest.inbound import handle_unsubscribe_mail
from digest.publication import create_list
from subscribers.lists import get_list
from subscribers.members import add_member, get_member
from tests.conftest import DATA, Clock


def _setup_and_send(app: App) -> list[EmailMessage]:
    from digest.gather.sources import add_source

    with app.sessions() as s:
        for name in ("daily", "weekly"):
            mlist = create_list(s, name, title=name.title(), from_addr="n@news.example.org")
            add_source(s, str(DATA / "flow" / "news.xml"), mlist, allow_files=True)
            for who in ("ada", "bob"):
                add_member(s, mlist, f"{who}@example.org", confirmed=True, now=app.clock())
        s.commit()
        app.fetch(s, allow_files=True)
    app.send("daily")
    folder = Path(app.settings["delivery.outbox_dir"]) / "new"
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
            for p in folder.iterdir()]


def _reply(msg: EmailMessage, **override: str) -> bytes:
    """What a mail client sends for the List-Unsubscribe mailto."""
    mailto = next(p.strip(" <>") for p in msg["List-Unsubscribe"].split(",")
              if "mailto:" in p)
    parts = urlsplit(mailto)
    reply = EmailMessage()
    reply["From"] = override.get("From", str(msg["To"]))
    reply["To"] = unquote(parts.path)
    reply["Subject"] = override.get("Subject", parse_qs(parts.query)["subject"][0])
    reply.set_content("")
    return bytes(reply)


def test_mailto_unsubscribes_only_that_membership(app: App, clock: Clock) -> None:
    app.settings = app.settings.with_overrides(
        delivery__unsubscribe_mailto="unsubscribe@news.example.org")
    messages = _setup_and_send(app)
    ada = next(m for m in messages if "ada@" in str(m["To"]))
    with app.sessions() as s:
        result = handle_unsubscribe_mail(s, app.tokens, _reply(ada), clock())
        s.commit()
        assert result.outcome == "unsubscribed" and "ada@example.org" in result.detail
        assert get_member(s, get_list(s, "daily"), "ada@example.org").status == "unsubscribed"
        assert get_member(s, get_list(s, "weekly"), "ada@example.org").status == "confirmed"
        assert get_member(s, get_list(s, "daily"), "bob@example.org").status == "confirmed"
        again = handle_unsubscribe_mail(s, app.tokens, _reply(ada), clock())
        assert again.outcome == "already"


def test_forged_or_tokenless_mail_changes_nothing(app: App, clock: Clock) -> None:
    app.settings = app.settings.with_overrides(
        delivery__unsubscribe_mailto="unsubscribe@news.example.org")
    messages = _setup_and_send(app)
    bob = next(m for m in messages if "bob@" in str(m["To"]))
    with app.sessions() as s:
        # Someone forges Ada's address with a bare "unsubscribe".
        plain = _reply(bob, From="ada@example.org", Subject="unsubscribe")
        assert handle_unsubscribe_mail(s, app.tokens, plain, clock()).outcome == "ignored"
        subject = str(parse_qs(urlsplit(bob["List-Unsubscribe"].split("mailto:")[1]).query)
                      ["subject"][0])
        tampered = _reply(bob, Subject=subject[:-3] + "xyz")
        result = handle_unsubscribe_mail(s, app.tokens, tampered, clock())
        assert result.outcome == "ignored" and "does not work" in result.detail
        for who in ("ada", "bob"):
            assert get_member(s, get_list(s, "daily"), f"{who}@example.org").status == "confirmed"


def test_inbound_command_reads_a_maildir(app: App, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    app.settings = app.settings.with_overrides(
        delivery__unsubscribe_mailto="unsubscribe@news.example.org")
    messages = _setup_and_send(app)
    box = mailbox.Maildir(tmp_path / "inbox")
    for msg in messages:
        box.add(_reply(msg))
    box.add(b"From: x@example.org\r\nSubject: hello\r\n\r\nnot for us\r\n")
    for key, value in (("DATABASE_URL", app.settings["database.url"]),
                       ("DATA_DIR", app.settings["data_dir"])):
        monkeypatch.setenv(f"DIGEST_{key}", value)
    result = CliRunner().invoke(main, ["inbound", "--maildir", str(tmp_path / "inbox")])
    assert result.exit_code == 0, result.output
    assert result.output.count("unsubscribed") == 2 and "ignored" in result.output
    assert not list((tmp_path / "inbox" / "new").iterdir())
    with app.sessions() as s:
        for who in ("ada", "bob"):
            assert get_member(s, get_list(s, "daily"), f"{who}@example.org").status == \
                "unsubscribed"
