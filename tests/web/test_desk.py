"""The editor's desk through the app (TestClient, logged in as the editor): every button
changes the draft as the editor expects, a sending edition refuses with a clear page,
articles added by URL come from a real loopback server, a test goes to the editor
alone, and sending goes to exactly the subscribers the confirmation page counted."""

from __future__ import annotations

import datetime as dt
import re
import threading
from html import unescape
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import func, select

from digest import curate
from digest.app import App
from digest.models import Article, Delivery, Edition, EditionItem, EditionStatus
from digest.sender import run_worker
from subscribers.lists import get_list
from subscribers.members import add_member
from subscribers.suppress import suppress
from tests.conftest import Clock
from tests.loopback import feed_server
from tests.test_curate import HOSTILE, TITLES, _page, add_articles, outbox
from tests.web.conftest import ALICE, EDITOR_EMAIL, World, csrf

CAROL, DAVE = "carol@example.com", "dave@example.com"


@pytest.fixture
def news(app: App, clock: Clock, world: World) -> World:
    """`world`, and 30 articles for "news" (24 inside the first edition's window): a
    draft tells 16 in full, lists 4 under "also new", and 4 wait among the proposals."""
    add_articles(app, clock, "news", 30)
    app.settings = app.settings.with_overrides(edition__max_items=16, edition__brief_max=4)
    return world


@pytest.fixture
def loopback_pages(app: App) -> None:
    """Add by URL may fetch from this machine: the pages come from a loopback server."""
    app.settings = app.settings.with_overrides(web__fetch_private_addresses=True)


def start(client: TestClient) -> Response:
    answer = client.post("/desk/news/draft", data={"csrf_token": csrf(client)},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return answer


def post(client: TestClient, path: str, edition: int = 1, **fields: str) -> Response:
    """A desk form as the page sends it: the session's token, the edition it showed."""
    return client.post(path, data={"csrf_token": csrf(client), "edition": str(edition),
                                   **fields}, follow_redirects=False)


def items(app: App) -> list[EditionItem]:
    """The open edition's items as stored now, in order."""
    with app.sessions() as s:
        edition = curate.current_edition(s, get_list(s, "news"))
        assert edition is not None
        return list(edition.items)


def edition_row(app: App) -> Edition:
    with app.sessions() as s:
        return s.scalars(select(Edition).where(Edition.number == 1)).one()


def fresh(app: App, clock: Clock) -> None:
    """One more article for "news", published ten minutes ago."""
    with app.sessions() as s:
        source_id = s.scalars(select(Article.source_id)).first()
        s.add(Article(source_id=source_id, guid="fresh", link="https://example.org/fresh",
                      content_hash="fresh", title="Fresh news",
                      published_at=clock() - dt.timedelta(minutes=10), first_seen_at=clock()))
        s.commit()


def deliveries(app: App) -> int:
    with app.sessions() as s:
        return s.scalar(select(func.count()).select_from(Delivery)) or 0


def text_of(html: str) -> str:
    """The page's words as a reader sees them, spaces tidied."""
    text = unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))
    return re.sub(r" ([.,])", r"\1", text)


def test_the_front_page_shows_each_lists_next_edition(
        editor_client: TestClient, news: World) -> None:
    page = editor_client.get("/desk")
    assert page.status_code == 200
    assert "Morning News" in page.text and "스포츠 소식" in page.text
    assert text_of(page.text).count("No draft") == 2
    start(editor_client)
    assert "Draft #1, 20 articles" in text_of(editor_client.get("/desk").text)


def test_the_draft_shows_items_and_proposals_with_image_source_and_age(
        app: App, editor_client: TestClient, news: World) -> None:
    before = editor_client.get("/desk/news")
    assert "Start the next edition" in before.text
    assert before.text.count('class="proposal"') == 24  # the window, proposed
    answer = start(editor_client)
    assert answer.headers["location"] == "/desk/news?done=started"
    page = editor_client.get(answer.headers["location"])
    assert page.status_code == 200
    assert "img-src 'self' https: data:" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert page.text.count('class="item"') == 20 and page.text.count('class="proposal"') == 4
    first = text_of(page.text[page.text.index('<li class="item"'):])
    assert first.startswith(f" 1 항구 신문 · 30 min ago {TITLES[0].format(i=0)}")
    assert '<img class="thumb" src="https://images.example.org/0.jpg"' in page.text
    assert "The draft is started." in page.text
    assert "21 h ago" in page.text and "23 h ago" in page.text  # proposals have an age


def test_each_button_changes_the_draft_as_the_editor_expects(
        app: App, editor_client: TestClient, news: World) -> None:
    start(editor_client)
    a, b, c, *_ = (i.id for i in items(app))

    dropped = items(app)[1]
    answer = post(editor_client, f"/desk/news/items/{b}/drop")
    assert answer.status_code == 303 and answer.headers["location"] == \
        f"/desk/news?done=dropped&article={dropped.article_id}"
    shown = text_of(editor_client.get(answer.headers["location"]).text)
    assert (f"Dropped “ {dropped.title} ”. Its article is among the proposals again."
            in shown)  # (text_of puts a space for each tag: the headline is a <span>)
    assert b not in [i.id for i in items(app)]

    assert post(editor_client, f"/desk/news/items/{c}/move", direction="up").status_code == 303
    assert [i.id for i in items(app)][:2] == [c, a]
    post(editor_client, f"/desk/news/items/{c}/move", direction="down")
    assert [i.id for i in items(app)][:2] == [a, c]

    last = items(app)[-1].id
    answer = post(editor_client, f"/desk/news/items/{last}/pin", pinned="1")
    assert answer.headers["location"] == f"/desk/news?done=pinned&item={last}"
    assert (items(app)[0].id, items(app)[0].pinned) == (last, True)

    # One told in full goes to "also new", at the head of it, and comes back.
    answer = post(editor_client, f"/desk/news/items/{c}/brief", brief="1")
    assert answer.headers["location"] == f"/desk/news?done=briefed&item={c}"
    now = items(app)
    assert [i.id for i in now].index(c) == sum(not i.brief for i in now)
    assert next(i for i in now if i.id == c).brief
    shown = text_of(editor_client.get("/desk/news").text)
    # The last one (in brief) was pinned, so told in full; b was dropped: it waits on
    # the desk, while the four beyond [edition] brief_max are held for the next edition.
    assert ("19 articles: 15 in full, 4 in brief; 4 more new articles held over for the "
            "next edition (no room: [edition] brief_max, html_max_kb); 1 new article left "
            "out: proposed on the "
            "desk, not mailed unless added") in shown
    assert "Also new, headline and link only (4)" in shown
    post(editor_client, f"/desk/news/items/{c}/brief", brief="0")
    assert [i.id for i in items(app) if not i.brief][-1] == c

    post(editor_client, f"/desk/news/items/{a}/edit", title="Harbour reopens",
         summary="Boats are back.", note="Our reporter was there.")
    edited = next(i for i in items(app) if i.id == a)
    assert (edited.title, edited.summary, edited.note) == (
        "Harbour reopens", "Boats are back.", "Our reporter was there.")

    post(editor_client, "/desk/news/intro", subject="Friday at the harbour",
         intro="Good morning.\n\nA calm sea.")
    assert (edition_row(app).subject, edition_row(app).intro) == (
        "Friday at the harbour", "Good morning.\n\nA calm sea.")

    proposal = re.findall(r'name="article" value="(\d+)"', editor_client.get("/desk/news").text)
    answer = post(editor_client, "/desk/news/add", article=proposal[0])
    assert answer.status_code == 303
    assert items(app)[-1].article_id == int(proposal[0])

    assert post(editor_client, "/desk/news/approve").status_code == 303
    assert edition_row(app).status == EditionStatus.APPROVED

    page = editor_client.get("/desk/news")
    shown = text_of(page.text)
    assert "Approved · 20 articles" in shown and "Pinned" in shown
    assert "Our reporter was there." in shown


def test_a_refusal_shows_the_desk_with_the_reason_and_changes_nothing(
        app: App, editor_client: TestClient, news: World) -> None:
    start(editor_client)
    first = items(app)[0]
    answer = post(editor_client, f"/desk/news/items/{first.id}/edit", title="   ")
    assert answer.status_code == 400
    assert "The headline cannot be empty; drop the article instead." in answer.text
    assert items(app)[0].title == first.title
    answer = post(editor_client, f"/desk/news/items/{first.id}/move", direction="sideways")
    assert answer.status_code == 400
    said = text_of(answer.text).replace("“ ", "“").replace(" ”", "”")
    assert f"“{first.title}” was not changed: say up or down." in said
    # An item that is not in the edition: back to the desk, which says so.
    answer = post(editor_client, "/desk/news/items/99999/drop")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/desk/news?error=gone"
    assert "That article is no longer in this edition" in text_of(
        editor_client.get(answer.headers["location"]).text)


def test_a_refused_form_marks_its_field_and_keeps_what_was_typed(
        app: App, editor_client: TestClient, news: World) -> None:
    """Without a browser (tests/web/test_desk_errors.py has one): the markup of it."""
    start(editor_client)
    first = items(app)[0]
    answer = post(editor_client, f"/desk/news/items/{first.id}/edit", title=" ",
                  summary="Typed blurb", note="Typed note")
    html = answer.text
    assert answer.status_code == 400
    assert re.search(r"<title>Error: [^<]*: desk</title>", html)
    assert (f'id="title-{first.id}" name="title" value=" "' in html
            and f'aria-invalid="true" aria-describedby="title-{first.id}-error"' in html)
    assert (f'id="title-{first.id}-error">The headline cannot be empty; drop the article '
            "instead.</span>") in html
    assert ">Typed blurb</textarea>" in html and ">Typed note</textarea>" in html
    assert html.count("<details class=\"edit\" open>") == 1
    said = text_of(html).replace("“ ", "“").replace(" ”", "”")
    assert f"“{first.title}” was not changed: the headline cannot be empty" in said
    for path, fields, field in [
            ("/desk/news/intro", {"subject": " ", "intro": "Typed intro"}, "subject"),
            ("/desk/news/schedule", {"when": "2020-01-01T07:00"}, "when"),
            ("/desk/news/add-url", {"url": "file:///etc/passwd"}, "url")]:
        html = post(editor_client, path, **fields).text
        assert f'aria-invalid="true" aria-describedby="{field}-error"' in html, path
        assert html.count('aria-invalid="true"') == 1, path
        assert all(f"{value}</textarea>" in html or f'value="{value}"' in html
                   for value in fields.values()), path


def test_a_sending_edition_refuses_edits_with_a_clear_page(
        app: App, editor_client: TestClient, news: World) -> None:
    start(editor_client)
    item = items(app)[0]
    with app.sessions() as s:  # the scheduler starts it while the editor has the page open
        app.start_sending(s, s.get_one(Edition, item.edition_id), get_list(s, "news"))
    for path, fields in [(f"/desk/news/items/{item.id}/drop", {}),
                         (f"/desk/news/items/{item.id}/edit", {"title": "Too late"}),
                         ("/desk/news/intro", {"subject": "Too late", "intro": ""}),
                         ("/desk/news/approve", {})]:
        answer = post(editor_client, path, **fields)
        assert answer.status_code == 409, path
        assert "Edition #1 is already being sent; nothing changed" in answer.text
        assert "Being sent" in answer.text and 'action="/desk/news/intro"' not in answer.text
    assert items(app)[0].title == item.title and len(items(app)) == 20
    assert edition_row(app).subject != "Too late"


def test_a_page_showing_an_edition_that_went_out_changes_nothing(
        app: App, editor_client: TestClient, news: World, clock: Clock) -> None:
    start(editor_client)
    edition = edition_row(app)
    with app.sessions() as s:
        app.start_sending(s, s.get_one(Edition, edition.id), get_list(s, "news"))
    app.deliver(edition.id)
    clock.advance(hours=1)
    assert edition_row(app).status == EditionStatus.SENT
    # Back to the desk (303: reloading it posts nothing again), which says why.
    answer = post(editor_client, "/desk/news/intro", subject="Late", intro="")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/desk/news?error=closed"
    assert ("The edition this page showed is no longer open (it was sent, or withdrawn); "
            "nothing was changed") in text_of(editor_client.get(answer.headers["location"]).text)
    fresh(app, clock)
    start(editor_client)  # edition #2
    answer = post(editor_client, "/desk/news/intro", edition=1, subject="Late", intro="")
    assert answer.status_code == 303
    assert "no longer the list's current one, #2" in text_of(
        editor_client.get(answer.headers["location"]).text)


def test_an_article_added_by_url_never_brings_its_scripts(
        app: App, editor_client: TestClient, news: World, loopback_pages: None) -> None:
    start(editor_client)
    with feed_server(lambda path: _page(HOSTILE) if path == "/story" else None) as base:
        answer = post(editor_client, "/desk/news/add-url", url=f"{base}/story")
        assert answer.status_code == 303, answer.text
        missing = post(editor_client, "/desk/news/add-url", url=f"{base}/gone")
        assert missing.status_code == 502 and "HTTP 500" in missing.text
        assert f'value="{base}/gone"' in missing.text  # the field keeps what was typed
    added = items(app)[-1]
    assert added.article_id is None and added.source_title == "127.0.0.1"
    assert answer.headers["location"] == f"/desk/news?done=added&item={added.id}"
    desk = editor_client.get("/desk/news").text
    preview = editor_client.get("/desk/news/preview.html").text
    for html in (desk, preview):
        assert added.title in unescape(html)
        assert "alert(" not in html and "evil.example" not in html
        assert "<iframe" not in html.replace('<iframe src="/desk/news/preview.html"', "")
        assert "<script" not in html and "javascript:" not in html


def test_adding_by_url_refuses_what_is_not_a_web_page(
        app: App, editor_client: TestClient, news: World) -> None:
    start(editor_client)
    answer = post(editor_client, "/desk/news/add-url", url="file:///etc/passwd")
    assert answer.status_code == 400
    assert "Is not a web address" in answer.text or "is not a web address" in answer.text
    assert len(items(app)) == 20


def test_adding_by_url_can_start_the_draft(
        app: App, editor_client: TestClient, world: World, loopback_pages: None) -> None:
    """No new articles, no draft: the page added becomes the edition's first item."""
    assert "Start the next edition" in editor_client.get("/desk/news").text
    with feed_server(lambda path: _page()) as base:
        answer = post(editor_client, "/desk/news/add-url", edition=0, url=f"{base}/story")
    assert answer.status_code == 303, answer.text
    [item] = items(app)
    assert item.link == f"{base}/story" and edition_row(app).status == EditionStatus.DRAFT


def test_a_test_goes_to_the_editor_alone_and_touches_no_ledger(
        app: App, editor_client: TestClient, news: World) -> None:
    start(editor_client)
    post(editor_client, "/desk/news/intro", subject="Friday", intro="Hello.")
    answer = post(editor_client, "/desk/news/test")
    assert answer.headers["location"] == "/desk/news?done=tested"
    [mail] = outbox(app)
    assert mail["To"] == f"Ed Editor <{EDITOR_EMAIL}>"
    assert mail["Subject"] == "[Test] Friday"
    assert deliveries(app) == 0 and edition_row(app).status == EditionStatus.DRAFT
    assert "A test copy is on its way to you." in editor_client.get(answer.headers["location"]).text


def _more_readers(app: App, clock: Clock) -> None:
    """Carol confirmed, Dave confirmed but suppressed: with Alice, two recipients."""
    with app.sessions() as s:
        news = get_list(s, "news")
        add_member(s, news, CAROL, confirmed=True, now=clock())
        add_member(s, news, DAVE, confirmed=True, now=clock())
        suppress(s, DAVE, reason="complaint", now=clock())
        s.commit()


def test_send_now_goes_to_exactly_the_subscribers_confirmed(
        app: App, editor_client: TestClient, news: World, clock: Clock) -> None:
    _more_readers(app, clock)
    start(editor_client)
    page = editor_client.get("/desk/news/send")
    assert page.status_code == 200
    assert "This edition goes to 2 subscribers." in text_of(page.text)
    assert deliveries(app) == 0  # the confirmation page sends nothing
    answer = post(editor_client, "/desk/news/send", recipients="2")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/desk/news?done=sending"
    assert edition_row(app).status == EditionStatus.SENDING and deliveries(app) == 2
    run_worker(app, threading.Event(), once=True)  # the sender of `digest serve`
    assert sorted(m["To"] for m in outbox(app)) == [ALICE, CAROL]  # not Bob (pending), Dave
    page = editor_client.get("/desk/news")
    assert "No edition in the works" in page.text or "2 sent" in page.text


def test_a_changed_count_asks_again_and_sends_nothing(
        app: App, editor_client: TestClient, news: World, clock: Clock) -> None:
    start(editor_client)
    assert "goes to 1 subscriber." in text_of(editor_client.get("/desk/news/send").text)
    _more_readers(app, clock)  # someone confirms meanwhile
    answer = post(editor_client, "/desk/news/send", recipients="1")
    assert answer.status_code == 409
    assert "changed to 2" in answer.text and "goes to 2 subscribers." in text_of(answer.text)
    assert deliveries(app) == 0 and edition_row(app).status == EditionStatus.DRAFT


def test_nothing_to_send_without_a_draft(editor_client: TestClient, news: World) -> None:
    answer = editor_client.get("/desk/news/send")
    assert answer.status_code == 409 and "there is no draft to send" in answer.text


def test_a_draft_without_articles_is_not_sent_or_approved(
        app: App, editor_client: TestClient, news: World) -> None:
    start(editor_client)
    for item in items(app):
        assert post(editor_client, f"/desk/news/items/{item.id}/drop").status_code == 303
    reason = "Edition #1 of &#39;news&#39; has no articles; add one first"
    page = editor_client.get("/desk/news/send")
    assert page.status_code == 409 and reason in page.text
    answer = post(editor_client, "/desk/news/send", recipients="1")
    assert answer.status_code == 409 and reason in answer.text
    answer = post(editor_client, "/desk/news/approve")
    assert answer.status_code == 409 and reason in answer.text
    assert deliveries(app) == 0 and edition_row(app).status == EditionStatus.DRAFT


def test_the_preview_frames_the_email_exactly_as_sent(
        app: App, editor_client: TestClient, news: World) -> None:
    start(editor_client)
    post(editor_client, "/desk/news/intro", subject="Friday", intro="A calm sea today.")
    page = editor_client.get("/desk/news/preview")
    assert page.status_code == 200
    assert "frame-src 'self'" in page.headers["content-security-policy"]
    assert page.text.count('<iframe src="/desk/news/preview.html"') == 2
    assert 'width="375"' in page.text
    assert "A calm sea today." in page.text  # the plain-text part, shown below
    email = editor_client.get("/desk/news/preview.html")
    assert email.headers["x-frame-options"] == "SAMEORIGIN"
    policy = email.headers["content-security-policy"]
    assert "frame-ancestors 'self'" in policy and "script" not in policy
    with app.sessions() as s:
        shown = app.preview(s.get_one(Edition, edition_row(app).id),
                               get_list(s, "news"), email=EDITOR_EMAIL, name="Ed Editor")
    assert email.text == shown.html
    assert "A calm sea today." in email.text and "__DIGEST_SLOT_" not in email.text


def test_schedule_takes_the_lists_local_time(
        app: App, editor_client: TestClient, world: World, clock: Clock) -> None:
    with app.sessions() as s:
        get_list(s, "news").timezone = "Asia/Seoul"
        s.commit()
    add_articles(app, clock, "news", 3)
    start(editor_client)
    page = editor_client.get("/desk/news").text
    assert 'value="2026-11-28T07:00"' in page  # the list's next cron time, 07:00 Seoul
    answer = post(editor_client, "/desk/news/schedule", when="2026-11-27T18:30")
    assert answer.status_code == 303
    row = edition_row(app)
    assert row.status == EditionStatus.APPROVED
    assert row.scheduled_for == dt.datetime(2026, 11, 27, 9, 30, tzinfo=dt.UTC)
    assert "goes out Fri 27 Nov 2026, 18:30 (Asia/Seoul)" in text_of(
        editor_client.get("/desk/news").text)
    late = post(editor_client, "/desk/news/schedule", when="2026-11-27T08:00")
    assert late.status_code == 400 and "That time has passed" in late.text
    bad = post(editor_client, "/desk/news/schedule", when="tomorrow")
    assert bad.status_code == 400 and "is not a date and time" in bad.text
    post(editor_client, "/desk/news/schedule", clear="1")
    assert edition_row(app).scheduled_for is None


def test_an_unknown_list_is_not_found(editor_client: TestClient, world: World) -> None:
    assert editor_client.get("/desk/nope").status_code == 404
    assert post(editor_client, "/desk/nope/approve").status_code == 404
    assert editor_client.get("/desk/nope/preview").status_code == 404


def test_headlines_are_text_not_markup(
        app: App, editor_client: TestClient, news: World) -> None:
    start(editor_client)
    first = items(app)[0].id
    post(editor_client, f"/desk/news/items/{first}/edit", title="<b>Bold</b> & <i>brave</i>",
         summary="", note="")
    page = editor_client.get("/desk/news").text
    assert "&lt;b&gt;Bold&lt;/b&gt; &amp; &lt;i&gt;brave&lt;/i&gt;" in page
    assert "<b>Bold</b>" not in page


def test_every_desk_route_sends_strangers_to_log_in(
        client: TestClient, world: World, app: App) -> None:
    """The routes as the desk declares them (the security walk checks the app's)."""
    for path in ("/desk", "/desk/news", "/desk/news/preview", "/desk/news/preview.html",
                 "/desk/news/send"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
    for path in ("/desk/news/approve", "/desk/news/fit"):
        assert client.post(path, data={"edition": "1"},
                           follow_redirects=False).status_code in (401, 403)
    assert not Path(app.settings["delivery.outbox_dir"], "new").exists()


def test_the_preview_shows_the_size_and_a_draft_over_the_limit_is_not_sent(
        app: App, editor_client: TestClient, news: World) -> None:
    """Gmail clips mail over 102 KB and hides the unsubscribe link with it: the preview
    says how large the HTML is, and a draft over [edition] html_max_kb is refused."""
    start(editor_client)
    said = text_of(editor_client.get("/desk/news/preview").text)
    assert re.search(r"HTML: \d+ KB of 100 KB \(Gmail clips mail above 102 KB\)", said), said
    for item in items(app):  # the longest blurb and note the desk accepts, on each
        post(editor_client, f"/desk/news/items/{item.id}/edit", title=item.title,
             summary="A long blurb about the harbour. " * 60, note="An editor's note. " * 100)
    said = text_of(editor_client.get("/desk/news/preview").text)
    assert re.search(r"HTML: \d+ KB of 100 KB, over the limit: Gmail would clip it", said), said
    answer = post(editor_client, "/desk/news/send", recipients="1")
    assert answer.status_code == 409
    assert "over the 100 KB limit ([edition] html_max_kb)" in text_of(answer.text)
    assert "Shorten the longest blurbs and notes (stories 1, 2, 3)" in text_of(answer.text)
    assert deliveries(app) == 0 and edition_row(app).status == EditionStatus.DRAFT


def _overfill(app: App, client: TestClient) -> None:
    """The longest blurb and note the desk accepts on every item: well over 100 KB."""
    for item in items(app):
        post(client, f"/desk/news/items/{item.id}/edit", title=item.title,
             summary="A long blurb about the harbour. " * 60, note="An editor's note. " * 100)


def _size(page: str) -> int:
    """The KB the page says the HTML part is."""
    found = re.search(r"HTML: (\d+) KB of 100 KB", text_of(page))
    assert found, text_of(page)
    return int(found[1])


def test_the_desk_shows_the_size_and_makes_a_draft_fit(
        app: App, editor_client: TestClient, news: World) -> None:
    """The desk and the send confirmation say how large the HTML part is, as sending
    measures it (the preview says the same); over [edition] html_max_kb they warn, the
    confirmation has no send button, and "Make it fit" shortens the draft and says how."""
    start(editor_client)
    desk = editor_client.get("/desk/news").text
    assert re.search(r"HTML: \d+ KB of 100 KB \(Gmail clips mail above 102 KB\)",
                     text_of(desk)), text_of(desk)
    assert "Make it fit" not in desk
    assert _size(desk) == _size(editor_client.get("/desk/news/preview").text)
    _overfill(app, editor_client)
    desk = editor_client.get("/desk/news").text
    assert _size(desk) > 100 and "over the limit: Gmail would clip it" in text_of(desk)
    assert 'action="/desk/news/fit"' in desk and "Make it fit" in desk
    assert _size(desk) == _size(editor_client.get("/desk/news/preview").text)
    confirm = editor_client.get("/desk/news/send")
    assert confirm.status_code == 409 and _size(confirm.text) == _size(desk)
    assert "cannot be sent as it stands" in text_of(confirm.text)
    assert "Send to 1 subscriber" not in confirm.text and 'action="/desk/news/fit"' in confirm.text
    answer = post(editor_client, "/desk/news/fit")
    assert answer.status_code == 200, text_of(answer.text)
    said = text_of(answer.text)
    assert re.search(r"HTML was \d+ KB, over the 100 KB limit: shortened \d+ blurb\(s\) and "
                     r"note\(s\).*; now \d+ KB\.", said), said
    assert _size(answer.text) <= 100 and "Make it fit" not in answer.text
    assert any(i.summary.endswith("…") for i in items(app))  # stored, not only shown
    assert _size(editor_client.get("/desk/news").text) == _size(answer.text)
    confirm = editor_client.get("/desk/news/send")
    assert confirm.status_code == 200 and "Send to 1 subscriber" in confirm.text
    assert post(editor_client, "/desk/news/send", recipients="1").status_code == 303
    assert deliveries(app) == 1


def test_a_draft_that_cannot_fit_is_left_as_it_was(
        app: App, editor_client: TestClient, news: World) -> None:
    """Fitting that cannot reach the limit cuts nobody's words: the draft stays as the
    editors left it, and the desk says the best it could reach."""
    start(editor_client)
    _overfill(app, editor_client)
    # An introduction is never cut by fitting: a long Korean one alone is near 20 KB.
    post(editor_client, "/desk/news/intro", subject="항구 소식", intro="항구 소식과 날씨 " * 500)
    app.settings = app.settings.with_overrides(edition__html_max_kb=20)
    before = [(i.id, i.title, i.summary, i.note, i.brief) for i in items(app)]
    held = edition_row(app).held
    answer = post(editor_client, "/desk/news/fit")
    assert answer.status_code == 409
    said = text_of(answer.text)
    assert re.search(r"over the 20 KB limit, and cannot be made to fit \(\d+ KB at best", said)
    assert "nothing was changed" in said
    assert [(i.id, i.title, i.summary, i.note, i.brief) for i in items(app)] == before
    assert edition_row(app).held == held  # nothing more held over for the next edition
    # A page that showed another edition changes nothing either.
    answer = post(editor_client, "/desk/news/fit", edition=7)
    assert answer.status_code == 303 and answer.headers["location"] == "/desk/news?error=changed"
