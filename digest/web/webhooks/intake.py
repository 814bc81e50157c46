"""What the provider webhooks share once a request is verified: refusing it (one log
line, a short reason, nothing changed), checking a notice's time, and taking its
notices in through `digest.feedback` in one transaction.

A verified request becomes a list of `Notice`s. Each carries the key that names it to
the provider (Postmark's bounce ID, SendGrid's sg_event_id, Mailgun's token), which
`feedback.first_sight` remembers against replays, and the `Feedback` to record, or
None for an event that is no bounce or complaint (a delivery, an open): such events are
answered 200 ("ignored") and not remembered, so that a provider does not send them again
and the replay table does not grow by a row for every mail delivered.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from digest import feedback
from digest.app import App
from digest.web.forms import in_transaction

log = logging.getLogger("digest.web.webhooks")

#: The outcome of a notice seen before (its key), and of an event that is no bounce.
REPLAY, IGNORED = "replay", "ignored"


class Refusal(Exception):
    """A request refused before anything changed: `status` and a short `reason`."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or {}


@dataclass(frozen=True)
class Notice:
    """One event of a verified request: its replay key and what to record (None: the
    event is no bounce or complaint)."""

    key: str
    feedback: feedback.Feedback | None


def refused(provider: str, request: Request, refusal: Refusal) -> Response:
    """The answer to a refused request, logged in one line (no traceback: a stranger's
    bad request is no error of ours)."""
    client = request.client.host if request.client else "?"
    log.warning("webhook %s from %s refused (%d): %s", provider, client, refusal.status,
                refusal.reason)
    return JSONResponse({"error": refusal.reason}, status_code=refusal.status,
                        headers={"Cache-Control": "no-store", **refusal.headers})


def read_json(body: bytes | str) -> Any:
    """The request's JSON, or a 400 refusal saying why not: malformed, not UTF-8, nested
    too deep for the parser (RecursionError, `[[[...`), or a number too long to read."""
    try:
        return json.loads(body)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, a huge integer
        raise Refusal(400, f"the body is not JSON ({str(exc)[:120]})") from None
    except RecursionError:
        raise Refusal(400, "the body is not JSON we take: nested too deep") from None


def check_time(at: dt.datetime, now: dt.datetime, *, max_age: dt.timedelta,
               max_ahead: dt.timedelta, what: str) -> None:
    """Refuse (400) a notice whose `at` is older than `max_age` or further ahead than
    `max_ahead` (a clock that far off, or a forged time)."""
    if at < now - max_age:
        raise Refusal(400, f"stale: {what} {at:%Y-%m-%d %H:%M:%S} UTC is more than "
                           f"{_words(max_age)} old")
    if at > now + max_ahead:
        raise Refusal(400, f"{what} {at:%Y-%m-%d %H:%M:%S} UTC is more than "
                           f"{_words(max_ahead)} in the future; check this server's clock")


def unix_time(value: object, what: str) -> dt.datetime:
    """A unix timestamp (a number, or digits in a string) as an aware UTC datetime."""
    try:
        seconds = float(value)  # type: ignore[arg-type]
        return dt.datetime.fromtimestamp(seconds, dt.UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise Refusal(400, f"{what} is not a unix time: {str(value)[:40]!r}") from None


def iso_time(value: object, what: str) -> dt.datetime:
    """An ISO 8601 time with its zone (Postmark's BouncedAt) as an aware UTC datetime."""
    try:
        at = dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise Refusal(400, f"{what} is not an ISO 8601 time: {str(value)[:40]!r}") from None
    if at.tzinfo is None:
        raise Refusal(400, f"{what} has no time zone: {str(value)[:40]!r}")
    return at.astimezone(dt.UTC)


def delivery_id(value: object) -> int | None:
    """The delivery id a provider hands back from what we gave it (custom_args,
    user-variables, Metadata: strings there), or None when absent or not ours."""
    text = str(value).strip() if value is not None else ""
    return int(text) if text.isdigit() and 0 < int(text) < 2**31 else None


async def take_in(app: App, provider: str, notices: list[Notice], *,
                  skipped: int = 0) -> dict[str, int]:
    """Record `notices` in one transaction; how many had each outcome (`skipped`:
    events of the request that could not be read, counted as "malformed")."""
    outcomes = await run_in_threadpool(in_transaction, app,
                                       lambda s: _record_all(app, s, provider, notices))
    counts = Counter(outcomes)
    if skipped:
        counts["malformed"] = skipped
    log.info("webhook %s: %s", provider,
             ", ".join(f"{n} {what}" for what, n in sorted(counts.items())) or "no events")
    return dict(counts)


def is_replay(counts: dict[str, int]) -> bool:
    """Whether a request's notices were all taken in before (events that change
    nothing aside): refused, so that a replayed request is told apart in the log."""
    return bool(counts.get(REPLAY)) and not any(counts.get(o) for o in feedback.OUTCOMES)


def _record_all(app: App, s: Session, provider: str, notices: list[Notice]) -> list[str]:
    now = app.clock()
    limit = app.settings["delivery.soft_bounce_limit"]
    outcomes = []
    for notice in notices:
        # Events that change nothing are not remembered: a provider sends one for every
        # delivery and open, and taking one in twice does no harm.
        if notice.feedback is None:
            outcomes.append(IGNORED)
        elif not feedback.first_sight(s, provider, notice.key, now):
            outcomes.append(REPLAY)
        else:
            outcomes.append(feedback.record(s, notice.feedback, soft_limit=limit, now=now))
    return outcomes


def _words(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600} hours"
    if seconds % 60 == 0:
        return f"{seconds // 60} minutes"
    return f"{seconds} seconds"
