"""`digest worker`: a sender worker alone, for scale-out."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import click

from digest.app import App
from digest.cli.common import with_app
from digest.deliver.worker import run_worker

log = logging.getLogger("digest.worker")


@click.command("worker")
@click.option("--once", is_flag=True,
              help="Deliver what is due now, then exit (for cron or a one-off catch-up).")
@click.option("--poll", "poll_seconds", type=click.FloatRange(min=0.01), default=5.0,
              metavar="SECONDS",
              show_default=True, help="Seconds between looks for new work when idle.")
@with_app
def worker(app: App, once: bool, poll_seconds: float) -> None:
    """Send the due mail of every edition that is sending, until SIGTERM or Ctrl-C.

    On PostgreSQL, run as many workers as you like on as many machines: they share each
    edition (claims with SKIP LOCKED and leases). On SQLite, run one sender: SQLite lets
    one process write at a time, and `digest serve` already runs a worker of its own.

    SIGTERM or Ctrl-C finishes the messages in flight, returns the rest of the claimed
    batch to the queue and exits; a second one stops at once.
    """
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    with _stop_on_signals(stop):
        log.info("sender worker started (%s, backend %s)", app.engine.dialect.name,
                 app.backend.name)
        run_worker(app, stop, poll_seconds=poll_seconds, once=once)
    log.info("sender worker stopped")


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set `stop`; a second signal interrupts (KeyboardInterrupt)."""

    def handle(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        log.info("%s: finishing the messages in flight", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
