"""/sources: feeds with their health. Editors read; admins add and remove."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from digest.errors import NotFound
from digest.gather.sources import add_source
from digest.models import Article, ListSource, Source
from digest.web.api.deps import Admin, After, Editor, Id, Limit, answer, int_cursor, refusals
from digest.web.api.schemas import Page, SourceAdd, SourceAdded, SourceOut
from digest.web.deps import AppDep
from subscribers.lists import get_list
from subscribers.models import MailingList

router = APIRouter(tags=["sources"])
NOT_FOUND = refusals(e404="No such source (or list)")


@router.get("/sources", summary="Sources and their health")
def sources_index(
    user: Editor, app: AppDep, after: After = None, limit: Limit = 50,
    list_name: Annotated[str | None, Query(alias="list", max_length=64,
                                           description="Only those feeding this list")] = None,
) -> Page[SourceOut]:
    """By id: the last fetch, the last success, the last error and how many fetches
    in a row failed (a fetch round backs off from a failing source)."""
    start = int_cursor(after)
    with app.sessions() as s:
        stmt = select(Source).order_by(Source.id).limit(limit + 1)
        if list_name is not None:
            mlist = get_list(s, list_name)
            stmt = stmt.join(ListSource, ListSource.source_id == Source.id).where(
                ListSource.list_id == mlist.id)
        if start is not None:
            stmt = stmt.where(Source.id > start)
        found = list(s.scalars(stmt))
        page, more = found[:limit], len(found) > limit
        data = sources_out(s, page)
    return Page(data=data, next=str(page[-1].id) if more else None)


@router.post("/sources", status_code=201, summary="Add a feed to a list",
             responses={**NOT_FOUND, 200: answer(SourceAdded, "It fed that list already")})
def sources_add(user: Admin, app: AppDep, body: SourceAdd, response: Response) -> SourceAdded:
    """An http(s) feed URL (RSS, Atom or JSON Feed). A source already known is attached
    to the list too; the next fetch round fetches it."""
    with app.sessions() as s:
        source, attached = add_source(s, body.url, get_list(s, body.list),
                                      full_text=body.full_text)
        s.commit()
        if not attached:
            response.status_code = 200
        return SourceAdded(**sources_out(s, [source])[0].model_dump(), attached=attached)


@router.get("/sources/{source_id}", responses=NOT_FOUND, summary="One source")
def sources_show(user: Editor, app: AppDep, source_id: Id) -> SourceOut:
    with app.sessions() as s:
        return sources_out(s, [_source(s, source_id)])[0]


@router.delete("/sources/{source_id}", status_code=204, responses=NOT_FOUND,
               summary="Remove a source, or detach it from a list")
def sources_remove(
    user: Admin, app: AppDep, source_id: Id,
    list_name: Annotated[str | None, Query(alias="list", max_length=64, description=(
        "Only stop feeding this list; the source and its articles stay"))] = None,
) -> Response:
    """Without `list`: delete the source and its articles. Editions keep their copies
    of the articles they carried, so nothing sent changes. Answers 204."""
    with app.sessions() as s:
        source = _source(s, source_id)
        if list_name is not None:
            mlist = get_list(s, list_name)
            detach_source(s, source, mlist)
        else:
            s.execute(delete(Source).where(Source.id == source.id))
        s.commit()
    return Response(status_code=204)


def detach_source(s: Session, source: Source, mlist: MailingList) -> None:
    link = s.get(ListSource, (mlist.id, source.id))
    if link is None:
        raise NotFound(f"source {source.id} does not feed list {mlist.name!r}")
    s.delete(link)


def _source(s: Session, source_id: Id) -> Source:
    source = s.get(Source, source_id)
    if source is None:
        raise NotFound(f"source {source_id} not found; GET /sources lists them")
    return source


def sources_out(s: Session, sources: list[Source]) -> list[SourceOut]:
    """The sources with the lists they feed and their articles counted (two queries)."""
    ids = [src.id for src in sources]
    articles = dict(s.execute(select(Article.source_id, func.count())
                              .where(Article.source_id.in_(ids))
                              .group_by(Article.source_id)).all())
    lists: dict[int, list[str]] = {}
    for source_id, name in s.execute(
            select(ListSource.source_id, MailingList.name)
            .join(MailingList, MailingList.id == ListSource.list_id)
            .where(ListSource.source_id.in_(ids)).order_by(MailingList.name)):
        lists.setdefault(source_id, []).append(name)
    return [SourceOut(
        id=src.id, url=src.url, title=src.title, site_url=src.site_url,
        full_text=src.full_text, lists=lists.get(src.id, []),
        articles=articles.get(src.id, 0), created_at=src.created_at,
        last_fetch_at=src.last_fetch_at, last_success_at=src.last_success_at,
        last_error=src.last_error, last_error_at=src.last_error_at,
        consecutive_failures=src.consecutive_failures, next_fetch_at=src.next_fetch_at,
    ) for src in sources]
