"""`digest subscribers …`: add, import, export, remove."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from digest.app import App
from digest.cli.common import out, progress_bar, with_app
from subscribers.csvio import export_csv, import_csv
from subscribers.lists import get_list
from subscribers.members import add_member, remove_member


@click.group()
def subscribers() -> None:
    """People on lists."""


@subscribers.command("add")
@click.argument("email")
@click.option("--list", "list_name", required=True, help="The list's name.")
@click.option("--name", default="", help="The subscriber's name.")
@click.option("--confirmed", is_flag=True,
              help="Skip double opt-in: you vouch that this person asked to subscribe.")
@with_app
def subscribers_add(app: App, email: str, list_name: str, name: str, confirmed: bool) -> None:
    """Add one subscriber to a list."""
    with app.sessions() as s:
        mlist = get_list(s, list_name)
        member, outcome = add_member(s, mlist, email, name=name, confirmed=confirmed,
                                     origin="cli", now=app.clock())
        s.commit()
        if member is None or outcome == "suppressed":
            out.print(f"{email} is suppressed (bounced, complained or left all mail); "
                      "not subscribed.")
        else:
            out.print(f"{outcome.capitalize()}: {member.subscriber.email} on {mlist.name} "
                      f"({member.status})")


@subscribers.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--list", "list_name", required=True, help="The list's name.")
@click.option("--confirmed", is_flag=True,
              help="Single opt-in: you vouch that everyone in the file asked to subscribe.")
@click.option("--rejects", type=click.Path(dir_okay=False, path_type=Path),
              help="Where refused rows go (default FILE.rejects.csv).")
@with_app
def subscribers_import(app: App, file: Path, list_name: str, confirmed: bool,
                       rejects: Path | None) -> None:
    """Import subscribers from a CSV file with an `email` column (and `name`, …)."""
    rejects = rejects or file.with_suffix(".rejects.csv")
    with app.sessions() as s, progress_bar("Importing", None) as advance:
        mlist = get_list(s, list_name)
        report = import_csv(s, mlist, file, confirmed=confirmed, now=app.clock(),
                            rejects_path=rejects, progress=advance)
    table = Table("added", "updated", "unchanged", "rejected", "suppressed")
    table.add_row(*(str(getattr(report, k)) for k in
                    ("added", "updated", "unchanged", "rejected", "suppressed")))
    out.print(table)
    if report.rejected and report.rejects_path:
        out.print(f"Refused rows, with line numbers and reasons: {report.rejects_path}")


@subscribers.command("export")
@click.option("--list", "list_name", required=True, help="The list's name.")
@click.option("-o", "output", type=click.Path(dir_okay=False, path_type=Path),
              help="CSV file to write (default: standard output).")
@with_app
def subscribers_export(app: App, list_name: str, output: Path | None) -> None:
    """Export a list's subscribers as CSV (email, name, status, consent times)."""
    with app.sessions() as s:
        mlist = get_list(s, list_name)
        if output is None:
            export_csv(s, mlist, sys.stdout)
            return
        with output.open("w", encoding="utf-8", newline="") as f:
            rows = export_csv(s, mlist, f)
    out.print(f"Wrote {rows} subscribers to {output}")


@subscribers.command("rm")
@click.argument("email")
@click.option("--list", "list_name", required=True, help="The list's name.")
@with_app
def subscribers_rm(app: App, email: str, list_name: str) -> None:
    """Unsubscribe someone from a list (the consent record is kept)."""
    with app.sessions() as s:
        mlist = get_list(s, list_name)
        member = remove_member(s, mlist, email, now=app.clock(), reason="admin")
        s.commit()
        out.print(f"Unsubscribed {member.subscriber.email} from {mlist.name}")
