"""The SMTP backend: a few persistent connections driven from one thread, the DATA step
split around the ledger's handover.

The server takes responsibility for a message when it reads the "." that ends DATA.
The ledger commits "sending" right before that "." (hand_over), so that after a hard
kill a message that may have been accepted is not sent again; a kill between the commit
and the "." is the one moment that record is wrong. So that moment must be short: every
connection runs on the backend's own asyncio loop, in the calling thread; connections
whose bodies are flushed wait for one commit that marks them all `sending` (a group
commit, once per turn of the loop: see `_Handovers`), and their "." are written right
after it, with no await. (With a thread per connection the "." had to wait for the GIL
after every commit.) Where the server offers PIPELINING (RFC 2920), MAIL FROM, RCPT TO
and DATA go in one write: two round trips a message, not four.

The client connection is our own (smtpclient.py): smtplib blocks, and aiosmtplib's
data() writes the body and the "." in one go.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import inspect
import logging
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from digest.deliver.backends.base import (
    RateLimiter,
    SendEvents,
    SendResult,
    Status,
    rate_limit,
)
from digest.deliver.backends.smtpclient import (
    ReplyError,
    SmtpConnection,
    b64,
    describe,
    reply_text,
)
from digest.deliver.message import Outgoing
from digest.deliver.verp import ReturnPath
from digest.errors import ConfigError, DeliveryError

if TYPE_CHECKING:
    from digest.config import Settings

log = logging.getLogger(__name__)

TLS_MODES = ("starttls", "tls", "none")
# What a lost connection was doing, for each command of the envelope.
_STAGES = ("MAIL FROM", "RCPT TO", "DATA")


def _accepted(stage: str, code: int) -> bool:
    """Any 2xx takes MAIL FROM and RCPT TO (251 forwarded, 252 cannot verify); DATA wants
    354, go ahead."""
    return code == 354 if stage == "DATA" else 200 <= code < 300
# Replies meaning "log in first": a configuration problem, never a recipient's.
_AUTH_NEEDED = (530, 534, 535, 538)


class SmtpBackend:
    """Sends over up to `connections` SMTP connections, kept open across send() calls.

    tls: "starttls" (upgrade, fail closed if the server cannot), "tls" (implicit TLS,
    port 465) or "none" (a relay on this machine). rate_limit: most messages per second
    over all connections, 0 for none. clock and sleep drive the rate limiter (for tests);
    sleep may be a coroutine function (the default) or a plain function.

    One send() at a time per backend, and not from inside a running event loop: the
    backend runs its own. Messages are shared out through one queue, so a slow or closed
    connection leaves its share to the others. When send()'s `stop` is set, each
    connection finishes its message and takes no other.
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
        sleep: Callable[[float], Awaitable[None] | None] = asyncio.sleep,
        return_path: ReturnPath | None = None,
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
        # VERP: each message's MAIL FROM names its delivery (None: the list's from address).
        self.return_path = return_path
        self.ssl_context = ssl_context or ssl.create_default_context()
        # The limiter keeps the shared schedule; its "sleep" only notes the pause, which
        # _pace() then awaits, so one connection's wait does not stop the others.
        self.limiter = RateLimiter(rate_limit, clock=clock, sleep=self._note_pause)
        self._sleep = sleep
        self._pause = 0.0
        self._lanes = [_Lane(self) for _ in range(connections)]
        self._loop: asyncio.AbstractEventLoop | None = None

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
            rate_limit=rate_limit(settings, "smtp"),
            timeout=settings["smtp.timeout"],
            return_path=ReturnPath.from_settings(settings),
        )

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def local_hostname(self) -> str:
        """The EHLO name, looked up (DNS) once rather than for every connection."""
        if self._local_hostname is None:
            self._local_hostname = socket.getfqdn()
        return self._local_hostname

    def send(self, batch: Sequence[Outgoing], events: SendEvents,
             stop: threading.Event | None = None) -> list[SendResult]:
        """Send a batch; every message attempted gets done() once. Raises DeliveryError
        when no connection could be opened at all, or the server refused the login.
        After `stop` is set, the messages not started yet are left out (not attempted)."""
        if not batch:
            return []
        run = _Run(batch, events, stop)
        self._drive(_gather(lane.run(run) for lane in self._lanes[: len(batch)]))
        if run.error is not None:
            raise run.error
        if run.interrupted():
            return [r for r in run.results if r is not None]
        if run.queue and not run.reached and run.unanswered:
            # Nothing listens there now: a server down, restarting, or a firewall; the
            # settings may well be right, so say what is safe rather than what to change.
            raise DeliveryError(
                f"the SMTP server {self.where} did not answer ({run.stop_reason}): it is "
                "down, or not listening on that host and port. Nothing was lost: the "
                "messages not sent stay queued; run the command again once the server is "
                "back (a worker tries again by itself), and if it is up, check [smtp] "
                "host and port"
            )
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
        if self._loop is not None:
            self._drive(_gather(lane.quit() for lane in self._lanes))

    def _drive(self, work: Coroutine[Any, Any, None]) -> None:
        """Runs `work` on the backend's loop, made when first needed and closed as soon
        as no connection is open (the connections belong to it)."""
        loop = self._loop = self._loop or asyncio.new_event_loop()
        try:
            loop.run_until_complete(work)
        except BaseException:
            # Interrupted (Ctrl-C) with transactions in flight: cancel them, which drops
            # their connections, rather than leave them to resume on the next call.
            if pending := asyncio.all_tasks(loop):
                for task in pending:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            raise
        finally:
            if all(lane.conn is None for lane in self._lanes):
                # Running the loop once more also lets dropped transports close sockets.
                loop.run_until_complete(loop.shutdown_default_executor())
                loop.close()
                self._loop = None

    def _note_pause(self, seconds: float) -> None:
        self._pause = seconds

    async def _pace(self) -> None:
        """Waits for the next slot under rate_limit; the other connections go on."""
        self._pause = 0.0
        self.limiter.wait()  # sets _pause: nothing runs between the two, one thread
        if self._pause:
            pausing = self._sleep(self._pause)
            if inspect.isawaitable(pausing):
                await pausing


async def _gather(work: Iterable[Awaitable[None]]) -> None:
    # A coroutine, so that gather() runs on the backend's loop.
    await asyncio.gather(*work)


def _dot_stuffed(data: bytes) -> bytes:
    """Every line that starts with "." gets another (RFC 5321 4.5.2). bytes.replace, not
    a multi-line regex: this runs over every byte of every message."""
    data = data.replace(b"\n.", b"\n..")
    return b"." + data if data.startswith(b".") else data


class _Handovers:
    """The group commit: connections whose bodies are flushed wait here, and once per
    turn of the loop (after every connection that became ready in it has run) one
    `hand_over` commits `sending` for all of them; their "." are written right after it,
    in the same call, so nothing runs between the commit and the writes. A kill leaves
    at most this group `sending`, so `uncertain`: at most one message per connection."""

    def __init__(self, events: SendEvents) -> None:
        self.events = events
        self.waiting: list[tuple[Outgoing, SmtpConnection, bytes, asyncio.Future[str]]] = []

    def join(self, msg: Outgoing, conn: SmtpConnection, end: bytes) -> asyncio.Future[str]:
        """A future: "" once the "." is written, else why the message is abandoned."""
        loop = asyncio.get_running_loop()
        if not self.waiting:
            loop.call_soon(self._commit)
        future: asyncio.Future[str] = loop.create_future()
        self.waiting.append((msg, conn, end, future))
        return future

    def _commit(self) -> None:
        # A connection cancelled meanwhile (Ctrl-C) is left out: its row stays claimed.
        # So is one the server closed, or answered, before its "." (a reply mid-body is a
        # refusal, or a goodbye): it cannot have the message, and its lane says why.
        group = []
        for entry in self.waiting:
            conn, future = entry[1], entry[3]
            if future.done():
                continue
            if (trouble := conn.trouble()) is not None:
                future.set_exception(trouble)
                continue
            group.append(entry)
        self.waiting = []
        if not group:
            return
        try:
            lost = self.events.hand_over([msg for msg, *_ in group])
        except Exception as exc:  # the database did not answer: no "." may be written
            for *_, future in group:
                future.set_exception(exc)
            return
        for msg, conn, end, future in group:
            if msg.delivery_id in lost:
                future.set_result(lost[msg.delivery_id])
                continue
            try:
                conn.write(end)
            except OSError as exc:
                future.set_exception(exc)
            else:
                future.set_result("")


class _Run:
    """What the connections share during one send() call."""

    def __init__(self, batch: Sequence[Outgoing], events: SendEvents,
                 interrupt: threading.Event | None) -> None:
        self.queue: deque[tuple[int, Outgoing]] = deque(enumerate(batch))
        self.results: list[SendResult | None] = [None] * len(batch)
        self.events = events
        self.handovers = _Handovers(events)
        self.interrupt = interrupt  # the caller's stop: no new message once it is set
        self.stop = False
        self.reached = False  # some connection reached the server in this call
        self.unanswered = False  # and the last that failed found no server listening
        self.stop_reason = ""
        self.error: BaseException | None = None

    def interrupted(self) -> bool:
        return self.interrupt is not None and self.interrupt.is_set()

    def settle(self, index: int, msg: Outgoing, status: Status, detail: str) -> None:
        result = SendResult(msg.delivery_id, status, detail)
        self.results[index] = result
        self.events.done(result)


class _ConnectFailed(Exception):
    """A connection could not be opened; temporary as far as one message is concerned.
    `unanswered`: nothing answered at the address (refused, timed out, unreachable),
    rather than a server that answered in a way digest did not expect."""

    def __init__(self, reason: str, *, unanswered: bool) -> None:
        super().__init__(reason)
        self.unanswered = unanswered


#: errno values of a connect(2) that found no server: nothing listens, or no route.
_NO_ANSWER = (errno.ECONNREFUSED, errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ENETUNREACH)


class _Lane:
    """One connection and the loop that feeds it messages from the shared queue."""

    def __init__(self, backend: SmtpBackend) -> None:
        self.b = backend
        self.conn: SmtpConnection | None = None
        self.fresh = False  # opened for the current message: a failure is not staleness

    async def run(self, run: _Run) -> None:
        try:
            await self._feed(run)
        except BaseException as exc:  # stop the other connections, re-raised by send()
            if run.error is None:
                run.error = exc
            run.stop = True

    async def _feed(self, run: _Run) -> None:
        while not run.stop and not run.interrupted():
            try:
                index, msg = run.queue.popleft()
            except IndexError:
                return
            await self.b._pace()
            if run.interrupted():  # while waiting for the rate limit
                run.queue.appendleft((index, msg))
                return
            outcome = None
            for retry_stale in (True, False):
                if self.conn is None:
                    try:
                        await self._open()
                    except _ConnectFailed as exc:
                        run.queue.appendleft((index, msg))  # for another connection
                        run.stop_reason = f"cannot connect: {exc}"
                        run.unanswered = exc.unanswered
                        return
                run.reached = True
                outcome = await self._transact(msg, run, retry_stale=retry_stale)
                if outcome is not None:
                    break
            assert outcome is not None  # the second attempt never asks for a retry
            status, detail, keep_going = outcome
            run.settle(index, msg, status, detail)
            if not keep_going:
                run.stop_reason = detail
                return

    async def _transact(
        self, msg: Outgoing, run: _Run, *, retry_stale: bool
    ) -> tuple[Status, str, bool] | None:
        """One message: (status, detail, keep using this lane), or None to retry it once
        on a new connection because a reused one turned out to be closed."""
        conn = self.conn
        assert conn is not None
        fresh, self.fresh = self.fresh, False
        stage = "MAIL FROM"
        try:
            options = ""
            if not (msg.sender.isascii() and msg.recipient.isascii()):
                if "smtputf8" not in conn.extensions:
                    return ("failed", f"the address {msg.recipient!r} needs SMTPUTF8, which "
                            f"the SMTP server {self.b.where} does not offer", True)
                options = " SMTPUTF8"
                if "8bitmime" in conn.extensions:
                    options += " BODY=8BITMIME"
            sender = self.b.return_path.address(msg.delivery_id) if self.b.return_path \
                else msg.sender
            envelope = (f"MAIL FROM:<{sender}>{options}", f"RCPT TO:<{msg.recipient}>",
                        "DATA")
            pipelined = "pipelining" in conn.extensions
            if pipelined:  # RFC 2920: the three in one write, then their replies
                conn.write_lines(envelope)
            answers: list[tuple[int, str]] = []
            for line, name in zip(envelope, _STAGES, strict=True):
                stage = name
                answers.append(await (conn.reply() if pipelined else conn.command(line)))
                code, reply = answers[-1]
                if code == 421:  # closing: the rest of the group will not be answered
                    return await self._refused(conn, code, reply, in_transaction=False)
                if not pipelined and not _accepted(name, code):
                    break
            for name, (code, reply) in zip(_STAGES, answers, strict=False):
                if _accepted(name, code):
                    continue
                if name == "MAIL FROM" and 500 <= code < 600 and code not in _AUTH_NEEDED:
                    self.drop()
                    raise DeliveryError(
                        f"the SMTP server {self.b.where} refused the sender address "
                        f"<{sender}> ({reply_text(code, reply)}): no message can go out "
                        "from it. Nothing was lost: the messages stay queued; check the "
                        "list's from address and [delivery] return_path, then run again")
                if answers[-1][0] == 354:
                    # DATA was accepted though an earlier step was refused (RFC 2920
                    # 3.1): an empty message ends it, which has no recipient to go to.
                    stage = "DATA"
                    conn.write(b".\r\n")
                    await conn.reply()
                return await self._refused(conn, code, reply, in_transaction=True)
            stage = "the message"
            data = _dot_stuffed(msg.data)
            # The body ends with CRLF already, which is the first half of CRLF "." CRLF.
            end = b".\r\n" if data.endswith(b"\r\n") else b"\r\n.\r\n"
            conn.write(data)
            # Once the body is with the kernel, it is sent even if this process dies: the
            # commit must not cover bytes still in a buffer that a kill would lose.
            await conn.flushed()
            # The group commit writes the "." right after marking the message `sending`.
            abandoned = await run.handovers.join(msg, conn, end)
            if abandoned:
                self.drop()  # the server discards a message whose "." never comes
                return ("deferred", f"abandoned: {abandoned}", True)
            stage = "the reply to the final '.'"
            code, reply = await conn.reply()
            if code != 250:
                return await self._refused(conn, code, reply, in_transaction=False)
            return ("sent", "", True)
        except OSError as exc:  # timeouts, resets, closed connections, TLS errors
            self.drop()
            if stage == "MAIL FROM" and not fresh and retry_stale:
                return None  # nothing was accepted yet: the idle connection had been closed
            detail = f"connection lost during {stage}: {describe(exc, self.b.timeout)}"
            if stage.startswith("the reply"):
                # The server has the whole message: sending it again could deliver a
                # second copy, so it is not retried.
                detail += " (the server may have accepted the message)"
                return ("uncertain", detail, True)
            return ("deferred", detail, True)
        except BaseException:
            # Perhaps mid-DATA (hand_over raised): the connection is unusable, and
            # leaving the message unterminated makes the server discard it.
            self.drop()
            raise

    async def _refused(
        self, conn: SmtpConnection, code: int, reply: str, *, in_transaction: bool
    ) -> tuple[Status, str, bool]:
        detail = reply_text(code, reply)
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
                await conn.command("RSET")
            except OSError:
                self.drop()
        return ("failed" if 500 <= code < 600 else "deferred", detail, True)

    async def _open(self) -> None:
        b = self.b
        name = b.local_hostname
        conn = SmtpConnection(b.timeout)
        connected = False
        try:
            await conn.connect(b.host, b.port, b.ssl_context if b.tls == "tls" else None)
            connected = True
            await conn.expect(None, 220)  # the greeting
            await conn.hello(name)
            if b.tls == "starttls":
                if "starttls" not in conn.extensions:
                    raise DeliveryError(
                        f"the SMTP server {b.where} does not offer STARTTLS, so mail and "
                        "password would travel unencrypted; use tls = \"tls\" for port 465, "
                        "or set [smtp] tls = \"none\" only for a relay on this machine"
                    )
                await conn.expect("STARTTLS", 220)
                await conn.start_tls(b.ssl_context, b.host)
                await conn.hello(name)
            if b.username:
                await self._login(conn)
        except ssl.SSLCertVerificationError as exc:
            conn.close()
            raise DeliveryError(
                f"the TLS certificate of the SMTP server {b.where} is not valid for "
                f"{b.host!r}: {exc.verify_message}; check [smtp] host"
            ) from None
        except (OSError, ReplyError) as exc:
            conn.close()
            # A timeout after connecting (no greeting) is a server that answered: often
            # TLS on a plain port, which the caller's tls hint is for.
            unanswered = not connected and (isinstance(exc, TimeoutError) or getattr(
                exc, "errno", None) in _NO_ANSWER)
            raise _ConnectFailed(describe(exc, b.timeout), unanswered=unanswered) from None
        except BaseException:
            conn.close()
            raise
        log.debug("connected to %s", b.where)
        self.conn, self.fresh = conn, True

    async def _login(self, conn: SmtpConnection) -> None:
        """AUTH PLAIN, or LOGIN where PLAIN is not offered."""
        b = self.b
        offered = conn.extensions.get("auth", "").upper().split()
        user, password = b.username.encode(), b._password.encode()
        if "PLAIN" in offered:
            code, reply = await conn.command("AUTH PLAIN " + b64(b"\0" + user + b"\0" + password))
        elif "LOGIN" in offered:
            code, reply = await conn.command("AUTH LOGIN")
            for secret in (user, password):
                if code == 334:
                    code, reply = await conn.command(b64(secret))
        else:
            raise DeliveryError(
                f"the SMTP server {b.where} does not offer a login (AUTH PLAIN or LOGIN); "
                "clear [smtp] username, or use tls = \"starttls\" if it offers AUTH only "
                "over TLS"
            )
        if code not in (235, 503):  # 503: logged in already
            raise DeliveryError(
                f"the SMTP server {b.where} refused the login of {b.username!r} "
                f"({reply_text(code, reply)}); check [smtp] username and DIGEST_SMTP_PASSWORD"
            )

    def drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    async def quit(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(OSError):  # closing anyway
                await self.conn.command("QUIT")
            self.drop()
