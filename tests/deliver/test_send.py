"""Sending editions through a real SMTP server on loopback: temporary and permanent
refusals, retries with backoff, suppression checked right before sending, and a sender
killed hard in the middle of 2,000 messages."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from digest.app import App
from digest.config import Settings
from digest.deliver.backends.base import Backend
from digest.deliver.backends.smtp import SmtpBackend
from digest.deliver.worker import start_sending
from digest.gather.sources import add_source
from digest.models import Delivery, DeliveryStatus, Edition, EditionStatus
from digest.publication import create_list
from subscribers.importing import import_csv
from subscribers.lists import get_list
from subscribers.models import Subscriber
from subscribers.suppress import suppress
from tests.conftest import DATA, Clock
from tests.deliver.conftest import SmtpSink

NEWS = DATA / "flow" / "news.xml"


def _addresses(n: int) -> list[str]:
    return [f"reader{i:05d}@example.org" for i in range(n)]


def _prepare(app: App, tmp_path: Path, people: int) -> int:
    """A list with `people` confirmed subscribers and a built edition; returns its id."""
    csv = tmp_path / "people.csv"
    csv.write_text("email,name\n" + "".join(f"{a},Reader {i}\n"
                                             for i, a in enumerate(_addresses(people))))
    with app.sessions() as s:
        mlist = create_list(s, "daily", title="Daily", from_addr="Daily <news@news.example.org>")
        add_source(s, str(NEWS), mlist, allow_files=True)
        s.commit()
        import_csv(s, mlist, csv, confirmed=True, now=app.clock())
        s.commit()
        app.fetch(s, allow_files=True)
        edition, _ = app.build(s, "daily")
        assert edition is not None
        return edition.id


def _smtp_app(settings: Settings, sink: SmtpSink, clock: Clock) -> tuple[App, Backend]:
    backend = SmtpBackend(sink.host, sink.port, tls="none", connections=4, timeout=10)
    return App(settings, clock=clock, backend=backend), backend


def _statuses(app: App, edition_id: int) -> dict[str, str]:
    with app.sessions() as s:
        rows = s.execute(
            select(Delivery.status, Delivery.last_error, Delivery.subscriber_id)
            .where(Delivery.edition_id == edition_id)).all()
        emails = dict(s.execute(select(Subscriber.id, Subscriber.email)).all())
    return {emails[sid]: f"{status} {error}".strip() for status, error, sid in rows}


def test_refusals_are_recorded_and_temporary_ones_retried(
    app: App, smtp_server: Callable[..., SmtpSink], clock: Clock, tmp_path: Path
) -> None:
    people = _addresses(6)
    sink = smtp_server(reject={people[1]}, tempfail={people[2]: 1, people[3]: 99})
    edition_id = _prepare(app, tmp_path, 6)
    sender, _backend = _smtp_app(app.settings, sink, clock)
    try:
        report = sender.send("daily")
        assert report is not None and not report.finished
        status = _statuses(app, edition_id)
        assert status[people[1]].startswith("failed 550 5.1.1 no such user")
        assert status[people[2]].startswith("queued 451")
        assert report.next_retry == clock() + dt.timedelta(seconds=60)
        assert Counter(r for m in sink.messages for r in m.rcpt_tos) == Counter(
            [people[0], people[4], people[5]])

        # Not due yet: nothing is sent again.
        sender.send("daily")
        assert len(sink.messages) == 3
        clock.advance(seconds=61)
        report = sender.send("daily")
        assert report is not None
        status = _statuses(app, edition_id)
        assert status[people[2]] == "sent"
        assert status[people[3]].startswith("queued 451")  # still greylisted, backing off
        for _ in range(10):
            clock.advance(days=1)
            report = sender.send("daily")
            assert report is not None
            if report.finished:
                break
        assert report.finished
        status = _statuses(app, edition_id)
        assert status[people[3]].startswith("failed gave up after 8 attempts: 451")
        received = Counter(r for m in sink.messages for r in m.rcpt_tos)
        assert received == Counter([people[0], people[2], people[4], people[5]])
        with app.sessions() as s:
            assert s.get_one(Edition, edition_id).status == EditionStatus.SENT
    finally:
        sender.close()


def test_connection_closed_with_421_is_retried(
    app: App, smtp_server: Callable[..., SmtpSink], clock: Clock, tmp_path: Path
) -> None:
    sink = smtp_server(close_on_mail={3})
    _prepare(app, tmp_path, 20)
    sender, _backend = _smtp_app(app.settings, sink, clock)
    try:
        sender.send("daily")
        clock.advance(minutes=5)
        report = sender.send("daily")
        assert report is not None and report.finished
        assert report.counts == {DeliveryStatus.DELIVERED: 20}
        received = Counter(r for m in sink.messages for r in m.rcpt_tos)
        assert set(received.values()) == {1} and len(received) == 20
    finally:
        sender.close()


def test_suppressed_after_queueing_is_not_sent(
    app: App, smtp_server: Callable[..., SmtpSink], clock: Clock, tmp_path: Path
) -> None:
    sink = smtp_server()
    edition_id = _prepare(app, tmp_path, 3)
    people = _addresses(3)
    sender, _backend = _smtp_app(app.settings, sink, clock)
    try:
        with app.sessions() as s:
            edition = s.get_one(Edition, edition_id)
            start_sending(s, edition, get_list(s, "daily"), app.templates,
                          app.settings["public_url"], clock())
            suppress(s, people[0], "complaint", now=clock())
            s.commit()
        report = sender.send("daily")
        assert report is not None and report.counts == {DeliveryStatus.DELIVERED: 2,
                                                   DeliveryStatus.SKIPPED: 1}
        assert sorted(r for m in sink.messages for r in m.rcpt_tos) == people[1:]
    finally:
        sender.close()


@pytest.mark.slow  # two `digest edition send` processes and 2,000 messages
def test_killed_sender_resumes_and_everyone_gets_exactly_one(
    app: App, smtp_server: Callable[..., SmtpSink], tmp_path: Path
) -> None:
    """2,000 subscribers; `digest edition send` is killed with SIGKILL mid-send and
    run again. The server counts: nobody received two messages; everyone received one
    but for at most one `uncertain` delivery per connection, caught between its commit
    and its final "." (never sent again, since it may have arrived)."""
    total = 2000
    sink = smtp_server()
    _prepare(app, tmp_path, total)
    env = {
        **os.environ,
        "DIGEST_DATABASE_URL": app.settings["database.url"],
        "DIGEST_DATA_DIR": app.settings["data_dir"],
        "DIGEST_PUBLIC_URL": app.settings["public_url"],
        "DIGEST_DELIVERY_BACKEND": "smtp",
        "DIGEST_DELIVERY_BATCH_SIZE": "100",
        "DIGEST_SMTP_HOST": sink.host,
        "DIGEST_SMTP_PORT": str(sink.port),
        "DIGEST_SMTP_TLS": "none",
    }
    command = [sys.executable, "-m", "digest", "edition", "send", "--list", "daily"]
    first = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(sink.messages) < total // 3 and time.monotonic() < deadline:
        if first.poll() is not None:
            break
        time.sleep(0.002)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert first.returncode == -signal.SIGKILL, "the sender finished before it was killed"
    at_kill = len(sink.messages)
    assert 0 < at_kill < total

    second = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert second.returncode == 0, second.stderr
    received = Counter(r for m in sink.messages for r in m.rcpt_tos)
    assert set(received.values()) == {1}, [a for a, n in received.items() if n > 1]
    assert "is sent" in second.stdout
    with app.sessions() as s:
        status = dict(s.execute(select(Subscriber.email, Delivery.status)
                                .join(Subscriber, Subscriber.id == Delivery.subscriber_id))
                      .all())
    # Rows caught mid-handover (committed `sending`, their "." on the wire or about to
    # be) are "uncertain", one per connection at most, and were not sent again, arrived
    # or not; everyone else got exactly one.
    uncertain = {a for a, state in status.items() if state == DeliveryStatus.UNCERTAIN}
    assert len(uncertain) <= 4, uncertain
    assert set(_addresses(total)) - set(received) <= uncertain
    assert {a for a, state in status.items() if state == DeliveryStatus.DELIVERED} == (
        set(_addresses(total)) - uncertain)


@pytest.mark.parametrize("server", ["drops the connection", "answers too late"])
def test_a_message_whose_final_reply_is_lost_is_uncertain_never_sent_again(
    app: App, smtp_server: Callable[..., SmtpSink], clock: Clock, tmp_path: Path, server: str
) -> None:
    """The server has the whole message, then its reply to the final "." never comes (the
    connection drops, or the reply takes longer than [smtp] timeout): the reader may
    well have it, so the delivery is uncertain and no retry sends a second copy."""
    people = _addresses(4)
    if server == "drops the connection":
        sink = smtp_server(vanish_after_data={2})
    else:
        sink = smtp_server(slow_after_data={2: 2.0})
    edition_id = _prepare(app, tmp_path, 4)
    backend = SmtpBackend(sink.host, sink.port, tls="none", connections=1, timeout=1)
    sender = App(app.settings, clock=clock, backend=backend)
    try:
        report = sender.send("daily")
        for _ in range(10):  # whatever retries the ledger would allow
            assert report is not None
            if report.finished:
                break
            clock.advance(days=1)
            report = sender.send("daily")
        assert report is not None and report.finished
    finally:
        sender.close()
    second = sink.messages[1].rcpt_tos[0]
    assert Counter(r for m in sink.messages for r in m.rcpt_tos) == Counter(people)
    status = _statuses(app, edition_id)
    assert status[second].startswith("uncertain "), status[second]
    assert "may have accepted" in status[second]
    assert [status[p] for p in people if p != second] == ["sent"] * 3
