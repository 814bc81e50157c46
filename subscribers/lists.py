"""Mailing lists: create, find, change, rename, archive, count.

This is the people layer's view of a list: its name, title, sender and members. The
settings that say when and how its editions go out are checked and explained by
`digest.publication`, which passes them through `create_list` and `update_list`."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Callable, Mapping
from email.headerregistry import Address
from email.utils import getaddresses
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.errors import InvalidInput, NotFound
from subscribers.addresses import validate
from subscribers.models import MailingList, Membership, MembershipStatus

NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
NAME_RULE = ("1-64 lowercase letters, digits, '-' or '_', starting with a letter or digit "
             "(e.g. weekly-news)")
LANGUAGE_MAX = 16  # MailingList.language's column length
LANGUAGE_RE = re.compile(r"[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8})*")
# Listing every name in a "not found" message helps only while the list is short.
MAX_NAMES_SHOWN = 10
TITLE_MAX, ADDRESS_MAX = 200, 320  # MailingList's column lengths


def create_list(s: Session, name: str, *, from_addr: str, checks: Checks | None = None,
                **values: Any) -> MailingList:
    """A new list. `title` defaults to `name`, other settings to the table's defaults;
    every value is checked before anything is written, and each error says which value
    and what is accepted.

    `checks` are the settings accepted, each with its check: this package's `SETTINGS`
    by default; the publishing side passes its fuller table (`digest.publication`), with
    the schedule, mode and review settings this package does not know the meaning of."""
    _check_new_name(s, name)
    values = _checked(checks or SETTINGS, from_addr=from_addr, **values)
    mlist = MailingList(name=name, **values)
    mlist.title = mlist.title or name
    s.add(mlist)
    s.flush()
    return mlist


def update_list(s: Session, mlist: MailingList, *, checks: Checks | None = None,
                **changes: Any) -> dict[str, tuple[Any, Any]]:
    """Change settings of a list (any of `checks`, by default `SETTINGS`): {setting:
    (old, new)} for those that changed. Every value is checked before any is set. An
    empty title means the name."""
    values = _checked(checks or SETTINGS, **changes)
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
    names = list(s.scalars(select(MailingList.name).order_by(MailingList.name)))
    if name != name.lower() and name.lower() in names:
        raise NotFound(f"list {name!r} not found; list names are lowercase: did you mean "
                       f"{name.lower()!r}?")
    hint = _create_hint(name)
    if not names:
        raise NotFound(f"list {name!r} not found; there are no lists yet: {hint}")
    if len(names) <= MAX_NAMES_SHOWN:
        raise NotFound(f"list {name!r} not found; lists are: {', '.join(names)}; or {hint}")
    raise NotFound(f"list {name!r} not found; see `digest lists ls`, or {hint}")


def _create_hint(name: str) -> str:
    """How to create the list `name`, under a name `lists create` accepts."""
    usable = name if NAME_RE.fullmatch(name) else name.lower()
    if not NAME_RE.fullmatch(usable):
        return (f"create one with `digest lists create NAME --from \"Name <addr>\"`, "
                f"NAME being {NAME_RULE}")
    hint = f"create it with `digest lists create {usable} --from \"Name <addr>\"`"
    return hint + (" (list names are lowercase)" if usable != name else "")


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
        counts[list_id] = dict.fromkeys(MembershipStatus, 0)
    for list_id, status, n in s.execute(stmt):
        counts.setdefault(list_id, dict.fromkeys(MembershipStatus, 0))[status] = n
    return counts


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


def check_language(language: str) -> str:
    if len(language) > LANGUAGE_MAX or not LANGUAGE_RE.fullmatch(language):
        raise InvalidInput(f"language {language!r} is not a language tag like en or pt-BR")
    return language


def _check_title(title: str) -> str:
    title = " ".join(title.split())
    if len(title) > TITLE_MAX:
        raise InvalidInput(f"title is {len(title)} characters long; at most {TITLE_MAX} fit")
    return title


def flag(label: str) -> Callable[[Any], bool]:
    """The check of a true/false setting; its error names the setting by `label`."""
    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise InvalidInput(f"{label} must be true or false, not {value!r}")
        return value
    return check


# The settings of a list that concern its members, with the check each value passes:
# create and update share them, so a value is accepted or refused the same way both
# times. When and how editions go out (schedule, time zone, mode, review) is the
# publishing side's: `digest.publication.SETTINGS` adds them.
Checks = Mapping[str, Callable[[Any], Any]]
SETTINGS: Checks = {
    "title": _check_title,
    "description": lambda value: str(value).strip(),
    "from_addr": lambda value: parse_sender(value, "from"),
    "reply_to": lambda value: parse_sender(value, "reply-to") if value.strip() else "",
    "language": check_language,
    "double_optin": flag("double opt-in"),
    # Offered on the public subscribe form and shown in the public archive.
    "public": flag("public"),
}


def _checked(checks: Checks, **values: Any) -> dict[str, Any]:
    unknown = sorted(set(values) - set(checks))
    if unknown:
        raise InvalidInput(
            f"lists have no setting {', '.join(unknown)}; they have {', '.join(checks)}"
        )
    return {key: check(values[key]) for key, check in checks.items() if key in values}


def _check_new_name(s: Session, name: str) -> None:
    if not NAME_RE.fullmatch(name):
        raise InvalidInput(
            f"list name {name!r} is not usable: use {NAME_RULE}"
        )
    if s.scalar(select(MailingList.id).where(MailingList.name == name)) is not None:
        raise InvalidInput(f"list {name!r} exists; pick another name or use that list")
