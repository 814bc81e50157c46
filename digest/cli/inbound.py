"""`digest inbound`: process mail sent to the unsubscribe address."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from digest.app import App
from digest.cli.common import add_row, print_table, with_app
from digest.inbound import handle_unsubscribe_mail


@click.command()
@click.argument("files", nargs=-1,
                type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--maildir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Process every message in this Maildir's new/ and move it to cur/.")
@with_app
def inbound(app: App, files: tuple[str, ...], maildir: Path | None) -> None:
    """Unsubscribe by email: read mail sent to [delivery] unsubscribe_mailto.

    Give message files, `-` for one on standard input (a Postfix alias
    `unsubscribe: "|digest inbound -"`), or --maildir for a mailbox a server delivers to.
    """
    paths: list[Path | None] = [None if f == "-" else Path(f) for f in files]
    if maildir is not None:
        paths += sorted((maildir / "new").iterdir())
    if not paths:
        raise click.UsageError("give message files, `-`, or --maildir")
    table = Table("message", "outcome", "detail")
    for path in paths:
        raw = sys.stdin.buffer.read() if path is None else path.read_bytes()
        with app.sessions() as s:
            result = handle_unsubscribe_mail(s, app.tokens, raw, app.clock())
            s.commit()
        add_row(table, "stdin" if path is None else path.name, result.outcome, result.detail)
        if maildir is not None and path is not None:
            path.rename(maildir / "cur" / f"{path.name}:2,S")
    print_table(table)
