"""The web app over the suite's `app` (SQLite, and PostgreSQL when CI starts one), with
tokens signed on the test's clock; an in-process client; a real uvicorn on loopback;
and two people on two lists.

    world: news (en) and sport (ko)
      alice@example.org  news: confirmed   sport: confirmed
      bob@example.net    news: pending
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from digest.app import App
from digest.web import create_app
from subscribers.lists import create_list
from subscribers.members import add_member
from subscribers.models import Membership, Subscriber
from subscribers.suppress import is_suppressed_address
from subscribers.tokens import Purpose, Tokens
from tests.conftest import Clock

ALICE, BOB = "alice@example.org", "bob@example.net"


class World:
    """The people and lists of a test, and what the database says about them now."""

    def __init__(self, app: App, clock: Clock) -> None:
        self.app = app
        now = clock()
        with app.sessions() as s:
            news = create_list(s, "news", title="Morning News", from_addr="News <n@example.org>")
            sport = create_list(s, "sport", title="스포츠 소식", language="ko",
                                from_addr="Sport <s@example.org>")
            add_member(s, news, ALICE, confirmed=True, now=now)
            add_member(s, sport, ALICE, confirmed=True, now=now)
            add_member(s, news, BOB, now=now)
            s.commit()
            self.lists = {"news": news.id, "sport": sport.id}
            rows = s.execute(select(Subscriber.email, Subscriber.id))
            self.ids: dict[str, int] = {email: sid for email, sid in rows}

    def token(self, purpose: Purpose, email: str, list_name: str) -> str:
        """The token the app would put in mail to `email` about `list_name`."""
        return self.app.tokens.make(purpose, self.ids[email], self.lists[list_name], email)

    def member(self, email: str, list_name: str) -> Membership:
        """The membership as stored now (detached; read its columns)."""
        with self.app.sessions() as s:
            membership = s.scalars(select(Membership).where(
                Membership.subscriber_id == self.ids[email],
                Membership.list_id == self.lists[list_name])).one()
            return membership

    def status(self, email: str, list_name: str) -> str:
        return self.member(email, list_name).status

    def statuses(self) -> dict[tuple[str, str], str]:
        """(email, list) -> status, for every membership: to check nothing else moved."""
        with self.app.sessions() as s:
            rows = s.execute(
                select(Subscriber.email, Membership.list_id, Membership.status)
                .join(Membership.subscriber))
            names = {v: k for k, v in self.lists.items()}
            return {(email, names[lid]): status for email, lid, status in rows}

    def suppressed(self, email: str) -> bool:
        with self.app.sessions() as s:
            return is_suppressed_address(s, email)


@pytest.fixture
def web(app: App, clock: Clock) -> FastAPI:
    # Tokens on the test's clock, so a link can expire without sleeping a week.
    app.tokens = Tokens("web-test-key", clock=lambda: clock().timestamp())
    return create_app(app)


@pytest.fixture
def client(web: FastAPI) -> Iterator[TestClient]:
    """The app in-process over ASGI; server errors raise in the test."""
    with TestClient(web) as client:
        yield client


@pytest.fixture
def world(app: App, clock: Clock) -> World:
    return World(app, clock)


@pytest.fixture
def live_url(web: FastAPI) -> Iterator[str]:
    """The app served by a real uvicorn on 127.0.0.1, on a free port, for this test."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(web, lifespan="off", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
