"""Double opt-in mails, through the same ledger, worker and backends as editions.

Each list has one standing edition of kind "confirm" (number 0). Its deliveries are the
list's confirmation mails: one row per person, queued when they sign up pending and
queued again when they ask for a new link. Its HTML and text are the list's
email/confirm.* templates, rendered once per sending run (and again when the list's
title, description or language changes), with a `confirm_url` slot.
"""

from __future__ import annotations

import datetime as dt

from jinja2 import Environment
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from digest.deliver.ledger import PENDING_STATUSES, enqueue
from digest.editions import keep_rendered
from digest.models import Delivery, DeliveryStatus, Edition, EditionKind, EditionStatus
from digest.render import ConfirmContext, labels, render_confirmation
from subscribers.models import MailingList, Membership, MembershipStatus

#: A new confirmation mail for the same sign-up waits at least this long after the last,
#: so a web form cannot be used to flood someone's inbox. A new sign-up (the member left
#: and came back) is mailed at once: the last mail's link no longer works, and only the
#: person, with a link from their own inbox, or an admin can make them leave.
RESEND_AFTER = dt.timedelta(minutes=10)


def confirmation_edition(s: Session, mlist: MailingList, now: dt.datetime) -> Edition:
    """The list's standing confirmation mailing, created on first use."""
    edition = s.scalar(
        select(Edition).where(Edition.list_id == mlist.id, Edition.kind == EditionKind.CONFIRM)
    )
    if edition is None:
        edition = Edition(list_id=mlist.id, kind=EditionKind.CONFIRM, number=0,
                          status=EditionStatus.SENDING, since=now, cutoff=now, created_at=now,
                          send_started_at=now)
        s.add(edition)
        s.flush()
    return edition


def queue_confirmation(s: Session, membership: Membership, now: dt.datetime) -> bool:
    """Queue a confirmation mail for a pending member; False when there is nothing to
    do (not pending, a mail already on its way, or one sent for this same sign-up in
    the last RESEND_AFTER, whose link still works)."""
    if membership.status != MembershipStatus.PENDING:
        return False
    edition = confirmation_edition(s, membership.mailing_list, now)
    row = s.scalar(select(Delivery).where(Delivery.edition_id == edition.id,
                                          Delivery.subscriber_id == membership.subscriber_id))
    same_signup = membership.mailed_signup == membership.signup
    if row is None:
        s.add(Delivery(edition_id=edition.id, subscriber_id=membership.subscriber_id,
                       status=DeliveryStatus.QUEUED, attempts=0, next_attempt_at=now))
        return _queued_for(s, membership)
    if row.status == DeliveryStatus.QUEUED:
        # The sender reads the sign-up number when it claims the row: this mail's link
        # will be for the current sign-up.
        _queued_for(s, membership)
        return False
    if row.status in PENDING_STATUSES:
        # Claimed or being handed over: its link may name the sign-up before; the next
        # post of the form mails the current one, unheld by the resend limit.
        return False
    if (same_signup and row.status == DeliveryStatus.DELIVERED and row.sent_at
            and now - row.sent_at < RESEND_AFTER):
        return False
    row.status, row.attempts, row.next_attempt_at = DeliveryStatus.QUEUED, 0, now
    row.claimed_by, row.lease_until, row.last_error = "", None, ""
    return _queued_for(s, membership)


def _queued_for(s: Session, membership: Membership) -> bool:
    membership.mailed_signup = membership.signup
    s.flush()
    return True


def queue_pending(s: Session, mlist: MailingList, now: dt.datetime) -> int:
    """Queue a confirmation mail for every pending member who has none yet (after an
    import of addresses nobody vouched for). Returns how many were queued."""
    edition = confirmation_edition(s, mlist, now)
    queued = enqueue(s, edition, now, audience=MembershipStatus.PENDING)
    # As `_queued_for` does one by one: a queued mail's link names the current sign-up.
    waiting = select(Delivery.subscriber_id).where(Delivery.edition_id == edition.id,
                                                   Delivery.status == DeliveryStatus.QUEUED)
    s.execute(update(Membership)
              .where(Membership.list_id == mlist.id,
                     Membership.status == MembershipStatus.PENDING,
                     Membership.subscriber_id.in_(waiting))
              .values(mailed_signup=Membership.signup))
    return queued


def render_confirmations(s: Session, edition: Edition, mlist: MailingList, env: Environment,
                         public_url: str, now: dt.datetime) -> None:
    """Render the list's confirmation mail into its standing edition (the sender does
    once per run and when the list's words change, so they show in the next mails)."""
    subject = labels(mlist.language).get("confirm_subject", "{title}").format(title=mlist.title)
    rendered = render_confirmation(env, ConfirmContext(
        list_name=mlist.name, list_title=mlist.title, list_description=mlist.description,
        subject=subject, language=mlist.language or "en", public_url=public_url.rstrip("/"),
    ))
    edition.subject = subject
    keep_rendered(edition, rendered, now)
    s.commit()
