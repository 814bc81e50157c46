"""The FastAPI application around one `App`: routers, security headers, error pages.

`create_app` is the one place routers are mounted. The public pages (`mail_links`,
`subscribe`, `archive`) and the site's own routes (`site`: the stylesheet, /healthz)
need no login; nor do the mail providers' webhooks (`webhooks`), which verify each
request the provider's way. The editor's desk, the admin console and the JSON API come
as routers of their own, added here, each with its own authentication dependency.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from http import HTTPStatus

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digest import __version__
from digest.app import App
from digest.db import UNAVAILABLE, reason
from digest.deadline import DEADLINE, Deadline, bound_waits
from digest.metrics import Metrics
from digest.web import (
    account,
    admin,
    archive,
    auth,
    desk,
    mail_links,
    metrics,
    site,
    subscribe,
    webhooks,
)
from digest.web.api import mount_api
from digest.web.forms import BUSY_RETRY_AFTER
from digest.web.pages import Pages

log = logging.getLogger(__name__)

# No scripts anywhere (the public pages work without them); styles only from our own
# stylesheet; forms post only back to us; no framing (clickjacking the unsubscribe
# button); no <base> tricks. Pages that need a script later widen this for themselves.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    # Token pages have the token in their URL: no Referer may carry it to another site.
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
}

_CACHEABLE = (404, 405, 410)
_MESSAGES = {
    404: ("Page not found", "There is nothing at this address. If you followed a link "
          "from an email, copy the whole link into the address bar"),
    405: ("Not allowed", "This address does not accept that kind of request"),
    413: ("Too large", "The request is larger than this page accepts"),
}


def create_app(app: App, checks: Sequence[Callable[[], str | None]] = ()) -> FastAPI:
    """The web app serving `app`'s database with its settings, clock and tokens.

    `checks` are asked by /healthz besides the database: each returns None, or what is
    wrong (`digest serve` passes its sender's)."""
    # The JSON API brings its own OpenAPI under /api/v1; the HTML pages have no schema,
    # and FastAPI's docs pages load scripts from a CDN that the CSP forbids.
    web = FastAPI(title="digest", version=__version__,
                  docs_url=None, redoc_url=None, openapi_url=None, lifespan=_threads)
    web.state.digest = app
    web.state.checks = list(checks)
    web.state.metrics = Metrics(lambda: app.sessions, app.clock,
                                app.settings["delivery.heartbeat_timeout"])
    # Built now, so a missing templates_dir or signing key stops `digest serve` at start
    # instead of failing the first reader who clicks a link.
    web.state.pages = Pages(app.templates)
    _ = app.tokens
    web.add_middleware(SecurityHeaders)
    auth.install(web)
    # Last, so outermost: the deadline runs from the request's arrival.
    web.add_middleware(RequestDeadline, timeout=app.settings["database.timeout"])
    bound_waits(app.engine, app.settings["database.timeout"])
    web.add_exception_handler(StarletteHTTPException, _http_error)
    web.add_exception_handler(RequestValidationError, _bad_request)
    for busy in UNAVAILABLE:
        web.add_exception_handler(busy, _unavailable)
    web.add_exception_handler(ClientDisconnect, _client_gone)
    web.add_exception_handler(Exception, _server_error)
    web.include_router(mail_links.router)
    web.include_router(site.router)
    web.include_router(metrics.router)
    web.include_router(subscribe.router)
    web.include_router(archive.router)
    web.include_router(auth.router)
    web.include_router(account.router)
    web.include_router(desk.router)
    web.include_router(admin.router)
    web.include_router(webhooks.router)
    mount_api(web, app)
    return web


@asynccontextmanager
async def _threads(web: FastAPI) -> AsyncIterator[None]:
    """Sync routes and `run_in_threadpool` share anyio's default limiter: at most
    `[web] threads` at once, as many as the database pool keeps connections for them
    (`App.engine`), so that no request queues in the pool behind other requests."""
    app: App = web.state.digest
    anyio.to_thread.current_default_thread_limiter().total_tokens = app.settings["web.threads"]
    yield


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every response that did not set them itself.

    A plain ASGI middleware rather than BaseHTTPMiddleware: it only edits the start
    message, never buffers a body.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RequestDeadline:
    """Gives each request a `digest.deadline.Deadline`, `timeout` seconds after it
    arrives, moved on by the time spent waiting for the client's body: the wait for a
    thread and the database's waits share that one budget, and a slow upload uses none
    of it."""

    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = Deadline(time.monotonic() + self.timeout)

        async def timed_receive() -> Message:
            began = time.monotonic()
            message = await receive()
            deadline.at += time.monotonic() - began  # the client's time, not ours
            return message

        token = DEADLINE.set(deadline)
        try:
            await self.app(scope, timed_receive, send)
        finally:
            DEADLINE.reset(token)


async def _http_error(request: Request, exc: Exception) -> Response:
    """404, 405, 413 and other HTTP errors as a page. (The JSON API, when it comes,
    answers its own errors as JSON before they get here.)"""
    assert isinstance(exc, StarletteHTTPException)
    heading, message = _MESSAGES.get(exc.status_code, (
        HTTPStatus(exc.status_code).phrase, str(exc.detail)))
    pages: Pages = request.app.state.pages
    # Only "nothing here" may be cached; a refusal can name the visitor ("you are
    # logged in as ...") or hold for them alone (401, 403, 429).
    return pages.message(exc.status_code, heading, message, headers=exc.headers,
                         private=exc.status_code not in _CACHEABLE)


async def _bad_request(request: Request, exc: Exception) -> Response:
    """A query or form value the page cannot use (`?before=abc`): a page that says
    which, not FastAPI's JSON. (The API answers its own, in its JSON shape.)"""
    assert isinstance(exc, RequestValidationError)
    names = sorted({str(err.get("loc", ("", "?"))[-1]) for err in exc.errors()})
    pages: Pages = request.app.state.pages
    return pages.message(400, "Bad request",
                         f"this page cannot use the value given for {', '.join(names)}; "
                         "go back and try again, or start from the page's own links",
                         private=True)


async def _unavailable(request: Request, exc: Exception) -> Response:
    """The database is busy or away (`digest.db.UNAVAILABLE`: a burst of writers on
    SQLite, a pool with no connection free within `[database] timeout`): 503 with
    Retry-After, logged in one line, as a burst is no bug."""
    log.warning("database busy on %s %s: %s", request.method, request.url.path, reason(exc))
    pages: Pages = request.app.state.pages
    return pages.message(503, "Busy right now",
                         "the site is too busy at this moment to finish your request; "
                         "please send it again in a few seconds",
                         private=True, headers={"Retry-After": str(BUSY_RETRY_AFTER)})


async def _client_gone(request: Request, exc: Exception) -> Response:
    """The client closed its connection before its request was in (mid-body): no one
    is left to answer, and it is no error of ours. INFO, so that it never counts among
    the repeated warnings and errors `digest.logs.ReduceRepeats` holds back."""
    log.info("client went away during %s %s", request.method, request.url.path)
    return Response(status_code=400)  # uvicorn sends nothing to a closed connection


async def _server_error(request: Request, exc: Exception) -> Response:
    # Starlette sends this from its outermost layer, outside SecurityHeaders, so the
    # headers are set here. No template: it may be the template that failed.
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    html = ("<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Error</title>"
            "<h1>Something went wrong</h1><p>The error was logged for the people who run "
            "this site. Please try again later.</p></html>")
    return HTMLResponse(html, status_code=500,
                        headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})
