"""What every page of the admin console shares: its page base, form reading, notices
after a redirect, and turning the core's errors into pages.

Routes declare `user: AdminUser` first, then `_: CsrfForm` on a POST, then `form:
Fields`: FastAPI solves dependencies in that order, so a stranger's or an editor's
request is refused before its body is read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Annotated, TypeVar

from fastapi import Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from digest.db import Base
from digest.web.desk.views import age
from digest.web.pages import Page, Pages, WebSession, sentence
from subscribers.models import MailingList

M = TypeVar("M", bound=Base)

#: Texts shown after a redirect, by the key in `?done=`: never text from the URL itself,
#: so nobody can put words of their own on an admin's screen with a link.
NOTICES: Mapping[str, str] = {
    "list-created": "The list is created.",
    "list-saved": "The settings are saved.",
    "list-archived": "The list is archived: it gets no more editions.",
    "list-unarchived": "The list is active again.",
    "source-linked": "The source now feeds this list.",
    "source-unlinked": "The source no longer feeds this list.",
    "source-added": "The source is added; it is fetched with the next round, or now "
                    "with Fetch now.",
    "source-known": "That source was there already; it now feeds the list.",
    "source-removed": "The source and its articles are removed.",
    "user-added": "The user is added; they can log in now.",
    "user-saved": "The user is changed; their sessions ended.",
    "token-revoked": "The token is revoked; it stops working at once.",
    "subscriber-saved": "The changes are saved.",
    "status-saved": "The membership is changed.",
    "suppressed": "The address is suppressed: no list or import adds it again.",
    "unsuppressed": "The suppression is lifted.",
    "forgotten": "The person is forgotten; the address stays suppressed as a hash.",
    "member-pending": "Added as pending: a confirmation mail is on its way.",
    "member-confirmed": "They are on the list, confirmed.",
    "member-unsubscribed": "They had unsubscribed from that list; nothing changed.",
}


@dataclass(frozen=True, kw_only=True)
class AdminPage(Page):
    """What every console page has: which section of the nav it is in, and a notice
    after a redirect (from NOTICES)."""

    section: str = ""
    notice: str = ""


class Form:
    """A posted form's text fields."""

    def __init__(self, data: FormData) -> None:
        self.data = data

    def get(self, name: str, default: str = "") -> str:
        value = self.data.get(name, default)
        return value.strip() if isinstance(value, str) else default

    def raw(self, name: str) -> str:
        """Not stripped: for passwords."""
        value = self.data.get(name, "")
        return value if isinstance(value, str) else ""

    def flag(self, name: str) -> bool:
        """A checkbox: sent (any value) when ticked, absent when not."""
        return name in self.data

    def number(self, name: str) -> int | None:
        value = self.get(name)
        return int(value) if value.isdigit() and len(value) < 12 else None


async def read_form(request: Request) -> Form:
    """The form CsrfForm has already read (Starlette keeps it on the request)."""
    return Form(await request.form())


Fields = Annotated[Form, Depends(read_form)]
#: The `?list=` of a page's URL: a list's name ("" for all).
ListParam = Annotated[str, Query(alias="list", max_length=64)]


def notice(done: str) -> str:
    return NOTICES.get(done, "")


def render(pages: Pages, name: str, page: Page, session: WebSession,
           status: int = 200) -> HTMLResponse:
    """The page; one that refuses (status 400 and up) has a title starting "Error: ",
    the first thing a screen reader says of it and what a tab shows (WCAG 3.3.1)."""
    if status >= 400 and not page.title.startswith("Error: "):
        page = replace(page, title=f"Error: {page.title}")
    return pages.render(name, page, viewer=session, status=status)


def see_other(url: str) -> Response:
    """After a change: to the page that shows it (POST, redirect, GET)."""
    return RedirectResponse(url, status_code=303)


def refused(pages: Pages, session: WebSession, heading: str, message: str,
            status: int = 400, back: str = "") -> HTMLResponse:
    """A page saying what was refused and why, in the core's words."""
    page = MessagePage(title=heading, section="", heading=heading,
                       message=sentence(message), back=back)
    return render(pages, "web/admin/message.html", page, session, status)


@dataclass(frozen=True, kw_only=True)
class MessagePage(AdminPage):
    """web/admin/message.html: a refusal or a result, with a link `back`."""

    heading: str
    message: str
    back: str = ""


def get_or_404(s: Session, model: type[M], key: object) -> M:
    """The row of `model` with primary key `key`, or 404 (also for no key at all)."""
    row = s.get(model, key) if key is not None else None
    if row is None:
        raise HTTPException(404)
    return row


def list_or_404(s: Session, name: str) -> MailingList:
    """The list called `name` (archived or not), or 404."""
    mlist = s.scalar(select(MailingList).where(MailingList.name == name))
    if mlist is None:
        raise HTTPException(404)
    return mlist


def when(value: dt.datetime | None) -> str:
    """A time as the console shows it: UTC, to the minute; "never" for none."""
    return f"{value:%Y-%m-%d %H:%M} UTC" if value else "never"


def ago(value: dt.datetime | None, now: dt.datetime) -> str:
    """How long ago, as the desk says it ("5 min ago"); "never" for none."""
    return "never" if value is None else age(value, now)
