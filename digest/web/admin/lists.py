"""Lists in the console: the table with counts, creating one, its settings, archiving,
and which sources feed it.

Each value of the settings form is checked by the core's own check
(`digest.publication.SETTINGS`), field by field, so every wrong field gets the core's
message next to it at once; the form comes back (400) with what was typed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.errors import InvalidInput
from digest.gather.sources import source_label
from digest.models import ListSource, Source
from digest.publication import (
    LAYOUTS,
    MODES,
    POLICIES,
    SETTINGS,
    ListOverview,
    create_list,
    list_overview,
    update_list,
)
from digest.web.admin.common import (
    AdminPage,
    Fields,
    Form,
    get_or_404,
    list_or_404,
    notice,
    render,
    see_other,
)
from digest.web.auth import AdminUser, CsrfForm, Viewer
from digest.web.deps import AppDep, PagesDep, RowId
from digest.web.forms import in_transaction
from digest.web.pages import Pages, WebSession, sentence
from subscribers.lists import archive_list, list_counts, unarchive_list
from subscribers.models import MailingList

router = APIRouter(include_in_schema=False)

TEXT_FIELDS = ("title", "description", "from_addr", "reply_to", "schedule", "timezone",
               "mode", "review_policy", "editor_emails", "language", "postal_address",
               "layout", "accent_color", "logo_url")
FLAGS = ("double_optin", "local_time", "public", "keep_tracking", "toc")
#: The fields of the short form that creates a list; the rest is on its settings page.
#: The postal address is asked for at once: every mail's footer needs it.
NEW_FIELDS = ("title", "from_addr", "postal_address", "schedule", "timezone", "language")
NEW_FLAGS = ("double_optin", "public")


@dataclass(frozen=True)
class ListRow:
    name: str
    title: str
    language: str
    archived: bool
    counts: dict[str, int]  # members per status


@dataclass(frozen=True)
class SourceLink:
    id: int
    label: str
    url: str
    failures: int


@dataclass(frozen=True, kw_only=True)
class ListsPage(AdminPage):
    """web/admin/lists.html: every list with its members per status, and the form
    that creates one (`values` typed, `errors` per field)."""

    lists: list[ListRow]
    values: dict[str, Any]
    errors: dict[str, str]
    modes: tuple[str, ...] = MODES


@dataclass(frozen=True, kw_only=True)
class ListPage(AdminPage):
    """web/admin/list.html: one list's settings form, counts and sources."""

    name: str
    archived_at: dt.datetime | None
    overview: ListOverview
    values: dict[str, Any]
    errors: dict[str, str]
    sources: list[SourceLink]
    other_sources: list[SourceLink] = field(default_factory=list)
    modes: tuple[str, ...] = MODES
    policies: tuple[str, ...] = POLICIES
    layouts: tuple[str, ...] = LAYOUTS


@router.get("/admin/lists")
def lists_page(user: AdminUser, session: Viewer, app: AppDep, pages: PagesDep,
               done: str = "") -> Response:
    with app.sessions() as s:
        defaults = {"title": "", "from_addr": "", "postal_address": "", "schedule": "0 7 * * *",
                    "timezone": "UTC", "language": "en", "double_optin": True, "public": True,
                    "name": ""}
        return render(pages, "web/admin/lists.html",
                      _lists_page(s, defaults, {}, notice(done)), session)


@router.post("/admin/lists")
def create(user: AdminUser, _: CsrfForm, form: Fields, session: Viewer, app: AppDep,
           pages: PagesDep) -> Response:
    name = form.get("name").lower()
    values, errors = _checked(form, NEW_FIELDS, NEW_FLAGS)

    def work(s: Session) -> str:
        if not errors:
            try:
                create_list(s, name, **values)
            except InvalidInput as exc:  # every other value passed: it is the name
                errors["name"] = sentence(str(exc))
        return name

    in_transaction(app, work)
    if errors:
        with app.sessions() as s:
            page = _lists_page(s, {**_typed(form, NEW_FIELDS, NEW_FLAGS), "name": name},
                               errors, "")
        return render(pages, "web/admin/lists.html", page, session, status=400)
    return see_other(f"/admin/lists/{name}?done=list-created")


@router.get("/admin/lists/{list_name}")
def list_page(list_name: str, user: AdminUser, session: Viewer, app: AppDep,
              pages: PagesDep, done: str = "") -> Response:
    with app.sessions() as s:
        mlist = list_or_404(s, list_name)
        values = {key: getattr(mlist, key) for key in (*TEXT_FIELDS, *FLAGS)}
        return render(pages, "web/admin/list.html",
                      _list_page(s, mlist, values, {}, notice(done)), session)


@router.post("/admin/lists/{list_name}")
def save(list_name: str, user: AdminUser, _: CsrfForm, form: Fields, session: Viewer,
         app: AppDep, pages: PagesDep) -> Response:
    values, errors = _checked(form, TEXT_FIELDS, FLAGS)
    if errors:
        return _settings_refused(pages, session, app, list_name, form, errors)

    def work(s: Session) -> None:
        update_list(s, list_or_404(s, list_name), **values)

    in_transaction(app, work)
    return see_other(f"/admin/lists/{list_name}?done=list-saved")


@router.post("/admin/lists/{list_name}/archive")
def archive(list_name: str, user: AdminUser, _: CsrfForm, form: Fields,
            app: AppDep) -> Response:
    undo = form.get("action") == "unarchive"

    def work(s: Session) -> None:
        mlist = list_or_404(s, list_name)
        if undo:
            unarchive_list(s, mlist)
        else:
            archive_list(s, mlist, now=app.clock())

    in_transaction(app, work)
    return see_other(f"/admin/lists/{list_name}?done=list-{'un' if undo else ''}archived")


@router.post("/admin/lists/{list_name}/sources")
def link_source(list_name: str, user: AdminUser, _: CsrfForm, form: Fields,
                app: AppDep) -> Response:
    source_id = form.number("source_id")

    def work(s: Session) -> None:
        mlist = list_or_404(s, list_name)
        source = get_or_404(s, Source, source_id)
        if s.get(ListSource, (mlist.id, source.id)) is None:
            s.add(ListSource(list_id=mlist.id, source_id=source.id, created_at=app.clock()))

    in_transaction(app, work)
    return see_other(f"/admin/lists/{list_name}?done=source-linked#sources")


@router.post("/admin/lists/{list_name}/sources/{source_id}/unlink")
def unlink_source(list_name: str, source_id: RowId, user: AdminUser, _: CsrfForm,
                  app: AppDep) -> Response:
    def work(s: Session) -> None:
        link = s.get(ListSource, (list_or_404(s, list_name).id, source_id))
        if link is not None:
            s.delete(link)

    in_transaction(app, work)
    return see_other(f"/admin/lists/{list_name}?done=source-unlinked#sources")


# -- helpers ---------------------------------------------------------------------------


def _typed(form: Form, fields: tuple[str, ...], flags: tuple[str, ...]) -> dict[str, Any]:
    return {**{k: form.get(k) for k in fields}, **{k: form.flag(k) for k in flags}}


def _checked(form: Form, fields: tuple[str, ...],
             flags: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, str]]:
    """The form's values checked by the core, and the core's message per bad field. A
    text field the form did not send is left as it is (a page from before it existed);
    an unticked checkbox is never sent, so it means off."""
    values, errors = {}, {}
    for key, value in _typed(form, fields, flags).items():
        if key in fields and key not in form.data:
            continue
        try:
            values[key] = SETTINGS[key](value)
        except InvalidInput as exc:
            errors[key] = sentence(str(exc))
    return values, errors


def _settings_refused(pages: Pages, session: WebSession, app: Any, list_name: str,
                      form: Form, errors: dict[str, str]) -> Response:
    with app.sessions() as s:
        page = _list_page(s, list_or_404(s, list_name), _typed(form, TEXT_FIELDS, FLAGS),
                          errors, "")
    return render(pages, "web/admin/list.html", page, session, status=400)


def _lists_page(s: Session, values: dict[str, Any], errors: dict[str, str],
                done: str) -> ListsPage:
    counts = list_counts(s)
    rows = [ListRow(m.name, m.title, m.language, m.archived_at is not None,
                    counts.get(m.id, {}))
            for m in s.scalars(select(MailingList).order_by(MailingList.archived_at.is_not(None),
                                                            MailingList.name))]
    return ListsPage(title="Lists", section="lists", notice=done, lists=rows,
                     values=values, errors=errors)


def _list_page(s: Session, mlist: MailingList, values: dict[str, Any],
               errors: dict[str, str], done: str) -> ListPage:
    linked = list(s.scalars(
        select(Source).join(ListSource, ListSource.source_id == Source.id)
        .where(ListSource.list_id == mlist.id).order_by(Source.id)))
    ids = {src.id for src in linked}
    others = [src for src in s.scalars(select(Source).order_by(Source.id))
              if src.id not in ids]
    return ListPage(
        title=f"List {mlist.name}", section="lists", notice=done, name=mlist.name,
        archived_at=mlist.archived_at, overview=list_overview(s, mlist), values=values,
        errors=errors, sources=[_link(src) for src in linked],
        other_sources=[_link(src) for src in others],
    )


def _link(src: Source) -> SourceLink:
    return SourceLink(src.id, source_label(src), src.url, src.consecutive_failures)
