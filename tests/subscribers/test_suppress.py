from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.errors import InvalidInput
from subscribers.addresses import email_hash
from subscribers.lists import create_list
from subscribers.members import add_member
from subscribers.models import Suppression
from subscribers.suppress import (
    block_domain,
    blocked_domains,
    suppress,
    suppressed_among,
    suppression_counts,
    suppression_of,
    suppressions,
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


def test_suppress_returns_the_row_and_whether_it_is_new(db: Session, now: dt.datetime) -> None:
    row, new = suppress(db, "a@example.org", "admin", "asked by phone", now=now)
    assert new and (row.reason, row.detail, row.created_at) == ("admin", "asked by phone", now)
    assert suppress(db, "A@example.org", "complaint", now=now) == (row, False)
    domain, new = block_domain(db, "spam.example", now=now)
    assert new and domain.domain == "spam.example"
    assert block_domain(db, "SPAM.example", now=now) == (domain, False)


def test_suppression_of_prefers_the_address(db: Session, now: dt.datetime) -> None:
    assert suppression_of(db, "a@example.org") is None
    domain, _ = block_domain(db, "example.org", now=now)
    assert suppression_of(db, "a@example.org") is domain
    own, _ = suppress(db, "a@example.org", "hard_bounce", now=now)
    assert suppression_of(db, "a@example.org") is own
    assert suppression_of(db, "b@example.org") is domain
    assert suppression_of(db, "a@example.net") is None


def test_listing_and_counts(db: Session, now: dt.datetime) -> None:
    add_member(db, create_list(db, "news", from_addr="n@example.org"), "kept@example.org",
               now=now)
    suppress(db, "kept@example.org", "complaint", now=now)
    suppress(db, "gone@example.org", "hard_bounce", now=now + dt.timedelta(hours=1))
    block_domain(db, "spam.example", now=now + dt.timedelta(hours=2))
    rows = suppressions(db)
    assert [(r.reason, r.domain, email) for r, email in rows] == [
        ("domain", "spam.example", None),
        ("hard_bounce", "", None),  # only the hash is known
        ("complaint", "", "kept@example.org"),
    ]
    assert [r.reason for r, _ in suppressions(db, reason="complaint")] == ["complaint"]
    assert len(suppressions(db, limit=2)) == 2
    assert suppression_counts(db) == {"complaint": 1, "domain": 1, "hard_bounce": 1}
    with pytest.raises(InvalidInput, match="reason 'spam' is not one of hard_bounce"):
        suppressions(db, reason="spam")
