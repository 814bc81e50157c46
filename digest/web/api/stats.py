"""/lists/{name}/stats: what became of each edition that went out. Editors may read it."""

from __future__ import annotations

from fastapi import APIRouter

from digest.stats import edition_stats
from digest.web.api.deps import After, Editor, Limit, ListName, int_cursor, refusals
from digest.web.api.edition_schemas import EditionNumbers
from digest.web.api.schemas import Page
from digest.web.deps import AppDep
from subscribers.lists import get_list

router = APIRouter(tags=["stats"])


@router.get("/lists/{name}/stats", responses=refusals(e404="No such list"),
            summary="Numbers per edition")
def list_stats(user: Editor, app: AppDep, name: ListName, after: After = None,
               limit: Limit = 30) -> Page[EditionNumbers]:
    """Newest first, for each edition that started sending: recipients, sent, failed,
    bounced, complained and unsubscribed. A bounce or an unsubscribe counts against the
    last edition the person got before it."""
    before = int_cursor(after)
    with app.sessions() as s:
        rows = edition_stats(s, get_list(s, name), limit=limit + 1, before=before)
    page, more = rows[:limit], len(rows) > limit
    data = [EditionNumbers.model_validate(r, from_attributes=True) for r in page]
    return Page(data=data, next=str(page[-1].number) if more else None)
