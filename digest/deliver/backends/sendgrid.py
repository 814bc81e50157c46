"""The SendGrid backend: `POST /v3/mail/send`, up to 1,000 readers a call.

One call carries the edition's text and HTML once, with the slot tokens swapped for
substitution keys, and one personalization per reader: their To, their values
(`substitutions`, HTML-escaped for the HTML), their List-Unsubscribe and Message-ID
(`headers`) and `custom_args.delivery_id`, which SendGrid's event webhook hands back.
Our other headers (List-Id, List-Unsubscribe-Post, Feedback-ID...) go once, top level.
So 10,000 readers are 10 calls of about one edition's size each, where a body per reader
would be 10,000 bodies.

SendGrid answers 202 with an empty body and one `X-Message-Id` for the whole call; that
id becomes each delivery's message id. Its events' `sg_message_id` starts with it and
goes on with a per-recipient suffix, so webhooks match on `custom_args.delivery_id`.
https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send
"""

from __future__ import annotations

import functools
import html
import json
from collections.abc import Iterator, Sequence
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any

import requests

from digest import slots
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
from digest.deliver.message import MessageTemplate, Outgoing

if TYPE_CHECKING:
    from digest.config import Settings

MAX_PERSONALIZATIONS = 1000
#: Headers that differ per reader, so they go in each personalization.
_PER_READER = frozenset({"list-unsubscribe", "message-id"})
_UNVERIFIED = "does not match a verified Sender Identity"


class SendGridBackend(ApiBackend):
    """Sends through SendGrid's v3 Mail Send API with an API key (Mail Send permission)."""

    name = "sendgrid"
    section = "sendgrid"
    max_batch = MAX_PERSONALIZATIONS

    def __init__(self, api_url: str, key: str, **options: Any) -> None:
        super().__init__(api_url, **options)
        self.http.headers.update({"Authorization": f"Bearer {key}"})

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> SendGridBackend:
        key = api_key(settings.secret("DIGEST_SENDGRID_API_KEY"), "DIGEST_SENDGRID_API_KEY",
                      "sendgrid")
        return cls(settings["sendgrid.api_url"], key, rate_limit=rate_limit(settings, "sendgrid"),
                   timeout=settings["sendgrid.timeout"], **options)

    def _chunks(self, batch: Sequence[Outgoing]) -> Iterator[list[Outgoing]]:
        """Up to 1,000 readers of one template a call; a message built without one
        (its body its own) goes alone."""
        chunk: list[Outgoing] = []
        for msg in batch:
            if chunk and (len(chunk) == MAX_PERSONALIZATIONS or not _alike(chunk[0], msg)):
                yield chunk
                chunk = []
            chunk.append(msg)
        if chunk:
            yield chunk

    def _request(self, chunk: Sequence[Outgoing]) -> Request:
        first = headers_of(chunk[0])
        tpl = chunk[0].template
        shared = tpl is not None and bool(chunk[0].values)
        text, page = _content(tpl) if shared and tpl is not None else bodies(chunk[0])
        body: dict[str, Any] = {
            "from": _address(field_value(first, "from")),
            "subject": field_value(first, "subject"),
            "content": [{"type": "text/plain", "value": text},
                        {"type": "text/html", "value": page}],
            "headers": {n: v for n, v in extra_headers(first) if n.lower() not in _PER_READER},
            "personalizations": [self._personalization(m, shared) for m in chunk],
            "tracking_settings": {"click_tracking": {"enable": False},
                                  "open_tracking": {"enable": False},
                                  "subscription_tracking": {"enable": False}},
        }
        if reply_to := field_value(first, "reply-to"):
            body["reply_to"] = _address(reply_to)
        return Request("/v3/mail/send", {
            "data": json.dumps(body, ensure_ascii=False).encode("utf-8"),
            "headers": {"Content-Type": "application/json"},
        })

    def _personalization(self, msg: Outgoing, shared: bool) -> dict[str, Any]:
        fields = headers_of(msg)
        to = _address(field_value(fields, "to"))
        person: dict[str, Any] = {
            "to": [to],
            "headers": {n: v for n, v in fields if n.lower() in _PER_READER},
            "custom_args": {"delivery_id": str(msg.delivery_id)},
        }
        if shared and msg.template is not None:
            person["substitutions"] = _substitutions(msg.template, msg.values)
        return person

    def _outcomes(self, chunk: Sequence[Outgoing], reply: requests.Response) -> list[Outcome]:
        if 200 <= reply.status_code < 300:  # 202; 200 in sandbox mode
            mid = reply.headers.get("X-Message-Id", "")
            return [Outcome("sent", provider_id=mid) for _ in chunk]
        errors = _errors(reply)
        said = "; ".join(e.get("message", "") for e in errors) or reply.text[:200]
        if reply.status_code == 401:
            raise Fatal(f"SendGrid refused the API key (HTTP 401: {said}): check "
                        "DIGEST_SENDGRID_API_KEY")
        if reply.status_code == 403:
            if _UNVERIFIED in said:
                raise Fatal(f"SendGrid: {said}: verify the From address (Single Sender "
                            "Verification) or authenticate its domain in SendGrid's "
                            "Sender Authentication, or change the list's from address")
            raise Fatal(f"SendGrid refused to send (HTTP 403: {said}): the API key needs "
                        "the Mail Send permission, and the account must be active")
        if reply.status_code == 400:
            bad = _bad_readers(errors)
            if bad:
                return [Outcome("failed", f"SendGrid: {bad[i]}") if i in bad else
                        Outcome("deferred", "not sent: SendGrid refused another address "
                                "in the same call")
                        for i in range(len(chunk))]
        raise Fatal(f"SendGrid refused the request (HTTP {reply.status_code}: {said}); "
                    "nothing was sent")


def _alike(a: Outgoing, b: Outgoing) -> bool:
    return a.template is not None and a.template is b.template and bool(a.values and b.values)


@functools.lru_cache(maxsize=8)
def _content(tpl: MessageTemplate) -> tuple[str, str]:
    """The edition's text and HTML with each slot token as its substitution key."""
    tokens = slots.pattern(tpl.slot_key)
    return (tokens.sub(lambda m: _key(tpl, m[1], html=False), tpl.text),
            tokens.sub(lambda m: _key(tpl, m[1], html=True), tpl.html))


def _key(tpl: MessageTemplate, name: str, *, html: bool) -> str:
    # The render's random key is in it, so feed text cannot name a substitution.
    return f"-{tpl.slot_key}{name}{'.h' if html else ''}-"


def _substitutions(tpl: MessageTemplate, values: tuple[str, ...]) -> dict[str, str]:
    text, page = _content(tpl)
    out: dict[str, str] = {}
    for name, value in zip(slots.NAMES, values, strict=True):
        if (k := _key(tpl, name, html=False)) in text:
            out[k] = value
        if (k := _key(tpl, name, html=True)) in page:
            out[k] = html.escape(value)
    return out


def _address(value: str) -> dict[str, str]:
    name, addr = parseaddr(value)
    return {"email": addr, "name": name} if name else {"email": addr}


def _errors(reply: requests.Response) -> list[dict[str, Any]]:
    try:
        errors = reply.json().get("errors", [])
    except (ValueError, AttributeError):
        return []
    return [e for e in errors if isinstance(e, dict)]


def _bad_readers(errors: list[dict[str, Any]]) -> dict[int, str]:
    """Personalizations a 400 names (field "personalizations.3.to.0.email")."""
    bad: dict[int, str] = {}
    for e in errors:
        parts = str(e.get("field") or "").split(".")
        if len(parts) > 1 and parts[0] == "personalizations" and parts[1].isdigit():
            bad[int(parts[1])] = str(e.get("message", ""))
    return bad if len(bad) == len(errors) else {}
