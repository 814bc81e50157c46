"""`digest suppress …`: addresses and domains that get no mail from any list."""

from __future__ import annotations

import click
from rich.markup import escape
from rich.table import Table

from digest.app import App
from digest.cli.common import print_table, say, when, with_app
from digest.errors import NotFound
from subscribers.addresses import domain_of, normalize
from subscribers.suppress import (
    REASONS,
    block_domain,
    suppress,
    suppression_counts,
    suppression_of,
    suppressions,
    unblock_domain,
    unsuppress,
)

# What an admin may give; "forgotten" is set by `subscribers forget`, "domain" here below.
ADMIN_REASONS = ("admin", "hard_bounce", "complaint", "unsubscribe_all")


@click.group("suppress")
def suppress_group() -> None:
    """Addresses and domains never mailed again, whatever list or import adds them."""


@suppress_group.command("add")
@click.argument("email")
@click.option("--reason", type=click.Choice(ADMIN_REASONS), default="admin", show_default=True,
              help="Why, as recorded.")
@click.option("--detail", default="", help="A note kept with it (not the address).")
@with_app
def suppress_add(app: App, email: str, reason: str, detail: str) -> None:
    """Never mail an address again (kept as a hash; memberships are left as they are)."""
    with app.sessions() as s:
        row, new = suppress(s, email, reason, detail, now=app.clock())
        s.commit()
    if new:
        say(f"Suppressed {normalize(email)} ({reason}): no list sends to it, and no "
            "list or import adds it again.")
    else:
        say(f"No change: {normalize(email)} is suppressed already ({row.reason} since "
            f"{when(row.created_at)}).")


@suppress_group.command("rm")
@click.argument("email", required=False)
@click.option("--domain", help="Unblock this domain instead of an address (the same as "
                               "`digest suppress domain DOMAIN --undo`).")
@with_app
def suppress_rm(app: App, email: str | None, domain: str | None) -> None:
    """Lift an address's suppression (its memberships stay as they are), or with
    --domain a domain's block: the one spelling of undo for both.

    Examples: digest suppress rm pat@example.org; digest suppress rm --domain example.com
    """
    if (email is None) == (domain is None):
        raise click.UsageError("give either an EMAIL or --domain DOMAIN")
    if domain is not None:
        _unblock(app, domain)
        return
    assert email is not None
    address = normalize(email)
    with app.sessions() as s:
        before = suppression_of(s, address)
        if not unsuppress(s, address):
            raise NotFound(_not_suppressed(address, blocked=before is not None))
        s.commit()
        still = suppression_of(s, address)
    assert before is not None  # there was a row to delete
    say(f"Lifted the suppression of {address} ({before.reason} since "
        f"{when(before.created_at)}). Whoever unsubscribed stays unsubscribed until "
        "they subscribe again.")
    if still is not None:
        say(f"Its domain {still.domain} is still blocked; `digest suppress rm --domain "
            f"{still.domain}` lifts that.")


def _not_suppressed(address: str, *, blocked: bool) -> str:
    if blocked:
        domain = domain_of(address)
        return (f"{address} is not suppressed itself, but its domain {domain} is blocked; "
                f"`digest suppress rm --domain {domain}` lifts that")
    return f"{address} is not suppressed; `digest suppress ls` shows what is"


@suppress_group.command("domain")
@click.argument("domain")
@click.option("--undo", is_flag=True,
              help="Lift the block (the same as `digest suppress rm --domain DOMAIN`).")
@click.option("--detail", default="", help="A note kept with it.")
@with_app
def suppress_domain(app: App, domain: str, undo: bool, detail: str) -> None:
    """Block every address at a domain (exactly it, not its subdomains).

    Example: digest suppress domain example.com; lifted with `digest suppress rm
    --domain example.com` (or, as before, `digest suppress domain example.com --undo`).
    """
    if undo:
        _unblock(app, domain)
        return
    with app.sessions() as s:
        row, new = block_domain(s, domain, detail, now=app.clock())
        s.commit()
    say(f"Blocked {row.domain}: no list sends to any address there." if new else
        f"No change: {row.domain} is blocked already (since {when(row.created_at)}).")


def _unblock(app: App, domain: str) -> None:
    with app.sessions() as s:
        if not unblock_domain(s, domain):
            raise NotFound(f"domain {domain!r} is not blocked; `digest suppress ls "
                           "--reason domain` shows which are")
        s.commit()
    say(f"Unblocked {domain}.")


@suppress_group.command("ls")
@click.option("--reason", type=click.Choice(REASONS), help="Only this reason.")
@click.option("--limit", type=click.IntRange(min=0), default=100, show_default=True,
              help="At most this many rows, newest first; 0 for all.")
@with_app
def suppress_ls(app: App, reason: str | None, limit: int) -> None:
    """Suppressed addresses and blocked domains, newest first, with counts per reason.

    Addresses are stored as hashes: one is shown when a subscriber with it is stored."""
    with app.sessions() as s:
        rows = suppressions(s, reason=reason, limit=limit or None)
        counts = suppression_counts(s)
    table = Table("since", "reason", "address or domain", "detail")
    for row, email in rows:
        who = row.domain or email or f"(hash {row.email_hash[:12]}…)"
        table.add_row(when(row.created_at), row.reason, escape(who), escape(row.detail[:60]))
    print_table(table)
    say("Suppressed: " + (", ".join(f"{k} {v}" for k, v in counts.items()) or "none"))
    total = counts.get(reason, 0) if reason else sum(counts.values())
    if len(rows) < total:
        say(f"Showing {len(rows)} of {total}; --limit 0 shows all.")
