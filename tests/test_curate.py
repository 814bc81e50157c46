"""The editor's desk as functions (digest.curate): the draft, its proposals, dropping,
pinning, moving, editing, adding by URL, approving, scheduling, testing and sending, on
SQLite and PostgreSQL, with the outbox as the mail server."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import gzip
import logging
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest import curate
from digest.app import App
from digest.deliver.confirm import confirmation_edition
from digest.editions import require_sendable
from digest.errors import FetchError, InvalidInput, NotFound, NotReady
from digest.gather.sources import FetchOptions
from digest.models import Article, Delivery, Edition, EditionStatus, ListSource, Source
from digest.publication import create_list
from digest.schedule import release_scheduled
from subscribers.lists import archive_list, get_list
from subscribers.members import add_member
from subscribers.suppress import suppress
from tests.conftest import DATA, Clock
from tests.loopback import feed_server

ARTICLE_PAGE = DATA / "articles" / "html" / (
    "14cc2a0ca59c62a8c9f205a171e9ccf4ef4cf69b0c642f51c8c65c051b39024f.html.gz")
# Headlines in both of the lists' languages, as a Korean and an English source give them.
TITLES = ("항구 재개장, 어선 귀환 {i}", "Harbour reopens after the storm, part {i}")


def seed(app: App, clock: Clock, count: int, *, name: str = "news", members: int = 3,
         language: str = "en") -> None:
    """A list (Asia/Seoul) with `count` articles (see `add_articles`), `members`
    confirmed readers and one pending."""
    with app.sessions() as s:
        mlist = create_list(s, name, title="Harbour Times", language=language,
                            from_addr=f"Harbour <{name}@news.example.org>",
                            timezone="Asia/Seoul")
        for i in range(members):
            add_member(s, mlist, f"reader{i}@example.org", confirmed=True, now=clock())
        add_member(s, mlist, "pending@example.org", now=clock())
        s.commit()
    add_articles(app, clock, name, count)


def add_articles(app: App, clock: Clock, name: str, count: int) -> None:
    """A source for list `name` with `count` articles an hour apart, the newest 30
    minutes old, each with an image, Korean and English headlines taking turns."""
    now = clock()
    with app.sessions() as s:
        mlist = get_list(s, name)
        source = Source(url=f"https://feeds.example.org/{name}.xml", title="항구 신문")
        s.add(source)
        s.flush()
        s.add(ListSource(list_id=mlist.id, source_id=source.id))
        s.add_all(Article(
            source_id=source.id, guid=f"{name}-{i}", link=f"https://example.org/{name}/{i}",
            content_hash=f"{name}-{i}", title=TITLES[i % 2].format(i=i),
            summary=f"What happened at the harbour, told {i} times. " * 8,
            image_url=f"https://images.example.org/{i}.jpg", author="Kim",
            published_at=now - dt.timedelta(minutes=30 + 60 * i),
            first_seen_at=now - dt.timedelta(minutes=30 + 60 * i))
            for i in range(count))
        s.commit()


def draft(app: App, clock: Clock, name: str = "news") -> Edition:
    with app.sessions() as s:
        edition = curate.draft_for(s, get_list(s, name), now=clock(), rules=app.edition_rules())
        assert edition is not None
        s.commit()
        return edition


def titles(app: App, edition_id: int) -> list[str]:
    with app.sessions() as s:
        return [i.title for i in s.get_one(Edition, edition_id).items]


def outbox(app: App) -> list[EmailMessage]:
    folder = Path(app.settings["delivery.outbox_dir"]) / "new"
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in sorted(folder.iterdir())] if folder.exists() else []


def test_a_draft_and_its_proposals_share_no_article(app: App, clock: Clock) -> None:
    seed(app, clock, 30)
    with app.sessions() as s:
        mlist = get_list(s, "news")
        assert curate.current_edition(s, mlist) is None
        before = curate.proposals(s, None, mlist, now=clock(), rules=app.edition_rules())
        assert len(before) == 24  # the first edition looks back [edition] window_hours
    edition = draft(app, clock)
    with app.sessions() as s:
        mlist = get_list(s, "news")
        edition = s.get_one(Edition, edition.id)
        # [edition] max_items in full, the other new ones in brief: none left out.
        assert [i.title for i in edition.items if not i.brief] == [
            p.title for p in before[:20]]
        assert [i.title for i in edition.items if i.brief] == [p.title for p in before[20:]]
        assert curate.proposals(s, edition, mlist, now=clock(),
                                rules=app.edition_rules()) == []
        assert str(curate.tally(s, edition, mlist, now=clock(), rules=app.edition_rules())
                   ) == "24 articles: 20 in full, 4 in brief"
        curate.drop_item(s, edition, edition.items[-1].id)
        [left] = curate.proposals(s, edition, mlist, now=clock(), rules=app.edition_rules())
        assert left.title == before[-1].title
        assert left.source_title == "항구 신문" and left.image_url.startswith("https://")
        # Dropped by the editor: not held over, and the count says it will not go.
        assert str(curate.tally(s, edition, mlist, now=clock(), rules=app.edition_rules())
                   ) == ("23 articles: 20 in full, 3 in brief; 1 new article left out: "
                         "proposed on the desk, not mailed unless added")
        assert curate.draft_for(s, mlist, now=clock(), rules=app.edition_rules()) == edition


def test_drop_pin_and_move_keep_a_clean_order(app: App, clock: Clock) -> None:
    seed(app, clock, 5)
    edition = draft(app, clock)
    with app.sessions() as s:
        ed = s.get_one(Edition, edition.id)
        a, b, c, d, e = (i.id for i in ed.items)
        dropped = curate.drop_item(s, ed, b)
        assert curate.move_item(s, ed, e, to=0) == 0
        curate.pin_item(s, ed, d, True)  # pinned items lead
        assert curate.move_item(s, ed, a, to=0) == 1  # not above a pinned item
        assert curate.move_item(s, ed, c, to=99) == 3
        s.commit()
        assert [i.id for i in ed.items] == [d, a, e, c]
        assert [i.position for i in ed.items] == [0, 1, 2, 3]
        assert [i.pinned for i in ed.items] == [True, False, False, False]
        # The dropped article is proposed again.
        mlist = get_list(s, "news")
        assert dropped.article_id in {p.article_id for p in curate.proposals(
            s, ed, mlist, now=clock(), rules=app.edition_rules())}
        curate.pin_item(s, ed, d, False)
        curate.pin_item(s, ed, c, True)
        s.commit()
        assert [i.id for i in ed.items] == [c, d, a, e]


def test_adding_a_proposal_appends_it(app: App, clock: Clock) -> None:
    seed(app, clock, 22)
    edition = draft(app, clock)
    with app.sessions() as s:
        ed, mlist = s.get_one(Edition, edition.id), get_list(s, "news")
        for brief in [i for i in ed.items if i.brief]:  # the two beyond [edition] max_items
            curate.drop_item(s, ed, brief.id)
        [first, second] = curate.proposals(s, ed, mlist, now=clock(), rules=app.edition_rules())
        item = curate.add_article(s, ed, first.article_id, rules=app.edition_rules())
        s.commit()
        assert ed.items[-1].id == item.id and item.position == 20
        assert item.source_title == "항구 신문" and item.title == first.title
        with pytest.raises(InvalidInput, match="already in edition #1"):
            curate.add_article(s, ed, first.article_id, rules=app.edition_rules())
        with pytest.raises(NotFound, match="not one of this list's articles"):
            curate.add_article(s, ed, 10_000, rules=app.edition_rules())
        assert [p.article_id for p in curate.proposals(
            s, ed, mlist, now=clock(), rules=app.edition_rules())] == [second.article_id]


def test_another_lists_article_cannot_be_added(app: App, clock: Clock) -> None:
    seed(app, clock, 2)
    seed(app, clock, 2, name="sport")
    edition = draft(app, clock)
    with app.sessions() as s:
        theirs = s.scalars(select(Article.id).where(Article.guid == "sport-0")).one()
        with pytest.raises(NotFound):
            curate.add_article(s, s.get_one(Edition, edition.id), theirs,
                               rules=app.edition_rules())


def test_edits_are_plain_text_within_limits(app: App, clock: Clock) -> None:
    seed(app, clock, 2)
    edition = draft(app, clock)
    with app.sessions() as s:
        ed = s.get_one(Edition, edition.id)
        item_id = ed.items[0].id
        curate.edit_item(s, ed, item_id, title="  A new\n headline\x00 ",
                         summary="First.\r\n\r\nSecond.", note="<b>Worth it</b>")
        curate.set_intro(s, ed, "Good morning.\n\nTwo stories today.", subject="Friday")
        s.commit()
        item = ed.items[0]
        assert (item.title, item.summary, item.note) == (
            "A new headline", "First.\n\nSecond.", "<b>Worth it</b>")  # escaped when shown
        assert (ed.intro, ed.subject) == ("Good morning.\n\nTwo stories today.", "Friday")
        with pytest.raises(InvalidInput, match="headline cannot be empty"):
            curate.edit_item(s, ed, item_id, title="   ")
        with pytest.raises(InvalidInput, match="keep it to 300"):
            curate.edit_item(s, ed, item_id, title="x" * 301)
        with pytest.raises(InvalidInput, match="subject cannot be empty"):
            curate.set_intro(s, ed, "", subject="")
        with pytest.raises(NotFound, match="reload the desk"):
            curate.drop_item(s, ed, 10_000)


def test_an_edition_being_sent_refuses_every_change(app: App, clock: Clock) -> None:
    seed(app, clock, 3)
    edition = draft(app, clock)
    with app.sessions() as s:
        ed, mlist = s.get_one(Edition, edition.id), get_list(s, "news")
        item_id = ed.items[0].id
        assert app.send_now(s, ed, mlist) == 3
        assert ed.status == EditionStatus.SENDING
    changes: list[Callable[[Session, Edition], object]] = [
        lambda s, ed: curate.drop_item(s, ed, item_id),
        lambda s, ed: curate.pin_item(s, ed, item_id, True),
        lambda s, ed: curate.move_item(s, ed, item_id, to=2),
        lambda s, ed: curate.edit_item(s, ed, item_id, title="Changed"),
        lambda s, ed: curate.set_intro(s, ed, "Hello"),
        lambda s, ed: curate.approve(s, ed),
        lambda s, ed: curate.schedule(s, ed, clock() + dt.timedelta(hours=1), now=clock()),
        lambda s, ed: app.send_now(s, ed, get_list(s, "news")),
    ]
    for change in changes:
        with app.sessions() as s, pytest.raises(
                InvalidInput, match="#1 is already being sent; nothing changed"):
            change(s, s.get_one(Edition, edition.id))
    assert titles(app, edition.id)[0] == TITLES[0].format(i=0)


def test_a_stale_copy_is_reread_before_a_change(app: App, clock: Clock) -> None:
    """An editor's page loaded before the scheduler started sending changes nothing."""
    seed(app, clock, 3)
    edition = draft(app, clock)
    with app.sessions() as desk, app.sessions() as scheduler:
        stale = desk.get_one(Edition, edition.id)
        assert stale.status == EditionStatus.DRAFT
        app.start_sending(scheduler, scheduler.get_one(Edition, edition.id),
                          get_list(scheduler, "news"))
        with pytest.raises(InvalidInput, match="being sent"):
            curate.drop_item(desk, stale, stale.items[0].id)


def test_approve_and_schedule(app: App, clock: Clock) -> None:
    seed(app, clock, 3)
    edition = draft(app, clock)
    with app.sessions() as s:
        ed = s.get_one(Edition, edition.id)
        assert curate.approve(s, ed) is True and curate.approve(s, ed) is False
        with pytest.raises(InvalidInput, match="has passed"):
            curate.schedule(s, ed, clock() - dt.timedelta(minutes=1), now=clock())
        with pytest.raises(InvalidInput, match="UTC offset"):
            curate.schedule(s, ed, dt.datetime(2026, 12, 1, 7), now=clock())
        seoul = dt.timezone(dt.timedelta(hours=9))
        curate.schedule(s, ed, dt.datetime(2026, 11, 27, 18, 30, 45, tzinfo=seoul), now=clock())
        s.commit()
    with app.sessions() as s:
        ed = s.get_one(Edition, edition.id)
        assert ed.status == EditionStatus.APPROVED
        assert ed.scheduled_for == dt.datetime(2026, 11, 27, 9, 30, tzinfo=dt.UTC)


def test_a_scheduled_edition_goes_out_at_its_time(app: App, clock: Clock) -> None:
    seed(app, clock, 3)
    edition = draft(app, clock)
    with app.sessions() as s:
        curate.schedule(s, s.get_one(Edition, edition.id), clock() + dt.timedelta(hours=2),
                        now=clock())
        s.commit()
    clock.advance(hours=1, minutes=59)
    assert release_scheduled(app) == []
    clock.advance(minutes=1)
    assert release_scheduled(app) == [edition.id]
    assert release_scheduled(app) == []  # once
    with app.sessions() as s:
        assert s.get_one(Edition, edition.id).status == EditionStatus.SENDING
        assert s.scalar(select(func.count()).select_from(Delivery)) == 3


def test_an_empty_edition_cannot_be_approved_or_sent(app: App, clock: Clock) -> None:
    seed(app, clock, 1)
    edition = draft(app, clock)
    with app.sessions() as s:
        ed = s.get_one(Edition, edition.id)
        curate.drop_item(s, ed, ed.items[0].id)
        mlist = get_list(s, "news")
        acts: list[Callable[[], object]] = [lambda: curate.approve(s, ed),
                                            lambda: app.send_now(s, ed, mlist)]
        for act in acts:
            with pytest.raises(InvalidInput, match="no articles; add one first"):
                act()


def test_a_scheduled_edition_emptied_after_approval_is_held_once(
    app: App, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    seed(app, clock, 1)
    edition = draft(app, clock)
    with app.sessions() as s:
        ed = s.get_one(Edition, edition.id)
        curate.schedule(s, ed, clock() + dt.timedelta(hours=1), now=clock())
        curate.drop_item(s, ed, ed.items[0].id)  # an approved edition can still change
        s.commit()
    clock.advance(hours=1)
    with caplog.at_level(logging.WARNING, logger="digest.schedule"):
        assert release_scheduled(app) == []
        assert release_scheduled(app) == []  # a minute later: not again
    [line] = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "edition #1" in line and "no articles" in line
    with app.sessions() as s:
        ed = s.get_one(Edition, edition.id)
        # Its time is dealt with; it waits for an editor, for the list's next time.
        assert (ed.status, ed.scheduled_for) == (EditionStatus.APPROVED, None)
        assert s.scalar(select(func.count()).select_from(Delivery)) == 0


def test_the_rule_for_going_out_is_for_digests(app: App, clock: Clock) -> None:
    seed(app, clock, 1)
    edition = draft(app, clock)
    with app.sessions() as s:
        mlist = get_list(s, "news")
        # The standing confirmation mailing has no articles and goes out all the same.
        require_sendable(confirmation_edition(s, mlist, clock()), mlist)
        ed = s.get_one(Edition, edition.id)
        require_sendable(ed, mlist)
        archive_list(s, mlist, now=clock())
        with pytest.raises(NotReady, match=r"is archived.*--undo"):
            require_sendable(ed, mlist)


def test_recipients_are_confirmed_and_not_suppressed(app: App, clock: Clock) -> None:
    seed(app, clock, 1, members=4)
    with app.sessions() as s:
        suppress(s, "reader1@example.org", reason="admin", now=clock())
        s.commit()
        assert curate.recipients_count(s, get_list(s, "news")) == 3


def test_the_preview_is_the_email_with_sample_values(app: App, clock: Clock) -> None:
    seed(app, clock, 3)
    edition = draft(app, clock)
    with app.sessions() as s:
        ed, mlist = s.get_one(Edition, edition.id), get_list(s, "news")
        curate.set_intro(s, ed, "A calm sea today.")
        curate.move_item(s, ed, ed.items[2].id, to=0)
        s.commit()
        shown = app.preview(ed, mlist)
    html, text = shown.html, shown.text
    assert "__DIGEST_SLOT_" not in html + text
    assert "A calm sea today." in html and "A calm sea today." in text
    order = [TITLES[i % 2].format(i=i) for i in (2, 0, 1)]
    start = html.index("A calm sea today.")  # the subject above it names the old lead
    found = [html.index(title, start) for title in order]
    assert found == sorted(found)
    assert "https://news.example.org/unsubscribe/preview" in html
    with app.sessions() as s:
        assert s.get_one(Edition, edition.id).html == ""  # a preview renders nothing stored


def test_a_test_mail_goes_to_the_editor_alone(app: App, clock: Clock) -> None:
    seed(app, clock, 2)
    edition = draft(app, clock)
    with app.sessions() as s:
        ed, mlist = s.get_one(Edition, edition.id), get_list(s, "news")
        message_id = app.send_test(ed, mlist, "ed@example.org", "Ed")
        assert ed.status == EditionStatus.DRAFT and ed.html == ""
        assert s.scalar(select(func.count()).select_from(Delivery)) == 0
    [mail] = outbox(app)
    assert mail["To"] == "Ed <ed@example.org>" and mail["Message-ID"] == message_id
    assert mail["Subject"] == f"[Test] {edition.subject}"
    assert TITLES[0].format(i=0) in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_send_now_reaches_every_confirmed_reader_once(app: App, clock: Clock) -> None:
    seed(app, clock, 2, members=3)
    edition = draft(app, clock)
    with app.sessions() as s:
        ed = s.get_one(Edition, edition.id)
        curate.drop_item(s, ed, ed.items[0].id)
        s.commit()
        assert app.send_now(s, ed, get_list(s, "news")) == 3
    report = app.deliver(edition.id)  # what the sender worker does next
    assert report.finished
    mails = outbox(app)
    assert sorted(m["To"] for m in mails) == [f"reader{i}@example.org" for i in range(3)]
    body = mails[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert TITLES[1].format(i=1) in body and TITLES[0].format(i=0) not in body


def test_the_subject_follows_the_lead_until_an_editor_writes_one(
        app: App, clock: Clock) -> None:
    """The subject digest wrote names the lead headline: it follows the lead when the
    editor edits its headline or drops, moves, pins or briefs another story to the top,
    and is mailed so; one the editor wrote is never changed."""
    seed(app, clock, 5, members=1)
    edition = draft(app, clock)
    lead = "Harbour Times: " + TITLES[0].format(i=0)

    def subject_after(change: Callable[[Session, Edition, list[int]], object]) -> str:
        with app.sessions() as s:
            ed = s.get_one(Edition, edition.id)
            change(s, ed, [i.id for i in ed.items])
            s.commit()
            return s.get_one(Edition, edition.id).subject

    with app.sessions() as s:
        assert s.get_one(Edition, edition.id).subject == lead
    assert subject_after(lambda s, ed, ids: curate.edit_item(
        s, ed, ids[0], title="Ferries run again")) == "Harbour Times: Ferries run again"
    assert subject_after(lambda s, ed, ids: curate.drop_item(s, ed, ids[0])) == (
        "Harbour Times: " + TITLES[1].format(i=1))
    assert subject_after(lambda s, ed, ids: curate.move_item(s, ed, ids[0], to=1)) == (
        "Harbour Times: " + TITLES[0].format(i=2))
    assert subject_after(lambda s, ed, ids: curate.pin_item(s, ed, ids[3], True)) == (
        "Harbour Times: " + TITLES[0].format(i=4))
    assert subject_after(lambda s, ed, ids: curate.brief_item(s, ed, ids[0], True)) == (
        "Harbour Times: " + TITLES[0].format(i=2))
    # The desk's form posts the subject shown with every intro: still digest's own.
    assert subject_after(lambda s, ed, ids: curate.set_intro(
        s, ed, "Calm seas.", subject=ed.subject)) == "Harbour Times: " + TITLES[0].format(i=2)
    assert subject_after(lambda s, ed, ids: curate.edit_item(
        s, ed, ids[0], title="Boats are back")) == "Harbour Times: Boats are back"
    # An editor's own subject stays, whatever leads.
    assert subject_after(lambda s, ed, ids: curate.set_intro(
        s, ed, "", subject="Storm week")) == "Storm week"
    assert subject_after(lambda s, ed, ids: curate.drop_item(s, ed, ids[0])) == "Storm week"
    assert subject_after(lambda s, ed, ids: curate.edit_item(
        s, ed, ids[0], title="Nets mended")) == "Storm week"
    with app.sessions() as s:
        app.send_now(s, s.get_one(Edition, edition.id), get_list(s, "news"))
    app.deliver(edition.id)
    assert [m["Subject"] for m in outbox(app)] == ["Storm week"]


def test_a_subject_follows_a_lead_edited_before_it_is_mailed(app: App, clock: Clock) -> None:
    """What a reader gets: the subject names the headline the mail leads with."""
    seed(app, clock, 3, members=1)
    edition = draft(app, clock)
    with app.sessions() as s:
        ed = s.get_one(Edition, edition.id)
        curate.drop_item(s, ed, ed.items[0].id)
        curate.edit_item(s, ed, ed.items[0].id, title="Ferries run again")
        s.commit()
        app.send_now(s, ed, get_list(s, "news"))
    app.deliver(edition.id)
    [mail] = outbox(app)
    assert mail["Subject"] == "Harbour Times: Ferries run again"
    assert "Ferries run again" in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def _page(extra: bytes = b"") -> bytes:
    """A real article page (BBC, from the extraction benchmark) with hostile markup added."""
    html = gzip.decompress(ARTICLE_PAGE.read_bytes())
    return html.replace(b"</body>", extra + b"</body>", 1)


HOSTILE = (b"<script>alert('desk')</script><iframe src='https://evil.example/'></iframe>"
           b"<p onclick=\"alert(1)\">Clicked <a href=\"javascript:alert(2)\">here</a></p>")


def test_a_page_added_by_url_is_extracted_and_clean(app: App, clock: Clock) -> None:
    seed(app, clock, 1)
    edition = draft(app, clock)
    opts = FetchOptions(timeout=5)
    with feed_server(lambda path: _page(HOSTILE) if path == "/story" else None) as base, \
            requests.Session() as http:
        # The page is on loopback: as with [web] fetch_private_addresses on.
        page = curate.fetch_page(http, f"{base}/story", opts, private_addresses=True)
        with pytest.raises(FetchError, match="HTTP 500"):
            curate.fetch_page(http, f"{base}/missing", opts, private_addresses=True)
    assert page.site == "127.0.0.1" and page.url == f"{base}/story"
    assert "alert" not in page.text + page.title and page.text
    with app.sessions() as s:
        ed = s.get_one(Edition, edition.id)
        item = curate.add_page(s, ed, page, now=clock(), rules=app.edition_rules())
        s.commit()
        assert item.article_id is None and ed.items[-1].id == item.id
        assert item.title == page.title and item.source_title == "127.0.0.1"
        assert len(item.summary) <= app.edition_rules().summary_chars
        with pytest.raises(InvalidInput, match="already in this edition"):
            curate.add_page(s, ed, page, now=clock(), rules=app.edition_rules())


@pytest.mark.parametrize("url", ["javascript:alert(1)", "file:///etc/passwd", "ftp://x.org/a",
                                 "news", ""])
def test_only_web_addresses_are_fetched(url: str) -> None:
    with requests.Session() as http, pytest.raises(InvalidInput, match="not a web address"):
        curate.fetch_page(http, url, FetchOptions())


def test_a_page_without_an_article_is_refused() -> None:
    with feed_server(lambda path: b"\x89PNG\r\n\x1a\n" + bytes(200)) as base, \
            requests.Session() as http, pytest.raises(InvalidInput, match="no article found"):
        curate.fetch_page(http, f"{base}/image.png", FetchOptions(), private_addresses=True)


def test_a_page_can_start_a_draft_when_nothing_is_new(app: App, clock: Clock) -> None:
    seed(app, clock, 0)
    with feed_server(lambda path: _page()) as base, requests.Session() as http:
        page = curate.fetch_page(http, f"{base}/story", FetchOptions(), private_addresses=True)
    with app.sessions() as s:
        mlist = get_list(s, "news")
        assert curate.draft_for(s, mlist, now=clock(), rules=app.edition_rules()) is None
        edition, item = curate.start_with_page(s, mlist, page, now=clock(),
                                               rules=app.edition_rules())
        s.commit()
        assert [i.id for i in edition.items] == [item.id]
        assert edition.status == EditionStatus.DRAFT
        assert edition.subject.startswith("Harbour Times: ")


def test_no_way_of_sending_goes_out_to_a_list_with_no_confirmed_reader(
        app: App, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    """The desk, the API and the scheduler start sending through the same door as the
    CLI: a list whose readers are all pending keeps its draft and its articles."""
    seed(app, clock, 3, members=0)  # one pending reader, no confirmed one
    edition = draft(app, clock)
    with app.sessions() as s, pytest.raises(NotReady, match="no confirmed subscribers"):
        app.send_now(s, s.get_one(Edition, edition.id), get_list(s, "news"))
    with app.sessions() as s:
        curate.schedule(s, s.get_one(Edition, edition.id), clock() + dt.timedelta(hours=1),
                        now=clock())
        s.commit()
    clock.advance(hours=1)
    with caplog.at_level(logging.WARNING):
        assert release_scheduled(app) == []
    assert "no confirmed subscribers" in caplog.text
    with app.sessions() as s:
        kept = s.get_one(Edition, edition.id)
        assert kept.status != EditionStatus.SENDING and len(kept.items) == 3
        assert s.scalar(select(func.count()).select_from(Delivery)) == 0
