"""Every page behind a login, walked route by route: strangers are sent to log in,
editors are kept out of the console, and no form is taken without its CSRF token.

The routes are read from the running app, so a page added later is checked too; the
database is compared before and after, so a refusal that still changed something fails.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import func, inspect, select, table

from digest.app import App
from tests.web.conftest import World, csrf, flat_routes

EDITOR_PREFIX, ADMIN_PREFIX = "/desk", "/admin"
# A value for each path parameter that names something real in `world`, so a refusal
# cannot be a 404 in disguise.
PARAMS = {"list_name": "news", "name": "news"}


def _routes(web: FastAPI, prefix: str) -> Iterator[tuple[str, str]]:
    for route in flat_routes(web.routes):
        if isinstance(route, APIRoute) and (route.path == prefix
                                            or route.path.startswith(prefix + "/")):
            for method in sorted(route.methods - {"HEAD"}):
                yield method, route.path


def _url(path: str) -> str:
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: PARAMS.get(m.group(1), "1"), path)


def _snapshot(app: App) -> dict[str, int]:
    """Rows per table, but for login_failures (counting them is the point of a login)."""
    with app.engine.connect() as conn:
        names = [n for n in inspect(conn).get_table_names()
                 if n not in ("login_failures", "alembic_version")]
        return {n: conn.execute(select(func.count()).select_from(table(n))).scalar_one()
                for n in names}


def _all(web: FastAPI) -> list[tuple[str, str]]:
    return [*_routes(web, EDITOR_PREFIX), *_routes(web, ADMIN_PREFIX)]


def test_the_walk_finds_the_desk_and_the_console(web: FastAPI) -> None:
    paths = {path for _, path in _all(web)}
    assert EDITOR_PREFIX in paths
    assert ADMIN_PREFIX in paths or any(p.startswith(ADMIN_PREFIX) for p in paths)


def test_strangers_are_sent_to_log_in_and_change_nothing(
        app: App, web: FastAPI, world: World, users: dict[str, str]) -> None:
    before = _snapshot(app)
    with TestClient(web) as client:
        token = csrf_of_anonymous(client)
        for method, path in _all(web):
            url = _url(path)
            answer = client.request(method, url, data={"csrf_token": token},
                                    follow_redirects=False)
            if method == "GET":
                assert answer.status_code == 303, (method, url, answer.status_code)
                assert answer.headers["location"].startswith("/login?next="), url
            else:
                assert answer.status_code in (401, 403), (method, url, answer.status_code)
    assert _snapshot(app) == before


def test_editors_cannot_reach_the_console(
        app: App, web: FastAPI, world: World, editor_client: TestClient) -> None:
    before = _snapshot(app)
    token = csrf(editor_client)
    routes = list(_routes(web, ADMIN_PREFIX))
    assert routes
    for method, path in routes:
        url = _url(path)
        answer = editor_client.request(method, url, data={"csrf_token": token},
                                       follow_redirects=False)
        assert answer.status_code == 403, (method, url, answer.status_code)
    assert _snapshot(app) == before


@pytest.mark.parametrize("who", ["editor", "admin"])
def test_no_form_is_taken_without_its_csrf_token(
        app: App, web: FastAPI, world: World, users: dict[str, str], who: str,
        request: pytest.FixtureRequest) -> None:
    client: TestClient = request.getfixturevalue(f"{who}_client")
    prefixes = [EDITOR_PREFIX] if who == "editor" else [EDITOR_PREFIX, ADMIN_PREFIX]
    posts = [(m, p) for prefix in prefixes for m, p in _routes(web, prefix) if m != "GET"]
    assert posts
    before = _snapshot(app)
    with TestClient(web) as other:
        foreign = csrf_of_anonymous(other)
    for method, path in posts:
        url = _url(path)
        for data in ({}, {"csrf_token": ""}, {"csrf_token": foreign}):
            answer = client.request(method, url, data=data, follow_redirects=False)
            assert answer.status_code == 403, (method, url, data, answer.status_code)
            assert "did not come from this site" in answer.text
    assert _snapshot(app) == before


def csrf_of_anonymous(client: TestClient) -> str:
    """The token an anonymous visitor's forms carry (from the login page)."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert match
    return match.group(1)
