"""Acceptance: PostgreSQL restarts while three senders (two `digest worker` processes and
`digest edition send`) share one edition to 5,000 subscribers. No sender dies, everyone
gets exactly one copy, and the edition is finished within a minute of the restart.

The test runs a PostgreSQL server of its own (initdb in a temporary folder, on a free
loopback port), since restarting the suite's would break the tests running beside it; it
needs PostgreSQL's programs (Debian's postgresql package, which `.ci/run` installs) and is
skipped without them."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from digest.app import App
from digest.db import utcnow
from digest.models import Delivery, DeliveryStatus, EditionStatus
from tests.deliver.conftest import SmtpSink
from tests.deliver.test_send import _addresses, _prepare
from tests.deliver.test_worker import WORKER, start, statuses, worker_env
from tests.deliver.test_workers_pg import _edition_status, _tail


def _programs() -> Path | None:
    """The folder of PostgreSQL's initdb and pg_ctl: Debian's newest, else on PATH."""
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                    key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    if debian:
        return debian[-1].parent
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("pg_ctl") else None


PROGRAMS = _programs()

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(PROGRAMS is None, reason="needs PostgreSQL's initdb and pg_ctl"),
]

TOTAL = 5000


class Postgres:
    """A PostgreSQL server in a temporary folder; as root it runs as the postgres user,
    since PostgreSQL refuses to run as root."""

    def __init__(self, folder: Path) -> None:
        assert PROGRAMS is not None
        self.data = folder / "data"
        self.port = _free_port()
        self.user: list[str] = []
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and there is no postgres user to run PostgreSQL")
            os.chown(folder, owner.pw_uid, owner.pw_gid)
            self.user = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(folder / "log"), "-w", "-o",
                  f"-p {self.port} -k {folder} -c listen_addresses=127.0.0.1", "start")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def restart(self) -> None:
        """`pg_ctl restart -m fast`: every connection is cut, the server back at once."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "restart")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def _run(self, program: str, *args: str) -> None:
        assert PROGRAMS is not None
        subprocess.run([*self.user, str(PROGRAMS / program), *args], check=True,
                       stdout=subprocess.DEVNULL, timeout=120)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    # Not under pytest's tmp_path, whose 0700 parents the postgres user cannot enter.
    folder = Path(tempfile.mkdtemp(prefix="digest-test-pg."))
    try:
        server = Postgres(folder)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def database_url(postgres: Postgres) -> str:
    """The `app` fixture's database: this test's own server."""
    return postgres.url


def test_a_database_restart_mid_send_loses_no_sender_and_sends_everyone_once(
    app: App, postgres: Postgres, smtp_server: Callable[..., SmtpSink], tmp_path: Path
) -> None:
    sink = smtp_server()
    edition_id = _prepare(app, tmp_path, TOTAL)
    start(app, edition_id, utcnow())  # the senders run on the real clock
    env = worker_env(app, sink, DIGEST_DELIVERY_BATCH_SIZE="100")
    logs = [tmp_path / f"sender{n}.log" for n in range(3)]
    commands = [[*WORKER, "--poll", "0.2"], [*WORKER, "--poll", "0.2"],
                [*WORKER[:-1], "edition", "send", "--list", "daily"]]
    senders = []
    for log, command in zip(logs, commands, strict=True):
        with log.open("w") as out:  # the child keeps its own copy
            senders.append(subprocess.Popen(command, env=env, cwd=tmp_path, stdout=out,
                                            stderr=subprocess.STDOUT))
    workers, cli = senders[:2], senders[2]
    try:
        received = sink.handler.messages  # read its length only: a copy costs the sink
        deadline = time.monotonic() + 120
        while len(received) < 1500 and time.monotonic() < deadline:
            assert all(p.poll() is None for p in senders), _tail(logs)
            time.sleep(0.01)
        assert len(received) < TOTAL * 0.8, "the edition was nearly sent before the restart"
        at_restart = len(received)
        postgres.restart()
        back = time.monotonic()

        while time.monotonic() < back + 60 and (
                _edition_status(app, edition_id) != EditionStatus.SENT or cli.poll() is None):
            assert all(w.poll() is None for w in workers), _tail(logs)
            time.sleep(0.5)
        finished = time.monotonic() - back
        print(f"{at_restart} received when the server restarted; the edition was sent "
              f"{finished:.1f} s after")  # the figure, shown with pytest -s
        assert _edition_status(app, edition_id) == EditionStatus.SENT, (
            [p.pid for p in senders], _unfinished(app, edition_id), _tail(logs))
        assert finished <= 60
        assert cli.wait(10) == 0, _tail(logs)
        assert all(w.poll() is None for w in workers), _tail(logs)
        for w in workers:
            w.send_signal(signal.SIGTERM)
        assert [w.wait(20) for w in workers] == [0, 0], _tail(logs)
    finally:
        for p in senders:
            if p.poll() is None:
                p.kill()
                p.wait()

    got = Counter(r for m in sink.messages for r in m.rcpt_tos)
    assert sorted(got) == _addresses(TOTAL)
    assert set(got.values()) == {1}, [a for a, n in got.items() if n > 1][:10]
    counts = statuses(app, edition_id)
    assert counts[DeliveryStatus.DELIVERED] + counts[DeliveryStatus.UNCERTAIN] == TOTAL, counts
    assert "Traceback" not in "".join(log.read_text() for log in logs), _tail(logs)


def _unfinished(app: App, edition_id: int) -> list[tuple[str, str, str]]:
    """The rows not settled yet: status, who holds them, their last error."""
    with app.sessions() as s:
        return [tuple(row) for row in s.execute(
            select(Delivery.status, Delivery.claimed_by, Delivery.last_error)
            .where(Delivery.edition_id == edition_id,
                   Delivery.status.not_in((DeliveryStatus.DELIVERED,
                                           DeliveryStatus.UNCERTAIN))))]
