"""The sender: delivers whatever is due, edition after edition, until stopped.

`run_worker` is the loop of `digest worker` and of `digest serve`'s sender thread. It is
the one user of the process's delivery backend (`App.backend`): a backend, its event
loop and its connections belong to one thread. Other threads never send; they queue
deliveries in the database and call `App.mail_queued.set()`, which ends the sender's
wait at once and makes a digest being sent give way, between two batches, to the
confirmation mails just queued.

`Sender` is `digest serve`'s thread: whatever ends its loop is logged and the loop
started again on a fresh backend, and `problem()` (which /healthz reports) says so
meanwhile, since a process that answers on the web but sends no mail looks healthy.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from digest import heartbeat
from digest.app import App
from digest.deliver import confirm, ledger
from digest.errors import ConfigError, DigestError
from digest.models import Edition, EditionKind, EditionStatus
from subscribers.models import MailingList

log = logging.getLogger(__name__)

#: Longest pause of a worker whose rounds keep failing (server or database away).
MAX_PAUSE_SECONDS = 60.0
#: Wait before a sender thread whose loop failed starts again.
RESTART_SECONDS = 30.0
#: A list whose confirmation template does not render is tried again after this long.
BROKEN_TEMPLATE_SECONDS = 60.0


def run_worker(app: App, stop: threading.Event, *, poll_seconds: float = 5.0,
               once: bool = False) -> None:
    """Deliver every edition that is sending (digests and the lists' confirmation mails)
    until `stop` is set; with `once`, until nothing is due.

    Each round looks for editions anew, frees what dead senders held, and delivers
    those with deliveries due, confirmation mails first; a round that found nothing due
    is followed by a wait of `poll_seconds`, cut short by `stop` or `app.mail_queued`.
    A round that fails as a whole (the SMTP server or the database away) is logged and
    tried again after a pause that doubles up to MAX_PAUSE_SECONDS; with `once` its
    error is raised instead.

    While it runs, its heartbeat (`digest.heartbeat`) is renewed every
    `[delivery] heartbeat_seconds`, with the outcomes it wrote; a clean end deletes it.
    """
    tally = heartbeat.new_tally()
    beat = heartbeat.Heartbeat(app.sessions, app.clock, app.backend.name, tally,
                               interval=app.settings["delivery.heartbeat_seconds"])
    beat.start()
    try:
        _loop(app, stop, poll_seconds, once, tally)
    finally:
        beat.stop()


def _loop(app: App, stop: threading.Event, poll_seconds: float, once: bool,
          tally: dict[str, int]) -> None:
    rendered = _Renders()
    pause = poll_seconds
    while not stop.is_set():
        try:
            claimed = _round(app, stop, rendered, tally)
        except (DigestError, SQLAlchemyError) as exc:
            if once:
                raise
            log.error("sending failed: %s; trying again in %.0f s", exc, pause)
            stop.wait(pause)
            pause = min(pause * 2, MAX_PAUSE_SECONDS)
            continue
        pause = poll_seconds
        if claimed:
            continue  # there may be more: new rows came due while sending
        if once:
            return
        _rest(app, stop, poll_seconds)


def _rest(app: App, stop: threading.Event, seconds: float) -> None:
    """Wait `seconds`, or less: until this process queues mail or `stop` is set."""
    deadline = time.monotonic() + seconds
    while not stop.is_set():
        left = deadline - time.monotonic()
        # Short slices: `stop` comes from a signal handler, which cannot set two events.
        if left <= 0 or app.mail_queued.wait(min(left, 0.25)):
            return


def _round(app: App, stop: threading.Event, rendered: _Renders,
           tally: dict[str, int]) -> int:
    """One look at every sending edition; returns the deliveries claimed."""
    # Cleared before looking: mail queued from now on sets it again and is seen next.
    app.mail_queued.clear()
    with app.sessions() as s:
        editions = s.execute(
            select(Edition.id, Edition.kind, Edition.number, MailingList.name)
            .join(MailingList, MailingList.id == Edition.list_id)
            .where(Edition.status == EditionStatus.SENDING)
            .order_by(Edition.kind != EditionKind.CONFIRM, Edition.id)  # confirmations first
        ).all()
    claimed = 0
    for edition_id, kind, number, list_name in editions:
        confirmations = kind == EditionKind.CONFIRM
        if stop.is_set():
            break
        if not confirmations and app.mail_queued.is_set():
            break  # confirmation mails were queued: they go first, in the next round
        now = app.clock()
        with app.sessions() as s:
            ledger.release_dead(s, edition_id, now)
            if not ledger.has_work(s, edition_id, now, finishing=not confirmations):
                continue
            if confirmations and not _rendered(app, s, edition_id, list_name, rendered):
                continue
        report = app.deliver(edition_id, stop=stop, release=False,
                             give_way=None if confirmations else app.mail_queued,
                             tally=tally)
        claimed += report.claimed
        what = "confirmation mails" if confirmations else f"edition #{number}"
        log.info("list %s, %s: %d claimed; now %s%s", list_name, what, report.claimed,
                 ", ".join(f"{n} {status}" for status, n in sorted(report.counts.items())),
                 "; finished" if report.finished else "")
    return claimed


@dataclass
class _Renders:
    """The confirmation editions this worker run has rendered, with the list's words
    they were rendered from, and those whose template failed (when), so a broken one is
    not tried at every round."""

    done: dict[int, tuple[str, ...]] = field(default_factory=dict)
    failed_at: dict[int, float] = field(default_factory=dict)


def _rendered(app: App, s: Session, edition_id: int, list_name: str,
              renders: _Renders) -> bool:
    """Render a list's confirmation mail when this worker run has not, or the list's
    title, description or language changed since (an admin's edit while `digest serve`
    runs shows in the next mail); a changed template shows in the next run. A template
    that fails (an override with a mistake) is logged, and only that list's
    confirmations wait: tried again a minute later."""
    edition = s.get_one(Edition, edition_id)
    mlist = s.get_one(MailingList, edition.list_id)
    words = (mlist.name, mlist.title, mlist.description, mlist.language or "")
    if renders.done.get(edition_id) == words:
        return True
    failed = renders.failed_at.get(edition_id)
    if failed is not None and time.monotonic() - failed < BROKEN_TEMPLATE_SECONDS:
        return False
    try:
        confirm.render_confirmations(s, edition, mlist,
                                     app.templates, app.settings["public_url"], app.clock())
    except ConfigError as exc:  # says which file and line
        s.rollback()
        log.error("list %s: the confirmation mail does not render, so it waits: %s",
                  list_name, exc)
        renders.failed_at[edition_id] = time.monotonic()
        return False
    renders.done[edition_id] = words
    return True


class Sender:
    """`digest serve`'s sender thread, kept running.

    Anything that ends `run_worker` (a bug, a backend left broken) is logged; the
    backend is closed and made anew, and the loop starts again after
    `restart_seconds`. Until it does, `problem()` says what happened.
    """

    def __init__(self, app: App, stop: threading.Event, *, poll_seconds: float = 5.0,
                 restart_seconds: float = RESTART_SECONDS) -> None:
        self.app, self.stop = app, stop
        self.poll_seconds, self.restart_seconds = poll_seconds, restart_seconds
        self.restarts = 0
        self._failure = ""
        self._thread = threading.Thread(target=self._run, name="digest-sender", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def problem(self) -> str | None:
        """None while the sender runs; otherwise why it does not."""
        if self._failure:
            return f"the sender failed ({self._failure}); it starts again shortly"
        if not self._thread.is_alive() and not self.stop.is_set():
            return "the sender is not running"
        return None

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                run_worker(self.app, self.stop, poll_seconds=self.poll_seconds)
            except BaseException as exc:  # asyncio.CancelledError is not an Exception
                self._failure = ": ".join(filter(None, (type(exc).__name__, str(exc))))
                log.exception("the sender failed; it starts again in %.0f s",
                              self.restart_seconds)
                self.app.reset_backend()
                self.stop.wait(self.restart_seconds)
                self.restarts += 1
                self._failure = ""
