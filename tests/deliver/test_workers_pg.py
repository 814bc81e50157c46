"""Acceptance: on PostgreSQL, three `digest worker` processes share one edition to 30,000
subscribers; one is killed with SIGKILL in the middle and the other two finish its
share. The loopback SMTP server counts: nobody received two; everyone received one but
for the killed worker's `uncertain` deliveries, one per connection at most."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from digest.app import App
from digest.db import utcnow
from digest.models import Delivery, DeliveryStatus, Edition, EditionStatus
from subscribers.models import Subscriber
from tests.conftest import POSTGRES_URL
from tests.deliver.conftest import SmtpSink
from tests.deliver.test_send import _prepare
from tests.deliver.test_worker import WORKER, start, statuses, worker_env

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not POSTGRES_URL, reason="set DIGEST_TEST_POSTGRES_URL to run it"),
]

TOTAL = 30_000


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_three_workers_send_30000_once_each_though_one_is_killed(
    app: App, smtp_server: Callable[..., SmtpSink], tmp_path: Path
) -> None:
    sink = smtp_server()
    edition_id = _prepare(app, tmp_path, TOTAL)
    start(app, edition_id, utcnow())  # the workers run on the real clock
    # A short lease: claims of a worker on another machine would come back this soon.
    env = worker_env(app, sink, DIGEST_DELIVERY_LEASE_SECONDS="5")
    logs = [tmp_path / f"worker{n}.log" for n in range(3)]
    workers = []
    for log in logs:
        with log.open("w") as out:  # the child keeps its own copy
            workers.append(subprocess.Popen([*WORKER, "--poll", "0.2"], env=env,
                                            cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT))
    victim, survivors = workers[0], workers[1:]
    try:
        received = sink.handler.messages  # read its length only: a copy costs the sink
        deadline = time.monotonic() + 300  # a safety net, not a speed check (make bench)
        while len(received) < TOTAL // 3 and time.monotonic() < deadline:
            assert all(w.poll() is None for w in workers), _tail(logs)
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        orphans = _held_by(app, victim.pid)
        assert orphans, "the killed worker held no claims"
        assert len(received) < TOTAL * 0.9, "the edition was nearly sent before the kill"

        while (_edition_status(app, edition_id) != EditionStatus.SENT
               and time.monotonic() < deadline):
            assert all(w.poll() is None for w in survivors), _tail(logs)
            time.sleep(0.5)
        for w in survivors:
            w.send_signal(signal.SIGTERM)
        for w in survivors:
            w.wait(10)
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
    assert victim.returncode == -signal.SIGKILL
    assert [w.returncode for w in survivors] == [0, 0], _tail(logs)

    got = Counter(r for m in sink.messages for r in m.rcpt_tos)
    assert set(got.values()) == {1}, [a for a, n in got.items() if n > 1][:10]
    counts = statuses(app, edition_id)
    # Rows the victim was handing over are "uncertain", one per connection at most, and
    # were not sent again (they may have arrived); everyone else got exactly one.
    sent, uncertain = counts[DeliveryStatus.DELIVERED], counts[DeliveryStatus.UNCERTAIN]
    assert sent + uncertain == TOTAL, counts
    assert uncertain <= 4, counts
    assert TOTAL - uncertain <= len(got) <= TOTAL
    # Its share was finished by the others: the claims it held when it died went out.
    with app.sessions() as s:
        finished = dict(s.execute(
            select(Subscriber.email, Delivery.status)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.id.in_(orphans))
        ).all())
    assert set(finished.values()) <= {DeliveryStatus.DELIVERED, DeliveryStatus.UNCERTAIN}
    assert all(got[email] == 1 for email, state in finished.items()
               if state == DeliveryStatus.DELIVERED)


def _held_by(app: App, pid: int) -> list[int]:
    """The deliveries a worker process (by pid) had claimed or was handing over."""
    with app.sessions() as s:
        return list(s.scalars(select(Delivery.id).where(
            Delivery.status.in_((DeliveryStatus.CLAIMED, DeliveryStatus.HANDING_OVER)),
            Delivery.claimed_by.like(f"%:{pid}:%"))))


def _edition_status(app: App, edition_id: int) -> EditionStatus:
    with app.sessions() as s:
        return s.get_one(Edition, edition_id).status


def _tail(logs: list[Path]) -> str:
    return "\n".join(f"--- {log.name}\n" + "\n".join(log.read_text().splitlines()[-15:])
                     for log in logs)
