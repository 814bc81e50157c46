"""Sender heartbeats, /healthz with a dead sender, `digest status --json`, and the log in
JSON lines (`[logging] format = "json"`), from a command, `digest worker` and a live
`digest serve`."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from digest import heartbeat
from digest.app import App
from digest.cli import main
from digest.heartbeat import Heartbeat, new_tally
from digest.logs import configure_logging
from digest.web import create_app
from digest.web.site import senders_check
from tests.conftest import Clock
from tests.test_schedule import make_list
from tests.test_sender import wait_for
from tests.test_serve import Served, environment, start_serve  # noqa: F401 (fixture)


def beating(app: App, tally: Counter[str] | None = None) -> Heartbeat:
    """A sender's heartbeat on the app's clock; only its first beat, written at start,
    counts here (the next would come in an hour)."""
    beat = Heartbeat(app.sessions, app.clock, "outbox", tally or new_tally(), interval=3600)
    beat.start()
    return beat


def test_healthz_fails_when_no_sender_has_reported_within_the_timeout(
    app: App, clock: Clock
) -> None:
    client = TestClient(create_app(app, checks=[senders_check(app)]))
    r = client.get("/healthz")
    assert r.status_code == 503
    assert "no sender is running" in r.json()["reason"]

    beat = beating(app)
    try:
        assert client.get("/healthz").json() == {"status": "ok"}
        clock.advance(seconds=60)  # [delivery] heartbeat_timeout: 60 s, still fine
        assert client.get("/healthz").status_code == 200
        clock.advance(seconds=1)
        r = client.get("/healthz")
        assert r.status_code == 503
        assert r.json()["reason"].startswith("no sender has reported for 61 s")
        assert "heartbeat_timeout" in r.json()["reason"]
    finally:
        beat.stop()  # a clean stop deletes the row: no sender at all
    assert "no sender is running" in client.get("/healthz").json()["reason"]


def test_heartbeat_renews_itself_and_carries_the_counts(app: App, clock: Clock) -> None:
    tally = new_tally()
    beat = Heartbeat(app.sessions, app.clock, "smtp", tally, interval=0.02)
    beat.start()
    try:
        clock.advance(seconds=30)
        tally["sent"] += 5
        client = TestClient(create_app(app, checks=[senders_check(app)]))
        clock.advance(seconds=40)  # 70 s after the first beat, so only a renewal helps
        assert wait_for(lambda: client.get("/healthz").status_code == 200)
        with app.sessions() as s:
            [row] = heartbeat.senders(s, clock())
        assert row.counts["sent"] == 5 and row.backend == "smtp"
    finally:
        beat.stop()


def status_json(app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:  # type: ignore[type-arg]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIGEST_CONFIG", raising=False)
    monkeypatch.setenv("DIGEST_DATABASE_URL", app.settings["database.url"])
    r = CliRunner().invoke(main, ["status", "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    document: dict = json.loads(r.stdout)  # type: ignore[type-arg]
    return document


def test_status_json_shows_workers_lists_sources_and_editions(
    app: App, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_list(app, clock, "morning", timezone="Asia/Seoul", members=3)
    assert status_json(app, tmp_path, monkeypatch)["workers"] == []
    tally = new_tally()
    tally["sent"] = 7
    beat = beating(app, tally)
    try:
        document = status_json(app, tmp_path, monkeypatch)
    finally:
        beat.stop()
    [worker] = document["workers"]
    assert worker["host"] == socket.gethostname() and worker["pid"] == os.getpid()
    assert worker["backend"] == "outbox" and worker["counts"]["sent"] == 7
    assert worker["last_heartbeat"] == clock().isoformat()
    assert isinstance(worker["age_seconds"], float)
    [mlist] = document["lists"]
    assert mlist["name"] == "morning" and mlist["timezone"] == "Asia/Seoul"
    assert len(mlist["next_runs"]) == 3
    assert [s["source"] for s in document["sources"]] == ["Morning"]
    assert document["editions"] == []
    assert status_json(app, tmp_path, monkeypatch)["workers"] == []  # stopped cleanly


def json_lines(text: str) -> list[dict]:  # type: ignore[type-arg]
    """Every line of `text` as a JSON object (fails on a line that is not one)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# An itsdangerous token's shape: payload, timestamp and signature, with "_", "-" and "A".
SIGNED = "WzEsbnVsbCwiY2ZlMDBkZGUiXQ.axSPUQ.FuHkMf_uOxnhYH1ss9g-pyjAyO9K0"


def test_json_log_keeps_a_traceback_in_one_line_and_redacts_tokens(
    capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(fmt="json", command=True)
    log = logging.getLogger("digest.test")
    try:
        try:
            raise ValueError("bad value\nover two lines")
        except ValueError:
            log.exception("failed on /unsubscribe?token=secret123")
        log.warning("plain warning")
        # A token decoded first, its parts cut whatever separates them; a word with no
        # "/" or "?" stays, capitals and all.
        log.warning("gone: /x/%s?%%74oken=secret123 in ServerErrorMiddleware",
                    SIGNED.replace("_", "%5F").replace(".", "%252E").replace("A", "%2541"))
    finally:
        for handler in [h for h in logging.getLogger().handlers
                        if type(h).__name__ == "_Stderr"]:
            logging.getLogger().removeHandler(handler)
    failed, warned, cut = json_lines(capsys.readouterr().err)
    assert failed["level"] == "ERROR" and failed["logger"] == "digest.test"
    assert failed["message"] == "failed on /unsubscribe?token=[token]"
    assert failed["exc"].startswith("Traceback (most recent call last):")
    assert "ValueError: bad value\nover two lines" in failed["exc"]
    assert warned["message"] == "plain warning" and "exc" not in warned
    assert cut["message"] == "gone: /x/[token]?%74oken=[token] in ServerErrorMiddleware"


def test_a_wrong_logging_format_is_refused_with_the_setting(tmp_path: Path) -> None:
    env = environment(tmp_path, DIGEST_LOGGING_FORMAT="yaml")
    r = subprocess.run([sys.executable, "-m", "digest", "status"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "[logging] format is 'yaml'" in r.stderr and "DIGEST_LOGGING_FORMAT" in r.stderr


def test_digest_worker_logs_json_lines(tmp_path: Path) -> None:
    env = environment(tmp_path, DIGEST_LOGGING_FORMAT="json")
    subprocess.run([sys.executable, "-m", "digest", "init"], cwd=tmp_path, env=env,
                   check=True, capture_output=True, timeout=60)
    r = subprocess.run([sys.executable, "-m", "digest", "worker", "--once"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = json_lines(r.stderr)
    assert [line["message"] for line in lines][-1] == "sender worker stopped"
    assert {line["logger"] for line in lines} == {"digest.worker"}


@pytest.mark.slow  # a real `digest serve`
def test_serve_logs_json_lines_access_log_included_and_serves_metrics(
    start_serve: Callable[..., Served],  # noqa: F811
) -> None:
    served = start_serve(DIGEST_LOGGING_FORMAT="json")
    with urllib.request.urlopen(served.url + "/metrics", timeout=10) as r:  # from 127.0.0.1
        body = r.read().decode()
    assert "digest_senders 1.0" in body  # its own sender thread, beating
    with contextlib.suppress(OSError):
        urllib.request.urlopen(served.url + "/preferences/abcdef123456", timeout=10)
    assert served.stop() == 0
    lines = json_lines(served.output())
    access = [line["message"] for line in lines if line["logger"] == "uvicorn.access"]
    assert any('"GET /metrics HTTP/1.1" 200' in m for m in access), access
    assert any("/preferences/[token]" in m for m in access), access
    assert "abcdef123456" not in served.output()
    assert lines[-1]["message"] == "digest serve stopped"
