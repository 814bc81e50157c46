from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from digest.errors import InvalidInput, NotFound
from subscribers.lists import create_list
from subscribers.members import (
    add_member,
    clean_tag,
    confirm,
    get_member,
    is_suppressed,
    list_members,
    member_counts,
    recipients_query,
    remove_member,
    unsubscribe,
    unsubscribe_all,
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
    if db.get_bind().dialect.name == "postgresql":
        # On empty tables PostgreSQL rightly prefers a sequential scan; forbid it to see
        # whether an index can serve every step. (Which index of memberships it picks
        # depends on statistics an empty table does not have.)
        db.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(row[0] for row in db.execute(text(f"EXPLAIN {sql}")))
        assert "Seq Scan" not in plan, plan
        assert "uq_suppressions_email_hash" in plan and "ix_suppressions_domain" in plan, plan
        return
    plan = [row[-1] for row in db.execute(text(f"EXPLAIN QUERY PLAN {sql}"))]
    # Nothing is read in full except through an index.
    assert not [step for step in plan if step.startswith("SCAN") and "INDEX" not in step], plan
    assert any("ix_memberships_list_status" in step for step in plan), plan
    assert any(s.startswith("SEARCH suppressions") and "(email_hash=?)" in s for s in plan), plan
    assert any("ix_suppressions_domain (domain=?)" in step for step in plan), plan


def test_unsubscribe_all(db: Session, mlist: MailingList, now: dt.datetime) -> None:
    other = create_list(db, "other", from_addr="o@example.org")
    add_member(db, mlist, "ann@example.org", confirmed=True, now=now)
    add_member(db, other, "ann@example.org", now=now)
    left = unsubscribe_all(db, "ANN@example.org", now=now + LATER, detail="one-click")
    row = left.suppression
    assert left.changed and left.newly_suppressed
    assert [(m.mailing_list.name, m.status, m.unsubscribe_reason) for m in left.memberships] == [
        ("news", "unsubscribed", "unsubscribe_all"),
        ("other", "unsubscribed", "unsubscribe_all"),
    ]
    assert (row.reason, row.detail, row.created_at) == ("unsubscribe_all", "one-click", now + LATER)
    # Nothing adds the address back, not even an explicit, confirmed add.
    assert add_member(db, mlist, "ann@example.org", confirmed=True, now=now + 2 * LATER)[1] == (
        "suppressed"
    )
    # Again: nothing left to change, the first suppression stays.
    again = unsubscribe_all(db, "ann@example.org", now=now + 3 * LATER)
    assert (again.memberships, again.suppression, again.changed) == ([], row, False)
    # An address on no list is suppressed all the same.
    stranger = unsubscribe_all(db, "stranger@example.org", now=now)
    assert stranger.changed and stranger.suppression.reason == "unsubscribe_all"
    assert is_suppressed(db, "stranger@example.org")
    # One suppressed for another reason keeps it.
    suppress(db, "bounced@example.org", "hard_bounce", now=now)
    assert unsubscribe_all(db, "bounced@example.org", now=now).suppression.reason == (
        "hard_bounce")
    with pytest.raises(InvalidInput, match="not a valid email address"):
        unsubscribe_all(db, "ann at example.org", now=now)


def test_list_members_and_counts_by_status_and_tag(
    db: Session, mlist: MailingList, now: dt.datetime
) -> None:
    other = create_list(db, "other", from_addr="o@example.org")
    emails = ("a@example.org", "b@example.org", "c@example.org", "d@example.org")
    for i, email in enumerate(emails):
        member, _ = add_member(db, mlist, email, name=email[0].upper(), confirmed=i < 3,
                               now=now + i * LATER)
        assert member
        member.subscriber.tags = {0: ["vip", "press"], 1: ["vip"], 2: ["vipx"], 3: []}[i]
    add_member(db, other, "e@example.org", confirmed=True, now=now)
    remove_member(db, mlist, "b@example.org", now=now)
    suppress(db, "c@example.org", "hard_bounce", now=now)
    db.commit()

    rows = list_members(db, mlist)
    assert [(r.email, r.name, r.status, r.tags, r.suppressed) for r in rows] == [
        ("a@example.org", "A", "confirmed", ["vip", "press"], False),
        ("b@example.org", "B", "unsubscribed", ["vip"], False),
        ("c@example.org", "C", "confirmed", ["vipx"], True),
        ("d@example.org", "D", "pending", [], False),
    ]
    assert rows[3].created_at == now + 3 * LATER
    assert [r.email for r in list_members(db, mlist, status="confirmed")] == [
        "a@example.org", "c@example.org"]
    assert [r.email for r in list_members(db, mlist, tag=" VIP ")] == [
        "a@example.org", "b@example.org"]
    assert [r.email for r in list_members(db, mlist, status="confirmed", tag="vip")] == [
        "a@example.org"]
    assert [r.email for r in list_members(db, mlist, tag="press", limit=1)] == ["a@example.org"]
    assert list_members(db, mlist, limit=2)[-1].email == "b@example.org"
    assert list_members(db, other, tag="vip") == []
    assert member_counts(db, mlist) == {"pending": 1, "confirmed": 2, "unsubscribed": 1}
    assert member_counts(db, mlist, tag="vip") == {
        "pending": 0, "confirmed": 1, "unsubscribed": 1}
    assert member_counts(db, other, tag="nobody") == {
        "pending": 0, "confirmed": 0, "unsubscribed": 0}
    with pytest.raises(InvalidInput, match="status 'active' is not one of pending, confirmed"):
        list_members(db, mlist, status="active")
    with pytest.raises(InvalidInput, match="tag 'two words' is not usable"):
        member_counts(db, mlist, tag="two words")


@pytest.mark.parametrize("tag", ["vip", "Fair-2026", "source:web", "한국", "a" * 64])
def test_good_tags(tag: str) -> None:
    assert clean_tag(f" {tag} ") == tag.lower()


@pytest.mark.parametrize("tag", ["", "two words", "a,b", "-x", "a" * 65, '"quoted"'])
def test_bad_tags(tag: str) -> None:
    with pytest.raises(InvalidInput, match="is not usable: use one word"):
        clean_tag(tag)
