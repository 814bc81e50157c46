"""The HTTP server `digest serve` runs: uvicorn with its h11 protocol, plus the limits
uvicorn lacks against slow and numerous clients.

uvicorn reads a request's head for as long as the client keeps sending: its keep-alive
timer is cancelled by any byte, and its `limit_concurrency` answers 503 only once a head
is complete, so a client sending a header line every few seconds holds a connection, and
a file descriptor, for ever. Here each connection has `[web] header_timeout` seconds to
complete a head, from connecting or from its previous response; and at most
`[web] max_connections` are open: a new one beyond that closes the one that has waited
longest for its request (a slow head or an idle keep-alive), as nginx reuses its idle
connections, or, with every connection busy on a request, is answered 503 and closed.

Bodies too: a body must come within `[web] body_timeout` seconds, plus one second for
each MIN_BODY_RATE bytes received (Apache's `RequestReadTimeout body=20,MinRate=500`),
so a large upload at any usable speed passes and a trickle is cut with 408. A request
answered before its body was read (413 on its Content-Length) is not drained, as uvicorn
would, for as long as the client trickles: its connection stops counting busy, and is
closed once the client has had a moment to read the answer (LINGER_SECONDS).
Together with the listen backlog (asyncio accepts up to that many in one go) the cap is
fitted to the limit of open files at start, so that connections alone cannot use them
up.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
import uvicorn
from fastapi import FastAPI
from starlette.routing import BaseRoute, Mount, Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from digest.config import Settings
from digest.errors import ConfigError

log = logging.getLogger(__name__)

#: Files kept for everything but connections: the database pool (SQLite opens three
#: per connection), SMTP connections, feed fetches, templates, the log.
RESERVED_FILES = 128
#: uvicorn's default listen backlog, and the most asyncio accepts in one go.
MAX_BACKLOG = 2048
#: The fewest connections worth serving; a lower limit of open files is an error.
MIN_CONNECTIONS = 16
#: Bytes a second a body must arrive at, beyond its first `[web] body_timeout` seconds.
MIN_BODY_RATE = 500
#: How long a connection answered before its body was read stays open, half-closed and
#: discarding what comes, so that the client reads the answer before the close: closing
#: a socket with unread data sends a reset, which can destroy the answer in flight.
LINGER_SECONDS = 2.0

REQUEST_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n"
                   b"Connection: close\r\n\r\n")
UNAVAILABLE = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
               b"Retry-After: 1\r\nConnection: close\r\n\r\n")


@dataclass(frozen=True)
class Limits:
    header_timeout: float
    max_connections: int
    backlog: int
    body_timeout: float = 30.0


def web_server(web: FastAPI, settings: Settings, host: str, port: int) -> uvicorn.Server:
    """uvicorn serving `web` on host:port with the limits of `settings`; logging is left
    to the caller (`digest.logs.configure_logging`)."""
    limits = fit_limits(settings["web.header_timeout"], settings["web.max_connections"],
                        settings["web.body_timeout"])
    return uvicorn.Server(uvicorn.Config(
        web, host=host, port=port, http=limited_protocol(limits), backlog=limits.backlog,
        proxy_headers=True, forwarded_allow_ips=settings["web.forwarded_allow_ips"],
        log_config=None,  # our handler and its filters, not uvicorn's own handlers
    ))


def fit_limits(header_timeout: float, max_connections: int,
               body_timeout: float = 30.0) -> Limits:
    """The limits to serve with: the settings checked, and the connection cap and
    backlog lowered, when they must be, to what the limit of open files allows (its soft
    value is raised towards the hard one first, as nginx's worker_rlimit_nofile does)."""
    if header_timeout <= 0:
        raise ConfigError(f"[web] header_timeout is {header_timeout:g}: it must be more "
                          "than 0 seconds; set it in the config file or in "
                          "DIGEST_WEB_HEADER_TIMEOUT (the default is 10)")
    if body_timeout <= 0:
        raise ConfigError(f"[web] body_timeout is {body_timeout:g}: it must be more "
                          "than 0 seconds; set it in the config file or in "
                          "DIGEST_WEB_BODY_TIMEOUT (the default is 30)")
    if max_connections < MIN_CONNECTIONS:
        raise ConfigError(f"[web] max_connections is {max_connections}: it must be at "
                          f"least {MIN_CONNECTIONS}; set it in the config file or in "
                          "DIGEST_WEB_MAX_CONNECTIONS (the default is 1000)")
    backlog = min(MAX_BACKLOG, max_connections)
    files = _open_files_limit(max_connections + backlog + RESERVED_FILES)
    if files >= max_connections + backlog + RESERVED_FILES:
        return Limits(header_timeout, max_connections, backlog, body_timeout)
    spare = files - RESERVED_FILES
    backlog = spare // 4
    connections = spare - backlog
    if connections < MIN_CONNECTIONS:
        raise ConfigError(
            f"this process may open only {files} files (ulimit -n), too few to serve: "
            f"raise the limit to at least {RESERVED_FILES + 2 * MIN_CONNECTIONS} "
            "(systemd: LimitNOFILE=, a shell: ulimit -n)")
    log.warning("this process may open only %d files (ulimit -n): serving at most %d "
                "connections at once, not [web] max_connections = %d; raise the limit "
                "(systemd: LimitNOFILE=) or lower max_connections", files, connections,
                max_connections)
    return Limits(header_timeout, connections, backlog, body_timeout)


def _open_files_limit(wanted: int) -> int:
    """The soft limit of open files, raised towards `wanted` as far as the hard limit
    allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return wanted
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (OSError, ValueError):  # not allowed here (a sandbox): keep the soft one
            pass
    return soft


class Gate:
    """What the connections of one server share: its limits, and the connections busy
    with no request (waiting for a head, or lingering after an answer), longest first."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.waiting: OrderedDict[LimitedH11Protocol, None] = OrderedDict()

    def admit(self, new: LimitedH11Protocol, open_now: int) -> bool:
        """Make room for `new` when `open_now` (itself included) is over the cap: close
        the connection that has waited longest for its request; with none waiting,
        refuse `new`. Whether `new` may stay."""
        if open_now <= self.limits.max_connections:
            return True
        if self.waiting:
            oldest, _ = self.waiting.popitem(last=False)
            log.warning("[web] max_connections (%d) are open: closed the one waiting longest "
                        "for its request", self.limits.max_connections)
            oldest.drop()
            return True
        log.warning("[web] max_connections (%d) are open, each busy with a request: "
                    "answered 503", self.limits.max_connections)
        new.drop(UNAVAILABLE)
        return False


class LimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with deadlines for each request head and body, under its
    server's connection cap. A subclass is made per server (`limited_protocol`) to carry
    its `gate`, since uvicorn builds protocols from a class and its own arguments."""

    gate: ClassVar[Gate]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The head's deadline, or the end of lingering: while it runs the connection is
        # in `gate.waiting`, the first to close when the cap is reached.
        self.head_timer: asyncio.TimerHandle | None = None
        self.head_begun = False
        self.body_timer: asyncio.TimerHandle | None = None
        self.body_due = 0.0  # loop time by which the body must be in
        self.lingering = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.gate.admit(self, len(self.connections)):
            self._await_head()

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return  # answered already: the rest of the body is not wanted
        if self.conn.their_state is h11.IDLE:
            self.head_begun = True
        in_body = self.conn.their_state is h11.SEND_BODY
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._head_done()
        if self.conn.their_state is not h11.SEND_BODY:
            self._body_done()
        elif in_body:
            self.body_due += len(data) / MIN_BODY_RATE
        elif self.body_timer is None:
            self._await_body()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self.conn.their_state is h11.SEND_BODY:
            self._linger()
        # Kept alive and nothing of the next request read yet: its head is due in time
        # too (uvicorn's keep-alive timer stops at the first byte).
        elif self.conn.their_state is h11.IDLE:
            self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_done()
        self._body_done()
        super().connection_lost(exc)

    def drop(self, answer: bytes = b"") -> None:
        """Close the connection, with `answer` first if given. Aborted when unsent data
        remains: a client that reads nothing must not keep the socket open."""
        self._head_done()
        self._body_done()
        if self.transport.is_closing():
            return
        if answer:
            self.transport.write(answer)
        if self.transport.get_write_buffer_size():
            self.transport.abort()
        else:
            self.transport.close()

    def _await_head(self) -> None:
        self._head_done()
        self.head_begun = bool(self.conn.trailing_data[0])
        self.head_timer = self.loop.call_later(self.gate.limits.header_timeout,
                                               self._head_too_slow)
        self.gate.waiting[self] = None

    def _head_done(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None
        self.gate.waiting.pop(self, None)

    def _head_too_slow(self) -> None:
        self.head_timer = None
        if self.conn.their_state is not h11.IDLE:
            return
        if self.head_begun:
            log.warning("closed a connection whose request line and headers took longer "
                        "than [web] header_timeout (%g s)", self.gate.limits.header_timeout)
        # An idle kept-alive connection is closed without a word, as uvicorn's own
        # keep-alive timeout does: a 408 there could be read as the answer to the
        # client's next request.
        self.drop(REQUEST_TIMEOUT if self.head_begun else b"")

    def _await_body(self) -> None:
        self.body_due = self.loop.time() + self.gate.limits.body_timeout
        self.body_timer = self.loop.call_at(self.body_due, self._body_too_slow)

    def _body_done(self) -> None:
        if self.body_timer is not None:
            self.body_timer.cancel()
            self.body_timer = None

    def _body_too_slow(self) -> None:
        self.body_timer = None
        if self.conn.their_state is not h11.SEND_BODY or self.transport.is_closing():
            return
        now = self.loop.time()
        if self.flow.read_paused or (self.cycle is not None
                                     and self.cycle.waiting_for_100_continue):
            # The app has not asked for more yet (or for the body at all): the wait is
            # ours, not the client's.
            self.body_due = max(self.body_due, now + self.gate.limits.body_timeout)
        if now < self.body_due:
            self.body_timer = self.loop.call_at(self.body_due, self._body_too_slow)
            return
        log.warning("closed a connection whose request body came slower than [web] "
                    "body_timeout (%g s) and %d bytes a second allow",
                    self.gate.limits.body_timeout, MIN_BODY_RATE)
        answered = self.cycle is not None and self.cycle.response_started
        self.drop(b"" if answered else REQUEST_TIMEOUT)

    def _linger(self) -> None:
        """Answered before the body was read: send our FIN after the answer, discard
        what still comes, and close when the client does or after LINGER_SECONDS;
        meanwhile the connection is not busy (the cap may close it first)."""
        self._body_done()
        self._unset_keepalive_if_required()
        self.lingering = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.head_timer = self.loop.call_later(LINGER_SECONDS, self.drop)
        self.gate.waiting[self] = None


def limited_protocol(limits: Limits) -> type[LimitedH11Protocol]:
    """A protocol class for one server, its connections sharing one `Gate`."""

    class ServerProtocol(LimitedH11Protocol):
        gate = Gate(limits)

    return ServerProtocol


def token_routes(web: FastAPI) -> list[str]:
    """The path templates of `web` that carry a signed token (`/preferences/{token}`),
    for `digest.logs.RedactTokens`: a token route added later is covered too."""
    return sorted({path for path in _paths(web.routes, "") if "{token}" in path})


def _paths(routes: Iterable[BaseRoute], prefix: str) -> Iterator[str]:
    for route in routes:
        # FastAPI keeps an included router whole, as `original_router` with its prefix.
        included = getattr(route, "original_router", None)
        if included is not None:
            context = getattr(route, "include_context", None)
            yield from _paths(included.routes, prefix + str(getattr(context, "prefix", "")))
        elif isinstance(route, Mount):
            yield from _paths(route.routes, prefix + route.path)
        elif isinstance(route, Route):  # APIRoute too
            yield prefix + route.path
