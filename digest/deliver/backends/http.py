"""What the HTTP API backends (Postmark, SendGrid, Mailgun) share: chunks, the handover,
retries with backoff, rate limits, and what a failed call means for its messages.

When an HTTP call hands messages over: the provider takes a batch when it has read the
whole request. So every message of a call is committed `sending` (hand_over, one commit) right
before the request is written, and then:

- the connection could not be opened (refused, no route, DNS, a connect timeout):
  nothing was written, the messages are `deferred` and retried later;
- the request was written and the answer never came (a read timeout, the connection
  closed or reset): the provider may have queued them, so they are `uncertain` and never
  sent again, as after a hard kill, which leaves their rows `sending` (then `uncertain`);
- an answer came: the provider says what became of each (`_outcomes`). A 2xx means it
  took the call: a message its answer does not clearly settle (a malformed body, a
  result missing) is `uncertain`, never queued again.

429 and 5xx answers (and a connection that could not be opened) are retried in the same
call, waiting as `Retry-After` (seconds or an HTTP date) says, else until the
`X-RateLimit-Reset` time when the remaining count is 0, else 1, 2, 4... seconds. Such an
answer took none of the messages, so before the wait they are given back (`taken_back`:
the worker's claims again, not `sending`, so a kill during the wait leaves nothing
uncertain and SIGTERM gives them back to the queue), and handed over again right before
the next try. A wait longer than MAX_WAIT is not made: the messages are queued again for
the time asked and the run stops with an Error saying so. After `tries` answers like
that the messages are deferred and the run stops with an Error (the provider is in
trouble; nothing is lost). An answer saying the key, the sender or the account is wrong
stops the run the same way.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import html
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from typing import Any

import requests
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from digest import slots
from digest.deliver.backends.base import RateLimiter, SendEvents, SendResult, Status
from digest.deliver.message import Outgoing
from digest.errors import ConfigError, DeliveryError

log = logging.getLogger(__name__)

#: Longest wait in a run, a third of the default lease: a provider asking for more
#: (Retry-After, X-RateLimit-Reset) gets the call's messages queued again for the time
#: it asked, and the run stops saying so; waiting longer would hang the sender silently.
MAX_WAIT = 100.0
#: Headers of our messages that API fields carry instead, or the provider writes: a
#: DKIM signature over our MIME would not hold for the message the provider builds (it
#: signs with its own key, or the domain's key it was given).
_FIELDS = frozenset({"from", "to", "subject", "reply-to", "date", "mime-version",
                     "content-type", "content-transfer-encoding", "dkim-signature"})


@dataclass(frozen=True)
class Outcome:
    """What the provider said of one message of a call."""

    status: Status
    detail: str = ""
    provider_id: str = ""
    feedback: str = ""  # "hard_bounce": the provider refuses the address for good
    retry_at: dt.datetime | None = None  # deferred: not before this time (the provider's)


class Fatal(Exception):
    """The backend as a whole cannot be used (bad key, unverified sender, sandboxed
    account): the call's messages are deferred, except those in `outcomes`, which the
    provider settled before saying so, and the run stops with this message."""

    def __init__(self, message: str, outcomes: dict[int, Outcome] | None = None) -> None:
        super().__init__(message)
        self.outcomes = outcomes or {}


@dataclass(frozen=True)
class Request:
    """One HTTP call: requests' keyword arguments beside method and path."""

    path: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    method: str = "POST"


class _NotSent(Exception):
    """The connection could not be opened: nothing of the request was written."""


class _NoAnswer(Exception):
    """The request was written (at least in part) and no answer came."""


class ApiBackend:
    """A backend that sends through a provider's HTTP API, `max_batch` messages a call.

    Subclasses say how a chunk becomes a request (`_request`) and what the answer says
    of each message (`_outcomes`). One thread per backend, like every backend: its
    requests.Session (one kept-alive connection pool) belongs to it.

    rate_limit: most messages per second (0: none); `sleep` and `monotonic` drive the
    waits (tests pass their own; by default a retry's wait is `stop.wait`, which SIGTERM
    cuts short), `wall` reads the time for rate-limit reset headers (tests pass their clock).
    """

    name = "api"
    section = "api"  # the settings section, for messages
    max_batch = 1
    key_env = ""

    def __init__(
        self,
        api_url: str,
        *,
        rate_limit: float = 0.0,
        timeout: float = 30.0,
        tries: int = 4,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if not api_url.startswith(("https://", "http://")):
            raise ConfigError(f"[{self.section}] api_url = {api_url!r}; it must be an "
                              "https:// address")
        if rate_limit < 0:
            raise ConfigError(f"[{self.section}] rate_limit = {rate_limit}; use 0 for no limit")
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self.tries = max(1, tries)
        self.http = session or requests.Session()
        self.limiter = RateLimiter(rate_limit, clock=monotonic, sleep=sleep or time.sleep)
        self._sleep = sleep
        self._wall = wall
        self._not_before = 0.0  # wall time the provider's rate-limit headers ask us to wait for
        self.calls = 0  # HTTP requests made, retries included

    # -- what subclasses provide ------------------------------------------------------

    def _chunks(self, batch: Sequence[Outgoing]) -> Iterator[list[Outgoing]]:
        for i in range(0, len(batch), self.max_batch):
            yield list(batch[i:i + self.max_batch])

    def _request(self, chunk: Sequence[Outgoing]) -> Request:
        raise NotImplementedError

    def _outcomes(self, chunk: Sequence[Outgoing], reply: requests.Response) -> list[Outcome]:
        """One outcome per message of `chunk` from a final answer (not 429/5xx); raises
        Fatal when the answer says the backend cannot be used."""
        raise NotImplementedError

    # -- the shared flow -----------------------------------------------------------------

    def send(self, batch: Sequence[Outgoing], events: SendEvents,
             stop: threading.Event | None = None) -> list[SendResult]:
        """Send `batch` in chunks of at most max_batch; done() once per message attempted.
        Raises DeliveryError when the provider cannot be reached, refuses the key, sender
        or account, or asks for a longer wait than MAX_WAIT, after settling the call's
        messages. Once `stop` is set (even during a wait), no call starts: the messages
        left are the worker's claims, given back to the queue."""
        results: list[SendResult] = []

        def settle(msg: Outgoing, outcome: Outcome) -> None:
            result = SendResult(msg.delivery_id, outcome.status, outcome.detail,
                                outcome.provider_id, outcome.feedback, outcome.retry_at)
            results.append(result)
            events.done(result)

        for chunk in self._chunks(batch):
            if stop is not None and stop.is_set():
                break
            for _ in chunk:
                self.limiter.wait()
            error = self._call(chunk, events, settle, stop)
            if error is not None:
                raise error
        return results

    def _call(self, chunk: Sequence[Outgoing], events: SendEvents,
              settle: Callable[[Outgoing, Outcome], None],
              stop: threading.Event | None) -> DeliveryError | None:
        """One call of `chunk`, tried again while the provider answers 429 or 5xx or
        cannot be reached; settles each message handed over and returns the error that
        stops the run. A message is `sending` only while a request is out: an answer that
        took none of them gives them back (taken_back) before any wait, and they are
        handed over again right before the next try. A stop during a wait leaves them
        unsettled, the worker's claims."""
        pending = list(chunk)
        asked: tuple[float, str] = (0.0, "")  # the wait the last answer asked for, and why
        for attempt in range(self.tries):
            wait, why = self._wait(asked)
            if wait > MAX_WAIT:
                return self._put_off(pending, settle, wait, why)
            if wait > 0 and not self._pause(wait, stop):
                return None
            request = self._request(pending)  # before the handover: keep that gap short
            lost = events.hand_over(pending)  # one commit for the call's messages
            kept = []
            for msg in pending:
                if msg.delivery_id in lost:
                    settle(msg, Outcome("deferred", f"abandoned: {lost[msg.delivery_id]}"))
                else:
                    kept.append(msg)
            if not kept:
                return None
            if len(kept) < len(pending):
                pending, request = kept, self._request(kept)
            last = attempt + 1 == self.tries
            try:
                reply = self._post(request)
            except _NotSent as exc:
                events.taken_back(pending)
                if not last:
                    asked = (_backoff(attempt), f"{exc}; backing off")
                    continue
                for msg in pending:
                    settle(msg, Outcome("deferred", f"not sent: {exc}"))
                return DeliveryError(
                    f"cannot reach {self.name} at {self.api_url}: {exc}. Nothing was lost: "
                    f"the messages stay queued; check [{self.section}] api_url and the "
                    "network, then run again (a worker tries again by itself)")
            except _NoAnswer as exc:
                for msg in pending:
                    settle(msg, Outcome("uncertain",
                                        f"{exc} (the provider may have accepted the message)"))
                return None
            if reply.status_code != 429 and reply.status_code < 500:
                return self._settle_answer(pending, reply, settle)
            events.taken_back(pending)  # the provider took none of them
            if last:
                error = DeliveryError(
                    f"{self.name} answered {_describe(reply)} {self.tries} times in a row: "
                    "it is in trouble or limiting us. Nothing was lost: the messages stay "
                    "queued and are sent again later")
                for msg in pending:
                    settle(msg, Outcome("deferred", str(error)))
                return error
            asked = self._retry_after(reply, attempt)
            log.info("%s answered %s; trying again in %.1f s", self.name, _describe(reply),
                     self._wait(asked)[0])
        raise AssertionError("unreachable")  # pragma: no cover

    def _settle_answer(self, kept: Sequence[Outgoing], reply: requests.Response,
                       settle: Callable[[Outgoing, Outcome], None]) -> DeliveryError | None:
        """Settle each message from a final answer. A 2xx means the provider took the
        call: a message its answer does not clearly settle is `uncertain`, never queued
        again (sending it again could mail the reader twice)."""
        try:
            outcomes, error = self._outcomes(kept, reply), None
        except Fatal as exc:
            if 200 <= reply.status_code < 300:
                rest = Outcome("uncertain", f"{self.name} took the call (HTTP "
                                            f"{reply.status_code}) but its answer does not "
                                            "say what became of this message")
                unsettled = sum(m.delivery_id not in exc.outcomes for m in kept)
                error = DeliveryError(f"{exc}. {unsettled} of its {len(kept)} messages are "
                                      "marked uncertain and are not sent again")
            else:
                rest, error = Outcome("deferred", f"not sent: {exc}"), DeliveryError(str(exc))
            outcomes = [exc.outcomes.get(m.delivery_id) or rest for m in kept]
        for msg, outcome in zip(kept, outcomes, strict=True):
            settle(msg, outcome)
        return error

    def _wait(self, asked: tuple[float, str]) -> tuple[float, str]:
        """Seconds to wait before the next request, and why: what the last answer asked,
        or the rate-limit reset a reply announced (X-RateLimit-Remaining: 0), if later."""
        reset = self._not_before - self._wall()
        if reset > asked[0]:
            return reset, f"X-RateLimit-Reset: {self._not_before:.0f}"
        return asked

    def _pause(self, seconds: float, stop: threading.Event | None) -> bool:
        """Wait, cut short by `stop`; whether to go on (False: stopped)."""
        if self._sleep is not None:
            self._sleep(seconds)
        elif stop is not None:
            stop.wait(seconds)
        else:
            time.sleep(seconds)
        self._not_before = 0.0
        return stop is None or not stop.is_set()

    def _put_off(self, pending: Sequence[Outgoing], settle: Callable[[Outgoing, Outcome], None],
                 wait: float, why: str) -> DeliveryError:
        """The provider asks for a longer wait than MAX_WAIT: the call's messages are
        queued again for the time asked, and the run stops saying so."""
        self._not_before = 0.0
        when = dt.datetime.fromtimestamp(self._wall() + wait, dt.UTC)
        said = (f"{self.name} asked us to wait {_duration(wait)} ({why}); the batch is "
                f"queued again for {when:%Y-%m-%d %H:%M} UTC")
        log.warning("%s", said)
        for msg in pending:
            settle(msg, Outcome("deferred", said, retry_at=when))
        return DeliveryError(f"{said}. Nothing was lost; waits longer than {MAX_WAIT:.0f} s "
                             "are not made in a run")

    def close(self) -> None:
        self.http.close()

    def _post(self, request: Request) -> requests.Response:
        """One request's answer. Raises _NotSent (no connection) or _NoAnswer (written,
        unanswered)."""
        self.calls += 1
        try:
            reply = self.http.request(request.method, self.api_url + request.path,
                                      timeout=self.timeout, **request.kwargs)
        except requests.RequestException as exc:
            if _before_sending(exc):
                raise _NotSent(_reason(exc)) from None
            raise _NoAnswer(f"no answer from {self.name}: {_reason(exc)}") from None
        self._note_limits(reply)
        return reply

    def _note_limits(self, reply: requests.Response) -> None:
        """Remember X-RateLimit-Reset when nothing remains (SendGrid's headers)."""
        remaining = reply.headers.get("X-RateLimit-Remaining")
        reset = reply.headers.get("X-RateLimit-Reset")
        if remaining is not None and reset is not None and remaining.strip() == "0":
            with contextlib.suppress(ValueError):
                self._not_before = float(reset)

    def _retry_after(self, reply: requests.Response, attempt: int) -> tuple[float, str]:
        """The wait a 429 or 5xx answer asks for (uncapped: _call caps it), and why."""
        header = reply.headers.get("Retry-After", "").strip()
        if header:
            why = f"Retry-After: {header}"
            if header.isdigit():
                return float(header), why
            try:
                when = email.utils.parsedate_to_datetime(header)
            except (TypeError, ValueError):
                when = None
            if when is not None:
                if when.tzinfo is None:
                    when = when.replace(tzinfo=dt.UTC)
                return max(when.timestamp() - self._wall(), 0.0), why
        if self._not_before > self._wall():
            return 0.0, ""  # _wait waits for the reset itself
        return _backoff(attempt), f"HTTP {reply.status_code}; backing off"


def _backoff(attempt: int) -> float:
    return float(min(2 ** attempt, 60))


def _duration(seconds: float) -> str:
    """A wait as people say it: "90 s", "25 minutes", "3 hours", "11 days"."""
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


#: Failures that come before a byte of the request is written: connecting (with its
#: timeout, the proxy and the TLS handshake) or a URL that cannot be used.
_NEVER_WRITTEN = (requests.ConnectTimeout, requests.exceptions.SSLError,
                  requests.exceptions.ProxyError, requests.exceptions.InvalidURL,
                  requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema,
                  requests.exceptions.InvalidHeader)


def _before_sending(exc: BaseException) -> bool:
    """Whether the failure came before any byte of the request was written: no
    connection (refused, unreachable, unresolvable, or timed out while connecting)."""
    if isinstance(exc, _NEVER_WRITTEN):
        return True
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, NewConnectionError | ConnectTimeoutError | NameResolutionError):
            return True
        reason = getattr(seen, "reason", None)
        if isinstance(reason, BaseException) and reason is not seen:
            seen = reason
            continue
        args = [a for a in getattr(seen, "args", ()) if isinstance(a, BaseException)]
        seen = args[0] if args else seen.__context__
    return False


def _reason(exc: BaseException) -> str:
    if isinstance(exc, requests.Timeout):
        return "timed out"
    text = str(exc)
    for marker in ("Connection refused", "Connection reset", "Remote end closed",
                   "Name or service not known", "No route to host"):
        if marker in text:
            return marker.lower()
    return text[:200]


def _describe(reply: requests.Response) -> str:
    body = reply.text.strip().replace("\n", " ")[:200]
    return f"HTTP {reply.status_code}" + (f" {body}" if body else "")


def headers_of(msg: Outgoing) -> list[tuple[str, str]]:
    """The header fields of a built message, unfolded, values as written (encoded words
    kept): cheap, a few dozen lines before the first empty one."""
    head = msg.data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    fields: list[tuple[str, str]] = []
    for line in head.split("\r\n"):
        if line[:1] in (" ", "\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, f"{value} {line.strip()}")
        elif ":" in line:
            name, _, value = line.partition(":")
            fields.append((name.strip(), value.strip()))
    return fields


def extra_headers(fields: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Our headers that no API field carries: List-Id, List-Unsubscribe(-Post),
    Message-ID, Feedback-ID, Precedence, Content-Language..."""
    return [(n, v) for n, v in fields if n.lower() not in _FIELDS]


def field_value(fields: list[tuple[str, str]], name: str) -> str:
    """A header's value, RFC 2047 encoded words decoded ("" when absent)."""
    for n, v in fields:
        if n.lower() == name:
            return str(make_header(decode_header(v)))
    return ""


def bodies(msg: Outgoing) -> tuple[str, str]:
    """The message's text and HTML as the reader gets them: the template's sources with
    the reader's values in the slots (HTML-escaped in the HTML), or, for a message built
    without a template, its two parts decoded."""
    tpl = msg.template
    if tpl is not None and msg.values:
        tokens = slots.pattern(tpl.slot_key)
        values = dict(zip(slots.NAMES, msg.values, strict=True))
        text = tokens.sub(lambda m: values.get(m[1], m[0]), tpl.text)
        page = tokens.sub(lambda m: html.escape(values[m[1]]) if m[1] in values else m[0],
                          tpl.html)
        return text, page
    parsed = message_from_bytes(msg.data, policy=policy.default)
    text = page = ""
    for part in parsed.walk():
        if part.get_content_type() == "text/plain" and not text:
            text = part.get_content()
        elif part.get_content_type() == "text/html" and not page:
            page = part.get_content()
    return text, page


def api_key(secret: str, env: str, section: str) -> str:
    if not secret:
        raise ConfigError(f"[delivery] backend = {section!r} needs the API key in {env}; set it "
                          "in the environment (never in the settings file)")
    return secret
