"""Email providers' HTTP APIs on loopback, each written to its provider's documented
requests, answers and errors (see each module's docstring for the pages).

`FakeApi` is what they share: a threaded http.server on 127.0.0.1 that records every
request it reads and can be told to misbehave for the next calls (`trouble`): answer a
given status with given headers (429 with or without Retry-After, 500), read the whole
request and then never answer (`HANG`), or read it and close the connection (`CLOSE`).
"""

from __future__ import annotations

import json
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANG = "hang"
CLOSE = "close"


@dataclass(frozen=True)
class Call:
    """One request the fake read whole."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_answer(status: int, data: Any, **headers: str) -> Answer:
    return Answer(status, json.dumps(data).encode(),
                  {"Content-Type": "application/json", **headers})


class FakeApi:
    """A provider's API on 127.0.0.1 (subclasses answer in `answer`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[Call] = []
        self._trouble: deque[Answer | str] = deque()
        self._release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the providers do

            def setup(self) -> None:
                super().setup()
                # Head and body are two writes: without this, Nagle holds the body back
                # for the client's delayed ACK (40 ms a call on Linux).
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                call = Call("POST", self.path, {k.lower(): v for k, v in self.headers.items()},
                            self.rfile.read(length))
                with fake.lock:
                    fake.calls.append(call)
                    trouble = fake._trouble.popleft() if fake._trouble else None
                if trouble == HANG:
                    fake._release.wait(30)
                    self.close_connection = True
                    return
                if trouble == CLOSE:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                answer = trouble if isinstance(trouble, Answer) else fake.answer(call)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    def trouble(self, *answers: Answer | str) -> None:
        """The next calls get these (an Answer, HANG or CLOSE) instead of the usual."""
        with self.lock:
            self._trouble.extend(answers)

    def answer(self, call: Call) -> Answer:
        raise NotImplementedError


def closed_port() -> int:
    """A loopback port nothing listens on: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def form_fields(call: Call) -> list[tuple[str, bytes, str]]:
    """A multipart/form-data body as (name, value, filename) in order."""
    head = f"Content-Type: {call.headers['content-type']}\r\n\r\n".encode()
    parsed = message_from_bytes(head + call.body, policy=policy.HTTP)
    out = []
    for part in parsed.iter_parts():
        assert isinstance(part, EmailMessage)
        disposition = part.get("Content-Disposition", "")
        params = dict(part.get_params(header="content-disposition") or [])
        name, filename = params.get("name", ""), params.get("filename", "")
        assert disposition.startswith("form-data"), disposition
        payload = part.get_payload(decode=True)
        out.append((str(name), payload if isinstance(payload, bytes) else b"", str(filename)))
    return out
