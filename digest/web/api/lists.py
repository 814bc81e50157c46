"""/lists: read by editors; created, changed and archived by admins."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.orm import Session

from digest.publication import SETTINGS, create_list, list_overview, update_list
from digest.web.api.deps import Admin, Editor, ListName, refusals
from digest.web.api.schemas import ListCreate, ListDetail, ListOut, ListPatch, MemberCounts, Page
from digest.web.deps import AppDep
from subscribers.lists import (
    all_lists,
    archive_list,
    get_list,
    list_counts,
    rename_list,
    unarchive_list,
)
from subscribers.models import MailingList

router = APIRouter(tags=["lists"])
NOT_FOUND = refusals(e404="No list has that name")


@router.get("/lists", summary="All lists")
def lists_index(user: Editor, app: AppDep, archived: Annotated[bool, Query(
        description="Include archived lists")] = False) -> Page[ListOut]:
    """Every list by name, with its members per status. Lists are few: one page."""
    with app.sessions() as s:
        counts = list_counts(s)
        data = [list_out(m, counts[m.id]) for m in all_lists(s, include_archived=archived)]
    return Page(data=data, next=None)


@router.post("/lists", status_code=201, summary="Create a list")
def lists_create(user: Admin, app: AppDep, body: ListCreate, request: Request,
                 response: Response) -> ListDetail:
    values = _given(body)
    name = values.pop("name")
    with app.sessions() as s:
        mlist = create_list(s, name, **values)
        s.commit()
        response.headers["Location"] = str(request.url_for("lists_show", name=mlist.name))
        return list_detail(s, mlist)


@router.get("/lists/{name}", responses=NOT_FOUND, summary="One list")
def lists_show(user: Editor, app: AppDep, name: ListName) -> ListDetail:
    """A list's settings with its members, recipients, sources and editions counted."""
    with app.sessions() as s:
        return list_detail(s, get_list(s, name))


@router.patch("/lists/{name}", responses=NOT_FOUND, summary="Change a list")
def lists_change(user: Admin, app: AppDep, name: ListName, body: ListPatch) -> ListDetail:
    """Change settings; `name` renames it, `archived: false` brings it back. Every value
    is checked before any is stored."""
    values = _given(body)
    new_name, archived = values.pop("name", None), values.pop("archived", None)
    with app.sessions() as s:
        mlist = get_list(s, name)
        update_list(s, mlist, **values)
        if new_name is not None:
            rename_list(s, mlist, new_name)
        if archived is True:
            archive_list(s, mlist, now=app.clock())
        elif archived is False:
            unarchive_list(s, mlist)
        s.commit()
        return list_detail(s, mlist)


@router.delete("/lists/{name}", responses=NOT_FOUND, summary="Archive a list")
def lists_archive(user: Admin, app: AppDep, name: ListName) -> ListDetail:
    """Archive the list: no more editions; members, editions and history stay. PATCH
    with `archived: false` undoes it. Lists are never deleted."""
    with app.sessions() as s:
        mlist = get_list(s, name)
        archive_list(s, mlist, now=app.clock())
        s.commit()
        return list_detail(s, mlist)


def _given(body: ListCreate | ListPatch) -> dict[str, Any]:
    return {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}


def list_out(mlist: MailingList, counts: dict[str, int]) -> ListOut:
    return ListOut(
        **{key: getattr(mlist, key) for key in SETTINGS},
        name=mlist.name, created_at=mlist.created_at, archived_at=mlist.archived_at,
        members=MemberCounts(**counts),
    )


def list_detail(s: Session, mlist: MailingList) -> ListDetail:
    overview = list_overview(s, mlist)
    base = list_out(mlist, overview.members)
    return ListDetail(**base.model_dump(), recipients=overview.recipients,
                      sources=overview.sources, editions=overview.editions,
                      last_sent_at=overview.last_sent_at)
