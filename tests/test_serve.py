"""`digest serve` as a user runs it: a subprocess on a free port, SQLite in a temp
folder, the outbox backend, feeds from a loopback HTTP server."""

from __future__ import annotations

import datetime as dt
import email.utils
import mailbox
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import select

from digest.app import App
from digest.config import load
from digest.gather.sources import add_source
from digest.models import Edition, EditionItem, EditionKind, EditionStatus
from digest.publication import create_list
from subscribers.members import add_member
from tests.loopback import feed_server

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    """A running `digest serve` and where its things are."""

    proc: subprocess.Popen[bytes]
    url: str
    env: dict[str, str]
    log: Path
    outbox: Path

    def healthz(self) -> int:
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=5) as r:
                return int(r.status)
        except OSError:
            return 0

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env.update({
        "DIGEST_DATABASE_URL": f"sqlite:///{tmp_path}/digest.db",
        "DIGEST_DATA_DIR": str(tmp_path / "var"),
        "DIGEST_DELIVERY_BACKEND": "outbox",
        "DIGEST_DELIVERY_OUTBOX_DIR": str(tmp_path / "outbox"),
        "DIGEST_PUBLIC_URL": "https://news.example.org",
        "DIGEST_SECRET_KEY": "s" * 40,
        **extra,
    })
    return env


@pytest.fixture
def start_serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(*, files: int | None = None, **extra: str) -> Served:
        """`digest serve` with DIGEST_* settings `extra`; `files` lowers its limit of
        open files (RLIMIT_NOFILE, soft and hard), so a test can reach it."""
        env = environment(tmp_path, **extra)
        setup = App(load(None, env=env))
        setup.init_db()
        setup.close()
        port = free_port()
        log = tmp_path / "serve.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                [sys.executable, "-m", "digest", "serve", "--port", str(port)],
                cwd=tmp_path, env=env, stdout=sink, stderr=subprocess.STDOUT,
                preexec_fn=None if files is None else partial(
                    resource.setrlimit, resource.RLIMIT_NOFILE, (files, files)))
        served = Served(proc, f"http://127.0.0.1:{port}", env, log, tmp_path / "outbox")
        started.append(served)
        deadline = time.monotonic() + 30
        while served.healthz() != 200:
            assert proc.poll() is None, served.output()
            assert time.monotonic() < deadline, served.output()
            time.sleep(0.2)
        return served

    yield start
    for served in started:
        if served.proc.poll() is None:
            served.proc.kill()
            served.proc.wait()


@pytest.mark.slow  # a real `digest serve` starting up and stopping
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_answers_and_stops_cleanly_on_a_signal(
    start_serve: Callable[..., Served], sig: int
) -> None:
    served = start_serve()
    assert served.healthz() == 200
    began = time.monotonic()
    assert served.stop(sig) == 0, served.output()
    assert time.monotonic() - began < 15
    log = served.output()
    assert "digest serve stopped" in log and "Traceback" not in log


def test_serve_without_a_database_says_to_run_init(tmp_path: Path) -> None:
    env = environment(tmp_path)
    r = subprocess.run([sys.executable, "-m", "digest", "serve", "--port", str(free_port())],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "Error:" in r.stderr and "digest init" in r.stderr


# -- acceptance: one edition a minute ------------------------------------------------------


@pytest.fixture
def minutely_feed() -> Iterator[str]:
    """An RSS feed that gains an article at half past every minute (real time)."""
    origin = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)

    def items() -> bytes:
        now = dt.datetime.now(dt.UTC)
        out = []
        k = -1
        while (published := origin + dt.timedelta(minutes=k, seconds=30)) <= now:
            out.append(f"<item><title>Article {k}</title><guid>a{k}</guid>"
                       f"<link>https://example.org/a{k}</link>"
                       f"<pubDate>{email.utils.format_datetime(published, usegmt=True)}"
                       "</pubDate></item>")
            k += 1
        return ("<?xml version='1.0'?><rss version='2.0'><channel><title>Minutes</title>"
                + "".join(out) + "</channel></rss>").encode()

    with feed_server(lambda _path: items()) as base:
        yield base + "/feed.xml"


@pytest.mark.slow
def test_serve_sends_one_edition_a_minute_with_new_articles(
    start_serve: Callable[..., Served], minutely_feed: str, tmp_path: Path
) -> None:
    env = environment(tmp_path)
    app = App(load(None, env=env))
    app.init_db()
    with app.sessions() as s:
        mlist = create_list(s, "minutely", from_addr="Minutes <m@news.example.org>",
                            schedule="* * * * *")
        add_source(s, minutely_feed, mlist)
        for who in ("ada@example.org", "bo@example.org"):
            add_member(s, mlist, who, confirmed=True, now=app.clock())
        s.commit()

    served = start_serve(DIGEST_SCHEDULE_FETCH_MINUTES="0.1")  # fetch every 6 s
    began = dt.datetime.now(dt.UTC)
    second_slot = began.replace(second=0, microsecond=0) + dt.timedelta(minutes=2)
    health = []
    while dt.datetime.now(dt.UTC) < second_slot + dt.timedelta(seconds=12):
        health.append(served.healthz())
        assert served.proc.poll() is None, served.output()
        time.sleep(2)
    assert served.stop() == 0, served.output()
    assert set(health) == {200}, served.output()

    with app.sessions() as s:
        editions = s.scalars(select(Edition).where(Edition.kind == EditionKind.DIGEST)
                             .order_by(Edition.number)).all()
        items = {e.id: s.scalars(select(EditionItem.link).where(
            EditionItem.edition_id == e.id)).all() for e in editions}
    app.close()
    slots = [e.scheduled_for for e in editions]
    log = served.output()
    assert len(editions) >= 2, log
    assert all(t is not None and t.second == 0 and t.microsecond == 0 for t in slots), slots
    # One a minute: consecutive minutes, none twice, none left out.
    assert slots == [slots[0] + dt.timedelta(minutes=i) for i in range(len(slots))], slots
    assert all(e.status == EditionStatus.SENT for e in editions), [e.status for e in editions]
    links = [link for e in editions for link in items[e.id]]
    assert all(items[e.id] for e in editions) and len(links) == len(set(links)), items
    assert len(mailbox.Maildir(served.outbox, create=False)) == 2 * len(editions)
    assert "Traceback" not in log
