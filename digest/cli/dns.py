"""`digest check-dns`: the SPF, DKIM and DMARC records a sender's domain needs, and
whether DNS has them (`digest.dnscheck`)."""

from __future__ import annotations

import json

import click
from rich.table import Table

from digest import dnscheck
from digest.app import App
from digest.cli.common import add_row, print_table, say, with_app

_SHOWN = {"ok": "ok", "missing": "MISSING", "differs": "DIFFERS",
          "could not look up": "could not look up", "not checked": "not checked"}


@click.command("check-dns")
@click.option("--domain", required=True, help="The domain of your from address.")
@click.option("--nameserver", default="",
              help="Ask this resolver (IP[:port]) instead of the system's.")
@click.option("--offline", is_flag=True, help="Only print the records; look nothing up.")
@click.option("--timeout", type=click.FloatRange(0.1, 60), default=dnscheck.TIMEOUT,
              show_default=True, help="Seconds each lookup may take.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@with_app
def check_dns(app: App, domain: str, nameserver: str, offline: bool, timeout: float,
              as_json: bool) -> None:
    """The SPF, DKIM and DMARC records DOMAIN needs for the backend and DKIM key in use,
    and whether DNS has them.

    The DKIM record carries the public key of [dkim] private_key_file, cut into
    255-character strings as DNS needs; with an API backend the provider signs, and
    what it needs is named instead. SPF is for the envelope sender: with [delivery]
    return_path set, for its domain (with a warning when that cannot align with DOMAIN
    for DMARC). Each lookup gives up after a few seconds;
    offline, each record says "could not look up".
    """
    records = dnscheck.needed(app.settings, domain)
    if not offline:
        records = dnscheck.check(records, dnscheck.resolver_lookup(nameserver, timeout))
    if as_json:
        click.echo(json.dumps([{"kind": r.kind, "name": r.name, "value": r.value,
                                "strings": r.strings if r.value else [], "state": r.state,
                                "found": r.found, "note": r.note} for r in records], indent=2))
        return
    table = Table("record", "name", "in DNS", "found")
    for r in records:
        add_row(table, r.kind, r.name, _SHOWN[r.state], r.found[:60])
    print_table(table)
    for r in records:
        say(f"\n{r.kind}" + (f" ({r.note})" if r.note else "") + ":")
        say(f"  {r.zone_line}" if r.value else
            "  (nothing to publish from here)" if r.lookup else
            "  (publish what the provider's console shows)")
