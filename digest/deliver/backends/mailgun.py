"""The Mailgun backend: raw MIME through `POST /v3/<domain>/messages.mime`, one call per
message, so Mailgun gets exactly the bytes the SMTP backend sends (our headers, our
Message-ID, both parts) and `v:delivery_id`, which comes back in its webhooks'
`user-variables`.

Why not batches of 1,000 with recipient-variables: that API takes html/text fields, not
MIME, and fills `%recipient.x%` in the body only, so our per-reader headers
(List-Unsubscribe, Message-ID) would be lost or shared, and its answer has one id for the
whole batch with per-reader results only in events. One call per message costs a round
trip each over a kept-alive connection; see docs/operations.md for the figures.

Answers: 200 `{"id": "<...>", "message": "Queued. Thank you."}`; 401 a bad key; 404 an
unknown domain (or the wrong region: EU domains live at api.eu.mailgun.net); 400 a
refused message, or a sandbox domain mailing someone not authorized; 402 a disabled
account. https://documentation.mailgun.com/docs/mailgun/api-reference/openapi-final/tag/Messages/
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import requests

from digest.deliver.backends.base import rate_limit
from digest.deliver.backends.http import ApiBackend, Fatal, Outcome, Request, api_key
from digest.deliver.message import Outgoing
from digest.errors import ConfigError

if TYPE_CHECKING:
    from digest.config import Settings

#: What Mailgun says when a sandbox domain (or a free account) mails someone not on its
#: authorized recipients list.
_SANDBOX = ("authorized recipients", "sandbox", "free accounts are for test purposes")


class MailgunBackend(ApiBackend):
    """Sends through Mailgun's messages.mime API for one sending domain, basic auth
    `api:<key>`."""

    name = "mailgun"
    section = "mailgun"
    max_batch = 1

    def __init__(self, api_url: str, domain: str, key: str, **options: Any) -> None:
        super().__init__(api_url, **options)
        if not domain.strip():
            raise ConfigError("[mailgun] domain is not set: set it to your sending domain "
                              "in Mailgun, like \"mg.example.org\"")
        self.domain = domain.strip()
        self.http.auth = ("api", key)

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> MailgunBackend:
        key = api_key(settings.secret("DIGEST_MAILGUN_API_KEY"), "DIGEST_MAILGUN_API_KEY",
                      "mailgun")
        return cls(settings["mailgun.api_url"], settings["mailgun.domain"], key,
                   rate_limit=rate_limit(settings, "mailgun"),
                   timeout=settings["mailgun.timeout"], **options)

    def _request(self, chunk: Sequence[Outgoing]) -> Request:
        (msg,) = chunk
        return Request(f"/v3/{self.domain}/messages.mime", {
            "data": {"to": msg.recipient, "v:delivery_id": str(msg.delivery_id)},
            "files": {"message": ("message.mime", msg.data)},
        })

    def _outcomes(self, chunk: Sequence[Outgoing], reply: requests.Response) -> list[Outcome]:
        said = _message(reply)
        if 200 <= reply.status_code < 300:
            try:
                mid = str(reply.json().get("id", ""))
            except (ValueError, AttributeError):
                mid = ""
            return [Outcome("sent", provider_id=mid)]
        if reply.status_code == 401:
            raise Fatal(f"Mailgun refused the API key (HTTP 401: {said}): check "
                        "DIGEST_MAILGUN_API_KEY (a Domain Sending key or the account's "
                        "private API key)")
        if reply.status_code == 404:
            raise Fatal(f"Mailgun does not know the domain {self.domain!r} at "
                        f"{self.api_url} (HTTP 404: {said}): check [mailgun] domain, and "
                        "api_url (https://api.eu.mailgun.net for a domain in the EU region)")
        if reply.status_code in (402, 403):
            raise Fatal(f"Mailgun will not send for this account (HTTP "
                        f"{reply.status_code}: {said}): see the account's billing and "
                        "status in Mailgun")
        if reply.status_code == 400 and any(s in said.lower() for s in _SANDBOX):
            raise Fatal(f"Mailgun: {said}: {self.domain!r} is a sandbox domain (or the "
                        "account is not activated), which only mails authorized "
                        "recipients; add and verify your own domain and set [mailgun] domain")
        if reply.status_code == 400 and "from" in said.lower() and "domain" in said.lower():
            raise Fatal(f"Mailgun refused the sender: {said}; the list's from address "
                        f"must be on {self.domain!r} (or a domain verified in Mailgun)")
        return [Outcome("failed", f"Mailgun HTTP {reply.status_code}: {said}")]


def _message(reply: requests.Response) -> str:
    try:
        return str(reply.json().get("message", ""))[:300]
    except (ValueError, AttributeError):
        return reply.text.strip()[:300]
