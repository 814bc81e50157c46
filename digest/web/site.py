"""The site's own routes, no login: the front page (the address every mail's footer
names), the stylesheet every page links to, the health check for load balancers and
`digest serve`'s supervision, and the sample photos that mail from `digest demo` shows.

The front page shows each public, active list with its description, a sign-up form of
its own (the sign-up form's template, web/_signup_form.html, posting to
/subscribe/<name> with the same signed form token) and its latest sent edition, and a
quiet line of links for staff.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from digest import heartbeat
from digest.app import App
from digest.demo import IMAGES, IMAGES_PATH
from digest.web.archive import latest_editions
from digest.web.deps import AppDep, PagesDep
from digest.web.pages import STYLESHEET_PATH, Page
from digest.web.public_views import EditionLink, ListChoice
from digest.web.subscribe import choice, form_token
from digest.web.words import page_language, words
from subscribers.lists import all_lists

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
# A folder and a file of digest/demo/images: nothing that could climb out of it.
_DEMO_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")


@dataclass(frozen=True, kw_only=True)
class FrontList:
    """One public list on the front page, with what web/_signup_form.html needs for its
    form (one list, sent as a hidden field) in the list's own language (`lang`,
    `words`); `latest` its last sent edition, if any."""

    lists: list[ListChoice]
    lang: str
    words: Mapping[str, str]
    form_token: str
    action: str
    latest: EditionLink | None
    archive_url: str
    chosen: frozenset[str] = frozenset()
    email: str = ""
    name: str = ""
    error_field: str = ""

    @property
    def mailing_list(self) -> ListChoice:
        return self.lists[0]


@dataclass(frozen=True, kw_only=True)
class FrontPage(Page):
    """web/front.html: the site's name and its public lists."""

    site_name: str
    lists: list[FrontList]


@router.api_route("/", methods=["GET", "HEAD"])
def front_page(request: Request, app: AppDep, pages: PagesDep) -> Response:
    """The site's own address, which every mail's footer names: the public lists, each
    with a sign-up form and its latest edition; links for staff."""
    token = form_token(request)  # one signed token serves every form
    with app.sessions() as s:
        public = sorted((m for m in all_lists(s) if m.public),
                        key=lambda m: (m.title.casefold(), m.name))
        latest = latest_editions(s, public)
        shown = [FrontList(lists=[choice(m)], lang=page_language(m.language),
                           words=words(m.language), form_token=token,
                           action=f"/subscribe/{m.name}", latest=latest.get(m.id),
                           archive_url=f"/archive/{m.name}")
                 for m in public]
    site = urlsplit(app.settings["public_url"]).hostname or "Newsletters"
    # private: the forms hold a dated token.
    return pages.render("web/front.html", FrontPage(title=site, site_name=site, lists=shown),
                        private=True)


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
