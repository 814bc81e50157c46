"""Review mode on a hand-moved clock: the draft comes the lead time before, editors
change and approve it, and at the scheduled time an unapproved draft is held, held with
a notice to the editors, or sent, as the list's policy says."""

from __future__ import annotations

import email
import email.policy
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from digest import schedule
from digest.app import App
from digest.cli import main
from digest.errors import InvalidInput, NotFound
from digest.models import Edition, EditionStatus
from digest.publication import check_editor_emails, check_review_policy, create_list
from subscribers.lists import get_list
from tests.conftest import Clock
from tests.test_schedule import (
    add_articles,
    at,
    deliveries,
    drop_every_article,
    editions,
    hourly,
    make_list,
)

EDITORS = "Ed <ed@example.org>, kim@example.org"


def review_list(app: App, clock: Clock, policy: str = "hold") -> None:
    """"news" in review mode at 07:00 UTC, articles every hour of two days."""
    make_list(app, clock, mode="review", review_policy=policy, editor_emails=EDITORS)
    add_articles(app, "news", hourly(at("2026-11-27 00:00"), 48))


def outbox(app: App) -> list[email.message.EmailMessage]:
    folder = Path(app.settings["delivery.outbox_dir"]) / "new"
    if not folder.exists():
        return []
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
            for p in sorted(folder.iterdir())]


def test_the_draft_comes_the_lead_time_before(app: App, clock: Clock) -> None:
    review_list(app, clock)
    clock.now = at("2026-11-27 04:59")
    assert schedule.draft_reviews(app) == []
    clock.now = at("2026-11-27 05:00")  # 120 minutes before 07:00
    [draft] = schedule.draft_reviews(app)
    assert (draft.status, draft.scheduled_for) == (EditionStatus.DRAFT, at("2026-11-27 07:00"))
    assert draft.cutoff == at("2026-11-27 05:00")
    clock.advance(minutes=1)
    assert [d.id for d in schedule.draft_reviews(app)] == [draft.id]  # the same one
    assert schedule.run_due(app) == []  # nothing goes out before 07:00
    assert len(editions(app)) == 1 and deliveries(app) == 0


def test_an_approved_draft_goes_out_as_the_editors_left_it(app: App, clock: Clock) -> None:
    review_list(app, clock)
    clock.now = at("2026-11-27 05:00")
    [draft] = schedule.draft_reviews(app)
    with app.sessions() as s:  # an editor rewrites the subject and a headline
        ed = s.get_one(Edition, draft.id)
        ed.subject = "Friday: the harbour reopens"
        ed.items[0].title = "Harbour reopens after the storm"
        s.commit()
    edition, changed = app.approve("news")
    assert changed and edition.status == EditionStatus.APPROVED
    assert app.approve("news")[1] is False
    clock.now = at("2026-11-27 07:00")
    assert schedule.run_due(app) == [("news", schedule.STARTED)]
    report = app.send("news")  # what the sender worker does
    assert report is not None and report.finished
    messages = outbox(app)
    assert [m["Subject"] for m in messages] == ["Friday: the harbour reopens"] * 2
    assert "Harbour reopens after the storm" in messages[0].get_body(  # type: ignore[union-attr]
        ("plain",)).get_content()


def test_policy_send_lets_an_unapproved_draft_go_out(app: App, clock: Clock) -> None:
    review_list(app, clock, policy="send")
    clock.now = at("2026-11-27 05:00")
    schedule.draft_reviews(app)
    clock.now = at("2026-11-27 07:00")
    assert schedule.run_due(app) == [("news", schedule.STARTED)]
    [ed] = editions(app)
    assert ed.status == EditionStatus.SENDING and deliveries(app) == 2


def test_policy_hold_keeps_it_until_approved_then_it_goes_next_time(
    app: App, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    review_list(app, clock, policy="hold")
    clock.now = at("2026-11-27 05:00")
    schedule.draft_reviews(app)
    clock.now = at("2026-11-27 07:00")
    with caplog.at_level(logging.WARNING, logger="digest.schedule"):
        assert schedule.run_due(app) == [("news", schedule.HELD)]
    assert "held until an editor approves it" in caplog.text
    [ed] = editions(app)
    assert ed.status == EditionStatus.DRAFT and deliveries(app) == 0 and outbox(app) == []
    clock.now = at("2026-11-27 09:30")
    app.approve("news")
    assert schedule.run_due(app) == []  # approving does not send it early
    clock.now = at("2026-11-28 05:00")  # the next draft time: the held one carries over
    [carried] = schedule.draft_reviews(app)
    assert carried.id == ed.id and carried.scheduled_for == at("2026-11-28 07:00")
    clock.now = at("2026-11-28 07:00")
    assert schedule.run_due(app) == [("news", schedule.STARTED)]
    [sent] = editions(app)
    assert sent.status == EditionStatus.SENDING and deliveries(app) == 2


def test_policy_notify_holds_it_and_mails_the_editors_once(
    app: App, clock: Clock, settings
) -> None:  # type: ignore[no-untyped-def]
    review_list(app, clock, policy="notify")
    clock.now = at("2026-11-27 05:00")
    schedule.draft_reviews(app)
    clock.now = at("2026-11-27 07:00")
    assert schedule.run_due(app) == [("news", schedule.HELD)]
    other = App(settings, clock=clock)  # a second scheduler firing the same time
    try:
        assert schedule.run_edition_job(other, "news", at("2026-11-27 07:00")) == schedule.DONE
    finally:
        other.close()
    notices = outbox(app)
    assert sorted(str(m["To"]) for m in notices) == ["ed@example.org", "kim@example.org"]
    notice = notices[0]
    assert notice["Subject"] == "Held: news #1 was not approved"
    assert notice["Auto-Submitted"] == "auto-generated"
    body = notice.get_content()
    assert "was due at 2026-11-27 07:00 (UTC)" in body
    assert "digest edition approve --list news" in body
    assert "next scheduled time, 2026-11-28 07:00" in body
    assert editions(app)[0].status == EditionStatus.DRAFT and deliveries(app) == 0


def test_no_draft_before_the_time_still_follows_the_policy(app: App, clock: Clock) -> None:
    # `digest serve` started at 06:30: no draft was built; one is, and it is held.
    review_list(app, clock, policy="hold")
    clock.now = at("2026-11-27 07:00")
    assert schedule.run_due(app) == [("news", schedule.HELD)]
    assert editions(app)[0].scheduled_for == at("2026-11-27 07:00")


def test_settings_are_checked() -> None:
    assert check_review_policy("notify") == "notify"
    with pytest.raises(InvalidInput, match="hold, notify, send"):
        check_review_policy("ask")
    assert check_editor_emails(EDITORS) == "ed@example.org, kim@example.org"
    with pytest.raises(InvalidInput, match="not a valid email"):
        check_editor_emails("ed@, kim@example.org")


def test_approve_from_the_command_line(  # type: ignore[no-untyped-def]
    app: App, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    review_list(app, clock)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIGEST_CONFIG", raising=False)
    monkeypatch.setenv("DIGEST_DATABASE_URL", app.settings["database.url"])
    runner = CliRunner()
    r = runner.invoke(main, ["edition", "approve", "--list", "news"])
    assert r.exit_code == 1 and "Error: list 'news' has no draft waiting" in r.output
    clock.now = at("2026-11-27 05:00")
    schedule.draft_reviews(app)
    r = runner.invoke(main, ["edition", "approve", "--list", "news"])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("Approved edition #1 of news, \"news: News of")
    assert "goes out at" in r.output
    r = runner.invoke(main, ["edition", "approve", "--list", "news"])
    assert r.output.startswith("Already approved: edition #1")
    with app.sessions() as s:
        assert s.scalars(select(Edition.status)).all() == [EditionStatus.APPROVED]


def test_an_empty_draft_is_not_approved_from_the_command_line(
    app: App, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    review_list(app, clock)
    clock.now = at("2026-11-27 05:00")
    drop_every_article(app, clock)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIGEST_CONFIG", raising=False)
    monkeypatch.setenv("DIGEST_DATABASE_URL", app.settings["database.url"])
    r = CliRunner().invoke(main, ["edition", "approve", "--list", "news"])
    assert r.exit_code == 1, r.output
    assert r.output.startswith("Error: edition #1 of 'news' has no articles; add one"), r.output
    [ed] = editions(app)
    assert ed.status == EditionStatus.DRAFT


def test_approve_without_a_draft_says_what_to_do(app: App, clock: Clock) -> None:
    review_list(app, clock)
    with pytest.raises(NotFound, match="digest edition build --list news"):
        app.approve("news")


def test_review_settings_from_the_command_line(app: App) -> None:
    with app.sessions() as s:
        create_list(s, "rev", from_addr="r@news.example.org", mode="review")
        s.commit()
    env = {"DIGEST_DATABASE_URL": app.settings["database.url"]}
    r = CliRunner(env=env).invoke(main, ["lists", "set", "rev", "--review-policy", "notify",
                                         "--editors", "Ed <ed@example.org>, kim@example.org"])
    assert r.exit_code == 0, r.output
    assert "review policy: hold → notify" in r.output
    with app.sessions() as s:
        mlist = get_list(s, "rev")
        assert (mlist.review_policy, mlist.editor_emails) == (
            "notify", "ed@example.org, kim@example.org")
    r = CliRunner(env=env).invoke(main, ["lists", "set", "rev", "--editors", "not an address"])
    assert r.exit_code == 1 and r.output.startswith("Error: ")
