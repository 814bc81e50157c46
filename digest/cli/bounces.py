"""`digest bounces process`: bounce messages (DSNs) from a Maildir, an mbox or a pipe."""

from __future__ import annotations

import click
from rich.table import Table

from digest.app import App
from digest.cli.common import add_row, print_table, say, with_app
from digest.deliver.verp import ReturnPath
from digest.dsn import messages_at, process


@click.group()
def bounces() -> None:
    """Bounces returned to the VERP return path ([delivery] return_path)."""


@bounces.command("process")
@click.argument("path")
@click.option("--recipient", default="", metavar="ADDRESS",
              help="The address the MTA delivered the message to, when piped "
                   "(Postfix: ${original_recipient}); else read from its headers.")
@with_app
def process_command(app: App, path: str, recipient: str) -> None:
    """Record the bounces in PATH: a Maildir, an mbox file, a file of one message, or `-`
    for one on standard input (an MTA's pipe: see "VERP with Postfix" in
    docs/operations.md).

    Hard bounces suppress the address, soft ones count toward [delivery]
    soft_bounce_limit; a feedback report (ARF) is a complaint and suppresses too.
    Automatic replies (vacation, challenge-response) are counted as auto-reply only.
    Messages that match no delivery, or are no bounce digest can read, are copied
    under <data_dir>/bounces/ and counted. Safe to run again on the same messages:
    nothing is recorded twice.
    """
    keep = app.settings.path("data_dir") / "bounces"
    tally = process(app.sessions, messages_at(path),
                    return_path=ReturnPath.from_settings(app.settings),
                    soft_limit=app.settings["delivery.soft_bounce_limit"], now=app.clock(),
                    keep_dir=keep, recipient=recipient)
    table = Table("outcome", "messages")
    for outcome, n in tally.counts.items():
        add_row(table, outcome, str(n))
    print_table(table)
    if tally.kept:
        say(f"Kept aside for a look: {len(tally.kept)} in {keep}/unmatched and "
            f"{keep}/unparsable.")
