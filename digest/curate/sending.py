"""Letting an edition go: approve, schedule, preview, a test to yourself, send now."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest.curate.draft import editable
from digest.deliver.backends import NoEvents, make_backend
from digest.deliver.message import Recipient
from digest.deliver.worker import message_template
from digest.editions import render_context, require_sendable
from digest.errors import DeliveryError, InvalidInput, NotReady
from digest.models import APPROVED, DIGEST, Edition
from digest.render import SUBSCRIBER_SLOTS, Rendered, Slotted, render_edition
from subscribers.members import recipients_query
from subscribers.models import MailingList

if TYPE_CHECKING:
    from digest.app import App

log = logging.getLogger(__name__)

#: How far ahead an edition may be scheduled.
SCHEDULE_AHEAD = dt.timedelta(days=366)


def approve(s: Session, edition: Edition) -> bool:
    """Mark the edition approved (in review mode it may then go out); whether it changed.

    The one approval, for the CLI (`App.approve`), the desk and the API: the row is
    locked and reread, and an edition that may not go out (`require_sendable`: no
    articles, an archived list) is refused. It stays changeable: approval is about
    whether it goes, not what it says.
    """
    edition = editable(s, edition)
    require_sendable(edition, s.get_one(MailingList, edition.list_id))
    changed = edition.status != APPROVED
    edition.status = APPROVED
    s.flush()
    return changed


def schedule(s: Session, edition: Edition, when: dt.datetime | None, *,
             now: dt.datetime) -> None:
    """Approve the edition to go out at `when` (aware, in the future, to the minute);
    or, with None, take its time away again, so it goes at the list's next scheduled
    time.

    It starts going out within a minute of `when` when the scheduler runs
    `release_scheduled` each minute; the list's own schedule still runs, and a cron
    time before `when` takes the edition along only if `when` is earlier.
    """
    edition = editable(s, edition)
    if when is None:
        edition.scheduled_for = None
        s.flush()
        return
    require_sendable(edition, s.get_one(MailingList, edition.list_id))
    if when.tzinfo is None:
        raise InvalidInput("give the time with its UTC offset (2026-11-28T07:00:00+09:00) "
                           "or in UTC (…Z)")
    when = when.astimezone(dt.UTC).replace(second=0, microsecond=0)
    if when <= now:
        raise InvalidInput("that time has passed; pick a time in the future, or send now")
    if when > now + SCHEDULE_AHEAD:
        raise InvalidInput("that is more than a year away; pick a nearer time")
    taken = s.scalar(select(Edition.number).where(
        Edition.list_id == edition.list_id, Edition.scheduled_for == when,
        Edition.id != edition.id))
    if taken is not None:
        raise InvalidInput(f"edition #{taken} is already set for that time; pick another")
    edition.scheduled_for, edition.status = when, APPROVED
    try:
        s.flush()
    except IntegrityError:  # another editor set an edition for that time just now
        s.rollback()
        raise InvalidInput("another edition was just set for that time; pick another") from None


def recipients_count(s: Session, mlist: MailingList) -> int:
    """How many people an edition of the list would go to now: confirmed members whose
    address is not suppressed (what `start_sending` queues)."""
    members = recipients_query(mlist.id).subquery()
    return s.scalar(select(func.count()).select_from(members)) or 0


def send_now(app: App, s: Session, edition: Edition, mlist: MailingList) -> int:
    """Render the edition and queue a delivery for every current recipient; the sender
    worker (`digest serve`, `digest worker`) delivers them. Commits; returns how many
    were queued. `start_sending` refuses an edition that may not go out (NotReady)."""
    edition = editable(s, edition)  # one sending already is refused, not continued
    return app.start_sending(s, edition, mlist)


@dataclass(frozen=True)
class Preview:
    """The edition exactly as the email renders it, slots filled with sample values."""

    html: str
    text: str
    subject: str


def preview(app: App, edition: Edition, mlist: MailingList, *,
            email: str = "reader@example.org", name: str = "Reader") -> Preview:
    """Render the edition as `start_sending` will (Jinja2 and premailer), with sample
    values for the per-subscriber slots and an unsubscribe link that does nothing."""
    rendered = _render(app, edition, mlist)
    values = dict.fromkeys(SUBSCRIBER_SLOTS, "")
    values.update(unsubscribe_url=_sample_unsubscribe_url(app), email=email, name=name)
    return Preview(html=Slotted(rendered.html).fill(values, html=True),
                   text=Slotted(rendered.text).fill(values, html=False),
                   subject=edition.subject)


def send_test(app: App, edition: Edition, mlist: MailingList, to_address: str,
              name: str = "") -> str:
    """Mail one copy of the edition, built as every subscriber's is, with "[Test] "
    before the subject, to `to_address`; the ledger is not touched. Returns the
    Message-ID. Raises DeliveryError when the backend does not take it.

    Uses a backend of its own: the sender worker's may be mid-batch in another thread.
    """
    rendered = _render(app, edition, mlist)
    # A copy never added to a session, so the draft itself stays unrendered.
    copy = Edition(id=edition.id, html=rendered.html, text=rendered.text,
                   subject=f"[Test] {edition.subject}")
    template = message_template(copy, mlist, app.send_options())
    message = template.build(Recipient(0, to_address, name, _sample_unsubscribe_url(app)),
                             app.clock())
    backend = make_backend(app.settings)
    try:
        results = backend.send([message], NoEvents())
    finally:
        backend.close()
    if not results or results[0].status != "sent":
        detail = results[0].detail if results else "no answer"
        raise DeliveryError(f"the test to {to_address} was not accepted: {detail}")
    return message.message_id


def release_scheduled(app: App) -> list[int]:
    """Start sending every approved edition whose scheduled time has come, within
    `[schedule] grace_hours`; returns their ids. The scheduler calls it each minute;
    it is safe to call from several at once (the row is locked, the status rechecked).

    One that may not go out (an editor dropped every article after scheduling it) is
    logged as a warning and its time taken away, as `schedule(s, edition, None)` does:
    the time is dealt with, so it is not tried each minute, and the edition waits for
    an editor; if they fill it, it goes at the list's next scheduled time.
    """
    now = app.clock()
    grace = app.schedule_options().grace
    started = []
    with app.sessions() as s:
        due = s.scalars(select(Edition.id).where(
            Edition.kind == DIGEST, Edition.status == APPROVED,
            Edition.scheduled_for <= now, Edition.scheduled_for > now - grace,
        ).order_by(Edition.scheduled_for)).all()
        for edition_id in due:
            edition = s.get_one(Edition, edition_id, with_for_update=True,
                                populate_existing=True)
            mlist = s.get_one(MailingList, edition.list_id)
            if edition.status != APPROVED:  # sent by someone else since the query
                s.rollback()
                continue
            try:
                app.start_sending(s, edition, mlist)
            except NotReady as exc:
                edition.scheduled_for = None
                s.commit()
                log.warning("list %s: edition #%d did not go out at its scheduled time: %s",
                            mlist.name, edition.number, exc)
                continue
            except Exception:  # one list's broken template must not hold up the others
                s.rollback()
                log.exception("list %s: scheduled edition #%d could not start",
                              mlist.name, edition.number)
                continue
            log.info("list %s: scheduled edition #%d started sending", mlist.name,
                     edition.number)
            started.append(edition_id)
    return started


def _render(app: App, edition: Edition, mlist: MailingList) -> Rendered:
    return render_edition(app.templates,
                          render_context(edition, mlist, app.settings["public_url"]))


def _sample_unsubscribe_url(app: App) -> str:
    # Leads to the "this link does not work" page: a preview or a test must not carry
    # a working token that could unsubscribe a real subscriber.
    return f"{app.settings['public_url'].rstrip('/')}/unsubscribe/preview"
