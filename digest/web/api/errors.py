"""Every error of the API in one JSON shape:

    {"error": {"status": 404, "code": "not_found", "message": "list 'x' not found; ...",
               "details": [{"in": "body", "field": "email", "message": "..."}]}}

`details` lists the fields a request failed validation on (422 `invalid_request`) and is
empty otherwise. The handlers below turn FastAPI's and Starlette's errors (unknown path,
wrong method, validation), our own (`NotFound`, `InvalidInput`, ...) and anything
unexpected (500, logged, no internals shown) into that shape, before the web app's HTML
error pages could see them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from digest.db import UNAVAILABLE, reason
from digest.errors import (
    DeliveryError,
    DigestError,
    FetchError,
    InvalidInput,
    NotFound,
    NotReady,
)
from digest.web.api.deps import operations
from digest.web.forms import BUSY_RETRY_AFTER

log = logging.getLogger(__name__)

CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "too_large",
    415: "unsupported_media_type", 422: "invalid_value", 429: "too_many_requests",
    500: "server_error", 502: "bad_gateway", 503: "unavailable",
}
#: The request does not fit the schema (a missing field, a wrong type): `details` says where.
INVALID_REQUEST = "invalid_request"
MAX_DETAILS = 50


class ApiError(HTTPException):
    """An HTTP error with a `code` of its own, e.g. 409 `suppressed`."""

    def __init__(self, status: int, code: str, message: str,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status, message, dict(headers) if headers else None)
        self.code = code


def error_response(status: int, message: str, *, code: str | None = None,
                   details: Sequence[Mapping[str, Any]] = (),
                   headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The one shape of every error answer."""
    body = {"status": status, "code": code or _code(status), "message": message,
            "details": list(details)}
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def install(api: FastAPI) -> None:
    """Answer every error of `api` in the shape above."""
    api.add_exception_handler(StarletteHTTPException, _http_error)
    api.add_exception_handler(RequestValidationError, _validation_error)
    api.add_exception_handler(DigestError, _digest_error)
    api.add_exception_handler(IntegrityError, _conflict)
    for busy in UNAVAILABLE:
        api.add_exception_handler(busy, _unavailable)
    api.add_exception_handler(Exception, _server_error)


def _code(status: int) -> str:
    if status in CODES:
        return CODES[status]
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404 and not isinstance(exc, ApiError) and message == "Not Found":
        message = (f"nothing at {request.url.path}; the API's routes are listed in "
                   f"{request.scope.get('root_path', '')}/openapi.json")
    headers = exc.headers
    if exc.status_code == 405 and message == "Method Not Allowed":
        # Starlette names the methods of the first route of the path; there is one
        # route per method here.
        allowed = ", ".join(sorted(_methods_at(request)))
        headers = {**(headers or {}), "Allow": allowed}
        message = f"{request.method} is not allowed here; use {allowed}"
    return error_response(exc.status_code, message, code=getattr(exc, "code", None),
                          headers=headers)


def _methods_at(request: Request) -> set[str]:
    path = request.scope.get("path", "")
    root = request.scope.get("root_path", "")
    path = path[len(root):] if root and path.startswith(root) else path
    return {method for method, _path, route in operations(request.app)
            if route.path_regex.match(path)}


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    details = [_detail(e) for e in exc.errors()[:MAX_DETAILS]]
    shown = "; ".join(f"{d['field'] or d['in']}: {d['message']}" for d in details[:3])
    more = f" (and {len(details) - 3} more)" if len(details) > 3 else ""
    return error_response(422, f"the request is not valid: {shown}{more}",
                          code=INVALID_REQUEST, details=details)


def _detail(error: Mapping[str, Any]) -> dict[str, str]:
    where, *field = [str(part) for part in error.get("loc", ())] or ["request"]
    return {"in": where, "field": ".".join(field), "message": str(error.get("msg", ""))}


async def _digest_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, NotFound):
        return error_response(404, str(exc))
    if isinstance(exc, NotReady):  # the request is fine; the edition is not, as it stands
        return error_response(409, str(exc), code="not_ready")
    if isinstance(exc, InvalidInput):
        return error_response(422, str(exc))
    if isinstance(exc, FetchError):
        return error_response(422, str(exc), code="fetch_failed")
    if isinstance(exc, DeliveryError):
        return error_response(502, str(exc), code="delivery_failed")
    return error_response(400, str(exc))


async def _conflict(request: Request, exc: Exception) -> Response:
    # A uniqueness race with another request (two creates of one name at once).
    log.info("conflict on %s %s: %s", request.method, request.url.path, exc)
    return error_response(409, "another request changed the same thing at the same time; "
                               "read it again and retry")


async def _unavailable(request: Request, exc: Exception) -> Response:
    # The database is away, or busy for longer than [database] timeout (no connection
    # free, SQLite locked by another writer): worth trying again, unlike a bug.
    log.warning("database busy on %s %s: %s", request.method, request.url.path, reason(exc))
    return error_response(503, "the database is busy or cannot be reached; try again in a "
                               "moment", headers={"Retry-After": str(BUSY_RETRY_AFTER)})


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "something went wrong on the server; it was logged for the "
                               "people who run this site. Try again later",
                          headers={"Cache-Control": "no-store"})
