"""A list as a publication: when and how its editions go out, and what it has published.

`subscribers.lists` keeps a list's people side (name, title, sender, members) and knows
nothing of editions. The settings that drive publishing are checked here (schedule,
time zone, mode, review policy and editors, local time), and every caller that creates
or changes a list (the CLI, the console, the API, the demo) comes through `create_list`
and `update_list` below, which pass them to the people layer with the rest.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.cron import list_trigger
from digest.errors import InvalidInput, NotReady
from digest.models import Edition, EditionKind, ListSource
from subscribers import lists
from subscribers.addresses import validate
from subscribers.members import member_counts, recipients_query
from subscribers.models import MailingList

AUTO, REVIEW = "auto", "review"
MODES = (AUTO, REVIEW)
# What happens to a review-mode draft nobody approved by its send time: held until
# approved; held and `editor_emails` told; or sent anyway.
HOLD, NOTIFY, SEND = "hold", "notify", "send"
POLICIES = (HOLD, NOTIFY, SEND)
# Digits, *, ranges, steps, lists, and names (MON, JAN) or "?" as some crons allow. The
# scheduler validates ranges when it parses; this only catches the wrong shape early.
CRON_FIELD_RE = re.compile(r"[0-9A-Za-z*/,?-]+")


def check_schedule(schedule: str) -> str:
    """A cron expression of 5 fields (minute hour day month weekday), spaces tidied."""
    fields = schedule.split()
    if len(fields) != 5 or not all(CRON_FIELD_RE.fullmatch(f) for f in fields):
        raise InvalidInput(
            f"schedule {schedule!r} is not a cron expression of 5 fields "
            "(minute hour day month weekday), e.g. '0 7 * * *' for 07:00 daily or "
            "'0 8 * * mon' for Mondays at 08:00"
        )
    schedule = " ".join(fields)
    list_trigger(schedule, "UTC")  # what the scheduler will use: refuse now what it can't
    return schedule


def check_mode(mode: str) -> str:
    """One of MODES."""
    if mode not in MODES:
        raise InvalidInput(f"mode {mode!r} is not one of {', '.join(MODES)}")
    return mode


def check_review_policy(policy: str) -> str:
    """One of POLICIES."""
    if policy not in POLICIES:
        raise InvalidInput(f"review policy {policy!r} is not one of {', '.join(POLICIES)}")
    return policy


LAYOUTS = ("hero", "compact")
POSTAL_ADDRESS_MAX = 300
# Name, street, district, town and postcode, country: what any country's address needs.
POSTAL_ADDRESS_LINES = 6
JOINERS = frozenset("\u200c\u200d")  # zero-width non-joiner and joiner
ACCENT_RE = re.compile(r"#(?:[0-9a-fA-F]{3}){1,2}")
LOGO_URL_MAX = 2000  # MailingList.logo_url's column length


def check_layout(layout: str) -> str:
    """One of LAYOUTS."""
    if layout not in LAYOUTS:
        raise InvalidInput(f"layout {layout!r} is not one of {', '.join(LAYOUTS)} (hero: "
                           "every story with its photo across the column; compact: the lead "
                           "story large, the rest with a thumbnail beside the headline)")
    return layout


def check_postal_address(value: str) -> str:
    """Plain text on at most POSTAL_ADDRESS_LINES lines, each tidied, blank lines
    dropped; no control, direction-control or invisible characters (`_hidden_character`)."""
    lines = [" ".join(line.split()) for line in str(value).splitlines()]
    kept = [line for line in lines if line]
    for number, line in enumerate(kept, 1):
        if hidden := _hidden_character(line):
            raise InvalidInput(
                f"postal address line {number} holds {hidden}, an invisible character "
                "that can hide or reorder what the line shows; type the address as plain "
                "text")
    if len(kept) > POSTAL_ADDRESS_LINES:
        raise InvalidInput(f"postal address has {len(kept)} lines; at most "
                           f"{POSTAL_ADDRESS_LINES} fit (name, street, town, postcode, "
                           "country): put more on one line, separated by commas")
    address = "\n".join(kept)
    if len(address) > POSTAL_ADDRESS_MAX:
        raise InvalidInput(f"postal address is {len(address)} characters long; at most "
                           f"{POSTAL_ADDRESS_MAX} fit (street, town, postcode, country)")
    return address


def _hidden_character(text: str) -> str:
    """'' when `text` is plain; else the first control or format character in it, as
    "U+202E (RIGHT-TO-LEFT OVERRIDE)". Format characters (Unicode category Cf) are the
    direction controls (U+202A-202E, U+2066-2069, U+200E/F) and the invisible ones
    (U+200B, U+2060, U+FEFF, U+00AD); the joiners U+200C/D stay allowed, as Persian and
    Indic spelling needs them and they move no text."""
    for char in text:
        if unicodedata.category(char)[0] == "C" and char not in JOINERS:
            name = unicodedata.name(char, "a control character")
            return f"U+{ord(char):04X} ({name})"
    return ""


def check_accent_color(value: str) -> str:
    """'' (the templates' colour) or #rgb / #rrggbb, back as lowercase #rrggbb."""
    value = str(value).strip()
    if not value:
        return ""
    if not ACCENT_RE.fullmatch(value):
        raise InvalidInput(f"accent colour {value!r} is not a colour like #1a73e8 or #c00")
    if len(value) == 4:
        value = "#" + "".join(c * 2 for c in value[1:])
    contrast = _contrast(value, PAPER)
    if contrast < ACCENT_CONTRAST_MIN:
        raise InvalidInput(
            f"accent colour {value!r} is too light on the mail's white paper (contrast "
            f"{contrast:.1f}:1; its links and labels need at least {ACCENT_CONTRAST_MIN:g}:1 "
            "to be read): pick a darker one, e.g. #1a73e8 or #9b2226")
    return value.lower()


#: The mail's paper (templates/email/_styles.css, `.paper`), which accent colours are
#: read against; WCAG 2's 3:1, its least contrast for large or bold text.
PAPER = "#fffdf9"
ACCENT_CONTRAST_MIN = 3.0


def _contrast(a: str, b: str) -> float:
    """WCAG 2's contrast ratio of two #rrggbb colours (1 to 21)."""
    def luminance(color: str) -> float:
        def channel(c: int) -> float:
            v = c / 255
            return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4
        r, g, b = (channel(int(color[i:i + 2], 16)) for i in (1, 3, 5))
        return 0.2126 * r + 0.7152 * g + 0.0722 * b
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def check_logo_url(value: str) -> str:
    """'' (no logo) or an absolute http(s) URL (mail clients fetch it; https preferred)."""
    value = str(value).strip()
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname or " " in value:
        raise InvalidInput(f"logo URL {value!r} is not an absolute https:// (or http://) URL "
                           "of an image, e.g. https://example.org/logo.png")
    if len(value) > LOGO_URL_MAX:
        raise InvalidInput(f"logo URL is longer than {LOGO_URL_MAX} characters")
    return value


def postal_address_warning(mlist: MailingList) -> str:
    """'' when the list has a postal address; else what is missing and how to give it.
    Said when a list is created without one, and when an edition of it starts sending."""
    if mlist.postal_address:
        return ""
    return (f"list {mlist.name} has no postal address; the law (CAN-SPAM) and Gmail/Yahoo's "
            "bulk-sender rules ask for one in every mail's footer. Set it with `digest lists "
            f"set {mlist.name} --postal-address \"Street 1, Town, Country\"` or on the "
            "list's settings page in the console.")


def check_editor_emails(value: str) -> str:
    """Comma-separated addresses ("Name <addr>" or "addr"), each checked, back as one
    tidy string of bare addresses."""
    parts = [part.strip() for part in value.split(",") if part.strip()]
    return ", ".join(validate(parseaddr(part)[1] or part) for part in parts)


# Every setting of a list, the people layer's and these, in the order they are shown.
_OWN: lists.Checks = {
    "schedule": check_schedule,
    "timezone": lists.check_timezone,  # the schedule's
    "mode": check_mode,
    # Deliver at the send hour in each subscriber's own time zone.
    "local_time": lists.flag("local time"),
    "review_policy": check_review_policy,
    "editor_emails": check_editor_emails,
    # Article links in mail and the archive keep utm_*, fbclid and the like.
    "keep_tracking": lists.flag("keep tracking"),
    # In every edition's footer: CAN-SPAM and the bulk-sender rules ask for it.
    "postal_address": check_postal_address,
    "layout": check_layout,
    # An "In this edition" table of contents at the top of the mail.
    "toc": lists.flag("toc"),
    "accent_color": check_accent_color,
    "logo_url": check_logo_url,
}
_ORDER = ("title", "description", "from_addr", "reply_to", "schedule", "timezone", "mode",
          "language", "double_optin", "local_time", "public", "review_policy", "editor_emails",
          "keep_tracking", "postal_address", "layout", "toc", "accent_color", "logo_url")
SETTINGS: lists.Checks = dict(sorted(
    {**lists.SETTINGS, **_OWN}.items(),
    key=lambda item: _ORDER.index(item[0]) if item[0] in _ORDER else len(_ORDER),
))


def create_list(s: Session, name: str, *, from_addr: str, **values: Any) -> MailingList:
    """A new list with any of `SETTINGS` (see `subscribers.lists.create_list`)."""
    return lists.create_list(s, name, from_addr=from_addr, checks=SETTINGS, **values)


def update_list(s: Session, mlist: MailingList, **changes: Any) -> dict[str, tuple[Any, Any]]:
    """Change any of `SETTINGS`: {setting: (old, new)} for those that changed."""
    return lists.update_list(s, mlist, checks=SETTINGS, **changes)


@dataclass
class ListOverview:
    """What `digest lists show` prints besides the settings."""

    members: dict[str, int]  # per membership status
    recipients: int  # confirmed and not suppressed: who the next edition goes to
    sources: int
    editions: int  # digests; the standing confirmation mailing is not counted
    last_sent_at: dt.datetime | None


def list_overview(s: Session, mlist: MailingList) -> ListOverview:
    """Counts for one list: members per status, recipients, sources, editions."""
    recipients = recipients_query(mlist.id).subquery()
    editions = s.execute(
        select(func.count(), func.max(Edition.sent_at))
        .where(Edition.list_id == mlist.id, Edition.kind == EditionKind.DIGEST)
    ).one()
    return ListOverview(
        members=member_counts(s, mlist),
        recipients=s.scalar(select(func.count()).select_from(recipients)) or 0,
        sources=s.scalar(select(func.count()).where(ListSource.list_id == mlist.id)) or 0,
        editions=editions[0],
        last_sent_at=editions[1],
    )


def require_recipients(s: Session, mlist: MailingList) -> int:
    """The number of people the list's next edition would reach; NotReady when none.

    Sending to no one would mark the edition sent and use up its articles, so every
    send asks this where it starts (`deliver.worker.start_sending`: the desk, the API,
    the scheduler), and `digest edition send` before it even builds: the draft stays a
    draft for when someone has confirmed.
    """
    recipients = recipients_query(mlist.id).subquery()
    count = s.scalar(select(func.count()).select_from(recipients)) or 0
    if count:
        return count
    pending = member_counts(s, mlist).get("pending", 0)
    waiting = (f"; {pending} pending subscriber{'' if pending == 1 else 's'} get it "
               "once they confirm" if pending else "")
    raise NotReady(
        f"list {mlist.name!r} has no confirmed subscribers, so the edition would reach no one "
        f"and use up its articles; nothing was sent and any draft is kept{waiting}. Add a "
        f"reader with `digest subscribers add ADDRESS --list {mlist.name} --confirmed`, "
        "then send again")
