"""Sending an edition: render once, enqueue once, then claim batches and hand them over.

`start_sending` is the one step that renders (Jinja2 + premailer) and fills the ledger;
`deliver` may run in any number of processes (PostgreSQL) and be interrupted at any
point: running it again continues where it stopped and never mails anyone twice who is
marked sent, sending or uncertain.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from email.utils import parseaddr

from jinja2 import Environment
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from digest.deliver import ledger
from digest.deliver.backends.base import Backend, SendResult
from digest.deliver.message import MessageTemplate, Outgoing, Recipient
from digest.editions import render_context
from digest.errors import InvalidInput
from digest.models import APPROVED, CONFIRM, DRAFT, QUEUED, SENDING, SENT, Edition
from digest.render import render_edition
from subscribers.models import CONFIRMED, PENDING, MailingList
from subscribers.tokens import Tokens


@dataclass(frozen=True)
class SendOptions:
    """Settings the sender needs, from `[delivery]` and the top level."""

    public_url: str
    batch_size: int = 200
    lease_seconds: int = 300
    unsubscribe_mailto: str = ""
    policy: ledger.RetryPolicy = field(default_factory=ledger.RetryPolicy)


@dataclass
class SendReport:
    edition_id: int
    counts: dict[str, int]
    next_retry: dt.datetime | None
    finished: bool
    released: dict[str, int]


def start_sending(s: Session, edition: Edition, mlist: MailingList, env: Environment,
                  public_url: str, now: dt.datetime) -> int:
    """Render the edition once and queue a delivery for every current recipient.

    Does nothing for an edition already sending, so it is safe to call again.
    Returns the number of deliveries queued.
    """
    if edition.status not in (DRAFT, APPROVED):
        return 0
    rendered = render_edition(env, render_context(edition, mlist, public_url))
    edition.html, edition.text, edition.rendered_at = rendered.html, rendered.text, now
    edition.status, edition.send_started_at = SENDING, now
    s.flush()
    queued = ledger.enqueue(s, edition, now)
    s.commit()
    return queued


def message_template(edition: Edition, mlist: MailingList, opts: SendOptions) -> MessageTemplate:
    """The per-edition message, built once; `build()` fills in each subscriber."""
    domain = parseaddr(mlist.from_addr)[1].rpartition("@")[2] or "localhost"
    return MessageTemplate(
        html=edition.html, text=edition.text, subject=edition.subject,
        from_addr=mlist.from_addr, reply_to=mlist.reply_to,
        list_id=f"{mlist.name}.{domain}", list_name=mlist.title,
        unsubscribe_mailto=opts.unsubscribe_mailto, edition_key=f"e{edition.id}",
    )


def deliver(
    engine: Engine, edition_id: int, backend: Backend, tokens: Tokens, opts: SendOptions,
    clock: Callable[[], dt.datetime], progress: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
) -> SendReport:
    """Send every due delivery of the edition through `backend`; returns the tally."""
    worker = ledger.worker_id()
    events = ledger.LedgerEvents(engine, worker, opts.policy, clock)
    with Session(engine, expire_on_commit=False) as s, closing(events):
        edition = s.get_one(Edition, edition_id)
        mlist = s.get_one(MailingList, edition.list_id)
        released = ledger.release_dead(s, edition_id, clock())
        template = message_template(edition, mlist, opts)
        links = _Links(tokens, opts.public_url, mlist.id, edition.kind == CONFIRM)
        # Digests go to confirmed members; confirmation mails to those still pending.
        audience = PENDING if edition.kind == CONFIRM else CONFIRMED
        while stop is None or not stop.is_set():
            claimed = ledger.claim(s, edition_id, worker, opts.batch_size, clock(),
                                   opts.lease_seconds)
            if not claimed:
                break
            wanted = ledger.skip_unwanted(s, mlist.id, claimed, audience)
            batch = _build(template, links, wanted, events, clock())
            if batch:
                backend.send(batch, events)
            if progress:
                progress(len(claimed))
        if edition.kind == CONFIRM:  # a standing queue: never finished
            return _report(s, edition, released, finished=False)
        return _finish(s, edition, released, clock())


@dataclass(frozen=True)
class _Links:
    """The signed links of one message: unsubscribe always, confirm for opt-in mail."""

    tokens: Tokens
    public_url: str
    list_id: int
    confirm: bool

    def recipient(self, c: ledger.Claimed) -> Recipient:
        base = self.public_url.rstrip("/")
        unsubscribe = self.tokens.make("unsubscribe", c.subscriber_id, self.list_id, c.email)
        confirm = (f"{base}/confirm/"
                   + self.tokens.make("confirm", c.subscriber_id, self.list_id, c.email)
                   if self.confirm else "")
        return Recipient(c.delivery_id, c.email, c.name, f"{base}/unsubscribe/{unsubscribe}",
                         confirm)


def _build(template: MessageTemplate, links: _Links, claimed: list[ledger.Claimed],
           events: ledger.LedgerEvents, now: dt.datetime) -> list[Outgoing]:
    """The batch's messages; a recipient whose address cannot be mailed fails alone."""
    batch = []
    for c in claimed:
        try:
            batch.append(template.build(links.recipient(c), now))
        except InvalidInput as exc:
            events.done(SendResult(c.delivery_id, "failed", str(exc)))
    return batch


def _finish(s: Session, edition: Edition, released: dict[str, int],
            now: dt.datetime) -> SendReport:
    pending = ledger.pending(s, edition.id)
    if pending == 0 and edition.status == SENDING:
        # Guarded so two workers finishing at once mark it once.
        s.execute(
            update(Edition).where(Edition.id == edition.id, Edition.status == SENDING)
            .values(status=SENT, sent_at=now)
        )
        s.commit()
    return _report(s, edition, released, finished=pending == 0)


def _report(s: Session, edition: Edition, released: dict[str, int], *,
            finished: bool) -> SendReport:
    counts = ledger.status_counts(s, edition.id)
    return SendReport(
        edition_id=edition.id, counts=counts,
        next_retry=ledger.next_retry(s, edition.id) if counts.get(QUEUED) else None,
        finished=finished, released=released,
    )
