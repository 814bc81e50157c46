"""`POST /webhooks/ses`: Amazon SES bounce and complaint events, delivered by SNS over
HTTPS (a configuration set's SNS event destination, or an identity's notification
topic).

Every request is an SNS message (JSON, sent as text/plain), checked the way AWS says
(https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html), in
this order, each failure a 4xx with nothing changed and one log line:

1. its TopicArn is one of `[ses] topic_arns` (403): anyone with an AWS account can make
   SNS sign a message, so the signature alone proves nothing about whose it is;
2. its SigningCertURL is https, on `sns.<the topic's region>.amazonaws.com` (or
   `.com.cn`), port 443, no user info, a .pem path (403), and is fetched only then (the
   certificate is cached by URL); `[ses] sns_cert_hosts` adds hosts, for tests and
   private setups only;
3. its Timestamp is no older than `[ses] notice_max_age_minutes` (SNS retries keep it),
   nor ahead of this server's clock by more than `[webhooks] max_age_seconds` (400);
4. its Signature verifies over the string AWS defines for its Type, with SHA1withRSA
   (SignatureVersion 1) or SHA256withRSA (2), by the certificate's key, the
   certificate valid now (403);
5. its MessageId was not taken in before (`feedback.first_sight`; 409).

A SubscriptionConfirmation is confirmed by fetching its SubscribeURL, which must pass
the same host check as a certificate's. A Notification's Message is SES's event
(https://docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-sns-contents.html,
`eventType`; identity notifications say `notificationType`): a Bounce of bounceType
Permanent is a hard bounce, Transient or Undetermined a soft one, a Complaint a
complaint, each for every recipient it names, matched to the delivery by
`mail.messageId` (SES's MessageId, which the SES backend stored). Other events
(Delivery, Send, Open...) and SES's first plain-text message are answered 200 and
ignored.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import logging
import re
import threading
from typing import Any
from urllib.parse import urlsplit

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from digest.app import App
from digest.feedback import Feedback, Kind
from digest.web.deps import AppDep
from digest.web.webhooks.intake import (
    Notice,
    Refusal,
    check_time,
    is_replay,
    iso_time,
    read_json,
    refused,
    take_in,
)

log = logging.getLogger("digest.web.webhooks")
router = APIRouter()
PROVIDER = "ses"

#: The fields each message type signs, in the order AWS concatenates them.
_SIGNED = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                 "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                "TopicArn", "Type"),
}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
_SNS_HOST = re.compile(r"sns\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?")
_TOPIC = re.compile(r"arn:aws[a-z-]*:sns:([a-z0-9-]+):\d{12}:[\w.-]+")
#: Largest certificate read; SNS's are about 2 KB.
_MAX_CERT = 64 * 1024
_certs: dict[str, x509.Certificate] = {}
_certs_lock = threading.Lock()


@router.post("/ses")
async def ses(request: Request, app: AppDep) -> Response:
    try:
        message = _message(app, read_json(await request.body()))
        await run_in_threadpool(_verify, app, message)
    except Refusal as refusal:
        return refused(PROVIDER, request, refusal)
    if message["Type"] == "SubscriptionConfirmation":
        try:
            await run_in_threadpool(_confirm, app, message)
        except Refusal as refusal:
            return refused(PROVIDER, request, refusal)
        log.info("webhook ses: subscription to %s confirmed", message["TopicArn"])
        return JSONResponse({"outcome": "confirmed"})
    if message["Type"] == "UnsubscribeConfirmation":
        log.warning("webhook ses: %s unsubscribed this endpoint", message["TopicArn"])
        return JSONResponse({"outcome": "ignored"})
    notices = _notices(message)
    counts = await take_in(app, PROVIDER, notices)
    if is_replay(counts):
        return refused(PROVIDER, request, Refusal(
            409, f"replay: SNS message {message['MessageId']} was taken in before"))
    return JSONResponse({"outcomes": counts})


def _message(app: App, data: Any) -> dict[str, str]:
    """The SNS message's fields, its topic allowed and its time fresh (steps 1 and 3)."""
    topics = {t.strip() for t in app.settings["ses.topic_arns"].split(",") if t.strip()}
    if not topics:
        raise Refusal(503, "no SNS topic is allowed: set [ses] topic_arns to the ARN of the "
                           "topic SES publishes to")
    if not isinstance(data, dict):
        raise Refusal(400, "the body is not a JSON object")
    kind = data.get("Type")
    if kind not in _SIGNED:
        raise Refusal(400, f"Type {str(kind)[:40]!r} is not an SNS message type")
    needed = [f for f in _SIGNED[kind] if f != "Subject"] + [
        "Signature", "SignatureVersion", "SigningCertURL"]
    missing = [f for f in needed if not isinstance(data.get(f), str)]
    if missing:
        raise Refusal(400, f"an SNS {kind} needs {', '.join(missing)}")
    if data["TopicArn"] not in topics:
        raise Refusal(403, f"topic {data['TopicArn'][:200]} is not in [ses] topic_arns")
    at = iso_time(data["Timestamp"], "Timestamp")
    check_time(at, app.clock(),
               max_age=dt.timedelta(minutes=app.settings["ses.notice_max_age_minutes"]),
               max_ahead=dt.timedelta(seconds=app.settings["webhooks.max_age_seconds"]),
               what="Timestamp")
    return {k: v for k, v in data.items() if isinstance(v, str)}


def _verify(app: App, message: dict[str, str]) -> None:
    """Steps 2 and 4: the certificate from an allowed URL, and the signature by it."""
    algorithm = _HASHES.get(message["SignatureVersion"])
    if algorithm is None:
        raise Refusal(400, f"SignatureVersion {message['SignatureVersion'][:10]!r} is "
                           "neither 1 nor 2")
    url = message["SigningCertURL"]
    _check_url(app, url, message["TopicArn"], "SigningCertURL", pem=True)
    cert = _certificate(app, url)
    now = app.clock()
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise Refusal(403, f"the signing certificate at {url} is not valid now")
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise Refusal(403, "the signing certificate's key is not RSA")
    try:
        signature = base64.b64decode(message["Signature"], validate=True)
        key.verify(signature, string_to_sign(message), padding.PKCS1v15(), algorithm())
    except (binascii.Error, InvalidSignature):
        raise Refusal(403, "wrong signature: the message is not the one SNS signed") from None


def string_to_sign(message: dict[str, str]) -> bytes:
    """What SNS signs: "name\\nvalue\\n" for each signed field of the message's Type, in
    AWS's order; a Notification's Subject only when it has one."""
    fields = _SIGNED[message["Type"]]
    return "".join(f"{name}\n{message[name]}\n" for name in fields
                   if name in message).encode()


def _check_url(app: App, url: str, topic: str, what: str, *, pem: bool) -> None:
    """Refuse (403) a URL SNS itself would not use: anything but https on
    sns.<the topic's region>.amazonaws.com, port 443, without user info."""
    extra = {h.strip().lower() for h in app.settings["ses.sns_cert_hosts"].split(",")
             if h.strip()}
    shown = url[:200]
    if not url.isascii() or any(c in url for c in "\\ \t\r\n"):
        raise Refusal(403, f"{what} {shown!r} has characters no SNS URL has")
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise Refusal(403, f"{what} {shown} is not https")
    if "@" in parts.netloc:
        raise Refusal(403, f"{what} {shown} carries user info")
    try:
        port = parts.port
    except ValueError:
        raise Refusal(403, f"{what} {shown} has a bad port") from None
    if pem and not parts.path.endswith(".pem"):
        raise Refusal(403, f"{what} {shown} is not a .pem file")
    if parts.netloc.lower() in extra:
        return
    if port not in (None, 443):
        raise Refusal(403, f"{what} {shown} is not on port 443")
    host = _SNS_HOST.fullmatch(parts.hostname or "")
    if host is None:
        raise Refusal(403, f"{what} {shown} is not on sns.<region>.amazonaws.com")
    region = _TOPIC.fullmatch(topic)
    if region is None or region.group(1) != host.group(1):
        raise Refusal(403, f"{what} {shown} is not in the region of topic {topic[:200]}")


def _certificate(app: App, url: str) -> x509.Certificate:
    """The certificate at `url`, fetched once (no redirects, at most 64 KB)."""
    with _certs_lock:
        cached = _certs.get(url)
    if cached is not None:
        return cached
    try:
        with app.http.get(url, timeout=10, allow_redirects=False, stream=True) as answer:
            if answer.status_code != 200:
                raise Refusal(403, f"the signing certificate {url} answered "
                                   f"{answer.status_code}")
            pem = answer.raw.read(_MAX_CERT + 1, decode_content=True)
    except requests.RequestException as exc:
        # Our side or AWS's, not the notice's fault: SNS retries a 5xx.
        raise Refusal(503, f"cannot fetch the signing certificate {url}: {exc}") from None
    try:
        if len(pem) > _MAX_CERT:
            raise ValueError("too large")
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise Refusal(403, f"{url} holds no PEM certificate ({exc})") from None
    with _certs_lock:
        if len(_certs) >= 64:  # a few per region in practice; never grow without bound
            _certs.clear()
        _certs[url] = cert
    return cert


def _confirm(app: App, message: dict[str, str]) -> None:
    """Confirm the subscription: GET its SubscribeURL, an SNS URL of the topic's region."""
    url = message["SubscribeURL"]
    _check_url(app, url, message["TopicArn"], "SubscribeURL", pem=False)
    try:
        answer = app.http.get(url, timeout=10, allow_redirects=False)
    except requests.RequestException as exc:
        raise Refusal(503, f"cannot confirm the subscription at {url}: {exc}") from None
    if answer.status_code != 200:
        raise Refusal(502, f"SNS answered {answer.status_code} to the subscription's "
                           "confirmation")


def _notices(message: dict[str, str]) -> list[Notice]:
    """SES's event in the Message: one notice per recipient bounced or complaining, the
    first keyed by the SNS MessageId (what a replay repeats)."""
    key = message["MessageId"]
    try:
        event = read_json(message["Message"])
    except Refusal:
        # SES's first message to a new topic is plain text ("Successfully validated...").
        return [Notice(key, None)]
    if not isinstance(event, dict):
        return [Notice(key, None)]
    kind = event.get("eventType") or event.get("notificationType")
    mail = event.get("mail")
    mail = mail if isinstance(mail, dict) else {}
    message_id = str(mail.get("messageId") or "")
    fallback = iso_time(message["Timestamp"], "Timestamp")
    found: list[tuple[Kind, str, dt.datetime, str]] = []
    if kind == "Bounce" and isinstance(event.get("bounce"), dict):
        bounce = event["bounce"]
        bounce_kind: Kind = ("hard_bounce" if bounce.get("bounceType") == "Permanent"
                             else "soft_bounce")
        at = _when(bounce.get("timestamp"), fallback)
        for r in bounce.get("bouncedRecipients") or []:
            if isinstance(r, dict) and isinstance(r.get("emailAddress"), str):
                detail = (f"{bounce.get('bounceType')}/{bounce.get('bounceSubType')}: "
                          f"{r.get('diagnosticCode') or r.get('status') or ''}")
                found.append((bounce_kind, r["emailAddress"], at, detail.strip(": ")))
    elif kind == "Complaint" and isinstance(event.get("complaint"), dict):
        complaint = event["complaint"]
        at = _when(complaint.get("timestamp"), fallback)
        for r in complaint.get("complainedRecipients") or []:
            if isinstance(r, dict) and isinstance(r.get("emailAddress"), str):
                found.append(("complaint", r["emailAddress"], at,
                              f"complaint: {complaint.get('complaintFeedbackType') or ''}"
                              .strip(": ")))
    if not found:
        return [Notice(key, None)]
    return [Notice(key if n == 0 else f"{key}/{address}", Feedback(
        provider=PROVIDER, kind=fb_kind, email=address, at=at, message_id=message_id,
        detail=detail[:300])) for n, (fb_kind, address, at, detail) in enumerate(found)]


def _when(value: object, fallback: dt.datetime) -> dt.datetime:
    try:
        return iso_time(value, "timestamp")
    except Refusal:
        return fallback
