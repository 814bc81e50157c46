"""The providers' webhooks through the real app: an edition really sent (outbox backend,
ledger in SQLite), then bounce and complaint notices shaped as each provider documents
them, correctly signed, wrongly signed, stale, replayed and unauthenticated; what an
admin would check afterwards: the suppressions table, the delivery's feedback, and the
next edition leaving the suppressed reader out.

Payload shapes:
- Postmark: https://postmarkapp.com/developer/webhooks/bounce-webhook and
  https://postmarkapp.com/developer/webhooks/spam-complaint-webhook
- SendGrid: https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event
  (events), .../getting-started-event-webhook-security-features (signature)
- Mailgun: https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/webhook-payloads
  and .../securing-webhooks
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlalchemy import select

from digest.app import App
from digest.models import Delivery, Edition
from digest.stats import stats_of_edition
from subscribers.models import Subscriber
from subscribers.suppress import suppressions
from tests.conftest import Clock
from tests.test_feedback import Newsroom

PEOPLE = ["ana@example.org", "ben@example.org", "cy@example.org", "di@example.org"]
POSTMARK_PASSWORD = "pm-hook-4f1c0a"
MAILGUN_KEY = "key-mailgun-webhook-0b7e"


class Mailing(Newsroom):
    """The list `daily` with PEOPLE; `publish` sends an edition through the outbox."""

    def suppressed(self) -> dict[str, tuple[str, str]]:
        """address -> (reason, detail) of every suppression, as `digest suppress ls`."""
        with self.app.sessions() as s:
            return {email or "?": (row.reason, row.detail) for row, email in suppressions(s)}

    def recipients(self, edition_id: int) -> set[str]:
        with self.app.sessions() as s:
            return set(s.scalars(select(Subscriber.email).join(
                Delivery, Delivery.subscriber_id == Subscriber.id)
                .where(Delivery.edition_id == edition_id)))


@pytest.fixture
def mailing(app: App, clock: Clock, tmp_path: Path) -> Iterator[Mailing]:
    room = Mailing(app, clock, tmp_path)
    room.join(*PEOPLE)
    yield room
    room.close()


@pytest.fixture
def sent(mailing: Mailing) -> int:
    """The first edition, sent to PEOPLE: its id."""
    return mailing.publish("Ferry news")


@pytest.fixture
def signing_key(app: App) -> Iterator[ec.EllipticCurvePrivateKey]:
    """SendGrid's side of the signature: a P-256 key pair made here, its public half set
    as [sendgrid] webhook_public_key in base64 DER, as SendGrid's console shows it."""
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    app.settings = app.settings.with_overrides(
        sendgrid__webhook_public_key=base64.b64encode(der).decode())
    app.settings.env["DIGEST_POSTMARK_WEBHOOK_PASSWORD"] = POSTMARK_PASSWORD
    app.settings.env["DIGEST_MAILGUN_WEBHOOK_SIGNING_KEY"] = MAILGUN_KEY
    yield key


# -- what each provider sends -------------------------------------------------------------


def postmark_bounce(delivery: Delivery, email: str, at: dt.datetime, *, ident: int = 4323372036,
                    bounce_type: str = "HardBounce", inactive: bool = True) -> dict[str, Any]:
    """Postmark's bounce webhook body (its documented example, our values)."""
    return {"RecordType": "Bounce", "MessageStream": "broadcast", "ID": ident,
            "Type": bounce_type, "TypeCode": 1 if bounce_type == "HardBounce" else 4096,
            "Name": "Hard bounce", "Tag": "", "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
            "Metadata": {"delivery_id": str(delivery.id)}, "ServerID": 23,
            "Description": "The server was unable to deliver your message (ex: unknown user, "
                           "mailbox not found).",
            "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist",
            "Email": email, "From": "d@example.org",
            "BouncedAt": at.astimezone(dt.timezone(dt.timedelta(hours=-5))).isoformat(),
            "DumpAvailable": True, "Inactive": inactive, "CanActivate": True,
            "Subject": "Daily: Ferry news", "Content": ""}


def postmark(client: TestClient, body: Any, password: str | None = POSTMARK_PASSWORD) -> Any:
    headers = {"Content-Type": "application/json"}
    if password is not None:
        pair = base64.b64encode(f"postmark:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {pair}"
    return client.post("/webhooks/postmark", content=json.dumps(body), headers=headers)


def sendgrid_event(event: str, email: str, delivery: Delivery, at: dt.datetime, ident: str,
                   **extra: Any) -> dict[str, Any]:
    """One event of SendGrid's batch, custom_args flattened into it as SendGrid does."""
    return {"email": email, "timestamp": int(at.timestamp()), "event": event,
            "sg_event_id": ident, "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648",
            "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>", "category": ["daily"],
            "delivery_id": str(delivery.id), **extra}


def sendgrid(client: TestClient, key: ec.EllipticCurvePrivateKey, events: Any,
             at: dt.datetime, *, body: bytes | None = None) -> Any:
    raw = body if body is not None else json.dumps(events).encode()
    timestamp = str(int(at.timestamp()))
    signature = key.sign(timestamp.encode() + raw, ec.ECDSA(hashes.SHA256()))
    return client.post("/webhooks/sendgrid", content=raw, headers={
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp})


def mailgun_body(event: dict[str, Any], at: dt.datetime, token: str,
                 key: str = MAILGUN_KEY) -> dict[str, Any]:
    timestamp = str(int(at.timestamp()))
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256)
    return {"signature": {"timestamp": timestamp, "token": token,
                          "signature": signature.hexdigest()},
            "event-data": event}


def mailgun_failed(delivery: Delivery, email: str, at: dt.datetime, severity: str,
                   *, with_id: bool = True) -> dict[str, Any]:
    """Mailgun's "failed" event; named by the user variable, or by Message-ID alone."""
    return {"event": "failed", "id": "G9Bn5sl1TC6nu79C8C0bwg", "timestamp": at.timestamp(),
            "severity": severity, "reason": "bounce" if severity == "permanent" else "generic",
            "recipient": email, "recipient-domain": email.split("@")[1],
            "log-level": "error", "tags": [], "envelope": {"sender": "d@example.org"},
            "delivery-status": {"code": 550 if severity == "permanent" else 452,
                                "message": "5.1.1 No such user" if severity == "permanent"
                                else "4.2.2 Mailbox full", "attempt-no": 1},
            "message": {"headers": {"to": email, "from": "d@example.org",
                                    "subject": "Daily: Ferry news",
                                    "message-id": delivery.message_id.strip("<>")}},
            "user-variables": {"delivery_id": str(delivery.id)} if with_id else {}}


# -- Postmark -----------------------------------------------------------------------------


def test_postmark_hard_bounce_suppresses_and_the_next_edition_skips_the_reader(
        mailing: Mailing, sent: int, signing_key: object, client: TestClient,
        clock: Clock) -> None:
    ana = mailing.delivery(sent, PEOPLE[0])
    clock.advance(minutes=20)
    answer = postmark(client, postmark_bounce(ana, PEOPLE[0], clock() - dt.timedelta(minutes=3)))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"outcome": "suppressed"}
    reason, detail = mailing.suppressed()[PEOPLE[0]]
    assert reason == "hard_bounce" and detail.startswith("postmark 2026-11-27 07:17:00 UTC")
    assert "HardBounce" in detail and "550 5.1.1" in detail
    assert mailing.delivery(sent, PEOPLE[0]).feedback == "hard_bounce"
    with mailing.app.sessions() as s:  # the console's stats for the edition
        stats = stats_of_edition(s, s.get_one(Edition, sent))
        assert stats is not None and (stats.bounced, stats.complained) == (1, 0)

    clock.advance(hours=24)
    second = mailing.publish("Harbour news")
    assert mailing.recipients(second) == set(PEOPLE[1:])


def test_postmark_complaint_and_soft_bounce(mailing: Mailing, sent: int,
                                            signing_key: object, client: TestClient,
                                            clock: Clock) -> None:
    ben, cy = mailing.delivery(sent, PEOPLE[1]), mailing.delivery(sent, PEOPLE[2])
    complaint = {**postmark_bounce(ben, PEOPLE[1], clock(), ident=11), "RecordType":
                 "SpamComplaint", "Type": "SpamComplaint", "TypeCode": 100001}
    assert postmark(client, complaint).json() == {"outcome": "suppressed"}
    soft = postmark_bounce(cy, PEOPLE[2], clock(), ident=12, bounce_type="SoftBounce",
                           inactive=False)
    assert postmark(client, soft).json() == {"outcome": "counted"}
    assert mailing.suppressed().keys() == {PEOPLE[1]}
    assert mailing.suppressed()[PEOPLE[1]][0] == "complaint"
    assert mailing.delivery(sent, PEOPLE[2]).feedback == "soft_bounce"
    # An auto-responder says nothing about the address: taken in, nothing changed.
    reply = postmark_bounce(cy, PEOPLE[2], clock(), ident=13, bounce_type="AutoResponder",
                            inactive=False)
    assert postmark(client, reply).json() == {"outcome": "ignored"}
    assert mailing.suppressed().keys() == {PEOPLE[1]}


def test_postmark_refuses_missing_and_wrong_passwords_replays_and_stale_bounces(
        mailing: Mailing, sent: int, signing_key: object, client: TestClient, clock: Clock,
        caplog: pytest.LogCaptureFixture) -> None:
    ana = mailing.delivery(sent, PEOPLE[0])
    bounce = postmark_bounce(ana, PEOPLE[0], clock())
    caplog.set_level(logging.INFO, "digest.web.webhooks")

    missing = postmark(client, bounce, password=None)
    assert missing.status_code == 401 and "basic auth" in missing.json()["error"]
    assert missing.headers["WWW-Authenticate"].startswith("Basic")
    assert postmark(client, bounce, password="guess").status_code == 401
    stale = postmark_bounce(ana, PEOPLE[0], clock() - dt.timedelta(hours=25), ident=2)
    answer = postmark(client, stale)
    assert answer.status_code == 400 and answer.json()["error"].startswith("stale")
    assert mailing.suppressed() == {}
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 3 and not any(r.exc_info for r in refusals)

    assert postmark(client, bounce).status_code == 200
    replay = postmark(client, bounce)
    assert replay.status_code == 409 and "replay" in replay.json()["error"]


def test_postmark_without_a_password_configured_takes_nothing(
        mailing: Mailing, sent: int, client: TestClient, clock: Clock,
        caplog: pytest.LogCaptureFixture) -> None:
    ana = mailing.delivery(sent, PEOPLE[0])
    answer = postmark(client, postmark_bounce(ana, PEOPLE[0], clock()), password="")
    assert answer.status_code == 503
    assert "DIGEST_POSTMARK_WEBHOOK_PASSWORD" in caplog.text
    assert mailing.suppressed() == {}


def test_malformed_bodies_get_a_short_reason(signing_key: object, client: TestClient) -> None:
    answer = postmark(client, "{not json")
    assert answer.status_code == 400
    bad = client.post("/webhooks/postmark", content=b"{not json", auth=("p", POSTMARK_PASSWORD))
    assert bad.status_code == 400 and bad.json()["error"].startswith("the body is not JSON")
    answer = postmark(client, {"RecordType": "Bounce", "Email": "x@example.org"})
    assert answer.status_code == 400 and "needs ID, Type" in answer.json()["error"]


# -- SendGrid -----------------------------------------------------------------------------


def test_sendgrid_batch_bounce_complaint_soft_and_a_bad_event(
        mailing: Mailing, sent: int, signing_key: ec.EllipticCurvePrivateKey,
        client: TestClient, clock: Clock) -> None:
    ana, ben, cy, di = (mailing.delivery(sent, p) for p in PEOPLE)
    now = clock()
    events = [
        sendgrid_event("processed", PEOPLE[3], di, now, "ev-0"),
        sendgrid_event("bounce", PEOPLE[0], ana, now, "ev-1", type="bounce",
                       status="5.1.1", reason="550 5.1.1 user unknown"),
        {"email": PEOPLE[3], "event": "bounce"},  # no sg_event_id: skipped, the rest go on
        sendgrid_event("spamreport", PEOPLE[1], ben, now, "ev-2"),
        sendgrid_event("bounce", PEOPLE[2], cy, now, "ev-3", type="blocked",
                       status="4.0.0", reason="421 try later"),
    ]
    answer = sendgrid(client, signing_key, events, now)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"outcomes": {"ignored": 1, "suppressed": 2, "counted": 1,
                                          "malformed": 1}}
    suppressed = mailing.suppressed()
    assert {k: v[0] for k, v in suppressed.items()} == {PEOPLE[0]: "hard_bounce",
                                                       PEOPLE[1]: "complaint"}
    assert "550 5.1.1 user unknown" in suppressed[PEOPLE[0]][1]
    assert mailing.delivery(sent, PEOPLE[2]).feedback == "soft_bounce"

    # The same batch again, newly signed: every event seen before, so a replay.
    clock.advance(minutes=1)
    again = sendgrid(client, signing_key, events, clock())
    assert again.status_code == 409
    # One new event beside old ones: the new one is taken, the old ones skipped.
    fresh = [*events, sendgrid_event("dropped", PEOPLE[3], di, clock(), "ev-4",
                                     reason="Bounced Address")]
    mixed = sendgrid(client, signing_key, fresh, clock())
    assert mixed.json()["outcomes"] == {"replay": 3, "ignored": 1, "suppressed": 1,
                                        "malformed": 1}
    assert mailing.suppressed()[PEOPLE[3]][0] == "hard_bounce"


def test_sendgrid_refuses_wrong_signatures_and_stale_ones(
        mailing: Mailing, sent: int, signing_key: ec.EllipticCurvePrivateKey,
        client: TestClient, clock: Clock) -> None:
    ana = mailing.delivery(sent, PEOPLE[0])
    events = [sendgrid_event("bounce", PEOPLE[0], ana, clock(), "ev-9", type="bounce")]
    other = ec.generate_private_key(ec.SECP256R1())
    wrong = sendgrid(client, other, events, clock())
    assert wrong.status_code == 403 and "bad signature" in wrong.json()["error"]
    # Signed, then the body changed on the way: the signature covers the raw body.
    raw = json.dumps(events).encode()
    timestamp = str(int(clock().timestamp()))
    signature = signing_key.sign(timestamp.encode() + raw, ec.ECDSA(hashes.SHA256()))
    tampered = client.post("/webhooks/sendgrid", content=raw.replace(b"bounce", b"spamreport"),
                           headers={"X-Twilio-Email-Event-Webhook-Signature":
                                    base64.b64encode(signature).decode(),
                                    "X-Twilio-Email-Event-Webhook-Timestamp": timestamp})
    assert tampered.status_code == 403
    unsigned = client.post("/webhooks/sendgrid", content=raw)
    assert unsigned.status_code == 403 and "unsigned" in unsigned.json()["error"]
    stale = sendgrid(client, signing_key, events, clock() - dt.timedelta(minutes=11))
    assert stale.status_code == 400 and stale.json()["error"].startswith("stale")
    ahead = sendgrid(client, signing_key, events, clock() + dt.timedelta(minutes=11))
    assert ahead.status_code == 400 and "future" in ahead.json()["error"]
    assert mailing.suppressed() == {}
    assert sendgrid(client, signing_key, events, clock() - dt.timedelta(minutes=9)
                    ).status_code == 200
    assert mailing.suppressed().keys() == {PEOPLE[0]}


def test_sendgrid_without_a_usable_key_takes_nothing(
        app: App, mailing: Mailing, sent: int, client: TestClient, clock: Clock) -> None:
    ana = mailing.delivery(sent, PEOPLE[0])
    key = ec.generate_private_key(ec.SECP256R1())
    events = [sendgrid_event("bounce", PEOPLE[0], ana, clock(), "ev-1", type="bounce")]
    assert sendgrid(client, key, events, clock()).status_code == 503
    app.settings = app.settings.with_overrides(sendgrid__webhook_public_key="bm90IGEga2V5")
    answer = sendgrid(client, key, events, clock())
    assert answer.status_code == 503 and "copy it again" in answer.json()["error"]
    assert mailing.suppressed() == {}


# -- Mailgun ------------------------------------------------------------------------------


def test_mailgun_permanent_failure_by_message_id_and_temporary_by_variable(
        mailing: Mailing, sent: int, signing_key: object, client: TestClient,
        clock: Clock) -> None:
    ana, cy = mailing.delivery(sent, PEOPLE[0]), mailing.delivery(sent, PEOPLE[2])
    assert ana.message_id.startswith("<")
    # No user variable: found by the Message-ID Mailgun reports (ours, passed through).
    hard = mailgun_body(mailgun_failed(ana, PEOPLE[0], clock(), "permanent", with_id=False),
                        clock(), "tok-1")
    answer = client.post("/webhooks/mailgun", json=hard)
    assert answer.status_code == 200 and answer.json() == {"outcome": "suppressed"}
    assert "550 5.1.1 No such user" in mailing.suppressed()[PEOPLE[0]][1]
    soft = mailgun_body(mailgun_failed(cy, PEOPLE[2], clock(), "temporary"), clock(), "tok-2")
    assert client.post("/webhooks/mailgun", json=soft).json() == {"outcome": "counted"}
    complained = mailgun_body({"event": "complained", "timestamp": clock().timestamp(),
                               "recipient": PEOPLE[2], "id": "x",
                               "user-variables": {"delivery_id": cy.id}}, clock(), "tok-3")
    assert client.post("/webhooks/mailgun", json=complained).json() == {"outcome": "suppressed"}
    assert {k: v[0] for k, v in mailing.suppressed().items()} == {PEOPLE[0]: "hard_bounce",
                                                                 PEOPLE[2]: "complaint"}


def test_mailgun_refuses_with_406_so_it_does_not_retry(
        mailing: Mailing, sent: int, signing_key: object, client: TestClient,
        clock: Clock) -> None:
    ana = mailing.delivery(sent, PEOPLE[0])
    event = mailgun_failed(ana, PEOPLE[0], clock(), "permanent")
    wrong = client.post("/webhooks/mailgun", json=mailgun_body(event, clock(), "t1", key="nope"))
    assert wrong.status_code == 406 and "bad signature" in wrong.json()["error"]
    # Mailgun's retries keep the first signature: hours old is fine, a day is stale.
    old = client.post("/webhooks/mailgun",
                      json=mailgun_body(event, clock() - dt.timedelta(hours=25), "t2"))
    assert old.status_code == 406 and old.json()["error"].startswith("stale")
    unsigned = client.post("/webhooks/mailgun", json={"event-data": event})
    assert unsigned.status_code == 406
    assert mailing.suppressed() == {}
    body = mailgun_body(event, clock() - dt.timedelta(hours=7), "t3")
    assert client.post("/webhooks/mailgun", json=body).status_code == 200
    replay = client.post("/webhooks/mailgun", json=body)
    assert replay.status_code == 406 and "replay" in replay.json()["error"]


def test_a_signed_notice_for_an_unknown_delivery_is_accepted_as_unmatched(
        mailing: Mailing, sent: int, signing_key: object, client: TestClient,
        clock: Clock) -> None:
    ana = mailing.delivery(sent, PEOPLE[0])
    event = mailgun_failed(ana, "stranger@example.net", clock(), "permanent")
    event["user-variables"] = {"delivery_id": "999999"}
    event["message"]["headers"]["message-id"] = "nothing-of-ours@example.net"
    answer = client.post("/webhooks/mailgun", json=mailgun_body(event, clock(), "t9"))
    assert answer.status_code == 200 and answer.json() == {"outcome": "unmatched"}
    assert mailing.suppressed() == {}


def test_webhooks_need_no_session_and_stay_off_the_console(
        signing_key: object, client: TestClient) -> None:
    answer = client.post("/webhooks/mailgun", content=b"[]")
    assert answer.status_code == 406 and "set-cookie" not in answer.headers
    assert client.get("/webhooks/mailgun").status_code == 405
    big = client.post("/webhooks/sendgrid", content=b"[" + b" " * (5 * 1024 * 1024) + b"]")
    assert big.status_code == 413


def test_postmark_broadcast_suppression_and_deactivating_soft_bounce(
        mailing: Mailing, sent: int, signing_key: object, client: TestClient,
        clock: Clock) -> None:
    """A broadcast stream reports Postmark's own suppressions as a SubscriptionChange
    (https://postmarkapp.com/developer/webhooks/subscription-change-webhook); a bounce
    of any type after which Postmark deactivated the address (Inactive) suppresses."""
    ana, ben = mailing.delivery(sent, PEOPLE[0]), mailing.delivery(sent, PEOPLE[1])
    change = {"RecordType": "SubscriptionChange", "MessageID": "a4909a96-73d3-4c1c-8b0c",
              "ServerID": 23, "MessageStream": "broadcast", "ChangedAt": clock().isoformat(),
              "Recipient": PEOPLE[0], "Origin": "Recipient", "SuppressSending": True,
              "SuppressionReason": "SpamComplaint", "Tag": "",
              "Metadata": {"delivery_id": str(ana.id)}}
    assert postmark(client, change).json() == {"outcome": "suppressed"}
    reactivated = {**change, "Recipient": PEOPLE[2], "SuppressSending": False,
                   "SuppressionReason": None}
    assert postmark(client, reactivated).json() == {"outcome": "ignored"}
    soft = postmark_bounce(ben, PEOPLE[1], clock(), ident=21, bounce_type="SoftBounce",
                           inactive=True)
    assert postmark(client, soft).json() == {"outcome": "suppressed"}
    assert {k: v[0] for k, v in mailing.suppressed().items()} == {PEOPLE[0]: "complaint",
                                                                 PEOPLE[1]: "hard_bounce"}


DEEP = b"[" * 100_000 + b"]" * 100_000  # nested past any parser's depth


@pytest.mark.parametrize(("body", "why"), [
    (DEEP, "nested too deep"),
    (b'{"a": ' + b"9" * 5000 + b"}", "not JSON"),  # an integer longer than Python reads
    (b"\xff\xfe{}", "not JSON"),
])
def test_a_body_too_deep_or_unreadable_is_a_4xx_with_one_line_for_every_webhook(
        signing_key: ec.EllipticCurvePrivateKey, client: TestClient, clock: Clock,
        caplog: pytest.LogCaptureFixture, body: bytes, why: str) -> None:
    caplog.set_level(logging.INFO, "digest.web.webhooks")
    answers = {
        "mailgun": client.post("/webhooks/mailgun", content=body),
        "postmark": client.post("/webhooks/postmark", content=body,
                                auth=("postmark", POSTMARK_PASSWORD)),
        "sendgrid": sendgrid(client, signing_key, None, clock(), body=body),
    }
    assert {k: a.status_code for k, a in answers.items()} == {
        "mailgun": 406, "postmark": 400, "sendgrid": 400}
    assert all(why in a.json()["error"] for a in answers.values())
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 3 and not any(r.exc_info for r in refusals)


def test_a_notice_naming_another_reader_than_its_delivery_suppresses_no_one(
        mailing: Mailing, sent: int, signing_key: ec.EllipticCurvePrivateKey,
        client: TestClient, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    """Correctly authenticated, but the delivery id is another reader's: providers
    report the address we sent to, so the notice is not that delivery's."""
    ana = mailing.delivery(sent, PEOPLE[0])
    caplog.set_level(logging.WARNING, "digest.feedback")
    now = clock()
    bounce = postmark_bounce(ana, PEOPLE[1], now, ident=31)
    bounce["MessageID"] = "not-one-of-ours"
    assert postmark(client, bounce).json() == {"outcome": "unmatched"}
    event = mailgun_failed(ana, PEOPLE[1], now, "permanent")
    event["message"]["headers"]["message-id"] = "nothing-of-ours@example.net"
    answer = client.post("/webhooks/mailgun", json=mailgun_body(event, now, "t-31"))
    assert answer.json() == {"outcome": "unmatched"}
    events = [sendgrid_event("spamreport", PEOPLE[1], ana, now, "ev-31")]
    assert sendgrid(client, signing_key, events, now).json() == {
        "outcomes": {"unmatched": 1}}
    assert mailing.suppressed() == {}
    assert mailing.delivery(sent, PEOPLE[0]).feedback == ""
    assert caplog.text.count("not taken") == 3
