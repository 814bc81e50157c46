"""What every delivery backend offers, and what it tells its caller while it sends."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from digest.deliver.message import Outgoing

if TYPE_CHECKING:
    from digest.config import Settings

Status = Literal["sent", "deferred", "failed", "uncertain"]


class ClaimLost(Exception):
    """A message must not go out after all: its delivery is no longer this sender's (its
    lease ran out and another worker took it). Raised by `LedgerEvents.handing_over`;
    `hand_over` names such messages instead. The backend abandons the message without
    its final step and goes on."""


@dataclass(frozen=True)
class SendResult:
    """The outcome of one message.

    deferred: a temporary failure (4xx, timeout, lost connection) before the message
    was handed over: retry later.
    failed: the server refused this recipient or message for good (5xx).
    uncertain: handed over whole, but the server's answer never came (the connection
    dropped, or the reply outlasted the timeout): it may have been accepted, so it is
    never sent again.
    """

    delivery_id: int
    status: Status
    detail: str  # the server's reply, like "550 5.1.1 no such user"; "" on success
    # The id an HTTP provider gave the message (SES's MessageId, Postmark's MessageID...),
    # which its bounce and complaint notices name: recorded as the delivery's message_id.
    # "" keeps our own Message-ID, which SMTP servers and the outbox leave as it is.
    provider_id: str = ""
    # "hard_bounce" when the provider refuses the address for good before sending
    # (Postmark's inactive recipients, ErrorCode 406): the worker records it as that
    # notice (digest.feedback), which suppresses the address. "" otherwise.
    feedback: str = ""
    # deferred: not before this time, the provider's own word (a long Retry-After).
    retry_at: dt.datetime | None = None


class SendEvents(Protocol):
    """Called by a backend, always from one thread, in the order things happen.

    One thread matters: the ledger commits `sending` in hand_over() and the backend
    writes the final step right after it returns; with other threads contending for the
    GIL, that gap (the one moment a hard kill could lose a message) would grow from
    microseconds to milliseconds.
    """

    def hand_over(self, msgs: Sequence[Outgoing]) -> dict[int, str]:
        """Right before the last step that makes the server accept `msgs` (SMTP: before
        the terminating "."; outbox: before the rename into new/; an API: before the
        call), for as many messages as are ready at once: one commit for the group. The
        backend then does those last steps at once: the shorter this gap, the fewer
        messages a hard kill leaves uncertain. Returns the messages that must not be
        finished (delivery id -> why: the claim was lost), which are abandoned (done()
        is still called for them); raises DatabaseUnavailable if none may be."""

    def done(self, result: SendResult) -> None:
        """As soon as one message's outcome is known; once per message."""

    def taken_back(self, msgs: Sequence[Outgoing]) -> None:
        """The provider answered that it took none of `msgs` (429, 5xx, a connection
        never opened), which were handed over: they are the sender's claims again, not
        `sending`, until hand_over() is called for them before the next try (or they
        are given back to the queue, or settled by done())."""


class Backend(Protocol):
    """Sends batches of messages. send() calls done() once per message it attempted; it
    raises DeliveryError only when the backend as a whole is unusable (bad host, bad
    login), and then done() has been called for exactly the messages already settled.

    `stop` (SIGTERM, say): once it is set, send() finishes the messages in flight and
    returns without starting another. A message not attempted gets no done() and no
    result; the caller still holds its claim and gives it back to the queue.
    """

    name: str

    def send(self, batch: Sequence[Outgoing], events: SendEvents,
             stop: threading.Event | None = None) -> list[SendResult]: ...

    def close(self) -> None: ...


class NoEvents:
    """SendEvents that ignores everything: for benchmarks and callers without a ledger."""

    def hand_over(self, msgs: Sequence[Outgoing]) -> dict[int, str]:
        return {}

    def done(self, result: SendResult) -> None:
        pass

    def taken_back(self, msgs: Sequence[Outgoing]) -> None:
        pass


def rate_limit(settings: Settings, section: str) -> float:
    """Messages per second for the backend of `section`: the lower of `[delivery]
    rate_limit` and the backend's own `rate_limit`, where 0 means none."""
    limits = [rate for rate in (settings["delivery.rate_limit"], settings[f"{section}.rate_limit"])
              if rate > 0]
    return min(limits, default=0.0)


class RateLimiter:
    """Spaces calls at most `rate` per second over all threads; 0 means no limit.

    Each wait() reserves the next free slot on a shared schedule and sleeps until it, so
    threads never burst past the rate and the lock is held only for the arithmetic.
    The clock and sleep are passed in so tests run without waiting.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next = float("-inf")
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self._interval:
            return
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self._interval
        if slot > now:
            self._sleep(slot - now)
