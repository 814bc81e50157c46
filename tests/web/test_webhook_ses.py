"""`POST /webhooks/ses` through the real app: an edition really sent (outbox backend,
SQLite ledger), then SNS messages carrying SES events, signed by a certificate this test
makes (cryptography, self-signed) and serves over HTTPS on loopback, which
`[ses] sns_cert_hosts` (the test-only setting) lets the webhook fetch.

Shapes:
- the SNS message and its signature: https://docs.aws.amazon.com/sns/latest/dg/
  sns-message-and-json-formats.html and .../sns-verify-signature-of-message.html (the
  string to sign is built here from that page, not from the module under test);
- the SES events in its Message: https://docs.aws.amazon.com/ses/latest/dg/
  event-publishing-retrieving-sns-examples.html (Bounce, Complaint).
"""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import ipaddress
import json
import logging
import ssl
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient

from digest.app import App
from digest.web import create_app
from tests.conftest import Clock
from tests.web.test_webhooks import PEOPLE, Mailing

TOPIC = "arn:aws:sns:us-east-1:123456789012:digest-feedback"
ANA, BEN, CY, DI = PEOPLE


class CertHost:
    """An HTTPS server on 127.0.0.1 (its TLS certificate made here) that serves the SNS
    signing certificate `signing` at /SimpleNotificationService-test.pem, answers 200 to
    any other GET (a SubscribeURL), and records every request path."""

    def __init__(self, folder: Path, signing: x509.Certificate) -> None:
        self.paths: list[str] = []
        pem = signing.public_bytes(serialization.Encoding.PEM)
        # TLS checks certificates against the wall clock, which the test's clock is not.
        key, cert = make_cert(dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
                              dt.datetime(2099, 1, 1, tzinfo=dt.UTC))
        self.cert_file = folder / "host.pem"
        key_file = folder / "host.key"
        self.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        host = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                host.paths.append(self.path)
                body = pem if self.path.endswith(".pem") else b"<ConfirmSubscriptionResponse/>"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, key_file)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.netloc = f"127.0.0.1:{self.server.server_address[1]}"
        self.cert_url = f"https://{self.netloc}/SimpleNotificationService-test.pem"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def make_cert(start: dt.datetime, end: dt.datetime) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """A self-signed RSA certificate for 127.0.0.1, valid from `start` to `end`."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.us-east-1.amazonaws.com")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


@pytest.fixture
def keys(clock: Clock) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """The SNS signing key and certificate, valid a day either side of the test's now."""
    return around(clock())


def around(now: dt.datetime) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    return make_cert(now - dt.timedelta(days=1), now + dt.timedelta(days=1))


@pytest.fixture
def cert_host(tmp_path: Path, keys: tuple[rsa.RSAPrivateKey, x509.Certificate]
              ) -> Iterator[CertHost]:
    folder = tmp_path / "sns"
    folder.mkdir()
    host = CertHost(folder, keys[1])
    yield host
    host.stop()


@pytest.fixture
def stranger(tmp_path: Path, clock: Clock) -> Iterator[CertHost]:
    """Another HTTPS host, not allowed: no request may reach it."""
    folder = tmp_path / "stranger"
    folder.mkdir()
    host = CertHost(folder, around(clock())[1])
    yield host
    host.stop()


@pytest.fixture
def hook(app: App, clock: Clock, cert_host: CertHost) -> Iterator[TestClient]:
    """The web app with [ses] topic_arns = TOPIC and the test host allowed for
    certificates; its HTTP session trusts the host's certificate."""
    session = requests.Session()
    session.verify = str(cert_host.cert_file)
    session.trust_env = False  # else REQUESTS_CA_BUNDLE, if set, would replace `verify`
    settings = app.settings.with_overrides(ses__topic_arns=f"arn:aws:sns:eu-west-1:1:x, {TOPIC}",
                                           ses__sns_cert_hosts=cert_host.netloc)
    web_app = App(settings, clock=clock, http=session)
    with TestClient(create_app(web_app)) as client:
        yield client
    web_app.close()


@pytest.fixture
def mailing(app: App, clock: Clock, tmp_path: Path) -> Iterator[Mailing]:
    room = Mailing(app, clock, tmp_path)
    room.join(*PEOPLE)
    yield room
    room.close()


@pytest.fixture
def sent(mailing: Mailing) -> int:
    return mailing.publish("Ferry news")


# -- what SNS sends ------------------------------------------------------------------


def ses_event(kind: str, email: str, message_id: str, at: dt.datetime,
              bounce_type: str = "Permanent") -> dict[str, Any]:
    """An SES event as a configuration set publishes it to SNS (AWS's examples)."""
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    mail = {"timestamp": stamp, "source": "Daily <d@example.org>",
            "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/example.org",
            "sendingAccountId": "123456789012", "messageId": message_id,
            "destination": [email], "headersTruncated": False}
    if kind == "Bounce":
        return {"eventType": "Bounce", "mail": mail, "bounce": {
            "feedbackId": "0100015e-example", "bounceType": bounce_type,
            "bounceSubType": "General" if bounce_type == "Permanent" else "MailboxFull",
            "bouncedRecipients": [{"emailAddress": email, "action": "failed",
                                   "status": "5.1.1",
                                   "diagnosticCode": "smtp; 550 5.1.1 user unknown"}],
            "timestamp": stamp, "reportingMTA": "dsn; a8-70.smtp-out.amazonses.com"}}
    return {"eventType": "Complaint", "mail": mail, "complaint": {
        "feedbackId": "0100015e-example", "complainedRecipients": [{"emailAddress": email}],
        "timestamp": stamp, "userAgent": "Mozilla/5.0", "complaintFeedbackType": "abuse",
        "arrivalDate": stamp}}


def signed(key: rsa.RSAPrivateKey, fields: dict[str, str], version: str = "1") -> dict[str, str]:
    """`fields` with Signature and SignatureVersion, signed as SNS does: "name\\nvalue\\n"
    for Message, MessageId, Subject (if any), Timestamp, TopicArn, Type (a Notification),
    or Message, MessageId, SubscribeURL, Timestamp, Token, TopicArn, Type."""
    order = (["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
             if fields["Type"] == "Notification" else
             ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"])
    text = "".join(f"{k}\n{fields[k]}\n" for k in order if k in fields)
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = key.sign(text.encode(), padding.PKCS1v15(), algorithm)
    return {**fields, "SignatureVersion": version,
            "Signature": base64.b64encode(signature).decode()}


def notification(key: rsa.RSAPrivateKey, event: dict[str, Any], at: dt.datetime,
                 cert_url: str, *, topic: str = TOPIC, version: str = "1") -> dict[str, str]:
    return signed(key, {
        "Type": "Notification", "MessageId": str(uuid.uuid4()), "TopicArn": topic,
        "Message": json.dumps(event), "Timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "SigningCertURL": cert_url,
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
    }, version)


def post(client: TestClient, body: dict[str, str]) -> Any:
    # SNS posts JSON as text/plain.
    return client.post("/webhooks/ses", content=json.dumps(body),
                       headers={"Content-Type": "text/plain; charset=UTF-8",
                                "x-amz-sns-message-type": body["Type"]})


def ses_id(mailing: Mailing, email: str, edition: int) -> str:
    """The id the notice names the message by: SES's MessageId for mail it sent (here,
    sent through the outbox, the delivery's own, without its angle brackets)."""
    return mailing.delivery(edition, email).message_id.strip("<>")


# -- the tests -----------------------------------------------------------------------


def test_signed_bounces_and_complaints_suppress_and_transient_ones_count(
    hook: TestClient, mailing: Mailing, sent: int, clock: Clock, cert_host: CertHost,
    keys: tuple[rsa.RSAPrivateKey, x509.Certificate],
) -> None:
    key, _ = keys
    now = clock()
    hard = notification(key, ses_event("Bounce", ANA, ses_id(mailing, ANA, sent), now),
                        now, cert_host.cert_url, version="1")
    complaint = notification(key, ses_event("Complaint", BEN, ses_id(mailing, BEN, sent), now),
                             now, cert_host.cert_url, version="2")
    soft = notification(key, ses_event("Bounce", CY, ses_id(mailing, CY, sent), now,
                                       bounce_type="Transient"), now, cert_host.cert_url)
    for body in (hard, complaint, soft):
        answer = post(hook, body)
        assert answer.status_code == 200, answer.text
    suppressed = mailing.suppressed()
    assert set(suppressed) == {ANA, BEN}
    assert suppressed[ANA][0] == "hard_bounce" and "ses" in suppressed[ANA][1]
    assert "550 5.1.1 user unknown" in suppressed[ANA][1]
    assert suppressed[BEN][0] == "complaint"
    assert mailing.delivery(sent, CY).feedback == "soft_bounce"
    # The certificate was fetched once, then taken from the cache.
    assert cert_host.paths == ["/SimpleNotificationService-test.pem"]
    # The next edition leaves the suppressed readers out.
    assert mailing.recipients(mailing.publish("Bridge news")) == {CY, DI}


def test_wrong_stale_and_replayed_notices_change_nothing(
    hook: TestClient, mailing: Mailing, sent: int, clock: Clock, cert_host: CertHost,
    keys: tuple[rsa.RSAPrivateKey, x509.Certificate], caplog: pytest.LogCaptureFixture,
) -> None:
    key, _ = keys
    now = clock()
    event = ses_event("Bounce", ANA, ses_id(mailing, ANA, sent), now)
    forged = notification(key, event, now, cert_host.cert_url)
    forged["Message"] = forged["Message"].replace(ANA, BEN)  # changed after signing
    other_key, _ = around(now)
    wrong_key = notification(other_key, event, now, cert_host.cert_url, version="2")
    stale = notification(key, event, now - dt.timedelta(minutes=61), cert_host.cert_url)
    for body, status, reason in ((forged, 403, "wrong signature"),
                                 (wrong_key, 403, "wrong signature"),
                                 (stale, 400, "stale")):
        caplog.clear()
        answer = post(hook, body)
        assert answer.status_code == status and reason in answer.json()["error"]
        refusals = [r for r in caplog.records if "refused" in r.getMessage()]
        assert len(refusals) == 1  # logged once
    assert mailing.suppressed() == {}

    good = notification(key, event, now, cert_host.cert_url)
    assert post(hook, good).status_code == 200
    replay = post(hook, good)
    assert replay.status_code == 409 and "replay" in replay.json()["error"]
    assert list(mailing.suppressed()) == [ANA]


def test_a_topic_not_allowed_is_refused_before_any_fetch(
    hook: TestClient, mailing: Mailing, sent: int, clock: Clock, cert_host: CertHost,
    keys: tuple[rsa.RSAPrivateKey, x509.Certificate],
) -> None:
    key, _ = keys
    now = clock()
    event = ses_event("Complaint", ANA, ses_id(mailing, ANA, sent), now)
    body = notification(key, event, now, cert_host.cert_url,
                        topic="arn:aws:sns:us-east-1:999999999999:someone-else")
    answer = post(hook, body)
    assert answer.status_code == 403 and "topic_arns" in answer.json()["error"]
    assert cert_host.paths == [] and mailing.suppressed() == {}


@pytest.mark.parametrize("url", [
    "https://{stranger}/SimpleNotificationService-test.pem",  # a host not allowed
    "http://{allowed}/SimpleNotificationService-test.pem",  # not https
    "https://sns.us-east-1.amazonaws.com@{stranger}/SimpleNotificationService-test.pem",
    "https://sns.us-east-1.amazonaws.com.{stranger}/SimpleNotificationService-test.pem",
    "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-test.pem",
    "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem",  # other region
    "https://{allowed}/SimpleNotificationService-test.txt",
])
def test_a_certificate_url_off_sns_is_refused_without_fetching_it(
    url: str, hook: TestClient, mailing: Mailing, sent: int, clock: Clock,
    cert_host: CertHost, stranger: CertHost, keys: tuple[rsa.RSAPrivateKey, x509.Certificate],
) -> None:
    key, _ = keys
    now = clock()
    cert_url = url.format(stranger=stranger.netloc, allowed=cert_host.netloc)
    event = ses_event("Bounce", ANA, ses_id(mailing, ANA, sent), now)
    answer = post(hook, notification(key, event, now, cert_url))
    assert answer.status_code == 403, answer.text
    assert stranger.paths == [] and cert_host.paths == []
    assert mailing.suppressed() == {}


def test_a_subscription_is_confirmed_only_at_an_sns_url(
    hook: TestClient, clock: Clock, cert_host: CertHost, stranger: CertHost,
    keys: tuple[rsa.RSAPrivateKey, x509.Certificate],
) -> None:
    key, _ = keys

    def confirmation(subscribe_url: str) -> dict[str, str]:
        return signed(key, {
            "Type": "SubscriptionConfirmation", "MessageId": str(uuid.uuid4()),
            "Token": "2336412f37fb687f5d51e6e2425c464de", "TopicArn": TOPIC,
            "Message": f"You have chosen to subscribe to the topic {TOPIC}.",
            "SubscribeURL": subscribe_url,
            "Timestamp": clock().strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "SigningCertURL": cert_host.cert_url,
        }, "2")

    refused = post(hook, confirmation(f"https://{stranger.netloc}/?Action=ConfirmSubscription"))
    assert refused.status_code == 403 and stranger.paths == []
    answer = post(hook, confirmation(f"https://{cert_host.netloc}/?Action=ConfirmSubscription"
                                     "&Token=2336412f37fb687f5d51e6e2425c464de"))
    assert answer.status_code == 200 and answer.json() == {"outcome": "confirmed"}
    assert cert_host.paths[-1].startswith("/?Action=ConfirmSubscription&Token=")


def test_without_topics_configured_nothing_is_taken(
    app: App, clock: Clock, mailing: Mailing, sent: int,
    keys: tuple[rsa.RSAPrivateKey, x509.Certificate],
) -> None:
    key, _ = keys
    event = ses_event("Bounce", ANA, ses_id(mailing, ANA, sent), clock())
    with TestClient(create_app(app)) as client:
        answer = post(client, notification(key, event, clock(),
                                           "https://sns.us-east-1.amazonaws.com/x.pem"))
    assert answer.status_code == 503 and "[ses] topic_arns" in answer.json()["error"]
    assert mailing.suppressed() == {}


def test_an_unsigned_body_nested_too_deep_is_a_400_without_a_traceback(
    hook: TestClient, caplog: pytest.LogCaptureFixture, cert_host: CertHost,
) -> None:
    caplog.set_level(logging.INFO, "digest.web.webhooks")
    answer = hook.post("/webhooks/ses", content=b"[" * 100_000 + b"]" * 100_000,
                       headers={"Content-Type": "text/plain; charset=UTF-8"})
    assert answer.status_code == 400 and "nested too deep" in answer.json()["error"]
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1 and not refusals[0].exc_info
    assert cert_host.paths == []
