"""The JSON API under /api/v1: its own FastAPI app, with its own OpenAPI and errors.

Callers authenticate with a bearer token (`Authorization: Bearer dg_…`); no cookie is
read, so there is no CSRF to guard against. Each route names the role it needs (see
`deps.route_role`); the OpenAPI document carries it as `x-required-role`. Errors are
answered here, in one JSON shape (`errors`), never by the web app's HTML pages; the
web app mounts the API with `mount_api`.

    lists.py        /lists
    members.py      /lists/{name}/subscribers
    people.py       /subscribers, /suppressions
    sources.py      /sources
    editions.py     /editions, /lists/{name}/editions and /lists/{name}/draft
    stats.py        /lists/{name}/stats
    deps.py         roles, parameters, cursors;  errors.py  the error shape
    schemas.py, edition_schemas.py   request and response bodies
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digest import __version__
from digest.app import App
from digest.models import ADMIN
from digest.web.api import editions, errors, lists, members, people, sources, stats
from digest.web.api.deps import operations, route_role
from digest.web.api.schemas import ErrorResponse

#: Larger request bodies are refused (413) before they are read: 10,000 subscribers in
#: one bulk add, with long names, fit well inside.
MAX_BODY = 8 * 1024 * 1024

DESCRIPTION = """\
Lists, subscribers, suppressions, sources, editions and their numbers.

**Authentication**: `Authorization: Bearer <token>`, a token made with
`digest users token add EMAIL`. It acts with its user's role: *editors* read lists,
sources and stats and work on editions; *admins* may do everything. Each operation
names its role in `x-required-role`. No cookies are read, so no CSRF token is needed.

**Errors** all have one shape: `{"error": {"status", "code", "message", "details"}}`.

**Pages**: collections answer `{"data": [...], "next": <cursor or null>}`; pass `next`
as `?after=` to get the following page, `?limit=` (1-500) sets its size.
"""

_ERROR = {"model": ErrorResponse}
RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {**_ERROR, "description": "No token, or one that is unknown or revoked"},
    422: {**_ERROR, "description": "The request or one of its values is not valid"},
    "default": {**_ERROR, "description": "Any other error, in the same shape"},
}


def mount_api(web: FastAPI, app: App, path: str = "/api/v1") -> FastAPI:
    """Mount the API into the web app at `path`; returns the API app.

    Starlette compiles a mount's pattern without DOTALL, so a path with an encoded
    newline (`/api/v1/subscribers/a%0A`) would not match it and would get the web
    app's HTML 404. Recompiled here, every path under `path` is the API's to answer.
    """
    api = create_api(app)
    mount = Mount(path, app=api)
    mount.path_regex = re.compile(mount.path_regex.pattern, re.DOTALL)
    web.router.routes.append(mount)
    return api


def create_api(app: App) -> FastAPI:
    """The API as its own FastAPI app, mounted at /api/v1 with its own OpenAPI."""
    api = FastAPI(title="digest API", version=__version__, description=DESCRIPTION,
                  docs_url=None, redoc_url=None, openapi_url="/openapi.json",
                  responses=RESPONSES)
    api.state.digest = app
    errors.install(api)
    for module in (lists, members, people, sources, editions, stats):
        api.include_router(module.router)
    api.add_middleware(RequestGuard)

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            api.openapi_schema = _openapi(api)
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
    return api


def _openapi(api: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with each operation's role written into it."""
    schema = get_openapi(title=api.title, version=api.version, description=api.description,
                         routes=api.routes)
    for method, path, route in operations(api):
        role = route_role(route)
        operation = schema["paths"][path][method.lower()]
        operation["x-required-role"] = role
        if role == ADMIN:
            operation["responses"]["403"] = {
                "description": "The token's user is an editor; this needs an admin",
                "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
            }
    return schema


class RequestGuard:
    """413 for a request body over MAX_BODY: by its Content-Length before reading, or
    while reading one sent without. 422 for a NUL character in the path or the query,
    which PostgreSQL could not even compare (bodies: see `schemas.Request`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if length.isdigit() and int(length) > MAX_BODY:
            await errors.error_response(413, _TOO_LARGE)(scope, receive, send)
            return
        if "\0" in scope["path"] or b"%00" in scope["query_string"]:
            nul = errors.error_response(422, "the URL may not contain NUL characters (%00)")
            await nul(scope, receive, send)
            return
        seen = 0

        async def counting() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > MAX_BODY:
                raise errors.ApiError(413, "too_large", _TOO_LARGE)
            return message

        await self.app(scope, counting, send)


_TOO_LARGE = (f"the request body is larger than {MAX_BODY // (1024 * 1024)} MiB; "
              "send fewer subscribers at a time")
