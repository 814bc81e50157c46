"""Edition stats in the console: per list, a table of each edition's numbers (see
`digest.stats` for what each counts) and a small chart over time (`chart`)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter
from fastapi.responses import Response

from digest.stats import EditionStats, edition_stats
from digest.web.admin.chart import Chart, chart
from digest.web.admin.common import AdminPage, list_or_404, render
from digest.web.auth import AdminUser, Viewer
from digest.web.deps import AppDep, PagesDep
from subscribers.lists import all_lists

router = APIRouter(include_in_schema=False)
#: Editions per list on the page of all lists, and on one list's page.
OVERVIEW_EDITIONS, LIST_EDITIONS = 12, 30


@dataclass(frozen=True)
class ListStats:
    name: str
    title: str
    language: str
    rows: list[EditionStats]  # newest first
    chart: Chart | None
    older: int | None  # `before` of the next page of older editions; None: no more


@dataclass(frozen=True, kw_only=True)
class StatsPage(AdminPage):
    """web/admin/stats.html: one section per list; `single` on one list's page."""

    lists: list[ListStats]
    single: bool
    paged: bool = False


@router.get("/admin/stats")
def stats_page(user: AdminUser, session: Viewer, app: AppDep, pages: PagesDep) -> Response:
    with app.sessions() as s:
        sections = []
        for mlist in all_lists(s):
            rows = edition_stats(s, mlist, limit=OVERVIEW_EDITIONS + 1)
            sections.append(_section(mlist.name, mlist.title, mlist.language, rows,
                                     OVERVIEW_EDITIONS))
    page = StatsPage(title="Edition stats", section="stats", lists=sections, single=False)
    return render(pages, "web/admin/stats.html", page, session)


@router.get("/admin/stats/{list_name}")
def list_stats_page(list_name: str, user: AdminUser, session: Viewer, app: AppDep,
                    pages: PagesDep, before: int | None = None) -> Response:
    with app.sessions() as s:
        mlist = list_or_404(s, list_name)
        rows = edition_stats(s, mlist, limit=LIST_EDITIONS + 1, before=before)
        section = _section(mlist.name, mlist.title, mlist.language, rows, LIST_EDITIONS)
    page = StatsPage(title=f"Stats of {list_name}", section="stats", lists=[section],
                     single=True, paged=before is not None)
    return render(pages, "web/admin/stats.html", page, session)


def _section(name: str, title: str, language: str, rows: list[EditionStats],
             limit: int) -> ListStats:
    shown = rows[:limit]
    older = shown[-1].number if len(rows) > limit else None
    return ListStats(name, title, language, shown, chart(shown, name), older)
