from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy.orm import Session

from digest.errors import ConfigError, InvalidInput
from subscribers.lists import create_list
from subscribers.members import add_member, token_membership, verify_owner
from subscribers.models import MailingList
from subscribers.tokens import TokenData, Tokens

EMAIL = "reader@example.org"


class FakeClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_roundtrip() -> None:
    tokens = Tokens("secret")
    token = tokens.make("unsubscribe", 42, 7, EMAIL)
    assert tokens.read(token, "unsubscribe") == TokenData(42, 7, token_tag(EMAIL))
    manage = tokens.make("manage", 42, None, EMAIL)
    assert tokens.read(manage, "manage").list_id is None


def test_confirm_token_names_its_sign_up() -> None:
    tokens = Tokens("secret")
    token = tokens.make("confirm", 42, 7, EMAIL, signup=3)
    assert tokens.read(token, "confirm") == TokenData(42, 7, token_tag(EMAIL), 3)
    # A link mailed before sign-ups were numbered still reads, with no number.
    old = tokens.make("confirm", 42, 7, EMAIL)
    assert tokens.read(old, "confirm").signup is None


def token_tag(email: str) -> str:
    return hashlib.sha256(email.encode()).hexdigest()[:8]


def test_token_is_url_safe_and_short() -> None:
    token = Tokens("secret").make("confirm", 123456, 12, EMAIL)
    assert len(token) < 80
    assert all(c.isalnum() or c in "-_." for c in token)


@pytest.mark.parametrize("where", [0, 10, -3])
def test_tampered_token_is_refused(where: int) -> None:
    tokens = Tokens("secret")
    token = tokens.make("unsubscribe", 42, 7, EMAIL)
    i = where % len(token)
    bad = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]
    with pytest.raises(InvalidInput, match="not valid"):
        tokens.read(bad, "unsubscribe")


def test_other_key_and_garbage_are_refused() -> None:
    token = Tokens("secret").make("unsubscribe", 42, 7, EMAIL)
    with pytest.raises(InvalidInput):
        Tokens("another").read(token, "unsubscribe")
    with pytest.raises(InvalidInput):
        Tokens("secret").read("not-a-token", "unsubscribe")


def test_key_rotation_keeps_old_links_working() -> None:
    old = Tokens("old").make("unsubscribe", 42, 7, EMAIL)
    assert Tokens("new", old_keys=["old"]).read(old, "unsubscribe").subscriber_id == 42


def test_wrong_purpose_is_refused() -> None:
    tokens = Tokens("secret")
    token = tokens.make("confirm", 42, 7, EMAIL)
    with pytest.raises(InvalidInput, match="unsubscribe link is not valid"):
        tokens.read(token, "unsubscribe")
    with pytest.raises(ValueError, match="unknown token purpose"):
        tokens.read(token, "delete-everything")


def test_expired_by_clock() -> None:
    clock = FakeClock(1_700_000_000)
    tokens = Tokens("secret", clock=clock)
    token = tokens.make("confirm", 42, 7, EMAIL)
    clock.t += 3600
    assert tokens.read(token, "confirm", max_age=3600).subscriber_id == 42
    clock.t += 1
    with pytest.raises(InvalidInput, match="this link has expired; ask for a new one"):
        tokens.read(token, "confirm", max_age=3600)
    assert tokens.read(token, "confirm").subscriber_id == 42  # no max_age: no expiry


def test_expired_with_negative_max_age() -> None:
    tokens = Tokens("secret")
    token = tokens.make("confirm", 42, 7, EMAIL)
    with pytest.raises(InvalidInput, match="expired"):
        tokens.read(token, "confirm", max_age=-1)


def test_foreign_payload_shape_is_refused() -> None:
    # Signed with our key and salt, but not a payload `make` would write.
    forged = URLSafeTimedSerializer("secret", salt="digest.unsubscribe").dumps({"id": 1})
    with pytest.raises(InvalidInput, match="older version"):
        Tokens("secret").read(forged, "unsubscribe")


def test_empty_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="DIGEST_SECRET_KEY"):
        Tokens("")


def test_token_acts_only_on_its_subscriber_and_list(
    db: Session, mlist: MailingList, now: dt.datetime
) -> None:
    other_list = create_list(db, "other", from_addr="o@example.org")
    mine, _ = add_member(db, mlist, "Me@Example.org", now=now)
    theirs, _ = add_member(db, mlist, "them@example.org", now=now)
    add_member(db, other_list, "them@example.org", now=now)
    assert mine and theirs
    tokens = Tokens("secret")
    token = tokens.make("unsubscribe", mine.subscriber_id, mlist.id, mine.subscriber.email)
    data = tokens.read(token, "unsubscribe")
    assert verify_owner(db, data).email == "me@example.org"
    assert token_membership(db, data).id == mine.id

    # The same ids with someone else's address tag, or my tag on their id: refused.
    with pytest.raises(InvalidInput, match="no longer works"):
        verify_owner(db, TokenData(theirs.subscriber_id, mlist.id, data.email_hash8))
    # My token on a list I am not on: refused, never the other member's row.
    with pytest.raises(InvalidInput, match="not for a list you are on"):
        token_membership(db, TokenData(data.subscriber_id, other_list.id, data.email_hash8))
    with pytest.raises(InvalidInput, match="not for a list you are on"):
        token_membership(db, TokenData(data.subscriber_id, None, data.email_hash8))


def test_token_dies_when_address_changes_or_is_forgotten(
    db: Session, mlist: MailingList, now: dt.datetime
) -> None:
    member, _ = add_member(db, mlist, "me@example.org", now=now)
    assert member
    tokens = Tokens("secret")
    data = tokens.read(
        tokens.make("manage", member.subscriber_id, None, member.subscriber.email), "manage"
    )
    sub = verify_owner(db, data)
    sub.email, sub.email_hash = "new@example.org", token_tag("new@example.org") + "0" * 56
    db.flush()
    with pytest.raises(InvalidInput, match="no longer works"):
        verify_owner(db, data)
    db.delete(member)
    db.delete(sub)
    db.flush()
    with pytest.raises(InvalidInput, match="no longer works"):
        verify_owner(db, data)
