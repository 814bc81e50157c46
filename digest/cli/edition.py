"""`digest edition …`: build, preview, send, test; ls, show, discard."""

from __future__ import annotations

import threading
from pathlib import Path

import click
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest import curate
from digest.app import App
from digest.cli.common import (
    add_row,
    counted,
    err,
    out,
    print_table,
    progress_bar,
    say,
    stop_on_signals,
    with_app,
)
from digest.deliver.worker import SendReport
from digest.editions import last_sent, lock_edition, open_edition, why_nothing_new
from digest.errors import InvalidInput, NotFound
from digest.mailsize import Fit
from digest.models import Delivery, Edition, EditionKind, EditionStatus
from digest.publication import LAYOUTS, require_recipients
from subscribers.addresses import normalize
from subscribers.lists import get_list
from subscribers.models import MailingList


@click.group()
def edition() -> None:
    """Editions: the articles chosen for one mailing of a list."""


_option_list = click.option("--list", "list_name", required=True, help="The list's name.")


@edition.command("build")
@_option_list
@with_app
def edition_build(app: App, list_name: str) -> None:
    """Draft the next edition from the articles new since the last one: the first
    [edition] max_items in full, the next [edition] brief_max by headline ("also new")."""
    with app.sessions() as s:
        ed, created = app.build(s, list_name)
        if ed is None:
            why = why_nothing_new(s, get_list(s, list_name), app.clock(), app.edition_rules())
            say(f"No new articles for {list_name}, nothing to build: {why}.")
            return
        counts = curate.tally(s, ed, get_list(s, list_name), now=app.clock(),
                              rules=app.edition_rules())
        say(("Built" if created else "Already open:") +
            f" edition #{ed.number} of {list_name}, status {ed.status}: {counts}")
        _print_items(ed)


def _print_items(ed: Edition) -> None:
    table = Table("#", "headline", "source", "published", "told")
    for item in ed.items:
        add_row(table, str(item.position + 1), item.title[:70], item.source_title[:40],
                item.published_at.strftime("%Y-%m-%d %H:%M") if item.dated else "undated",
                "in brief" if item.brief else "in full")
    print_table(table)


@edition.command("preview")
@_option_list
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False),
              help="HTML file to write.")
@click.option("--layout", type=click.Choice(LAYOUTS),
              help="Show the edition in this layout instead of the list's own "
                   "(`digest lists set --layout` changes the list's).")
@with_app
def edition_preview(app: App, list_name: str, output: str, layout: str | None) -> None:
    """Write the open edition as a subscriber will see it (HTML) to a file, and say how
    large its HTML part is. A draft over [edition] html_max_kb is made to fit first: its
    longest blurbs and notes cut short, then its last stories moved to "also new"."""
    with app.sessions() as s:
        mlist = get_list(s, list_name)
        ed = open_edition(s, mlist)
        if ed is None:
            ed, _created = app.build(s, list_name)
        if ed is None:
            raise click.ClickException(f"list {list_name} has no open edition and no new "
                                       "articles; run `digest fetch` first")
        fit = app.fit(ed, mlist)
        if fit.changed and not fit.fits:
            # The editors' words are not cut for nothing: the draft stays as it was.
            s.rollback()
            ed, mlist = s.get_one(Edition, ed.id), get_list(s, list_name)
            fit = Fit(fit.before, fit.before, fit.limit, best=fit.after)
        elif fit.changed:
            s.commit()
        with s.no_autoflush:  # --layout is for this preview only: never saved
            if layout:
                mlist.layout = layout
            shown = app.preview(ed, mlist)
            s.expire(mlist)  # the override dropped, unsaved
    path = Path(output)
    try:  # into a folder that is there: a typo must not make folders anywhere
        path.write_text(shown.html, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(
            f"cannot write the preview to {path}: {exc.strerror or exc}; name a file in a "
            "folder you can write to, e.g. -o preview.html") from exc
    out.print(f"Preview of edition #{ed.number} written to {path}")
    out.print(fit.message(), markup=False)
    if not fit.fits:
        err.print(f"Warning: edition #{ed.number} is over the limit and will not be sent as "
                  "it stands; shorten its blurbs and notes or move stories to \"also new\" "
                  f"on the desk (/desk/{list_name}).", markup=False, soft_wrap=True)


@edition.command("send")
@_option_list
@with_app
def edition_send(app: App, list_name: str) -> None:
    """Build if needed, then deliver; run it again after any interruption to go on.

    Refused, with the draft kept, while the list has no confirmed subscribers. Ctrl-C or
    SIGTERM finishes the messages in flight, gives the rest back to the queue and exits
    1; a second one stops at once."""
    app.check_sender()  # a bad setting is said first, before the list is even read
    with app.sessions() as s:
        mlist = get_list(s, list_name)
        ed = open_edition(s, mlist)
        if ed is None or ed.status != EditionStatus.SENDING:  # one sending goes on
            require_recipients(s, mlist)
    stop = threading.Event()
    with progress_bar("Sending", None) as advance, stop_on_signals(stop):
        holder: dict[str, int] = {}

        def started(ed: Edition, pending: int) -> None:
            holder["number"] = ed.number
            with app.sessions() as s:
                mlist = get_list(s, list_name)
                counts = curate.tally(s, s.get_one(Edition, ed.id), mlist, now=app.clock(),
                                      rules=app.edition_rules())
            err.print(f"Edition #{ed.number}: {counts}", markup=False, soft_wrap=True)
            err.print(f"Edition #{ed.number}: {_deliveries(pending)} to go "
                      f"via {app.backend.name}")

        report = app.send(list_name, progress=advance, on_start=started, stop=stop)
    if report is None:
        with app.sessions() as s:
            mlist = get_list(s, list_name)
            why = why_nothing_new(s, mlist, app.clock(), app.edition_rules())
            previous = last_sent(s, mlist)
            said = (f"Edition #{previous.number} of {list_name} is already sent, and there "
                    "is nothing new to send" if previous is not None else
                    f"No new articles for {list_name}, nothing to send")
        say(f"{said}: {why}.")
        return
    print_send_summary(report, holder.get("number", 0), stopped=stop.is_set())
    if stop.is_set() and not report.finished:
        raise click.ClickException(
            f"stopped by a signal before the end: the messages in flight were finished, the "
            f"rest of edition #{holder.get('number', 0)} waits in the queue; run `digest "
            f"edition send --list {list_name}` again (or a running `digest worker`) to send "
            "it, nobody twice")


def print_send_summary(report: SendReport, number: int, *, stopped: bool = False) -> None:
    """Counts per delivery status, and what happens next (`stopped`: by a signal, which
    the caller says)."""
    table = Table("status", "deliveries")
    for status, count in sorted(report.counts.items()):
        add_row(table, status, str(count))
    print_table(table)
    if report.released.get("uncertain"):
        n = report.released["uncertain"]
        out.print(f"{_deliveries(n)} {'was' if n == 1 else 'were'} being handed over when an "
                  f"earlier run stopped; {'it is' if n == 1 else 'they are'} marked uncertain "
                  "and not sent again.")
    if report.finished:
        out.print(f"Edition #{number} is sent.")
    elif report.next_retry and not stopped:
        out.print(f"Some deliveries wait (deferred by the server, or due at a subscriber's "
                  f"local hour) until {report.next_retry:%Y-%m-%d %H:%M} UTC: a running "
                  "`digest worker` or `digest serve` sends them, or run `digest edition send` "
                  "again then.")


def _deliveries(n: int) -> str:
    return f"{n} delivery" if n == 1 else f"{n} deliveries"


@edition.command("ls")
@click.option("--list", "list_name", help="Only this list's editions (default: every list).")
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True,
              help="At most this many, newest first; 0 for all.")
@with_app
def edition_ls(app: App, list_name: str | None, limit: int) -> None:
    """Editions, newest first: number, list, status, subject, articles, and when each
    was sent or is scheduled.

    Example: digest edition ls --list morning
    """
    with app.sessions() as s:
        query = (select(Edition, MailingList.name)
                 .join(MailingList, MailingList.id == Edition.list_id)
                 .where(Edition.kind == EditionKind.DIGEST)
                 .order_by(Edition.created_at.desc(), Edition.number.desc()))
        if list_name is not None:
            query = query.where(Edition.list_id == get_list(s, list_name).id)
        if limit:
            query = query.limit(limit)
        found = s.execute(query).all()
        table = Table("#", "list", "status", "subject", "articles", "sent or scheduled")
        for ed, name in found:
            add_row(table, str(ed.number), name, ed.status, ed.subject[:60],
                    str(len(ed.items)), _when_sent(ed))
    if not found:
        where = f" of {list_name}" if list_name else ""
        say(f"No editions{where} yet; `digest edition build --list NAME` drafts one.")
        return
    print_table(table)
    if limit and len(found) == limit:
        say(f"Showing the newest {limit}; --limit 0 shows all.")


def _when_sent(ed: Edition) -> str:
    if ed.sent_at is not None:
        return f"sent {ed.sent_at:%Y-%m-%d %H:%M} UTC"
    if ed.send_started_at is not None:
        return f"sending since {ed.send_started_at:%Y-%m-%d %H:%M} UTC"
    if ed.scheduled_for is not None:
        return f"scheduled {ed.scheduled_for:%Y-%m-%d %H:%M} UTC"
    return "by hand" if ed.status in (EditionStatus.DRAFT, EditionStatus.APPROVED) else "-"


@edition.command("show")
@click.argument("number", type=int)
@_option_list
@with_app
def edition_show(app: App, number: int, list_name: str) -> None:
    """One edition: its status, subject, counts, deliveries and its items in order.

    Example: digest edition show 3 --list morning
    """
    with app.sessions() as s:
        mlist = get_list(s, list_name)
        ed = _numbered(s, mlist, number)
        counts = curate.tally(s, ed, mlist, now=app.clock(), rules=app.edition_rules())
        deliveries = dict(s.execute(
            select(Delivery.status, func.count()).where(Delivery.edition_id == ed.id)
            .group_by(Delivery.status)).all())
        say(f"Edition #{ed.number} of {mlist.name}: {ed.status}, {_when_sent(ed)}")
        say(f"Subject: {ed.subject or '(none yet)'}")
        say(f"Articles: {counts}")
        if deliveries:
            say("Deliveries: " + ", ".join(f"{k} {v}" for k, v in sorted(deliveries.items())))
        _print_items(ed)


def _numbered(s: Session, mlist: MailingList, number: int) -> Edition:
    try:
        return curate.get_edition(s, mlist, number)
    except NotFound:
        raise NotFound(f"list {mlist.name!r} has no edition #{number}; `digest edition ls "
                       f"--list {mlist.name}` lists its editions") from None


@edition.command("discard")
@_option_list
@with_app
def edition_discard(app: App, list_name: str) -> None:
    """Drop the list's open draft (draft or approved): it is marked cancelled, never
    sent, and its articles are proposed again for the next edition. An edition being
    sent or sent is never discarded.

    Example: digest edition discard --list morning
    """
    with app.sessions() as s:
        mlist = get_list(s, list_name)
        ed = open_edition(s, mlist)
        if ed is None:
            previous = last_sent(s, mlist)
            gone = (f"; edition #{previous.number} is {previous.status}, and a sent edition "
                    "cannot be discarded" if previous is not None else "")
            raise NotFound(f"list {mlist.name!r} has no open draft to discard{gone}; "
                           f"`digest edition ls --list {mlist.name}` lists its editions")
        ed = lock_edition(s, ed.id)  # a send starting meanwhile wins: re-read its status
        if ed.status not in (EditionStatus.DRAFT, EditionStatus.APPROVED):
            raise InvalidInput(f"edition #{ed.number} of {mlist.name!r} is {ed.status}, so it "
                               "cannot be discarded; `digest edition send --list "
                               f"{mlist.name}` finishes a send that stopped")
        number, items = ed.number, len(ed.items)
        ed.status = EditionStatus.CANCELLED
        s.commit()
    again = "is proposed again" if items == 1 else "are proposed again"
    say(f"Discarded edition #{number} of {list_name} (now cancelled, never sent): its "
        f"{counted(items, 'article')} {again}, and `digest edition build --list "
        f"{list_name}` drafts the next edition.")


@edition.command("test")
@_option_list
@click.option("--to", "to", required=True, metavar="ADDRESS",
              help="The one address the test copy goes to.")
@with_app
def edition_test(app: App, list_name: str, to: str) -> None:
    """Mail one test copy of the list's open edition to one address, as the desk's
    "Send a test" does: built as every subscriber's copy, "[Test] " before the subject,
    no delivery recorded. Draft one first with `digest edition build`.

    Example: digest edition test --list morning --to me@example.org
    """
    address = normalize(to)
    app.check_mail()
    with app.sessions() as s:
        mlist = get_list(s, list_name)
        ed = open_edition(s, mlist)
        if ed is None:
            raise NotFound(f"list {mlist.name!r} has no open edition to test; `digest "
                           f"edition build --list {mlist.name}` drafts one")
        message_id = app.send_test(ed, mlist, address)
        number = ed.number
    say(f"Sent a test of edition #{number} of {list_name} to {address} via "
        f"{app.backend.name} (Message-ID {message_id}).")
