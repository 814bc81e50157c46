"""`digest serve`: the web app, the scheduler and a sender worker in one process."""

from __future__ import annotations

import errno
import logging
import socket
import threading

import click

from digest.app import App
from digest.cli.common import stop_on_signals, with_app
from digest.schedule import Scheduler
from digest.sender import Sender

log = logging.getLogger("digest.serve")


@click.command()
@click.option("--host", help="Address to listen on (default: [web] host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535),
              help="Port to listen on (default: [web] port, 8000).")
@with_app
def serve(app: App, host: str | None, port: int | None) -> None:
    """Run the web app, the scheduler and a sender worker until SIGTERM or Ctrl-C.

    Run one per database; add sending capacity with `digest worker` processes.
    """
    run_site(app, host or app.settings["web.host"],
             app.settings["web.port"] if port is None else port)


def run_site(app: App, host: str, port: int, *, schedule: bool = True) -> None:
    """The web app, a sender and (with `schedule`) the scheduler, until SIGTERM or
    Ctrl-C: `digest serve`, and `digest demo --serve` without the scheduler."""
    # Here, not at the top: FastAPI takes a third of a second to import, which every
    # other command would pay.
    from digest.logs import configure_from
    from digest.web import create_app
    from digest.web.server import token_routes, web_server
    from digest.web.site import senders_check

    app.check_sender(imports=True)  # before anything starts: no half-started server
    require_port_free(host, port)  # nor a scheduler running behind a server that failed
    stop = threading.Event()
    sender = Sender(app, stop)
    # A bad templates_dir or signing key stops us here. /healthz fails while the
    # sender thread is down, and when no sender (this one, a `digest worker`) has had
    # a heartbeat within [delivery] heartbeat_timeout.
    web = create_app(app, checks=[sender.problem, senders_check(app)])
    # Every line through one handler that takes the tokens out of the app's token
    # routes, in [logging] format at [logging] level.
    configure_from(app.settings, token_routes=token_routes(web))
    server = web_server(web, app.settings, host=host, port=port)
    scheduler = Scheduler(app) if schedule else None
    if scheduler is not None:
        web.state.metrics.watch(scheduler.aps)  # /metrics counts the scheduler's runs
    # uvicorn takes SIGTERM/SIGINT while it runs, finishes open requests, then hands the
    # signal on to this handler, which sets `stop` for the rest.
    with stop_on_signals(stop):
        try:
            if scheduler is not None:
                scheduler.start()
            sender.start()
            if not stop.is_set():  # a signal may have come while starting
                server.run()
        finally:
            stop.set()  # also when uvicorn stopped on its own (port taken)
            if scheduler is not None:
                scheduler.shutdown()  # lets a running job finish
            sender.join()  # the worker finishes the messages in flight
    log.info("digest serve stopped")


def require_port_free(host: str, port: int) -> None:
    """ClickException naming the address and how to choose another, when nothing could
    listen on `host`:`port` (another program has it, a port below 1024, a host name that
    is not this machine's). Bound and let go at once: uvicorn binds it again right away.
    Port 0 (any free one) needs no check."""
    if port == 0:
        return
    fix = ("choose another port with --port (e.g. --port 8001), or set [web] port "
           "(DIGEST_WEB_PORT)")
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise click.ClickException(
            f"cannot listen on {host}: {exc.strerror}; give --host an address of this "
            "machine, or set [web] host (DIGEST_WEB_HOST)") from None
    probe = socket.socket(family, kind, proto)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        probe.bind(address)
    except OSError as exc:
        why = ("another program, or another digest serve, is listening there"
               if exc.errno == errno.EADDRINUSE else exc.strerror)
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {why}; nothing was started. Stop that "
            f"program, or {fix}") from None
    finally:
        probe.close()
