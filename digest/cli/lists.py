"""`digest lists …`."""

from __future__ import annotations

import click
from rich.table import Table

from digest.app import App
from digest.cli.common import out, with_app
from subscribers.lists import all_lists, create_list, list_counts


@click.group()
def lists() -> None:
    """Mailing lists: each has its own subscribers, sources and editions."""


@lists.command("create")
@click.argument("name")
@click.option("--title", default="", help="Shown in mail and pages (default: NAME).")
@click.option("--schedule", default="0 7 * * *", show_default=True,
              help="When editions go out, as cron: minute hour day month weekday.")
@click.option("--timezone", default="UTC", show_default=True,
              help="The schedule's timezone, e.g. Asia/Seoul.")
@click.option("--from", "from_addr", required=True,
              help='Sender, e.g. "Morning Brief <brief@news.example.org>".')
@click.option("--mode", type=click.Choice(["auto", "review"]), default="auto",
              show_default=True, help="review: editors approve each edition.")
@click.option("--language", default="en", show_default=True, help="Language of the mail.")
@with_app
def lists_create(app: App, name: str, title: str, schedule: str, timezone: str,
                 from_addr: str, mode: str, language: str) -> None:
    """Create a list."""
    with app.sessions() as s:
        mlist = create_list(s, name, title=title or name, from_addr=from_addr,
                            schedule=schedule, timezone=timezone, mode=mode,
                            language=language)
        s.commit()
        out.print(f"Created list {mlist.name} ({mlist.title}), sent {mlist.schedule} "
                  f"{mlist.timezone}, from {mlist.from_addr}")


@lists.command("ls")
@with_app
def lists_ls(app: App) -> None:
    """Lists with their subscriber counts."""
    with app.sessions() as s:
        counts = list_counts(s)
        table = Table("name", "title", "schedule", "mode", "confirmed", "pending",
                      "unsubscribed")
        for m in all_lists(s):
            c = counts.get(m.id, {})
            table.add_row(m.name, m.title, f"{m.schedule} {m.timezone}", m.mode,
                          *(str(c.get(k, 0)) for k in ("confirmed", "pending", "unsubscribed")))
        out.print(table)
