"""The editor's desk (being written): for now its front page, a list of the lists."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter
from fastapi.responses import Response

from digest.web.auth import EditorUser, Viewer
from digest.web.deps import AppDep, PagesDep
from digest.web.pages import Page
from subscribers.lists import all_lists

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True, kw_only=True)
class DeskHome(Page):
    lists: list[tuple[str, str]]


@router.get("/desk")
def desk_home(user: EditorUser, session: Viewer, app: AppDep, pages: PagesDep) -> Response:
    with app.sessions() as s:
        lists = [(m.name, m.title) for m in all_lists(s)]
    return pages.render("web/desk/home.html", DeskHome(title="Desk", lists=lists),
                        viewer=session)
