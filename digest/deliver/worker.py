"""Sending an edition: render once, enqueue once, then claim batches and hand them over.

`start_sending` is the one step that renders (Jinja2 + premailer) and fills the ledger;
`deliver` may run in any number of processes (PostgreSQL) and be interrupted at any
point: running it again continues where it stopped and never mails anyone twice who is
marked sent, sending or uncertain. The loop over every sending edition is
`digest.sender`'s.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parseaddr
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Environment
from sqlalchemy import Engine, update
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from digest import feedback
from digest.deliver import ledger
from digest.deliver.backends.base import Backend, SendResult
from digest.deliver.dkim import DkimSigner
from digest.deliver.message import MessageTemplate, Outgoing, Recipient, feedback_id
from digest.deliver.outcomes import LedgerEvents, unavailable, when_back
from digest.editions import keep_rendered, lock_edition, render_context, require_sendable
from digest.errors import DatabaseUnavailable, InvalidInput
from digest.mailsize import require_fits
from digest.models import DeliveryStatus, Edition, EditionKind, EditionStatus
from digest.publication import postal_address_warning, require_recipients
from digest.render import reason, render_edition
from subscribers.models import MailingList, MembershipStatus
from subscribers.tokens import Tokens

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class SendOptions:
    """Settings the sender needs, from `[delivery]` and the top level."""

    public_url: str
    batch_size: int = 200
    lease_seconds: int = 300
    unsubscribe_mailto: str = ""
    policy: ledger.RetryPolicy = field(default_factory=ledger.RetryPolicy)
    #: The Feedback-ID's last field (`[delivery] feedback_id_sender`); "": the from domain.
    feedback_sender: str = ""
    #: Signs SMTP and outbox mail (`[dkim]`); None: unsigned.
    dkim: DkimSigner | None = None


@dataclass
class SendReport:
    edition_id: int
    counts: dict[str, int]
    next_retry: dt.datetime | None
    finished: bool
    released: dict[str, int]
    claimed: int = 0  # deliveries this call claimed (sent, failed, deferred, or given back)


def start_sending(s: Session, edition: Edition, mlist: MailingList, env: Environment,
                  public_url: str, now: dt.datetime, *, view_url: str = "",
                  html_max_kb: float = 100) -> int:
    """Render the edition once and queue a delivery for every current recipient.

    Every path that sends (CLI, desk, API, scheduler) starts here, so here the row is
    locked and reread (`editions.lock_edition`, the lock every change by an editor
    takes too) and `require_sendable` decides whether it may go out (and
    `publication.require_recipients` whether a digest would reach anyone), and
    `mailsize.require_fits` whether its HTML part is within `html_max_kb` once rendered
    (`[edition] html_max_kb`): NotReady says why not, with nothing changed. An edition
    already sending is left as it is, so it is safe to call again. Returns the number
    of deliveries queued. For a list with local-time delivery, each delivery is due at
    the list's send time in the subscriber's own time zone.
    """
    # Locked before it is read, and held through the render to the commit: an editor's
    # change either committed before (and is rendered) or waits and is refused.
    edition = lock_edition(s, edition.id)
    if edition.status == EditionStatus.SENDING:
        return 0
    require_sendable(edition, mlist)
    if edition.kind == EditionKind.DIGEST:  # whoever started it: the draft stays a draft
        require_recipients(s, mlist)
    rendered = render_edition(env, render_context(edition, mlist, public_url,
                                                  view_url=view_url))
    require_fits(edition, mlist.name, rendered, html_max_kb)
    keep_rendered(edition, rendered, now)
    # Once per edition (it starts once), and only here: the log is all the scheduler and
    # `digest serve` have, and the CLI shows it on stderr. By number, as users know it.
    if warning := postal_address_warning(mlist):
        log.warning("edition #%d of %s: %s", edition.number, mlist.name, warning)
    edition.status, edition.send_started_at = EditionStatus.SENDING, now
    s.flush()
    at = None
    if mlist.local_time:
        at = ledger.local_send_times(mlist.timezone, edition.scheduled_for or now, now)
    queued = ledger.enqueue(s, edition, now, at=at)
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
        slot_key=edition.slot_key, language=mlist.language or "en",
        feedback_id=feedback_id(edition.number, mlist.name, opts.feedback_sender or domain),
        dkim=opts.dkim,
    )


def deliver(
    engine: Engine, edition_id: int, backend: Backend, tokens: Tokens, opts: SendOptions,
    clock: Callable[[], dt.datetime], progress: Callable[[int], None] | None = None,
    stop: threading.Event | None = None, release: bool = True,
    give_way: threading.Event | None = None, tally: dict[str, int] | None = None,
) -> SendReport:
    """Send every due delivery of the edition through `backend`; returns the tally.

    Once `stop` is set, the messages in flight are finished and the rest of the claimed
    batch goes back to the queue; so does what a failing backend left unattempted.
    Once `give_way` is set, it returns after the batch in hand (other mail is more
    urgent). `release=False` when the caller has just freed dead senders' rows itself.
    `tally` counts the outcomes written (by "sent", "failed", "uncertain", "deferred").
    """
    worker = ledger.worker_id()
    events = LedgerEvents(engine, worker, opts.policy, clock, edition_id=edition_id,
                          lease_seconds=opts.lease_seconds, counts=tally)
    total = 0
    with Session(engine, expire_on_commit=False) as s:
        edition = s.get_one(Edition, edition_id)
        mlist = s.get_one(MailingList, edition.list_id)
        # By number and list, as the CLI and the desk name it; the id is internal.
        label = f"edition #{edition.number} of {mlist.name}"
        released = (ledger.release_dead(s, edition_id, clock()) if release
                    else {"requeued": 0, "uncertain": 0})
        template = message_template(edition, mlist, opts)
        links = _Links(tokens, opts.public_url, mlist.id, edition.kind == EditionKind.CONFIRM,
                       mlist.title, mlist.language, _zone(mlist.timezone))
        # Digests go to confirmed members; confirmation mails to those still pending.
        audience = (MembershipStatus.PENDING if edition.kind == EditionKind.CONFIRM
                    else MembershipStatus.CONFIRMED)
        # An API backend takes up to max_batch messages a call (SendGrid 1,000): claim a
        # full call's worth, or a smaller batch_size would multiply the calls.
        size = max(opts.batch_size, getattr(backend, "max_batch", 1))
        try:
            while not (stop and stop.is_set()) and not (give_way and give_way.is_set()):
                claimed = ledger.claim(s, edition_id, worker, size, clock(), opts.lease_seconds)
                if not claimed:
                    break
                total += len(claimed)
                wanted = ledger.skip_unwanted(s, mlist.id, claimed, audience)
                batch = _build(template, links, wanted, events, clock())
                if batch:
                    results = backend.send(batch, events, stop=stop)
                    # The batch's last outcomes, which no later handover carries; if the
                    # database is away they wait (see LedgerEvents) and the claim says so.
                    events.flush()
                    _refused_for_good(s, backend.name, batch, results, clock())
                if progress:
                    progress(len(claimed))
        except (OperationalError, InterfaceError) as exc:  # a restart, a network cut
            raise unavailable(exc) from exc
        finally:
            # Reads the answer to the last handover's commit, and writes what the
            # database missed while it was away (waiting for it up to a lease): until
            # then the claims are kept, since a lost handover leaves its row `claimed`.
            events.close(patience=opts.lease_seconds)
            _give_back(s, edition_id, label, worker, patience=opts.lease_seconds)
        if edition.kind == EditionKind.CONFIRM:  # a standing queue: never finished
            return _report(s, edition, released, finished=False, claimed=total)
        return _finish(s, edition, released, clock(), claimed=total)


def _give_back(s: Session, edition_id: int, label: str, worker: str, *,
               patience: float) -> None:
    """Return the claims not attempted to the queue, so that no one waits for a lease;
    if the database is away, as soon as it is back (waiting up to `patience` s)."""
    def release() -> int:
        try:
            s.rollback()
            return ledger.release(s, edition_id, worker)
        except SQLAlchemyError as exc:
            raise unavailable(exc) from exc

    try:
        returned = when_back(release, patience,
                             lambda: f"{label}: claimed deliveries wait to be returned "
                                     "to the queue")
    except DatabaseUnavailable:  # logged: the lease frees them later
        return
    if returned:
        log.info("%s: %d claimed deliveries returned to the queue", label, returned)


@dataclass(frozen=True)
class _Links:
    """The per-reader values of one message: the signed links (unsubscribe and manage
    always, confirm for opt-in mail) and why they get it (in a digest's footer)."""

    tokens: Tokens
    public_url: str
    list_id: int
    confirm: bool
    title: str = ""
    language: str = "en"
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))

    def recipient(self, c: ledger.Claimed) -> Recipient:
        base = self.public_url.rstrip("/")
        unsubscribe = self.tokens.make("unsubscribe", c.subscriber_id, self.list_id, c.email)
        if self.confirm:
            confirm = f"{base}/confirm/" + self.tokens.make(
                "confirm", c.subscriber_id, self.list_id, c.email, signup=c.signup)
            return Recipient(c.delivery_id, c.email, c.name, f"{base}/unsubscribe/{unsubscribe}",
                             confirm, unsubscribe_token=unsubscribe)
        # The list's id lets the preference page speak the list's language (issue 11).
        manage = self.tokens.make("manage", c.subscriber_id, self.list_id, c.email)
        since = c.subscribed_at.astimezone(self.zone).date() if c.subscribed_at else None
        return Recipient(c.delivery_id, c.email, c.name, f"{base}/unsubscribe/{unsubscribe}",
                         unsubscribe_token=unsubscribe, manage_url=f"{base}/preferences/{manage}",
                         reason=reason(self.language, self.title, since))


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError, OSError):  # checked when set; old rows
        return ZoneInfo("UTC")


def _build(template: MessageTemplate, links: _Links, claimed: list[ledger.Claimed],
           events: LedgerEvents, now: dt.datetime) -> list[Outgoing]:
    """The batch's messages; a recipient whose address cannot be mailed fails alone."""
    batch = []
    for c in claimed:
        try:
            batch.append(template.build(links.recipient(c), now))
        except InvalidInput as exc:
            events.done(SendResult(c.delivery_id, "failed", str(exc)))
    return batch


def _refused_for_good(s: Session, provider: str, batch: list[Outgoing],
                      results: list[SendResult], now: dt.datetime) -> None:
    """A provider's refusal of an address it holds inactive (Postmark's ErrorCode 406)
    is recorded as the notice it stands for, which suppresses the address."""
    refused = [r for r in results if r.feedback in feedback.KINDS]
    if not refused:
        return
    emails = {m.delivery_id: m.recipient for m in batch}
    for r in refused:
        kind = next(k for k in feedback.KINDS if k == r.feedback)
        feedback.record(s, feedback.Feedback(provider, kind, emails.get(r.delivery_id, ""),
                                             now, delivery_id=r.delivery_id,
                                             detail=r.detail[:200]),
                        soft_limit=0, now=now)
    s.commit()


def _finish(s: Session, edition: Edition, released: dict[str, int],
            now: dt.datetime, *, claimed: int) -> SendReport:
    pending = ledger.pending(s, edition.id)
    if pending == 0 and edition.status == EditionStatus.SENDING:
        # Guarded so two workers finishing at once mark it once.
        s.execute(
            update(Edition)
            .where(Edition.id == edition.id, Edition.status == EditionStatus.SENDING)
            .values(status=EditionStatus.SENT, sent_at=now)
        )
        s.commit()
    return _report(s, edition, released, finished=pending == 0, claimed=claimed)


def _report(s: Session, edition: Edition, released: dict[str, int], *,
            finished: bool, claimed: int) -> SendReport:
    counts = ledger.status_counts(s, edition.id)
    return SendReport(
        edition_id=edition.id, counts=counts,
        next_retry=(ledger.next_retry(s, edition.id) if counts.get(DeliveryStatus.QUEUED)
                    else None),
        finished=finished, released=released, claimed=claimed,
    )
