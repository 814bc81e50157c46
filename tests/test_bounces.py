"""VERP and DSNs: an edition really sent through an SMTP server on loopback with a return
path per delivery, then bounces in the shapes of Postfix, Exim, Gmail, Outlook and qmail
(flufl.bounce's samples, tests/data/dsn/MANIFEST.tsv) returned to those addresses and
read by `digest bounces process`; what an admin sees after: suppressions, each
delivery's feedback, the messages kept aside, the edition's stats and `digest status`."""

from __future__ import annotations

import json
import mailbox
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.app import App
from digest.cli import main
from digest.config import Settings
from digest.deliver.backends.outbox import OutboxBackend
from digest.deliver.backends.smtp import SmtpBackend
from digest.deliver.verp import LOCAL_PART_MAX, ReturnPath
from digest.errors import ConfigError
from tests.conftest import DATA, Clock
from tests.deliver.conftest import SmtpSink, smtp_server  # noqa: F401  (a fixture)
from tests.test_feedback import Newsroom

DSN = DATA / "dsn"
RETURN_PATH = "bounces+{token}@news.example.org"
# Sample -> reader; how it finds the delivery; the outcome for the reader.
SAMPLES = {
    "postfix.eml": ("pat@example.org", "hard_bounce"),
    "exim.eml": ("eve@example.org", "hard_bounce"),  # by the quoted Message-ID
    "gmail.eml": ("gil@example.org", "hard_bounce"),
    "gmail_delay.eml": ("dee@example.org", "soft_bounce"),
    "outlook.eml": ("oli@example.org", "hard_bounce"),  # by the returned message's headers
    "qmail.eml": ("quin@example.org", "hard_bounce"),
}
STAY = "stay@example.org"


def bounce(sample: str, *, verp: str, rcpt: str, message_id: str) -> bytes:
    text = (DSN / sample).read_text(encoding="latin-1")
    local, _, domain = rcpt.partition("@")
    for key, value in (("{verp}", verp), ("{rcpt_shouting}", f"{local}@{domain.upper()}"),
                       ("{rcpt}", rcpt), ("{message_id}", message_id)):
        text = text.replace(key, value)
    return text.encode("latin-1")


@pytest.fixture
def verp_settings(app: App) -> Settings:
    app.settings = app.settings.with_overrides(delivery__return_path=RETURN_PATH)
    return app.settings


def test_dsns_of_every_shape_find_their_reader(app: App, verp_settings: Settings,
                                               smtp_server: Callable[..., SmtpSink],  # noqa: F811
                                               clock: Clock, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    sink = smtp_server()
    verp = ReturnPath.from_settings(verp_settings)
    assert verp is not None
    backend = SmtpBackend(sink.host, sink.port, tls="none", connections=1, timeout=10,
                          return_path=verp)
    room = Newsroom(app, clock, tmp_path, backend=backend)
    try:
        room.join(*(reader for reader, _ in SAMPLES.values()), STAY)
        edition = room.publish("Ferry strike")
        # Each message's MAIL FROM is its own delivery's signed return path.
        sent = {room.delivery(edition, r).id: r for r, _ in SAMPLES.values()}
        assert len(sink.messages) == len(SAMPLES) + 1
        for received in sink.messages:
            assert received.mail_from.startswith("bounces+")
            assert received.mail_from.endswith("@news.example.org")
            assert len(received.mail_from.partition("@")[0]) <= LOCAL_PART_MAX
            delivery_id = verp.delivery_of(received.mail_from)
            assert delivery_id is not None
            assert sent.get(delivery_id, STAY) in received.rcpt_tos
        inbox = mailbox.Maildir(tmp_path / "bounces-in")
        for sample, (reader, _) in SAMPLES.items():
            d = room.delivery(edition, reader)
            inbox.add(bounce(sample, verp=verp.address(d.id), rcpt=reader,
                             message_id=d.message_id))
        # Unmatched: a forged token, and a bounce quoting a Message-ID we never sent.
        d = room.delivery(edition, STAY)
        forged = verp.address(d.id).replace("bounces+", "bounces+a", 1)
        inbox.add(bounce("postfix.eml", verp=forged, rcpt=STAY, message_id=d.message_id))
        inbox.add(bounce("exim.eml", verp="", rcpt=STAY, message_id="<x.1@elsewhere.example>"))
        # Unparsable: an out-of-office reply to the return path, and a broken message.
        inbox.add(f"From: {STAY}\r\nTo: {verp.address(d.id)}\r\nSubject: Away\r\n\r\n"
                  "I am on leave until Monday.\r\n")
        inbox.add(b"\x00\xff not a message at all")

        for key, value in (("DATABASE_URL", verp_settings["database.url"]),
                           ("DATA_DIR", verp_settings["data_dir"]),
                           ("DELIVERY_RETURN_PATH", RETURN_PATH)):
            monkeypatch.setenv(f"DIGEST_{key}", value)
        first = CliRunner().invoke(main, ["bounces", "process", str(tmp_path / "bounces-in")])
        assert first.exit_code == 0, first.output
        counts = _counts(first.output)
        assert counts == {"suppressed": 5, "counted": 1, "duplicate": 0, "unmatched": 2,
                          "unparsable": 2, "auto-reply": 0}
        for sample, (reader, kind) in SAMPLES.items():
            assert room.delivery(edition, reader).feedback == kind, sample
            row = room.reason(reader)
            if kind == "hard_bounce":
                assert row is not None and row[0] == "hard_bounce", sample
                assert row[1].startswith("dsn "), sample
            else:
                assert row is None
        assert room.reason(STAY) is None and room.delivery(edition, STAY).feedback == ""
        kept = Path(verp_settings["data_dir"]) / "bounces"
        assert len(list((kept / "unmatched").iterdir())) == 2
        assert len(list((kept / "unparsable").iterdir())) == 2
        assert str(kept) in first.output

        # The same Maildir again: nothing changes, nothing is kept twice.
        again = CliRunner().invoke(main, ["bounces", "process", str(tmp_path / "bounces-in")])
        assert _counts(again.output) == {"suppressed": 0, "counted": 0, "duplicate": 6,
                                         "unmatched": 2, "unparsable": 2, "auto-reply": 0}
        assert len(list((kept / "unmatched").iterdir())) == 2

        # The stats page and `digest status` show the edition's bounces.
        status = CliRunner().invoke(main, ["status", "--json"])
        assert status.exit_code == 0, status.output
        [shown] = [e for e in json.loads(status.output)["editions"] if e["number"] == 1]
        assert (shown["bounced"], shown["complained"], shown["soft_bounced"]) == (5, 0, 1)
    finally:
        room.close()


def test_a_bounce_piped_on_stdin_is_recorded(app: App, verp_settings: Settings, clock: Clock,
                                              tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Postfix pipes one message and may give the original recipient apart: here the
    Gmail bounce's own To: names no one of ours, the --recipient does."""
    room = Newsroom(app, clock, tmp_path)
    try:
        room.join("gil@example.org")
        edition = room.publish("Tides")
        d = room.delivery(edition, "gil@example.org")
        verp = ReturnPath.from_settings(verp_settings)
        assert verp is not None
        raw = bounce("gmail.eml", verp="d@example.org", rcpt="gil@example.org",
                     message_id="")
        for key, value in (("DATABASE_URL", verp_settings["database.url"]),
                           ("DATA_DIR", verp_settings["data_dir"]),
                           ("DELIVERY_RETURN_PATH", RETURN_PATH)):
            monkeypatch.setenv(f"DIGEST_{key}", value)
        # Postfix folds the address to lower case: the token still reads.
        result = CliRunner().invoke(main, ["bounces", "process", "-", "--recipient",
                                           verp.address(d.id).upper()], input=raw)
        assert result.exit_code == 0, result.output
        assert _counts(result.output)["suppressed"] == 1
        assert room.reason("gil@example.org") is not None
        missing = CliRunner().invoke(main, ["bounces", "process", str(tmp_path / "nothing")])
        assert missing.exit_code == 1 and "Error:" in missing.output
        assert "Maildir, an mbox file or -" in missing.output
    finally:
        room.close()


def test_the_outbox_writes_each_delivery_s_return_path(app: App, verp_settings: Settings,
                                                       clock: Clock, tmp_path: Path) -> None:
    verp = ReturnPath.from_settings(verp_settings)
    assert verp is not None
    room = Newsroom(app, clock, tmp_path, backend=OutboxBackend(tmp_path / "out", verp))
    try:
        room.join("ann@example.org")
        edition = room.publish("Harbour")
        [msg] = list(mailbox.Maildir(tmp_path / "out"))
        d = room.delivery(edition, "ann@example.org")
        assert msg["Return-Path"] == f"<{verp.address(d.id)}>"
    finally:
        room.close()


def test_return_path_tokens_are_signed_short_and_case_proof() -> None:
    verp = ReturnPath(RETURN_PATH, "k" * 43)
    address = verp.address(2**63 - 1)
    assert len(address.partition("@")[0]) <= LOCAL_PART_MAX
    assert verp.delivery_of(address.upper()) == 2**63 - 1
    assert verp.delivery_of(f"<{verp.address(42)}>") == 42
    # Another key's token, a changed id, another domain: not ours.
    assert ReturnPath(RETURN_PATH, "j" * 43).delivery_of(verp.address(42)) is None
    token = verp.token(42)
    assert verp.delivery_of(f"bounces+{token[:-1]}x@news.example.org") is None
    assert verp.delivery_of(verp.address(42).replace("news.", "mail.")) is None
    for bad, says in (("bounces@news.example.org", "{token} once"),
                      ("bounces+{token}", "{token} once"),
                      ("b o+{token}@news.example.org", "no quotes, no spaces"),
                      ("a" * 40 + "+{token}@news.example.org", "refuse more than 64")):
        with pytest.raises(ConfigError, match=says):
            ReturnPath(bad, "k" * 43)


@pytest.mark.parametrize("bad", ["bounces+{token}@news.example.org>",
                                 "bounces+{token}@news example.org",
                                 "bounces+{token}@news..example.org"])
def test_a_return_path_no_server_would_take_stops_the_sender_at_start(
    bad: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not a 501 for every message and an edition reported sent: one Error: at start."""
    monkeypatch.chdir(tmp_path)
    for name in ("DIGEST_CONFIG", "DIGEST_DATABASE_URL", "DIGEST_DELIVERY_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()
    assert runner.invoke(main, ["init"]).exit_code == 0
    monkeypatch.setenv("DIGEST_DELIVERY_RETURN_PATH", bad)
    for command in (["worker", "--once"], ["edition", "send", "--list", "daily"]):
        r = runner.invoke(main, command)
        assert r.exit_code == 1, r.output
        assert f"Error: [delivery] return_path = {bad!r} is not a usable address" in r.output
        assert "bounces+{token}@news.example.org" in r.output
    with pytest.raises(ConfigError, match="is not a usable address"):
        ReturnPath(bad, "k" * 43)


@pytest.mark.parametrize("raw", [
    b"", b"\x00\xff\xfe binary junk \x80\x81",
    b"To: bounces@news.example.org\r\nSubject: no From\r\n\r\nHello\r\n",
    "From: a@example.org\nSubject: wide\n\nhello\n".encode("utf-16"),
])
def test_mail_flufl_bounce_cannot_scan_is_unparsable_without_a_traceback(
    app: App, verp_settings: Settings, monkeypatch: pytest.MonkeyPatch, raw: bytes,
) -> None:
    app.init_db()
    for key, value in (("DATABASE_URL", verp_settings["database.url"]),
                       ("DATA_DIR", verp_settings["data_dir"]),
                       ("DELIVERY_RETURN_PATH", RETURN_PATH)):
        monkeypatch.setenv(f"DIGEST_{key}", value)
    result = CliRunner().invoke(main, ["bounces", "process", "-"], input=raw)
    assert result.exit_code == 0, result.output
    assert _counts(result.output)["unparsable"] == 1
    assert "Traceback" not in result.output and "Exception in detector" not in result.output
    assert len(list((Path(verp_settings["data_dir"]) / "bounces" / "unparsable").iterdir())) == 1


def _arf(to: str, rcpt_line: str, message_id: str) -> str:
    """An RFC 5965 feedback report, as a receiver sends a reader's "this is spam"."""
    return (f"From: fbl@isp.example.net\r\nTo: {to}\r\nSubject: FW: complaint\r\n"
            "Date: Fri, 27 Nov 2026 07:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/report; report-type=feedback-report; boundary="b"\r\n\r\n'
            "--b\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n"
            "--b\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n"
            f"User-Agent: isp-fbl/1.0\r\nVersion: 1\r\n{rcpt_line}\r\n"
            "--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
            "From: Daily <news@news.example.org>\r\nTo: redacted@isp.example.net\r\n"
            f"Message-ID: {message_id}\r\nSubject: Harbour\r\n\r\n--b--\r\n")


def _bare_dsn(rcpt: str, header: str) -> str:
    """A DSN that returns no part of the message, only naming it in a header."""
    return ("From: MAILER-DAEMON@mx.example.org\r\nTo: news@news.example.org\r\n"
            f"Subject: Undelivered Mail\r\n{header}\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/report; report-type=delivery-status; boundary="d"\r\n'
            "\r\n--d\r\nContent-Type: text/plain\r\n\r\nCould not deliver.\r\n"
            "--d\r\nContent-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mx.example.org\r\n\r\n"
            f"Final-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
            "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n--d--\r\n")


def test_auto_replies_complaint_reports_and_bare_dsns(
    app: App, verp_settings: Settings, clock: Clock, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What else comes back to the return path: vacation and challenge-response replies
    (neither bounces nor unparsable), ARF complaint reports (the named delivery's reader
    complained) and DSNs naming our Message-ID only in a header."""
    room = Newsroom(app, clock, tmp_path)
    readers = ("ann@example.org", "bea@example.org", "cy@example.org", "dot@example.org",
               "eli@example.org")
    try:
        room.join(*readers)
        edition = room.publish("Harbour")
        verp = ReturnPath.from_settings(verp_settings)
        assert verp is not None
        d = {r: room.delivery(edition, r) for r in readers}
        inbox = mailbox.Maildir(tmp_path / "in")
        for header in ("Auto-Submitted: auto-replied", "X-Autoreply: yes",
                       "Precedence: auto_reply"):
            to = verp.address(d["ann@example.org"].id)
            inbox.add(f"From: Ann <ann@example.org>\r\nTo: {to}\r\n"
                      f"Subject: Out of office\r\n{header}\r\n\r\nAway until Monday.\r\n")
        # A complaint to the VERP address, the recipient redacted; one found by the
        # quoted Message-ID alone, naming its reader.
        inbox.add(_arf(verp.address(d["bea@example.org"].id), "", "<x@elsewhere.example>"))
        inbox.add(_arf("abuse@news.example.org", "Original-Rcpt-To: cy@example.org",
                       d["cy@example.org"].message_id))
        inbox.add(_bare_dsn("dot@example.org",
                            f"X-Original-Message-ID: {d['dot@example.org'].message_id}"))
        inbox.add(_bare_dsn("eli@example.org",
                            f"In-Reply-To: {d['eli@example.org'].message_id}"))
        for key, value in (("DATABASE_URL", verp_settings["database.url"]),
                           ("DATA_DIR", verp_settings["data_dir"]),
                           ("DELIVERY_RETURN_PATH", RETURN_PATH)):
            monkeypatch.setenv(f"DIGEST_{key}", value)
        result = CliRunner().invoke(main, ["bounces", "process", str(tmp_path / "in")])
        assert result.exit_code == 0, result.output
        assert _counts(result.output) == {"suppressed": 4, "counted": 0, "duplicate": 0,
                                          "unmatched": 0, "unparsable": 0, "auto-reply": 3}
        assert room.reason("ann@example.org") is None
        assert room.delivery(edition, "ann@example.org").feedback == ""
        for reader, kind in (("bea@example.org", "complaint"), ("cy@example.org", "complaint"),
                             ("dot@example.org", "hard_bounce"),
                             ("eli@example.org", "hard_bounce")):
            assert room.delivery(edition, reader).feedback == kind, reader
            row = room.reason(reader)
            assert row is not None and row[0] == kind, reader
        assert not (Path(verp_settings["data_dir"]) / "bounces").exists()
    finally:
        room.close()


def _counts(output: str) -> dict[str, int]:
    """The summary table's outcome -> messages."""
    counts = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip("│┃|").split("│") if c.strip()]
        if len(cells) == 2 and cells[1].isdigit():
            counts[cells[0]] = int(cells[1])
    return counts
