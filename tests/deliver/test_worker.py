"""The sender worker: every sending edition (digests and confirmation mails) delivered
round after round, claims given back when it stops, claims of dead or lost workers
taken over, and `digest worker` stopping cleanly on SIGTERM in the middle of an edition."""

from __future__ import annotations

import asyncio
import datetime as dt
import mailbox
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from digest.app import App
from digest.cli import main
from digest.db import utcnow
from digest.deliver import ledger, worker
from digest.deliver.backends import OutboxBackend, SendEvents, SendResult
from digest.deliver.backends.base import ClaimLost
from digest.deliver.backends.smtp import SmtpBackend
from digest.deliver.confirm import queue_confirmation
from digest.deliver.message import Outgoing
from digest.deliver.outcomes import LedgerEvents
from digest.models import Delivery, DeliveryStatus, Edition, EditionKind, EditionStatus
from digest.sender import run_worker
from subscribers.lists import get_list
from subscribers.members import add_member
from subscribers.models import MailingList
from tests.conftest import Clock
from tests.deliver.conftest import EventLog, SinkHandler, SmtpSink, make_messages
from tests.deliver.test_send import _addresses, _prepare


def start(app: App, edition_id: int, now: dt.datetime | None = None) -> int:
    """Render and queue the edition, as the scheduler does; returns the rows queued."""
    with app.sessions() as s:
        edition = s.get_one(Edition, edition_id)
        mlist = s.get_one(MailingList, edition.list_id)
        return worker.start_sending(s, edition, mlist, app.templates,
                                    app.settings["public_url"], now or app.clock())


def statuses(app: App, edition_id: int) -> Counter[DeliveryStatus]:
    with app.sessions() as s:
        return Counter(s.scalars(select(Delivery.status)
                                 .where(Delivery.edition_id == edition_id)).all())


def outbox_recipients(app: App) -> Counter[str]:
    """How many messages each address has in the outbox."""
    folder = app.settings.path("delivery.outbox_dir")
    if not folder.exists():  # made when the backend is first used
        return Counter()
    box = mailbox.Maildir(folder, create=False)
    return Counter(str(m["To"]).rpartition("<")[2].rstrip(">") for m in box)


def test_once_delivers_digests_and_confirmation_mails(app: App, tmp_path: Path) -> None:
    edition_id = _prepare(app, tmp_path, 5)
    start(app, edition_id)
    with app.sessions() as s:
        mlist = get_list(s, "daily")
        for address in ("new1@example.org", "new2@example.org"):
            member, _ = add_member(s, mlist, address, now=app.clock())
            assert member is not None and queue_confirmation(s, member, app.clock())
        s.commit()
        confirm_id = s.scalar(select(Edition.id).where(Edition.kind == EditionKind.CONFIRM))
        assert confirm_id is not None
        assert s.get_one(Edition, confirm_id).rendered_at is None  # the worker renders it

    run_worker(app, threading.Event(), once=True)

    assert outbox_recipients(app) == Counter(
        [*_addresses(5), "new1@example.org", "new2@example.org"])
    assert statuses(app, edition_id) == {DeliveryStatus.DELIVERED: 5}
    assert statuses(app, confirm_id) == {DeliveryStatus.DELIVERED: 2}
    with app.sessions() as s:
        assert s.get_one(Edition, edition_id).status == EditionStatus.SENT
        assert s.get_one(Edition, confirm_id).status == EditionStatus.SENDING  # standing queue


def test_the_command_runs_once(app: App, tmp_path: Path) -> None:
    start(app, _prepare(app, tmp_path, 3))
    env = {"DIGEST_DATABASE_URL": app.settings["database.url"],
           "DIGEST_DATA_DIR": app.settings["data_dir"],
           "DIGEST_DELIVERY_OUTBOX_DIR": app.settings["delivery.outbox_dir"],
           "DIGEST_PUBLIC_URL": app.settings["public_url"]}
    result = CliRunner().invoke(main, ["worker", "--once"], env=env)
    assert result.exit_code == 0, result.output
    assert outbox_recipients(app) == Counter(_addresses(3))


def test_a_running_worker_finds_new_editions_and_stops_when_told(
    app: App, tmp_path: Path
) -> None:
    edition_id = _prepare(app, tmp_path, 4)
    stop = threading.Event()
    thread = threading.Thread(target=run_worker, args=(app, stop),
                              kwargs={"poll_seconds": 0.05})
    thread.start()
    try:
        time.sleep(0.2)  # idle: nothing is sending yet
        start(app, edition_id)
        deadline = time.monotonic() + 20
        done = {DeliveryStatus.DELIVERED: 4}
        while statuses(app, edition_id) != done and time.monotonic() < deadline:
            time.sleep(0.05)
        assert statuses(app, edition_id) == done
    finally:
        stop.set()
        began = time.monotonic()
        thread.join(10)
    assert not thread.is_alive()
    assert time.monotonic() - began < 2  # the idle wait is cut short


class StopAfter:
    """The outbox, with `stop` set after `count` messages: SIGTERM in mid-batch."""

    name = "outbox"

    def __init__(self, inner: OutboxBackend, stop: threading.Event, count: int) -> None:
        self.inner, self.stop, self.count = inner, stop, count

    def send(self, batch: Sequence[Outgoing], events: SendEvents,
             stop: threading.Event | None = None) -> list[SendResult]:
        outer = self

        class Counting:
            def hand_over(self, msgs: Sequence[Outgoing]) -> dict[int, str]:
                return events.hand_over(msgs)

            def done(self, result: SendResult) -> None:
                events.done(result)
                outer.count -= 1
                if outer.count == 0:
                    outer.stop.set()

            def taken_back(self, msgs: Sequence[Outgoing]) -> None:
                events.taken_back(msgs)

        return self.inner.send(batch, Counting(), stop)

    def close(self) -> None:
        pass


def test_stopping_gives_the_rest_of_the_batch_back(app: App, tmp_path: Path) -> None:
    edition_id = _prepare(app, tmp_path, 25)
    start(app, edition_id)
    stop = threading.Event()
    # One message a group, so that a stop can come between two of them.
    backend = StopAfter(OutboxBackend(app.settings.path("delivery.outbox_dir"), group=1),
                        stop, 3)
    opts = worker.SendOptions(public_url=app.settings["public_url"], batch_size=10)

    report = worker.deliver(app.engine, edition_id, backend, app.tokens, opts, app.clock,
                            stop=stop)

    assert report.claimed == 10 and not report.finished
    assert report.counts == {DeliveryStatus.DELIVERED: 3, DeliveryStatus.QUEUED: 22}
    with app.sessions() as s:
        assert not s.scalars(select(Delivery.id).where(
            Delivery.claimed_by != "", Delivery.status == DeliveryStatus.QUEUED)).all()
    report = worker.deliver(app.engine, edition_id, backend, app.tokens, opts, app.clock)
    assert report.finished and report.counts == {DeliveryStatus.DELIVERED: 25}
    assert set(outbox_recipients(app).values()) == {1}


def test_a_dead_workers_claims_return_after_its_lease(
    app: App, tmp_path: Path, clock: Clock
) -> None:
    """Claims of a worker on another machine (no pid to check) wait for the lease."""
    edition_id = _prepare(app, tmp_path, 6)
    start(app, edition_id)
    lease = app.settings["delivery.lease_seconds"]
    with app.sessions() as s:
        taken = ledger.claim(s, edition_id, "elsewhere:4242:abcdef01", 4, clock(), lease)
    assert len(taken) == 4

    run_worker(app, threading.Event(), once=True)
    assert statuses(app, edition_id) == {DeliveryStatus.DELIVERED: 2, DeliveryStatus.CLAIMED: 4}

    clock.advance(seconds=lease + 1)
    run_worker(app, threading.Event(), once=True)
    assert statuses(app, edition_id) == {DeliveryStatus.DELIVERED: 6}
    assert set(outbox_recipients(app).values()) == {1}
    with app.sessions() as s:
        assert s.get_one(Edition, edition_id).status == EditionStatus.SENT


def test_a_lost_claim_is_not_handed_over(app: App, tmp_path: Path, clock: Clock) -> None:
    edition_id = _prepare(app, tmp_path, 2)
    start(app, edition_id)
    with app.sessions() as s:
        mine = ledger.claim(s, edition_id, "me:1:a", 2, clock(), 300)
        # Our lease ran out and another worker took the first row over.
        s.execute(update(Delivery).where(Delivery.id == mine[0].delivery_id)
                  .values(claimed_by="other:2:b"))
        s.commit()
    events = LedgerEvents(app.engine, "me:1:a", ledger.RetryPolicy(), clock)
    lost, kept = make_messages(2, first_id=mine[0].delivery_id)
    try:
        with pytest.raises(ClaimLost):
            events.handing_over(lost)
        events.handing_over(kept)
        events.done(SendResult(kept.delivery_id, "sent", ""))
    finally:
        events.close()
    with app.sessions() as s:
        rows = dict(s.execute(select(Delivery.id, Delivery.status)).all())
    assert rows == {lost.delivery_id: DeliveryStatus.CLAIMED,
                    kept.delivery_id: DeliveryStatus.DELIVERED}


class LoseFirst(EventLog):
    """SendEvents whose first handover finds the claim lost."""

    def handing_over(self, msg: Outgoing) -> None:
        super().handing_over(msg)
        if len(self.calls) == 1:
            raise ClaimLost("taken over")


def test_backends_abandon_a_message_whose_claim_was_lost(
    smtp_server: Callable[..., SmtpSink], tmp_path: Path
) -> None:
    sink = smtp_server()
    smtp = SmtpBackend(sink.host, sink.port, tls="none", connections=1, timeout=5)
    outbox = OutboxBackend(tmp_path / "outbox")
    try:
        for backend in (smtp, outbox):
            events = LoseFirst()
            results = backend.send(make_messages(3), events)
            assert [r.status for r in results] == ["deferred", "sent", "sent"]
            assert results[0].detail == "abandoned: taken over"
    finally:
        smtp.close()
    assert sorted(r for m in sink.messages for r in m.rcpt_tos) == [
        "r2@example.com", "r3@example.com"]
    assert sorted(p.name for p in (tmp_path / "outbox" / "tmp").iterdir()) == []
    assert len(list((tmp_path / "outbox" / "new").iterdir())) == 2


def test_smtp_stop_finishes_the_messages_in_flight_and_starts_no_more(
    smtp_server: Callable[..., SmtpSink],
) -> None:
    sink = smtp_server()
    backend = SmtpBackend(sink.host, sink.port, tls="none", connections=2, timeout=5)
    stop = threading.Event()
    events = EventLog()
    events.on_handing_over = lambda msg: stop.set()
    try:
        results = backend.send(make_messages(10), events, stop=stop)
    finally:
        backend.close()
    events.check()
    # Both connections had a message under way when the first reached its handover.
    assert 1 <= len(results) <= 2 and {r.status for r in results} == {"sent"}
    assert len(events.results) == len(results) == len(sink.messages)


# -- `digest worker` as a process ---------------------------------------------------


class SlowHandler(SinkHandler):
    """Answers each message after `delay` seconds, like a busy relay."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


def slow_sink(smtp_server: Callable[..., SmtpSink], delay: float) -> SmtpSink:
    sink = smtp_server()
    # Before any client connects: each connection's server takes the controller's handler.
    sink.handler = sink.controller.handler = SlowHandler(delay)
    return sink


def worker_env(app: App, sink: SmtpSink, **extra: str) -> dict[str, str]:
    """The environment of a `digest worker` process sending to `sink`."""
    return {
        **os.environ,
        "DIGEST_DATABASE_URL": app.settings["database.url"],
        "DIGEST_DATA_DIR": app.settings["data_dir"],
        "DIGEST_PUBLIC_URL": app.settings["public_url"],
        "DIGEST_DELIVERY_BACKEND": "smtp",
        "DIGEST_SMTP_HOST": sink.host,
        "DIGEST_SMTP_PORT": str(sink.port),
        "DIGEST_SMTP_TLS": "none",
        **extra,
    }


WORKER = [sys.executable, "-m", "digest", "worker"]


@pytest.mark.slow
def test_sigterm_finishes_in_flight_returns_the_rest_and_exits_0(
    app: App, smtp_server: Callable[..., SmtpSink], tmp_path: Path
) -> None:
    total = 1000
    sink = slow_sink(smtp_server, 0.01)
    edition_id = _prepare(app, tmp_path, total)
    start(app, edition_id, utcnow())  # the worker runs on the real clock
    env = worker_env(app, sink, DIGEST_DELIVERY_BATCH_SIZE="100")
    first = subprocess.Popen([*WORKER, "--poll", "0.1"], env=env, cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(sink.handler.messages) < total // 4 and time.monotonic() < deadline:
            assert first.poll() is None, first.communicate()[0]
            time.sleep(0.01)
        first.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        output = first.communicate(timeout=10)[0]
        took = time.monotonic() - stopped
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, output
    assert took < 3, output
    at_stop = statuses(app, edition_id)
    assert at_stop[DeliveryStatus.CLAIMED] == at_stop[DeliveryStatus.HANDING_OVER] == 0, at_stop
    assert at_stop[DeliveryStatus.UNCERTAIN] == 0, at_stop
    assert at_stop[DeliveryStatus.DELIVERED] == len(sink.messages) < total
    # Named as the CLI and the desk name it, by number and list, not by its row id.
    assert re.search(r"edition #\d+ of [\w-]+: \d+ claimed deliveries returned to the "
                     r"queue", output), output

    second = subprocess.run([*WORKER, "--once"], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    received = Counter(r for m in sink.messages for r in m.rcpt_tos)
    assert sorted(received) == _addresses(total)
    assert set(received.values()) == {1}
    assert statuses(app, edition_id) == {DeliveryStatus.DELIVERED: total}
    with app.sessions() as s:
        assert s.get_one(Edition, edition_id).status == EditionStatus.SENT


def _claim_steps(app: App, tmp_path: Path, people: int) -> tuple[int, int]:
    """SQLite virtual-machine steps (in hundreds) that claiming 100 of an edition's
    `people` queued deliveries takes, and checking those 100 are still wanted: a count
    of work done, not of time."""
    edition_id = _prepare(app, tmp_path, people)
    start(app, edition_id)
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0  # go on

    with app.sessions() as s:
        list_id = s.get_one(Edition, edition_id).list_id
        raw = s.connection().connection.driver_connection
        raw.set_progress_handler(count, 100)
        claimed = ledger.claim(s, edition_id, "me:1:a", 100, app.clock(), 300)
        claiming, steps = steps, 0
        wanted = ledger.skip_unwanted(s, list_id, claimed)
        raw.set_progress_handler(None, 100)
    assert len(claimed) == len(wanted) == 100
    return claiming, steps


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_claim_costs_the_same_whatever_the_size_of_the_edition(
    app: App, tmp_path: Path, clock: Clock
) -> None:
    """Claiming a batch walks the queue index and stops after the batch, rather than
    looking at every delivery of the edition and sorting them; checking the batch's
    readers are still members looks each one up, rather than reading every member of
    the list: a million-reader edition is sent batch by batch as cheaply as a small
    one."""
    small = _claim_steps(app, tmp_path, 200)
    big_app = App(app.settings.with_overrides(
        database__url=f"sqlite:///{tmp_path / 'big.db'}"), clock=clock)
    big_app.init_db()
    try:
        (tmp_path / "big").mkdir()
        big = _claim_steps(big_app, tmp_path / "big", 8000)
    finally:
        big_app.close()
    assert big[0] < 2 * small[0], (small, big)  # claiming
    assert big[1] < 2 * small[1], (small, big)  # checking who is still wanted


EDITION_SEND = [sys.executable, "-m", "digest", "edition", "send", "--list", "daily"]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "SIGTERM"])
def test_edition_send_stopped_by_a_signal_finishes_in_flight_and_a_rerun_sends_the_rest(
    app: App, smtp_server: Callable[..., SmtpSink], tmp_path: Path, sig: signal.Signals
) -> None:
    """`digest edition send` from a terminal (Ctrl-C) or under a supervisor's timeout
    (SIGTERM): as the worker does, it finishes the messages in flight, gives the rest
    back to the queue and says so; run again, it sends them, nobody twice. (Killed
    outright instead, it left rows `sending`, readers never to be mailed.)"""
    total = 400
    sink = slow_sink(smtp_server, 0.01)
    edition_id = _prepare(app, tmp_path, total)
    env = worker_env(app, sink, DIGEST_DELIVERY_BATCH_SIZE="50")
    first = subprocess.Popen(EDITION_SEND, env=env, cwd=tmp_path, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while len(sink.handler.messages) < total // 4 and time.monotonic() < deadline:
            assert first.poll() is None, first.communicate()
            time.sleep(0.01)
        first.send_signal(sig)
        stdout, stderr = first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 1, stderr
    said = " ".join(stderr.split())
    assert "Error: stopped by a signal before the end: the messages in flight were " \
        "finished, the rest of edition #1 waits in the queue; run `digest edition send " \
        "--list daily` again" in said, stderr
    assert "Traceback" not in stderr
    assert "Some deliveries wait" not in stdout, stdout  # they wait for the rerun
    at_stop = statuses(app, edition_id)
    assert at_stop[DeliveryStatus.CLAIMED] == at_stop[DeliveryStatus.HANDING_OVER] == 0, at_stop
    assert at_stop[DeliveryStatus.UNCERTAIN] == 0, at_stop
    assert at_stop[DeliveryStatus.DELIVERED] == len(sink.messages) < total

    second = subprocess.run(EDITION_SEND, env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "Edition #1 is sent." in second.stdout
    received = Counter(r for m in sink.messages for r in m.rcpt_tos)
    assert sorted(received) == _addresses(total)
    assert set(received.values()) == {1}
    assert statuses(app, edition_id) == {DeliveryStatus.DELIVERED: total}
