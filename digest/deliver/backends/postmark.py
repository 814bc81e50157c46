"""The Postmark backend: `POST /email/batch`, up to 500 messages a call.

Postmark takes no raw MIME, so each message goes as JSON built from the same parts the
SMTP message carries: From, To, Subject, Reply-To, both bodies with the reader's values,
and our other headers (List-Id, List-Unsubscribe, List-Unsubscribe-Post, Message-ID,
Feedback-ID...) in `Headers`. `Metadata.delivery_id` comes back in Postmark's webhooks.

The answer is HTTP 200 with one result per message, in order, each naming its `To`
(matched to the message by that address, never by position alone; a message no result
names is uncertain, since the 200 says Postmark took the batch): ErrorCode 0 is sent
(its MessageID becomes the delivery's message id), 406 an inactive address (failed, and
recorded as a hard bounce, which suppresses it), other codes fail that reader alone,
except those that say the token, the sender signature or the account is wrong, which
stop the run. https://postmarkapp.com/developer/api/email-api#send-batch-emails,
https://postmarkapp.com/developer/api/overview#error-codes
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any

import requests

from digest.deliver.backends.base import rate_limit
from digest.deliver.backends.http import (
    ApiBackend,
    Fatal,
    Outcome,
    Request,
    api_key,
    bodies,
    extra_headers,
    field_value,
    headers_of,
)
from digest.deliver.message import Outgoing

if TYPE_CHECKING:
    from digest.config import Settings

#: Postmark's cap on one batch: 500 messages and 50 MB of JSON; we keep under 40 MB.
MAX_MESSAGES = 500
MAX_BYTES = 40_000_000
#: ErrorCodes that mean no message can go until an admin acts.
_FATAL = {
    10: "the server token is not valid: check DIGEST_POSTMARK_TOKEN (a Server token, "
        "not the Account token)",
    400: "the From address has no Sender Signature in Postmark: add and confirm it, or "
         "verify its domain, under Sender Signatures",
    401: "the From address's Sender Signature is not confirmed yet: confirm it (Postmark "
         "mailed a link to that address)",
    405: "Postmark does not let this account send (out of credits or paused): see the "
         "account's billing page",
    412: "the Postmark account is pending approval, so it may only mail its own domain: "
         "request approval in Postmark before sending to a list",
}
INACTIVE = 406


class PostmarkBackend(ApiBackend):
    """Sends through Postmark's batch API with a Server token, on one message stream."""

    name = "postmark"
    section = "postmark"
    max_batch = MAX_MESSAGES

    def __init__(self, api_url: str, token: str, *, message_stream: str = "broadcast",
                 **options: Any) -> None:
        super().__init__(api_url, **options)
        self.message_stream = message_stream
        self.http.headers.update({"X-Postmark-Server-Token": token,
                                  "Accept": "application/json"})

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> PostmarkBackend:
        token = api_key(settings.secret("DIGEST_POSTMARK_TOKEN"), "DIGEST_POSTMARK_TOKEN",
                        "postmark")
        return cls(settings["postmark.api_url"], token,
                   message_stream=settings["postmark.message_stream"],
                   rate_limit=rate_limit(settings, "postmark"),
                   timeout=settings["postmark.timeout"], **options)

    def _chunks(self, batch: Sequence[Outgoing]) -> Iterator[list[Outgoing]]:
        chunk: list[Outgoing] = []
        size = 0
        for msg in batch:
            if chunk and (len(chunk) == MAX_MESSAGES or size + len(msg.data) > MAX_BYTES):
                yield chunk
                chunk, size = [], 0
            chunk.append(msg)
            size += len(msg.data)
        if chunk:
            yield chunk

    def _request(self, chunk: Sequence[Outgoing]) -> Request:
        body = json.dumps([self._message(m) for m in chunk], ensure_ascii=False)
        return Request("/email/batch", {
            "data": body.encode("utf-8"),
            "headers": {"Content-Type": "application/json"},
        })

    def _message(self, msg: Outgoing) -> dict[str, Any]:
        fields = headers_of(msg)
        text, page = bodies(msg)
        message: dict[str, Any] = {
            "From": field_value(fields, "from"),
            "To": field_value(fields, "to"),
            "Subject": field_value(fields, "subject"),
            "TextBody": text,
            "HtmlBody": page,
            "Headers": [{"Name": n, "Value": v} for n, v in extra_headers(fields)],
            "MessageStream": self.message_stream,
            "Metadata": {"delivery_id": str(msg.delivery_id)},
            "TrackOpens": False,
            "TrackLinks": "None",
        }
        if reply_to := field_value(fields, "reply-to"):
            message["ReplyTo"] = reply_to
        return message

    def _outcomes(self, chunk: Sequence[Outgoing], reply: requests.Response) -> list[Outcome]:
        answer = _json(reply)
        if reply.status_code == 401:
            raise Fatal(f"Postmark refused the token (HTTP 401): {_FATAL[10]}")
        if reply.status_code != 200:
            code = answer.get("ErrorCode") if isinstance(answer, dict) else None
            said = answer.get("Message", reply.text[:200]) if isinstance(answer, dict) else ""
            why = _FATAL.get(code, "") if isinstance(code, int) else ""
            raise Fatal(f"Postmark refused the batch (HTTP {reply.status_code}, ErrorCode "
                        f"{code}: {said})" + (f": {why}" if why else ""))
        results = _by_recipient(chunk, answer)
        outcomes = {i: _outcome(r) for i, r in results.items()}
        fatal = next((r for r in results.values() if r.get("ErrorCode") in _FATAL), None)
        if fatal is not None:
            # Each message's own result settles it: sent, or refused and queued again.
            raise Fatal(f"Postmark: {fatal.get('Message', '')} (ErrorCode "
                        f"{fatal['ErrorCode']}): {_FATAL[fatal['ErrorCode']]}",
                        {i: o if o.status == "sent" else Outcome("deferred", o.detail)
                         for i, o in outcomes.items()})
        if len(outcomes) < len(chunk):
            # The rest are uncertain (ApiBackend): Postmark took the batch with its 200.
            raise Fatal(f"Postmark answered the batch with {reply.text[:200]!r}, not one "
                        f"result for each of {len(chunk)} messages; check [postmark] "
                        "api_url", outcomes)
        return [outcomes[m.delivery_id] for m in chunk]


def _by_recipient(chunk: Sequence[Outgoing], answer: Any) -> dict[int, dict[str, Any]]:
    """Each message's result by delivery id, found by its `To` address: results come in the batch's
    order, but a result is taken only when it names the message's own reader, so a list
    out of order, short or long never settles one reader with another's result. A
    message whose reader no result names is left out."""
    if not isinstance(answer, list):
        return {}
    named: dict[str, list[dict[str, Any]]] = {}
    for result in answer:
        if isinstance(result, dict):
            named.setdefault(_address(result.get("To")), []).append(result)
    found: dict[int, dict[str, Any]] = {}
    for msg in chunk:
        results = named.get(msg.recipient.lower())
        if results:
            found[msg.delivery_id] = results.pop(0)
    return found


def _address(to: object) -> str:
    return parseaddr(str(to or ""))[1].strip().lower()


def _outcome(result: dict[str, Any]) -> Outcome:
    code = result.get("ErrorCode")
    said = f"Postmark ErrorCode {code}: {result.get('Message', '')}"
    if code == 0:
        return Outcome("sent", provider_id=str(result.get("MessageID", "")))
    if code == INACTIVE:
        return Outcome("failed", said, feedback="hard_bounce")
    if code == 429:
        return Outcome("deferred", said)
    return Outcome("failed", said)


def _json(reply: requests.Response) -> Any:
    try:
        return reply.json()
    except ValueError:
        return None
