"""Double opt-in mails go through the same ledger and backends as editions."""

from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path

from sqlalchemy import select

from digest.app import App
from digest.deliver.confirm import queue_confirmation, queue_pending
from digest.models import Delivery, DeliveryStatus, Edition, EditionKind
from digest.publication import create_list
from subscribers.lists import get_list
from subscribers.members import add_member, confirm, get_member, token_membership
from subscribers.suppress import suppress
from tests.conftest import Clock


def _outbox(app: App) -> list[email.message.EmailMessage]:
    folder = Path(app.settings["delivery.outbox_dir"]) / "new"
    if not folder.exists():
        return []
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
            for p in sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime_ns)]


def _confirm_url(msg: email.message.EmailMessage) -> str:
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    match = re.search(r"https://news\.example\.org/confirm/(\S+)", text)
    assert match, text
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert match.group(0) in html
    return match.group(1)


def test_confirmation_mail_confirms_and_goes_through_the_ledger(app: App, clock: Clock) -> None:
    with app.sessions() as s:
        mlist = create_list(s, "ko", title="항구 소식", from_addr="News <n@news.example.org>",
                            language="ko")
        member, outcome = add_member(s, mlist, "Min@Example.kr", name="김민", now=clock())
        assert member is not None and outcome == "added" and member.status == "pending"
        assert queue_confirmation(s, member, clock())
        assert not queue_confirmation(s, member, clock())  # already queued
        s.commit()
    report = app.send_confirmations("ko")
    assert report.counts == {DeliveryStatus.DELIVERED: 1} and not report.finished
    [msg] = _outbox(app)
    assert msg["To"].addresses[0].addr_spec == "min@example.kr"
    assert msg["Subject"] == "항구 소식 구독을 확인해 주세요"
    token = _confirm_url(msg)
    with app.sessions() as s:
        data = app.tokens.read(token, "confirm")
        membership = token_membership(s, data)
        assert confirm(s, membership, now=clock(), ip="192.0.2.7")
        assert not confirm(s, membership, now=clock())  # twice is harmless
        s.commit()
        assert get_member(s, get_list(s, "ko"), "min@example.kr").confirmed_ip == "192.0.2.7"
        # The ledger holds it like any delivery, under the list's confirmation mailing.
        edition = s.scalars(select(Edition).where(Edition.kind == EditionKind.CONFIRM)).one()
        row = s.scalars(select(Delivery).where(Delivery.edition_id == edition.id)).one()
        assert row.status == DeliveryStatus.DELIVERED and row.message_id == msg["Message-ID"]


def test_resend_waits_and_skips_who_no_longer_needs_it(app: App, clock: Clock) -> None:
    with app.sessions() as s:
        mlist = create_list(s, "daily", title="Daily", from_addr="n@news.example.org")
        a, _ = add_member(s, mlist, "a@example.org", now=clock())
        b, _ = add_member(s, mlist, "b@example.org", now=clock())
        c, _ = add_member(s, mlist, "c@example.org", now=clock())
        assert a is not None and b is not None and c is not None
        assert queue_pending(s, mlist, clock()) == 3
        assert queue_pending(s, mlist, clock()) == 0  # idempotent
        confirm(s, b, now=clock())  # confirmed by other means before the mail went out
        suppress(s, "c@example.org", "complaint", now=clock())
        s.commit()
    report = app.send_confirmations("daily")
    assert report.counts == {DeliveryStatus.DELIVERED: 1, DeliveryStatus.SKIPPED: 2}
    assert len(_outbox(app)) == 1
    with app.sessions() as s:
        a = get_member(s, get_list(s, "daily"), "a@example.org")
        clock.advance(minutes=5)
        assert not queue_confirmation(s, a, clock())  # too soon: no inbox flooding
        clock.advance(minutes=6)
        assert queue_confirmation(s, a, clock())
        s.commit()
    app.send_confirmations("daily")
    mails = _outbox(app)
    assert len(mails) == 2 and _confirm_url(mails[0]) != "" and _confirm_url(mails[1]) != ""


def test_confirmation_mailing_does_not_disturb_edition_numbers(app: App, clock: Clock) -> None:
    from digest.editions import open_edition

    with app.sessions() as s:
        mlist = create_list(s, "daily", title="Daily", from_addr="n@news.example.org")
        member, _ = add_member(s, mlist, "a@example.org", now=clock())
        assert member is not None
        queue_confirmation(s, member, clock())
        s.commit()
        assert open_edition(s, mlist) is None
    assert app.send("daily") is None  # no articles: no digest, whatever the opt-in queue
