"""The editor's desk as plain functions: change a list's next edition before it goes out.

The web desk and the JSON API both call these. Functions taking a Session flush and
leave the commit to the caller, so one request is one transaction; preview, a test to
yourself and "send now" are the `App`'s (they need its templates and backend). Only an
edition that is a draft or approved can change; one sending or sent raises InvalidInput,
and so does an edition the scheduler starts sending while an editor works on it: each
change first locks the edition (`digest.editions.lock_edition`, a write to its row:
SQLite's write lock, PostgreSQL's row lock) and rereads it, as `start_sending` does, so
a change either lands before the render and goes out, or waits and is refused.

    draft.py    finding the edition, the proposed articles, changing items and intro
    pages.py    adding an article by URL: fetched, extracted and sanitized
    sending.py  approve, schedule (the scheduler releases scheduled ones when due)

Items keep the order of their `position` (0, 1, 2, ...): pinned items lead the edition,
in their own order, then the others told in full, then those in brief (the compact
"also new" list of headlines and links); moving an item stays inside its group.
"""

from __future__ import annotations

from digest.curate.draft import (
    EDITABLE,
    INTRO_MAX,
    NOTE_MAX,
    PROPOSALS_MAX,
    SUBJECT_MAX,
    SUMMARY_MAX,
    TITLE_MAX,
    Proposal,
    Tally,
    add_article,
    brief_item,
    current_edition,
    draft_for,
    drop_item,
    edit_item,
    editable,
    get_edition,
    move_item,
    pin_item,
    proposals,
    set_intro,
    tally,
)
from digest.curate.pages import (
    FetchedPage,
    add_page,
    fetch_page,
    start_with_page,
)
from digest.curate.sending import (
    approve,
    recipients_count,
    schedule,
)

__all__ = [
    "EDITABLE",
    "INTRO_MAX",
    "NOTE_MAX",
    "PROPOSALS_MAX",
    "SUBJECT_MAX",
    "SUMMARY_MAX",
    "TITLE_MAX",
    "FetchedPage",
    "Proposal",
    "Tally",
    "add_article",
    "add_page",
    "approve",
    "brief_item",
    "current_edition",
    "draft_for",
    "drop_item",
    "edit_item",
    "editable",
    "fetch_page",
    "get_edition",
    "move_item",
    "pin_item",
    "proposals",
    "recipients_count",
    "schedule",
    "set_intro",
    "start_with_page",
    "tally",
]
