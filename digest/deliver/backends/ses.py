"""The Amazon SES backend: each message sent whole (raw MIME) through SESv2 `SendEmail`,
several calls in flight, at most the account's maximum send rate.

Raw MIME keeps every header of ours (List-Unsubscribe, List-Unsubscribe-Post, List-Id,
Feedback-ID) and both parts as the renderer made them; SES replaces Message-ID and Date
and answers with its MessageId, which becomes the delivery's message_id: SES's bounce
and complaint notices (`digest.web.webhooks.ses`) name the message by it.

Handing over: SES takes a message when it has read the whole request. The ledger commits
`sending` (hand_over, in the caller's thread, as `SendEvents` requires) right before
the call goes to a pool thread, and then:

- the connection could not be opened (refused, no route, connect timeout): nothing was
  written, so the message is `deferred`, and so is the rest of the batch (no call);
- the request was written and no answer came (read timeout, connection closed): SES
  may have queued it, so it is `uncertain`, never sent again;
- SES answered: `Throttling`/`TooManyRequestsException` and 5xx took nothing, so the
  message is given back (`taken_back`: claimed again, not `sending`, during the wait),
  no new call starts for the backoff (1, 2, 4... s, cut short by `stop`), and it is
  handed over again and retried; `MessageRejected` for the reader fails that reader;
  an answer that says the sender, the credentials or the account is wrong stops the run
  with an Error saying what to do, the messages of the calls in flight deferred.

boto3 (botocore) makes the calls: credentials come the standard AWS way (environment,
profile, instance role), never from the settings file. Its own retries are off, so a
retried request is always one this module decided to repeat. Low-level boto3 clients
are thread-safe; the pool's threads share one, and only the caller's thread talks to
the ledger.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
)

from digest.deliver.backends.base import (
    RateLimiter,
    SendEvents,
    SendResult,
    Status,
    rate_limit,
)
from digest.deliver.message import Outgoing
from digest.errors import ConfigError, DatabaseUnavailable, DeliveryError

if TYPE_CHECKING:
    from digest.config import Settings

log = logging.getLogger(__name__)

#: Answers meaning "too fast": retried after a pause.
_THROTTLED = frozenset({"Throttling", "ThrottlingException", "TooManyRequestsException"})
#: Answers meaning the credentials are wrong: nothing will go out until they are fixed.
_CREDENTIALS = frozenset({
    "InvalidClientTokenId", "SignatureDoesNotMatch", "UnrecognizedClientException",
    "InvalidSignatureException", "ExpiredToken", "ExpiredTokenException",
    "IncompleteSignature", "MissingAuthenticationToken",
})
_DENIED = frozenset({"AccessDenied", "AccessDeniedException"})
_PAUSED = frozenset({"SendingPausedException", "AccountSendingPausedException",
                     "AccountSuspendedException"})
#: The longest pause between two tries of one message.
MAX_BACKOFF = 30.0


@dataclass(frozen=True)
class _Outcome:
    """What one call came to. `fatal`: the run must stop with this Error message;
    `halt`: the rest of the batch is deferred without a call, for this reason."""

    status: Status
    detail: str = ""
    provider_id: str = ""
    fatal: str = ""
    halt: str = ""
    retry: bool = False  # SES took nothing ("too fast", 5xx): try again after a backoff


class SesBackend:
    """Sends through Amazon SES (SESv2 SendEmail, raw content), one call per message.

    `client` is a boto3 "sesv2" client and `quota_client` an "ses" (v1) one, used once,
    at the first send, to read the account's maximum send rate (GetSendQuota; moto and
    older IAM policies know no v2 GetAccount). The rate used is the lower of it and
    `rate_limit` (0: the account's). `concurrency` calls are in flight at most; `tries`
    answers saying "too fast" or 5xx before a message is deferred. clock and sleep drive
    the rate limiter and the backoff (for tests; by default the backoff is `stop.wait`,
    which SIGTERM cuts short).
    """

    name = "ses"

    def __init__(
        self,
        client: Any,
        quota_client: Any | None = None,
        *,
        region: str = "",
        configuration_set: str = "",
        concurrency: int = 8,
        rate_limit: float = 0.0,
        tries: int = 5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ConfigError(f"[ses] concurrency = {concurrency}; it must be at least 1")
        if rate_limit < 0:
            raise ConfigError(f"[ses] rate_limit = {rate_limit}; use 0 for the account's rate")
        self.client = client
        self.quota_client = quota_client
        self.region = region or str(getattr(client.meta, "region_name", "") or "")
        self.configuration_set = configuration_set
        self.concurrency = concurrency
        self.rate_limit = rate_limit
        self.tries = max(1, tries)
        self.limiter = RateLimiter(rate_limit, clock=clock, sleep=sleep or time.sleep)
        self._clock = clock
        self._sleep = sleep
        self._pool: ThreadPoolExecutor | None = None
        self._quota_read = False
        #: The account's maximum send rate as SES said it (0: not known).
        self.account_rate = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> SesBackend:
        concurrency = settings["ses.concurrency"]
        config = Config(
            retries={"total_max_attempts": 1, "mode": "standard"},  # ours, see above
            connect_timeout=settings["ses.timeout"], read_timeout=settings["ses.timeout"],
            max_pool_connections=max(10, concurrency),
        )
        session = boto3.session.Session()
        options: dict[str, Any] = {"config": config}
        if settings["ses.region"]:
            options["region_name"] = settings["ses.region"]
        if settings["ses.endpoint_url"]:
            options["endpoint_url"] = settings["ses.endpoint_url"]
        try:
            client = session.client("sesv2", **options)
            quota_client = session.client("ses", **options)
        except NoRegionError:
            raise ConfigError(
                "no AWS region is set for SES: set [ses] region (e.g. \"eu-west-1\", where "
                "your sending domain is verified), or AWS_REGION in the environment"
            ) from None
        return cls(client, quota_client, configuration_set=settings["ses.configuration_set"],
                   concurrency=concurrency, rate_limit=rate_limit(settings, "ses"))

    @property
    def where(self) -> str:
        return f"SES ({self.client.meta.endpoint_url})"

    def send(self, batch: Sequence[Outgoing], events: SendEvents,
             stop: threading.Event | None = None) -> list[SendResult]:
        """Send a batch; every message attempted gets done() once. Raises DeliveryError
        when SES refuses the sender, the credentials or the account (the messages of the
        calls in flight then deferred). After `stop` is set, no new call starts."""
        if not batch:
            return []
        self._read_quota()
        pool = self._pool = self._pool or ThreadPoolExecutor(
            self.concurrency, thread_name_prefix="ses")
        results: list[SendResult] = []
        in_flight: dict[Future[_Outcome], tuple[Outgoing, int]] = {}
        waiting: Iterator[Outgoing] = iter(batch)
        # Messages SES took none of, to try again (their attempt), none before not_before:
        # "too fast" holds every new call back, not only the one throttled.
        retries: deque[tuple[Outgoing, int]] = deque()
        not_before = 0.0
        fatal, halt = "", ""
        halted: DatabaseUnavailable | None = None

        def settle(msg: Outgoing, status: Status, detail: str, provider_id: str = "") -> None:
            result = SendResult(msg.delivery_id, status, detail, provider_id)
            results.append(result)
            events.done(result)

        def stopped() -> bool:
            return stop is not None and stop.is_set()

        while True:
            while len(in_flight) < self.concurrency and not (fatal or halt or halted
                                                              or stopped()):
                delay = not_before - self._clock()
                if delay > 0 and (in_flight or not self._pause(delay, stop)):
                    break  # the calls in flight first; or stopped during the wait
                msg, attempt = retries.popleft() if retries else (next(waiting, None), 1)
                if msg is None:
                    break
                self.limiter.wait()
                try:
                    lost = events.hand_over([msg])  # SES takes one message a call
                except DatabaseUnavailable as exc:
                    halted = exc  # no new call; those in flight are settled below
                    break
                if lost:
                    settle(msg, "deferred", f"abandoned: {lost[msg.delivery_id]}")
                    continue
                in_flight[pool.submit(self._call, msg, attempt)] = (msg, attempt)
            if not in_flight:
                break
            finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in finished:
                msg, attempt = in_flight.pop(future)
                outcome = future.result()
                if outcome.retry:
                    # SES took none of it: the worker's claim again, not `sending`, while
                    # it waits (a kill leaves nothing uncertain; a stop gives it back).
                    events.taken_back([msg])
                    retries.append((msg, attempt + 1))
                    not_before = max(not_before, self._clock()
                                     + min(MAX_BACKOFF, 2.0 ** (attempt - 1)))
                    continue
                settle(msg, outcome.status, outcome.detail, outcome.provider_id)
                fatal = fatal or outcome.fatal
                halt = halt or outcome.halt
        if halted is not None:
            raise halted
        if fatal:
            raise DeliveryError(fatal)
        if halt and not stopped():
            for msg, _ in retries:
                settle(msg, "deferred", f"not sent: {halt}")
            for msg in waiting:
                settle(msg, "deferred", f"not sent: {halt}")
        return results

    def _pause(self, seconds: float, stop: threading.Event | None) -> bool:
        """Wait, cut short by `stop`; whether to go on (False: stopped)."""
        if self._sleep is not None:
            self._sleep(seconds)
        elif stop is not None:
            stop.wait(seconds)
        else:
            time.sleep(seconds)
        return stop is None or not stop.is_set()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _read_quota(self) -> None:
        """Once: the account's maximum send rate, and the limiter set to the lower of it
        and [ses] rate_limit. Wrong credentials stop here, before anything is handed
        over; a policy that only allows sending is fine (a warning)."""
        if self._quota_read or self.quota_client is None:
            return
        try:
            quota = self.quota_client.get_send_quota()
        except NoCredentialsError:
            raise DeliveryError(_NO_CREDENTIALS) from None
        except ClientError as exc:
            code, message = _error(exc)
            if code in _CREDENTIALS:
                raise DeliveryError(_credentials(code, message, self.region)) from None
            log.warning("SES GetSendQuota failed (%s: %s): sending at [ses] rate_limit = %s "
                        "only; allow ses:GetSendQuota to keep under the account's rate",
                        code, message, self.rate_limit or "none")
            self._quota_read = True
            return
        except BotoCoreError as exc:
            # Unreachable now: the sends will tell (and defer), nothing is lost.
            log.warning("SES GetSendQuota failed (%s); reading it again on the next send", exc)
            return
        self._quota_read = True
        self.account_rate = float(quota.get("MaxSendRate") or 0.0)
        if self.account_rate > 0 and (not self.rate_limit or self.account_rate < self.rate_limit):
            self.limiter = RateLimiter(self.account_rate, clock=self._clock,
                                       sleep=self._sleep or time.sleep)
        log.info("SES account: at most %s messages/s, %s a day; sending at %s/s",
                 quota.get("MaxSendRate"), quota.get("Max24HourSend"),
                 self.limiter.rate or "any rate")

    def _call(self, msg: Outgoing, attempt: int) -> _Outcome:
        """One try of one message, in a pool thread: SendEmail. SES saying it is too fast
        or failing (5xx) is `retry` (the caller waits and tries again), the last time
        deferred."""
        request: dict[str, Any] = {
            "FromEmailAddress": msg.sender,
            "Destination": {"ToAddresses": [msg.recipient]},
            "Content": {"Raw": {"Data": msg.data}},
        }
        if self.configuration_set:
            request["ConfigurationSetName"] = self.configuration_set
        try:
            answer = self.client.send_email(**request)
        except ClientError as exc:
            outcome = self._refused(exc, msg)
            if outcome is not None:
                return outcome
            code, message = _error(exc)
            reason = f"{code}: {message}"
            if attempt >= self.tries:
                return _Outcome("deferred", reason, halt=f"SES kept answering {reason}")
            return _Outcome("deferred", reason, retry=True)
        except BotoCoreError as exc:
            return self._failed(exc)
        return _Outcome("sent", provider_id=str(answer["MessageId"]))

    def _refused(self, exc: ClientError, msg: Outgoing) -> _Outcome | None:
        """What an error answer means for the message; None: try it again."""
        code, message = _error(exc)
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        reason = f"{code}: {message}"
        if "daily message quota" in message.lower():
            return _Outcome("deferred", reason, halt=(
                f"the SES account's daily quota is used up ({message}); the rest is sent "
                "when the retries come, or ask AWS for a higher quota"))
        if code in _THROTTLED or status >= 500:
            return None
        if code in _CREDENTIALS or code in _DENIED:
            return _Outcome("deferred", reason, fatal=_credentials(code, message, self.region))
        if code in _PAUSED:
            return _Outcome("deferred", reason, fatal=(
                f"SES refuses to send for this account ({reason}): sending is paused or "
                "suspended, usually for bounce or complaint rates; see the SES console's "
                "reputation page, then resume sending (aws sesv2 put-account-sending-"
                "attributes --sending-enabled)"))
        if code == "MailFromDomainNotVerifiedException":
            return _Outcome("deferred", reason, fatal=(
                f"SES refuses the custom MAIL FROM domain ({message}): publish its MX and "
                "SPF records as the SES console shows, or turn the custom MAIL FROM off"))
        if code in ("NotFoundException", "ConfigurationSetDoesNotExist"):
            return _Outcome("deferred", reason, fatal=(
                f"SES: {message}; check [ses] configuration_set "
                f"({self.configuration_set or 'empty'}) and [ses] region ({self.region})"))
        if code == "MessageRejected":
            return self._rejected(msg, reason, message)
        return _Outcome("failed", reason[:500])

    def _rejected(self, msg: Outgoing, reason: str, message: str) -> _Outcome:
        """MessageRejected: an unverified sender or a sandboxed account stops the run;
        anything else is this reader's message refused."""
        text = message.lower()
        sender = msg.sender.lower()
        domain = sender.rpartition("@")[2]
        if "did not have authority" in text or ("not verified" in text and sender in text):
            return _Outcome("deferred", reason, fatal=(
                f"SES refuses the sender {msg.sender}: {message}. Verify the domain "
                f"{domain} (or the address) in SES in region {self.region or '?'} (SES "
                "console: Identities, Create identity, then publish its DKIM records), or "
                "set [ses] region to where it is verified"))
        if "not verified" in text:
            return _Outcome("deferred", reason, fatal=(
                f"the SES account in region {self.region or '?'} is in the sandbox: it only "
                f"mails verified addresses ({message}). Request production access (SES "
                "console: Account dashboard, Request production access); until then only "
                "verified addresses can be sent to"))
        return _Outcome("failed", reason[:500])

    def _failed(self, exc: BotoCoreError) -> _Outcome:
        """A call that got no answer from SES."""
        if isinstance(exc, NoCredentialsError):
            return _Outcome("deferred", str(exc), fatal=_NO_CREDENTIALS)
        if isinstance(exc, ParamValidationError):
            return _Outcome("failed", f"not sent: {exc}"[:500])
        if isinstance(exc, ConnectionError):
            # The connection was never opened: nothing was written.
            return _Outcome("deferred", f"{self.where}: {exc}",
                            halt=f"cannot reach {self.where}: {exc}")
        if isinstance(exc, HTTPClientError):
            return _Outcome("uncertain", f"no answer from {self.where} after the message "
                                         f"was sent ({exc}); it may have been accepted")
        return _Outcome("uncertain", f"{self.where}: {exc}; it may have been accepted")


_NO_CREDENTIALS = (
    "no AWS credentials were found for SES: set AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the environment, or give the machine an "
    "IAM role allowing ses:SendEmail (never in the settings file)"
)


def _credentials(code: str, message: str, region: str) -> str:
    if code in _DENIED:
        return (f"SES denies access ({code}: {message}): the AWS credentials' IAM policy "
                f"must allow ses:SendEmail (and ses:GetSendQuota) in region {region or '?'}")
    return (f"SES refuses the AWS credentials ({code}: {message}): check "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the "
            "environment, and that the key is active")


def _error(exc: ClientError) -> tuple[str, str]:
    error = exc.response.get("Error", {})
    return str(error.get("Code", "")), str(error.get("Message", ""))
