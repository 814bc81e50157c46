"""`digest status`: the schedule, sources' health, the last editions and their mail, and
the senders running; `--json` gives the same as one JSON document."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

import click
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest import heartbeat
from digest.app import App
from digest.cli.common import add_row, out, print_table, when, with_app
from digest.cron import list_trigger, next_runs
from digest.deliver.ledger import PENDING_STATUSES, status_counts
from digest.editions import recent_editions
from digest.errors import InvalidInput
from digest.feedback import feedback_counts
from digest.gather.sources import source_label
from digest.models import DeliveryStatus, Source
from digest.publication import REVIEW
from subscribers.lists import all_lists
from subscribers.models import MailingList


@click.command()
@click.option("--editions", "per_list", type=click.IntRange(1, 100), default=3,
              show_default=True, help="Last editions shown per list.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON document: lists, sources, editions and senders (workers).")
@with_app
def status(app: App, per_list: int, as_json: bool) -> None:
    """The schedule (next runs), sources' health, the last editions with delivery counts,
    and the senders running (host, pid, last heartbeat).

    Next runs come from each list's cron in its timezone, whether or not `digest serve`
    is running.
    """
    now = app.clock()
    with app.sessions() as s:
        lists = all_lists(s)
        if as_json:
            click.echo(json.dumps(_document(s, lists, per_list, now), indent=2))
            return
        out.print("[bold]Schedule[/bold]")
        print_table(_schedule(lists, now))
        out.print("[bold]Sources[/bold]")
        print_table(_sources(s))
        out.print("[bold]Editions[/bold]")
        print_table(_editions(s, lists, per_list))
        out.print("[bold]Senders[/bold]")
        print_table(_senders(s, now))


def _document(s: Session, lists: list[MailingList], per_list: int,
              now: dt.datetime) -> dict[str, Any]:
    """What the tables show, as JSON: times in ISO 8601 UTC (null: never)."""
    return {
        "now": _iso(now),
        "lists": [{"name": m.name, "mode": m.mode, "review_policy": m.review_policy,
                   "schedule": m.schedule, "timezone": m.timezone,
                   "next_runs": _runs(m, now), "last_scheduled_for": _iso(m.last_scheduled_for)}
                  for m in lists],
        "sources": [{"id": src.id, "source": source_label(src), "url": src.url,
                     "last_success": _iso(src.last_success_at),
                     "consecutive_failures": src.consecutive_failures,
                     "next_fetch": _iso(src.next_fetch_at), "last_error": src.last_error}
                    for src in s.scalars(select(Source).order_by(Source.id))],
        "editions": [{"list": m.name, "number": ed.number, "status": str(ed.status),
                      "scheduled_for": _iso(ed.scheduled_for), **_counts(s, ed.id)}
                     for m in lists for ed in recent_editions(s, m, per_list)],
        "workers": [{"host": w.host, "pid": w.pid, "backend": w.backend,
                     "started": _iso(w.started_at), "last_heartbeat": _iso(w.beat_at),
                     "age_seconds": round(w.age_seconds, 3), "counts": w.counts}
                    for w in heartbeat.senders(s, now)],
    }


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat() if value else None


def _runs(mlist: MailingList, now: dt.datetime) -> list[str] | str:
    """The next three runs (ISO 8601 UTC), or why the schedule is unusable."""
    try:
        return [t.astimezone(dt.UTC).isoformat()
                for t in next_runs(list_trigger(mlist.schedule, mlist.timezone), now, 3)]
    except InvalidInput as exc:
        return f"unusable: {exc}"


def _counts(s: Session, edition_id: int) -> dict[str, int]:
    """An edition's deliveries: sent, failed, pending and other (skipped, uncertain);
    and of those, the ones a bounce or complaint came back for (digest.feedback)."""
    counts = status_counts(s, edition_id)
    pending = sum(counts.get(k, 0) for k in PENDING_STATUSES)
    sent = counts.get(DeliveryStatus.DELIVERED, 0)
    failed = counts.get(DeliveryStatus.FAILED, 0)
    feedback = feedback_counts(s, edition_id)
    return {"sent": sent, "failed": failed, "pending": pending,
            "other": sum(counts.values()) - pending - sent - failed,
            "bounced": feedback.get("hard_bounce", 0),
            "soft_bounced": feedback.get("soft_bounce", 0),
            "complained": feedback.get("complaint", 0)}


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
    table = Table("list", "#", "status", "scheduled", "sent", "failed", "pending", "other",
                  "bounced", "soft", "complaints")
    for mlist in lists:
        for ed in recent_editions(s, mlist, per_list):
            c = _counts(s, ed.id)
            # An edition built or sent by hand had no time on the schedule: not "never".
            scheduled = when(ed.scheduled_for) if ed.scheduled_for else "by hand"
            add_row(table, mlist.name, str(ed.number), ed.status, scheduled,
                    str(c["sent"]), str(c["failed"]), str(c["pending"]), str(c["other"]),
                    str(c["bounced"]), str(c["soft_bounced"]), str(c["complained"]))
    return table


def _senders(s: Session, now: dt.datetime) -> Table:
    table = Table("host", "pid", "backend", "started", "last heartbeat", "age", "sent")
    for w in heartbeat.senders(s, now):
        add_row(table, w.host, str(w.pid), w.backend, when(w.started_at),
                w.beat_at.strftime("%Y-%m-%d %H:%M:%S UTC"), f"{w.age_seconds:.0f} s",
                str(w.counts["sent"]))
    return table


def _local(t: dt.datetime, timezone: str) -> str:
    return t.astimezone(ZoneInfo(timezone or "UTC")).strftime("%a %Y-%m-%d %H:%M %Z")
