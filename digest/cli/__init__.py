"""The `digest` command: parse, call the App, print. No logic lives here.

Commands are grouped by noun in the modules beside this one; `main` gathers them.
"""

from __future__ import annotations

from pathlib import Path

import click

from digest import __version__
from digest.app import App
from digest.cli.backup import backup
from digest.cli.bounces import bounces
from digest.cli.common import DigestGroup, config_option, on_interrupt, out, say, with_new_app
from digest.cli.dns import check_dns
from digest.cli.edition import edition
from digest.cli.inbound import inbound
from digest.cli.lists import lists
from digest.cli.review import approve
from digest.cli.serve import run_site, serve
from digest.cli.sources import fetch, sources
from digest.cli.status import status
from digest.cli.subscribers import subscribers
from digest.cli.suppress import suppress_group
from digest.cli.users import users
from digest.cli.worker import worker
from digest.db import shown_url
from digest.state import require_writable


@click.group(cls=DigestGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="digest")
@config_option
def main(config_path: str | None) -> None:
    """digest: gather articles from feeds, curate an edition, mail it to subscribers.

    Try `digest demo` first. Then: `digest init`, `digest lists create`,
    `digest sources add`, `digest subscribers add`, `digest fetch`,
    `digest edition send`.
    """


@main.command()
@with_new_app
@on_interrupt("its tables are as they were before: they are made or upgraded all at once "
              "or not at all; run `digest init` again")
def init(app: App) -> None:
    """Create or upgrade the database."""
    require_writable(app.settings)
    app.init_db()
    say(f"Database ready: {shown_url(app.settings['database.url'])}")


@main.command()
@click.option("--dir", "demo_dir", default="var/demo", show_default=True,
              type=click.Path(file_okay=False), help="Where the demo keeps its data.")
@click.option("--serve", is_flag=True,
              help="Then serve the demo's site until Ctrl-C, so the links and photos of "
                   "its mail work (View in browser, Unsubscribe, Manage preferences).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True,
              help="The port of the demo's site, which its mail links to.")
def demo(demo_dir: str, serve: bool, port: int) -> None:
    """Run the whole flow on bundled sample feeds, into a local outbox.

    Starts afresh in --dir each time and leaves your own database alone. With --serve,
    serves the demo's own site at http://localhost:PORT afterwards (web app and a
    sender, no scheduler), which its mail's links and photos need.
    """
    from digest.demo.run import demo_settings, run_demo

    folder = Path(demo_dir)
    run_demo(folder, out, port)
    if not serve:
        say("Its links and photos need the demo's site: `digest demo --serve`.")
        return
    app = App(demo_settings(folder, port))
    try:
        say(f"Serving the demo at {app.settings['public_url']} until Ctrl-C: its mail's "
            "links and photos work while it runs.")
        run_site(app, app.settings["web.host"], port, schedule=False)
    finally:
        app.close()


for command in (lists, sources, fetch, subscribers, edition, suppress_group, serve, status,
                worker, inbound, users, backup, bounces, check_dns):
    main.add_command(command)
edition.add_command(approve)
