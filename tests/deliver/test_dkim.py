"""DKIM signing and the Feedback-ID header, checked the way a receiver checks them:
dkimpy's `dkim.verify` with the public key served by a DNS function of the test's own,
on mail read back from a real SMTP server (aiosmtpd) and from the outbox."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from collections.abc import Callable, Iterator
from pathlib import Path

import dkim
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import func, select

from digest.app import App
from digest.cli import main
from digest.config import Settings
from digest.deliver.backends.smtp import SmtpBackend
from digest.deliver.confirm import confirmation_edition
from digest.deliver.dkim import DkimSigner, txt_strings
from digest.deliver.message import MessageTemplate, Recipient
from digest.errors import ConfigError
from digest.gather.sources import add_source
from digest.models import Delivery, Edition
from digest.publication import create_list
from digest.render import make_environment, render_edition
from subscribers.importing import import_csv
from subscribers.lists import get_list
from tests import size_report
from tests.conftest import DATA, Clock
from tests.deliver.conftest import SmtpSink

DOMAIN = "news.example.org"
SELECTOR = "s2026"
ONE_CLICK = b"List-Unsubscribe-Post: List-Unsubscribe=One-Click"
REQUIRED = {"from", "to", "subject", "date", "message-id", "list-id", "list-unsubscribe",
            "list-unsubscribe-post", "mime-version", "content-type", "feedback-id"}


@pytest.fixture(scope="module")
def key_pem() -> bytes:
    """A 2048-bit RSA key made for this test module (PKCS#8 PEM, as openssl 3 writes)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.fixture
def key_file(tmp_path: Path, key_pem: bytes) -> Path:
    path = tmp_path / "dkim.pem"
    path.write_bytes(key_pem)
    path.chmod(0o600)
    return path


def dns_for(key_file: Path) -> Callable[..., bytes | None]:
    """A dnsfunc for dkim.verify: the TXT record `digest check-dns` tells the admin to
    publish, at the name it names; nothing anywhere else."""
    signer = DkimSigner.load(DOMAIN, SELECTOR, key_file)
    # Published as 255-character strings, which receivers join.
    txt = "".join(txt_strings(signer.record)).encode()

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return txt if name == f"{SELECTOR}._domainkey.{DOMAIN}.".encode() else None

    return lookup


def signed_headers(data: bytes) -> list[str]:
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    tags = dict(t.strip().split("=", 1) for t in "".join(msg["DKIM-Signature"].split()).split(";")
                if t.strip())
    return tags["h"].lower().split(":")


def _prepare(app: App, folder: Path, *people: str) -> None:
    """A list `daily` from news@news.example.org, its confirmed readers, and articles."""
    csv = folder / "people.csv"
    csv.write_text("email,name\n" + "".join(f"{a},Reader {i}\n" for i, a in enumerate(people)),
                   encoding="utf-8")
    with app.sessions() as s:
        mlist = create_list(s, "daily", title="Daily", from_addr=f"Daily <news@{DOMAIN}>")
        add_source(s, str(DATA / "flow" / "news.xml"), mlist, allow_files=True)
        s.commit()
        import_csv(s, mlist, csv, confirmed=True, now=app.clock())
        s.commit()
        app.fetch(s, allow_files=True)


def _send(app: App, folder: Path, *people: str) -> int:
    """Send the list's first edition to `people` to the end; its id."""
    app.init_db()
    try:
        _prepare(app, folder, *people)
        report = app.send("daily")
        assert report is not None and report.finished
        return report.edition_id
    finally:
        app.close()


def _dkim_settings(settings: Settings, key_file: Path | str, **more: object) -> Settings:
    return settings.with_overrides(dkim__domain=DOMAIN, dkim__selector=SELECTOR,
                                   dkim__private_key_file=str(key_file),
                                   edition__window_hours=24 * 365 * 30, **more)


def test_signed_mail_through_smtp_verifies_and_covers_one_click(
    settings: Settings, clock: Clock, key_file: Path, smtp_server: Callable[..., SmtpSink],
    tmp_path: Path,
) -> None:
    sink = smtp_server()
    backend = SmtpBackend(sink.host, sink.port, tls="none", timeout=10)
    app = App(_dkim_settings(settings, key_file), clock=clock, backend=backend)
    _send(app, tmp_path, "ada@example.org", "bo@example.org")
    lookup = dns_for(key_file)
    assert len(sink.messages) == 2
    for received in sink.messages:
        data = received.data
        assert data.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; "
                               b"d=news.example.org; s=s2026; "
                               b"t=%d;" % clock().timestamp())  # the test's clock
        assert dkim.verify(data, dnsfunc=lookup)
        assert set(signed_headers(data)) >= REQUIRED
        msg = email.message_from_bytes(data, policy=email.policy.default)
        assert msg["Feedback-ID"] == f"daily-1:daily:digest:{DOMAIN}"
        # What a receiver rejects: the one-click header, the Feedback-ID, the footer's
        # unsubscribe link (body) or the recipient changed on the way.
        assert data.count(ONE_CLICK) == 1
        for old, new in ((ONE_CLICK, ONE_CLICK.replace(b"One-Click", b"One-click")),
                         (b"Feedback-ID: daily-1", b"Feedback-ID: daily-2"),
                         (b"To: Reader", b"To: Raider")):
            assert old in data
            assert not dkim.verify(data.replace(old, new, 1), dnsfunc=lookup), old
        head, body = data.split(b"\r\n\r\n", 1)
        assert b"unsubscribe/" in body
        assert not dkim.verify(head + b"\r\n\r\n" + body.replace(b"unsubscribe/", b"unsubscribe-",
                                                                 1), dnsfunc=lookup)


def test_outbox_mail_is_signed_so_it_can_be_checked_offline(
    settings: Settings, clock: Clock, key_file: Path, tmp_path: Path,
) -> None:
    app = App(_dkim_settings(settings, key_file, delivery__feedback_id_sender="harbour-news"),
              clock=clock)
    _send(app, tmp_path, "ada@example.org", "minji@example.org")
    files = sorted((tmp_path / "outbox" / "new").iterdir())
    assert len(files) == 2
    lookup = dns_for(key_file)
    for file in files:
        raw = file.read_bytes()
        assert dkim.verify(raw, dnsfunc=lookup)
        assert b"Feedback-ID: daily-1:daily:digest:harbour-news\r\n" in raw
        assert not dkim.verify(raw.replace(ONE_CLICK, b"List-Unsubscribe-Post: ", 1),
                               dnsfunc=lookup)


def test_unsigned_without_a_domain_but_feedback_id_always(app: App, tmp_path: Path) -> None:
    """The Feedback-ID names the edition as the CLI and console do (Edition #1 of daily),
    not by its row id, which the list's confirmation mailing has already moved on."""
    app.settings = app.settings.with_overrides(edition__window_hours=24 * 365 * 30)
    _prepare(app, tmp_path, "ada@example.org")
    with app.sessions() as s:
        confirmation_edition(s, get_list(s, "daily"), app.clock())
        s.commit()
    report = app.send("daily")
    assert report is not None and report.finished
    with app.sessions() as s:
        edition = s.get(Edition, report.edition_id)
        assert edition is not None and (edition.number, edition.id) == (1, 2)
    raw = next((tmp_path / "outbox" / "new").iterdir()).read_bytes()
    assert b"DKIM-Signature" not in raw
    assert f"Feedback-ID: daily-1:daily:digest:{DOMAIN}\r\n".encode() in raw


@pytest.mark.parametrize("template", ["English", "Korean"])
def test_every_reader_verifies_whatever_the_slots_hold(key_file: Path, template: str) -> None:
    """The body is canonicalized in pieces, once per edition for what is the same for all:
    readers whose names and reasons hold runs of spaces, tabs and trailing spaces (the
    cases relaxed canonicalization changes), in the quoted-printable (English) and base64
    (Korean) parts, all verify."""
    from tests.bench import _context

    env = make_environment()
    rendered = render_edition(env, _context(3) if template == "English" else
                              size_report.twenty("ko", title=40, summary=80, note=40))
    signer = DkimSigner.load(DOMAIN, SELECTOR, key_file)
    tpl = MessageTemplate(html=rendered.html, text=rendered.text, subject="Daily  news\t ",
                          from_addr=f"Daily <news@{DOMAIN}>", list_id=f"daily.{DOMAIN}",
                          list_name="Daily", edition_key="e7", slot_key=rendered.slot_key,
                          unsubscribe_mailto=f"leave@{DOMAIN}",
                          feedback_id=f"daily-7:daily:digest:{DOMAIN}", dkim=signer)
    lookup = dns_for(key_file)
    now = dt.datetime(2026, 11, 27, 6, tzinfo=dt.UTC)
    names = ["Ada", "Ada  Lovelace ", "\tBo\t", "  ", "김 민지  ", "x" * 300, ""]
    for i, name in enumerate(names):
        r = Recipient(i, f"r{i}@example.org", name, f"https://{DOMAIN}/unsubscribe/t{i}",
                      unsubscribe_token=f"t{i}", manage_url=f"https://{DOMAIN}/p/t{i} ",
                      reason=f"You  subscribed\t on {name}  ")
        data = tpl.build(r, now).data
        assert dkim.verify(data, dnsfunc=lookup), name
        head, body = data.split(b"\r\n\r\n", 1)
        # Relaxed: spaces added at line ends change nothing; a line added does.
        assert dkim.verify(head + b"\r\n\r\n" + body.replace(b"\r\n", b" \t\r\n"),
                           dnsfunc=lookup)
        assert not dkim.verify(head + b"\r\n\r\n" + body.replace(b"\r\n--=_", b"\r\nX\r\n--=_", 1),
                               dnsfunc=lookup)


def test_missing_key_file_is_one_error_before_anything_is_queued(
    settings: Settings, clock: Clock, tmp_path: Path,
) -> None:
    missing = tmp_path / "keys" / "dkim.pem"
    app = App(_dkim_settings(settings, missing), clock=clock)
    app.init_db()
    try:
        _prepare(app, tmp_path, "ada@example.org")
        with pytest.raises(ConfigError, match=r"\[dkim\] private_key_file .*dkim\.pem does not "
                                              r"exist; make it with `openssl genrsa"):
            app.send("daily")
        with app.sessions() as s:
            assert s.scalar(select(func.count()).select_from(Delivery)) == 0
    finally:
        app.close()


def test_missing_key_file_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("DIGEST_CONFIG", "DIGEST_DATABASE_URL", "DIGEST_DELIVERY_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DIGEST_DKIM_DOMAIN", DOMAIN)
    monkeypatch.setenv("DIGEST_DKIM_PRIVATE_KEY_FILE", "nowhere.pem")
    runner = CliRunner()
    assert runner.invoke(main, ["init"]).exit_code == 0
    r = runner.invoke(main, ["worker", "--once"])
    assert r.exit_code == 1, r.output
    assert "Error: [dkim] private_key_file nowhere.pem does not exist" in r.output


@pytest.fixture
def bad_keys(tmp_path: Path, key_pem: bytes) -> Iterator[dict[str, Path]]:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    public = serialization.load_pem_private_key(key_pem, None).public_key()
    files = {
        "public key": public.public_bytes(serialization.Encoding.PEM,
                                          serialization.PublicFormat.SubjectPublicKeyInfo),
        "not RSA": ec_key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()),
        "passphrase": serialization.load_pem_private_key(key_pem, None).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret")),
        "garbage": b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
    }
    paths = {}
    for what, data in files.items():
        paths[what] = tmp_path / f"{what.replace(' ', '-')}.pem"
        paths[what].write_bytes(data)
    paths["a folder"] = tmp_path
    yield paths


@pytest.mark.parametrize(("what", "says"), [
    ("public key", "holds no PEM private key (it holds a public key: give the private one)"),
    ("not RSA", "is not an RSA key; DKIM here signs with rsa-sha256"),
    ("passphrase", "is protected by a passphrase; write it out unprotected"),
    ("garbage", "is not a readable private key"),
    ("a folder", "cannot be read"),
])
def test_unusable_keys_say_what_is_wrong(bad_keys: dict[str, Path], what: str, says: str) -> None:
    with pytest.raises(ConfigError, match=r"^\[dkim\] private_key_file ") as caught:
        DkimSigner.load(DOMAIN, SELECTOR, bad_keys[what])
    assert says in str(caught.value)
    # No hint writes over the operator's file (whose key DNS may publish): a new one.
    assert f"-out {bad_keys[what]}" not in str(caught.value)
    if what != "a folder":
        assert f"-out {bad_keys[what].with_name(bad_keys[what].stem)}-" in str(caught.value)


def test_a_key_every_user_may_read_is_warned_of_at_start(
    key_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("DIGEST_CONFIG", "DIGEST_DATABASE_URL", "DIGEST_DELIVERY_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DIGEST_DKIM_DOMAIN", DOMAIN)
    monkeypatch.setenv("DIGEST_DKIM_PRIVATE_KEY_FILE", str(key_file))
    runner = CliRunner()
    assert runner.invoke(main, ["init"]).exit_code == 0
    key_file.chmod(0o644)
    r = runner.invoke(main, ["worker", "--once"])
    assert r.exit_code == 0, r.output
    assert f"WARNING digest.deliver.dkim: [dkim] private_key_file {key_file} is readable by " \
        f"every user of this machine" in r.output and f"chmod 600 {key_file}" in r.output
    key_file.chmod(0o600)
    r = runner.invoke(main, ["worker", "--once"])
    assert r.exit_code == 0 and "readable by every user" not in r.output


@pytest.mark.parametrize("bad", ["news: daily", "news", "n" * 16, "n" * 60])
def test_a_bad_feedback_id_sender_is_refused_at_start(app: App, bad: str) -> None:
    """Gmail's 5 to 15 characters, as the error says, for a configured sender id."""
    app.settings = app.settings.with_overrides(delivery__feedback_id_sender=bad)
    with pytest.raises(ConfigError, match=rf"\[delivery\] feedback_id_sender '{bad}' must "
                                          r"be 5 to 15 letters"):
        app.check_sender()
    app.settings = app.settings.with_overrides(delivery__feedback_id_sender="n" * 15)
    app.check_sender()
