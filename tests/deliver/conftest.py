"""A real SMTP server (aiosmtpd) on loopback that records what it accepts and can be told
to misbehave: reject or defer recipients, close connections with 421, require a login,
offer STARTTLS or implicit TLS.

`smtp_server(**options)` starts one and stops it after the test. Tests elsewhere may
import `SmtpSink` directly (the crash test runs it in the test process while the sender
runs in a subprocess).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import shutil
import ssl
import subprocess
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from digest.deliver.backends import SendResult
from digest.deliver.backends.base import ClaimLost
from digest.deliver.message import MessageTemplate, Outgoing, Recipient

NOW = dt.datetime(2026, 11, 27, 6, 0, tzinfo=dt.UTC)


def make_messages(
    n: int, *, first_id: int = 1, addresses: Collection[str] = (), text: str = ""
) -> list[Outgoing]:
    """n small messages to r<id>@example.com (or to `addresses`), ids from first_id."""
    tpl = MessageTemplate(
        html="<p>Hi __DIGEST_SLOT_name__</p>\n.a line that starts with a dot\n",
        text=text or "Hi __DIGEST_SLOT_name__,\n.a line that starts with a dot\n",
        subject="Weekly", from_addr="News <news@example.org>", list_id="news.example.org",
        list_name="News", edition_key="e1", slot_key="",
    )
    addrs = list(addresses) or [f"r{i}@example.com" for i in range(first_id, first_id + n)]
    return [
        tpl.build(Recipient(first_id + i, addr, f"Reader {i}", "https://x.example/u"), NOW)
        for i, addr in enumerate(addrs)
    ]


class EventLog:
    """SendEvents that records every call in order, from any thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[tuple[str, int]] = []
        self.results: list[SendResult] = []
        self.on_handing_over: Callable[[Outgoing], None] | None = None

    def hand_over(self, msgs: Sequence[Outgoing]) -> dict[int, str]:
        """handing_over() for each; a ClaimLost it raises leaves that message out."""
        lost = {}
        for msg in msgs:
            try:
                self.handing_over(msg)
            except ClaimLost as exc:
                lost[msg.delivery_id] = str(exc)
        return lost

    def handing_over(self, msg: Outgoing) -> None:
        with self.lock:
            self.calls.append(("handing_over", msg.delivery_id))
        if self.on_handing_over is not None:
            self.on_handing_over(msg)

    def done(self, result: SendResult) -> None:
        with self.lock:
            self.calls.append(("done", result.delivery_id))
            self.results.append(result)

    def taken_back(self, msgs: Sequence[Outgoing]) -> None:
        with self.lock:
            self.calls.extend(("taken_back", m.delivery_id) for m in msgs)

    def check(self) -> None:
        """done() once per message; a sent one was handed over once more than it was
        taken back, the last handover before done()."""
        done = [i for kind, i in self.calls if kind == "done"]
        assert len(done) == len(set(done))
        for result in self.results:
            mine = [kind for kind, i in self.calls if i == result.delivery_id]
            if result.status == "sent":
                assert mine.count("handing_over") == mine.count("taken_back") + 1
                assert mine[-2:] == ["handing_over", "done"]


@dataclass(frozen=True)
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    smtp_utf8: bool
    peer: Any  # the client's (host, port): one per connection


class SinkHandler:
    """aiosmtpd hooks; counters and the list of messages are guarded by one lock, since
    tests read them from another thread than the server's."""

    def __init__(
        self,
        *,
        reject: Collection[str] = (),
        tempfail: Mapping[str, float] | Collection[str] = (),
        close_on_mail: Collection[int] = (),
        vanish_after_data: Collection[int] = (),
        hold: threading.Event | None = None,
        slow_after_data: Mapping[int, float] | None = None,
        pipelining: bool = True,
    ) -> None:
        self.lock = threading.Lock()
        self.pipelining = pipelining
        # Keep these messages (1-based) but answer only after so many seconds.
        self.slow_after_data = dict(slow_after_data or {})
        # While `hold` is clear, DATA waits (the client is mid-message); `holding` is set
        # once one does, so a test knows the sender is mid-batch.
        self.hold = hold
        self.holding = threading.Event()
        self.messages: list[Received] = []
        self.reject = set(reject)
        # recipient -> how many more times to answer 451 (math.inf: always)
        self.tempfail: dict[str, float] = (
            dict(tempfail) if isinstance(tempfail, Mapping) else dict.fromkeys(tempfail, math.inf)
        )
        self.close_on_mail = set(close_on_mail)  # answer 421 on these MAIL FROMs (1-based)
        # Keep these messages (1-based) but close the connection instead of answering.
        self.vanish_after_data = set(vanish_after_data)
        self.mail_count = 0
        self.peers: set[Any] = set()

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        """aiosmtpd's own EHLO answer, with PIPELINING (RFC 2920) where told: it reads
        pipelined commands one by one either way, as Postfix does."""
        session.host_name = hostname
        if self.pipelining:  # before the last line, aiosmtpd's "250 HELP"
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        mail_options: list[str],
    ) -> str:
        with self.lock:
            self.mail_count += 1
            self.peers.add(session.peer)
            closing = self.mail_count in self.close_on_mail
        if closing:
            # push() writes the reply before this runs, and close() flushes it.
            assert server.transport is not None
            asyncio.get_running_loop().call_soon(server.transport.close)
            return "421 4.3.2 service shutting down, closing channel"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        rcpt_options: list[str],
    ) -> str:
        if address in self.reject:
            return "550 5.1.1 no such user"
        with self.lock:
            left = self.tempfail.get(address, 0)
            if left > 0:
                self.tempfail[address] = left - 1
                return "451 4.7.1 greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.original_content, bytes)
        while self.hold is not None and not self.hold.is_set():
            self.holding.set()
            await asyncio.sleep(0.01)
        received = Received(
            str(envelope.mail_from), tuple(envelope.rcpt_tos), envelope.original_content,
            envelope.smtp_utf8, session.peer,
        )
        with self.lock:
            self.messages.append(received)
            vanish = len(self.messages) in self.vanish_after_data
            delay = self.slow_after_data.get(len(self.messages), 0.0)
        if delay:
            await asyncio.sleep(delay)
        if vanish:
            assert isinstance(server.transport, asyncio.Transport)
            server.transport.abort()
        return "250 2.0.0 OK queued"


class _Controller(Controller):
    """A Controller that may bind port 0 and learns the port it got, and that keeps
    every server instance so tests can cut connections."""

    def __init__(self, handler: SinkHandler, *, auth_without_tls: bool, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.auth_without_tls = auth_without_tls
        self.servers: list[SMTP] = []

    def factory(self) -> SMTP:
        server = SMTP(self.handler, **self.SMTP_kwargs)
        if self.auth_without_tls:
            # Set after __init__, which would warn (an error in this suite), and without
            # touching the process-wide warning filters from the server's thread.
            server._auth_require_tls = False
        self.servers.append(server)
        return server

    def _create_server(self) -> Any:
        async def create() -> asyncio.AbstractServer:
            server = await self.loop.create_server(
                self._factory_invoker, host=self.hostname, port=self.port, ssl=self.ssl_context
            )
            self.port = server.sockets[0].getsockname()[1]
            return server

        return create()


class SmtpSink:
    """A recording SMTP server on 127.0.0.1.

    reject: recipients answered 550. tempfail: recipients answered 451, always or the
    given number of times. close_on_mail: the MAIL FROMs (counted from 1 over all
    connections) answered 421, closing that connection. vanish_after_data: the accepted
    messages (counted from 1) after which the connection closes with no reply.
    slow_after_data: {message number: seconds} to wait before answering the final ".".
    auth: (login, password) required before MAIL. starttls / implicit_tls: a server
    SSLContext (see `tls_files`). smtputf8: offer SMTPUTF8. port: 0 for any free one, or
    a given one to restart a server where clients expect it. hold: while this event is
    clear, every DATA waits for it (`handler.holding` tells that one does). pipelining:
    offer PIPELINING, as Postfix and most servers do.
    """

    def __init__(
        self,
        *,
        reject: Collection[str] = (),
        tempfail: Mapping[str, float] | Collection[str] = (),
        close_on_mail: Collection[int] = (),
        vanish_after_data: Collection[int] = (),
        auth: tuple[str, str] | None = None,
        starttls: ssl.SSLContext | None = None,
        implicit_tls: ssl.SSLContext | None = None,
        smtputf8: bool = True,
        port: int = 0,
        hold: threading.Event | None = None,
        slow_after_data: Mapping[int, float] | None = None,
        pipelining: bool = True,
    ) -> None:
        self.handler = SinkHandler(
            reject=reject, tempfail=tempfail, close_on_mail=close_on_mail,
            vanish_after_data=vanish_after_data, hold=hold, slow_after_data=slow_after_data,
            pipelining=pipelining,
        )
        kwargs: dict[str, Any] = {"enable_SMTPUTF8": smtputf8}
        if auth is not None:
            login, password = auth[0].encode(), auth[1].encode()

            def authenticate(
                server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
            ) -> AuthResult:
                ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
                    login, password,
                )
                return AuthResult(success=ok, handled=False)  # False: aiosmtpd answers 535

            kwargs.update(authenticator=authenticate, auth_required=True)
        if starttls is not None:
            kwargs["tls_context"] = starttls
        self.controller = _Controller(
            self.handler, hostname="127.0.0.1", port=port, ssl_context=implicit_tls,
            server_hostname="sink.test", auth_without_tls=auth is not None and starttls is None,
            **kwargs,
        )
        self.host = "127.0.0.1"

    @property
    def port(self) -> int:
        return int(self.controller.port)

    @property
    def messages(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.messages)

    @property
    def connections(self) -> int:
        """Client connections that sent at least one MAIL FROM."""
        with self.handler.lock:
            return len(self.handler.peers)

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.disconnect_all()
        self.controller.stop()

    def disconnect_all(self) -> None:
        """Close every client connection, as a server does to idle clients."""
        done = threading.Event()

        def close() -> None:
            for server in self.controller.servers:
                if server.transport is not None:
                    server.transport.close()
            done.set()

        self.controller.loop.call_soon_threadsafe(close)
        done.wait(5)


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., SmtpSink]]:
    """A factory: `sink = smtp_server(reject={"x@example.org"})` starts a SmtpSink."""
    started: list[SmtpSink] = []

    def start(**options: Any) -> SmtpSink:
        sink = SmtpSink(**options).start()
        started.append(sink)
        return sink

    yield start
    for sink in started:
        sink.stop()


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A self-signed certificate for 127.0.0.1, made with the openssl command (the
    `cryptography` package is not a dependency)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    files = TlsFiles(folder / "cert.pem", folder / "key.pem")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(files.key), "-out", str(files.cert)],
        check=True, capture_output=True,
    )
    return files
