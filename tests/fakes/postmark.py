"""Postmark's batch email API on loopback, as documented:

- https://postmarkapp.com/developer/user-guide/send-email-with-api/batch-emails
  (`POST /email/batch`, a JSON array of at most 500 messages, `X-Postmark-Server-Token`;
  HTTP 200 with one result per message, in order: `ErrorCode`, `Message`, `MessageID`,
  `SubmittedAt`, `To`; ErrorCode 0 is OK)
- https://postmarkapp.com/developer/api/overview#error-codes (HTTP 401 for a missing or
  bad token, 422 with `{ErrorCode, Message}`; codes 10 bad token, 300 invalid request,
  400 sender signature not found, 406 inactive recipient, 410 too many batch messages,
  412 account pending approval)

Senders must be confirmed Sender Signatures; `inactive` addresses answer 406; while
`pending_approval`, only the sender's own domain can be mailed (412).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

from tests.fakes import Answer, Call, FakeApi, json_answer

TOKEN = "server-token-0f8d"


class FakePostmark(FakeApi):
    def __init__(self, *, token: str = TOKEN, senders: tuple[str, ...] = (),
                 inactive: tuple[str, ...] = (), pending_approval: bool = False,
                 mangle: Callable[[list[Any]], Any] | None = None) -> None:
        super().__init__()
        # What a broken Postmark (or a proxy in front of it) does to the results of a
        # batch it accepted whole: reorder, drop or add results.
        self.mangle = mangle
        self.token = token
        self.senders = {s.lower() for s in senders}
        self.inactive = {a.lower() for a in inactive}
        self.pending_approval = pending_approval
        self.accepted: list[dict[str, Any]] = []  # every message given ErrorCode 0

    def answer(self, call: Call) -> Answer:
        if call.headers.get("x-postmark-server-token") != self.token:
            return json_answer(401, {"ErrorCode": 10, "Message": "Request does not contain "
                                     "a valid Server token."})
        if call.path != "/email/batch":
            return json_answer(404, {"ErrorCode": 0, "Message": "Not found"})
        try:
            messages = call.json()
        except ValueError:
            return json_answer(422, {"ErrorCode": 402, "Message": "Invalid JSON"})
        if not isinstance(messages, list):
            return json_answer(422, {"ErrorCode": 300, "Message": "Invalid request: an "
                                     "array of messages is expected"})
        if len(messages) > 500:
            return json_answer(422, {"ErrorCode": 410, "Message": "Too many batch messages. "
                                     "The maximum is 500."})
        results = [self._one(m) for m in messages]
        return json_answer(200, self.mangle(results) if self.mangle else results)

    def _one(self, m: dict[str, Any]) -> dict[str, Any]:
        to = str(m.get("To", ""))
        address = to.rpartition("<")[2].rstrip(">").strip().lower()
        sender = str(m.get("From", "")).rpartition("<")[2].rstrip(">").strip().lower()
        result: dict[str, Any] = {"To": to, "SubmittedAt": "0001-01-01T00:00:00",
                                  "MessageID": "00000000-0000-0000-0000-000000000000"}
        if sender not in self.senders:
            return {**result, "ErrorCode": 400, "Message": f"The 'From' address you supplied "
                    f"({sender}) is not a Sender Signature on your account. Please add and "
                    "confirm this address in order to be able to use it in the 'From' field "
                    "of your messages."}
        if "@" not in address:
            return {**result, "ErrorCode": 300, "Message": f"Invalid 'To' address: '{to}'."}
        if not m.get("HtmlBody") and not m.get("TextBody"):
            return {**result, "ErrorCode": 300, "Message": "Provide either email TextBody or "
                    "HtmlBody or both."}
        if self.pending_approval and address.rpartition("@")[2] != sender.rpartition("@")[2]:
            return {**result, "ErrorCode": 412, "Message": "While your account is pending "
                    "approval, all recipient addresses must share the same domain as the "
                    "'From' address."}
        if address in self.inactive:
            return {**result, "ErrorCode": 406, "Message": "You tried to send to recipient(s) "
                    "that have been marked as inactive. Found inactive addresses: "
                    f"{address}. Inactive recipients are ones that have generated a hard "
                    "bounce, a spam complaint, or a manual suppression."}
        mid = str(uuid.uuid4())
        with self.lock:
            self.accepted.append({**m, "MessageID": mid})
        return {**result, "ErrorCode": 0, "Message": "OK", "MessageID": mid,
                "SubmittedAt": dt.datetime.now(dt.UTC).isoformat()}
