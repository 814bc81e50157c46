"""On PostgreSQL, a message's final step goes out only once the commit that marks it
`sending` has been answered: a COMMIT lost with the connection must not leave a row
`claimed` whose message went, which a rerun would send a second time."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.engine import make_url

from digest.app import App
from digest.deliver import ledger
from digest.deliver.outcomes import LedgerEvents
from digest.errors import DatabaseUnavailable
from digest.models import Delivery, DeliveryStatus
from tests.conftest import POSTGRES_URL, Clock
from tests.deliver.conftest import make_messages
from tests.deliver.test_worker import _prepare, start

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="set DIGEST_TEST_POSTGRES_URL")


PROXY = r"""
import asyncio, pathlib, struct, sys

host, port, flags = sys.argv[1], int(sys.argv[2]), pathlib.Path(sys.argv[3])
writers = set()

async def client(creader, cwriter):
    sreader, swriter = await asyncio.open_connection(host, port)
    writers.update((cwriter, swriter))

    async def pump():
        while data := await sreader.read(65536):
            cwriter.write(data)
        cwriter.close()

    pumping = asyncio.ensure_future(pump())
    handover_seen = False
    try:
        (n,) = struct.unpack("!I", head := await creader.readexactly(4))
        swriter.write(head + await creader.readexactly(n - 4))  # the start-up message
        while True:
            kind = await creader.readexactly(1)
            (n,) = struct.unpack("!I", head := await creader.readexactly(4))
            body = await creader.readexactly(n - 4)
            armed = (flags / "armed").exists() and not (flags / "swallowed").exists()
            if armed and kind == b"Q":
                handover_seen = handover_seen or b"RETURNING" in body
                if handover_seen and b"COMMIT" in body:
                    (flags / "swallowed").touch()
                    for writer in writers:
                        writer.transport.abort()
                    return
            swriter.write(kind + head + body)
    except (asyncio.IncompleteReadError, ConnectionError):
        swriter.close()
    finally:
        pumping.cancel()

async def main():
    server = await asyncio.start_server(client, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
"""


class CuttingProxy:
    """A TCP proxy in front of PostgreSQL, in a process of its own (libpq holds the GIL
    while it waits for an answer), that once armed swallows the first simple query
    holding a COMMIT that comes with or after a handover (an UPDATE … RETURNING), and
    cuts every connection: the network failing at the worst moment."""

    def __init__(self, host: str, port: int, flags: Path) -> None:
        self.flags = flags
        self.proc = subprocess.Popen([sys.executable, "-c", PROXY, host, str(port),
                                      str(flags)], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def arm(self) -> None:
        (self.flags / "armed").touch()

    @property
    def swallowed(self) -> bool:
        return (self.flags / "swallowed").exists()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[CuttingProxy]:
    url = make_url(POSTGRES_URL)
    (flags := tmp_path / "proxy").mkdir()
    cutting = CuttingProxy(url.host or "127.0.0.1", url.port or 5432, flags)
    yield cutting
    cutting.stop()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_handover_whose_commit_is_lost_lets_no_message_go(
    app: App, tmp_path: Path, clock: Clock, proxy: CuttingProxy
) -> None:
    edition_id = _prepare(app, tmp_path, 3)
    start(app, edition_id)
    with app.sessions() as s:
        claimed = ledger.claim(s, edition_id, "me:1:a", 3, clock(), 300)
    msgs = make_messages(3, first_id=claimed[0].delivery_id)
    through = make_url(app.settings["database.url"]).set(
        host="127.0.0.1", port=proxy.port, query={"sslmode": "disable",
                                                  "gssencmode": "disable"})
    engine = create_engine(through)
    events = LedgerEvents(engine, "me:1:a", ledger.RetryPolicy(), clock)
    try:
        events.hand_over(msgs[:1])  # the way works
        proxy.arm()
        try:
            lost = events.hand_over(msgs[1:])
        except DatabaseUnavailable:
            handed = False  # the backend writes no final step: nothing went out
        else:
            handed = True  # the backend would now write the final "." of both
            assert not lost
        for _ in range(200):  # the proxy, another process, may be a moment behind
            if proxy.swallowed:
                break
            time.sleep(0.01)
        assert proxy.swallowed
        with app.sessions() as s:
            rows = dict(s.execute(select(Delivery.id, Delivery.status)
                                  .where(Delivery.id.in_([m.delivery_id for m in msgs]))).all())
        if handed:  # then the ledger must know: a rerun must not send them again
            assert all(rows[m.delivery_id] == DeliveryStatus.HANDING_OVER for m in msgs[1:]), rows
        events.close(patience=10)  # the proxy lets the next connection through
    finally:
        engine.dispose()
    with app.sessions() as s:
        rows = dict(s.execute(select(Delivery.id, Delivery.status)).all())
    # Nothing went out for the two: claimed again (then queued), never `sending`.
    assert [rows[m.delivery_id] for m in msgs] == [
        DeliveryStatus.UNCERTAIN, DeliveryStatus.CLAIMED, DeliveryStatus.CLAIMED]


LOCKER = r"""
import sys, time
import psycopg
with psycopg.connect(sys.argv[1]) as conn:
    conn.execute("SELECT id FROM deliveries WHERE id = ANY(%s) FOR UPDATE",
                 ([int(i) for i in sys.argv[2:]],))
    print("locked", flush=True)
    time.sleep(1.5)
    conn.rollback()
"""


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_rows_given_back_read_as_claims_once_taken_back_returns(
    app: App, tmp_path: Path, clock: Clock
) -> None:
    """A provider that took none of a call (429, 5xx) is waited for, often for seconds:
    once `taken_back` returns, before that wait, every other connection must read the
    rows as the worker's claims, not `sending`. (Written without waiting for the
    answer, a slow or busy server left them `sending` for the first moments of the
    wait, and a watcher, or a kill then, saw messages in flight that were not.) While
    the write waits, the process's other threads run."""
    edition_id = _prepare(app, tmp_path, 2)
    start(app, edition_id)
    with app.sessions() as s:
        claimed = ledger.claim(s, edition_id, "me:1:a", 2, clock(), 300)
    msgs = make_messages(2, first_id=claimed[0].delivery_id)
    ids = [m.delivery_id for m in msgs]
    events = LedgerEvents(app.engine, "me:1:a", ledger.RetryPolicy(), clock)
    seen: list[set[str]] = []

    def give_back() -> None:
        events.taken_back(msgs)
        with app.sessions() as s:  # another connection, as soon as it returns
            seen.append(set(s.scalars(select(Delivery.status)
                                      .where(Delivery.id.in_(ids))).all()))

    url = make_url(app.settings["database.url"]).set(drivername="postgresql")
    try:
        assert events.hand_over(msgs) == {}
        # Another process holds the rows for 1.5 s: the write waits behind it, as it
        # does behind a busy server.
        locker = subprocess.Popen(
            [sys.executable, "-c", LOCKER, url.render_as_string(hide_password=False),
             *map(str, ids)], stdout=subprocess.PIPE, text=True)
        try:
            assert locker.stdout is not None and locker.stdout.readline() == "locked\n"
            worker = threading.Thread(target=give_back)
            worker.start()
            ticks = [time.monotonic()]  # this thread, running while the write waits
            while worker.is_alive() and ticks[-1] - ticks[0] < 10:
                time.sleep(0.02)
                ticks.append(time.monotonic())
        finally:
            locker.wait(10)
            locker.stdout.close()
        worker.join(10)
        assert not worker.is_alive()
    finally:
        events.close(patience=10)
    assert seen == [{DeliveryStatus.CLAIMED}]
    # It returned once the write was done, the lock let go, not at once...
    assert ticks[-1] - ticks[0] >= 0.8
    # ...and the wait let this thread run (libpq's own blocking wait held the GIL).
    assert max(b - a for a, b in itertools.pairwise(ticks)) < 0.75
