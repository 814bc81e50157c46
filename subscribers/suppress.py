"""Suppression: addresses and domains that are never mailed again, whatever adds them.

Addresses are kept only as their hash, so the record outlives `forget`. Checks come in
two sizes: one address (`is_suppressed_hash`) and a chunk of an import (`suppressed_among`).
Sending does not call these: `members.recipients_query` joins the table directly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from digest.errors import InvalidInput
from subscribers.addresses import domain_hash, domain_of, email_hash, normalize, normalize_domain
from subscribers.models import Suppression

ADDRESS_REASONS = ("hard_bounce", "complaint", "unsubscribe_all", "admin")
DOMAIN = "domain"


def suppress(s: Session, email: str, reason: str, detail: str = "", *, now: dt.datetime) -> None:
    """Never mail `email` again. Idempotent: the first reason recorded is kept."""
    if reason not in ADDRESS_REASONS:
        raise InvalidInput(
            f"suppression reason {reason!r} is not one of {', '.join(ADDRESS_REASONS)}"
        )
    _insert(s, email_hash(normalize(email)), "", reason, detail, now)


def block_domain(s: Session, domain: str, detail: str = "", *, now: dt.datetime) -> None:
    """Never mail any address at `domain` (exactly that domain, not its subdomains)."""
    name = normalize_domain(domain)
    _insert(s, domain_hash(name), name, DOMAIN, detail, now)


def unsuppress(s: Session, email: str) -> bool:
    """Lift an address's suppression (an admin's decision); whether there was one."""
    return _delete(s, email_hash(normalize(email)))


def unblock_domain(s: Session, domain: str) -> bool:
    """Lift a domain block; whether there was one."""
    return _delete(s, domain_hash(normalize_domain(domain)))


def blocked_domains(s: Session) -> list[Suppression]:
    """The domain blocks, by domain."""
    stmt = select(Suppression).where(Suppression.reason == DOMAIN).order_by(Suppression.domain)
    return list(s.scalars(stmt))


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
) -> None:
    exists = s.execute(select(Suppression.id).where(Suppression.email_hash == hashed)).first()
    if exists is None:
        s.add(Suppression(email_hash=hashed, domain=domain, reason=reason, detail=detail,
                          created_at=now))
        s.flush()


def _delete(s: Session, hashed: str) -> bool:
    result = s.execute(delete(Suppression).where(Suppression.email_hash == hashed))
    return bool(result.rowcount)  # type: ignore[attr-defined]
