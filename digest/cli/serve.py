"""`digest serve`: the web app, the scheduler and a sender worker in one process."""

from __future__ import annotations

import logging
import threading

import click

from digest.app import App
from digest.cli.common import with_app
from digest.cli.worker import _stop_on_signals as stop_on_signals  # one SIGTERM rule
from digest.deliver.worker import run_worker
from digest.schedule import Scheduler

log = logging.getLogger("digest.serve")
RESTART_SECONDS = 30.0  # after the sender worker failed as a whole (database gone, say)


@click.command()
@click.option("--host", help="Address to listen on (default: [web] host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535),
              help="Port to listen on (default: [web] port, 8000).")
@with_app
def serve(app: App, host: str | None, port: int | None) -> None:
    """Run the web app, the scheduler and a sender worker until SIGTERM or Ctrl-C.

    Run one per database; add sending capacity with `digest worker` processes.
    """
    # Here, not at the top: FastAPI takes a third of a second to import, which every
    # other command would pay.
    import uvicorn

    from digest.web import create_app

    _configure_logging()
    web = create_app(app)  # a bad templates_dir or signing key stops us here
    server = uvicorn.Server(uvicorn.Config(
        web, host=host or app.settings["web.host"],
        port=app.settings["web.port"] if port is None else port,
        proxy_headers=True, forwarded_allow_ips=app.settings["web.forwarded_allow_ips"],
    ))
    scheduler = Scheduler(app)
    stop = threading.Event()
    sender = threading.Thread(target=_send_until, args=(app, stop), name="digest-sender")
    # uvicorn takes SIGTERM/SIGINT while it runs, finishes open requests, then hands the
    # signal on to this handler, which sets `stop` for the rest.
    with stop_on_signals(stop):
        try:
            scheduler.start()
            sender.start()
            if not stop.is_set():  # a signal may have come while starting
                server.run()
        finally:
            stop.set()  # also when uvicorn stopped on its own (port taken)
            scheduler.shutdown()  # lets a running job finish
            if sender.is_alive():
                sender.join()  # the worker finishes the messages in flight
    log.info("digest serve stopped")


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # APScheduler logs every run at INFO; its warnings (missed runs) still show.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def _send_until(app: App, stop: threading.Event) -> None:
    """The sender worker's thread. The worker retries failed rounds itself; anything
    else it raises is logged and the worker started again, as a process that answers
    on the web but sends no mail would look healthy."""
    while not stop.is_set():
        try:
            run_worker(app, stop)
        except Exception:
            log.exception("the sender worker failed; it starts again in %.0f s",
                          RESTART_SECONDS)
            stop.wait(RESTART_SECONDS)
