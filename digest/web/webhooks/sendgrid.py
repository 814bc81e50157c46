"""`POST /webhooks/sendgrid`: SendGrid's Signed Event Webhook, a JSON array of events per
request (https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event).

The signature is ECDSA (P-256, SHA-256) over the `X-Twilio-Email-Event-Webhook-Timestamp`
header followed by the raw body, sent base64 in `X-Twilio-Email-Event-Webhook-Signature`;
the public key is the one SendGrid shows when signing is turned on (base64 DER, no PEM
armour), set as `[sendgrid] webhook_public_key`. Verified with `cryptography` before the
body is read as JSON. Without the key the endpoint answers 503 and logs what to set
(SendGrid retries for 24 hours, so nothing is lost meanwhile).
(https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features)

A request signed more than `[webhooks] max_age_seconds` ago (or that far ahead) is
stale. Each bounce or complaint is remembered by its `sg_event_id`: one seen before is
skipped, and a request whose bounces and complaints were all seen before is refused as
a replay (409).

Events: `bounce` with type "bounce" is a hard bounce, with type "blocked" a soft one;
`spamreport` is a complaint; `dropped` for a "Bounced Address" or "Invalid" is a hard
bounce, for a "Spam Reporting Address" a complaint (SendGrid's own suppression list
named the address). `deferred` is no bounce (SendGrid keeps trying for 72 hours and
reports a bounce if it gives up); processed, delivered, open, click and the rest are
ignored. The delivery is named by the `delivery_id` custom argument our backend sends;
an event that cannot be read is logged and skipped, and the rest of the batch goes on.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import logging
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from digest.app import App
from digest.feedback import Feedback, Kind
from digest.web.deps import AppDep
from digest.web.webhooks.intake import (
    Notice,
    Refusal,
    check_time,
    delivery_id,
    is_replay,
    read_json,
    refused,
    take_in,
    unix_time,
)

log = logging.getLogger("digest.web.webhooks")
router = APIRouter()
PROVIDER = "sendgrid"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
_DROPPED: dict[str, Kind] = {"Bounced Address": "hard_bounce", "Invalid": "hard_bounce",
                             "Spam Reporting Address": "complaint"}


class _Malformed(ValueError):
    """One event of a batch that cannot be read."""


@router.post("/sendgrid")
async def sendgrid(request: Request, app: AppDep) -> Response:
    body = await request.body()
    try:
        _verify(app, request, body)
        events = read_json(body)
        if not isinstance(events, list):
            raise Refusal(400, "the body is not a JSON array of events")
    except Refusal as refusal:
        return refused(PROVIDER, request, refusal)
    notices, skipped = [], 0
    for number, event in enumerate(events):
        try:
            notices.append(_notice(event))
        except _Malformed as exc:
            log.warning("webhook sendgrid: event %d of %d skipped: %s", number + 1,
                        len(events), exc)
            skipped += 1
    if not notices:
        return refused(PROVIDER, request, Refusal(400, f"none of the {len(events)} events "
                                                       "could be read"))
    counts = await take_in(app, PROVIDER, notices, skipped=skipped)
    if is_replay(counts):
        return refused(PROVIDER, request, Refusal(409, "replay: every bounce and complaint "
                                                       "of the batch was taken in before"))
    return JSONResponse({"outcomes": counts})


def _verify(app: App, request: Request, body: bytes) -> None:
    key = _public_key(app.settings["sendgrid.webhook_public_key"].strip())
    signature = request.headers.get(SIGNATURE_HEADER, "")
    timestamp = request.headers.get(TIMESTAMP_HEADER, "")
    if not signature or not timestamp:
        raise Refusal(403, f"unsigned: {SIGNATURE_HEADER} and {TIMESTAMP_HEADER} are needed "
                           "(turn on Signed Event Webhook in SendGrid)")
    try:
        key.verify(base64.b64decode(signature, validate=True), timestamp.encode() + body,
                   ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        raise Refusal(403, "bad signature: not signed by the key in "
                           "[sendgrid] webhook_public_key") from None
    check_time(unix_time(timestamp, TIMESTAMP_HEADER), app.clock(),
               max_age=dt.timedelta(seconds=app.settings["webhooks.max_age_seconds"]),
               max_ahead=dt.timedelta(seconds=app.settings["webhooks.max_age_seconds"]),
               what="the signature's time")


@functools.lru_cache(maxsize=4)
def _public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The verification key from the setting, or a 503 refusal saying what to set."""
    if not text:
        raise Refusal(503, "no verification key: set [sendgrid] webhook_public_key to the "
                           "public key SendGrid shows under Signed Event Webhook")
    try:
        key = load_der_public_key(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        key = None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise Refusal(503, "[sendgrid] webhook_public_key is not the base64 P-256 public key "
                           "SendGrid shows under Signed Event Webhook; copy it again")
    return key


def _notice(event: Any) -> Notice:
    if not isinstance(event, dict):
        raise _Malformed("not a JSON object")
    ident, email, name = event.get("sg_event_id"), event.get("email"), event.get("event")
    if not isinstance(ident, str) or not ident or not isinstance(name, str):
        raise _Malformed("sg_event_id or event is missing")
    kind = _kind(name, event)
    if kind is None:
        return Notice(ident, None)
    if not isinstance(email, str) or not email:
        raise _Malformed(f"{name} event {ident} names no email")
    try:
        at = unix_time(event.get("timestamp"), "timestamp")
    except Refusal as refusal:
        raise _Malformed(f"{name} event {ident}: {refusal.reason}") from None
    # sg_message_id is the X-Message-Id of the call plus ".filter...": the call's id,
    # shared by all its readers, which `record` tells apart by address.
    message_id = str(event.get("sg_message_id") or "").split(".", 1)[0]
    detail = " ".join(str(event.get(k) or "") for k in ("status", "reason")).strip()
    return Notice(ident, Feedback(provider=PROVIDER, kind=kind, email=email, at=at,
                                  message_id=message_id,
                                  delivery_id=delivery_id(event.get("delivery_id")),
                                  detail=f"{name}: {detail}"[:300].strip(": ")))


def _kind(name: str, event: dict[str, Any]) -> Kind | None:
    if name == "bounce":
        return "soft_bounce" if event.get("type") == "blocked" else "hard_bounce"
    if name == "spamreport":
        return "complaint"
    if name == "dropped":
        return _DROPPED.get(str(event.get("reason")))
    return None
