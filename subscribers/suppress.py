"""Suppression: addresses and domains that are never mailed again, whatever adds them.

Addresses are kept only as their hash, so the record outlives `forget`. Checks come in
two sizes: one address (`is_suppressed_hash`) and a chunk of an import (`suppressed_among`).
Sending does not call these: `members.recipients_query` joins the table directly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from digest.errors import InvalidInput
from subscribers.addresses import domain_hash, domain_of, email_hash, normalize, normalize_domain
from subscribers.models import Subscriber, Suppression

# "forgotten": the person asked to be erased; only this hash is left of their address.
ADDRESS_REASONS = ("hard_bounce", "complaint", "unsubscribe_all", "admin", "forgotten")
DOMAIN = "domain"
REASONS = (*ADDRESS_REASONS, DOMAIN)


def suppress(
    s: Session, email: str, reason: str, detail: str = "", *, now: dt.datetime
) -> tuple[Suppression, bool]:
    """Never mail `email` again: the address's row, and whether it is new. Idempotent:
    the first reason recorded is kept."""
    if reason not in ADDRESS_REASONS:
        raise InvalidInput(
            f"suppression reason {reason!r} is not one of {', '.join(ADDRESS_REASONS)}"
        )
    return _insert(s, email_hash(normalize(email)), "", reason, detail, now)


def block_domain(
    s: Session, domain: str, detail: str = "", *, now: dt.datetime
) -> tuple[Suppression, bool]:
    """Never mail any address at `domain` (exactly that domain, not its subdomains):
    the domain's row, and whether it is new."""
    name = normalize_domain(domain)
    return _insert(s, domain_hash(name), name, DOMAIN, detail, now)


def unsuppress(s: Session, email: str) -> bool:
    """Lift an address's suppression (an admin's decision); whether there was one.
    A block of the address's domain stays."""
    return _delete(s, email_hash(normalize(email)))


def unblock_domain(s: Session, domain: str) -> bool:
    """Lift a domain block; whether there was one."""
    return _delete(s, domain_hash(normalize_domain(domain)))


def blocked_domains(s: Session) -> list[Suppression]:
    """The domain blocks, by domain."""
    stmt = select(Suppression).where(Suppression.reason == DOMAIN).order_by(Suppression.domain)
    return list(s.scalars(stmt))


def suppression_of(s: Session, normalized: str) -> Suppression | None:
    """Why a normalized address is suppressed: its own row, else its domain's, else None."""
    own, at_domain = email_hash(normalized), domain_hash(domain_of(normalized))
    stmt = select(Suppression).where(Suppression.email_hash.in_((own, at_domain)))
    rows = {row.email_hash: row for row in s.scalars(stmt)}
    return rows.get(own) or rows.get(at_domain)


def suppressions(
    s: Session, *, reason: str | None = None, limit: int | None = None
) -> list[tuple[Suppression, str | None]]:
    """Suppression rows, newest first, each with the subscriber's address when one is
    still stored under that hash (None: only the hash is known, or a domain row)."""
    if reason is not None and reason not in REASONS:
        raise InvalidInput(f"suppression reason {reason!r} is not one of {', '.join(REASONS)}")
    stmt = (
        select(Suppression, Subscriber.email)
        .outerjoin(Subscriber, Subscriber.email_hash == Suppression.email_hash)
        .order_by(Suppression.created_at.desc(), Suppression.id.desc())
        .limit(limit)
    )
    if reason is not None:
        stmt = stmt.where(Suppression.reason == reason)
    return [(row, email) for row, email in s.execute(stmt)]


def is_suppressed_hash(s: Session, hashed: str, domain: str) -> bool:
    """Whether the address with hash `hashed` at `domain` is suppressed or blocked."""
    stmt = select(Suppression.id).where(
        Suppression.email_hash.in_((hashed, domain_hash(domain)))
    )
    return s.execute(stmt.limit(1)).first() is not None


def is_suppressed_address(s: Session, normalized: str) -> bool:
    """Whether a normalized address is suppressed or its domain blocked."""
    return is_suppressed_hash(s, email_hash(normalized), domain_of(normalized))


def suppressed_among(s: Session, hashes: Collection[str], domains: Collection[str]) -> set[str]:
    """Which of `hashes` and `domains` are suppressed: one query for a chunk of an import."""
    keys = set(hashes) | {domain_hash(d) for d in domains}
    if not keys:
        return set()
    rows = s.execute(
        select(Suppression.email_hash, Suppression.domain).where(Suppression.email_hash.in_(keys))
    )
    return {domain or hashed for hashed, domain in rows}


def _insert(
    s: Session, hashed: str, domain: str, reason: str, detail: str, now: dt.datetime
) -> tuple[Suppression, bool]:
    row = s.scalar(select(Suppression).where(Suppression.email_hash == hashed))
    if row is not None:
        return row, False
    row = Suppression(email_hash=hashed, domain=domain, reason=reason, detail=detail,
                      created_at=now)
    s.add(row)
    s.flush()
    return row, True


def _delete(s: Session, hashed: str) -> bool:
    result = s.execute(delete(Suppression).where(Suppression.email_hash == hashed))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def suppression_counts(s: Session) -> dict[str, int]:
    """Suppression rows per reason, only reasons that have any."""
    stmt = select(Suppression.reason, func.count()).group_by(Suppression.reason)
    return {reason: n for reason, n in s.execute(stmt.order_by(Suppression.reason))}
