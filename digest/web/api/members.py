"""/lists/{name}/subscribers: a list's members, adding one or many, status changes.

Admins only: these are people's addresses and consent records. Adding follows the
rules of `subscribers.members` (suppressed addresses are refused; a pending member on a
double opt-in list gets a confirmation mail); a bulk add is an import
(`subscribers.importing`): it never adds back anyone who unsubscribed.

Confirmation mails are queued in the request's transaction and sent by the sender worker
(`digest serve`, `digest worker`), as editions are. (Not as a background task of the
request: on SQLite a second writer in this process would make the next request's
transaction fail to upgrade from reading to writing.)
"""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.app import App
from digest.deliver.confirm import queue_confirmation, queue_pending
from digest.web.api.deps import Address, Admin, After, Limit, ListName, answer, int_cursor, refusals
from digest.web.api.errors import ApiError
from digest.web.api.schemas import (
    BulkAdd,
    BulkReject,
    BulkResult,
    MemberAdd,
    MemberAdded,
    MemberChanged,
    MemberOut,
    MemberPatch,
    Page,
)
from digest.web.deps import AppDep
from subscribers.export import unescape
from subscribers.importing import import_csv
from subscribers.lists import get_list
from subscribers.members import (
    ADDED,
    SUPPRESSED,
    UNCHANGED,
    add_member,
    get_member,
    has_tag,
    is_suppressed,
    unsubscribe,
)
from subscribers.models import MailingList, Membership, MembershipStatus, Subscriber
from subscribers.suppress import suppressed_among

router = APIRouter(tags=["subscribers"])
NOT_FOUND = refusals(e404="No such list, or the address is not on it")
ORIGIN = "api"


@router.get("/lists/{name}/subscribers", summary="A list's members")
def members_index(
    user: Admin, app: AppDep, name: ListName, after: After = None, limit: Limit = 50,
    status: Annotated[MembershipStatus | None,
                      Query(description="Only members with this status")] = None,
    tag: Annotated[str | None, Query(max_length=64, description="Only with this tag")] = None,
) -> Page[MemberOut]:
    """Members in the order they joined, a page at a time (a keyset: pages stay right
    while members join)."""
    start = int_cursor(after)
    with app.sessions() as s:
        mlist = get_list(s, name)
        stmt = (select(Membership, Subscriber)
                .join(Subscriber, Subscriber.id == Membership.subscriber_id)
                .where(Membership.list_id == mlist.id)
                .order_by(Membership.id).limit(limit + 1))
        if status is not None:
            stmt = stmt.where(Membership.status == status)
        if tag is not None:
            stmt = stmt.where(has_tag(s, tag))
        if start is not None:
            stmt = stmt.where(Membership.id > start)
        rows = s.execute(stmt).all()
        page, more = rows[:limit], len(rows) > limit
        blocked = suppressed_among(s, [sub.email_hash for _, sub in page],
                                   {sub.domain for _, sub in page})
        data = [member_out(m, sub, sub.email_hash in blocked or sub.domain in blocked)
                for m, sub in page]
    return Page(data=data, next=str(page[-1][0].id) if more else None)


@router.post("/lists/{name}/subscribers", status_code=201, summary="Add a subscriber",
             responses={**NOT_FOUND, **refusals(e409="The address is suppressed"),
                        200: answer(MemberAdded, "They were on the list already")})
def members_add(user: Admin, app: AppDep, name: ListName, body: MemberAdd,
                response: Response) -> MemberAdded:
    """Add one address (or re-subscribe one who left). On a double opt-in list they are
    pending and a confirmation mail is queued for them, unless `confirmed` is true."""
    now = app.clock()
    with app.sessions() as s:
        mlist = get_list(s, name)
        membership, outcome = add_member(
            s, mlist, body.email, name=body.name, origin=ORIGIN, now=now,
            confirmed=body.confirmed or not mlist.double_optin)
        if membership is None or outcome == SUPPRESSED:
            raise _suppressed(body.email)
        queued = queue_confirmation(s, membership, now)
        s.commit()
        if queued:
            app.mail_queued.set()
        if outcome != ADDED:
            response.status_code = 200
        out = member_out(membership, membership.subscriber, False)
        return MemberAdded.model_validate({**out.model_dump(), "outcome": outcome,
                                           "confirmation_queued": queued})


@router.get("/lists/{name}/subscribers/{email}", responses=NOT_FOUND, summary="One member")
def members_show(user: Admin, app: AppDep, name: ListName, email: Address) -> MemberOut:
    with app.sessions() as s:
        membership = get_member(s, get_list(s, name), email)
        return member_out(membership, membership.subscriber, is_suppressed(s, email))


@router.patch("/lists/{name}/subscribers/{email}", summary="Confirm, unsubscribe, remind",
              responses={**NOT_FOUND, **refusals(e409="Suppressed, or not pending")})
def members_change(user: Admin, app: AppDep, name: ListName, email: Address,
                   body: MemberPatch) -> MemberChanged:
    """`status: confirmed` vouches for the member's consent; `unsubscribed` takes them off
    the list (the consent record stays); `resend_confirmation` queues a new link for a
    pending member."""
    now = app.clock()
    with app.sessions() as s:
        mlist = get_list(s, name)
        membership = get_member(s, mlist, email)
        changed = queued = False
        wanted = MembershipStatus(body.status) if body.status else None
        if wanted == MembershipStatus.CONFIRMED:
            _, outcome = add_member(s, mlist, email, confirmed=True, origin=ORIGIN, now=now)
            if outcome == SUPPRESSED:
                raise _suppressed(email)
            changed = outcome != UNCHANGED
        elif wanted == MembershipStatus.UNSUBSCRIBED:
            changed = unsubscribe(s, membership, now=now, reason=ORIGIN)
        if body.resend_confirmation:
            if membership.status != MembershipStatus.PENDING:
                raise ApiError(409, "not_pending", f"{membership.subscriber.email} is "
                               f"{membership.status} on {mlist.name}, not pending: there is "
                               "nothing to confirm")
            queued = queue_confirmation(s, membership, now)
        s.commit()
        if queued:
            app.mail_queued.set()
        out = member_out(membership, membership.subscriber, is_suppressed(s, email))
        return MemberChanged(**out.model_dump(), changed=changed, confirmation_queued=queued)


@router.post("/lists/{name}/subscribers/bulk", summary="Add up to 10,000 subscribers",
             responses=refusals(e404="No such list"))
def members_bulk(user: Admin, app: AppDep, name: ListName, body: BulkAdd) -> BulkResult:
    """Add many addresses at once, as an import: each is added, updated, unchanged,
    suppressed or rejected (with the reason). Nobody who unsubscribed is added back.
    Pending members get a confirmation mail queued unless `confirmed` is true."""
    with app.sessions() as s:
        mlist = get_list(s, name)
        return bulk_add(s, mlist, body, app)


def bulk_add(s: Session, mlist: MailingList, body: BulkAdd, app: App) -> BulkResult:
    """The rows through `import_csv`, the one implementation of the import rules, by way
    of a temporary CSV file; its rejects file is read back into `rejects`."""
    confirmed = body.confirmed or not mlist.double_optin  # as `digest subscribers import`
    rejects: list[BulkReject] = []
    rows: list[tuple[int, str, str]] = []  # (index in the request, email, name)
    for i, row in enumerate(body.subscribers):
        # One CSV line per row, so that the rejects' line numbers lead back to it.
        email, person = (" ".join(v.replace("\0", " ").splitlines()) for v in (row.email,
                                                                                row.name))
        if not email.strip():
            rejects.append(BulkReject(index=i, email=row.email, reason="no email address"))
        else:
            rows.append((i, email, person))
    with tempfile.TemporaryDirectory(prefix="digest-bulk-") as tmp:
        path, rejects_path = Path(tmp, "bulk.csv"), Path(tmp, "rejects.csv")
        with path.open("w", encoding="utf-8", errors="replace", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["email", "name"])
            writer.writerows([email, person] for _, email, person in rows)
        report = import_csv(s, mlist, path, confirmed=confirmed, now=app.clock(),
                            rejects_path=rejects_path)
        if report.rejects_path is not None:
            with report.rejects_path.open(encoding="utf-8", newline="") as f:
                for record in csv.DictReader(f):
                    index = rows[int(record["line"]) - 2][0]
                    rejects.append(BulkReject(index=index, email=body.subscribers[index].email,
                                              reason=unescape(record["reason"])))
    queued = 0 if confirmed else queue_pending(s, mlist, app.clock())
    s.commit()
    if queued:
        app.mail_queued.set()
    return BulkResult(added=report.added, updated=report.updated, unchanged=report.unchanged,
                      suppressed=report.suppressed, rejected=len(rejects),
                      rejects=sorted(rejects, key=lambda r: r.index),
                      confirmations_queued=queued)


def member_out(m: Membership, sub: Subscriber, suppressed: bool) -> MemberOut:
    return MemberOut(
        email=sub.email, name=sub.name, status=m.status,
        tags=sub.tags or [], origin=m.origin, created_at=m.created_at,
        confirmed_at=m.confirmed_at, unsubscribed_at=m.unsubscribed_at,
        unsubscribe_reason=m.unsubscribe_reason, suppressed=suppressed,
    )


def _suppressed(email: str) -> ApiError:
    return ApiError(409, "suppressed", f"{email.strip()} is suppressed (it bounced, "
                    "complained, left all mail, was blocked or forgotten) and is not "
                    "subscribed; GET /subscribers/{email} says why")

