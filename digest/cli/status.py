"""`digest status`: the schedule, sources' health, the last editions and their mail."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import click
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.app import App
from digest.cli.common import add_row, out, print_table, when, with_app
from digest.cron import list_trigger, next_runs
from digest.deliver.ledger import PENDING_STATUSES, status_counts
from digest.editions import recent_editions
from digest.errors import InvalidInput
from digest.gather.sources import source_label
from digest.models import DeliveryStatus, Source
from digest.publication import REVIEW
from subscribers.lists import all_lists
from subscribers.models import MailingList


@click.command()
@click.option("--editions", "per_list", type=click.IntRange(1, 100), default=3,
              show_default=True, help="Last editions shown per list.")
@with_app
def status(app: App, per_list: int) -> None:
    """The schedule (next runs), sources' health, the last editions with delivery counts.

    Next runs come from each list's cron in its timezone, whether or not `digest serve`
    is running.
    """
    now = app.clock()
    with app.sessions() as s:
        lists = all_lists(s)
        out.print("[bold]Schedule[/bold]")
        print_table(_schedule(lists, now))
        out.print("[bold]Sources[/bold]")
        print_table(_sources(s))
        out.print("[bold]Editions[/bold]")
        print_table(_editions(s, lists, per_list))


def _schedule(lists: list[MailingList], now: dt.datetime) -> Table:
    table = Table("list", "mode", "schedule", "next runs (list's time)", "last dealt with")
    for mlist in lists:
        mode = f"review ({mlist.review_policy})" if mlist.mode == REVIEW else mlist.mode
        try:
            runs = next_runs(list_trigger(mlist.schedule, mlist.timezone), now, 3)
            shown = ", ".join(_local(t, mlist.timezone) for t in runs) or "none"
        except InvalidInput as exc:
            shown = f"unusable: {exc}"
        add_row(table, mlist.name, mode, f"{mlist.schedule} {mlist.timezone}", shown,
                      when(mlist.last_scheduled_for))
    return table


def _sources(s: Session) -> Table:
    table = Table("id", "source", "last success", "failures", "next fetch", "last error")
    for src in s.scalars(select(Source).order_by(Source.id)):
        add_row(table, str(src.id), source_label(src), when(src.last_success_at),
                      str(src.consecutive_failures),
                      when(src.next_fetch_at) if src.next_fetch_at else "next round",
                      (src.last_error or "")[:80])
    return table


def _editions(s: Session, lists: list[MailingList], per_list: int) -> Table:
    table = Table("list", "#", "status", "scheduled", "sent", "failed", "pending", "other")
    for mlist in lists:
        for ed in recent_editions(s, mlist, per_list):
            counts = status_counts(s, ed.id)
            pending = sum(counts.get(k, 0) for k in PENDING_STATUSES)
            sent = counts.get(DeliveryStatus.DELIVERED, 0)
            failed = counts.get(DeliveryStatus.FAILED, 0)
            other = sum(counts.values()) - pending - sent - failed  # skipped, uncertain
            add_row(table, mlist.name, str(ed.number), ed.status, when(ed.scheduled_for),
                          str(sent), str(failed), str(pending), str(other))
    return table


def _local(t: dt.datetime, timezone: str) -> str:
    return t.astimezone(ZoneInfo(timezone or "UTC")).strftime("%a %Y-%m-%d %H:%M %Z")
