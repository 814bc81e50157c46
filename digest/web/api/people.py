"""/subscribers (people, whatever their lists) and /suppressions. Admins only."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Path, Query, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.errors import InvalidInput, NotFound
from digest.imports import imports_dir
from digest.privacy import forget, person_data
from digest.state import outbox_dir
from digest.web.api.deps import Address, Admin, After, Limit, answer, int_cursor, refusals
from digest.web.api.schemas import (
    DeliveryCounts,
    Forgotten,
    Page,
    Person,
    PersonPatch,
    Removed,
    SubscriberSummary,
    SuppressionAdd,
    SuppressionAdded,
    SuppressionOut,
)
from digest.web.deps import AppDep
from subscribers.addresses import normalize, normalize_domain
from subscribers.models import MailingList, Membership, Subscriber, Suppression
from subscribers.people import set_attributes, tag_subscriber
from subscribers.suppress import REASONS, block_domain, suppress, unblock_domain, unsuppress

router = APIRouter()
AddressOrDomain = Annotated[str, Path(max_length=320, description="An address or a domain",
                                      examples=["alice@example.org", "example.net"])]
SuppressionReason = Literal["hard_bounce", "complaint", "unsubscribe_all", "admin", "forgotten",
                            "domain"]
assert get_args(SuppressionReason) == REASONS, "the API documents every suppression reason"
NOBODY = refusals(e404="Nothing is stored about that address")


@router.get("/subscribers", tags=["subscribers"], summary="Find people")
def people_index(
    user: Admin, app: AppDep, after: After = None, limit: Limit = 50,
    q: Annotated[str, Query(max_length=320, description="The start of their address")] = "",
) -> Page[SubscriberSummary]:
    """People whose address starts with `q` (any case), by address, with their lists."""
    prefix = q.strip().lower()
    with app.sessions() as s:
        stmt = select(Subscriber).order_by(Subscriber.email).limit(limit + 1)
        if prefix:
            stmt = stmt.where(Subscriber.email.startswith(prefix, autoescape=True))
        if after is not None:
            stmt = stmt.where(Subscriber.email > after)
        found = list(s.scalars(stmt))
        page, more = found[:limit], len(found) > limit
        lists = _lists_of(s, [sub.id for sub in page])
        data = [SubscriberSummary(email=sub.email, name=sub.name, tags=sub.tags or [],
                                  created_at=sub.created_at, lists=lists.get(sub.id, {}))
                for sub in page]
    return Page(data=data, next=page[-1].email if more else None)


def _lists_of(s: Session, ids: list[int]) -> dict[int, dict[str, str]]:
    rows = s.execute(select(Membership.subscriber_id, MailingList.name, Membership.status)
                     .join(MailingList, MailingList.id == Membership.list_id)
                     .where(Membership.subscriber_id.in_(ids)).order_by(MailingList.name))
    lists: dict[int, dict[str, str]] = {}
    for subscriber_id, name, status in rows:
        lists.setdefault(subscriber_id, {})[name] = status
    return lists


@router.get("/subscribers/{email}", tags=["subscribers"], responses=NOBODY,
            summary="Everything stored about a person")
def people_show(user: Admin, app: AppDep, email: Address) -> Person:
    """The subscriber, each membership with its consent record (how, when, from which
    address), the suppression if any, and their deliveries counted: a GDPR export."""
    with app.sessions() as s:
        return Person.model_validate(person_data(s, email))


@router.patch("/subscribers/{email}", tags=["subscribers"], responses=NOBODY,
              summary="Change name, time zone, attributes, tags")
def people_change(user: Admin, app: AppDep, email: Address, body: PersonPatch) -> Person:
    """`attributes` are set key by key (null removes a key); tags are added and taken
    away. Everything is checked before anything is stored. Answers with everything
    stored about them now."""
    values: dict[str, Any] = dict(body.attributes or {})
    for key in ("name", "timezone"):
        if getattr(body, key) is not None:
            values[key] = getattr(body, key)
    now = app.clock()
    with app.sessions() as s:
        if values:
            set_attributes(s, email, values, now=now)
        if body.add_tags:
            tag_subscriber(s, email, body.add_tags, now=now)
        if body.remove_tags:
            tag_subscriber(s, email, body.remove_tags, remove=True, now=now)
        s.commit()
        return Person.model_validate(person_data(s, email))


@router.delete("/subscribers/{email}", tags=["subscribers"], responses=NOBODY,
               summary="Forget a person (GDPR erasure)")
def people_forget(user: Admin, app: AppDep, email: Address) -> Forgotten:
    """Erase what is stored about the person, a subscriber or not: the database's, the
    rows of console imports' rejects files and the outbox messages naming them. The
    address stays suppressed, kept only as a hash, so nothing adds it again; memberships
    and deliveries stay, emptied, under a placeholder address. Answers with what was
    stored before and what went. Harmless to repeat (200 once the address is
    suppressed); 404 only when nothing at all names the address."""
    with app.sessions() as s:
        try:
            before = Person.model_validate(person_data(s, email))
        except NotFound:  # not in the database: the files may still name them
            before = Person(email=normalize(email), subscriber=None, memberships=[],
                            suppression=None, deliveries=DeliveryCounts(total=0, by_status={}))
        report = forget(s, email, now=app.clock(), imports_dir=imports_dir(app),
                        outbox_dir=outbox_dir(app.settings))
        s.commit()
        return Forgotten(removed=before, placeholder=report.placeholder,
                         memberships=report.memberships, deliveries=report.deliveries,
                         suppression_reason=report.suppression.reason,
                         rejected_rows=report.rejected_rows,
                         outbox_messages=report.outbox_messages,
                         running_imports=report.running_imports)


# -- suppressions ----------------------------------------------------------------------


@router.get("/suppressions", tags=["suppressions"], summary="Suppressed addresses, domains")
def suppressions_index(
    user: Admin, app: AppDep, after: After = None, limit: Limit = 50,
    reason: Annotated[SuppressionReason | None, Query(description="Only this reason")] = None,
) -> Page[SuppressionOut]:
    """Newest first. An address shows when a subscriber with it is still stored; else
    only its hash is kept and `email` is null."""
    start = int_cursor(after)
    with app.sessions() as s:
        stmt = (select(Suppression, Subscriber.email)
                .outerjoin(Subscriber, Subscriber.email_hash == Suppression.email_hash)
                .order_by(Suppression.id.desc()).limit(limit + 1))
        if reason is not None:
            stmt = stmt.where(Suppression.reason == reason)
        if start is not None:
            stmt = stmt.where(Suppression.id < start)
        rows = s.execute(stmt).all()
        page, more = rows[:limit], len(rows) > limit
        data = [suppression_out(row, email) for row, email in page]
    return Page(data=data, next=str(page[-1][0].id) if more else None)


@router.post("/suppressions", tags=["suppressions"], status_code=201,
             summary="Suppress an address or block a domain",
             responses={200: answer(SuppressionAdded, "It was suppressed already")})
def suppressions_add(user: Admin, app: AppDep, body: SuppressionAdd,
                     response: Response) -> SuppressionAdded:
    """Give `email` (with a `reason`) or `domain`. Memberships are left as they are, but
    nothing is sent to the address and no list or import adds it again."""
    if (body.email is None) == (body.domain is None):
        raise _one_of()
    with app.sessions() as s:
        if body.email is not None:
            row, new = suppress(s, body.email, body.reason, body.detail, now=app.clock())
            shown: str | None = normalize(body.email)
        else:
            assert body.domain is not None
            row, new = block_domain(s, body.domain, body.detail, now=app.clock())
            shown = None
        s.commit()
        if not new:
            response.status_code = 200
        return SuppressionAdded(**suppression_out(row, shown).model_dump(), created=new)


@router.delete("/suppressions/{address}", tags=["suppressions"],
               responses=refusals(e404="Not suppressed"),
               summary="Lift a suppression or a domain block")
def suppressions_remove(user: Admin, app: AppDep, address: AddressOrDomain) -> Removed:
    """`address` is an email address (its suppression is lifted; a block of its domain
    stays) or a domain (its block is lifted). Whoever unsubscribed stays unsubscribed."""
    with app.sessions() as s:
        if "@" in address:
            if not unsuppress(s, address):
                raise NotFound(f"{normalize(address)} is not suppressed itself (its domain "
                               "may be blocked: DELETE that domain to lift it)")
        elif not unblock_domain(s, address):
            raise NotFound(f"domain {normalize_domain(address)!r} is not blocked")
        s.commit()
    return Removed(removed=True)


def suppression_out(row: Suppression, email: str | None) -> SuppressionOut:
    return SuppressionOut(
        id=row.id, scope="domain" if row.domain else "address", email=email,
        domain=row.domain or None, reason=row.reason, detail=row.detail,
        created_at=row.created_at,
    )


def _one_of() -> Exception:
    return InvalidInput("give either `email` (an address) or `domain`, not both")
