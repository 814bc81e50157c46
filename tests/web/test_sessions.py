"""Sessions are kept on the server: logging out ends that session in every web worker,
and only that one; anonymous visitors cost no row; expired sessions go away.

Two workers are two `App`s with their own web apps, each behind its own uvicorn on
loopback, sharing nothing but the database, as `digest serve` processes behind one proxy
would be."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
import requests
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import column, func, select, table

from digest.app import App
from digest.config import Settings
from digest.web import create_app
from digest.web.auth import COOKIE, session_serializer
from tests.conftest import Clock
from tests.loopback import uvicorn_server
from tests.web.conftest import PASSWORD, form_csrf, log_in


@pytest.fixture
def workers(app: App, settings: Settings, clock: Clock) -> Iterator[tuple[str, str]]:
    """Two web workers on the suite's database: their base URLs."""
    other = App(settings, clock=clock)
    try:
        with uvicorn_server(create_app(app)) as first, \
                uvicorn_server(create_app(other)) as second:
            yield first, second
    finally:
        other.close()


def _log_in(http: requests.Session, base: str, email: str) -> None:
    token = form_csrf(http.get(base + "/login", timeout=10).text)
    answer = http.post(base + "/login", data={"email": email, "password": PASSWORD,
                                              "csrf_token": token},
                       allow_redirects=False, timeout=10)
    assert answer.status_code == 303, answer.text


def _opens_admin(base: str, cookie: str) -> bool:
    """Whether a browser holding only `cookie` gets the console (not the login page)."""
    answer = requests.get(base + "/admin", cookies={COOKIE: cookie}, allow_redirects=False,
                          timeout=10)
    assert answer.status_code in (200, 303), answer.status_code
    return answer.status_code == 200


def test_logout_ends_that_session_in_every_worker_and_no_other(
        workers: tuple[str, str], users: dict[str, str]) -> None:
    first, second = workers
    with requests.Session() as laptop, requests.Session() as phone:
        _log_in(laptop, first, users["admin"])
        _log_in(phone, second, users["admin"])
        copied = laptop.cookies[COOKIE]  # what someone who saw the cookie could keep
        assert _opens_admin(second, copied)

        token = form_csrf(laptop.get(first + "/admin", timeout=10).text)
        out = laptop.post(first + "/logout", data={"csrf_token": token},
                          allow_redirects=False, timeout=10)
        assert out.status_code == 303

        assert not _opens_admin(first, copied)
        assert not _opens_admin(second, copied)  # the other worker knows too
        assert _opens_admin(first, phone.cookies[COOKIE])  # the phone stays logged in
        assert _opens_admin(second, phone.cookies[COOKIE])


def _sessions(app: App) -> int:
    with app.engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(table("login_sessions"))) or 0


def test_the_server_keeps_only_a_hash_of_the_session_id(
        app: App, client: TestClient, users: dict[str, str]) -> None:
    log_in(client, users["editor"])
    raw = session_serializer(app).loads(client.cookies[COOKIE])["s"]
    with app.engine.connect() as conn:
        stored = conn.scalars(select(column("token_hash"))
                              .select_from(table("login_sessions"))).all()
    assert stored == [hashlib.sha256(raw.encode()).hexdigest()]
    assert raw not in stored and len(raw) >= 40


def test_anonymous_visitors_cost_no_row(app: App, web: FastAPI, users: dict[str, str]) -> None:
    for _ in range(20):
        with TestClient(web) as stranger:
            page = stranger.get("/login")
            assert page.status_code == 200 and form_csrf(page.text)
    assert _sessions(app) == 0


def test_a_session_ends_after_twelve_hours_and_expired_rows_go(
        app: App, web: FastAPI, users: dict[str, str], clock: Clock) -> None:
    with TestClient(web) as old, TestClient(web) as new:
        log_in(old, users["editor"])
        clock.advance(hours=11, minutes=59)
        assert old.get("/desk", follow_redirects=False).status_code == 200
        clock.advance(minutes=2)
        answer = old.get("/desk", follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
        log_in(new, users["editor"])  # any login clears out what has expired
        assert _sessions(app) == 1


def test_logging_in_again_replaces_the_session(
        app: App, web: FastAPI, client: TestClient, users: dict[str, str]) -> None:
    log_in(client, users["editor"])
    first = client.cookies[COOKIE]
    token = form_csrf(client.get("/desk").text)
    answer = client.post("/login", data={"email": users["admin"], "password": PASSWORD,
                                         "csrf_token": token}, follow_redirects=False)
    assert answer.status_code == 303
    assert client.cookies[COOKIE] != first
    assert client.get("/admin").status_code == 200
    assert _sessions(app) == 1
    with TestClient(web, cookies={COOKIE: first}) as old:
        assert old.get("/desk", follow_redirects=False).status_code == 303
