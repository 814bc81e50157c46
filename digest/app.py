"""The one object every entry point builds: settings, database, clock, HTTP, backend.

The CLI, the web app and the scheduler all construct an `App` and call its methods,
which only wire settings into the core functions (gather, build_edition, send).
Tests pass their own clock, HTTP session and backend.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Callable
from functools import cached_property

import requests
from jinja2 import Environment
from sqlalchemy import Engine
from sqlalchemy.orm import Session, object_session, sessionmaker

from digest import __version__, curate, review
from digest.config import Settings
from digest.db import make_engine, session_factory, utcnow
from digest.deliver import confirm, ledger, outcomes, worker
from digest.deliver.backends import make_backend, require_chosen
from digest.deliver.backends.base import Backend, NoEvents
from digest.deliver.dkim import DkimSigner
from digest.deliver.ledger import RetryPolicy
from digest.deliver.message import Recipient, check_feedback_sender
from digest.deliver.verp import ReturnPath
from digest.edition_links import EditionLinks
from digest.editions import (
    EditionRules,
    build_edition,
    build_scheduled,
    keep_rendered,
    last_sent,
    open_edition,
    render_context,
    stored_render,
)
from digest.errors import DeliveryError, NotFound
from digest.gather.sources import FetchOptions, SourceReport, gather
from digest.mailsize import Fit, fit_edition, require_fits
from digest.migrations import upgrade
from digest.models import Edition, EditionStatus, Source
from digest.render import (
    Preview,
    Rendered,
    make_environment,
    preview,
    preview_unsubscribe_url,
    render_edition,
)
from digest.state import require_writable
from subscribers.lists import get_list
from subscribers.models import MailingList
from subscribers.tokens import Tokens

Clock = Callable[[], dt.datetime]
#: Connections beyond `[web] threads`, for `digest serve`'s own threads: the sender and
#: its ledger writer, the scheduler's four job threads, console imports and exports.
BACKGROUND_CONNECTIONS = 10


class App:
    """Settings made concrete. Cheap to build; connects on first use."""

    def __init__(self, settings: Settings, *, clock: Clock = utcnow,
                 http: requests.Session | None = None, backend: Backend | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self._http = http
        self._backend = backend
        self._own_backend = backend is None
        #: Set by any thread that queued mail, so the sender (`digest.sender`) looks now.
        self.mail_queued = threading.Event()

    # -- resources -----------------------------------------------------------------

    @cached_property
    def engine(self) -> Engine:
        """The database pool: a connection for each web thread (`[web] threads`) and
        BACKGROUND_CONNECTIONS more, so a request does not queue for one behind other
        requests; a wait for one, or for SQLite's write lock, ends after `[database]
        timeout` in one of `digest.db.UNAVAILABLE` (answered 503 on the web)."""
        g = self.settings
        return make_engine(g["database.url"], pool_size=g["web.threads"],
                           max_overflow=BACKGROUND_CONNECTIONS, timeout=g["database.timeout"])

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return session_factory(self.engine)

    @cached_property
    def templates(self) -> Environment:
        return make_environment(self.settings["templates_dir"])

    @cached_property
    def tokens(self) -> Tokens:
        return Tokens(self.settings.signing_key())

    @cached_property
    def edition_links(self) -> EditionLinks:
        return EditionLinks(self.settings.signing_key(), self.settings["public_url"])

    def view_url(self, edition: Edition, mlist: MailingList) -> str:
        """The edition's "view in browser" link (signed for a private list)."""
        return self.edition_links.url(list_name=mlist.name, list_id=mlist.id,
                                      public=mlist.public, edition_id=edition.id,
                                      number=edition.number)

    @property
    def http(self) -> requests.Session:
        if self._http is None:
            self._http = requests.Session()
        return self._http

    @property
    def backend(self) -> Backend:
        """The delivery backend. It belongs to the one thread that sends: the sender
        thread in `digest serve`, the main thread in other commands. A web request
        never uses it; it queues mail and sets `mail_queued`."""
        if self._backend is None:
            self.check_mail()
            self._backend = make_backend(self.settings)
        return self._backend

    def check_mail(self) -> None:
        """Refuse (ConfigError) to queue or send mail when the delivery backend or
        public_url is only the built-in default on a database other than SQLite
        (`require_chosen`). Call it before queueing: nothing is stored then."""
        require_chosen(self.settings, self.engine.dialect.name)

    def check_sender(self, *, imports: bool = False) -> None:
        """What a sender checks before it starts (`digest worker`, `digest serve`,
        `digest edition send`): a backend and public_url chosen, and the folders it
        writes writable (the outbox if it sends there; the imports folder too with
        `imports`), and the return path, DKIM key and Feedback-ID sender usable, so a
        bad one is one error now and not a failure per message."""
        self.check_mail()
        require_writable(self.settings, send=True, imports=imports)
        ReturnPath.from_settings(self.settings)  # a bad [delivery] return_path: ConfigError
        if sender := self.settings["delivery.feedback_id_sender"]:
            check_feedback_sender(sender)
        _ = self.dkim

    @cached_property
    def dkim(self) -> DkimSigner | None:
        """The `[dkim]` signer, its key read once (ConfigError if it is unusable)."""
        return DkimSigner.from_settings(self.settings)

    def reset_backend(self) -> None:
        """Close the backend (a failure may have left it broken); the next use of
        `backend` makes a new one from the settings. A backend passed in is kept."""
        if self._backend is None:
            return
        with contextlib.suppress(Exception):  # it is being thrown away
            self._backend.close()
        if self._own_backend:
            self._backend = None

    def close(self) -> None:
        """Quit the backend's connections, the HTTP session and the database pool."""
        if self._backend is not None:
            self._backend.close()
        if self._http is not None:
            self._http.close()
        if "engine" in self.__dict__:  # only if it was ever used
            self.engine.dispose()

    def init_db(self) -> None:
        """Create or upgrade the database to the current schema."""
        upgrade(self.engine)

    # -- settings as the core wants them -------------------------------------------

    def fetch_options(self, *, allow_files: bool = False) -> FetchOptions:
        g = self.settings
        return FetchOptions(
            timeout=g["gather.timeout"], max_bytes=g["gather.max_bytes"],
            max_redirects=g["gather.max_redirects"],
            user_agent=g["gather.user_agent"] or f"digest/{__version__} (+{g['public_url']})",
            max_entries=g["gather.max_entries"], allow_files=allow_files,
            private_addresses=g["gather.fetch_private_addresses"],
        )

    def edition_rules(self) -> EditionRules:
        g = self.settings
        return EditionRules(window_hours=g["edition.window_hours"],
                            max_items=g["edition.max_items"],
                            summary_chars=g["edition.summary_chars"],
                            late_hours=g["edition.late_hours"],
                            brief_max=g["edition.brief_max"])

    def send_options(self) -> worker.SendOptions:
        g = self.settings
        return worker.SendOptions(
            public_url=g["public_url"], batch_size=g["delivery.batch_size"],
            lease_seconds=g["delivery.lease_seconds"],
            unsubscribe_mailto=g["delivery.unsubscribe_mailto"],
            policy=RetryPolicy(g["delivery.max_attempts"], g["delivery.retry_seconds"]),
            feedback_sender=g["delivery.feedback_id_sender"], dkim=self.dkim,
        )

    # -- operations ------------------------------------------------------------------

    def fetch(self, s: Session, source_id: int | None = None, *, allow_files: bool = False,
              progress: Callable[[SourceReport], None] | None = None) -> list[SourceReport]:
        """Gather new articles from every source, or from one."""
        sources = None
        if source_id is not None:
            source = s.get(Source, source_id)
            if source is None:
                raise NotFound(f"source {source_id} not found; `digest sources ls` lists them")
            sources = [source]
        return gather(s, self.http, self.fetch_options(allow_files=allow_files), self.clock,
                      sources, progress)

    def build(self, s: Session, list_name: str) -> tuple[Edition | None, bool]:
        """Draft the next edition of a list (or return the open one); a new draft is
        made to fit `[edition] html_max_kb` (`fit`), so that it can go out as built."""
        mlist = get_list(s, list_name)
        edition, created = build_edition(s, mlist, now=self.clock(), rules=self.edition_rules())
        if edition is not None and created:
            self.fit(edition, mlist)
        s.commit()
        return edition, created

    def build_scheduled(self, s: Session, mlist: MailingList,
                        scheduled_for: dt.datetime) -> Edition | None:
        """The list's edition for `scheduled_for` (`editions.build_scheduled`), a draft
        made to fit `[edition] html_max_kb`. Commits."""
        edition = build_scheduled(s, mlist, scheduled_for=scheduled_for, now=self.clock(),
                                  rules=self.edition_rules())
        if edition is not None and self.fit(edition, mlist).changed:
            s.commit()
        return edition

    def send(self, list_name: str, *, progress: Callable[[int], None] | None = None,
             on_start: Callable[[Edition, int], None] | None = None,
             stop: threading.Event | None = None) -> worker.SendReport | None:
        """Build if needed, render once, enqueue, deliver. Safe to run again at any time,
        and it waits out a database restart (up to `[delivery] lease_seconds`)."""
        self.check_sender()  # before anything is queued
        with self.sessions() as s:
            mlist = get_list(s, list_name)
            edition = open_edition(s, mlist) or self.build(s, list_name)[0]
            if edition is None:
                return None
            self.start_sending(s, edition, mlist)
            if on_start:
                on_start(edition, ledger.pending(s, edition.id))
            edition_id, label = edition.id, f"edition #{edition.number} of {mlist.name}"
        # A database restart mid-send: what went out is recorded once it is back, and
        # the rest is sent then (nothing twice); a longer outage ends with its error.
        return outcomes.when_back(
            lambda: self.deliver(edition_id, progress=progress, stop=stop),
            self.settings["delivery.lease_seconds"],
            lambda: f"{label} waits for the database")

    def deliver(self, edition_id: int, *, progress: Callable[[int], None] | None = None,
                stop: threading.Event | None = None, release: bool = True,
                give_way: threading.Event | None = None,
                tally: dict[str, int] | None = None) -> worker.SendReport:
        """Send the edition's due deliveries through the configured backend; `tally`
        counts the outcomes (a sender's, for its heartbeat)."""
        return worker.deliver(self.engine, edition_id, self.backend, self.tokens,
                              self.send_options(), self.clock, progress, stop, release,
                              give_way, tally)

    def start_sending(self, s: Session, edition: Edition, mlist: MailingList) -> int:
        """Render the edition once and queue its deliveries (a no-op once it is sending);
        the sender worker, or `send`, delivers them."""
        return worker.start_sending(s, edition, mlist, self.templates,
                                    self.settings["public_url"], self.clock(),
                                    view_url=self.view_url(edition, mlist),
                                    html_max_kb=self.settings["edition.html_max_kb"])

    def send_now(self, s: Session, edition: Edition, mlist: MailingList) -> int:
        """What the desk's and the API's "send now" do: `start_sending` an edition an
        editor may still change (one sending already is refused, not continued)."""
        return self.start_sending(s, curate.editable(s, edition), mlist)

    def render(self, edition: Edition, mlist: MailingList) -> Rendered:
        """The edition as it goes out: as sending stored it, or rendered now (a draft)."""
        if (edition.status not in (EditionStatus.DRAFT, EditionStatus.APPROVED)
                and edition.rendered_at is not None):
            return stored_render(edition)
        return render_edition(self.templates,
                              render_context(edition, mlist, self.settings["public_url"],
                                             view_url=self.view_url(edition, mlist)))

    def require_fits(self, edition: Edition, mlist: MailingList) -> None:
        """NotReady, saying what to shorten, if the edition's HTML part is over `[edition]
        html_max_kb`: asked where an edition is cleared to go (approve, schedule), so an
        edition that could never be sent is not approved to go out unattended."""
        require_fits(edition, mlist.name, self.render(edition, mlist),
                     self.settings["edition.html_max_kb"])

    def fit(self, edition: Edition, mlist: MailingList) -> Fit:
        """Measure the edition's HTML part; a draft over `[edition] html_max_kb` is made
        to fit (`mailsize.fit_edition`: its items change; the caller commits)."""
        # The edition's own session: the caller may hold the write lock (a build).
        s = object_session(edition)
        previous = last_sent(s, mlist) if s is not None else None
        owed = set(previous.held or ()) if previous else set()
        return fit_edition(edition, lambda: self.render(edition, mlist),
                           self.settings["edition.html_max_kb"], owed)

    def preview(self, edition: Edition, mlist: MailingList, *,
                email: str = "reader@example.org", name: str = "Reader") -> Preview:
        """The edition as a reader sees it, sample values in the slots."""
        return preview(self.render(edition, mlist), edition.subject,
                       self.settings["public_url"], email=email, name=name,
                       language=mlist.language, title=mlist.title)

    def send_test(self, edition: Edition, mlist: MailingList, to_address: str,
                  name: str = "") -> str:
        """Mail one copy of the edition, built as every subscriber's is, with "[Test] "
        before the subject, to `to_address`; the ledger is not touched. Returns the
        Message-ID; raises DeliveryError when the backend does not take it.

        Uses a backend of its own, closed at once: the process's belongs to the sender.
        """
        rendered = self.render(edition, mlist)
        require_fits(edition, mlist.name, rendered, self.settings["edition.html_max_kb"])
        # A copy never added to a session, so the draft itself stays unrendered.
        copy = Edition(id=edition.id, subject=f"[Test] {edition.subject}")
        keep_rendered(copy, rendered, self.clock())
        template = worker.message_template(copy, mlist, self.send_options())
        unsubscribe = preview_unsubscribe_url(self.settings["public_url"])
        message = template.build(Recipient(0, to_address, name, unsubscribe), self.clock())
        backend = make_backend(self.settings)
        try:
            results = backend.send([message], NoEvents())
        finally:
            backend.close()
        if not results or results[0].status != "sent":
            detail = results[0].detail if results else "no answer"
            raise DeliveryError(f"the test to {to_address} was not accepted: {detail}")
        return message.message_id

    def approve(self, list_name: str) -> tuple[Edition, bool]:
        """Approve a review-mode list's waiting draft: (edition, changed). Through
        `curate.approve`, as the desk and the API do: one set of rules."""
        with self.sessions() as s:
            mlist = get_list(s, list_name)
            edition = review.awaiting_approval(s, mlist)
            self.require_fits(edition, mlist)
            changed = curate.approve(s, edition)
            s.commit()
            return edition, changed

    def send_confirmations(self, list_name: str,
                           progress: Callable[[int], None] | None = None) -> worker.SendReport:
        """Send the list's queued double opt-in mails (rendered once for the run), from
        the thread that owns the backend: the CLI's. Web threads queue and wake the
        sender instead."""
        with self.sessions() as s:
            mlist = get_list(s, list_name)
            edition = confirm.confirmation_edition(s, mlist, self.clock())
            confirm.render_confirmations(s, edition, mlist, self.templates,
                                         self.settings["public_url"], self.clock())
            edition_id = edition.id
        return self.deliver(edition_id, progress=progress)
