"""The console's front page: lists with their members, sources that need attention,
the latest editions and imports."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.gather.sources import source_label
from digest.models import Edition, EditionKind, Source
from digest.web.admin.common import AdminPage, ago, render, when
from digest.web.admin.lists import ListRow
from digest.web.admin.sources import NEVER, health
from digest.web.auth import AdminUser, Viewer
from digest.web.deps import AppDep, PagesDep
from subscribers.lists import all_lists, list_counts
from subscribers.models import ImportJob, MailingList

router = APIRouter(include_in_schema=False)
RECENT = 8


@dataclass(frozen=True)
class Attention:
    id: int
    label: str
    health: str
    failures: int
    last_error: str
    last_success: str


@dataclass(frozen=True)
class EditionRow:
    list_name: str
    number: int
    subject: str
    status: str
    when: str  # sent, started, or made


@dataclass(frozen=True)
class ImportRow:
    id: int
    list_name: str
    filename: str
    status: str
    rows: int
    created: str


@dataclass(frozen=True, kw_only=True)
class OverviewPage(AdminPage):
    """web/admin/overview.html."""

    lists: list[ListRow]
    attention: list[Attention]  # sources failing or never fetched
    editions: list[EditionRow]
    imports: list[ImportRow]


@router.get("/admin")
def overview(user: AdminUser, session: Viewer, app: AppDep, pages: PagesDep) -> Response:
    with app.sessions() as s:
        page = OverviewPage(title="Admin", lists=_lists(s), attention=_attention(s, app.clock()),
                            editions=_editions(s), imports=_imports(s))
    return render(pages, "web/admin/overview.html", page, session)


def _lists(s: Session) -> list[ListRow]:
    counts = list_counts(s)
    return [ListRow(m.name, m.title, m.language, False, counts.get(m.id, {}))
            for m in all_lists(s)]


def _attention(s: Session, now: dt.datetime) -> list[Attention]:
    found = []
    for src in s.scalars(select(Source).order_by(Source.consecutive_failures.desc(),
                                                 Source.id)):
        state = health(src)
        if state == "ok":
            continue
        found.append(Attention(src.id, source_label(src), state, src.consecutive_failures,
                               src.last_error, ago(src.last_success_at, now)))
    return sorted(found, key=lambda a: a.health == NEVER)


def _editions(s: Session) -> list[EditionRow]:
    rows = s.execute(
        select(Edition, MailingList.name).join(MailingList, MailingList.id == Edition.list_id)
        .where(Edition.kind == EditionKind.DIGEST).order_by(Edition.id.desc()).limit(RECENT))
    return [EditionRow(name, e.number, e.subject, e.status,
                       when(e.sent_at or e.send_started_at or e.created_at))
            for e, name in rows]


def _imports(s: Session) -> list[ImportRow]:
    rows = s.execute(
        select(ImportJob, MailingList.name).join(MailingList, MailingList.id == ImportJob.list_id)
        .order_by(ImportJob.id.desc()).limit(RECENT))
    return [ImportRow(job.id, name, job.filename, job.status, job.rows, when(job.created_at))
            for job, name in rows]
