"""The editor's desk (role editor or admin): each list's next edition as a draft.

    GET  /desk                       every list and the state of its next edition
    GET  /desk/{list}                the draft: items, intro, proposals, add by URL
    POST /desk/{list}/draft          start the next edition from the new articles
    POST /desk/{list}/items/{id}/…   drop, pin, move, edit (desk_actions.py)
    POST /desk/{list}/add, add-url, intro, approve, schedule, test
    GET  /desk/{list}/preview        the email at desktop and phone width (desk_preview.py)
    GET  /desk/{list}/send           "This edition goes to N subscribers", then POST

Plain forms, no scripts: each button posts a small form with the session's CSRF token
and is answered with a redirect (303) back to the desk, `?done=<what>` and an anchor at
the item; a refusal shows the desk again with the reason. The domain work is
`digest.curate`'s.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from digest import curate
from digest.errors import InvalidInput, NotFound
from digest.web import desk_actions, desk_preview
from digest.web.auth import CsrfForm, EditorUser, Viewer
from digest.web.deps import AppDep, PagesDep
from digest.web.desk_views import DONE, desk_home, list_not_found, render, render_draft
from subscribers.lists import get_list

# The largest desk form: an introduction of INTRO_MAX characters, percent-encoded
# (up to 9 bytes each), with room to spare. FastAPI reads a form before the login
# check, so without a cap a stranger's huge POST would be held in memory first.
FORM_MAX_BYTES = 256 * 1024
router = APIRouter(include_in_schema=False, max_body_size=FORM_MAX_BYTES)
router.include_router(desk_actions.router)
router.include_router(desk_preview.router)


@router.get("/desk")
def home(user: EditorUser, viewer: Viewer, app: AppDep, pages: PagesDep) -> Response:
    with app.sessions() as s:
        page = desk_home(s, app.clock())
    return render(pages, viewer, "web/desk/home.html", page)


@router.get("/desk/{list_name}")
def draft(list_name: str, user: EditorUser, viewer: Viewer, app: AppDep, pages: PagesDep,
          done: str = "") -> Response:
    return render_draft(app, pages, viewer, user, list_name, notice=DONE.get(done, ""))


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
