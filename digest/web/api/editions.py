"""/editions and a list's draft: the editor's desk as JSON, over `digest.curate`.

Editions are named by their id (`GET /lists/{name}/editions` gives them). Only a draft
or an approved edition can change; one sending or sent answers 422 saying so. One that
may not go out (no articles: `digest.editions.require_sendable`) is not approved,
scheduled or sent: 409 `not_ready` says why. Sending queues the deliveries and answers
202: the sender worker (`digest serve`, `digest worker`) delivers them.
"""

from __future__ import annotations

import requests
from fastapi import APIRouter, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest import curate
from digest.app import App
from digest.errors import InvalidInput, NotFound
from digest.models import Edition, EditionItem, EditionKind
from digest.web.api.deps import (
    After,
    Editor,
    Id,
    Limit,
    ListName,
    int_cursor,
    refusals,
)
from digest.web.api.edition_schemas import (
    EditionOut,
    EditionPatch,
    EditionSummary,
    ItemAdd,
    ItemOut,
    ItemPatch,
    PreviewOut,
    Proposal,
    ScheduleIn,
    SendQueued,
    TestMail,
    TestMailSent,
)
from digest.web.api.errors import ApiError
from digest.web.api.schemas import Page
from digest.web.deps import AppDep
from digest.web.proofs import NotAUser, TooManyProofs, proof_recipient, send_proof
from digest.web.throttle import retry_after_header
from subscribers.addresses import normalize
from subscribers.lists import get_list
from subscribers.members import is_suppressed
from subscribers.models import MailingList

router = APIRouter(tags=["editions"])
NOT_FOUND = refusals(e404="No such edition (or item)")
FROZEN = refusals(e404="No such edition (or item)",
                  e422="A value is refused, or the edition is sending or sent")
#: What lets an edition go: it must be fit to go out.
RELEASE = refusals(e404="No such edition", e409="The edition may not go out: no articles, or "
                   "its HTML is over [edition] html_max_kb",
                   e422="A value is refused, or the edition is sending or sent")


@router.get("/lists/{name}/editions", responses=refusals(e404="No such list"),
            summary="A list's editions")
def editions_index(user: Editor, app: AppDep, name: ListName, after: After = None,
                   limit: Limit = 50) -> Page[EditionSummary]:
    """Newest first."""
    before = int_cursor(after)
    with app.sessions() as s:
        mlist = get_list(s, name)
        counts = (select(func.count()).where(EditionItem.edition_id == Edition.id)
                  .correlate(Edition).scalar_subquery())
        stmt = (select(Edition, counts)
                .where(Edition.list_id == mlist.id, Edition.kind == EditionKind.DIGEST)
                .order_by(Edition.number.desc()).limit(limit + 1))
        if before is not None:
            stmt = stmt.where(Edition.number < before)
        rows = s.execute(stmt).all()
        page, more = rows[:limit], len(rows) > limit
        data = [summary(e, mlist, n) for e, n in page]
    return Page(data=data, next=str(page[-1][0].number) if more else None)


@router.get("/lists/{name}/draft", summary="The next edition, drafted if need be",
            responses=refusals(e404="No such list, or nothing to send: no new articles"))
def editions_draft(user: Editor, app: AppDep, name: ListName) -> EditionOut:
    """The list's open edition (a draft, approved, or sending); when there is none, a
    new draft of the articles published since the last edition. 404 when there are no
    new articles: add a source, wait for the next fetch, or start one by URL
    (`POST /editions/{id}/items` needs an edition, the desk can start one)."""
    with app.sessions() as s:
        mlist = get_list(s, name)
        edition = curate.draft_for(s, mlist, now=app.clock(), rules=app.edition_rules())
        if edition is None:
            raise ApiError(404, "nothing_to_send", f"list {mlist.name!r} has no open edition "
                           "and no new articles since its last one; nothing to draft")
        s.commit()
        return edition_out(s, edition, mlist, app)


@router.get("/editions/{edition_id}", responses=NOT_FOUND, summary="An edition, its items")
def editions_show(user: Editor, app: AppDep, edition_id: Id) -> EditionOut:
    with app.sessions() as s:
        edition, mlist = _edition(s, edition_id)
        return edition_out(s, edition, mlist, app)


@router.patch("/editions/{edition_id}", responses=FROZEN, summary="Subject and intro")
def editions_change(user: Editor, app: AppDep, edition_id: Id,
                    body: EditionPatch) -> EditionOut:
    with app.sessions() as s:
        edition, mlist = _edition(s, edition_id)
        if body.intro is not None or body.subject is not None:
            intro = edition.intro if body.intro is None else body.intro
            curate.set_intro(s, edition, intro, subject=body.subject)
        s.commit()
        return edition_out(s, edition, mlist, app)


@router.get("/editions/{edition_id}/proposals", responses=NOT_FOUND,
            summary="Articles that could be added")
def editions_proposals(user: Editor, app: AppDep, edition_id: Id) -> Page[Proposal]:
    """The stories new to the list since the edition's window began (first seen
    since, whatever date they claim) that are in no edition yet, newest first (at
    most 200, one page); a story two sources carry is one proposal naming both."""
    with app.sessions() as s:
        edition, mlist = _edition(s, edition_id)
        found = curate.proposals(s, edition, mlist, now=app.clock(),
                                 rules=app.edition_rules())
    return Page(data=[Proposal.model_validate(p) for p in found], next=None)


@router.post("/editions/{edition_id}/items", status_code=201, responses=FROZEN,
             summary="Add an article, or a page by its URL")
def items_add(user: Editor, app: AppDep, edition_id: Id, body: ItemAdd) -> ItemOut:
    """Give `article_id` (from the proposals) or `url` (the page is fetched with the
    feeds' limits, from public addresses only, and its article extracted; 422
    `fetch_failed` if that fails)."""
    if (body.article_id is None) == (body.url is None):
        raise InvalidInput("give either `article_id` (one of the proposals) or `url`")
    page = None
    if body.url is not None:
        # Before any transaction: the fetch may take [gather] timeout seconds. Only
        # public addresses, unless [web] fetch_private_addresses: the editor picks the
        # URL, the server fetches it. A session of its own: this runs in a worker thread.
        with requests.Session() as http:
            page = curate.fetch_page(
                http, body.url, app.fetch_options(),
                private_addresses=app.settings["web.fetch_private_addresses"])
    with app.sessions() as s:
        edition, _mlist = _edition(s, edition_id)
        if page is not None:
            item = curate.add_page(s, edition, page, now=app.clock(),
                                   rules=app.edition_rules())
        else:
            assert body.article_id is not None
            item = curate.add_article(s, edition, body.article_id, rules=app.edition_rules())
        s.commit()
        return ItemOut.model_validate(item)


@router.patch("/editions/{edition_id}/items/{item_id}", responses=FROZEN,
              summary="Edit, pin or move an item")
def items_change(user: Editor, app: AppDep, edition_id: Id, item_id: Id,
                 body: ItemPatch) -> ItemOut:
    """`title`, `summary` and `note` are plain text. `pinned` items lead the edition;
    `brief` puts it in the "also new" list (or back in full); `position` moves the item
    within its group (pinned, in full, in brief)."""
    with app.sessions() as s:
        edition, _mlist = _edition(s, edition_id)
        item = curate.edit_item(s, edition, item_id, title=body.title, summary=body.summary,
                                note=body.note)
        if body.pinned is not None:
            curate.pin_item(s, edition, item_id, body.pinned)
        if body.brief is not None:
            curate.brief_item(s, edition, item_id, body.brief)
        if body.position is not None:
            curate.move_item(s, edition, item_id, to=body.position)
        s.commit()
        return ItemOut.model_validate(item)


@router.delete("/editions/{edition_id}/items/{item_id}", status_code=204, responses=FROZEN,
               summary="Drop an item")
def items_drop(user: Editor, app: AppDep, edition_id: Id, item_id: Id) -> Response:
    """Its article becomes a proposal again."""
    with app.sessions() as s:
        edition, _mlist = _edition(s, edition_id)
        curate.drop_item(s, edition, item_id)
        s.commit()
    return Response(status_code=204)


@router.post("/editions/{edition_id}/approve", responses=RELEASE, summary="Approve")
def editions_approve(user: Editor, app: AppDep, edition_id: Id) -> EditionOut:
    """In review mode an approved edition goes out at the list's next scheduled time.
    It can still be changed."""
    with app.sessions() as s:
        edition, mlist = _edition(s, edition_id)
        app.require_fits(edition, mlist)
        curate.approve(s, edition)
        s.commit()
        return edition_out(s, edition, mlist, app)


@router.post("/editions/{edition_id}/schedule", responses=RELEASE, summary="Send at a time")
def editions_schedule(user: Editor, app: AppDep, edition_id: Id,
                      body: ScheduleIn) -> EditionOut:
    """Approve it to go out at `at` (to the minute, within a year); `at: null` takes the
    time away again."""
    with app.sessions() as s:
        edition, mlist = _edition(s, edition_id)
        if body.at is not None:
            app.require_fits(edition, mlist)
        curate.schedule(s, edition, body.at, now=app.clock())
        s.commit()
        return edition_out(s, edition, mlist, app)


@router.post("/editions/{edition_id}/send", status_code=202, responses=RELEASE,
             summary="Send now")
def editions_send(user: Editor, app: AppDep, edition_id: Id) -> SendQueued:
    """Render the edition once and queue a delivery for every recipient (confirmed,
    not suppressed); the sender worker delivers them. `GET /editions/{id}` shows how
    many it goes to beforehand; `GET /lists/{name}/stats` how it went."""
    with app.sessions() as s:
        edition, mlist = _edition(s, edition_id)
        queued = app.send_now(s, edition, mlist)
        s.commit()
        return SendQueued(edition_id=edition.id, status=edition.status, queued=queued)


# A `to` that is not a user's answers 403 `not_a_user`: described below, and left to the
# "default" response, since a listed 403 means "admins only" in this document.
@router.post("/editions/{edition_id}/test", responses={
    **NOT_FOUND, **refusals(
        e409="The address is suppressed",
        e429="You sent [web] test_sends_per_hour tests within the hour; Retry-After says "
             "when the next may go",
        e502="The mail server did not take the test")},
             summary="Mail yourself a test")
def editions_test(user: Editor, app: AppDep, edition_id: Id, body: TestMail) -> TestMailSent:
    """One copy, built as every subscriber's is, with "[Test]" before the subject; the
    ledger is not touched. It goes to `to`, or to the token user's own address; `to`
    must be the address of a user of this site (403 `not_a_user` otherwise, naming who
    may get one). Each user may send
    `[web] test_sends_per_hour` (10) tests in any hour, here and on the desk together
    (429 with Retry-After beyond)."""
    to = normalize(body.to) if body.to is not None else user.email
    with app.sessions() as s:
        edition, mlist = _edition(s, edition_id)
        try:
            recipient = proof_recipient(s, to)
            if is_suppressed(s, recipient.email):
                raise ApiError(409, "suppressed", f"{to} is suppressed; a test cannot go there")
            to, message_id = send_proof(app, s, user, edition, mlist, recipient.email)
        except NotAUser as exc:
            raise ApiError(403, "not_a_user", str(exc)) from None
        except TooManyProofs as exc:
            raise ApiError(429, "too_many_requests", str(exc),
                           headers={"Retry-After": retry_after_header(exc.wait)}) from None
    return TestMailSent(to=to, message_id=message_id)


@router.get("/editions/{edition_id}/preview", responses=NOT_FOUND,
            summary="The email as it will look")
def editions_preview(user: Editor, app: AppDep, edition_id: Id) -> PreviewOut:
    """Rendered exactly as the email, with sample values for the reader's address and
    an unsubscribe link that does nothing."""
    with app.sessions() as s:
        edition, mlist = _edition(s, edition_id)
        shown = app.preview(edition, mlist)
    return PreviewOut(subject=shown.subject, html=shown.html, text=shown.text)


def _edition(s: Session, edition_id: int) -> tuple[Edition, MailingList]:
    edition = s.get(Edition, edition_id)
    if edition is None or edition.kind != EditionKind.DIGEST:
        raise NotFound(f"edition {edition_id} not found; GET /lists/{{name}}/editions "
                       "lists a list's editions")
    return edition, s.get_one(MailingList, edition.list_id)


def summary(edition: Edition, mlist: MailingList, item_count: int) -> EditionSummary:
    return EditionSummary(
        id=edition.id, list=mlist.name, number=edition.number,
        status=edition.status,
        subject=edition.subject, scheduled_for=edition.scheduled_for,
        created_at=edition.created_at, send_started_at=edition.send_started_at,
        sent_at=edition.sent_at, item_count=item_count,
    )


def edition_out(s: Session, edition: Edition, mlist: MailingList, app: App) -> EditionOut:
    s.refresh(edition)  # curate rereads the row it changes: show that one
    items = sorted(edition.items, key=lambda i: i.position)
    editable = edition.status in curate.EDITABLE
    counts = curate.tally(s, edition, mlist, now=app.clock(), rules=app.edition_rules())
    return EditionOut(
        **summary(edition, mlist, len(items)).model_dump(), intro=edition.intro,
        since=edition.since, cutoff=edition.cutoff,
        recipients=curate.recipients_count(s, mlist) if editable else None,
        full_count=counts.full, brief_count=counts.brief, held_count=counts.held,
        waiting_count=counts.waiting, later_count=counts.later,
        items=[ItemOut.model_validate(i) for i in items],
    )
