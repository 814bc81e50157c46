"""Login throttling that cannot be turned against the owner: failures count per account
and client address, with a wait that doubles, never a lock; a ceiling per account over
all addresses slows a spread-out attack, one per address over all accounts slows
credential stuffing. Time moves on the test's clock."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2 as httpx
import pytest
import requests
from fastapi import FastAPI
from fastapi.testclient import TestClient

from digest import login_throttle
from digest.app import App
from digest.config import Settings
from digest.login_throttle import Throttled
from digest.users import authenticate
from tests.conftest import Clock
from tests.loopback import uvicorn_server
from tests.web.conftest import PASSWORD, form_csrf

ATTACKER, OWNER = "203.0.113.7", "198.51.100.20"


def _login(http: requests.Session | TestClient, base: str, email: str, password: str,
           **headers: str) -> requests.Response | httpx.Response:
    """One try at the login form, as a browser sends it; `base` is "" for a TestClient."""
    token = form_csrf(http.get(base + "/login", headers=headers).text)
    data = {"email": email, "password": password, "csrf_token": token}
    if isinstance(http, TestClient):
        return http.post("/login", data=data, headers=headers, follow_redirects=False)
    return http.post(base + "/login", data=data, headers=headers, allow_redirects=False)


@pytest.fixture
def behind_proxy(web: FastAPI, settings: Settings) -> Iterator[str]:
    """The app behind a real uvicorn that trusts X-Forwarded-For from loopback, as
    `digest serve` does by default ([web] forwarded_allow_ips), so each request here is
    as if nginx on this machine forwarded it for the address in its header."""
    with uvicorn_server(web, proxy_headers=True,
                        forwarded_allow_ips=settings["web.forwarded_allow_ips"]) as url:
        yield url


def test_an_attacker_elsewhere_cannot_lock_the_owner_out(
        behind_proxy: str, users: dict[str, str]) -> None:
    admin = users["admin"]
    with requests.Session() as attacker, requests.Session() as owner:
        answers = [_login(attacker, behind_proxy, admin, f"guess {n}",
                          **{"X-Forwarded-For": ATTACKER}) for n in range(30)]
        # The owner, from home, through the same proxy, with the right password.
        answer = _login(owner, behind_proxy, admin, PASSWORD, **{"X-Forwarded-For": OWNER})
        assert answer.status_code == 303, answer.text
        assert owner.get(behind_proxy + "/admin", allow_redirects=False).status_code == 200
        # The attacker had five tries, then waits.
        assert [a.status_code for a in answers[:5]] == [400] * 5
        assert {a.status_code for a in answers[5:]} == {429}
        assert answers[5].headers["Retry-After"] == "1"


def test_an_untrusted_peer_cannot_pick_its_address(
        web: FastAPI, users: dict[str, str]) -> None:
    """A client the server does not take for its proxy may send X-Forwarded-For: it is
    ignored, so a new address in every request buys no new tries."""
    with uvicorn_server(web, proxy_headers=True, forwarded_allow_ips="192.0.2.1") as url, \
            requests.Session() as attacker:
        codes = [_login(attacker, url, users["admin"], "guess",
                        **{"X-Forwarded-For": f"203.0.113.{n}"}).status_code
                 for n in range(7)]
    assert codes == [400] * 5 + [429, 429]


def test_failures_from_one_address_wait_longer_each_time_up_to_five_minutes(
        client: TestClient, users: dict[str, str], clock: Clock) -> None:
    editor = users["editor"]
    for _ in range(5):
        assert _login(client, "", editor, "guess").status_code == 400
    waits = []
    for _ in range(11):
        refused = _login(client, "", editor, PASSWORD)  # the right one is not looked at
        assert refused.status_code == 429
        wait = int(refused.headers["Retry-After"])
        waits.append(wait)
        clock.advance(seconds=wait - 1)
        assert _login(client, "", editor, "guess").status_code == 429  # not yet
        clock.advance(seconds=1)
        assert _login(client, "", editor, "guess").status_code == 400
    assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    page = _login(client, "", editor, PASSWORD)
    assert "Try again in 5 minutes" in page.text
    clock.advance(minutes=5)
    assert _login(client, "", editor, PASSWORD).status_code == 303


def test_the_page_says_when_to_try_again(client: TestClient, users: dict[str, str]) -> None:
    for _ in range(5):
        _login(client, "", users["editor"], "guess")
    page = _login(client, "", users["editor"], "guess")
    assert page.status_code == 429
    assert "Try again in 1 second." in page.text


def test_a_successful_login_clears_that_addresses_count(
        web: FastAPI, users: dict[str, str]) -> None:
    with TestClient(web) as client:
        for _ in range(4):
            assert _login(client, "", users["editor"], "guess").status_code == 400
        assert _login(client, "", users["editor"], PASSWORD).status_code == 303
    with TestClient(web) as client:  # the same address, logged out
        codes = [_login(client, "", users["editor"], "guess").status_code for _ in range(6)]
    assert codes == [400] * 5 + [429]


def _guess(app: App, email: str, password: str, client: str, clock: Clock) -> str:
    with app.sessions() as s:
        try:
            return "in" if authenticate(s, email, password, ip=client, now=clock()) else "no"
        except Throttled as exc:
            return f"wait {exc.retry_after}"


def _failed_tries(app: App, account: str, clients: list[str], clock: Clock) -> None:
    """Wrong passwords as the throttle counts them, without the argon2 time of each
    (`authenticate` is login_throttle.begin, then the password check)."""
    with app.sessions() as s:
        for client in clients:
            login_throttle.begin(s, account, client, now=clock())


def test_a_spread_out_attack_is_slowed_and_the_owner_still_gets_in(
        app: App, users: dict[str, str], clock: Clock) -> None:
    """100 failures for one account within the hour, from 25 addresses, each below its
    own five: from then on an address that failed there waits five minutes after each
    failure, and an address that did not (the owner's) is not held up."""
    admin = users["admin"]
    _failed_tries(app, admin, [f"10.1.{n % 25}.1" for n in range(99)], clock)
    assert _guess(app, admin, "guess", "10.1.24.1", clock) == "no"  # the 100th
    assert _guess(app, admin, "guess", "10.1.0.1", clock) == "wait 300"
    assert _guess(app, admin, PASSWORD, "10.1.0.1", clock) == "wait 300"
    assert _guess(app, admin, "guess", "10.2.0.1", clock) == "no"  # a new bot: one try
    assert _guess(app, admin, "guess", "10.2.0.1", clock) == "wait 300"
    assert _guess(app, admin, PASSWORD, OWNER, clock) == "in"
    clock.advance(minutes=5)
    assert _guess(app, admin, "guess", "10.1.0.1", clock) == "no"
    clock.advance(hours=1, seconds=1)  # the failures age out of the hour
    assert [_guess(app, admin, "guess", "10.1.0.1", clock) for _ in range(2)] == ["no", "no"]


def test_one_address_trying_many_accounts_backs_off(
        app: App, users: dict[str, str], clock: Clock) -> None:
    for n in range(29):
        _failed_tries(app, f"user{n}@example.org", [ATTACKER], clock)
    assert _guess(app, "user29@example.org", "guess", ATTACKER, clock) == "no"  # the 30th
    assert _guess(app, "user99@example.org", "guess", ATTACKER, clock) == "wait 1"
    assert _guess(app, users["admin"], PASSWORD, ATTACKER, clock) == "wait 1"
    assert _guess(app, users["admin"], PASSWORD, OWNER, clock) == "in"
    clock.advance(seconds=1)
    assert _guess(app, "user99@example.org", "guess", ATTACKER, clock) == "no"
    assert _guess(app, "user98@example.org", "guess", ATTACKER, clock) == "wait 2"


def test_ipv6_clients_count_by_their_64(web: FastAPI, users: dict[str, str]) -> None:
    """One home gets a whole /64: a fresh address from it for every guess is still one
    client (digest.web.throttle.client_key)."""
    codes = []
    for n in range(6):
        with TestClient(web, client=(f"2001:db8:1:2::{n + 1:x}", 50000)) as client:
            codes.append(_login(client, "", users["editor"], "guess").status_code)
    assert codes == [400] * 5 + [429]
