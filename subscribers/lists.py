"""Mailing lists: create, find, change, rename, archive, count."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from email.headerregistry import Address
from email.utils import getaddresses, parseaddr
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.cron import list_trigger
from digest.errors import InvalidInput, NotFound
from digest.models import DIGEST, Edition, ListSource
from subscribers.addresses import validate
from subscribers.members import member_counts, recipients_query
from subscribers.models import MEMBERSHIP_STATUSES, MailingList, Membership

NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
MODES = ("auto", "review")
# Digits, *, ranges, steps, lists, and names (MON, JAN) or "?" as some crons allow. The
# scheduler validates ranges when it parses; this only catches the wrong shape early.
CRON_FIELD_RE = re.compile(r"[0-9A-Za-z*/,?-]+")
LANGUAGE_MAX = 16  # MailingList.language's column length
LANGUAGE_RE = re.compile(r"[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8})*")
# Listing every name in a "not found" message helps only while the list is short.
MAX_NAMES_SHOWN = 10
TITLE_MAX, ADDRESS_MAX = 200, 320  # MailingList's column lengths


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
    public: bool = True,
) -> MailingList:
    """A new list. `title` defaults to `name`; every value is checked before anything
    is written, and each error says which value and what is accepted."""
    _check_new_name(s, name)
    values = _checked(
        title=title, from_addr=from_addr, schedule=schedule, timezone=timezone, mode=mode,
        reply_to=reply_to, description=description, double_optin=double_optin,
        language=language, public=public,
    )
    mlist = MailingList(name=name, **values)
    mlist.title = mlist.title or name
    s.add(mlist)
    s.flush()
    return mlist


def update_list(s: Session, mlist: MailingList, **changes: Any) -> dict[str, tuple[Any, Any]]:
    """Change settings of a list (any of `SETTINGS`): {setting: (old, new)} for those that
    changed. Every value is checked before any is set. An empty title means the name."""
    values = _checked(**changes)
    if values.get("title") == "":
        values["title"] = mlist.name
    changed = {}
    for key, value in values.items():
        old = getattr(mlist, key)
        if old != value:
            setattr(mlist, key, value)
            changed[key] = (old, value)
    s.flush()
    return changed


def rename_list(s: Session, mlist: MailingList, new_name: str) -> bool:
    """Give a list a new name (its title stays); whether it changed. Editions, sources and
    members follow, since they refer to the list by id."""
    if new_name == mlist.name:
        return False
    _check_new_name(s, new_name)
    mlist.name = new_name
    s.flush()
    return True


def archive_list(s: Session, mlist: MailingList, *, now: dt.datetime) -> bool:
    """Retire a list: hidden from `all_lists`, no more editions (see `require_active`);
    members and history stay. Whether it changed."""
    if mlist.archived_at is not None:
        return False
    mlist.archived_at = now
    s.flush()
    return True


def unarchive_list(s: Session, mlist: MailingList) -> bool:
    """Bring an archived list back; whether it changed."""
    if mlist.archived_at is None:
        return False
    mlist.archived_at = None
    s.flush()
    return True


def require_active(mlist: MailingList) -> None:
    """Raise InvalidInput if `mlist` is archived: for whatever would build or send an
    edition of it."""
    if mlist.archived_at is not None:
        raise InvalidInput(
            f"list {mlist.name!r} is archived (since {mlist.archived_at:%Y-%m-%d}) and gets "
            f"no editions; bring it back with `digest lists archive {mlist.name} --undo`"
        )


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
        .where(Edition.list_id == mlist.id, Edition.kind == DIGEST)
    ).one()
    return ListOverview(
        members=member_counts(s, mlist),
        recipients=s.scalar(select(func.count()).select_from(recipients)) or 0,
        sources=s.scalar(select(func.count()).where(ListSource.list_id == mlist.id)) or 0,
        editions=editions[0],
        last_sent_at=editions[1],
    )


# -- checks shared by create and update ------------------------------------------------


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
        header = str(Address(display_name=display.strip(), addr_spec=addr))
    except (ValueError, IndexError) as exc:  # email's parser raises both for odd addresses
        raise InvalidInput(f"{what} address {value!r} cannot be used in a header: {exc}") from None
    if len(header) > ADDRESS_MAX:
        raise InvalidInput(f"{what} address {value!r} is longer than {ADDRESS_MAX} characters")
    return header


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


# What happens to a review-mode draft nobody approved by its send time: held until
# approved; held and `editor_emails` told; or sent anyway.
HOLD, NOTIFY, SEND = "hold", "notify", "send"
POLICIES = (HOLD, NOTIFY, SEND)


def check_review_policy(policy: str) -> str:
    """One of POLICIES."""
    if policy not in POLICIES:
        raise InvalidInput(f"review policy {policy!r} is not one of {', '.join(POLICIES)}")
    return policy


def check_editor_emails(value: str) -> str:
    """Comma-separated addresses ("Name <addr>" or "addr"), each checked, back as one
    tidy string of bare addresses."""
    parts = [part.strip() for part in value.split(",") if part.strip()]
    return ", ".join(validate(parseaddr(part)[1] or part) for part in parts)


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


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise InvalidInput(f"mode {mode!r} is not one of {', '.join(MODES)}")
    return mode


def check_language(language: str) -> str:
    if len(language) > LANGUAGE_MAX or not LANGUAGE_RE.fullmatch(language):
        raise InvalidInput(f"language {language!r} is not a language tag like en or pt-BR")
    return language


def _check_title(title: str) -> str:
    title = " ".join(title.split())
    if len(title) > TITLE_MAX:
        raise InvalidInput(f"title is {len(title)} characters long; at most {TITLE_MAX} fit")
    return title


def _flag(label: str) -> Callable[[Any], bool]:
    """The check of a true/false setting; its error names the setting by `label`."""
    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise InvalidInput(f"{label} must be true or false, not {value!r}")
        return value
    return check


# Each setting a list has, with the check its value passes: create and update share
# them, so a value is accepted or refused the same way both times.
SETTINGS: dict[str, Callable[[Any], Any]] = {
    "title": _check_title,
    "description": lambda value: str(value).strip(),
    "from_addr": lambda value: parse_sender(value, "from"),
    "reply_to": lambda value: parse_sender(value, "reply-to") if value.strip() else "",
    "schedule": check_schedule,
    "timezone": check_timezone,
    "mode": check_mode,
    "language": check_language,
    "double_optin": _flag("double opt-in"),
    "local_time": _flag("local time"),
    # Offered on the public subscribe form and shown in the public archive.
    "public": _flag("public"),
    "review_policy": check_review_policy,
    "editor_emails": check_editor_emails,
}


def _checked(**values: Any) -> dict[str, Any]:
    unknown = sorted(set(values) - set(SETTINGS))
    if unknown:
        raise InvalidInput(
            f"lists have no setting {', '.join(unknown)}; they have {', '.join(SETTINGS)}"
        )
    return {key: check(values[key]) for key, check in SETTINGS.items() if key in values}


def _check_new_name(s: Session, name: str) -> None:
    if not NAME_RE.fullmatch(name):
        raise InvalidInput(
            f"list name {name!r} is not usable: use 1-64 lowercase letters, digits, '-' or "
            "'_', starting with a letter or digit (e.g. weekly-news)"
        )
    if s.scalar(select(MailingList.id).where(MailingList.name == name)) is not None:
        raise InvalidInput(f"list {name!r} exists; pick another name or use that list")
