"""A small asyncio SMTP client connection: only what the SMTP backend needs.

Not smtplib (blocking) nor aiosmtplib (its data() writes the body and the final "." in
one go). An asyncio.Protocol that owns its reply buffer (emptied at STARTTLS) and can
tell when a body has left for the kernel, so the backend can commit its ledger record
between the body and the "." (see digest/deliver/backends/smtp.py).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import ssl
from collections.abc import Sequence

log = logging.getLogger(__name__)

MAX_REPLY = 64 * 1024  # a whole reply, continuation lines included; EHLO's is ~300 bytes


class ReplyError(Exception):
    """The server refused a step of opening the connection."""

    def __init__(self, code: int, reply: str) -> None:
        super().__init__(reply_text(code, reply))


class Disconnected(ConnectionError):
    """The connection closed, or sent something that leaves it unusable."""


class SmtpConnection(asyncio.Protocol):
    """One SMTP client connection: the commands the backend uses, each awaiting its reply
    within `timeout`, and a way to know when the written bytes have left for the kernel."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.extensions: dict[str, str] = {}  # from EHLO, lower-case keyword -> parameters
        self.transport: asyncio.Transport | None = None
        self._tcp: asyncio.Transport | None = None  # the transport under TLS, if any
        self._buffer = bytearray()
        self._lost: OSError | None = None
        self._paused = False  # the transport holds bytes it could not write yet
        self._wake: asyncio.Future[None] | None = None

    async def connect(self, host: str, port: int, tls: ssl.SSLContext | None) -> None:
        """Connects, and with `tls` does the TLS handshake at once (implicit TLS)."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.timeout):
            await loop.create_connection(lambda: self, host, port)
            if tls is not None:
                await self._upgrade(tls, host)

    async def start_tls(self, context: ssl.SSLContext, host: str) -> None:
        async with asyncio.timeout(self.timeout):
            await self._upgrade(context, host)

    async def _upgrade(self, context: ssl.SSLContext, host: str) -> None:
        assert self.transport is not None
        # Anything read but not yet parsed came before encryption, so not (provably) from
        # the server: a man in the middle could have added replies.
        self._buffer.clear()
        tls = await asyncio.get_running_loop().start_tls(
            self.transport, self, context, server_hostname=host
        )
        if tls is None:
            raise Disconnected("the server closed the connection")
        tls.set_write_buffer_limits(0)  # see connection_made
        self.transport = tls

    async def hello(self, name: str) -> None:
        """EHLO, noting the extensions; HELO for a server that knows no EHLO."""
        code, reply = await self.command(f"EHLO {name}")
        if code == 250:
            lines = reply.split("\n")[1:]
            self.extensions = {k.lower(): v for k, _, v in (s.partition(" ") for s in lines)}
        else:
            self.extensions = {}
            await self.expect(f"HELO {name}", 250)

    async def expect(self, line: str | None, code: int) -> None:
        """Sends `line` (None: only reads, for the greeting) and insists on `code`."""
        got, reply = await (self.command(line) if line is not None else self.reply())
        if got != code:
            raise ReplyError(got, reply)

    async def command(self, line: str) -> tuple[int, str]:
        self.write(_line(line))
        return await self.reply()

    def write_lines(self, lines: Sequence[str]) -> None:
        """PIPELINING (RFC 2920): the commands in one write; `reply()` then reads their
        replies in order. Only for a server that offers it."""
        self.write(b"".join(_line(line) for line in lines))

    def trouble(self) -> OSError | None:
        """Why no more may be written here: the connection is gone, or the server spoke
        when it should be listening (mid-body); None if it looks fine."""
        if (closed := self._closed()) is not None:
            return closed
        if self._buffer:
            return Disconnected("the server answered before the message was complete: "
                                + bytes(self._buffer[:200]).decode("utf-8", "replace").strip())
        return None

    def write(self, data: bytes) -> None:
        """Hands `data` to the transport, which writes to the socket now if it can."""
        if (closed := self._closed()) is not None:
            raise closed
        assert self.transport is not None  # _closed() says so otherwise
        self.transport.write(data)

    def _closed(self) -> OSError | None:
        """Why nothing can be written any more, or None."""
        if self._lost is not None:
            return self._lost
        if self.transport is None or self.transport.is_closing():
            return Disconnected("the server closed the connection")
        return None

    async def reply(self) -> tuple[int, str]:
        """The next reply: its code and its text, continuation lines joined by "\n"."""
        async with asyncio.timeout(self.timeout):
            while (parsed := self._parse()) is None:
                if self._lost is not None:
                    raise self._lost
                await self._event()
        return parsed

    async def flushed(self) -> None:
        """Waits until the transports hold no unwritten bytes."""
        if not self._unwritten():  # the usual case: the socket took it all at once
            return
        async with asyncio.timeout(self.timeout):
            while self._unwritten():
                if self._lost is not None:
                    raise self._lost
                if self._paused:
                    await self._event()  # resume_writing() comes when it is empty
                else:
                    # Under TLS: the TCP transport below reports only to the TLS layer.
                    await asyncio.sleep(0.001)

    def _unwritten(self) -> int:
        return sum(t.get_write_buffer_size() for t in (self.transport, self._tcp) if t)

    def _parse(self) -> tuple[int, str] | None:
        lines, start = [], 0
        while (end := self._buffer.find(b"\n", start)) >= 0:
            line = bytes(self._buffer[start:end]).rstrip(b"\r")
            start = end + 1
            if not (line[:3].isdigit() and line[3:4] in (b"", b" ", b"-")):
                raise Disconnected(f"not an SMTP reply: {line[:100]!r}")
            lines.append(line[4:].strip().decode("utf-8", "replace"))
            if line[3:4] != b"-":
                del self._buffer[:start]
                return int(line[:3]), "\n".join(lines)
        if len(self._buffer) > MAX_REPLY:
            raise Disconnected(f"a reply longer than {MAX_REPLY} bytes")
        return None

    async def _event(self) -> None:
        """Waits for data, the connection's end, or room to write."""
        self._wake = asyncio.get_running_loop().create_future()
        try:
            await self._wake
        finally:
            self._wake = None

    def _wakeup(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def close(self) -> None:
        """Drops the connection at once: unwritten bytes are discarded, no TLS goodbye."""
        for transport in (self.transport, self._tcp):
            if transport is not None:
                transport.abort()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = self._tcp = transport
        # The "." is written apart from the body: with Nagle's algorithm it would wait for
        # the server's delayed ACK, some 40 ms per message. (asyncio sets it too; we rely
        # on it, so it is set here as well.)
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Limit 0: pause_writing() whenever bytes wait, resume_writing() once none do.
        transport.set_write_buffer_limits(0)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._wakeup()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = (
            exc if isinstance(exc, OSError) else Disconnected("the server closed the connection")
        )
        self._wakeup()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wakeup()


def _line(command: str) -> bytes:
    if "\r" in command or "\n" in command:
        raise ValueError("an SMTP command may not contain a line break")
    return command.encode() + b"\r\n"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def reply_text(code: int, reply: str) -> str:
    """A reply on one line, for a ledger row or an error message."""
    return f"{code} {reply}".replace("\n", " ")


def describe(exc: BaseException, timeout: float) -> str:
    """A short reason for a log line or a ledger row."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, socket.gaierror):
        return f"the host name does not resolve ({exc.strerror})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return str(exc) or type(exc).__name__
