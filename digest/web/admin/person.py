"""One subscriber in the console: everything stored about them (`people.person_data`),
their deliveries, and the changes an admin makes: name, time zone, tags and attributes;
status per list; suppression; and forget, after a page that asks to be sure.

Pages are addressed by the subscriber's id, never their address, so no address ends up
in a URL, a proxy log or a browser's history.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.app import App
from digest.deliver.confirm import queue_confirmation
from digest.errors import InvalidInput
from digest.imports import imports_dir
from digest.models import Delivery, Edition, EditionKind
from digest.privacy import forget, person_data
from digest.state import outbox_dir
from digest.web.admin.common import (
    AdminPage,
    Fields,
    get_or_404,
    list_or_404,
    notice,
    refused,
    render,
    see_other,
    when,
)
from digest.web.admin.subscribers import ADMIN_ORIGIN
from digest.web.auth import AdminUser, CsrfForm, Viewer
from digest.web.deps import AppDep, PagesDep, RowId
from digest.web.forms import in_transaction
from digest.web.pages import Pages, WebSession, sentence
from subscribers.lists import all_lists
from subscribers.members import add_member, check_status, confirm, unsubscribe
from subscribers.models import MailingList, MembershipStatus, Subscriber
from subscribers.people import (
    PLACEHOLDER,
    parse_assignments,
    set_attributes,
    tag_subscriber,
)
from subscribers.suppress import ADDRESS_REASONS, suppress, unsuppress

router = APIRouter(include_in_schema=False)
RECENT_DELIVERIES = 20
#: What an admin may give as the reason of a suppression they add.
MANUAL_REASONS = tuple(r for r in ADDRESS_REASONS if r not in ("forgotten", "unsubscribe_all"))


@dataclass(frozen=True)
class DeliveryRow:
    list_name: str
    edition: str  # "no. 3: subject", or "confirmation mail"
    status: str
    attempts: int
    sent: str
    error: str


@dataclass(frozen=True, kw_only=True)
class PersonPage(AdminPage):
    """web/admin/subscriber.html. `data` is `people.person_data` (JSON-ready);
    `edit` holds the edit form's values (as stored, or as typed when `error`)."""

    id: int
    data: dict[str, Any]
    deliveries: list[DeliveryRow]
    edit: dict[str, str]
    lists: list[str]  # lists they are not on, to add them to
    reasons: tuple[str, ...] = MANUAL_REASONS
    statuses: tuple[str, ...] = tuple(MembershipStatus)
    error: str = ""
    errors_at: str = ""  # which form the error is about: edit, status, add, suppress
    forgetting: bool = False  # the page asking to confirm forget


@router.get("/admin/subscribers/{subscriber_id}")
def person_page(subscriber_id: RowId, user: AdminUser, session: Viewer, app: AppDep,
                pages: PagesDep, done: str = "") -> Response:
    return _page(app, pages, session, subscriber_id, done=notice(done))


@router.post("/admin/subscribers/{subscriber_id}")
def edit(subscriber_id: RowId, user: AdminUser, _: CsrfForm, form: Fields, session: Viewer,
         app: AppDep, pages: PagesDep) -> Response:
    """Name, time zone, tags (comma-separated: the set they end up with) and attributes
    (one key=value a line: the whole set, so a line taken out removes that key)."""
    def work(s: Session) -> None:
        subscriber = get_or_404(s, Subscriber, subscriber_id)
        email, now = subscriber.email, app.clock()
        lines = [line for line in form.get("attributes").splitlines() if line.strip()]
        given = parse_assignments(lines) if lines else {}
        values: dict[str, Any] = dict.fromkeys(subscriber.attributes or {})  # all removed
        values.update(given)
        values.update(name=form.get("name"), timezone=form.get("timezone"))
        set_attributes(s, email, values, now=now)
        wanted = {t.strip() for t in form.get("tags").split(",") if t.strip()}
        current = set(subscriber.tags or [])
        tag_subscriber(s, email, wanted, now=now)  # checks and adds
        gone = current - {t.lower() for t in wanted}
        if gone:
            tag_subscriber(s, email, gone, remove=True, now=now)

    try:
        in_transaction(app, work)
    except InvalidInput as exc:
        typed = {k: form.get(k) for k in ("name", "timezone", "tags", "attributes")}
        return _page(app, pages, session, subscriber_id, error=sentence(str(exc)),
                     errors_at="edit", edit=typed, status=400)
    return see_other(f"/admin/subscribers/{subscriber_id}?done=subscriber-saved")


@router.post("/admin/subscribers/{subscriber_id}/status")
def set_status(subscriber_id: RowId, user: AdminUser, _: CsrfForm, form: Fields,
               session: Viewer, app: AppDep, pages: PagesDep) -> Response:
    """Move a membership (`list`) to `status`, or put them on a new list: confirmed
    means the admin vouches for their consent; pending sends a confirmation mail."""
    list_name, status = form.get("list"), form.get("status")

    def work(s: Session) -> bool:
        subscriber = get_or_404(s, Subscriber, subscriber_id)
        return _move(s, list_or_404(s, list_name), subscriber, status, app.clock())

    try:
        queued = in_transaction(app, work)
    except InvalidInput as exc:
        return _page(app, pages, session, subscriber_id, error=sentence(str(exc)),
                     errors_at="status", status=400)
    if queued:
        app.mail_queued.set()  # the sender mails it; a request never sends
    return see_other(f"/admin/subscribers/{subscriber_id}?done=status-saved")


def _move(s: Session, mlist: MailingList, subscriber: Subscriber, status: str,
          now: dt.datetime) -> bool:
    """Whether a confirmation mail was queued."""
    wanted = check_status(status)
    current = next((m for m in subscriber.memberships if m.list_id == mlist.id), None)
    if wanted == MembershipStatus.UNSUBSCRIBED:
        if current is not None:
            unsubscribe(s, current, now=now, reason="admin")
        return False
    if current is not None and current.status == MembershipStatus.CONFIRMED \
            and wanted == MembershipStatus.PENDING:
        raise InvalidInput("a confirmed member is never set back to pending; unsubscribe "
                           "them, or leave them confirmed")
    if current is not None and current.status == MembershipStatus.PENDING \
            and wanted == MembershipStatus.CONFIRMED:
        confirm(s, current, now=now)
        return False
    member, outcome = add_member(s, mlist, subscriber.email,
                                 confirmed=wanted == MembershipStatus.CONFIRMED,
                                 origin=ADMIN_ORIGIN, now=now)
    if member is None or outcome == "suppressed":
        raise InvalidInput("the address is suppressed; lift the suppression first")
    return queue_confirmation(s, member, now)


@router.post("/admin/subscribers/{subscriber_id}/suppress")
def add_suppression(subscriber_id: RowId, user: AdminUser, _: CsrfForm, form: Fields,
                    session: Viewer, app: AppDep, pages: PagesDep) -> Response:
    def work(s: Session) -> None:
        subscriber = get_or_404(s, Subscriber, subscriber_id)
        suppress(s, subscriber.email, form.get("reason") or "admin",
                 form.get("detail")[:1000], now=app.clock())

    try:
        in_transaction(app, work)
    except InvalidInput as exc:
        return _page(app, pages, session, subscriber_id, error=sentence(str(exc)),
                     errors_at="suppress", status=400)
    return see_other(f"/admin/subscribers/{subscriber_id}?done=suppressed")


@router.post("/admin/subscribers/{subscriber_id}/unsuppress")
def lift_suppression(subscriber_id: RowId, user: AdminUser, _: CsrfForm,
                     app: AppDep) -> Response:
    def work(s: Session) -> None:
        unsuppress(s, get_or_404(s, Subscriber, subscriber_id).email)

    in_transaction(app, work)
    return see_other(f"/admin/subscribers/{subscriber_id}?done=unsuppressed")


@router.get("/admin/subscribers/{subscriber_id}/forget")
def forget_page(subscriber_id: RowId, user: AdminUser, session: Viewer, app: AppDep,
                pages: PagesDep) -> Response:
    """Asks to be sure, saying what is erased and what is kept."""
    return _page(app, pages, session, subscriber_id, forgetting=True)


@router.post("/admin/subscribers/{subscriber_id}/forget")
def forget_post(subscriber_id: RowId, user: AdminUser, _: CsrfForm, form: Fields,
                app: AppDep) -> Response:
    if form.get("confirm") != "yes":
        return see_other(f"/admin/subscribers/{subscriber_id}/forget")

    def work(s: Session) -> None:
        forget(s, get_or_404(s, Subscriber, subscriber_id).email, now=app.clock(),
               imports_dir=imports_dir(app), outbox_dir=outbox_dir(app.settings))

    in_transaction(app, work)
    return see_other("/admin/subscribers?done=forgotten")


# -- the page ----------------------------------------------------------------------------


def _page(app: App, pages: Pages, session: WebSession, subscriber_id: int, *,
          done: str = "", error: str = "", errors_at: str = "",
          edit: dict[str, str] | None = None, forgetting: bool = False,
          status: int = 200) -> Response:
    with app.sessions() as s:
        subscriber = get_or_404(s, Subscriber, subscriber_id)
        if subscriber.email == PLACEHOLDER.format(id=subscriber.id):
            return refused(pages, session, "Forgotten", (
                f"this person was forgotten on {when(subscriber.updated_at)}: nothing "
                f"personal is kept; their {len(subscriber.memberships)} memberships and "
                "their deliveries stay, without it, so past editions still add up"),
                status=200, back="/admin/subscribers")
        data = person_data(s, subscriber.email)
        on = {m["list"] for m in data["memberships"]}
        page = PersonPage(
            title=f"Forget {subscriber.email}?" if forgetting else subscriber.email,
            section="subscribers", notice=done, id=subscriber.id,
            data=data, deliveries=_deliveries(s, subscriber.id),
            edit=edit or _stored(subscriber), error=error, errors_at=errors_at,
            lists=[m.name for m in all_lists(s) if m.name not in on], forgetting=forgetting)
    return render(pages, "web/admin/subscriber.html", page, session, status=status)


def _stored(subscriber: Subscriber) -> dict[str, str]:
    """The edit form's fields as stored: attributes one `key=value` a line, written so
    that `people.parse_assignments` reads each back as the same value."""
    lines = []
    for key, value in sorted((subscriber.attributes or {}).items()):
        lines.append(f"{key}={_as_typed(value)}")
    return {"name": subscriber.name, "timezone": subscriber.timezone,
            "tags": ", ".join(subscriber.tags or []), "attributes": "\n".join(lines)}


def _as_typed(value: Any) -> str:
    """Text as it is unless it would read back as JSON ("42", "true"); the rest as JSON."""
    if isinstance(value, str) and value and "\n" not in value:
        try:
            json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, ensure_ascii=False)


def _deliveries(s: Session, subscriber_id: int) -> list[DeliveryRow]:
    rows = s.execute(
        select(Delivery, Edition.kind, Edition.number, Edition.subject, MailingList.name)
        .join(Edition, Edition.id == Delivery.edition_id)
        .join(MailingList, MailingList.id == Edition.list_id)
        .where(Delivery.subscriber_id == subscriber_id)
        .order_by(Delivery.id.desc()).limit(RECENT_DELIVERIES))
    return [DeliveryRow(name, f"no. {number}: {subject}" if kind == EditionKind.DIGEST
                        else "confirmation mail", d.status, d.attempts, when(d.sent_at),
                        d.last_error)
            for d, kind, number, subject, name in rows]

