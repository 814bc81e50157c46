"""Letting an edition go: approve, schedule, and the scheduled ones when their time comes.

Preview, a test to yourself and "send now" need the templates and a backend: they are
`App.preview`, `App.send_test` and `App.send_now`."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest.curate.draft import editable
from digest.editions import require_sendable
from digest.errors import InvalidInput, NotReady
from digest.models import APPROVED, DIGEST, Edition
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
