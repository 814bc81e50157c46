"""Logging in: passwords, session cookies, CSRF, roles and API tokens (throttling is in
test_login_throttle, sessions on the server in test_sessions)."""

from __future__ import annotations

import logging

import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from digest.app import App
from digest.login_throttle import PAIR_FREE, Throttled
from digest.models import User
from digest.users import (
    authenticate,
    create_user,
    make_token,
    revoke_token,
    set_disabled,
    set_password,
    token_user,
)
from digest.web.auth import COOKIE
from tests.conftest import Clock
from tests.web.conftest import PASSWORD, form_csrf, log_in


def _login(client: TestClient, email: str, password: str, **extra: str):  # type: ignore[no-untyped-def]
    token = form_csrf(client.get("/login").text)
    return client.post("/login", data={"email": email, "password": password,
                                       "csrf_token": token, **extra},
                       follow_redirects=False)


def _cookie_header(answer) -> str:  # type: ignore[no-untyped-def]
    return next(v for k, v in answer.headers.multi_items()
                if k == "set-cookie" and v.startswith(COOKIE + "="))


def test_login_sets_a_private_session_cookie_and_goes_to_the_desk(
        client: TestClient, users: dict[str, str]) -> None:
    answer = _login(client, users["editor"], PASSWORD)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/desk"
    cookie = _cookie_header(answer)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain http: a Secure cookie would never come back
    page = client.get("/login", follow_redirects=False)  # logged in: no form again
    assert page.status_code == 303


def test_cookie_is_secure_over_https(web: FastAPI, users: dict[str, str]) -> None:
    with TestClient(web, base_url="https://testserver") as client:
        assert "Secure" in _cookie_header(_login(client, users["admin"], PASSWORD))


def test_passwords_are_stored_as_argon2id(app: App, users: dict[str, str]) -> None:
    with app.sessions() as s:
        hashes = s.scalars(select(User.password_hash)).all()
    assert len(hashes) == 2
    assert all(h.startswith("$argon2id$") and PASSWORD not in h for h in hashes)


def test_wrong_password_and_unknown_address_get_the_same_answer(
        client: TestClient, users: dict[str, str]) -> None:
    wrong = _login(client, users["editor"], "not the password")
    unknown = _login(client, "nobody@example.org", "not the password")
    assert wrong.status_code == unknown.status_code == 400
    assert "do not match an account" in wrong.text
    assert wrong.text.replace(users["editor"], "X") == unknown.text.replace(
        "nobody@example.org", "X").replace(form_csrf(unknown.text), form_csrf(wrong.text))
    assert client.get("/desk", follow_redirects=False).status_code == 303


def test_login_without_the_forms_csrf_token_is_refused(
        client: TestClient, users: dict[str, str]) -> None:
    client.get("/login")
    answer = client.post("/login", data={"email": users["admin"], "password": PASSWORD},
                         follow_redirects=False)
    assert answer.status_code == 403
    assert "reload the page" in answer.text
    forged = client.post("/login", data={"email": users["admin"], "password": PASSWORD,
                                         "csrf_token": "x" * 32}, follow_redirects=False)
    assert forged.status_code == 403


def test_a_token_from_another_session_is_refused(web: FastAPI, users: dict[str, str]) -> None:
    with TestClient(web) as mallory, TestClient(web) as victim:
        token = form_csrf(mallory.get("/login").text)
        victim.get("/login")
        answer = victim.post("/login", data={"email": users["admin"], "password": PASSWORD,
                                             "csrf_token": token}, follow_redirects=False)
        assert answer.status_code == 403


def test_next_goes_back_to_the_page_but_never_off_site(
        client: TestClient, users: dict[str, str]) -> None:
    assert client.get("/desk", follow_redirects=False).headers["location"] == "/login?next=/desk"
    assert _login(client, users["editor"], PASSWORD,
                  next="/desk?list=news").headers["location"] == "/desk?list=news"
    client.post("/logout", data={"csrf_token": form_csrf(client.get("/desk").text)})
    for evil in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        assert _login(client, users["editor"], PASSWORD, next=evil).headers["location"] == "/desk"
        client.post("/logout", data={"csrf_token": form_csrf(client.get("/desk").text)})


def test_logout_needs_the_token_and_ends_the_session(
        client: TestClient, users: dict[str, str]) -> None:
    log_in(client, users["editor"])
    assert client.post("/logout", follow_redirects=False).status_code == 403
    token = form_csrf(client.get("/desk").text)
    assert client.post("/logout", data={"csrf_token": token},
                       follow_redirects=False).status_code == 303
    assert client.get("/desk", follow_redirects=False).status_code == 303


def test_tampered_cookie_is_a_stranger(client: TestClient, users: dict[str, str]) -> None:
    log_in(client, users["admin"])
    value = client.cookies[COOKIE]
    client.cookies.clear()
    client.cookies.set(COOKIE, value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    assert client.get("/desk", follow_redirects=False).status_code == 303


def test_new_password_or_disabling_ends_every_session(
        app: App, web: FastAPI, users: dict[str, str]) -> None:
    with TestClient(web) as first, TestClient(web) as second:
        log_in(first, users["editor"])
        log_in(second, users["admin"])
        with app.sessions() as s:
            editor = s.scalars(select(User).where(User.email == users["editor"])).one()
            set_password(editor, "another good password")
            admin = s.scalars(select(User).where(User.email == users["admin"])).one()
            set_disabled(admin, True)
            s.commit()
        assert first.get("/desk", follow_redirects=False).status_code == 303
        assert second.get("/desk", follow_redirects=False).status_code == 303
        assert _login(second, users["admin"], PASSWORD).status_code == 400


def test_api_tokens_are_stored_hashed_and_can_be_revoked(app: App, clock: Clock) -> None:
    with app.sessions() as s:
        user = create_user(s, "api@example.org", role="editor", password=PASSWORD, now=clock())
        row, raw = make_token(s, user, name="zapier", now=clock())
        s.commit()
        assert raw.startswith("dg_") and len(raw) > 40
        assert raw not in (row.token_hash, row.prefix) and row.prefix == raw[:8]
        found = token_user(s, raw, now=clock())
        assert found is not None and found.email == "api@example.org"
        assert token_user(s, raw[:-1] + ("A" if raw[-1] != "A" else "B"), now=clock()) is None
        revoke_token(s, row.id, now=clock())
        s.commit()
        assert token_user(s, raw, now=clock()) is None


@pytest.mark.parametrize("password", ["short", "x" * 1001])
def test_unusable_passwords_are_refused_with_advice(app: App, clock: Clock, password: str) -> None:
    from digest.errors import InvalidInput

    with app.sessions() as s, pytest.raises(InvalidInput, match="characters"):
        create_user(s, "p@example.org", role="editor", password=password, now=clock())


def test_a_disabled_account_costs_what_a_wrong_password_costs(
        app: App, clock: Clock, users: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The answer's time must not tell a disabled account, or an unknown address, from a
    wrong password: each costs exactly one argon2 verification (tens of milliseconds;
    a skipped one costs none). Counted, not timed, so a busy machine cannot fail it."""
    with app.sessions() as s:
        set_disabled(s.scalars(select(User).where(User.email == users["admin"])).one(), True)
        s.commit()
    verified: list[int] = []
    real = PasswordHasher.verify

    def counting(self: PasswordHasher, stored: str | bytes, password: str | bytes) -> bool:
        verified.append(1)
        return real(self, stored, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting)
    for n, email in enumerate((users["admin"], users["editor"], "nobody@example.org")):
        verified.clear()
        with app.sessions() as s:
            assert authenticate(s, email, PASSWORD + "x", ip=f"192.0.2.{n}", now=clock()) is None
        assert len(verified) == 1, email


def test_a_throttled_login_logs_the_typed_address_on_one_line(
        client: TestClient, users: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    forged = "x@example.org\nINFO admin@example.org logged in"
    for _ in range(PAIR_FREE):
        _login(client, forged, "wrong password")
    with caplog.at_level(logging.WARNING, logger="digest.web.auth"):
        assert _login(client, forged, "wrong password").status_code == 429
    [record] = [r for r in caplog.records if "throttled" in r.getMessage()]
    assert "\n" not in record.getMessage()


def test_a_burst_of_parallel_guesses_gets_no_more_than_the_free_ones(
        app: App, users: dict[str, str], clock: Clock) -> None:
    """Guesses sent at once must not all pass the check before any failure is saved."""
    from concurrent.futures import ThreadPoolExecutor

    def guess(n: int) -> str:
        with app.sessions() as s:
            try:
                return "checked" if authenticate(s, users["editor"], f"guess {n}",
                                                 ip="10.0.0.1", now=clock()) is None else "in"
            except Throttled:
                return "throttled"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(guess, range(3 * PAIR_FREE)))
    assert outcomes.count("checked") <= PAIR_FREE
    assert outcomes.count("throttled") >= 2 * PAIR_FREE
