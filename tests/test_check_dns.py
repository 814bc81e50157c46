"""`digest check-dns` against a real DNS server on loopback (dnspython answering UDP
queries from a zone the test writes), and with no server answering."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from digest.cli import main
from digest.deliver.dkim import DkimSigner

DOMAIN = "news.example.org"


class Zone:
    """A DNS server on 127.0.0.1 answering TXT queries from `records` (name -> list of
    records, each a list of strings); other names get NXDOMAIN."""

    def __init__(self) -> None:
        self.records: dict[str, list[list[str]]] = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                wire, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            query = dns.message.from_wire(wire)
            reply = dns.message.make_response(query)
            reply.flags |= dns.flags.AA
            name = str(query.question[0].name).rstrip(".").lower()
            if name in self.records:
                texts = [" ".join(f'"{s}"' for s in strings) for strings in self.records[name]]
                reply.answer.append(dns.rrset.from_text_list(
                    name + ".", 300, dns.rdataclass.IN, dns.rdatatype.TXT, texts))
            else:
                reply.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(reply.to_wire(), peer)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def zone() -> Iterator[Zone]:
    z = Zone()
    yield z
    z.close()


def _key(path: Path) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)  # as the docs say; a key every user may read is warned of
    return path


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """`digest …` in an empty folder, signing as news.example.org through a relay."""
    monkeypatch.chdir(tmp_path)
    for name in ("DIGEST_CONFIG", "DIGEST_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DIGEST_DELIVERY_BACKEND", "smtp")
    monkeypatch.setenv("DIGEST_SMTP_HOST", "relay.example.net")
    monkeypatch.setenv("DIGEST_DKIM_DOMAIN", DOMAIN)
    monkeypatch.setenv("DIGEST_DKIM_SELECTOR", "s1")
    monkeypatch.setenv("DIGEST_DKIM_PRIVATE_KEY_FILE", str(_key(tmp_path / "dkim.pem")))
    runner = CliRunner()
    assert runner.invoke(main, ["init"]).exit_code == 0

    def invoke(*args: str) -> Result:
        return runner.invoke(main, list(args))

    return invoke


def _ours(tmp_path: Path) -> DkimSigner:
    return DkimSigner.load(DOMAIN, "s1", tmp_path / "dkim.pem")


def test_prints_the_records_and_finds_them_published(
    run: Callable[..., Result], zone: Zone, tmp_path: Path,
) -> None:
    signer = _ours(tmp_path)
    # A 2048-bit key's record is longer than one TXT string may be: published in pieces.
    strings = [signer.record[i:i + 255] for i in range(0, len(signer.record), 255)]
    assert len(strings) == 2
    zone.records = {
        DOMAIN: [["v=spf1 a:relay.example.net mx ~all"], ["google-site-verification=x"]],
        f"s1._domainkey.{DOMAIN}": [strings],
        f"_dmarc.{DOMAIN}": [["v=DMARC1; p=quarantine; rua=mailto:d@news.example.org"]],
    }
    r = run("check-dns", "--domain", DOMAIN, "--nameserver", f"127.0.0.1:{zone.port}", "--json")
    assert r.exit_code == 0, r.output
    doc = {d["kind"]: d for d in json.loads(r.output)}
    assert {k: d["state"] for k, d in doc.items()} == {"SPF": "ok", "DKIM": "ok", "DMARC": "ok"}
    assert doc["SPF"]["value"] == "v=spf1 a:relay.example.net ~all"
    assert doc["DKIM"]["name"] == f"s1._domainkey.{DOMAIN}"
    assert doc["DKIM"]["strings"] == strings and all(len(s) <= 255 for s in strings)
    assert doc["DKIM"]["value"] == signer.record and signer.record.startswith(
        "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A")

    r = run("check-dns", "--domain", DOMAIN, "--nameserver", f"127.0.0.1:{zone.port}")
    assert r.exit_code == 0, r.output
    # The zone-file line to paste, in 255-character strings.
    assert f's1._domainkey.{DOMAIN}. IN TXT ( "{strings[0]}" "{strings[1]}" )' in r.output
    assert f'_dmarc.{DOMAIN}. IN TXT "v=DMARC1; p=none; rua=mailto:dmarc-reports@{DOMAIN}"' \
        in r.output


def test_says_what_is_missing_or_different(
    run: Callable[..., Result], zone: Zone,
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    stale = DkimSigner(DOMAIN, "s1", other).record  # a key rotated away
    zone.records = {
        DOMAIN: [["v=spf1 include:_spf.example.com ~all"], ["v=spf1 mx -all"]],
        f"s1._domainkey.{DOMAIN}": [[stale]],
    }
    r = run("check-dns", "--domain", DOMAIN, "--nameserver", f"127.0.0.1:{zone.port}", "--json")
    assert r.exit_code == 0, r.output
    doc = {d["kind"]: d for d in json.loads(r.output)}
    assert doc["SPF"]["state"] == "differs" and "two SPF records" in doc["SPF"]["note"]
    assert doc["DKIM"]["state"] == "differs" and doc["DKIM"]["found"] == stale
    assert doc["DMARC"]["state"] == "missing"
    r = run("check-dns", "--domain", DOMAIN, "--nameserver", f"127.0.0.1:{zone.port}")
    assert "DIFFERS" in r.output and "MISSING" in r.output


def test_offline_it_still_prints_the_records(run: Callable[..., Result]) -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never answers
    silent.bind(("127.0.0.1", 0))
    try:
        r = run("check-dns", "--domain", DOMAIN, "--timeout", "0.3", "--json",
                "--nameserver", f"127.0.0.1:{silent.getsockname()[1]}")
    finally:
        silent.close()
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert [d["state"] for d in doc] == ["could not look up"] * 3
    assert doc[1]["value"].startswith("v=DKIM1; k=rsa; p=")


def test_a_missing_key_or_bad_domain_is_an_error(
    run: Callable[..., Result], monkeypatch: pytest.MonkeyPatch,
) -> None:
    r = run("check-dns", "--domain", "localhost", "--offline")
    assert r.exit_code == 1 and "Error: 'localhost' is not a domain name" in r.output
    monkeypatch.setenv("DIGEST_DKIM_PRIVATE_KEY_FILE", "gone.pem")
    r = run("check-dns", "--domain", DOMAIN, "--offline")
    assert r.exit_code == 1
    assert "Error: [dkim] private_key_file gone.pem does not exist" in r.output


@pytest.mark.parametrize(("return_path", "aligned"), [
    ("bounces+{token}@bounces.example.net", False),
    ("bounces+{token}@bounce.news.example.org", True),
])
def test_spf_is_for_the_return_path_s_domain(
    run: Callable[..., Result], zone: Zone, monkeypatch: pytest.MonkeyPatch,
    return_path: str, aligned: bool,
) -> None:
    """Receivers check SPF for the envelope sender (VERP's domain), not the From's."""
    envelope = return_path.partition("@")[2]
    monkeypatch.setenv("DIGEST_DELIVERY_RETURN_PATH", return_path)
    zone.records = {envelope: [["v=spf1 a:relay.example.net ~all"]]}
    r = run("check-dns", "--domain", DOMAIN, "--nameserver", f"127.0.0.1:{zone.port}", "--json")
    assert r.exit_code == 0, r.output
    spf = {d["kind"]: d for d in json.loads(r.output)}["SPF"]
    assert (spf["name"], spf["state"]) == (envelope, "ok")
    assert "[delivery] return_path" in spf["note"]
    assert ("WARNING" in spf["note"]) is not aligned
    if not aligned:
        assert f"does not align with {DOMAIN} for DMARC" in spf["note"]
    r = run("check-dns", "--domain", DOMAIN, "--offline")
    assert f'{envelope}. IN TXT "v=spf1 a:relay.example.net ~all"' in r.output


@pytest.mark.parametrize(("backend", "says"), [
    ("ses", "Easy DKIM"), ("postmark", "pm-bounces.news.example.org"),
    ("sendgrid", "Domain Authentication"), ("mailgun", "Mailgun signs"),
])
def test_with_an_api_backend_the_provider_s_dkim_is_asked_for_not_our_key(
    run: Callable[..., Result], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    backend: str, says: str,
) -> None:
    monkeypatch.setenv("DIGEST_DELIVERY_BACKEND", backend)
    monkeypatch.setenv("DIGEST_DELIVERY_RETURN_PATH", "bounces+{token}@bounces.example.net")
    r = run("check-dns", "--domain", DOMAIN, "--offline", "--json")
    assert r.exit_code == 0, r.output
    doc = {d["kind"]: d for d in json.loads(r.output)}
    assert doc["DKIM"]["value"] == "" and doc["DKIM"]["strings"] == []
    assert says in doc["DKIM"]["note"] and "private_key_file is not used" in doc["DKIM"]["note"]
    assert doc["SPF"]["name"] == DOMAIN  # the provider sets the envelope sender, not us
    r = run("check-dns", "--domain", DOMAIN, "--offline")
    key = _ours(tmp_path).record.partition("p=")[2]
    assert key[:40] not in r.output.replace("\n", "")
    assert "publish what the provider's console shows" in r.output
