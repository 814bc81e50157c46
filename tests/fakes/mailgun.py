"""Mailgun's MIME sending API on loopback, as documented:

- https://documentation.mailgun.com/docs/mailgun/api-reference/openapi-final/tag/Messages/
  (`POST /v3/{domain_name}/messages.mime`, multipart/form-data with `to` and the
  `message` file, options `o:`, `h:`, `v:` allowed; HTTP basic auth user `api`, password
  the key; 200 `{"id": "<message id>", "message": "Queued. Thank you."}`)
- mailgun/documentation source/api-intro.rst (errors: 400 bad request, 401 unauthorized
  ("Forbidden"), 402 request failed, 404 not found, 5xx server errors)
- https://help.mailgun.com/hc/en-us/articles/217531258 (a sandbox domain only mails its
  authorized recipients; others answer 400 "... Free accounts are for test purposes only.
  Please upgrade or add the address to authorized recipients in Account Settings.")

`received` holds (to, the MIME bytes as sent, the v: variables) per accepted message.
"""

from __future__ import annotations

import base64
from email import message_from_bytes, policy
from typing import Any

from tests.fakes import Answer, Call, FakeApi, form_fields, json_answer

KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
DOMAIN = "mg.example.org"


class FakeMailgun(FakeApi):
    def __init__(self, *, key: str = KEY, domains: tuple[str, ...] = (DOMAIN,),
                 sandbox: dict[str, tuple[str, ...]] | None = None) -> None:
        super().__init__()
        self.key = key
        self.domains = set(domains)
        self.sandbox = sandbox or {}  # sandbox domain -> its authorized recipients
        self.received: list[dict[str, Any]] = []

    def answer(self, call: Call) -> Answer:
        expected = "Basic " + base64.b64encode(f"api:{self.key}".encode()).decode()
        if call.headers.get("authorization") != expected:
            return Answer(401, b"Forbidden", {"Content-Type": "text/plain"})
        parts = call.path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "v3" or parts[2] != "messages.mime":
            return json_answer(404, {"message": "Not Found"})
        domain = parts[1]
        if domain not in self.domains and domain not in self.sandbox:
            return json_answer(404, {"message": f"Domain not found: {domain}"})
        fields = form_fields(call)
        to = [v.decode() for n, v, _ in fields if n == "to"]
        mime = next((v for n, v, f in fields if n == "message" and f), None)
        if not to:
            return json_answer(400, {"message": "'to' parameter is missing"})
        if mime is None:
            return json_answer(400, {"message": "'message' parameter is not a file"})
        if domain in self.sandbox and any(t not in self.sandbox[domain] for t in to):
            return json_answer(400, {"message": f"Domain {domain} is not allowed to send: "
                                     "Free accounts are for test purposes only. Please upgrade "
                                     "or add the address to authorized recipients in Account "
                                     "Settings."})
        if any("@" not in t for t in to):
            return json_answer(400, {"message": "to parameter is not a valid address. please "
                                     "check documentation"})
        mid = str(message_from_bytes(mime, policy=policy.default)["Message-ID"] or "")
        with self.lock:
            self.received.append({
                "to": to, "mime": mime,
                "vars": {n[2:]: v.decode() for n, v, _ in fields if n.startswith("v:")},
            })
        return json_answer(200, {"id": mid, "message": "Queued. Thank you."})
