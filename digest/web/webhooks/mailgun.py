"""`POST /webhooks/mailgun`: Mailgun's webhooks (failed, complained), one JSON object
per request: `{"signature": {timestamp, token, signature}, "event-data": {...}}`
(https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/webhook-payloads).

The signature is the hex HMAC-SHA256 of timestamp + token under the webhook signing key
(Mailgun's console: Sending > Webhooks > HTTP webhook signing key), set as
`DIGEST_MAILGUN_WEBHOOK_SIGNING_KEY`; compared in constant time. Without the variable
the endpoint answers 503 and logs what to set (Mailgun retries for 8 hours).
(https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/securing-webhooks)

Every refusal is 406, the one code after which Mailgun does not retry (any other 4xx is
retried for 8 hours, and none of these would pass later). Mailgun's retries resend the
original signature, so its timestamp may be hours old: a request signed more than
`[webhooks] retried_max_age_hours` ago (or `[webhooks] max_age_seconds` ahead) is
stale, and the token, remembered against replays, refuses the same request twice.

Events: "failed" with severity "permanent" is a hard bounce, except reason "old"
(Mailgun gave up retrying temporary failures: a soft bounce) and
"suppress-complaint" (a complaint); severity "temporary" is a soft bounce;
"complained" is a complaint. The rest (delivered, opened, "suppress-unsubscribe") are
ignored. The delivery is named by the `delivery_id` user variable (`v:delivery_id`)
our backend sends, else by the message's Message-ID.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
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
    read_json,
    refused,
    take_in,
    unix_time,
)

router = APIRouter()
PROVIDER = "mailgun"
KEY_VARIABLE = "DIGEST_MAILGUN_WEBHOOK_SIGNING_KEY"
#: What Mailgun takes as "rejected, do not retry".
REJECT = 406


@router.post("/mailgun")
async def mailgun(request: Request, app: AppDep) -> Response:
    try:
        notice = _read(app, await request.body())
    except Refusal as refusal:
        if refusal.status < 500:
            refusal.status = REJECT
        return refused(PROVIDER, request, refusal)
    counts = await take_in(app, PROVIDER, [notice])
    if is_replay(counts):
        return refused(PROVIDER, request, Refusal(REJECT, "replay: this signature's token "
                                                          "was taken in before"))
    [outcome] = counts
    return JSONResponse({"outcome": outcome})


def _read(app: App, body: bytes) -> Notice:
    data = read_json(body)
    if not isinstance(data, dict):
        raise Refusal(400, "the body is not a JSON object")
    return _notice(_verify(app, data.get("signature")), data.get("event-data"))


def _verify(app: App, signature: Any) -> str:
    """The request's token, once its signature is checked."""
    key = app.settings.secret(KEY_VARIABLE)
    if not key:
        raise Refusal(503, f"no signing key: set {KEY_VARIABLE} to the HTTP webhook signing "
                           "key Mailgun shows under Sending > Webhooks")
    if not isinstance(signature, dict) or not all(
            isinstance(signature.get(k), str | int) and str(signature.get(k))
            for k in ("timestamp", "token", "signature")):
        raise Refusal(400, "unsigned: signature {timestamp, token, signature} is needed")
    timestamp, token = str(signature["timestamp"]), str(signature["token"])
    expected = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), str(signature["signature"]).encode()):
        raise Refusal(403, f"bad signature: not signed with {KEY_VARIABLE}")
    check_time(unix_time(timestamp, "signature.timestamp"), app.clock(),
               max_age=dt.timedelta(hours=app.settings["webhooks.retried_max_age_hours"]),
               max_ahead=dt.timedelta(seconds=app.settings["webhooks.max_age_seconds"]),
               what="the signature's time")
    return token


def _notice(token: str, event: Any) -> Notice:
    if not isinstance(event, dict) or not isinstance(event.get("event"), str):
        raise Refusal(400, "event-data with its event is needed")
    kind = _kind(event)
    if kind is None:
        return Notice(token, None)
    email = event.get("recipient")
    if not isinstance(email, str) or not email:
        raise Refusal(400, f"a {event['event']} event needs its recipient")
    at = unix_time(event.get("timestamp"), "event-data.timestamp")
    message = event.get("message")
    headers = message.get("headers") if isinstance(message, dict) else None
    message_id = str(headers.get("message-id") or "") if isinstance(headers, dict) else ""
    variables = event.get("user-variables")
    status = event.get("delivery-status")
    diagnostic = ""
    if isinstance(status, dict):
        diagnostic = " ".join(str(status.get(k) or "") for k in ("code", "message")).strip()
    detail = f"{event['event']} {event.get('severity') or ''} {event.get('reason') or ''}"
    return Notice(token, Feedback(
        provider=PROVIDER, kind=kind, email=email, at=at,
        message_id=f"<{message_id.strip('<>')}>" if message_id else "",
        delivery_id=delivery_id(variables.get("delivery_id"))
        if isinstance(variables, dict) else None,
        detail=" ".join(f"{detail}: {diagnostic}".split())[:300].strip(": ")))


def _kind(event: dict[str, Any]) -> Kind | None:
    if event["event"] == "complained":
        return "complaint"
    if event["event"] != "failed":
        return None
    reason = event.get("reason")
    if event.get("severity") == "temporary" or reason == "old":
        return "soft_bounce"
    if reason == "suppress-complaint":
        return "complaint"
    if reason == "suppress-unsubscribe":
        return None
    return "hard_bounce"
