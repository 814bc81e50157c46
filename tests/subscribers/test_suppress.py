from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.errors import InvalidInput
from subscribers.addresses import email_hash
from subscribers.models import Suppression
from subscribers.suppress import (
    block_domain,
    blocked_domains,
    suppress,
    suppressed_among,
    unblock_domain,
    unsuppress,
)


def test_suppress_is_idempotent_and_keeps_only_a_hash(db: Session, now: dt.datetime) -> None:
    suppress(db, "Gone@Example.org", "hard_bounce", "550 no such user", now=now)
    suppress(db, "gone@example.org", "complaint", now=now + dt.timedelta(days=1))
    rows = db.scalars(select(Suppression)).all()
    assert len(rows) == 1
    row = rows[0]
    assert (row.email_hash, row.reason, row.detail) == (
        email_hash("gone@example.org"),
        "hard_bounce",
        "550 no such user",
    )
    assert (row.domain, row.created_at) == ("", now)


def test_reasons_are_checked(db: Session, now: dt.datetime) -> None:
    with pytest.raises(InvalidInput, match="reason 'bored' is not one of hard_bounce"):
        suppress(db, "a@example.org", "bored", now=now)
    with pytest.raises(InvalidInput, match="not a valid email"):
        suppress(db, "nope", "admin", now=now)


def test_domains(db: Session, now: dt.datetime) -> None:
    block_domain(db, "Spam.Example", "seen in a bot wave", now=now)
    block_domain(db, "@spam.example", now=now)
    block_domain(db, "xn--bcher-kva.example", now=now)
    assert [(r.domain, r.reason) for r in blocked_domains(db)] == [
        ("bücher.example", "domain"),
        ("spam.example", "domain"),
    ]
    assert blocked_domains(db)[1].email_hash == email_hash("@spam.example")
    assert unblock_domain(db, "SPAM.example") is True
    assert unblock_domain(db, "spam.example") is False
    with pytest.raises(InvalidInput, match="not a valid domain"):
        block_domain(db, "not a domain", now=now)


def test_unsuppress(db: Session, now: dt.datetime) -> None:
    suppress(db, "a@example.org", "admin", now=now)
    assert unsuppress(db, "A@example.org") is True
    assert unsuppress(db, "a@example.org") is False


def test_suppressed_among(db: Session, now: dt.datetime) -> None:
    suppress(db, "a@example.org", "admin", now=now)
    block_domain(db, "spam.example", now=now)
    found = suppressed_among(
        db,
        [email_hash("a@example.org"), email_hash("b@example.org")],
        {"example.org", "spam.example"},
    )
    assert found == {email_hash("a@example.org"), "spam.example"}
    assert suppressed_among(db, [], []) == set()
