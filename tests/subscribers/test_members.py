from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from digest.errors import InvalidInput, NotFound
from subscribers.lists import create_list
from subscribers.members import (
    add_member,
    confirm,
    get_member,
    is_suppressed,
    recipients_query,
    remove_member,
    unsubscribe,
)
from subscribers.models import MailingList, Subscriber
from subscribers.suppress import block_domain, suppress

LATER = dt.timedelta(days=1)


def test_add_new_pending_with_consent_record(
    db: Session, mlist: MailingList, now: dt.datetime
) -> None:
    member, outcome = add_member(
        db, mlist, " Ann@Example.org", name=" Ann  B ", origin="form", ip="192.0.2.1", now=now
    )
    assert outcome == "added" and member
    assert (member.status, member.origin, member.created_ip) == ("pending", "form", "192.0.2.1")
    assert member.created_at == now and member.confirmed_at is None
    sub = member.subscriber
    assert (sub.email, sub.name, sub.domain) == ("ann@example.org", "Ann B", "example.org")
    assert len(sub.email_hash) == 64


def test_add_again_unchanged_updated(db: Session, mlist: MailingList, now: dt.datetime) -> None:
    first, _ = add_member(db, mlist, "ann@example.org", name="Ann", now=now)
    again, outcome = add_member(db, mlist, "ANN@example.org", now=now + LATER)
    assert (again, outcome) == (first, "unchanged")
    assert again and again.subscriber.name == "Ann"  # an empty name keeps the stored one
    _, outcome = add_member(db, mlist, "ann@example.org", name="Ann B", now=now + LATER)
    assert outcome == "updated" and first and first.subscriber.name == "Ann B"
    _, outcome = add_member(db, mlist, "ann@example.org", confirmed=True, now=now + LATER)
    assert outcome == "updated" and first.status == "confirmed"
    assert first.confirmed_at == now + LATER
    # Confirmed is never set back to pending.
    _, outcome = add_member(db, mlist, "ann@example.org", now=now + 2 * LATER)
    assert outcome == "unchanged" and first.status == "confirmed"


def test_one_subscriber_on_two_lists(db: Session, mlist: MailingList, now: dt.datetime) -> None:
    other = create_list(db, "other", from_addr="o@example.org")
    a, _ = add_member(db, mlist, "ann@example.org", now=now)
    b, outcome = add_member(db, other, "Ann@Example.org", now=now)
    assert outcome == "added" and a and b and a.subscriber_id == b.subscriber_id
    assert db.scalar(select(text("count(*)")).select_from(Subscriber)) == 1


def test_suppressed_are_not_added(db: Session, mlist: MailingList, now: dt.datetime) -> None:
    suppress(db, "bounced@example.org", "hard_bounce", now=now)
    assert add_member(db, mlist, "Bounced@example.org", confirmed=True, now=now) == (
        None,
        "suppressed",
    )
    assert db.scalar(select(Subscriber).where(Subscriber.email == "bounced@example.org")) is None
    block_domain(db, "spam.example", now=now)
    assert add_member(db, mlist, "x@SPAM.example", now=now) == (None, "suppressed")
    # An existing member who later bounced is returned as is, not touched.
    member, _ = add_member(db, mlist, "ok@example.org", now=now)
    suppress(db, "ok@example.org", "complaint", now=now)
    assert add_member(db, mlist, "ok@example.org", confirmed=True, now=now) == (
        member,
        "suppressed",
    )
    assert member and member.status == "pending"


def test_resubscribe_rules(db: Session, mlist: MailingList, now: dt.datetime) -> None:
    member, _ = add_member(db, mlist, "ann@example.org", confirmed=True, now=now)
    assert member
    remove_member(db, mlist, "ann@example.org", now=now + LATER)
    # Re-added without confirmed: a new consent record, pending until they confirm.
    _, outcome = add_member(
        db, mlist, "ann@example.org", origin="form", ip="192.0.2.9", now=now + 2 * LATER
    )
    assert outcome == "updated"
    assert (member.status, member.origin, member.created_ip) == ("pending", "form", "192.0.2.9")
    assert member.created_at == now + 2 * LATER and member.confirmed_at is None
    assert member.unsubscribed_at is None
    remove_member(db, mlist, "ann@example.org", now=now + 3 * LATER)
    # Only an explicit confirmed=True confirms them again.
    _, outcome = add_member(
        db, mlist, "ann@example.org", confirmed=True, origin="admin", now=now + 4 * LATER
    )
    assert outcome == "updated" and member.status == "confirmed"
    assert member.confirmed_at == now + 4 * LATER
    # A bulk import never re-subscribes.
    remove_member(db, mlist, "ann@example.org", now=now + 5 * LATER)
    _, outcome = add_member(
        db, mlist, "ann@example.org", confirmed=True, origin="import", now=now + 6 * LATER
    )
    assert outcome == "unchanged" and member.status == "unsubscribed"


def test_remove(db: Session, mlist: MailingList, now: dt.datetime) -> None:
    add_member(db, mlist, "ann@example.org", confirmed=True, now=now)
    member = remove_member(db, mlist, "ANN@example.org", now=now + LATER, reason="asked by phone")
    assert (member.status, member.unsubscribed_at) == ("unsubscribed", now + LATER)
    assert member.unsubscribe_reason == "asked by phone"
    assert member.confirmed_at == now  # the consent record stays
    remove_member(db, mlist, "ann@example.org", now=now + 2 * LATER)
    assert member.unsubscribed_at == now + LATER  # idempotent: first time kept
    with pytest.raises(NotFound, match=r"'bob@example\.org' is not on list 'news'"):
        remove_member(db, mlist, "bob@example.org", now=now)
    with pytest.raises(InvalidInput, match="not a valid email address"):
        remove_member(db, mlist, "bob", now=now)


def test_confirm_and_unsubscribe_are_idempotent(
    db: Session, mlist: MailingList, now: dt.datetime
) -> None:
    member, _ = add_member(db, mlist, "ann@example.org", now=now)
    assert member
    assert confirm(db, member, now=now + LATER, ip="192.0.2.3") is True
    assert (member.status, member.confirmed_at, member.confirmed_ip) == (
        "confirmed",
        now + LATER,
        "192.0.2.3",
    )
    assert confirm(db, member, now=now + 2 * LATER) is False
    assert member.confirmed_at == now + LATER
    assert unsubscribe(db, member, now=now + 3 * LATER, reason="one-click") is True
    assert unsubscribe(db, member, now=now + 4 * LATER, reason="again") is False
    assert member.unsubscribe_reason == "one-click"
    # An old confirm link must not undo the unsubscribe.
    with pytest.raises(InvalidInput, match="subscribe again"):
        confirm(db, member, now=now + 5 * LATER)


def test_get_member(db: Session, mlist: MailingList, now: dt.datetime) -> None:
    member, _ = add_member(db, mlist, "ann@example.org", now=now)
    assert get_member(db, mlist, "Ann@Example.org") is member


def test_is_suppressed(db: Session, now: dt.datetime) -> None:
    suppress(db, "gone@example.org", "unsubscribe_all", now=now)
    block_domain(db, "blocked.example", now=now)
    assert is_suppressed(db, "GONE@example.org")
    assert is_suppressed(db, "anyone@blocked.example")
    assert not is_suppressed(db, "anyone@sub.blocked.example")  # exact domain only
    assert not is_suppressed(db, "fine@example.org")


def test_recipients(db: Session, mlist: MailingList, now: dt.datetime) -> None:
    other = create_list(db, "other", from_addr="o@example.org")
    for email in ("a@example.org", "b@example.org", "bounced@example.org", "x@blocked.example"):
        add_member(db, mlist, email, confirmed=True, now=now)
    add_member(db, mlist, "pending@example.org", now=now)
    add_member(db, mlist, "left@example.org", confirmed=True, now=now)
    remove_member(db, mlist, "left@example.org", now=now)
    add_member(db, other, "elsewhere@example.org", confirmed=True, now=now)
    suppress(db, "bounced@example.org", "hard_bounce", now=now)
    block_domain(db, "Blocked.Example", now=now)

    ids = db.scalars(recipients_query(mlist.id)).all()
    emails = {db.get_one(Subscriber, i).email for i in ids}
    assert emails == {"a@example.org", "b@example.org"}


def test_recipients_query_uses_indexes(db: Session, mlist: MailingList) -> None:
    sql = recipients_query(mlist.id).compile(db.get_bind(), compile_kwargs={"literal_binds": True})
    plan = [row[-1] for row in db.execute(text(f"EXPLAIN QUERY PLAN {sql}"))]
    # Nothing is read in full except through an index.
    assert not [step for step in plan if step.startswith("SCAN") and "INDEX" not in step], plan
    assert any("ix_memberships_list_status" in step for step in plan), plan
    assert any(s.startswith("SEARCH suppressions") and "(email_hash=?)" in s for s in plan), plan
    assert any("ix_suppressions_domain (domain=?)" in step for step in plan), plan
