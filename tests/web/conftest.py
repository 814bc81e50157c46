"""The web app over the suite's `app` (SQLite, and PostgreSQL when CI starts one), with
tokens signed on the test's clock; an in-process client; a real uvicorn on loopback;
and two people on two lists.

    world: news (en) and sport (ko)
      alice@example.org  news: confirmed   sport: confirmed
      bob@example.net    news: pending
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from digest.app import App
from digest.publication import create_list
from digest.sender import Sender
from digest.users import create_user
from digest.web import create_app
from digest.web.auth import COOKIE as SESSION_COOKIE
from digest.web.auth import session_serializer
from subscribers.members import add_member
from subscribers.models import Membership, Subscriber
from subscribers.suppress import is_suppressed_address
from subscribers.tokens import Purpose, Tokens
from tests.conftest import Clock
from tests.loopback import uvicorn_server
from tests.web.axe import pytest_terminal_summary  # noqa: F401  (a hook: axe's summary)
from tests.web.browser import *  # noqa: F403  (browser, page, phone, artifacts)

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
        """The token the app would put in mail to `email` about `list_name` now (a
        confirm link names the membership's current sign-up, as the sender's does)."""
        signup = self.member(email, list_name).signup if purpose == "confirm" else None
        return self.app.tokens.make(purpose, self.ids[email], self.lists[list_name], email,
                                    signup=signup)

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
def live_url(web: FastAPI, app: App) -> Iterator[str]:
    """The app served by a real uvicorn on 127.0.0.1, on a free port, for this test,
    with a sender thread that delivers what it queues, as in `digest serve`."""
    stop = threading.Event()
    sender = Sender(app, stop, poll_seconds=0.1, restart_seconds=0.1)
    web.state.checks.append(sender.problem)
    sender.start()
    try:
        with uvicorn_server(web) as url:
            yield url
    finally:
        stop.set()
        sender.join(10)


# -- users and logged-in clients ---------------------------------------------------------

PASSWORD = "correct horse battery staple"
ADMIN_EMAIL, EDITOR_EMAIL = "admin@example.org", "editor@example.org"


@pytest.fixture
def users(app: App, clock: Clock) -> dict[str, str]:
    """An admin and an editor, both with PASSWORD: role -> email."""
    with app.sessions() as s:
        create_user(s, ADMIN_EMAIL, role="admin", password=PASSWORD, name="Ada Admin",
                    now=clock())
        create_user(s, EDITOR_EMAIL, role="editor", password=PASSWORD, name="Ed Editor",
                    now=clock())
        s.commit()
    return {"admin": ADMIN_EMAIL, "editor": EDITOR_EMAIL}


def flat_routes(routes: list[Any]) -> Iterator[Any]:
    """Every route, looking inside included routers (FastAPI keeps each included router
    whole, as `original_router`)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        yield from (flat_routes(inner.routes) if inner is not None else [route])


def form_csrf(html: str) -> str:
    """The csrf_token of the first form in a page, as a browser would send it."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


def log_in(client: TestClient, email: str, password: str = PASSWORD) -> None:
    page = client.get("/login")
    answer = client.post("/login", data={"email": email, "password": password,
                                          "csrf_token": form_csrf(page.text)},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text


def csrf(client: TestClient) -> str:
    """The CSRF token of `client`'s session, as every page's forms carry it."""
    app: App = client.app.state.digest  # type: ignore[attr-defined]
    data = session_serializer(app).loads(client.cookies[SESSION_COOKIE])
    token: str = data["c"]
    return token


def _logged_in(web: FastAPI, email: str) -> Iterator[TestClient]:
    with TestClient(web) as client:
        log_in(client, email)
        yield client


@pytest.fixture
def editor_client(web: FastAPI, users: dict[str, str]) -> Iterator[TestClient]:
    yield from _logged_in(web, users["editor"])


@pytest.fixture
def admin_client(web: FastAPI, users: dict[str, str]) -> Iterator[TestClient]:
    yield from _logged_in(web, users["admin"])
