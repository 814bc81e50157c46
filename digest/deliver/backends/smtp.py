"""The SMTP backend: a few persistent connections in parallel, the DATA step done by hand.

smtplib's sendmail() sends the body and its terminating "." in one go. We need a moment
between the two: the ledger records "sending" right before the "." (the step that makes
the server take responsibility), so that after a hard kill a message that may have been
accepted is not sent a second time. So each transaction is written with smtplib's
low-level pieces (putcmd, getreply, the socket).
"""

from __future__ import annotations

import contextlib
import logging
import re
import smtplib
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from digest.deliver.backends.base import RateLimiter, SendEvents, SendResult, Status
from digest.deliver.message import Outgoing
from digest.errors import ConfigError, DeliveryError

if TYPE_CHECKING:
    from digest.config import Settings

log = logging.getLogger(__name__)

TLS_MODES = ("starttls", "tls", "none")
_LINE_START_DOT = re.compile(rb"(?m)^\.")
# Replies meaning "log in first": a configuration problem, never a recipient's.
_AUTH_NEEDED = (530, 534, 535, 538)


class SmtpBackend:
    """Sends over up to `connections` SMTP connections, kept open across send() calls.

    tls: "starttls" (upgrade, fail closed if the server cannot), "tls" (implicit TLS,
    port 465) or "none" (a relay on this machine). rate_limit: most messages per second
    over all connections, 0 for none. clock and sleep drive the rate limiter (for tests).

    One send() at a time per backend: its connections belong to the running call.
    Messages are shared out through one queue, so a slow or closed connection leaves its
    share to the others.
    """

    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int,
        tls: str = "starttls",
        username: str = "",
        password: str = "",
        connections: int = 4,
        rate_limit: float = 0.0,
        timeout: float = 30.0,
        local_hostname: str | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if tls not in TLS_MODES:
            raise ConfigError(f"[smtp] tls = {tls!r}; choose one of {', '.join(TLS_MODES)}")
        if connections < 1:
            raise ConfigError(f"[smtp] connections = {connections}; it must be at least 1")
        if rate_limit < 0:
            raise ConfigError(f"[smtp] rate_limit = {rate_limit}; use 0 for no limit")
        self.host, self.port, self.tls = host, port, tls
        self.username, self._password = username, password
        self.timeout = timeout
        self._local_hostname = local_hostname
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.limiter = RateLimiter(rate_limit, clock=clock, sleep=sleep)
        self._lanes = [_Lane(self) for _ in range(connections)]
        self._pool: ThreadPoolExecutor | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpBackend:
        username = settings["smtp.username"]
        password = settings.secret("DIGEST_SMTP_PASSWORD")
        if username and not password:
            raise ConfigError(
                f"[smtp] username is {username!r} but DIGEST_SMTP_PASSWORD is not set; "
                "set it in the environment"
            )
        return cls(
            settings["smtp.host"],
            settings["smtp.port"],
            tls=settings["smtp.tls"],
            username=username,
            password=password,
            connections=settings["smtp.connections"],
            rate_limit=settings["smtp.rate_limit"],
            timeout=settings["smtp.timeout"],
        )

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def local_hostname(self) -> str:
        """The EHLO name; smtplib would look it up again (DNS) for every connection."""
        if self._local_hostname is None:
            self._local_hostname = socket.getfqdn()
        return self._local_hostname

    def send(self, batch: Sequence[Outgoing], events: SendEvents) -> list[SendResult]:
        """Send a batch; every message gets done() once. Raises DeliveryError when no
        connection could be opened at all, or the server refused the login."""
        if not batch:
            return []
        run = _Run(batch, events)
        lanes = self._lanes[: min(len(self._lanes), len(batch))]
        if len(lanes) == 1:
            lanes[0].run(run)
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(len(self._lanes), thread_name_prefix="smtp")
            for future in [self._pool.submit(lane.run, run) for lane in lanes]:
                future.result()
        if run.error is not None:
            raise run.error
        if run.queue and not run.reached:
            raise DeliveryError(
                f"cannot connect to the SMTP server {self.where}: {run.stop_reason}; "
                "check [smtp] host, port and tls (port 465 usually wants tls = \"tls\", "
                "587 tls = \"starttls\")"
            )
        for index, msg in run.queue:  # left when every connection had to give up
            run.settle(index, msg, "deferred", f"not sent: {run.stop_reason}")
        return [r for r in run.results if r is not None]

    def close(self) -> None:
        for lane in self._lanes:
            lane.quit()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


class _Run:
    """What the connections share during one send() call."""

    def __init__(self, batch: Sequence[Outgoing], events: SendEvents) -> None:
        self.queue: deque[tuple[int, Outgoing]] = deque(enumerate(batch))
        self.results: list[SendResult | None] = [None] * len(batch)
        self.events = events
        self.stop = threading.Event()
        self.reached = False  # some connection reached the server in this call
        self.stop_reason = ""
        self.error: BaseException | None = None

    def settle(self, index: int, msg: Outgoing, status: Status, detail: str) -> None:
        result = SendResult(msg.delivery_id, status, detail)
        self.results[index] = result
        self.events.done(result)


class _ConnectFailed(Exception):
    """A connection could not be opened; temporary as far as one message is concerned."""


class _Lane:
    """One connection and the loop that feeds it messages from the shared queue."""

    def __init__(self, backend: SmtpBackend) -> None:
        self.b = backend
        self.conn: smtplib.SMTP | None = None
        self.fresh = False  # opened for the current message: a failure is not staleness

    def run(self, run: _Run) -> None:
        try:
            self._loop(run)
        except BaseException as exc:  # stop the other connections, re-raised by send()
            if run.error is None:
                run.error = exc
            run.stop.set()

    def _loop(self, run: _Run) -> None:
        while not run.stop.is_set():
            try:
                index, msg = run.queue.popleft()
            except IndexError:
                return
            self.b.limiter.wait()
            outcome = None
            for retry_stale in (True, False):
                if self.conn is None:
                    try:
                        self._open()
                    except _ConnectFailed as exc:
                        run.queue.appendleft((index, msg))  # for another connection
                        run.stop_reason = f"cannot connect: {exc}"
                        return
                run.reached = True
                outcome = self._transact(msg, run, retry_stale=retry_stale)
                if outcome is not None:
                    break
            assert outcome is not None  # the second attempt never asks for a retry
            status, detail, keep_going = outcome
            run.settle(index, msg, status, detail)
            if not keep_going:
                run.stop_reason = detail
                return

    def _transact(
        self, msg: Outgoing, run: _Run, *, retry_stale: bool
    ) -> tuple[Status, str, bool] | None:
        """One message: (status, detail, keep using this lane), or None to retry it once
        on a new connection because a reused one turned out to be closed."""
        conn = self.conn
        assert conn is not None and conn.sock is not None
        fresh, self.fresh = self.fresh, False
        stage = "MAIL FROM"
        try:
            options = ""
            if not (msg.sender.isascii() and msg.recipient.isascii()):
                if not conn.has_extn("smtputf8"):
                    return ("failed", f"the address {msg.recipient!r} needs SMTPUTF8, which "
                            f"the SMTP server {self.b.where} does not offer", True)
                conn.command_encoding = "utf-8"
                options = " SMTPUTF8 BODY=8BITMIME" if conn.has_extn("8bitmime") else " SMTPUTF8"
            code, reply = self._command(conn, f"MAIL FROM:<{msg.sender}>{options}")
            if code != 250:
                return self._refused(conn, code, reply, in_transaction=True)
            stage = "RCPT TO"
            code, reply = self._command(conn, f"RCPT TO:<{msg.recipient}>")
            if code not in (250, 251):
                return self._refused(conn, code, reply, in_transaction=True)
            stage = "DATA"
            code, reply = self._command(conn, "DATA")
            if code != 354:
                return self._refused(conn, code, reply, in_transaction=True)
            stage = "the message"
            data = msg.data
            if data.startswith(b".") or b"\n." in data:
                data = _LINE_START_DOT.sub(b"..", data)
            # The body ends with CRLF already, which is the first half of CRLF "." CRLF.
            end = b".\r\n" if data.endswith(b"\r\n") else b"\r\n.\r\n"
            conn.sock.sendall(data)
            run.events.handing_over(msg)
            conn.sock.sendall(end)
            stage = "the reply to the final '.'"
            code, reply = conn.getreply()
            if code != 250:
                return self._refused(conn, code, reply, in_transaction=False)
            return ("sent", "", True)
        except OSError as exc:  # smtplib's errors, timeouts and resets are all OSErrors
            self.drop()
            if stage == "MAIL FROM" and not fresh and retry_stale:
                return None  # nothing was accepted yet: the idle connection had been closed
            detail = f"connection lost during {stage}: {_describe(exc, self.b.timeout)}"
            if stage.startswith("the reply"):
                detail += " (the server may have accepted the message)"
            return ("deferred", detail, True)
        except BaseException:
            # Perhaps mid-DATA (handing_over raised): the connection is unusable, and
            # leaving the message unterminated makes the server discard it.
            self.drop()
            raise

    def _command(self, conn: smtplib.SMTP, line: str) -> tuple[int, bytes]:
        conn.putcmd(line)
        return conn.getreply()

    def _refused(
        self, conn: smtplib.SMTP, code: int, reply: bytes, *, in_transaction: bool
    ) -> tuple[Status, str, bool]:
        detail = f"{code} {reply.decode('utf-8', 'replace')}".replace("\n", " ")
        if code in _AUTH_NEEDED:
            self.drop()
            raise DeliveryError(
                f"the SMTP server {self.b.where} wants a login ({detail}); "
                "set [smtp] username and DIGEST_SMTP_PASSWORD"
            )
        if code == 421:  # the server is closing this connection; leave it for this batch
            self.drop()
            return ("deferred", detail, False)
        if in_transaction:
            try:
                conn.rset()
            except OSError:
                self.drop()
        return ("failed" if 500 <= code < 600 else "deferred", detail, True)

    def _open(self) -> None:
        b = self.b
        conn: smtplib.SMTP | None = None
        try:
            if b.tls == "tls":
                conn = smtplib.SMTP_SSL(
                    b.host, b.port, b.local_hostname, timeout=b.timeout, context=b.ssl_context
                )
            else:
                conn = smtplib.SMTP(b.host, b.port, b.local_hostname, timeout=b.timeout)
            conn.ehlo_or_helo_if_needed()
            if b.tls == "starttls":
                if not conn.has_extn("starttls"):
                    raise DeliveryError(
                        f"the SMTP server {b.where} does not offer STARTTLS, so mail and "
                        "password would travel unencrypted; use tls = \"tls\" for port 465, "
                        "or set [smtp] tls = \"none\" only for a relay on this machine"
                    )
                conn.starttls(context=b.ssl_context)
                conn.ehlo()
            if b.username:
                conn.login(b.username, b._password)
        except smtplib.SMTPAuthenticationError as exc:
            _close(conn)
            raise DeliveryError(
                f"the SMTP server {b.where} refused the login of {b.username!r} "
                f"({_describe(exc, b.timeout)}); check [smtp] username and DIGEST_SMTP_PASSWORD"
            ) from None
        except smtplib.SMTPNotSupportedError:
            _close(conn)
            raise DeliveryError(
                f"the SMTP server {b.where} does not offer a login (AUTH); clear [smtp] "
                "username, or use tls = \"starttls\" if it offers AUTH only over TLS"
            ) from None
        except ssl.SSLCertVerificationError as exc:
            _close(conn)
            raise DeliveryError(
                f"the TLS certificate of the SMTP server {b.where} is not valid for "
                f"{b.host!r}: {exc.verify_message}; check [smtp] host"
            ) from None
        except OSError as exc:
            _close(conn)
            raise _ConnectFailed(_describe(exc, b.timeout)) from None
        except BaseException:
            _close(conn)
            raise
        assert conn.sock is not None
        # The final "." is written apart from the body (see handing_over); with Nagle's
        # algorithm it would wait for the server's delayed ACK, some 40 ms per message.
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        log.debug("connected to %s", b.where)
        self.conn, self.fresh = conn, True

    def drop(self) -> None:
        _close(self.conn)
        self.conn = None

    def quit(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(OSError):  # closing anyway
                self.conn.quit()
            self.drop()


def _close(conn: smtplib.SMTP | None) -> None:
    if conn is not None:
        conn.close()


def _describe(exc: BaseException, timeout: float) -> str:
    """A short reason for a log line or a ledger row."""
    if isinstance(exc, smtplib.SMTPResponseException):
        err = exc.smtp_error
        text = err.decode("utf-8", "replace") if isinstance(err, bytes) else str(err)
        return f"{exc.smtp_code} {text}".replace("\n", " ")
    if isinstance(exc, TimeoutError) or "timed out" in str(exc):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, socket.gaierror):
        return f"the host name does not resolve ({exc.strerror})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return f"the server closed the connection ({exc})"
    return str(exc) or type(exc).__name__
