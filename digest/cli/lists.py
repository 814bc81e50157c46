"""`digest lists …`: create, ls, show, set, rename, archive."""

from __future__ import annotations

from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from digest.app import App
from digest.cli.common import err, print_table, say, when, with_app
from digest.publication import (
    LAYOUTS,
    MODES,
    POLICIES,
    create_list,
    list_overview,
    postal_address_warning,
    update_list,
)
from subscribers.lists import (
    all_lists,
    archive_list,
    get_list,
    list_counts,
    rename_list,
    unarchive_list,
)
from subscribers.models import MailingList, MembershipStatus

# How `lists show` and `lists set` name each setting: as its option is called.
LABELS = {
    "title": "title", "description": "description", "from_addr": "from",
    "reply_to": "reply-to", "schedule": "schedule", "timezone": "timezone", "mode": "mode",
    "language": "language", "double_optin": "double opt-in", "local_time": "local time",
    "review_policy": "review policy", "editor_emails": "editors", "public": "public",
    "keep_tracking": "keep tracking", "postal_address": "postal address", "layout": "layout",
    "toc": "toc", "accent_color": "accent color", "logo_url": "logo url",
}


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
@click.option("--reply-to", default="", help="Where replies go (default: the sender).")
@click.option("--mode", type=click.Choice(MODES), default="auto",
              show_default=True, help="review: editors approve each edition.")
@click.option("--description", default="", help="What the list is about, for sign-up pages.")
@click.option("--language", default="en", show_default=True, help="Language of the mail.")
@click.option("--double-optin/--single-optin", default=True, show_default=True,
              help="Whether people who sign up must confirm by a link in mail.")
@click.option("--public/--private", default=True, show_default=True,
              help="Whether the sign-up form and the archive show the list.")
@click.option("--keep-tracking/--clean-links", default=False, show_default=True,
              help="Whether article links in mail keep their tracking parameters "
                   "(utm_*, fbclid, ...); by default they are dropped.")
@click.option("--postal-address", default="",
              help="The sender's postal address, shown in every mail's footer (the law and "
                   "bulk-sender rules ask for it); up to 6 lines of plain text.")
@click.option("--layout", type=click.Choice(LAYOUTS), default="hero", show_default=True,
              help="hero: every story with its photo across the column; compact: the "
                   "lead story large, the rest with a thumbnail beside the headline.")
@click.option("--toc/--no-toc", default=False, show_default=True,
              help='Whether an edition opens with an "In this edition" list of its stories.')
@click.option("--accent-color", default="", help="Colour of headings and links, e.g. #1a73e8.")
@click.option("--logo-url", default="",
              help="https:// URL of a logo shown above the title (http:// works in mail, "
                   "but an https archive page may block it).")
@with_app
def lists_create(app: App, name: str, **settings: Any) -> None:
    """Create a list."""
    with app.sessions() as s:
        mlist = create_list(s, name, **settings)
        s.commit()
        say(f"Created list {mlist.name} ({mlist.title}), sent {mlist.schedule} "
            f"{mlist.timezone}, from {mlist.from_addr}")
        if warning := postal_address_warning(mlist):
            err.print(f"Warning: {warning}", markup=False, soft_wrap=True)


@lists.command("ls")
@click.option("--all", "show_all", is_flag=True, help="Archived lists too.")
@with_app
def lists_ls(app: App, show_all: bool) -> None:
    """Lists with their subscriber counts."""
    with app.sessions() as s:
        counts = list_counts(s)
        columns = ["name", "title", "schedule", "mode", *MembershipStatus]
        table = Table(*columns, *(["archived"] if show_all else []))
        for m in all_lists(s, include_archived=show_all):
            c = counts.get(m.id, {})
            row = [m.name, m.title, f"{m.schedule} {m.timezone}", m.mode,
                   *(str(c.get(k, 0)) for k in MembershipStatus)]
            if show_all:
                row.append(f"{m.archived_at:%Y-%m-%d}" if m.archived_at else "")
            table.add_row(*map(escape, row))
        print_table(table)


@lists.command("show")
@click.argument("name")
@with_app
def lists_show(app: App, name: str) -> None:
    """A list's settings, members per status, recipients, sources and editions."""
    with app.sessions() as s:
        mlist = get_list(s, name)
        overview = list_overview(s, mlist)
        archived = f"  (archived {when(mlist.archived_at)})" if mlist.archived_at else ""
        lines = [f"{mlist.name}{archived}"]
        lines += [f"  {LABELS[key]:<13} {_shown(getattr(mlist, key))}" for key in LABELS]
        members = ", ".join(f"{k} {v}" for k, v in overview.members.items())
        last = f", last sent {when(overview.last_sent_at)}" if overview.editions else ""
        lines += [
            f"  {'created':<13} {when(mlist.created_at)}",
            f"  {'members':<13} {members}",
            f"  {'recipients':<13} {overview.recipients} (confirmed and not suppressed)",
            f"  {'sources':<13} {overview.sources}",
            f"  {'editions':<13} {overview.editions}{last}",
        ]
    for line in lines:
        say(line)


@lists.command("set")
@click.argument("name")
@click.option("--title", help="Shown in mail and pages; empty: the list's name.")
@click.option("--from", "from_addr", help='Sender, e.g. "Morning Brief <brief@example.org>".')
@click.option("--reply-to", help='Where replies go; "" for the sender.')
@click.option("--schedule", help="When editions go out, as cron: minute hour day month weekday.")
@click.option("--timezone", help="The schedule's timezone, e.g. Asia/Seoul.")
@click.option("--mode", type=click.Choice(MODES), help="review: editors approve each edition.")
@click.option("--description", help="What the list is about, for sign-up pages.")
@click.option("--language", help="Language of the mail, e.g. en or pt-BR.")
@click.option("--double-optin/--single-optin", default=None,
              help="Whether people who sign up must confirm by a link in mail.")
@click.option("--local-time/--list-time", "local_time", default=None,
              help="Deliver at the send hour in each subscriber's timezone, or the list's.")
@click.option("--review-policy", type=click.Choice(POLICIES),
              help="Review mode, draft not approved at send time: hold it, hold it and "
                   "mail the editors (notify), or send it anyway.")
@click.option("--editors", "editor_emails",
              help='Who is told about held drafts: "a@example.org, b@example.org".')
@click.option("--public/--private", default=None,
              help="Whether the sign-up form and the archive show the list.")
@click.option("--keep-tracking/--clean-links", default=None,
              help="Whether article links in mail keep their tracking parameters "
                   "(utm_*, fbclid, ...).")
@click.option("--postal-address",
              help="The sender's postal address, shown in every mail's footer; up to 6 "
                   "lines of plain text.")
@click.option("--layout", type=click.Choice(LAYOUTS),
              help="hero: every story with its photo across the column; compact: the "
                   "lead story large, the rest with a thumbnail beside the headline.")
@click.option("--toc/--no-toc", default=None,
              help='Whether an edition opens with an "In this edition" list of its stories.')
@click.option("--accent-color", help='Colour of headings and links, e.g. #1a73e8; "" for '
                                     "the default.")
@click.option("--logo-url", help='https:// URL of a logo shown above the title (http:// '
                                 "works in mail, but an https archive page may block it); "
                                 '"" for none.')
@with_app
def lists_set(app: App, name: str, **options: Any) -> None:
    """Change a list's settings; only those given change."""
    changes = {key: value for key, value in options.items() if value is not None}
    if not changes:
        raise click.UsageError(
            "nothing to change; give at least one of --title, --from, --reply-to, "
            "--schedule, --timezone, --mode, --description, --language, "
            "--double-optin/--single-optin, --local-time/--list-time, --review-policy, "
            "--editors, --public/--private, --keep-tracking/--clean-links, "
            "--postal-address, --layout, --toc/--no-toc, --accent-color, --logo-url"
        )
    with app.sessions() as s:
        mlist = get_list(s, name)
        changed = update_list(s, mlist, **changes)
        s.commit()
    if not changed:
        say(f"No change: {name} already has those settings.")
    for key, (old, new) in changed.items():
        say(f"{name} {LABELS[key]}: {_shown(old)} → {_shown(new)}")
    if "postal_address" in changes and (warning := postal_address_warning(mlist)):
        err.print(f"Warning: {warning}", markup=False, soft_wrap=True)


@lists.command("rename")
@click.argument("old")
@click.argument("new")
@with_app
def lists_rename(app: App, old: str, new: str) -> None:
    """Give a list a new name; members, sources and editions stay with it."""
    with app.sessions() as s:
        mlist = get_list(s, old)
        changed = rename_list(s, mlist, new)
        s.commit()
    if changed:
        say(f"Renamed list {old} to {new}. Its title stays {mlist.title!r}; change it "
            f"with `digest lists set {new} --title ...`.")
    else:
        say(f"No change: the list is called {new} already.")


@lists.command("archive")
@click.argument("name")
@click.option("--undo", is_flag=True, help="Bring an archived list back.")
@with_app
def lists_archive(app: App, name: str, undo: bool) -> None:
    """Retire a list: no more editions, hidden from `lists ls`; members and history stay."""
    with app.sessions() as s:
        mlist = get_list(s, name)
        changed = unarchive_list(s, mlist) if undo else archive_list(s, mlist, now=app.clock())
        s.commit()
    say(_archive_message(mlist, undo, changed))


def _archive_message(mlist: MailingList, undo: bool, changed: bool) -> str:
    if undo:
        return (f"List {mlist.name} is active again: it gets editions on its schedule."
                if changed else f"No change: list {mlist.name} is not archived.")
    if not changed:
        return f"No change: list {mlist.name} was archived {when(mlist.archived_at)}."
    return (f"Archived list {mlist.name}: it gets no editions and `digest lists ls` hides it "
            f"(see --all). Members and history stay; `digest lists archive {mlist.name} "
            "--undo` brings it back.")


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, str) and "\n" in value:  # a postal address on several lines
        return ", ".join(value.splitlines())
    return repr(value) if value == "" else str(value)
