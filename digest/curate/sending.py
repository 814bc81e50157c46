"""Letting an edition go: approve it, give it a time (`digest.schedule.release_scheduled`
starts it when the time comes).

Preview, a test to yourself and "send now" need the templates and a backend: they are
`App.preview`, `App.send_test` and `App.send_now`."""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest.curate.draft import editable
from digest.editions import require_sendable
from digest.errors import InvalidInput
from digest.models import Edition, EditionStatus
from subscribers.members import recipients_query
from subscribers.models import MailingList

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
    changed = edition.status != EditionStatus.APPROVED
    edition.status = EditionStatus.APPROVED
    s.flush()
    return changed


def schedule(s: Session, edition: Edition, when: dt.datetime | None, *,
             now: dt.datetime) -> None:
    """Approve the edition to go out at `when` (aware, in the future, to the minute);
    or, with None, take its time away again, so it goes at the list's next scheduled
    time.

    It starts going out within a minute of `when`: the scheduler runs
    `digest.schedule.release_scheduled` each minute. The list's own schedule still runs,
    and a cron time before `when` takes the edition along only if `when` is earlier.
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
    edition.scheduled_for, edition.status = when, EditionStatus.APPROVED
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

