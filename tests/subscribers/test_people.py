from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.errors import InvalidInput, NotFound
from digest.models import Delivery, DeliveryStatus, Edition
from digest.privacy import forget, person_data
from subscribers.addresses import email_hash
from subscribers.importing import import_csv
from subscribers.lists import create_list
from subscribers.members import add_member, confirm, is_suppressed, remove_member, verify_owner
from subscribers.models import MailingList, Membership, Subscriber, Suppression
from subscribers.people import find_subscriber, parse_assignments, set_attributes, tag_subscriber
from subscribers.suppress import block_domain, suppress, unsuppress
from subscribers.tokens import Tokens

LATER = dt.timedelta(days=1)


def _ann(db: Session, mlist: MailingList, now: dt.datetime) -> Subscriber:
    """Ann on two lists, with a consent record, tags, attributes and three deliveries."""
    other = create_list(db, "another", title="Another", from_addr="o@example.org")
    member, _ = add_member(db, mlist, "Ann@Example.org", name="Ann", origin="form",
                           ip="192.0.2.1", now=now)
    assert member
    confirm(db, member, now=now + LATER, ip="192.0.2.2")
    add_member(db, other, "ann@example.org", confirmed=True, origin="admin", now=now)
    remove_member(db, other, "ann@example.org", now=now + LATER, reason="Ann phoned")
    sub = member.subscriber
    sub.tags, sub.attributes = ["vip"], {"city": "Berlin", "age": 42}
    sub.updated_at = now + LATER  # (the same time would count as no change)
    edition = Edition(list_id=mlist.id, number=1, since=now, cutoff=now)
    db.add(edition)
    db.flush()
    delivered, failed = DeliveryStatus.DELIVERED, DeliveryStatus.FAILED
    for number, status in enumerate((delivered, delivered, failed)):
        ed = edition if number == 0 else Edition(list_id=mlist.id, number=number + 1,
                                                 since=now, cutoff=now)
        db.add(ed)
        db.flush()
        db.add(Delivery(edition_id=ed.id, subscriber_id=sub.id, status=status,
                        next_attempt_at=now,
                        last_error="550 <ann@example.org>: no" if status == failed else ""))
    db.commit()
    return sub


def test_person_data_holds_everything(db: Session, mlist: MailingList, now: dt.datetime) -> None:
    sub = _ann(db, mlist, now)
    data = person_data(db, " ANN@example.org")
    assert json.loads(json.dumps(data)) == data  # JSON as it is
    assert data["email"] == "ann@example.org"
    assert data["subscriber"] == {
        "id": sub.id, "email": "ann@example.org", "name": "Ann", "timezone": "",
        "attributes": {"city": "Berlin", "age": 42}, "tags": ["vip"],
        "created_at": "2026-03-01T07:00:00+00:00", "updated_at": "2026-03-02T07:00:00+00:00",
    }
    assert data["memberships"] == [
        {"list": "another", "list_title": "Another", "status": "unsubscribed",
         "origin": "admin", "created_at": "2026-03-01T07:00:00+00:00", "created_ip": "",
         "confirmed_at": "2026-03-01T07:00:00+00:00", "confirmed_ip": "",
         "unsubscribed_at": "2026-03-02T07:00:00+00:00", "unsubscribe_reason": "Ann phoned"},
        {"list": "news", "list_title": "news", "status": "confirmed", "origin": "form",
         "created_at": "2026-03-01T07:00:00+00:00", "created_ip": "192.0.2.1",
         "confirmed_at": "2026-03-02T07:00:00+00:00", "confirmed_ip": "192.0.2.2",
         "unsubscribed_at": None, "unsubscribe_reason": ""},
    ]
    assert data["suppression"] is None
    assert data["deliveries"] == {"total": 3, "by_status": {"failed": 1, "sent": 2}}

    suppress(db, "ann@example.org", "hard_bounce", "550 no such user", now=now)
    assert person_data(db, "ann@example.org")["suppression"] == {
        "scope": "address", "domain": None, "reason": "hard_bounce",
        "detail": "550 no such user", "since": "2026-03-01T07:00:00+00:00"}


def test_person_data_of_suppressed_or_unknown_addresses(db: Session, now: dt.datetime) -> None:
    block_domain(db, "spam.example", "bots", now=now)
    assert person_data(db, "x@spam.example") == {
        "email": "x@spam.example", "subscriber": None, "memberships": [],
        "suppression": {"scope": "domain", "domain": "spam.example", "reason": "domain",
                        "detail": "bots", "since": "2026-03-01T07:00:00+00:00"},
        "deliveries": {"total": 0, "by_status": {}},
    }
    with pytest.raises(NotFound, match=r"nothing is stored about 'x@example\.org'"):
        person_data(db, "X@example.org")
    with pytest.raises(InvalidInput, match="not a valid email address"):
        person_data(db, "x@")
    with pytest.raises(NotFound, match=r"no subscriber has the address 'x@example\.org'; add"):
        find_subscriber(db, "x@example.org")


def test_forget_erases_and_keeps_the_address_suppressed(
    db: Session, mlist: MailingList, now: dt.datetime, tmp_path: Path
) -> None:
    sub = _ann(db, mlist, now)
    tokens = Tokens("k" * 32)
    token = tokens.make("unsubscribe", sub.id, mlist.id, sub.email)
    report = forget(db, "Ann@example.org", now=now + 2 * LATER, imports_dir=None)
    db.commit()
    db.expire_all()

    assert (report.placeholder, report.memberships, report.deliveries) == (
        f"forgotten-{sub.id}@invalid", 2, 3)
    assert (report.suppression.reason, report.suppression.created_at) == (
        "forgotten", now + 2 * LATER)
    row = db.get_one(Subscriber, sub.id)
    assert (row.email, row.domain, row.name, row.attributes, row.tags) == (
        f"forgotten-{sub.id}@invalid", "invalid", "", {}, [])
    assert row.email_hash == email_hash(row.email)
    memberships = db.scalars(select(Membership).order_by(Membership.id)).all()
    assert [(m.status, m.unsubscribe_reason, m.created_ip, m.confirmed_ip)
            for m in memberships] == [("unsubscribed", "forgotten", "", "")] * 2
    assert memberships[0].unsubscribed_at == now + 2 * LATER
    assert memberships[1].unsubscribed_at == now + LATER  # the first time stays
    deliveries = db.scalars(select(Delivery)).all()
    assert len(deliveries) == 3 and {d.last_error for d in deliveries} == {""}
    # Nothing readable about Ann is left; the address is suppressed as a hash only.
    assert db.scalar(select(Subscriber).where(Subscriber.email == "ann@example.org")) is None
    assert person_data(db, "ann@example.org")["suppression"]["reason"] == "forgotten"
    with pytest.raises(InvalidInput, match="this link no longer works"):
        verify_owner(db, tokens.read(token, "unsubscribe"))

    # Adding or importing the address again reports it suppressed and subscribes nobody.
    assert add_member(db, mlist, "ann@example.org", confirmed=True, now=now) == (
        None, "suppressed")
    csv = tmp_path / "again.csv"
    csv.write_text("email,name\nANN@example.org,Ann\nbob@example.org,Bob\n", encoding="utf-8")
    imported = import_csv(db, mlist, csv, confirmed=True, now=now)
    assert (imported.added, imported.suppressed) == (1, 1)
    assert db.scalar(select(Subscriber).where(Subscriber.email == "ann@example.org")) is None

    # Again: harmless, nothing else to erase.
    again = forget(db, "ann@example.org", now=now + 3 * LATER, imports_dir=None)
    assert (again.placeholder, again.memberships, again.deliveries) == (None, 0, 0)
    assert again.suppression.created_at == now + 2 * LATER


def test_forget_keeps_an_earlier_reason_without_the_address(
    db: Session, mlist: MailingList, now: dt.datetime
) -> None:
    add_member(db, mlist, "bob@example.org", now=now)
    suppress(db, "bob@example.org", "hard_bounce", "550 5.1.1 <BOB@example.org> unknown",
             now=now)
    report = forget(db, "bob@example.org", now=now + LATER, imports_dir=None)
    assert (report.suppression.reason, report.suppression.detail) == (
        "hard_bounce", "550 5.1.1 <[forgotten]> unknown")
    assert db.scalars(select(Suppression)).all() == [report.suppression]


def test_forget_unknown_and_come_back(db: Session, mlist: MailingList, now: dt.datetime) -> None:
    with pytest.raises(NotFound, match=r"nothing is stored about 'x@example\.org'"):
        forget(db, "x@example.org", now=now, imports_dir=None)
    assert not is_suppressed(db, "x@example.org")
    # If the person asks to come back, the admin lifts the suppression: a new subscriber,
    # not the emptied row.
    member, _ = add_member(db, mlist, "carol@example.org", now=now)
    assert member
    old_id = member.subscriber_id
    forget(db, "carol@example.org", now=now, imports_dir=None)
    assert unsuppress(db, "carol@example.org")
    again, outcome = add_member(db, mlist, "carol@example.org", now=now + LATER)
    assert outcome == "added" and again and again.subscriber_id != old_id


def test_tags(db: Session, mlist: MailingList, now: dt.datetime) -> None:
    add_member(db, mlist, "ann@example.org", now=now)
    assert tag_subscriber(db, "Ann@example.org", ["VIP", "press", "vip"], now=now + LATER) == [
        "press", "vip"]
    sub = find_subscriber(db, "ann@example.org")
    assert sub.updated_at == now + LATER
    assert tag_subscriber(db, "ann@example.org", ["press"], now=now + 2 * LATER) == [
        "press", "vip"]
    assert sub.updated_at == now + LATER  # nothing changed
    assert tag_subscriber(db, "ann@example.org", ["press", "never"], remove=True, now=now) == [
        "vip"]
    db.commit()
    db.expire_all()
    assert find_subscriber(db, "ann@example.org").tags == ["vip"]
    with pytest.raises(InvalidInput, match="tag 'a b' is not usable"):
        tag_subscriber(db, "ann@example.org", ["ok", "a b"], now=now)
    assert find_subscriber(db, "ann@example.org").tags == ["vip"]
    with pytest.raises(NotFound, match=r"no subscriber has the address 'bob@example\.org'"):
        tag_subscriber(db, "bob@example.org", ["vip"], now=now)


def test_attributes(db: Session, mlist: MailingList, now: dt.datetime) -> None:
    add_member(db, mlist, "ann@example.org", name="Ann", now=now)
    values = parse_assignments(["city=Berlin", "age=42", "vip=true", 'zip="01234"',
                                "langs=[\"de\", \"en\"]", "name= Ann  Lee "])
    assert set_attributes(db, "ann@example.org", values, now=now + LATER) == {
        "city": (None, "Berlin"), "age": (None, 42), "vip": (None, True),
        "zip": (None, "01234"), "langs": (None, ["de", "en"]), "name": ("Ann", "Ann Lee"),
    }
    db.commit()
    db.expire_all()
    sub = find_subscriber(db, "ann@example.org")
    assert sub.attributes == {"city": "Berlin", "age": 42, "vip": True, "zip": "01234",
                              "langs": ["de", "en"]}
    assert (sub.name, sub.updated_at) == ("Ann Lee", now + LATER)
    # 1 is not true, and an empty value removes the key.
    assert set_attributes(db, "ann@example.org", parse_assignments(
        ["vip=1", "city=", "age=42", "gone="]), now=now) == {
        "vip": (True, 1), "city": ("Berlin", None)}
    db.commit()
    db.expire_all()
    assert find_subscriber(db, "ann@example.org").attributes == {
        "age": 42, "vip": 1, "zip": "01234", "langs": ["de", "en"]}


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (["a=1.5", "b=null", "c=x=y", "d=NaN", "e= spaced "], {
            "a": 1.5, "b": None, "c": "x=y", "d": "NaN", "e": " spaced "}),
        (["Company Name=ACME, Inc."], {"Company Name": "ACME, Inc."}),
    ],
)
def test_parse_assignments(items: list[str], expected: dict[str, object]) -> None:
    assert parse_assignments(items) == expected


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["city"], "'city' is not key=value; give key=value, e.g. city=Berlin"),
        (["=Berlin"], "'=Berlin' is not key=value"),
        ([], "nothing to set"),
        (["email=a@example.org"], "'email' is not an attribute: an address cannot be changed"),
        (["tags=[1]"], "use `digest subscribers tag"),
        (["k" * 101 + "=1"], "at most 100 printable characters"),
        (["a\tb=1"], "not usable"),
    ],
)
def test_parse_assignments_refuses(items: list[str], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_assignments(items)


def test_timezone_is_set_checked_and_cleared(db, now) -> None:  # type: ignore[no-untyped-def]
    from digest.errors import InvalidInput
    from subscribers.lists import create_list
    from subscribers.members import add_member
    from subscribers.people import find_subscriber, set_attributes

    mlist = create_list(db, "tz", from_addr="t@news.example.org")
    add_member(db, mlist, "tz@example.org", confirmed=True, now=now)
    assert set_attributes(db, "tz@example.org", {"timezone": "Asia/Seoul"}, now=now) == {
        "timezone": ("", "Asia/Seoul")}
    assert find_subscriber(db, "tz@example.org").timezone == "Asia/Seoul"
    assert find_subscriber(db, "tz@example.org").attributes == {}
    with pytest.raises(InvalidInput, match="unknown"):
        set_attributes(db, "tz@example.org", {"timezone": "Europe"}, now=now)
    set_attributes(db, "tz@example.org", {"timezone": None}, now=now)
    assert find_subscriber(db, "tz@example.org").timezone == ""
