"""A real HTTP server on loopback for the gather tests, with routes each test sets."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from digest.app import App
from digest.gather.sources import SourceReport

Route = Callable[["Handler"], None]


@dataclass
class Seen:
    path: str
    headers: dict[str, str]


@dataclass
class Loopback:
    """The server's base URL, its routes, and what it saw and sent."""

    base: str
    routes: dict[str, Route] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)  # body bytes written, per path
    done: dict[str, threading.Event] = field(default_factory=dict)
    stopping: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        return self.base + path

    def route(self, path: str) -> Callable[[Route], Route]:
        def register(fn: Route) -> Route:
            self.routes[path] = fn
            self.done[path] = threading.Event()
            return fn
        return register


class Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        box = self.server.box
        path = self.path.split("?")[0]
        box.seen.append(Seen(self.path, {k.lower(): v for k, v in self.headers.items()}))
        route = box.routes.get(path)
        try:
            if route is None:
                self.send_error(404)
            else:
                route(self)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up on purpose: that is what the test checks
        finally:
            if path in box.done:
                box.done[path].set()

    def write_body(self, data: bytes) -> None:
        """Write part of the body and count it."""
        self.wfile.write(data)
        self.wfile.flush()
        box = self.server.box
        box.sent[self.path] = box.sent.get(self.path, 0) + len(data)

    def reply(self, body: bytes, status: int = 200, **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.write_body(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output clean


class _Server(ThreadingHTTPServer):
    box: Loopback


@contextmanager
def serve() -> Iterator[Loopback]:
    """A loopback server on a port of its own, until the block ends."""
    httpd = _Server(("127.0.0.1", 0), Handler)
    httpd.box = Loopback(f"http://127.0.0.1:{httpd.server_address[1]}")
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield httpd.box
    finally:
        httpd.box.stopping.set()  # slow handlers wait on this, so they end now
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def server() -> Iterator[Loopback]:
    with serve() as box:
        yield box


@pytest.fixture
def other_server() -> Iterator[Loopback]:
    """A second server, on another port: another service on the same machine."""
    with serve() as box:
        yield box


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def fetch_one(app: App, source_id: int) -> SourceReport:
    """Fetch one source through the app, as a scheduled fetch does; its report."""
    with app.sessions() as s:
        (report,) = app.fetch(s, source_id)
        return report
