"""The `digest` command: parse, call the App, print. No logic lives here.

Commands are grouped by noun in the modules beside this one; `main` gathers them.
"""

from __future__ import annotations

from pathlib import Path

import click

from digest import __version__
from digest.app import App
from digest.cli.backup import backup
from digest.cli.common import DigestGroup, out, say, with_new_app
from digest.cli.edition import edition
from digest.cli.inbound import inbound
from digest.cli.lists import lists
from digest.cli.review import approve
from digest.cli.serve import serve
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
def main() -> None:
    """digest: gather articles from feeds, curate an edition, mail it to subscribers.

    Try `digest demo` first. Then: `digest init`, `digest lists create`,
    `digest sources add`, `digest subscribers add`, `digest fetch`,
    `digest edition send`.
    """


@main.command()
@with_new_app
def init(app: App) -> None:
    """Create or upgrade the database."""
    require_writable(app.settings)
    app.init_db()
    say(f"Database ready: {shown_url(app.settings['database.url'])}")


@main.command()
@click.option("--dir", "demo_dir", default="var/demo", show_default=True,
              type=click.Path(file_okay=False), help="Where the demo keeps its data.")
def demo(demo_dir: str) -> None:
    """Run the whole flow on bundled sample feeds, into a local outbox.

    Starts afresh in --dir each time and leaves your own database alone.
    """
    from digest.demo.run import run_demo

    run_demo(Path(demo_dir), out)


for command in (lists, sources, fetch, subscribers, edition, suppress_group, serve, status,
                worker, inbound, users, backup):
    main.add_command(command)
edition.add_command(approve)
