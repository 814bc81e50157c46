"""The site's own routes, no login: the stylesheet every page links to, the health
check for load balancers and `digest serve`'s supervision, and the sample photos that
mail from `digest demo` shows.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from digest import heartbeat
from digest.app import App
from digest.demo import IMAGES, IMAGES_PATH
from digest.web.deps import AppDep, PagesDep
from digest.web.pages import STYLESHEET_PATH

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
# A folder and a file of digest/demo/images: nothing that could climb out of it.
_DEMO_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")


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


@router.api_route(IMAGES_PATH + "{folder}/{name}.jpg", methods=["GET", "HEAD"])
def demo_image(folder: str, name: str) -> Response:
    """A photo of the demo's sample articles (digest/demo/images), public and cached."""
    path = IMAGES / folder / f"{name}.jpg"
    if not (_DEMO_NAME.fullmatch(folder) and _DEMO_NAME.fullmatch(name) and path.is_file()):
        raise HTTPException(status_code=404)
    return Response(path.read_bytes(), media_type="image/jpeg",
                    headers={"Cache-Control": "public, max-age=86400"})
