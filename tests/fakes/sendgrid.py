"""SendGrid's v3 Mail Send API on loopback, as documented:

- https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send and the
  OpenAPI spec twilio/sendgrid-oai spec/json/tsg_mail_v3.json (`POST /v3/mail/send`,
  `Authorization: Bearer <key>`; `personalizations` 1-1000 with `to`, `headers`,
  `substitutions`, `custom_args`; `from`, `subject`, `content`, `headers`; an address
  once per call; 202 with an empty body and an `X-Message-Id` header)
- https://www.twilio.com/docs/sendgrid/api-reference/mail-send/errors (errors as
  `{"errors": [{message, field, help}]}`: 400, 401, 403 "The from address does not match
  a verified Sender Identity", 413)
- https://www.twilio.com/docs/sendgrid/api-reference/how-to-use-the-sendgrid-v3-api/rate-limits
  (`X-RateLimit-Limit`, `-Remaining`, `-Reset` as a Unix time; 429 when none remain)

`delivered` holds each reader's message as SendGrid would build it: the content with
that personalization's substitutions made, and its headers merged over the top-level ones.
"""

from __future__ import annotations

import secrets
from typing import Any

from tests.fakes import Answer, Call, FakeApi, json_answer

KEY = "SG.test-key.0123456789"


class FakeSendGrid(FakeApi):
    def __init__(self, *, key: str = KEY, verified: tuple[str, ...] = (),
                 rate_headers: tuple[int, int, int] | None = None) -> None:
        super().__init__()
        self.key = key
        self.verified = {v.lower() for v in verified}
        self.rate_headers = rate_headers  # (limit, remaining, reset) on every answer
        self.delivered: list[dict[str, Any]] = []

    def answer(self, call: Call) -> Answer:
        if call.headers.get("authorization") != f"Bearer {self.key}":
            return _errors(401, "The provided authorization grant is invalid, expired, or "
                           "revoked", None)
        if call.path != "/v3/mail/send":
            return _errors(404, "not found", None)
        try:
            body = call.json()
        except ValueError:
            return _errors(400, "Bad Request", None)
        sender = str(body.get("from", {}).get("email", "")).lower()
        if sender not in self.verified:
            return _errors(403, "The from address does not match a verified Sender "
                           "Identity. Mail cannot be sent until this error is resolved. Visit "
                           "https://sendgrid.com/docs/for-developers/sending-email/"
                           "sender-identity/ to see the Sender Identity requirements", "from")
        people = body.get("personalizations") or []
        if not 1 <= len(people) <= 1000:
            return _errors(400, "The personalizations field is required and must have at "
                           "least 1 and no more than 1000 personalizations.",
                           "personalizations")
        errors, seen = [], set()
        for i, p in enumerate(people):
            for j, to in enumerate(p.get("to", [])):
                email = str(to.get("email", ""))
                if "@" not in email or " " in email:
                    errors.append({"message": "Does not contain a valid address.",
                                   "field": f"personalizations.{i}.to.{j}.email", "help": None})
                elif email.lower() in seen:
                    errors.append({"message": "Each email address in the personalization "
                                   "block should be unique between to, cc, and bcc.",
                                   "field": f"personalizations.{i}.to.{j}.email", "help": None})
                seen.add(email.lower())
        if errors:
            return json_answer(400, {"errors": errors})
        content = {c["type"]: c["value"] for c in body.get("content", [])}
        mid = secrets.token_urlsafe(16)[:22]
        with self.lock:
            for p in people:
                subs = p.get("substitutions", {})
                self.delivered.append({
                    "to": p["to"], "from": body["from"], "subject": body.get("subject"),
                    "headers": {**body.get("headers", {}), **p.get("headers", {})},
                    "custom_args": {**body.get("custom_args", {}), **p.get("custom_args", {})},
                    "text": _fill(content.get("text/plain", ""), subs),
                    "html": _fill(content.get("text/html", ""), subs),
                    "x_message_id": mid,
                })
        headers = {"X-Message-Id": mid}
        if self.rate_headers is not None:
            limit, remaining, reset = self.rate_headers
            headers |= {"X-RateLimit-Limit": str(limit),
                        "X-RateLimit-Remaining": str(remaining),
                        "X-RateLimit-Reset": str(reset)}
        return Answer(202, b"", headers)


def _fill(text: str, subs: dict[str, str]) -> str:
    for key, value in subs.items():
        text = text.replace(key, value)
    return text


def _errors(status: int, message: str, field: str | None) -> Answer:
    return json_answer(status, {"errors": [{"message": message, "field": field, "help": None}]})
