"""The preview (the email as it will look, at desktop and phone width) and sending now.

`/desk/{list}/preview.html` is the edition rendered exactly as `start_sending` renders
it, with sample values for the reader's address and unsubscribe link. It is framed by
the preview page, so it is the one response allowed in a frame, and only in ours; its
own policy allows inline styles (mail HTML is all inline styles) and pictures from
anywhere over https, no scripts, and sandboxes it (as the archive's copy is).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from digest import curate
from digest.app import App
from digest.editions import require_sendable
from digest.errors import InvalidInput, NotFound, NotReady
from digest.mailsize import html_bytes, kb
from digest.models import Edition, EditionStatus
from digest.render import Preview, Rendered
from digest.render import preview as preview_of
from digest.users import UserView
from digest.web.auth import EditorUser, Viewer
from digest.web.deps import AppDep, PagesDep
from digest.web.desk.actions import DeskPost
from digest.web.desk.views import (
    DESK_CSP,
    list_not_found,
    mail_size,
    render,
    render_draft,
    size_limit,
)
from digest.web.pages import Page, sentence
from subscribers.lists import get_list
from subscribers.models import MailingList

router = APIRouter(include_in_schema=False)

PREVIEW_PAGE_CSP = DESK_CSP.replace("form-action", "frame-src 'self'; form-action")
# Sandboxed like the archive's copy: even markup that slipped through a feed runs in an
# origin of its own, away from the editor's session; links still open in a new tab.
EMAIL_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
             "form-action 'none'; frame-ancestors 'self'; base-uri 'none'; "
             "sandbox allow-popups allow-popups-to-escape-sandbox")


@dataclass(frozen=True, kw_only=True)
class PreviewPage(Page):
    """web/desk/preview.html: the two frames and the plain-text part."""

    list_name: str
    list_title: str
    number: int
    subject: str
    text: str
    status: str
    size: str = ""  # the HTML part as it goes out (`mailsize.html_bytes`), "79 KB"
    limit: str = ""  # [edition] html_max_kb, "100 KB"
    over: bool = False  # over the limit: it will not be sent as it stands


@dataclass(frozen=True, kw_only=True)
class SendPage(Page):
    """web/desk/send.html: "This edition goes to N subscribers", and the button."""

    list_name: str
    list_title: str
    list_language: str
    number: int
    subject: str
    articles: int
    recipients: int
    size: str  # the HTML part as it goes out (`mailsize.html_bytes`), "79 KB"
    limit: str  # [edition] html_max_kb, "100 KB"
    over: bool  # over the limit: no send button, it would be refused
    fit: bool  # a draft: the "Make it fit" button is offered
    error: str = ""


def send_page(app: App, s: Session, mlist: MailingList, edition: Edition, *,
              error: str = "") -> SendPage:
    """The confirmation for `edition`: its readers counted, its HTML measured (one
    render)."""
    size, limit = mail_size(app, edition, mlist), size_limit(app)
    return SendPage(title=f"Send {mlist.title} #{edition.number}?", list_name=mlist.name,
                    list_title=mlist.title, list_language=mlist.language,
                    number=edition.number, subject=edition.subject,
                    articles=len(edition.items), recipients=curate.recipients_count(s, mlist),
                    size=kb(size), limit=kb(limit), over=size > limit,
                    fit=edition.status == EditionStatus.DRAFT, error=error)


@router.get("/desk/{list_name}/preview")
def preview(list_name: str, user: EditorUser, viewer: Viewer, app: AppDep,
            pages: PagesDep) -> Response:
    try:
        mlist, edition, rendered, shown = _preview(app, list_name, user)
    except NotFound as exc:
        return pages.message(404, "Nothing to preview", str(exc), private=True)
    size, limit = html_bytes(rendered), size_limit(app)  # as the desk and sending measure
    page = PreviewPage(title=f"Preview: {shown.subject}", list_name=mlist.name,
                       list_title=mlist.title, number=edition.number,
                       subject=shown.subject, text=shown.text, status=edition.status,
                       size=kb(size), limit=kb(limit), over=size > limit)
    return pages.render("web/desk/preview.html", page, viewer=viewer,
                        headers={"Content-Security-Policy": PREVIEW_PAGE_CSP})


@router.get("/desk/{list_name}/preview.html")
def preview_email(list_name: str, user: EditorUser, app: AppDep, pages: PagesDep) -> Response:
    try:
        _mlist, _edition, _rendered, shown = _preview(app, list_name, user)
    except NotFound as exc:
        return pages.message(404, "Nothing to preview", str(exc), private=True)
    return HTMLResponse(shown.html, headers={
        "Content-Security-Policy": EMAIL_CSP, "X-Frame-Options": "SAMEORIGIN",
        "Cache-Control": "no-store"})


@router.get("/desk/{list_name}/send")
def confirm_send(list_name: str, user: EditorUser, viewer: Viewer, app: AppDep,
                 pages: PagesDep) -> Response:
    with app.sessions() as s:
        try:
            mlist = get_list(s, list_name)
        except NotFound as exc:
            return list_not_found(pages, exc)
        edition = curate.current_edition(s, mlist)
        if edition is None or edition.status not in curate.EDITABLE:
            return render_draft(app, pages, viewer, user, list_name, status=409,
                                error="Nothing can be sent now: there is no draft to send.")
        try:
            require_sendable(edition, mlist)  # asked again when it is sent
        except NotReady as exc:
            return render_draft(app, pages, viewer, user, list_name, status=409,
                                error=sentence(str(exc)))
        page = send_page(app, s, mlist, edition)
    # Over the limit: the page says so and has no send button (sending would refuse it).
    return render(pages, viewer, "web/desk/send.html", page, status=409 if page.over else 200)


@router.post("/desk/{list_name}/send")
def send(list_name: str, post: DeskPost, edition: Annotated[str, Form()] = "",
         recipients: Annotated[str, Form()] = "") -> Response:
    """Start sending the edition the confirmation page showed, to as many people as it
    said: if the number changed meanwhile, the page is shown again with the new one."""
    app = post.app
    with app.sessions() as s:
        try:
            mlist = get_list(s, list_name)
        except NotFound as exc:
            return list_not_found(post.pages, exc)
        current = curate.current_edition(s, mlist)
        if current is None or str(current.number) != edition.strip():
            return render_draft(app, post.pages, post.viewer, post.user, list_name,
                                status=409, error="The edition that page showed is no "
                                "longer the one waiting; nothing was sent. Check it again.")
        count = curate.recipients_count(s, mlist)
        if str(count) != recipients.strip():
            page = send_page(app, s, mlist, current,
                             error=f"The number of subscribers changed to {count} since "
                                   "the page was shown. Nothing was sent; confirm again.")
            return render(post.pages, post.viewer, "web/desk/send.html", page, status=409)
        try:
            app.send_now(s, current, mlist)  # commits
        except InvalidInput as exc:
            s.rollback()
            return render_draft(app, post.pages, post.viewer, post.user, list_name,
                                status=409, error=sentence(str(exc)))
    return RedirectResponse(f"/desk/{list_name}?done=sending", status_code=303)


def _preview(app: App, list_name: str,
             user: UserView) -> tuple[MailingList, Edition, Rendered, Preview]:
    """The list's current edition rendered (once) and filled in for `user`, as
    `App.preview` does; NotFound when there is none."""
    with app.sessions() as s:
        mlist = get_list(s, list_name)
        edition = curate.current_edition(s, mlist)
        if edition is None:
            raise NotFound(f"{mlist.title} has no edition in the works; start one on the desk")
        rendered = app.render(edition, mlist)
        return mlist, edition, rendered, preview_of(
            rendered, edition.subject, app.settings["public_url"], email=user.email,
            name=user.name, language=mlist.language, title=mlist.title)
