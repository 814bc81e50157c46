"""`digest worker`: a sender worker alone, for scale-out."""

from __future__ import annotations

import logging
import threading

import click

from digest.app import App
from digest.cli.common import stop_on_signals, with_app
from digest.db import shown_url
from digest.logs import configure_from
from digest.sender import run_worker

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
    configure_from(app.settings)  # [logging] format and level
    app.check_sender()
    stop = threading.Event()
    with stop_on_signals(stop):
        log.info("sender worker started (%s, backend %s)",
                 shown_url(app.settings["database.url"]), app.backend.name)
        run_worker(app, stop, poll_seconds=poll_seconds, once=once)
    log.info("sender worker stopped")
