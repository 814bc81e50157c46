"""`POST /webhooks/postmark`: Postmark's Bounce, SpamComplaint and SubscriptionChange
webhooks, one JSON object per request.

Postmark signs nothing: the webhook's URL carries HTTP basic auth
(`https://postmark:<password>@news.example.org/webhooks/postmark`), and the password
must equal `DIGEST_POSTMARK_WEBHOOK_PASSWORD` (any user name; compared in constant
time). Without the variable the endpoint answers 503 and logs how to set it: it never
takes a notice unauthenticated, and Postmark retries a 5xx, so notices sent meanwhile
arrive once it is set. (https://postmarkapp.com/developer/webhooks/webhooks-overview)

Replays are refused by the notice's ID (a bounce's `ID`), and stale notices by their
time (`BouncedAt`, `ChangedAt`): older than `[webhooks] retried_max_age_hours`, since
Postmark's retries resend the original notice for about 10 hours.

Bounce types (https://postmarkapp.com/developer/api/bounce-api#bounce-types):
HardBounce and BadEmailAddress are hard bounces; Transient, SoftBounce, DnsError and
Blocked are soft ones; SpamComplaint is a complaint. Any type with `Inactive: true` is
taken as a hard bounce: Postmark will not mail that address again (it refuses it with
ErrorCode 406), so neither do we. The rest (AutoResponder, SpamNotification,
DMARCPolicy, ChallengeVerification, ...) say nothing about the address and are ignored.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import logging
from typing import Any

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
    iso_time,
    read_json,
    refused,
    take_in,
)

log = logging.getLogger("digest.web.webhooks")
router = APIRouter()
PROVIDER = "postmark"
PASSWORD_VARIABLE = "DIGEST_POSTMARK_WEBHOOK_PASSWORD"

_HARD = {"HardBounce", "BadEmailAddress"}
_SOFT = {"Transient", "SoftBounce", "DnsError", "Blocked"}
# SubscriptionChange's SuppressionReason (broadcast streams report suppressions there).
_SUPPRESSION: dict[str, Kind] = {"HardBounce": "hard_bounce", "SpamComplaint": "complaint"}


@router.post("/postmark")
async def postmark(request: Request, app: AppDep) -> Response:
    try:
        _authenticate(app, request)
        notice = _notice(read_json(await request.body()), app)
    except Refusal as refusal:
        return refused(PROVIDER, request, refusal)
    counts = await take_in(app, PROVIDER, [notice])
    if is_replay(counts):
        return refused(PROVIDER, request, Refusal(409, f"replay: notice {notice.key} was "
                                                       "taken in before"))
    [outcome] = counts
    return JSONResponse({"outcome": outcome})


def _authenticate(app: App, request: Request) -> None:
    password = app.settings.secret(PASSWORD_VARIABLE)
    if not password:
        raise Refusal(503, f"no webhook password is set: set {PASSWORD_VARIABLE} and put it "
                           "in the webhook's URL in Postmark (https://postmark:<password>@...)")
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    challenge = {"WWW-Authenticate": 'Basic realm="digest webhooks"'}
    if scheme.lower() != "basic" or not encoded.strip():
        raise Refusal(401, "basic auth is needed: put the password in the webhook's URL",
                      challenge)
    try:
        _, _, given = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise Refusal(401, "the basic auth header cannot be read", challenge) from None
    if not hmac.compare_digest(given.encode(), password.encode()):
        raise Refusal(401, f"wrong password (not {PASSWORD_VARIABLE})", challenge)


def _notice(data: Any, app: App) -> Notice:
    if not isinstance(data, dict):
        raise Refusal(400, "the body is not a JSON object")
    record_type = data.get("RecordType")
    if record_type in ("Bounce", "SpamComplaint"):
        return _bounce(data, app)
    if record_type == "SubscriptionChange":
        return _subscription_change(data, app)
    if not isinstance(record_type, str):
        raise Refusal(400, "RecordType is missing")
    return Notice("", None)  # Delivery, Open, Click: not ours to act on


def _bounce(data: dict[str, Any], app: App) -> Notice:
    ident, email, bounce_type = data.get("ID"), data.get("Email"), data.get("Type")
    if not isinstance(ident, int | str) or not str(ident) or not isinstance(email, str) \
            or not email or not isinstance(bounce_type, str):
        raise Refusal(400, "a bounce needs ID, Type, Email and BouncedAt")
    at = _fresh(app, iso_time(data.get("BouncedAt"), "BouncedAt"), "BouncedAt")
    kind: Kind | None
    if data.get("RecordType") == "SpamComplaint" or bounce_type == "SpamComplaint":
        kind = "complaint"
    elif bounce_type in _HARD or data.get("Inactive") is True:
        kind = "hard_bounce"
    elif bounce_type in _SOFT:
        kind = "soft_bounce"
    else:
        kind = None
    key = f"bounce:{ident}"
    if kind is None:
        log.info("postmark %s bounce %s for %s ignored: it says nothing about the address",
                 bounce_type, ident, email)
        return Notice(key, None)
    detail = f"{bounce_type}: {data.get('Details') or data.get('Description') or ''}"
    metadata = data.get("Metadata")
    return Notice(key, Feedback(
        provider=PROVIDER, kind=kind, email=email, at=at,
        message_id=str(data.get("MessageID") or ""),
        delivery_id=delivery_id(metadata.get("delivery_id"))
        if isinstance(metadata, dict) else None,
        detail=detail.strip(": ")[:300]))


def _subscription_change(data: dict[str, Any], app: App) -> Notice:
    email, changed = data.get("Recipient"), data.get("ChangedAt")
    if not isinstance(email, str) or not email or changed is None:
        raise Refusal(400, "a subscription change needs Recipient and ChangedAt")
    at = _fresh(app, iso_time(changed, "ChangedAt"), "ChangedAt")
    key = f"subscription:{data.get('MessageID', '')}:{email}:{changed}"
    kind = _SUPPRESSION.get(str(data.get("SuppressionReason")))
    if data.get("SuppressSending") is not True or kind is None:
        return Notice(key, None)  # reactivated, or a manual suppression: no bounce
    metadata = data.get("Metadata")
    return Notice(key, Feedback(
        provider=PROVIDER, kind=kind, email=email, at=at,
        message_id=str(data.get("MessageID") or ""),
        delivery_id=delivery_id(metadata.get("delivery_id"))
        if isinstance(metadata, dict) else None,
        detail=f"SubscriptionChange: {data.get('SuppressionReason')}"))


def _fresh(app: App, at: dt.datetime, what: str) -> dt.datetime:
    check_time(at, app.clock(),
               max_age=dt.timedelta(hours=app.settings["webhooks.retried_max_age_hours"]),
               max_ahead=dt.timedelta(seconds=app.settings["webhooks.max_age_seconds"]),
               what=what)
    return at

