"""The desk's buttons: each a small form posted here, answered with a redirect back.

Every form names the edition its page showed (`edition`, its number), and an item's
form its article (`item_article`); when the list's current edition is another one by then
(it was sent, or a new one began), or the item is no longer in it (dropped in another
tab), nothing changes and the answer is a redirect to the desk saying so (done.py's
`Stale`), so that reloading it posts nothing again. A refusal (`InvalidInput`: an
edition being sent, an empty headline) shows the desk again with the reason, naming the
article and marking the field it is about, with what was typed kept in the form.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

import requests
from fastapi import APIRouter, Depends, Form
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from digest import curate
from digest.app import App
from digest.errors import (
    DeliveryError,
    DigestError,
    FetchError,
    InvalidInput,
    NotFound,
    NotReady,
)
from digest.mailsize import Fit, kb
from digest.models import Edition, EditionStatus
from digest.users import UserView
from digest.web.auth import CsrfForm, EditorUser, Viewer
from digest.web.deps import AppDep, PagesDep, RowId
from digest.web.desk.done import Done, Refusal, Stale, row_id
from digest.web.desk.views import list_not_found, parse_local, render_draft
from digest.web.pages import Pages, WebSession, sentence
from digest.web.proofs import TooManyProofs, send_proof
from digest.web.throttle import retry_after_header
from subscribers.lists import get_list
from subscribers.models import MailingList

router = APIRouter(include_in_schema=False)

Field = Annotated[str, Form()]  # every field optional: a missing one is refused in words


@dataclass(frozen=True)
class Shown:
    """A change whose outcome the desk shows at once, in words no fixed `?done=` message
    has ("Make it fit": its sizes); with an error, the change is rolled back."""

    notice: str = ""
    error: str = ""
    size: int | None = None  # the HTML part as measured by the change, not rendered again


#: what the redirect back to the desk says was done (done.py), or what to show at once
Change = Callable[[Session, MailingList, Edition], Done | Shown]


@dataclass(frozen=True)
class Post:
    """A form from the desk: a logged-in editor (or admin), CSRF token checked."""

    user: UserView
    viewer: WebSession
    app: App
    pages: Pages


def _post(user: EditorUser, viewer: Viewer, app: AppDep, pages: PagesDep,
          _: CsrfForm) -> Post:
    return Post(user, viewer, app, pages)


DeskPost = Annotated[Post, Depends(_post)]


def act(post: DeskPost, list_name: str, shown: str, change: Change, *,
        item: int | None = None, article: str = "",
        typed: dict[str, str] | None = None) -> Response:
    """Run `change` on the list's current edition if it is the one the page showed
    (`shown`, its number) and, for a button of one `item`, the item is still in it;
    commit, and go back to the desk; or show why not. A change that answers `Shown` is
    committed (rolled back with an error) and the desk shown. A refusal names the item
    and marks the field its `OnField` names, and the form shows what was `typed`."""
    app = post.app
    with app.sessions() as s:
        try:
            mlist = get_list(s, list_name)
        except NotFound as exc:
            return list_not_found(post.pages, exc)
        edition = curate.current_edition(s, mlist)
        if edition is None or str(edition.number) != shown.strip():
            code = "closed" if edition is None else "changed"
            return _see_desk(mlist, Stale(code, row_id(article)).query())
        try:
            if item is not None and not _holds(s, edition, item):
                return _see_desk(mlist, Stale("gone", row_id(article)).query())
            done = change(s, mlist, edition)
            if isinstance(done, Shown):
                if done.error:
                    s.rollback()
                else:
                    s.commit()
                return render_draft(app, post.pages, post.viewer, post.user, list_name,
                                    status=409 if done.error else 200, size=done.size,
                                    notice=done.notice, error=done.error)
            s.commit()
            return _see_desk(mlist, done.query())
        except DigestError as exc:
            s.rollback()
            status = _status(exc, edition)
            # 400 is the form's fault, about its item; 409 the edition's (being sent).
            refusal = Refusal(str(exc), item if status == 400 else None,
                              exc.field if isinstance(exc, OnField) else "", typed or {})
    return render_draft(app, post.pages, post.viewer, post.user, list_name, status=status,
                        error=refusal)


def _see_desk(mlist: MailingList, query: str) -> Response:
    return RedirectResponse(f"/desk/{mlist.name}?{query}", status_code=303)


def _holds(s: Session, edition: Edition, item_id: int) -> bool:
    """Whether item `item_id` is in the edition, locked first (`curate.editable`: an
    edition being sent is refused, as every change refuses it)."""
    return any(i.id == item_id for i in curate.editable(s, edition).items)


class OnField(InvalidInput):
    """A refusal about one field of the form: `field`, its element id."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@contextmanager
def about(field: str) -> Iterator[None]:
    """What is refused inside is about the field `field` (an element id of the desk);
    not that the edition cannot go out (NotReady), which is about the edition."""
    try:
        yield
    except NotReady:
        raise
    except InvalidInput as exc:
        raise OnField(str(exc), field) from exc


def _status(exc: DigestError, edition: Edition) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, FetchError | DeliveryError):
        return 502
    if isinstance(exc, NotReady):  # as the send page answers: the edition, not the form
        return 409
    return 409 if edition.status not in curate.EDITABLE else 400


def _index(edition: Edition, item_id: int) -> int:
    for index, item in enumerate(edition.items):
        if item.id == item_id:
            return index
    # `act` has found it there, the edition locked: this is not reached.
    raise NotFound(f"that article is no longer in edition #{edition.number}")


# -- one item -----------------------------------------------------------------------------
# Each form names the item's article too (`item_article`): after a drop the item is gone,
# and the desk names the article in saying so.


@router.post("/desk/{list_name}/items/{item_id}/drop")
def drop(list_name: str, item_id: RowId, post: DeskPost, edition: Field = "",
         item_article: Field = "") -> Response:
    def change(s: Session, mlist: MailingList, ed: Edition) -> Done:
        dropped = curate.drop_item(s, ed, item_id)
        # Its article names it among the proposals; one added by URL has none.
        return Done("dropped", article=dropped.article_id)
    return act(post, list_name, edition, change, item=item_id, article=item_article)


@router.post("/desk/{list_name}/items/{item_id}/pin")
def pin(list_name: str, item_id: RowId, post: DeskPost, edition: Field = "",
        item_article: Field = "", pinned: Field = "1") -> Response:
    def change(s: Session, mlist: MailingList, ed: Edition) -> Done:
        on = pinned == "1"
        curate.pin_item(s, ed, item_id, on)
        return Done("pinned" if on else "unpinned", item=item_id)
    return act(post, list_name, edition, change, item=item_id, article=item_article)


@router.post("/desk/{list_name}/items/{item_id}/brief")
def brief(list_name: str, item_id: RowId, post: DeskPost, edition: Field = "",
          item_article: Field = "", brief: Field = "1") -> Response:
    def change(s: Session, mlist: MailingList, ed: Edition) -> Done:
        on = brief == "1"
        curate.brief_item(s, ed, item_id, on)
        return Done("briefed" if on else "in-full", item=item_id)
    return act(post, list_name, edition, change, item=item_id, article=item_article)


@router.post("/desk/{list_name}/items/{item_id}/move")
def move(list_name: str, item_id: RowId, post: DeskPost, edition: Field = "",
         item_article: Field = "", direction: Field = "") -> Response:
    def change(s: Session, mlist: MailingList, ed: Edition) -> Done:
        if direction not in ("up", "down"):
            raise InvalidInput("say up or down")
        step = -1 if direction == "up" else 1
        curate.move_item(s, ed, item_id, to=_index(ed, item_id) + step)
        return Done(f"moved-{direction}", item=item_id)
    return act(post, list_name, edition, change, item=item_id, article=item_article)


@router.post("/desk/{list_name}/items/{item_id}/edit")
def edit(list_name: str, item_id: RowId, post: DeskPost, edition: Field = "",
         item_article: Field = "", title: Field = "", summary: Field = "",
         note: Field = "") -> Response:
    typed = {f"title-{item_id}": title, f"summary-{item_id}": summary,
             f"note-{item_id}": note}

    def change(s: Session, mlist: MailingList, ed: Edition) -> Done:
        # One field at a time, to know which one is refused (all in one transaction).
        with about(f"title-{item_id}"):
            curate.edit_item(s, ed, item_id, title=title)
        with about(f"summary-{item_id}"):
            curate.edit_item(s, ed, item_id, summary=summary)
        with about(f"note-{item_id}"):
            curate.edit_item(s, ed, item_id, note=note)
        return Done("edited", item=item_id)
    return act(post, list_name, edition, change, item=item_id, article=item_article,
               typed=typed)


# -- the edition --------------------------------------------------------------------------


@router.post("/desk/{list_name}/add")
def add(list_name: str, post: DeskPost, edition: Field = "", article: Field = "") -> Response:
    def change(s: Session, mlist: MailingList, ed: Edition) -> Done:
        if not article.isdigit():
            raise InvalidInput("pick an article from the proposals")
        item = curate.add_article(s, ed, int(article), rules=post.app.edition_rules())
        return Done("added", item=item.id)
    return act(post, list_name, edition, change, article=article)


@router.post("/desk/{list_name}/add-url")
def add_url(list_name: str, post: DeskPost, edition: Field = "", url: Field = "") -> Response:
    app = post.app
    typed = {"url": url[:2000]}
    try:
        # Before any transaction: the fetch may take [gather] timeout seconds. Only
        # public addresses, unless [web] fetch_private_addresses: the editor picks the
        # URL, the server fetches it. A session of its own: this runs in a worker thread.
        with requests.Session() as http:
            page = curate.fetch_page(
                http, url, app.fetch_options(),
                private_addresses=app.settings["web.fetch_private_addresses"])
    except (InvalidInput, FetchError) as exc:
        return render_draft(app, post.pages, post.viewer, post.user, list_name,
                            status=400 if isinstance(exc, InvalidInput) else 502,
                            error=Refusal(str(exc), field="url", typed=typed))

    def change(s: Session, mlist: MailingList, ed: Edition) -> Done:
        ed = curate.editable(s, ed)  # a sending edition is the edition's fault, not the URL's
        with about("url"):
            item = curate.add_page(s, ed, page, now=app.clock(), rules=app.edition_rules())
        return Done("added", item=item.id)

    if edition.strip() in ("", "0"):  # the desk had no draft: this page starts one
        with app.sessions() as s:
            try:
                _ed, item = curate.start_with_page(s, get_list(s, list_name), page,
                                                   now=app.clock(), rules=app.edition_rules())
                s.commit()
            except NotFound as exc:
                return list_not_found(post.pages, exc)
            except InvalidInput as exc:
                return render_draft(app, post.pages, post.viewer, post.user, list_name,
                                    status=400, error=Refusal(str(exc), typed=typed))
        return RedirectResponse(f"/desk/{list_name}?{Done('added', item=item.id).query()}",
                                status_code=303)
    return act(post, list_name, edition, change, typed=typed)


@router.post("/desk/{list_name}/intro")
def intro(list_name: str, post: DeskPost, edition: Field = "", subject: Field = "",
          intro: Field = "") -> Response:
    def change(s: Session, mlist: MailingList, ed: Edition) -> Done:
        ed = curate.editable(s, ed)
        # The introduction first, then both: to know which field is refused.
        with about("intro-text"):
            curate.set_intro(s, ed, intro)
        with about("subject"):
            curate.set_intro(s, ed, intro, subject=subject)
        return Done("intro")
    return act(post, list_name, edition, change,
               typed={"subject": subject, "intro-text": intro})


@router.post("/desk/{list_name}/approve")
def approve(list_name: str, post: DeskPost, edition: Field = "") -> Response:
    def change(s: Session, mlist: MailingList, ed: Edition) -> Done:
        post.app.require_fits(ed, mlist)
        curate.approve(s, ed)
        return Done("approved")
    return act(post, list_name, edition, change)


@router.post("/desk/{list_name}/schedule")
def schedule(list_name: str, post: DeskPost, edition: Field = "", when: Field = "",
             clear: Field = "") -> Response:
    def change(s: Session, mlist: MailingList, ed: Edition) -> Done:
        if clear:
            curate.schedule(s, ed, None, now=post.app.clock())
            return Done("unscheduled")
        ed = curate.editable(s, ed)
        post.app.require_fits(ed, mlist)
        with about("when"):
            curate.schedule(s, ed, parse_local(when, mlist), now=post.app.clock())
        return Done("scheduled")
    return act(post, list_name, edition, change, typed={} if clear else {"when": when})


@router.post("/desk/{list_name}/fit")
def fit(list_name: str, post: DeskPost, edition: Field = "") -> Response:
    """"Make it fit": a draft over `[edition] html_max_kb` made to fit (`App.fit`: blurbs
    and notes cut short, then stories moved to "also new" or held over), and the desk
    shown again saying what was done (`Fit.message`). One that cannot be made to fit is
    left as it was, as `digest edition preview` leaves it. Safe to post again."""
    def change(s: Session, mlist: MailingList, ed: Edition) -> Shown:
        ed = curate.editable(s, ed)  # locked, as every change is
        result = post.app.fit(ed, mlist)
        if result.fits:
            return Shown(notice=result.message(), size=result.after)
        if ed.status != EditionStatus.DRAFT:
            return Shown(size=result.after, error=(
                f"Edition #{ed.number} is {ed.status} and is not changed by fitting: its "
                f"HTML is {kb(result.after)}, over the {kb(result.limit)} limit. Shorten "
                "its blurbs and notes, or move stories to \"Also new\", by hand"))
        # Rolled back by `act`: the editors' words are not cut for nothing.
        return Shown(size=result.before, error=Fit(result.before, result.before,
                                                   result.limit, best=result.after).message())
    return act(post, list_name, edition, change)


@router.post("/desk/{list_name}/test")
def send_test(list_name: str, post: DeskPost, edition: Field = "") -> Response:
    """One copy to the logged-in user's own address; a render and a send, no commit.
    At most `[web] test_sends_per_hour` per user (`proofs`): then 429 with Retry-After."""
    def change(s: Session, mlist: MailingList, ed: Edition) -> Done:
        send_proof(post.app, s, post.user, ed, mlist, post.user.email)
        return Done("tested")
    try:
        return act(post, list_name, edition, change)
    except TooManyProofs as exc:
        page = render_draft(post.app, post.pages, post.viewer, post.user, list_name,
                            status=429, error=sentence(str(exc)))
        page.headers["Retry-After"] = retry_after_header(exc.wait)
        return page
