"""Fixtures and checks for the JSON API tests (star-imported by tests/web/test_api*.py).

    tokens        raw bearer tokens of the `users` admin and editor
    admin_api     a TestClient sending the admin's token on every request
    editor_api    the same with the editor's token
    outbox        the messages the outbox backend delivered, as parsed mail
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx2 import Response

from digest.app import App
from digest.users import get_user, make_token
from tests.conftest import Clock

API = "/api/v1"


@pytest.fixture
def tokens(app: App, users: dict[str, str], clock: Clock) -> dict[str, str]:
    """role -> a fresh API token of that role's user."""
    made = {}
    with app.sessions() as s:
        for role, address in users.items():
            _row, raw = make_token(s, get_user(s, address), name=f"{role} tests", now=clock())
            made[role] = raw
        s.commit()
    return made


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _client(web: FastAPI, token: str) -> Iterator[TestClient]:
    with TestClient(web, base_url=f"http://testserver{API}", headers=bearer(token)) as client:
        yield client


@pytest.fixture
def admin_api(web: FastAPI, tokens: dict[str, str]) -> Iterator[TestClient]:
    yield from _client(web, tokens["admin"])


@pytest.fixture
def editor_api(web: FastAPI, tokens: dict[str, str]) -> Iterator[TestClient]:
    yield from _client(web, tokens["editor"])


@pytest.fixture
def anonymous_api(web: FastAPI) -> Iterator[TestClient]:
    with TestClient(web, base_url=f"http://testserver{API}") as client:
        yield client


def error_of(answer: Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The error of an answer, after checking it has the API's one error shape."""
    assert answer.status_code == status, (answer.status_code, answer.text)
    assert answer.headers["content-type"] == "application/json", answer.headers
    body = answer.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"status", "code", "message", "details"}, error
    assert error["status"] == status
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["details"], list)
    if code is not None:
        assert error["code"] == code, error
    return error


def mail_in(app: App) -> list[EmailMessage]:
    """Every message the outbox backend has delivered so far."""
    folder = Path(app.settings["delivery.outbox_dir"]) / "new"
    if not folder.is_dir():
        return []
    return [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
            for path in sorted(folder.iterdir())]


def sent_to(app: App) -> list[str]:
    """The address each delivered message went to, in the order they were written."""
    return [parseaddr(str(m["To"]))[1] for m in mail_in(app)]


def walk_pages(client: TestClient, url: str, **params: Any) -> tuple[list[Any], int]:
    """Every item of a paginated collection, following `next`; and how many pages."""
    items: list[Any] = []
    pages = 0
    after = None
    while True:
        answer = client.get(url, params={**params, **({"after": after} if after else {})})
        assert answer.status_code == 200, answer.text
        page = answer.json()
        pages += 1
        items.extend(page["data"])
        after = page["next"]
        if after is None:
            return items, pages
        assert pages < 1000, "the pages never end"


__all__ = ["API", "admin_api", "anonymous_api", "bearer", "editor_api", "error_of", "mail_in",
           "sent_to", "tokens", "walk_pages"]
