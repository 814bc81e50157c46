"""One person: everything stored about them, their tags and attributes, and `forget`.

`forget` erases a person but keeps two things, by design:

- The suppression, as the sha256 of the address (reason "forgotten", or the reason the
  address was already suppressed for, which says more). Adding or importing the address
  again finds the hash and refuses, as for any suppressed address.
- The subscriber row, emptied, under the placeholder `forgotten-<id>@invalid` (".invalid"
  never resolves, RFC 2606), with its memberships and deliveries. Deleting the row would
  cascade to the delivery ledger and change what every past edition says it sent; kept
  like this, the rows say only that someone, no longer known, was subscribed and mailed.
  Memberships lose their IP addresses and free-text reasons; deliveries lose their error
  text, which often quotes the address (the ledger is the publishing side's: callers use
  `digest.privacy.forget`, which does both). Old links in mail stop working: their tag
  no longer matches the address hash (see `tokens`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.errors import InvalidInput, NotFound
from subscribers.addresses import domain_of, email_hash, normalize
from subscribers.lists import check_timezone
from subscribers.members import clean_name, clean_tag, unsubscribe
from subscribers.models import Membership, Subscriber, Suppression
from subscribers.suppress import suppress, suppression_of

FORGOTTEN = "forgotten"
PLACEHOLDER = "forgotten-{id}@invalid"
KEY_MAX = 100  # attribute keys come from CSV headers too; longer ones are mistakes
ASSIGNMENT_HELP = (
    "give key=value, e.g. city=Berlin, age=42 or vip=true: a value that parses as JSON "
    "is stored as JSON, anything else as text, and key= removes the key"
)


def find_subscriber(s: Session, email: str) -> Subscriber:
    """The subscriber with address `email` (any case), or NotFound saying what to do."""
    address = normalize(email)
    subscriber = s.scalar(select(Subscriber).where(Subscriber.email == address))
    if subscriber is None:
        raise NotFound(
            f"no subscriber has the address {address!r}; add them first with "
            f"`digest subscribers add {address} --list NAME`"
        )
    return subscriber


def person_data(s: Session, email: str) -> dict[str, Any]:
    """Everything stored about the person at `email`, as JSON-ready data (times in ISO
    8601 UTC): the subscriber, every membership with its consent record, whether and why
    the address is suppressed. `digest.privacy.person_data` adds what the publishing
    side holds: their deliveries.

    An address stored only as a suppression hash (e.g. after `forget`) gives the
    suppression alone; one with nothing at all raises NotFound.
    """
    address = normalize(email)
    subscriber = s.scalar(select(Subscriber).where(Subscriber.email == address))
    suppression = suppression_of(s, address)
    if subscriber is None and suppression is None:
        raise NotFound(
            f"nothing is stored about {address!r}: no subscriber has that address and it "
            "is not suppressed"
        )
    memberships = subscriber.memberships if subscriber else []
    return {
        "email": address,
        "subscriber": _subscriber_data(subscriber) if subscriber else None,
        "memberships": sorted((_membership_data(m) for m in memberships),
                              key=lambda m: str(m["list"])),
        "suppression": _suppression_data(suppression) if suppression else None,
    }


@dataclass
class ForgetReport:
    """What `forget` did."""

    subscriber_id: int | None  # the emptied row; None if no row was stored
    placeholder: str | None  # the emptied row's address now
    memberships: int  # consent records emptied (kept, unsubscribed)
    suppression: Suppression  # what keeps the address out from now on
    deliveries: int = 0  # ledger rows kept, their error text erased (`digest.privacy`)
    rejected_rows: int = 0  # rows naming them taken out of import rejects files (idem)
    running_imports: int = 0  # imports running meanwhile, whose files were left alone
    outbox_messages: int = 0  # messages to them deleted from the outbox (idem)


def forget(s: Session, email: str, *, now: dt.datetime,
           found_elsewhere: bool = False) -> ForgetReport:
    """Erase the person at `email`, keeping the address suppressed (see the module's
    docstring). Harmless to repeat; NotFound when nothing was ever stored about them,
    unless the caller found them `found_elsewhere` (a file): then the address is
    suppressed all the same.

    The people layer's part only: `digest.privacy.forget`, which every caller uses, also
    erases what the delivery ledger holds about them."""
    address = normalize(email)
    subscriber = s.scalar(select(Subscriber).where(Subscriber.email == address))
    known = s.scalar(select(Suppression.id).where(Suppression.email_hash == email_hash(address)))
    if subscriber is None and known is None and not found_elsewhere:
        raise NotFound(
            f"nothing is stored about {address!r}: no subscriber has that address, it "
            "is not suppressed"
        )
    row, _new = suppress(s, address, FORGOTTEN, now=now)
    # Bounce and complaint details often quote the address.
    row.detail = re.sub(re.escape(address), "[forgotten]", row.detail, flags=re.IGNORECASE)
    if subscriber is None:
        s.flush()
        return ForgetReport(None, None, 0, row)
    for membership in subscriber.memberships:
        unsubscribe(s, membership, now=now, reason=FORGOTTEN)
        membership.unsubscribe_reason = FORGOTTEN  # an admin's note may name the person
        membership.created_ip = membership.confirmed_ip = ""
    placeholder = PLACEHOLDER.format(id=subscriber.id)
    subscriber.email, subscriber.email_hash = placeholder, email_hash(placeholder)
    subscriber.domain = domain_of(placeholder)
    subscriber.name, subscriber.timezone = "", ""
    subscriber.attributes, subscriber.tags = {}, []
    subscriber.updated_at = now
    s.flush()
    return ForgetReport(subscriber.id, placeholder, len(subscriber.memberships), row)


def tag_subscriber(
    s: Session, email: str, tags: Iterable[str], *, remove: bool = False, now: dt.datetime
) -> list[str]:
    """Add `tags` to the subscriber at `email` (or take them away): their tags after.
    Tags are stored lowercased and sorted, each once."""
    subscriber = find_subscriber(s, email)
    given = {clean_tag(t) for t in tags}
    current = set(subscriber.tags or [])
    after = sorted(current - given if remove else current | given)
    if after != subscriber.tags:
        subscriber.tags, subscriber.updated_at = after, now
        s.flush()
    return after


def set_attributes(
    s: Session, email: str, values: Mapping[str, Any], *, now: dt.datetime
) -> dict[str, tuple[Any, Any]]:
    """Set attributes of the subscriber at `email` ({key: JSON value}; None removes the
    key; the key "name" sets their name, as the CSV import does, and "timezone" their
    IANA zone): {key: (old, new)} for what changed."""
    subscriber = find_subscriber(s, email)
    for key in values:
        _check_key(key)
    attributes = dict(subscriber.attributes or {})
    changed: dict[str, tuple[Any, Any]] = {}
    for key, value in values.items():
        if key == "name":
            new_name = clean_name("" if value is None else str(value))
            if new_name != subscriber.name:
                changed[key] = (subscriber.name, new_name)
                subscriber.name = new_name
            continue
        if key == "timezone":  # where a local-time list delivers at its hour; "" = list's
            zone = check_timezone(str(value)) if value else ""
            if zone != subscriber.timezone:
                changed[key] = (subscriber.timezone, zone)
                subscriber.timezone = zone
            continue
        old = attributes.pop(key, None)
        if value is not None:
            attributes[key] = value
        # As JSON, because in Python 1 == True and 1 == 1.0.
        if json.dumps(old) != json.dumps(value):
            changed[key] = (old, value)
    if changed:
        # A new dict: the JSON column does not notice changes made in place.
        subscriber.attributes, subscriber.updated_at = attributes, now
        s.flush()
    return changed


def parse_assignments(items: Iterable[str]) -> dict[str, Any]:
    """`key=value` words as {key: value}: JSON values where they parse (42, true,
    "quoted", [1, 2]), text otherwise, None for an empty value (remove the key)."""
    values: dict[str, Any] = {}
    for item in items:
        key, eq, raw = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise InvalidInput(f"{item!r} is not key=value; {ASSIGNMENT_HELP}")
        _check_key(key)
        values[key] = _json_or_text(raw) if raw else None
    if not values:
        raise InvalidInput(f"nothing to set; {ASSIGNMENT_HELP}")
    return values


def _json_or_text(raw: str) -> Any:
    try:
        # NaN and Infinity are Python's extensions, not JSON: PostgreSQL refuses them.
        return json.loads(raw, parse_constant=_refuse)
    except ValueError:
        return raw


def _refuse(name: str) -> Any:
    raise ValueError(name)


def _check_key(key: str) -> None:
    if key in ("email", "tags"):
        raise InvalidInput(
            f"{key!r} is not an attribute: " + (
                "an address cannot be changed; add the new one and remove the old one"
                if key == "email" else "use `digest subscribers tag EMAIL TAG...`"
            )
        )
    if len(key) > KEY_MAX or not key.isprintable():
        raise InvalidInput(
            f"attribute key {key[:40]!r} is not usable: at most {KEY_MAX} printable characters"
        )


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _subscriber_data(sub: Subscriber) -> dict[str, Any]:
    return {
        "id": sub.id, "email": sub.email, "name": sub.name, "timezone": sub.timezone,
        "attributes": sub.attributes or {}, "tags": sub.tags or [],
        "created_at": _iso(sub.created_at), "updated_at": _iso(sub.updated_at),
    }


def _membership_data(m: Membership) -> dict[str, Any]:
    return {
        "list": m.mailing_list.name, "list_title": m.mailing_list.title, "status": m.status,
        "origin": m.origin, "created_at": _iso(m.created_at), "created_ip": m.created_ip,
        "confirmed_at": _iso(m.confirmed_at), "confirmed_ip": m.confirmed_ip,
        "unsubscribed_at": _iso(m.unsubscribed_at),
        "unsubscribe_reason": m.unsubscribe_reason,
    }


def _suppression_data(row: Suppression) -> dict[str, Any]:
    return {
        "scope": "domain" if row.domain else "address", "domain": row.domain or None,
        "reason": row.reason, "detail": row.detail, "since": _iso(row.created_at),
    }
