"""Mailing lists: create, find, count."""

from __future__ import annotations

import re
import zoneinfo
from email.headerregistry import Address
from email.utils import getaddresses

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.errors import InvalidInput, NotFound
from subscribers.addresses import validate
from subscribers.models import MEMBERSHIP_STATUSES, MailingList, Membership

NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
MODES = ("auto", "review")
# Digits, *, ranges, steps, lists, and names (MON, JAN) or "?" as some crons allow. The
# scheduler validates ranges when it parses; this only catches the wrong shape early.
CRON_FIELD_RE = re.compile(r"[0-9A-Za-z*/,?-]+")
LANGUAGE_RE = re.compile(r"[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8})*")
# Listing every name in a "not found" message helps only while the list is short.
MAX_NAMES_SHOWN = 10


def create_list(
    s: Session,
    name: str,
    *,
    title: str = "",
    from_addr: str,
    schedule: str = "0 7 * * *",
    timezone: str = "UTC",
    mode: str = "auto",
    reply_to: str = "",
    description: str = "",
    double_optin: bool = True,
    language: str = "en",
) -> MailingList:
    """A new list. `title` defaults to `name`; every value is checked before anything
    is written, and each error says which value and what is accepted."""
    if not NAME_RE.fullmatch(name):
        raise InvalidInput(
            f"list name {name!r} is not usable: use 1-64 lowercase letters, digits, '-' or "
            "'_', starting with a letter or digit (e.g. weekly-news)"
        )
    if s.scalar(select(MailingList.id).where(MailingList.name == name)) is not None:
        raise InvalidInput(f"list {name!r} exists; pick another name or use that list")
    if mode not in MODES:
        raise InvalidInput(f"mode {mode!r} is not one of {', '.join(MODES)}")
    if not LANGUAGE_RE.fullmatch(language):
        raise InvalidInput(f"language {language!r} is not a language tag like en or pt-BR")
    mlist = MailingList(
        name=name,
        title=title.strip() or name,
        description=description,
        from_addr=parse_sender(from_addr, "from"),
        reply_to=parse_sender(reply_to, "reply-to") if reply_to.strip() else "",
        schedule=check_schedule(schedule),
        timezone=check_timezone(timezone),
        mode=mode,
        double_optin=double_optin,
        language=language,
    )
    s.add(mlist)
    s.flush()
    return mlist


def get_list(s: Session, name: str) -> MailingList:
    """The list called `name`, archived or not."""
    mlist = s.scalar(select(MailingList).where(MailingList.name == name))
    if mlist is not None:
        return mlist
    hint = f"create it with `digest lists create {name} --from \"Name <addr>\"`"
    names = list(s.scalars(select(MailingList.name).order_by(MailingList.name)))
    if not names:
        raise NotFound(f"list {name!r} not found; there are no lists yet: {hint}")
    if len(names) <= MAX_NAMES_SHOWN:
        raise NotFound(f"list {name!r} not found; lists are: {', '.join(names)}; or {hint}")
    raise NotFound(f"list {name!r} not found; see `digest lists ls`, or {hint}")


def all_lists(s: Session, include_archived: bool = False) -> list[MailingList]:
    """Every list by name; archived ones only if asked."""
    stmt = select(MailingList).order_by(MailingList.name)
    if not include_archived:
        stmt = stmt.where(MailingList.archived_at.is_(None))
    return list(s.scalars(stmt))


def list_counts(s: Session) -> dict[int, dict[str, int]]:
    """list id -> members per status (every status present, 0 when none)."""
    stmt = select(Membership.list_id, Membership.status, func.count()).group_by(
        Membership.list_id, Membership.status
    )
    counts: dict[int, dict[str, int]] = {}
    for list_id in s.scalars(select(MailingList.id)):
        counts[list_id] = dict.fromkeys(MEMBERSHIP_STATUSES, 0)
    for list_id, status, n in s.execute(stmt):
        counts.setdefault(list_id, dict.fromkeys(MEMBERSHIP_STATUSES, 0))[status] = n
    return counts


def parse_sender(value: str, what: str) -> str:
    """`Name <addr>` or `addr`, checked, back as one header-ready string (Unicode kept)."""
    pairs = getaddresses([value])
    if len(pairs) != 1 or not pairs[0][1]:
        raise InvalidInput(
            f"{what} address {value!r} is not one address; give it as 'Name <addr>' or "
            "'addr', and put a name with commas in quotes: '\"Smith, Jo\" <jo@example.org>'"
        )
    display, addr = pairs[0]
    addr = validate(addr)
    try:
        return str(Address(display_name=display.strip(), addr_spec=addr))
    except (ValueError, IndexError) as exc:  # email's parser raises both for odd addresses
        raise InvalidInput(f"{what} address {value!r} cannot be used in a header: {exc}") from None


def check_schedule(schedule: str) -> str:
    """A cron expression of 5 fields (minute hour day month weekday), spaces tidied."""
    fields = schedule.split()
    if len(fields) != 5 or not all(CRON_FIELD_RE.fullmatch(f) for f in fields):
        raise InvalidInput(
            f"schedule {schedule!r} is not a cron expression of 5 fields "
            "(minute hour day month weekday), e.g. '0 7 * * *' for 07:00 daily or "
            "'0 8 * * mon' for Mondays at 08:00"
        )
    return " ".join(fields)


def check_timezone(timezone: str) -> str:
    """An IANA time zone name, e.g. Europe/Berlin."""
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # "Europe" is a folder
        raise InvalidInput(
            f"time zone {timezone!r} is unknown; use an IANA name like UTC, "
            "Europe/Berlin or America/New_York"
        ) from None
    return timezone
