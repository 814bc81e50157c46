"""The feedback loop's core: a provider's bounce or complaint notice applied to the ledger
and the suppression list. Every way notices come in (the webhooks in digest.web.webhooks,
`digest bounces process` for DSNs) turns each into a `Feedback` and calls `record`.

What `record` does, by kind:

- hard_bounce, complaint: the address is suppressed (reason "hard_bounce" or
  "complaint", the detail naming the provider and when it happened) and the delivery
  marked. A complaint from someone who has unsubscribed already still suppresses: they
  may be on other lists, and mailing them again would cost the sender's reputation.
- soft_bounce: the delivery is marked; the address is suppressed (reason "hard_bounce",
  the detail saying "N soft bounces in a row") once the reader's last
  `[delivery] soft_bounce_limit` deliveries that went out all soft-bounced.

"In a row", precisely: the subscriber's deliveries with status "sent", on any list,
newest first by the time they went out; the newest `soft_bounce_limit` of them must all
carry a soft bounce. So one later delivery that did not bounce resets the count, and a
bounce arriving late for an older delivery only counts while the newer ones bounced too.
(Suppression is per address, not per list, so the count is too. A soft-bounce
suppression is a "hard_bounce" one, told apart by its detail, so the console's stats
count it as a bounce without a reason of its own.)

Idempotent: a delivery keeps its strongest feedback (complaint > hard_bounce >
soft_bounce); a notice no stronger than what the delivery carries is a "duplicate" and
changes nothing. A notice whose delivery cannot be found is "unmatched", logged, never an
error. The address suppressed is always the delivery's subscriber's. Which notices may
name another address: a DSN ("dsn", its delivery named by a signed VERP token or our
Message-ID) may report where a forward ended, so it is trusted for the delivery and
logged; a provider's notice names the address we sent to, so one naming another
address (case aside) is not that delivery's, whatever id it carries: "unmatched",
logged once, and nothing suppressed.

`first_sight` is the webhooks' replay guard: (provider, key) remembered in
`feedback_notices` for `NOTICES_KEPT`, longer than any provider retries a notice
(SNS gives up within an hour by default, SendGrid after 24 hours, Mailgun after 8 hours,
Postmark after about 10 hours); rows older than that are pruned as new ones come.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from digest.models import Delivery, DeliveryStatus, FeedbackNotice
from subscribers.models import Subscriber
from subscribers.suppress import suppress

log = logging.getLogger(__name__)

Kind = Literal["hard_bounce", "soft_bounce", "complaint"]
KINDS: tuple[Kind, ...] = ("hard_bounce", "soft_bounce", "complaint")
# A delivery keeps the strongest feedback it got.
_RANK = {"": 0, "soft_bounce": 1, "hard_bounce": 2, "complaint": 3}
# How long a notice's key is remembered against replays.
NOTICES_KEPT = dt.timedelta(days=7)
Outcome = Literal["suppressed", "counted", "duplicate", "unmatched"]
OUTCOMES: tuple[Outcome, ...] = ("suppressed", "counted", "duplicate", "unmatched")


@dataclass(frozen=True)
class Feedback:
    """One bounce or complaint notice, whoever sent it."""

    provider: str  # "ses" | "postmark" | "sendgrid" | "mailgun" | "dsn"
    kind: Kind
    email: str  # the recipient the notice names
    at: dt.datetime  # when the provider says it happened (aware, UTC)
    # Matched against Delivery.message_id: the provider's id or our "<...@domain>" Message-ID.
    message_id: str = ""
    # When the notice carries it (VERP token, SendGrid custom_args, Mailgun
    # user-variables, Postmark Metadata).
    delivery_id: int | None = None
    detail: str = ""  # the provider's diagnostic, short


def record(s: Session, fb: Feedback, *, soft_limit: int, now: dt.datetime) -> str:
    """Apply one notice; returns "suppressed" | "counted" | "duplicate" | "unmatched".
    Idempotent: the same notice twice changes nothing the second time. Caller commits."""
    if fb.kind not in _RANK:
        raise ValueError(f"feedback kind {fb.kind!r} is not one of {', '.join(KINDS)}")
    found = _delivery(s, fb)
    if isinstance(found, str):
        log.warning("%s %s names %s, but %s: not taken", fb.provider, fb.kind, fb.email,
                    found)
        return "unmatched"
    if found is None:
        log.info("%s %s for %s (message id %r, delivery %s): no such delivery, ignored",
                 fb.provider, fb.kind, fb.email, fb.message_id, fb.delivery_id)
        return "unmatched"
    delivery, address = found
    if not _same(fb.email, address):
        log.warning("%s %s names %s but delivery %d went to %s: taken as %s's (a forward?)",
                    fb.provider, fb.kind, fb.email, delivery.id, address, address)
    if _RANK[fb.kind] <= _RANK[delivery.feedback]:
        return "duplicate"
    delivery.feedback = fb.kind
    delivery.feedback_at = fb.at
    when = fb.at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    detail = f"{fb.provider} {when}" + (f": {fb.detail}" if fb.detail else "")
    if fb.kind != "soft_bounce":
        suppress(s, address, fb.kind, detail[:500], now=now)
        return "suppressed"
    s.flush()
    if soft_limit > 0 and _soft_in_a_row(s, delivery.subscriber_id, soft_limit):
        suppress(s, address, "hard_bounce",
                 f"{soft_limit} soft bounces in a row; last {detail}"[:500], now=now)
        return "suppressed"
    return "counted"


def first_sight(s: Session, provider: str, key: str, now: dt.datetime) -> bool:
    """True the first time (provider, key) is seen, and remembers it; False for a replay."""
    s.execute(delete(FeedbackNotice).where(FeedbackNotice.seen_at < now - NOTICES_KEPT))
    make = postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = (make(FeedbackNotice)
                 .values(provider=provider, key=key[:300], seen_at=now)
                 .on_conflict_do_nothing(index_elements=["provider", "key"])
                 .returning(FeedbackNotice.id))
    return s.execute(statement).first() is not None


def feedback_counts(s: Session, edition_id: int) -> dict[str, int]:
    """An edition's deliveries per feedback kind, only kinds that have any."""
    rows = s.execute(select(Delivery.feedback, func.count())
                     .where(Delivery.edition_id == edition_id, Delivery.feedback != "")
                     .group_by(Delivery.feedback))
    return {kind: n for kind, n in rows}


def _delivery(s: Session, fb: Feedback) -> tuple[Delivery, str] | str | None:
    """The delivery a notice is about, with its subscriber's address: by delivery id
    when the notice carries one, else by message id (with or without angle brackets);
    of several deliveries under one id (a provider's batch), the one to the notice's
    address. A provider's notice (not a DSN) must name the delivery's own address: if
    the ids found only deliveries to others, why it is not taken (a str)."""
    stmt = select(Delivery, Subscriber.email).join(Subscriber,
                                                   Subscriber.id == Delivery.subscriber_id)
    forwards = fb.provider == "dsn"
    others: list[str] = []
    if fb.delivery_id is not None:
        row = s.execute(stmt.where(Delivery.id == fb.delivery_id)).first()
        if row is not None and (forwards or _same(fb.email, row[1])):
            return row[0], row[1]
        if row is not None:
            others.append(f"delivery {row[0].id} went to {row[1]}")
    mid = fb.message_id.strip()
    bare = mid.strip("<>")
    rows = s.execute(stmt.where(Delivery.message_id.in_((bare, f"<{bare}>")))).all() \
        if bare else []
    if len(rows) > 1 or (rows and not forwards):
        named = [r for r in rows if _same(fb.email, r[1])]
        others += [f"message {mid} went to {r[1]}" for r in rows if not named][:1]
        rows = named
    if len(rows) == 1:
        return rows[0][0], rows[0][1]
    return "; ".join(others) or None


def _same(email: str, address: str) -> bool:
    """Whether a notice's address is the subscriber's (case and blanks aside; a notice
    naming none is taken as the delivery's)."""
    return not email.strip() or email.strip().lower() == address.strip().lower()


def _soft_in_a_row(s: Session, subscriber_id: int, limit: int) -> bool:
    """Whether the subscriber's newest `limit` deliveries that went out all soft-bounced."""
    latest = list(s.scalars(
        select(Delivery.feedback)
        .where(Delivery.subscriber_id == subscriber_id,
               Delivery.status == DeliveryStatus.DELIVERED)
        .order_by(Delivery.sent_at.desc(), Delivery.id.desc())
        .limit(limit)
    ))
    return len(latest) == limit and all(f == "soft_bounce" for f in latest)
