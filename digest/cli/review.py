"""`digest edition approve`: release a review-mode list's draft."""

from __future__ import annotations

import click

from digest.app import App
from digest.cli.common import say, with_app
from digest.cron import list_trigger, next_runs
from subscribers.lists import get_list


@click.command("approve")
@click.option("--list", "list_name", required=True, help="The list's name.")
@with_app
def approve(app: App, list_name: str) -> None:
    """Approve the list's draft: it goes out at its scheduled time."""
    edition, changed = app.approve(list_name)
    now = app.clock()
    with app.sessions() as s:
        mlist = get_list(s, list_name)
        upcoming = next_runs(list_trigger(mlist.schedule, mlist.timezone), now, 1)
    say(("Approved" if changed else "Already approved:") +
        f" edition #{edition.number} of {list_name}, \"{edition.subject}\".")
    nxt = f"{upcoming[0]:%Y-%m-%d %H:%M} UTC" if upcoming else "none (the schedule ends)"
    if edition.scheduled_for is not None and edition.scheduled_for > now:
        say(f"It goes out at {edition.scheduled_for:%Y-%m-%d %H:%M} UTC.")
    else:
        say(f"It goes out at the next scheduled time, {nxt}, or now with "
            f"`digest edition send --list {list_name}`.")
