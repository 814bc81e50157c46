"""The site's own routes, no login: the stylesheet every page links to, and the health
check for load balancers and `digest serve`'s supervision.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from digest import heartbeat
from digest.app import App
from digest.web.deps import AppDep, PagesDep
from digest.web.pages import STYLESHEET_PATH

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)


@router.api_route("/healthz", methods=["GET", "HEAD"])
def healthz(app: AppDep, request: Request) -> Response:
    """200 {"status": "ok"} when the database answers and every check of the process
    (the sender thread's, in `digest serve`) passes; 503 with the reason otherwise."""
    try:
        with app.sessions() as s:
            s.execute(text("SELECT 1"))
    except SQLAlchemyError:
        log.exception("health check: the database did not answer")
        return _unhealthy("the database does not answer")
    problems = [p for check in request.app.state.checks if (p := check())]
    if problems:
        return _unhealthy("; ".join(problems))
    return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


def senders_check(app: App) -> Callable[[], str | None]:
    """A check for /healthz: fails when no sender (`digest worker`, `digest serve`'s
    thread) has had a heartbeat for `[delivery] heartbeat_timeout` seconds, on the App's
    clock. A database error here is the database check's to report."""
    timeout = app.settings["delivery.heartbeat_timeout"]

    def check() -> str | None:
        try:
            with app.sessions() as s:
                return heartbeat.silence(s, app.clock(), timeout)
        except SQLAlchemyError:
            return None
    return check


def _unhealthy(reason: str) -> Response:
    return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503,
                        headers={"Cache-Control": "no-store"})


@router.api_route(STYLESHEET_PATH, methods=["GET", "HEAD"])
def stylesheet(pages: PagesDep) -> Response:
    return pages.stylesheet_response()
