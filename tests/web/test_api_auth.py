"""Who may call what in the JSON API, walked over every route of the running API app, and
the one error shape of every refusal.

The role of each route is read from its dependencies (`route_role`), the check that is
enforced, so a route added later is walked too, and one added without a role fails
`test_every_route_names_its_role`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, inspect, select, table
from starlette.routing import Mount

from digest.app import App
from digest.models import ADMIN, EDITOR
from digest.users import get_user, revoke_token, set_disabled
from digest.web.api import MAX_BODY
from digest.web.api.deps import operations, route_role
from tests.conftest import Clock
from tests.web.api_support import *  # noqa: F403
from tests.web.api_support import API, bearer, error_of
from tests.web.conftest import ALICE, World

# Values naming real things in `world`, so that a refusal cannot be a 404 in disguise.
PARAMS = {"name": "news", "email": ALICE, "address": ALICE}


def api_app(web: FastAPI) -> FastAPI:
    """The API app mounted in the web app."""
    [mount] = [r for r in web.routes if isinstance(r, Mount) and r.path == API]
    api = mount.app  # type: ignore[attr-defined]
    assert isinstance(api, FastAPI)
    return api


def api_routes(web: FastAPI) -> Iterator[tuple[str, str, str | None]]:
    """(method, path, role) of every operation of the API."""
    for method, path, route in operations(api_app(web)):
        yield method, path, route_role(route)


def url(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PARAMS.get(m.group(1), "1"), path)


def snapshot(app: App) -> dict[str, int]:
    """Rows per table (but api_tokens' last use, which a valid token updates)."""
    with app.engine.connect() as conn:
        names = [n for n in inspect(conn).get_table_names() if n != "alembic_version"]
        return {n: conn.execute(select(func.count()).select_from(table(n))).scalar_one()
                for n in names}


def test_every_route_names_its_role(web: FastAPI) -> None:
    routes = list(api_routes(web))
    assert len(routes) > 20
    assert [(m, p) for m, p, role in routes if role is None] == []
    roles = {(m, p): role for m, p, role in routes}
    # A few that must not drift.
    assert roles["GET", "/lists"] == EDITOR
    assert roles["POST", "/lists"] == ADMIN
    assert roles["GET", "/lists/{name}/subscribers"] == ADMIN
    assert roles["DELETE", "/subscribers/{email}"] == ADMIN
    assert roles["GET", "/sources"] == EDITOR


def test_the_openapi_document_names_each_role_and_the_bearer_scheme(
        anonymous_api: TestClient, web: FastAPI) -> None:
    schema = anonymous_api.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": schema["components"]
        ["securitySchemes"]["bearerAuth"]["description"]}
    for method, path, role in api_routes(web):
        operation = schema["paths"][path][method.lower()]
        assert operation["x-required-role"] == role, (method, path)
        assert operation["security"] == [{"bearerAuth": []}], (method, path)
        assert "401" in operation["responses"]
        assert ("403" in operation["responses"]) == (role == ADMIN), (method, path)


@pytest.mark.parametrize("header", [
    None, "Bearer", "Bearer dg_not-a-token", "Basic YWRtaW46cGFzcw==", "bearer  "])
def test_strangers_get_401_everywhere_and_change_nothing(
        app: App, web: FastAPI, world: World, anonymous_api: TestClient,
        header: str | None) -> None:
    before = snapshot(app)
    headers = {"Authorization": header} if header else {}
    for method, path, _role in api_routes(web):
        answer = anonymous_api.request(method, url(path), headers=headers, json={})
        error = error_of(answer, 401, "unauthorized")
        assert "Authorization: Bearer" in error["message"]
        assert answer.headers["www-authenticate"] == "Bearer", (method, path)
    assert snapshot(app) == before


def test_editors_get_403_on_every_admin_route_and_change_nothing(
        app: App, web: FastAPI, world: World, editor_api: TestClient) -> None:
    admin_only = [(m, p) for m, p, role in api_routes(web) if role == ADMIN]
    assert len(admin_only) > 10
    before = snapshot(app)
    for method, path in admin_only:
        error = error_of(editor_api.request(method, url(path), json={}), 403, "forbidden")
        assert error["message"] == "this needs the admin role; the token's user is an editor"
    assert snapshot(app) == before


def test_editors_pass_the_role_check_on_editor_routes(
        web: FastAPI, world: World, editor_api: TestClient) -> None:
    for method, path, role in api_routes(web):
        if role == EDITOR:
            answer = editor_api.request(method, url(path), json={})
            assert answer.status_code not in (401, 403), (method, path, answer.text)


@pytest.mark.parametrize("how", ["revoked", "disabled"])
def test_a_revoked_token_or_a_disabled_user_is_refused(
        app: App, world: World, admin_api: TestClient, tokens: dict[str, str],
        users: dict[str, str], clock: Clock, how: str) -> None:
    assert admin_api.get("/lists").status_code == 200
    with app.sessions() as s:
        user = get_user(s, users["admin"])
        if how == "revoked":
            for token in user.tokens:
                revoke_token(s, token.id, now=clock())
        else:
            set_disabled(user, True)
        s.commit()
    error_of(admin_api.get("/lists"), 401, "unauthorized")


def test_session_cookies_do_not_open_the_api(
        admin_client: TestClient, world: World) -> None:
    """The API reads tokens only: a logged-in browser (whose cookie a foreign page
    could make it send) gets nothing, so there is no CSRF to defend against."""
    error_of(admin_client.get(f"{API}/lists"), 401, "unauthorized")
    error_of(admin_client.post(f"{API}/lists", json={"name": "x", "from_addr": "x@x.org"}),
             401, "unauthorized")


# -- the one error shape ----------------------------------------------------------------


def test_unknown_paths_and_methods_answer_in_the_error_shape(
        anonymous_api: TestClient, admin_api: TestClient, world: World) -> None:
    error = error_of(admin_api.get("/nothing/here"), 404, "not_found")
    assert "/api/v1/openapi.json" in error["message"]
    error_of(anonymous_api.get("/nothing/here"), 404, "not_found")
    # A newline in the path reaches the API too, not the web app's HTML page (see
    # `mount_api`): here it says the address is not one.
    error = error_of(admin_api.get("/subscribers/a%0A@example.org"), 422, "invalid_value")
    assert "is not a valid email address" in error["message"]
    error = error_of(admin_api.put("/lists"), 405, "method_not_allowed")
    assert error["message"] == "PUT is not allowed here; use GET, POST"


def test_a_body_that_is_not_json_is_a_422(admin_api: TestClient, world: World) -> None:
    answer = admin_api.post("/lists", content=b"{not json",
                            headers={"Content-Type": "application/json"})
    error = error_of(answer, 422, "invalid_request")
    assert error["details"][0]["in"] == "body"


def test_a_body_too_large_is_a_413(admin_api: TestClient, world: World) -> None:
    big = b'{"subscribers": [' + b" " * MAX_BODY + b"]}"
    answer = admin_api.post("/lists/news/subscribers/bulk", content=big,
                            headers={"Content-Type": "application/json"})
    error = error_of(answer, 413, "too_large")
    assert "8 MiB" in error["message"]


def test_a_server_error_is_a_500_in_the_shape_without_internals(
        web: FastAPI, tokens: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> None:
        raise RuntimeError("secret internals")

    api_app(web).add_api_route("/broken", broken)
    with TestClient(web, raise_server_exceptions=False) as client:
        answer = client.get(f"{API}/broken", headers=bearer(tokens["admin"]))
    error = error_of(answer, 500, "server_error")
    assert "secret" not in answer.text
    assert "something went wrong on the server" in error["message"]
    assert "secret internals" in caplog.text  # logged for the people who run the site
