"""`digest subscribers …`: add, import, export, rm, ls, and one person: show, forget,
tag, set."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from digest.app import App
from digest.cli.common import (
    Interrupted,
    counted,
    on_interrupt,
    out,
    print_table,
    progress_bar,
    say,
    when,
    with_app,
)
from digest.deliver import confirm, ledger
from digest.deliver.confirm import queue_confirmation
from digest.errors import InvalidInput, NotFound
from digest.imports import imports_dir
from digest.models import DeliveryStatus
from digest.privacy import forget, person_data
from digest.state import outbox_dir, require_writable
from subscribers.addresses import normalize
from subscribers.export import export_csv, export_jsonl
from subscribers.importing import import_csv, require_regular_file
from subscribers.lists import get_list
from subscribers.members import (
    add_member,
    get_member,
    list_members,
    member_counts,
    remove_member,
    unsubscribe_all,
)
from subscribers.models import MembershipStatus
from subscribers.people import parse_assignments, set_attributes, tag_subscriber
from subscribers.rejects import rejects_of, require_writable_file

#: The statuses a member can have, as `subscribers ls` and `export` both take them: a
#: wrong one is bad usage (exit 2), refused before a line is written.
STATUS_CHOICE = click.Choice([m.value for m in MembershipStatus], case_sensitive=False)


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
    """Add one subscriber to a list.

    On a double opt-in list (the default) they stay pending and get a confirmation mail
    unless --confirmed; on a single opt-in list they are confirmed at once.
    """
    with app.sessions() as s:
        mlist = get_list(s, list_name)
        if mlist.double_optin and not confirmed:
            app.check_mail()  # a confirmation mail is queued: refuse before storing it
        member, outcome = add_member(s, mlist, email, name=name,
                                     confirmed=confirmed or not mlist.double_optin,
                                     origin="cli", now=app.clock())
        queued = member is not None and queue_confirmation(s, member, app.clock())
        s.commit()
        if member is None or outcome == "suppressed":
            say(f"{email} is suppressed (bounced, complained, left all mail, blocked or "
                "forgotten); not subscribed. `digest subscribers show` says why.")
            return
        say(f"{outcome.capitalize()}: {member.subscriber.email} on {mlist.name} "
            f"({member.status})")
    if queued:
        _send_confirmations(app, list_name)


@subscribers.command("confirm-again")
@click.argument("email")
@click.option("--list", "list_name", required=True, help="The list's name.")
@with_app
def subscribers_confirm_again(app: App, email: str, list_name: str) -> None:
    """Send a pending subscriber a new confirmation mail (at most one per 10 minutes)."""
    app.check_mail()
    with app.sessions() as s:
        member = get_member(s, get_list(s, list_name), email)
        if member.status != MembershipStatus.PENDING:
            raise InvalidInput(f"{member.subscriber.email} is {member.status} on {list_name}, "
                               "not pending: there is nothing to confirm")
        if not queue_confirmation(s, member, app.clock()):
            say("A confirmation mail is already on its way or went out minutes ago; "
                "try again in 10 minutes.")
            return
        s.commit()
    _send_confirmations(app, list_name)


def _send_confirmations(app: App, list_name: str) -> None:
    with progress_bar("Sending confirmations", None) as advance:
        report = app.send_confirmations(list_name, progress=advance)
    sent = report.counts.get(DeliveryStatus.DELIVERED, 0)
    waiting = report.counts.get(DeliveryStatus.QUEUED, 0)
    say(f"Confirmation mails: {sent} sent in all for {list_name}"
        + (f", {waiting} waiting for a retry" if waiting else "")
        + f" (via {app.backend.name}).")


@subscribers.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--list", "list_name", required=True, help="The list's name.")
@click.option("--confirmed", is_flag=True,
              help="Single opt-in: you vouch that everyone in the file asked to subscribe.")
@click.option("--rejects", type=click.Path(dir_okay=False, path_type=Path),
              help="Where refused rows go (default FILE.rejects.csv).")
@with_app
@on_interrupt("the rows it had imported are kept (it commits every 100,000); run the same "
              "import again to finish it: rows already on the list count as unchanged, "
              "nobody is added twice, and pending subscribers get their confirmation "
              "mail then")
def subscribers_import(app: App, file: Path, list_name: str, confirmed: bool,
                       rejects: Path | None) -> None:
    """Import subscribers from a CSV file with an `email` column (and `name`, …)."""
    require_regular_file(file)  # before its rejects file's name is made from its own
    if not rejects:
        rejects = rejects_of(file)
        hint = "pass --rejects PATH in a folder digest can write"
    else:
        hint = "pass --rejects with a path in a folder digest can write"
    require_writable_file(rejects, hint, upload=file)  # before anything is imported
    with app.sessions() as s, progress_bar("Importing", None) as advance:
        mlist = get_list(s, list_name)
        if mlist.double_optin and not confirmed:
            app.check_mail()  # confirmation mails are queued: refuse before importing
        report = import_csv(s, mlist, file, confirmed=confirmed or not mlist.double_optin,
                            now=app.clock(), rejects_path=rejects, progress=advance)
        queued = 0 if confirmed else confirm.queue_pending(s, mlist, app.clock())
        # With those queued by an earlier import that was stopped before it sent them.
        unsent = 0 if confirmed else ledger.pending(
            s, confirm.confirmation_edition(s, mlist, app.clock()).id)
        s.commit()
    table = Table("added", "updated", "unchanged", "rejected", "suppressed")
    table.add_row(*(str(getattr(report, k)) for k in
                    ("added", "updated", "unchanged", "rejected", "suppressed")))
    print_table(table)
    if report.rejected and report.rejects_path:
        out.print(f"Refused rows, with line numbers and reasons: {report.rejects_path}")
    if queued:
        say(f"{queued} pending subscribers get a confirmation mail (double opt-in; "
            "--confirmed skips it when you vouch for the file).")
    if unsent > queued:
        say(f"{unsent - queued} confirmation mails queued before (by an import that was "
            "stopped) go out now too.")
    if unsent:
        _send_confirmations(app, list_name)


@subscribers.command("export")
@click.option("--list", "list_name", required=True, help="The list's name.")
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False, path_type=Path),
              help="File to write (default: standard output).")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv",
              show_default=True, help="CSV with a header row, or one JSON object a line.")
@click.option("--status", type=STATUS_CHOICE,
              help="Only members with this status (the same values as `subscribers ls`).")
@with_app
def subscribers_export(app: App, list_name: str, output: Path | None, fmt: str,
                       status: str | None) -> None:
    """Export a list's members with status and consent record (how, when, from where).

    Example: digest subscribers export --list morning --status confirmed -o members.csv
    """
    write = export_jsonl if fmt == "jsonl" else export_csv
    with app.sessions() as s:
        mlist = get_list(s, list_name)
        if output is None:
            write(s, mlist, sys.stdout, status=status)
            return
        with output.open("w", encoding="utf-8", newline="") as f:
            rows = write(s, mlist, f, status=status)
    say(f"Wrote {counted(rows, 'subscriber')} to {output}")


@subscribers.command("rm")
@click.argument("email")
@click.option("--list", "list_name", help="The list's name.")
@click.option("--all-lists", is_flag=True,
              help="From every list, and suppress the address so nothing adds it back.")
@with_app
def subscribers_rm(app: App, email: str, list_name: str | None, all_lists: bool) -> None:
    """Unsubscribe someone from a list, or from all mail (the consent record is kept)."""
    if (list_name is None) == (not all_lists):
        raise click.UsageError("give either --list NAME or --all-lists")
    with app.sessions() as s:
        if list_name is not None:
            mlist = get_list(s, list_name)
            try:
                member = remove_member(s, mlist, email, now=app.clock(), reason="admin")
            except NotFound:
                raise NotFound(f"{normalize(email)!r} is not on list {mlist.name!r}; see who "
                               f"is with `digest subscribers ls --list {mlist.name}`, or "
                               f"find the address on every list with `digest subscribers "
                               f"show {normalize(email)}`") from None
            s.commit()
            say(f"Unsubscribed {member.subscriber.email} from {mlist.name}")
            return
        left = unsubscribe_all(s, email, now=app.clock(), detail="admin")
        s.commit()
    row = left.suppression
    names = ", ".join(m.mailing_list.name for m in left.memberships)
    say(f"Unsubscribed {email} from {names or 'no list (was on none, or left)'}. The "
        f"address is suppressed ({row.reason} since {when(row.created_at)}): no list or "
        "import adds it again.")


@subscribers.command("ls")
@click.option("--list", "list_name", required=True, help="The list's name.")
@click.option("--status", type=STATUS_CHOICE,
              help="Only this status (the same values as `subscribers export`).")
@click.option("--tag", help="Only subscribers with this tag.")
@click.option("--limit", type=click.IntRange(min=0), default=100, show_default=True,
              help="At most this many rows; 0 for all.")
@with_app
def subscribers_ls(app: App, list_name: str, status: str | None, tag: str | None,
                   limit: int) -> None:
    """A list's members in the order they joined, with counts per status at the end."""
    with app.sessions() as s:
        mlist = get_list(s, list_name)
        rows = list_members(s, mlist, status=status, tag=tag, limit=limit or None)
        counts = member_counts(s, mlist, tag=tag)
    table = Table("email", "name", "status", "tags", "joined", "suppressed")
    for r in rows:
        table.add_row(escape(r.email), escape(r.name), r.status, escape(", ".join(r.tags)),
                      f"{r.created_at:%Y-%m-%d}", "yes" if r.suppressed else "")
    print_table(table)
    total = counts[status] if status else sum(counts.values())
    where = f" with tag {tag}" if tag else ""
    say(f"{mlist.name}{where}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if len(rows) < total:
        say(f"Showing {len(rows)} of {total}; --limit 0 shows all.")


@subscribers.command("show")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True,
              help="As JSON: the export of this person's data.")
@with_app
def subscribers_show(app: App, email: str, as_json: bool) -> None:
    """Everything stored about a person: lists, consent, suppression, deliveries."""
    with app.sessions() as s:
        data = person_data(s, email)
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    for line in _person_lines(data):
        say(line)


@subscribers.command("forget")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_app
def subscribers_forget(app: App, email: str, yes: bool) -> None:
    """Erase a person's data, a subscriber or not: the database's, the rows of import
    rejects and the outbox messages naming them; the address stays suppressed, kept only
    as a hash. Exit 0 when something was erased or the address was already forgotten;
    1 when nothing at all names it."""
    require_writable(app.settings, imports=True)  # the rejects files are rewritten too
    with app.sessions() as s:
        try:
            data: dict[str, Any] | None = person_data(s, email)
        except NotFound:  # not in the database: the files may still name them
            data = None
        address = data["email"] if data else normalize(email)
        if not yes:
            stored = (f"memberships: {len(data['memberships'])}, deliveries: "
                      f"{data['deliveries']['total']}" if data else
                      "not in the database; rejects of imports and outbox messages")
            try:
                agreed = click.confirm(f"Erase everything stored about {address} "
                                       f"({stored})? This cannot be undone")
            except click.Abort as exc:  # no answer: Ctrl-C or Ctrl-D, or no terminal
                if sys.stdin.isatty():
                    click.echo(err=True)  # the message on a line of its own
                    if isinstance(exc.__context__, KeyboardInterrupt):
                        raise Interrupted("nothing was erased") from None
                    raise click.ClickException(f"nothing was erased: no answer (end of "
                                               f"input) to whether to erase {address}") from None
                raise click.ClickException(
                    f"nothing was erased: there was no answer to whether to erase {address} "
                    "(no terminal to ask on); pass --yes to erase without asking") from None
            if not agreed:
                raise click.Abort
        report = forget(s, email, now=app.clock(), imports_dir=imports_dir(app),
                        outbox_dir=outbox_dir(app.settings))
        s.commit()
    if report.placeholder:
        say(f"Forgot {address}: the subscriber is now {report.placeholder}, "
            f"without name, attributes, tags or IP addresses; its memberships "
            f"({report.memberships}) and deliveries ({report.deliveries}) are kept without "
            "them.")
    elif data is None:
        say(f"{address} was never a subscriber; files named it.")
    else:
        say(f"Nothing but a suppression was stored about {address}.")
    if report.rejected_rows:
        say(f"Erased {report.rejected_rows} rows naming {address} from the rejects "
            "of console imports.")
    if report.outbox_messages:
        say(f"Deleted {report.outbox_messages} messages to {address} from the outbox.")
    if report.running_imports == 1:
        say("1 import is still running: its files are left to it until it ends; run this "
            f"again then to take {address} out of its rejects.")
    elif report.running_imports:
        say(f"{report.running_imports} imports are still running: their files are left "
            f"to them until they end; run this again then to take {address} out "
            "of their rejects.")
    say(f"The address stays suppressed ({report.suppression.reason}) as a hash: adding "
        "or importing it again reports it suppressed. Copies outside the database, the "
        "imports folder and the outbox (CSV files given to `digest subscribers import` "
        "and their rejects, mail server logs, backups) are not touched.")


@subscribers.command("tag")
@click.argument("email")
@click.argument("tags", nargs=-1, required=True)
@click.option("--remove", is_flag=True, help="Take the tags away instead.")
@with_app
def subscribers_tag(app: App, email: str, tags: tuple[str, ...], remove: bool) -> None:
    """Add tags to a subscriber (or take them away with --remove)."""
    with app.sessions() as s:
        after = tag_subscriber(s, email, tags, remove=remove, now=app.clock())
        s.commit()
    say(f"Tags of {email}: {', '.join(after) or '(none)'}")


@subscribers.command("set")
@click.argument("email")
@click.argument("assignments", metavar="KEY=VALUE...", nargs=-1, required=True)
@with_app
def subscribers_set(app: App, email: str, assignments: tuple[str, ...]) -> None:
    """Set attributes: values that parse as JSON are stored as JSON (42, true, [1,2]),
    others as text; `key=` removes the key; `name=...` sets the name, `timezone=Asia/Seoul`
    the zone a local-time list delivers in."""
    values = parse_assignments(assignments)
    with app.sessions() as s:
        changed = set_attributes(s, email, values, now=app.clock())
        s.commit()
    if not changed:
        say(f"No change: {email} has those values already.")
    for key, (old, new) in changed.items():
        say(f"{email} {key}: {_json(old)} → {_json(new)}")


def _person_lines(data: dict[str, Any]) -> list[str]:
    """`person_data` as text, every field of it."""
    lines = [data["email"]]
    sub = data["subscriber"]
    if sub:
        lines += [f"  {key:<12}{_json(sub[key])}" for key in
                  ("id", "name", "timezone", "tags", "attributes", "created_at", "updated_at")]
    else:
        lines.append("  no subscriber stored (only the suppression below)")
    lines.append(f"  {'suppressed':<12}{_suppression_text(data['suppression'])}")
    deliveries = data["deliveries"]
    by_status = ", ".join(f"{k} {v}" for k, v in deliveries["by_status"].items())
    lines.append(f"  {'deliveries':<12}{deliveries['total']}" +
                 (f" ({by_status})" if by_status else ""))
    for m in data["memberships"]:
        lines.append(f"  list {m['list']} ({m['list_title']}): {m['status']}")
        lines += [f"    {key:<19}{_json(m[key])}" for key in m
                  if key not in ("list", "list_title", "status")]
    return lines


def _suppression_text(supp: dict[str, Any] | None) -> str:
    if supp is None:
        return "no"
    domain = f" (the domain {supp['domain']})" if supp["domain"] else ""
    detail = f": {supp['detail']}" if supp["detail"] else ""
    return f"yes, {supp['reason']}{domain} since {supp['since']}{detail}"


def _json(value: object) -> str:
    """A value as shown: text as is, others (numbers, lists, null) as JSON."""
    if isinstance(value, str):
        return value or "''"
    return json.dumps(value, ensure_ascii=False)
