"""`digest serve` and request bodies that come slowly, or not at all (issue 9, finding
4): a connection answered before its body was read is closed and no longer counted
busy, a body slower than `[web] body_timeout` allows is cut, and a client that goes
away mid-body is no server error. Real `digest serve` in a subprocess, raw sockets."""

from __future__ import annotations

import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from tests.test_serve import Served, start_serve  # noqa: F401 (start_serve: a fixture)
from tests.test_serve_limits import allow_open_files, port_of, timed_healthz

pytestmark = pytest.mark.slow  # real servers, seconds each

LOGIN_HEAD = (b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
              b"Content-Type: application/x-www-form-urlencoded\r\n"
              b"Content-Length: %d\r\n\r\n")


@dataclass
class Trickler:
    sock: socket.socket
    answer: bytes = b""
    closed: bool = False


@dataclass
class TricklingBodies:
    """`n` connections that each send a POST /login head announcing `length` bytes,
    then one byte of body every `every` seconds, reading whatever comes back."""

    port: int
    n: int
    length: int
    every: float
    clients: list[Trickler] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, until: float) -> None:
        sel = selectors.DefaultSelector()
        for i in range(self.n):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            sock.sendall(LOGIN_HEAD % self.length)
            sock.setblocking(False)
            client = Trickler(sock)
            self.clients.append(client)
            sel.register(sock, selectors.EVENT_READ, client)
            if i % 50 == 49:
                self._pump(sel, time.monotonic() + 0.02)
        next_byte = time.monotonic()
        while not self.stop.is_set() and time.monotonic() < until:
            self._pump(sel, min(next_byte, until))
            if time.monotonic() >= next_byte:
                next_byte += self.every
                for client in self.clients:
                    if not client.closed:
                        try:
                            client.sock.send(b"x")
                        except OSError:
                            self._closed(sel, client)
        for client in self.clients:
            client.sock.close()

    def _pump(self, sel: selectors.BaseSelector, until: float) -> None:
        while (left := until - time.monotonic()) > 0:
            for key, _events in sel.select(timeout=left):
                client = key.data
                try:
                    data = client.sock.recv(65536)
                except OSError:
                    data = b""
                client.answer += data
                if not data:
                    self._closed(sel, client)

    @staticmethod
    def _closed(sel: selectors.BaseSelector, client: Trickler) -> None:
        client.closed = True
        sel.unregister(client.sock)


MAX_CONNECTIONS = 1000  # [web] max_connections' default
CLIENTS = 1005  # more than that


def test_connections_answered_413_while_their_body_trickles_are_not_held_busy(
    start_serve: Callable[..., Served],  # noqa: F811
) -> None:
    """Each POST announcing 100,000 bytes is refused with 413 at once; its connection,
    its body unread, is then closed, not kept counted busy while the client trickles
    a byte every second: /healthz keeps answering 200 with 1,005 such clients."""
    allow_open_files(CLIENTS + 300)
    served = start_serve()
    flood = TricklingBodies(port_of(served), CLIENTS, length=100_000, every=1.0)
    until = time.monotonic() + 60
    runner = threading.Thread(target=flood.run, args=(until,))
    runner.start()
    health: list[tuple[int, float]] = []
    try:
        while runner.is_alive() and len(flood.clients) < CLIENTS:
            time.sleep(0.1)
        # The refusals take the server a moment: probe once every client has been
        # answered and closed (the probe would meet the cap while heads are unread).
        settle = time.monotonic() + 20
        while (runner.is_alive() and time.monotonic() < settle
               and sum(c.closed for c in flood.clients) < CLIENTS):
            time.sleep(0.1)
        for _ in range(12):  # 6 s with every client connected and trickling
            # Answered, and not 503 for connections held busy; how fast is the slow
            # header test's check (a loaded machine took 2 s once here).
            health.append(timed_healthz(served, timeout=10))
            time.sleep(0.5)
        closed = sum(c.closed for c in flood.clients)
    finally:
        flood.stop.set()
        runner.join()
    assert served.proc.poll() is None, served.output()[-3000:]
    refused = sum(c.answer.startswith(b"HTTP/1.1 413") for c in flood.clients)
    failed = [h for h in health if h[0] != 200]
    report = (f"{len(flood.clients)} connected, {refused} answered 413, {closed} closed by "
              f"the server; /healthz {failed[:5]} of {len(health)} failed; log tail:\n"
              f"{served.output()[-2000:]}")
    # Connecting all at once, a few may find max_connections (1000, the probe included)
    # open with heads not yet read: the cap closes those (or answers 503) at once.
    capped = [c.answer[:12] for c in flood.clients
              if not c.answer.startswith(b"HTTP/1.1 413")]
    assert len(flood.clients) == CLIENTS, report
    assert len(capped) <= CLIENTS + 1 - MAX_CONNECTIONS, report
    assert all(a in (b"", b"HTTP/1.1 503") for a in capped), (capped, report)
    assert closed == CLIENTS, report
    assert not failed, report
    assert "each busy with a request: answered 503" not in served.output(), report


def test_a_body_slower_than_body_timeout_allows_is_cut(
    start_serve: Callable[..., Served],  # noqa: F811
) -> None:
    """A body within the size cap (100 bytes) sent a byte every half second would take
    50 s; with `[web] body_timeout` = 1 the server answers 408 and closes long before,
    and keeps answering others."""
    served = start_serve(DIGEST_WEB_BODY_TIMEOUT="1")
    flood = TricklingBodies(port_of(served), 3, length=100, every=0.5)
    runner = threading.Thread(target=flood.run, args=(time.monotonic() + 30,))
    runner.start()
    try:
        while runner.is_alive() and not (len(flood.clients) == 3
                                         and all(c.closed for c in flood.clients)):
            time.sleep(0.2)
    finally:
        flood.stop.set()
        runner.join()
    answers = [c.answer[:40] for c in flood.clients]
    assert all(c.closed for c in flood.clients), answers
    assert all(a.startswith(b"HTTP/1.1 408") for a in answers), answers
    assert served.healthz() == 200
    assert served.stop() == 0
    log = served.output()
    assert "[web] body_timeout" in log, log
    assert "Traceback" not in log and " ERROR " not in log, log


def test_a_client_gone_mid_body_is_no_server_error(
    start_serve: Callable[..., Served],  # noqa: F811
) -> None:
    """POST /login announcing 100 bytes, 7 sent, then the connection closed, ten times
    over: no ERROR line, no traceback, no warning to count towards the repeated-error
    limit; the server answers the next request."""
    served = start_serve()
    for _ in range(10):
        with socket.create_connection(("127.0.0.1", port_of(served)), timeout=10) as sock:
            sock.sendall(LOGIN_HEAD % 100 + b"email=a")
            time.sleep(0.1)  # the app is reading the body when the client goes
    time.sleep(0.5)
    assert served.healthz() == 200
    assert served.stop() == 0
    log = served.output()
    assert " ERROR " not in log and "Traceback" not in log, log
    assert "ClientDisconnect" not in log, log
    assert " WARNING " not in log, log
