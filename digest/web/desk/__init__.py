"""The editor's desk under /desk (role editor or admin): each list's next edition as a
draft. The router is assembled here; the routes are in one module per part.

    drafts.py    GET  /desk              every list and the state of its next edition
                 GET  /desk/{list}       the draft: items, intro, proposals, add by URL
                 POST /desk/{list}/draft start the next edition from the new articles
    actions.py   the buttons: POST /desk/{list}/items/{id}/drop, pin, move, edit, and
                 POST /desk/{list}/add, add-url, intro, approve, schedule, test, fit
    preview.py   GET  /desk/{list}/preview   the email at desktop and phone width
                 GET  /desk/{list}/send      "This edition goes to N subscribers", then POST
    views.py     what the desk's templates are given, and rendering a desk page
    done.py      what the desk says after a button, and where the focus lands

Plain forms, no scripts: each button posts a small form with the session's CSRF token
and is answered with a redirect (303) back to the desk, `?done=<what>&item=<id>`, which
says what it did and puts the focus back on the button (done.py); a refusal shows the
desk again with the reason, naming the article and marking its field, what was typed
kept ("Make it fit" shows the desk at once, saying what it did); a button from a page
that is out of date (its article or edition gone) is answered with a redirect to the
desk saying so, `?error=<code>&article=<id>`.
The domain work is `digest.curate`'s.
"""

from __future__ import annotations

from fastapi import APIRouter

from digest.web.desk import actions, drafts, preview

# The largest desk form: an introduction of INTRO_MAX characters, percent-encoded
# (up to 9 bytes each), with room to spare. FastAPI reads a form before the login
# check, so without a cap a stranger's huge POST would be held in memory first.
FORM_MAX_BYTES = 256 * 1024
router = APIRouter(include_in_schema=False, max_body_size=FORM_MAX_BYTES)
for module in (actions, preview, drafts):
    router.include_router(module.router)
