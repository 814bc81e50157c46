"""The desk's front page (every list with the state of its next edition, GET /desk),
one list's draft (GET /desk/{list}), and starting that draft (POST /desk/{list}/draft).
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from digest import curate
from digest.errors import InvalidInput, NotFound
from digest.web.auth import CsrfForm, EditorUser, Viewer
from digest.web.deps import AppDep, PagesDep
from digest.web.desk.done import Done, Stale, row_id
from digest.web.desk.views import desk_home, list_not_found, render, render_draft
from subscribers.lists import get_list

router = APIRouter(include_in_schema=False)


@router.get("/desk")
def home(user: EditorUser, viewer: Viewer, app: AppDep, pages: PagesDep) -> Response:
    with app.sessions() as s:
        page = desk_home(s, app.clock())
    return render(pages, viewer, "web/desk/home.html", page)


@router.get("/desk/{list_name}")
def draft(list_name: str, user: EditorUser, viewer: Viewer, app: AppDep, pages: PagesDep,
          done: str = "", item: str = "", article: str = "", error: str = "") -> Response:
    """The draft; after a button, saying what it did (`?done=`, `item=`, `article=`: see
    done.py) with the focus on the control that did it, or why a stale button did
    nothing (`?error=`, `article=`), with the focus on that message."""
    return render_draft(app, pages, viewer, user, list_name,
                        done=Done(done, row_id(item), row_id(article)),
                        stale=Stale(error, row_id(article)))


@router.post("/desk/{list_name}/draft")
def start_draft(list_name: str, user: EditorUser, viewer: Viewer, app: AppDep,
                pages: PagesDep, _: CsrfForm) -> Response:
    error = ""
    with app.sessions() as s:
        try:
            mlist = get_list(s, list_name)
            edition = curate.draft_for(s, mlist, now=app.clock(), rules=app.edition_rules())
            s.commit()
        except NotFound as exc:
            return list_not_found(pages, exc)
        except InvalidInput as exc:  # an archived list
            error = str(exc)
        else:
            if edition is None:
                error = ("There are no new articles since the last edition, so there is "
                         "nothing to draft yet; add one by its address below")
    if error:
        return render_draft(app, pages, viewer, user, list_name, status=400, error=error)
    return RedirectResponse(f"/desk/{list_name}?done=started", status_code=303)
