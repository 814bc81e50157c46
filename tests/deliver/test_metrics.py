"""/metrics after a real send: a sender worker delivers an edition into a loopback SMTP
server while a scraper reads /metrics; the numbers come from the database (the sender's
heartbeat row, the ledger, the sources), as they would from another process."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from digest.app import App
from digest.gather.sources import add_source
from digest.models import Delivery, DeliveryStatus
from digest.sender import run_worker
from digest.web import create_app
from subscribers.lists import get_list
from tests.conftest import Clock
from tests.deliver.conftest import SmtpSink
from tests.loopback import feed_server, uvicorn_server
from tests.test_sender import READERS, start_edition, wait_for

TOKEN = "m" * 40


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics page: (name, sorted labels) -> value."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    matching = [v for (n, have), v in found.items()
                if n == name and set(labels.items()) <= set(have)]
    assert matching, f"no {name} {labels} in {sorted(k for k in found if k[0] == name)}"
    return sum(matching)


@pytest.fixture
def smtp_app(settings, clock: Clock,  # type: ignore[no-untyped-def]
             smtp_server: Callable[..., SmtpSink]) -> Iterator[App]:
    sink = smtp_server(reject={"reader1@example.org"})
    settings = dataclasses.replace(settings, env={"DIGEST_METRICS_TOKEN": TOKEN})
    app = App(settings.with_overrides(
        delivery__backend="smtp", smtp__host=sink.host, smtp__port=sink.port,
        smtp__tls="none", delivery__heartbeat_seconds=0.05), clock=clock)
    app.init_db()
    app.sink = sink  # type: ignore[attr-defined]
    yield app
    app.close()


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return samples(r.text)


def test_metrics_count_a_real_send_the_queue_and_fetches(smtp_app: App, clock: Clock) -> None:
    app = smtp_app
    start_edition(app, clock)  # READERS confirmed members; reader1 is refused (550)
    with feed_server(lambda path: None if path == "/broken.xml" else (
            b"<?xml version='1.0'?><rss version='2.0'><channel><title>T</title>"
            b"</channel></rss>")) as base, app.sessions() as s:
        good = add_source(s, f"{base}/feed.xml", get_list(s, "news"))[0].id
        bad = add_source(s, f"{base}/broken.xml", get_list(s, "news"))[0].id
        s.commit()
        for source_id in (good, good, bad):
            app.fetch(s, source_id)
    client = TestClient(create_app(app))

    before = scrape(client)
    assert value(before, "digest_queue_depth", list="news", edition="1") == READERS
    assert value(before, "digest_deliveries", list="news", status="queued") == READERS
    assert value(before, "digest_senders") == 0
    assert value(before, "digest_last_sender_heartbeat_age_seconds") == float("inf")
    assert value(before, "digest_source_fetches_total", source=str(good)) == 2
    assert value(before, "digest_source_fetch_failures_total", source=str(good)) == 0
    assert value(before, "digest_source_fetch_failures_total", source=str(bad)) == 1
    assert value(before, "digest_source_consecutive_failures", source=str(bad)) == 1
    assert value(before, "digest_database_up") == 1

    stop = threading.Event()
    sender = threading.Thread(target=run_worker, args=(app, stop),
                              kwargs={"poll_seconds": 0.05})
    sender.start()
    try:
        def settled() -> bool:
            with app.sessions() as s:
                done = list(s.scalars(select(Delivery.status)))
            return all(st in (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED) for st in done)
        assert wait_for(settled)
        # The heartbeat carries the counts; it writes them within heartbeat_seconds.
        assert wait_for(lambda: value(scrape(client), "digest_sender_deliveries_total",
                                      status="sent") == READERS - 1)
        during = scrape(client)
    finally:
        stop.set()
        sender.join(10)
    assert len(app.sink.messages) == READERS - 1  # type: ignore[attr-defined]
    assert value(during, "digest_sender_deliveries_total", status="sent",
                 backend="smtp") == READERS - 1
    assert value(during, "digest_sender_deliveries_total", status="failed",
                 backend="smtp") == 1
    assert value(during, "digest_senders") == 1
    assert value(during, "digest_last_sender_heartbeat_age_seconds") < 60
    assert value(during, "digest_deliveries", list="news", edition="1",
                 status="sent") == READERS - 1
    assert value(during, "digest_deliveries", list="news", edition="1", status="failed") == 1
    # Finished: no longer sending, so no queue; its rows are still reported for a day.
    assert not [k for k in during if k[0] == "digest_queue_depth" and ("edition", "1") in k[1]]

    after = scrape(client)  # the sender stopped cleanly: its row is gone
    assert value(after, "digest_senders") == 0
    assert not [k for k in after if k[0] == "digest_sender_deliveries_total"]


def test_metrics_count_scheduler_runs(smtp_app: App) -> None:
    web = create_app(smtp_app)
    aps = BackgroundScheduler()
    web.state.metrics.watch(aps)
    ran = threading.Event()

    def fails() -> None:
        ran.set()
        raise RuntimeError("a job that fails")

    aps.add_job(lambda: None, id="fetch")
    aps.add_job(fails, id="edition:7")
    aps.start()
    try:
        assert ran.wait(10)
        assert wait_for(lambda: value(scrape(TestClient(web)), "digest_scheduler_runs_total",
                                      job="edition", outcome="error") == 1)
    finally:
        aps.shutdown()
    found = scrape(TestClient(web))
    assert value(found, "digest_scheduler_runs_total", job="fetch", outcome="ok") == 1


def test_metrics_refused_without_the_token_or_an_allowed_address(app: App) -> None:
    client = TestClient(create_app(app))  # its address, "testclient", is no address
    r = client.get("/metrics")
    assert r.status_code == 403 and "[metrics] allow" in r.text

    with_token = App(dataclasses.replace(app.settings,
                                         env={"DIGEST_METRICS_TOKEN": TOKEN}))
    try:
        client = TestClient(create_app(with_token))
        r = client.get("/metrics")
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert client.get("/metrics",
                          headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/metrics",
                          headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
        assert client.get("/metrics",
                          headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    finally:
        with_token.close()


@pytest.mark.parametrize(("allow", "expected"), [
    ("127.0.0.1,::1", 200), ("127.0.0.0/8", 200), ("", 403), ("10.0.0.5", 403)])
def test_metrics_from_an_address_over_real_http(app: App, allow: str, expected: int) -> None:
    import urllib.error
    import urllib.request

    allowing = App(app.settings.with_overrides(metrics__allow=allow))
    try:
        with uvicorn_server(create_app(allowing)) as url:
            try:
                with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
                    status, body = r.status, r.read().decode()
            except urllib.error.HTTPError as exc:
                status, body = exc.code, exc.read().decode()
    finally:
        allowing.close()
    assert status == expected, body
    if expected == 200:
        assert "digest_senders 0.0" in body
