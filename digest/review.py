"""Review mode: editors approve each edition of a list before it goes out.

A draft is built `[schedule] review_lead_minutes` before the scheduled time (see
`digest.schedule`); editors change it and approve it. At the scheduled time an approved
draft goes out; one nobody approved follows the list's `review_policy`:

    hold     it waits; an editor approves it and it goes out at the next scheduled time
             (or at once with `digest edition send`)
    notify   the same, and the addresses in the list's `editor_emails` are told
    send     it goes out unapproved
"""

from __future__ import annotations

import datetime as dt
import logging
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, getaddresses, make_msgid, parseaddr
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.deliver.backends.base import Backend, NoEvents
from digest.deliver.message import Outgoing
from digest.errors import DigestError, NotFound
from digest.models import Edition, EditionKind, EditionStatus
from digest.publication import REVIEW, SEND
from subscribers.models import MailingList

log = logging.getLogger(__name__)

def must_wait(mlist: MailingList, edition: Edition) -> bool:
    """Whether `edition` is held at its scheduled time instead of going out."""
    return (mlist.mode == REVIEW and edition.status != EditionStatus.APPROVED
            and mlist.review_policy != SEND)


def awaiting_approval(s: Session, mlist: MailingList) -> Edition:
    """The list's draft waiting for approval (or approved already); NotFound, saying how
    to build one, when there is none. `curate.approve` approves it."""
    edition = s.scalar(
        select(Edition)
        .where(Edition.list_id == mlist.id, Edition.kind == EditionKind.DIGEST,
               Edition.status.in_((EditionStatus.DRAFT, EditionStatus.APPROVED)))
        .order_by(Edition.number.desc()).limit(1)
    )
    if edition is None:
        raise NotFound(f"list {mlist.name!r} has no draft waiting for approval; "
                       f"build one with `digest edition build --list {mlist.name}`")
    return edition


def notify_editors(backend: Backend, mlist: MailingList, edition: Edition,
                   next_run: dt.datetime | None, now: dt.datetime) -> int:
    """Mail each of the list's editors that `edition` is held; returns how many were sent.

    A notice that cannot be sent is logged, never raised: the schedule goes on.
    """
    editors = [addr for _name, addr in getaddresses([mlist.editor_emails]) if addr]
    if not editors:
        log.warning("list %s: edition #%d is held, and the list has no editor_emails to "
                    "tell", mlist.name, edition.number)
        return 0
    sent = 0
    try:
        batch = [held_notice(mlist, edition, editor, next_run, now) for editor in editors]
        sent = sum(r.status == "sent" for r in backend.send(batch, NoEvents()))
    except (DigestError, ValueError) as exc:
        log.error("list %s: could not tell the editors about held edition #%d: %s",
                  mlist.name, edition.number, exc)
    return sent


def held_notice(mlist: MailingList, edition: Edition, editor: str,
                next_run: dt.datetime | None, now: dt.datetime) -> Outgoing:
    """A short plain-text mail to one editor: which edition waits, and how to release it."""
    tz = ZoneInfo(mlist.timezone or "UTC")
    sender = parseaddr(mlist.from_addr)[1]
    msg = EmailMessage()
    msg["From"] = mlist.from_addr
    msg["To"] = editor
    msg["Subject"] = f"Held: {mlist.title} #{edition.number} was not approved"
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "localhost")
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
    due = edition.scheduled_for.astimezone(tz) if edition.scheduled_for else now
    later = (f"at the next scheduled time, {next_run.astimezone(tz):%Y-%m-%d %H:%M} "
             f"({tz.key}), " if next_run else "")
    msg.set_content(
        f"Edition #{edition.number} of {mlist.title} was due at {due:%Y-%m-%d %H:%M} "
        f"({tz.key}) and is held: no editor approved it.\n\n"
        f"Subject: {edition.subject}\nArticles: {len(edition.items)}\n\n"
        f"Approve it with\n\n    digest edition approve --list {mlist.name}\n\n"
        f"and it goes out {later}or at once with `digest edition send --list {mlist.name}`.\n"
    )
    return Outgoing(delivery_id=0, sender=sender, recipient=editor,
                    message_id=str(msg["Message-ID"]), data=msg.as_bytes(policy=SMTP))
