"""The sender thread of `digest serve`: it alone owns the delivery backend. Web threads
that queue confirmation mails hand them over through the database and wake it; a
sender that fails is started again, and /healthz says so while it is down."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from digest.app import App
from digest.deliver.backends.base import SendEvents, SendResult
from digest.deliver.backends.outbox import OutboxBackend
from digest.deliver.message import Outgoing
from digest.models import Delivery, DeliveryStatus
from digest.publication import update_list
from digest.sender import Sender, run_worker
from digest.web import create_app
from subscribers.lists import get_list
from tests.conftest import Clock
from tests.deliver.conftest import SmtpSink
from tests.test_schedule import add_articles, hourly, make_list
from tests.web.test_subscribe import subscribe

READERS = 3


def wait_for(check: Callable[[], bool], seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def start_edition(app: App, clock: Clock) -> None:
    """The news list's edition, rendered and queued for its READERS."""
    make_list(app, clock, members=READERS, public=True)
    add_articles(app, "news", hourly(clock() - dt.timedelta(hours=3), 3))
    with app.sessions() as s:
        edition, _ = app.build(s, "news")
        assert edition is not None
        app.start_sending(s, edition, get_list(s, "news"))


def statuses(app: App) -> list[DeliveryStatus]:
    with app.sessions() as s:
        return sorted(s.scalars(select(Delivery.status)))


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    server = SmtpSink(hold=threading.Event()).start()
    yield server
    server.stop()


@pytest.fixture
def smtp_app(settings, clock: Clock, sink: SmtpSink) -> Iterator[App]:  # type: ignore[no-untyped-def]
    app = App(settings.with_overrides(
        delivery__backend="smtp", smtp__host=sink.host, smtp__port=sink.port,
        smtp__tls="none", smtp__connections=2, delivery__batch_size=2), clock=clock)
    app.init_db()
    yield app
    app.close()


def test_a_sign_up_while_the_sender_is_mid_batch_reaches_everyone(
    smtp_app: App, clock: Clock, sink: SmtpSink
) -> None:
    """The web form queues the confirmation mail; the sender, mid-batch on SMTP, is
    not disturbed, and delivers it as well as the whole edition."""
    app = smtp_app
    start_edition(app, clock)
    stop = threading.Event()
    sender = Sender(app, stop, poll_seconds=0.1, restart_seconds=0.1)
    web = create_app(app, checks=[sender.problem])
    sender.start()
    try:
        assert sink.handler.holding.wait(10), "the sender never reached DATA"
        with TestClient(web) as client:
            assert subscribe(client, "newcomer@example.org", "news").status_code == 200
            sink.handler.hold.set()  # the server answers the message in flight
            assert wait_for(lambda: len(sink.messages) == READERS + 1), sink.messages
            assert client.get("/healthz").json() == {"status": "ok"}
        assert sorted(r for m in sink.messages for r in m.rcpt_tos) == sorted(
            [*(f"reader{i}@example.org" for i in range(READERS)), "newcomer@example.org"])
        # The batch in flight (two readers) finished, then the confirmation went first.
        assert sink.messages[2].rcpt_tos == ("newcomer@example.org",)
        assert statuses(app) == [DeliveryStatus.DELIVERED] * (READERS + 1)
        assert sender.restarts == 0 and sender.problem() is None
    finally:
        stop.set()
        sink.handler.hold.set()
        sender.join(10)


class FailsOnce:
    """An outbox backend whose first send() fails in a way no one planned for."""

    name = "outbox"

    def __init__(self, outbox: OutboxBackend, failed: threading.Event,
                 go_on: threading.Event) -> None:
        self.outbox, self.failed, self.go_on = outbox, failed, go_on

    def send(self, batch: Sequence[Outgoing], events: SendEvents,
             stop: threading.Event | None = None) -> list[SendResult]:
        if not self.failed.is_set():
            self.failed.set()
            raise RuntimeError("a bug in the backend")
        self.go_on.wait(10)
        return self.outbox.send(batch, events, stop)

    def close(self) -> None:
        self.outbox.close()


def test_a_failed_sender_restarts_and_healthz_fails_until_it_does(
    settings, clock: Clock  # type: ignore[no-untyped-def]
) -> None:
    failed, go_on = threading.Event(), threading.Event()
    backend = FailsOnce(OutboxBackend(settings["delivery.outbox_dir"]), failed, go_on)
    app = App(settings, clock=clock, backend=backend)
    app.init_db()
    start_edition(app, clock)
    stop = threading.Event()
    sender = Sender(app, stop, poll_seconds=0.1, restart_seconds=1.0)
    client = TestClient(create_app(app, checks=[sender.problem]))
    sender.start()
    try:
        assert failed.wait(10)
        answers = []
        assert wait_for(lambda: answers.append(client.get("/healthz"))
                        or answers[-1].status_code == 503, 5)
        down = answers[-1].json()
        assert down["status"] == "unavailable"
        assert "sender failed" in down["reason"] and "a bug in the backend" in down["reason"]
        go_on.set()
        assert wait_for(lambda: statuses(app) == [DeliveryStatus.DELIVERED] * READERS)
        assert sender.restarts == 1
        assert client.get("/healthz").status_code == 200
    finally:
        stop.set()
        go_on.set()
        sender.join(10)
        app.close()


def test_a_broken_confirmation_template_holds_only_its_own_mail(
    settings, clock: Clock, tmp_path, caplog: pytest.LogCaptureFixture  # type: ignore[no-untyped-def]
) -> None:
    """An admin's override with a mistake: that list's confirmations wait, logged; the
    digest goes out; once the template is fixed, the confirmation follows."""
    override = tmp_path / "templates" / "email"
    override.mkdir(parents=True)
    (override / "confirm.html").write_text("<p>{{ no_such_value }}</p>")
    app = App(settings.with_overrides(templates_dir=str(tmp_path / "templates")), clock=clock)
    app.init_db()
    try:
        start_edition(app, clock)
        with TestClient(create_app(app)) as client:
            assert subscribe(client, "newcomer@example.org", "news").status_code == 200
        stop = threading.Event()
        run_worker(app, stop, once=True)
        assert statuses(app) == [DeliveryStatus.QUEUED, *[DeliveryStatus.DELIVERED] * READERS]
        assert any("does not render" in r.getMessage() and "news" in r.getMessage()
                   for r in caplog.records)
        (override / "confirm.html").unlink()
        run_worker(app, stop, once=True)  # a new worker run renders it again
        assert statuses(app) == [DeliveryStatus.DELIVERED] * (READERS + 1)
    finally:
        app.close()


def test_a_lists_new_title_reaches_the_next_confirmation_mail_without_a_restart(
    settings, clock: Clock  # type: ignore[no-untyped-def]
) -> None:
    """An admin renames a list while `digest serve` runs: the next sign-up's
    confirmation mail names it as it is now, not as it was when the sender started."""
    app = App(settings, clock=clock)
    app.init_db()
    stop = threading.Event()
    sender = threading.Thread(target=run_worker, args=(app, stop),
                              kwargs={"poll_seconds": 0.05}, daemon=True)
    folder = Path(app.settings["delivery.outbox_dir"]) / "new"

    def subjects() -> list[str]:
        """The outbox's subjects, oldest first."""
        files = sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime_ns) \
            if folder.exists() else []
        return [str(email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
                    ["Subject"]) for p in files]

    try:
        make_list(app, clock, members=0, public=True)
        sender.start()
        with TestClient(create_app(app)) as client:
            assert subscribe(client, "first@example.org", "news").status_code == 200
            app.mail_queued.set()
            assert wait_for(lambda: len(subjects()) == 1), subjects()
            with app.sessions() as s:
                update_list(s, get_list(s, "news"), title="Harbour Evening",
                            description="The harbour at dusk")
                s.commit()
            assert subscribe(client, "second@example.org", "news").status_code == 200
            app.mail_queued.set()
            assert wait_for(lambda: len(subjects()) == 2), subjects()
        assert subjects() == ["Confirm your subscription to news",
                              "Confirm your subscription to Harbour Evening"]
    finally:
        stop.set()
        sender.join(10)
        app.close()
