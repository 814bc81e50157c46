"""Every route of the admin console, walked: strangers are sent to log in, editors are
refused, and no form is taken without its CSRF token; none of it changes anything.

(The walk reads the console's own router, through included routers, so a route added
later is checked too.)"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from digest.app import App
from digest.web import admin
from tests.web.conftest import ALICE, World, csrf
from tests.web.test_security import _snapshot, csrf_of_anonymous

# Values naming real things in `world` and `users`, so a refusal is no 404 in disguise.
PARAMS = {"list_name": "news", "subscriber_id": "1", "user_id": "2", "source_id": "1",
          "job_id": "1", "token_id": "1"}


def admin_routes(router: Any = admin.router) -> Iterator[tuple[str, str]]:
    """(method, path) of every route under `router`, included routers followed."""
    for route in router.routes:
        if isinstance(route, APIRoute):
            for method in sorted(route.methods - {"HEAD"}):
                yield method, route.path
        elif hasattr(route, "original_router"):  # FastAPI's lazily included routers
            yield from admin_routes(route.original_router)


def _url(path: str) -> str:
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: PARAMS[m.group(1)], path)


def test_the_walk_sees_every_area() -> None:
    paths = {path for _, path in admin_routes()}
    for area in ("/admin", "/admin/lists", "/admin/sources", "/admin/users",
                 "/admin/subscribers", "/admin/imports", "/admin/stats"):
        assert area in paths
    assert all(path.startswith("/admin") for path in paths)


def test_strangers_are_sent_to_log_in(app: App, web: FastAPI, world: World,
                                      users: dict[str, str]) -> None:
    before = _snapshot(app)
    with TestClient(web) as client:
        token = csrf_of_anonymous(client)
        for method, path in admin_routes():
            answer = client.request(method, _url(path), data={"csrf_token": token},
                                    follow_redirects=False)
            if method == "GET":
                assert answer.status_code == 303, (method, path, answer.status_code)
                assert answer.headers["location"].startswith("/login?next=/admin")
            else:
                assert answer.status_code == 401, (method, path, answer.status_code)
    assert _snapshot(app) == before


def test_editors_are_refused(app: App, world: World, editor_client: TestClient) -> None:
    before = _snapshot(app)
    token = csrf(editor_client)
    for method, path in admin_routes():
        answer = editor_client.request(method, _url(path), data={"csrf_token": token},
                                       follow_redirects=False)
        assert answer.status_code == 403, (method, path, answer.status_code)
        assert "This page is for admins" in answer.text
    assert _snapshot(app) == before


@pytest.mark.parametrize("token", ["missing", "empty", "foreign"])
def test_no_admin_form_is_taken_without_its_csrf_token(
        app: App, web: FastAPI, world: World, admin_client: TestClient, token: str) -> None:
    with TestClient(web) as other:
        data = {"missing": {}, "empty": {"csrf_token": ""},
                "foreign": {"csrf_token": csrf_of_anonymous(other)}}[token]
    before = _snapshot(app)
    posts = [(m, p) for m, p in admin_routes() if m != "GET"]
    assert len(posts) > 15
    for method, path in posts:
        answer = admin_client.request(method, _url(path), data=data, follow_redirects=False)
        assert answer.status_code == 403, (method, path, answer.status_code)
        assert "did not come from this site" in answer.text
    assert _snapshot(app) == before


def test_each_view_of_a_console_page_has_its_own_title(
        admin_client: TestClient, world: World) -> None:
    """WCAG 2.4.2: a filtered list, and the page asking to forget someone, are told apart
    from the unfiltered list and the person's page in tabs, history and screen readers."""
    def title(path: str) -> str:
        answer = admin_client.get(path)
        assert answer.status_code == 200, (path, answer.status_code)
        found = re.search(r"<title>(.*?)</title>", answer.text, re.S)
        assert found, path
        return html.unescape(found.group(1)).strip()

    alice = world.ids[ALICE]
    pairs = [("/admin/subscribers", "/admin/subscribers?list=news&status=confirmed"),
             ("/admin/subscribers", "/admin/subscribers?q=alice"),
             ("/admin/sources", "/admin/sources?list=news"),
             ("/admin/imports", "/admin/imports?list=news"),
             (f"/admin/subscribers/{alice}", f"/admin/subscribers/{alice}/forget")]
    for plain, narrower in pairs:
        assert title(plain) != title(narrower), (plain, narrower, title(plain))
    assert "news" in title("/admin/subscribers?list=news&status=confirmed")
    assert title(f"/admin/subscribers/{alice}/forget").startswith("Forget ")
