"""The public archive: lists, a list's sent editions page by page, an edition in the
browser, and the Atom feed; nothing of private or archived lists, nor of drafts."""

from __future__ import annotations

import datetime as dt
from html import escape
from xml.etree import ElementTree as ET

import feedparser
import lxml.html
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select

from digest.app import App
from digest.editions import keep_rendered
from digest.errors import InvalidInput
from digest.gather.sources import add_source
from digest.models import Article, Edition, EditionItem, EditionStatus
from digest.publication import create_list, update_list
from digest.web.archive import ATOM, PAGE_SIZE
from subscribers.lists import archive_list, get_list
from subscribers.members import add_member
from tests.conftest import Clock
from tests.test_mail_a11y import NOW, STORIES, exposed_links, spoken_language, store_edition
from tests.web.conftest import ALICE, World


def publish(app: App, clock: Clock, list_name: str, headline: str, *, send: bool = True) -> None:
    """A day later, one new article for the list; its edition built and, unless told
    otherwise, sent to the list's members (into the outbox)."""
    clock.advance(days=1)
    with app.sessions() as s:
        mlist = get_list(s, list_name)
        source, _ = add_source(s, f"https://{list_name}.example.org/feed.xml", mlist)
        n = s.scalar(select(func.count()).select_from(Article))
        s.add(Article(source_id=source.id, guid=f"a{n}", link=f"https://example.org/a{n}",
                      content_hash=f"h{n}", title=headline, summary=f"{headline}, briefly.",
                      published_at=clock() - dt.timedelta(hours=1), first_seen_at=clock()))
        s.commit()
        if not send:
            app.build(s, list_name)
            return
    report = app.send(list_name)
    assert report is not None and report.finished


@pytest.fixture
def editions(app: App, world: World, clock: Clock) -> None:
    """news: #1 and #2 sent, #3 a draft; sport: #1 sent; staff (private) and old
    (archived): one sent each."""
    with app.sessions() as s:
        staff = create_list(s, "staff", title="Staff Only", from_addr="s@example.org",
                            public=False)
        old = create_list(s, "old", title="Old Times", from_addr="o@example.org")
        add_member(s, staff, ALICE, confirmed=True, now=clock())
        add_member(s, old, ALICE, confirmed=True, now=clock())
        s.commit()
    publish(app, clock, "news", "Ferry timetable changes")
    publish(app, clock, "news", "Council approves sea wall")
    publish(app, clock, "news", "Unsent draft story", send=False)
    publish(app, clock, "sport", "서울 마라톤 개최")
    publish(app, clock, "staff", "Staff party on Friday")
    publish(app, clock, "old", "Old story")
    with app.sessions() as s:
        archive_list(s, get_list(s, "old"), now=clock())
        s.commit()


def test_index_shows_the_public_lists(client: TestClient, editions: None) -> None:
    r = client.get("/archive")
    assert r.status_code == 200
    doc = lxml.html.fromstring(r.text)
    assert doc.xpath("//h2/a/@href") == ["/archive/news", "/archive/sport"]
    assert '<a href="/archive/sport" lang="ko" dir="auto">스포츠 소식</a>' in r.text
    assert "2 editions, the last on" in r.text and "1 edition, the last on" in r.text
    assert "Staff Only" not in r.text and "Old Times" not in r.text


def test_list_page_shows_sent_editions_newest_first(client: TestClient,
                                                     editions: None) -> None:
    r = client.get("/archive/news")
    assert r.status_code == 200
    doc = lxml.html.fromstring(r.text)
    links = doc.xpath('//ol[@class="editions"]//a')
    assert [a.get("href") for a in links] == ["/archive/news/2", "/archive/news/1"]
    assert [a.text_content() for a in links] == [
        "Morning News: Council approves sea wall", "Morning News: Ferry timetable changes"]
    assert "Unsent draft story" not in r.text
    assert doc.xpath('//a[@type="application/atom+xml"]/@href') == ["/archive/news/feed.atom"]
    assert not doc.xpath('//nav[@class="pager"]')  # one page only


def test_private_archived_and_unknown_lists_are_not_found(client: TestClient,
                                                          editions: None) -> None:
    for name in ("staff", "old", "nope"):
        for path in ("", "/1", "/feed.atom"):
            r = client.get(f"/archive/{name}{path}")
            assert r.status_code == 404, (name, path)
            assert "Staff party" not in r.text and "Old story" not in r.text


def test_drafts_and_odd_numbers_are_not_found(client: TestClient, editions: None) -> None:
    for path in ("/archive/news/3", "/archive/news/0", "/archive/news/99", "/archive/news/x",
                 "/archive/news/-1", "/archive/news?page=0", "/archive/news?page=2",
                 "/archive/news?page=x"):
        assert client.get(path).status_code == 404, path


def test_edition_in_the_browser_has_no_slots_and_no_personal_data(
        client: TestClient, editions: None) -> None:
    r = client.get("/archive/news/1")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "Ferry timetable changes" in r.text
    assert "__DIGEST_SLOT_" not in r.text
    assert ALICE not in r.text and "/unsubscribe/" not in r.text
    doc = lxml.html.fromstring(r.text)
    assert not doc.xpath("//script")
    assert "https://news.example.org/subscribe/news" in doc.xpath("//a/@href")
    # The page is not an email sent to whoever reads it: no "sent to" line at all (it
    # said "This email was sent to you." to anyone on the web).
    assert "was sent to" not in r.text and "This email" not in r.text
    assert "You subscribed" not in r.text
    csp = r.headers["Content-Security-Policy"]
    assert "style-src 'unsafe-inline'" in csp and "img-src https: http: data:" in csp
    assert "script" not in csp and "default-src 'none'" in csp and "sandbox" in csp
    # The Korean edition's neutral recipient is in Korean too.
    r = client.get("/archive/sport/1")
    assert "서울 마라톤 개최" in r.text and "__DIGEST_SLOT_" not in r.text
    assert "발송되었습니다" not in r.text and "구독자" not in r.text


def test_atom_feed_parses_and_holds_the_sent_editions(
        client: TestClient, editions: None) -> None:
    r = client.get("/archive/news/feed.atom")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/atom+xml; charset=utf-8"
    feed = feedparser.parse(r.content)
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.version == "atom10"
    assert feed.feed.title == "Morning News"
    assert feed.feed.id.startswith("tag:news.example.org,")
    assert feed.feed.link == "https://news.example.org/archive/news"
    assert [e.title for e in feed.entries] == [
        "Morning News: Council approves sea wall", "Morning News: Ferry timetable changes"]
    first = feed.entries[0]
    assert first.link == "https://news.example.org/archive/news/2"
    assert first.updated_parsed and first.id != feed.entries[1].id
    assert first.content[0].type == "text/html"
    html = first.content[0].value
    assert '<a href="https://example.org/a1">Council approves sea wall</a>' in html
    # The Korean list's feed says its language.
    ko = feedparser.parse(client.get("/archive/sport/feed.atom").content)
    assert not ko.bozo and ko.feed.title == "스포츠 소식" and ko.feed.language == "ko"
    assert [e.title for e in ko.entries] == ["스포츠 소식: 서울 마라톤 개최"]


def test_pages_of_editions(client: TestClient, app: App, world: World, clock: Clock) -> None:
    for i in range(PAGE_SIZE + 1):
        publish(app, clock, "news", f"Story {i + 1}")
    first = lxml.html.fromstring(client.get("/archive/news").text)
    numbers = [a.get("href").rpartition("/")[2] for a in first.xpath('//ol[@class="editions"]//a')]
    assert numbers == [str(n) for n in range(PAGE_SIZE + 1, 1, -1)]
    assert first.xpath('//a[@rel="next"]/@href') == ["/archive/news?page=2"]
    assert not first.xpath('//a[@rel="prev"]')
    second = lxml.html.fromstring(client.get("/archive/news?page=2").text)
    assert [a.get("href") for a in second.xpath('//ol[@class="editions"]//a')] == [
        "/archive/news/1"]
    assert second.xpath('//a[@rel="prev"]/@href') == ["/archive/news"]
    assert "Page 2 of 2" in second.text_content()
    feed = feedparser.parse(client.get("/archive/news/feed.atom").content)
    assert len(feed.entries) == 20 and feed.entries[0].title.endswith(f"Story {PAGE_SIZE + 1}")


def test_empty_archive_and_feed(client: TestClient, world: World) -> None:
    assert "No editions yet" in client.get("/archive").text
    assert "No editions have gone out yet." in client.get("/archive/news").text
    feed = feedparser.parse(client.get("/archive/news/feed.atom").content)
    assert not feed.bozo and feed.entries == []


def test_a_list_made_private_leaves_the_archive_and_the_form(
        client: TestClient, app: App, editions: None) -> None:
    with app.sessions() as s:
        sport = get_list(s, "sport")
        with pytest.raises(InvalidInput, match="public must be true or false"):
            update_list(s, sport, public="no")
        assert update_list(s, sport, public=False) == {"public": (True, False)}
        s.commit()
    assert "스포츠 소식" not in client.get("/archive").text
    assert "스포츠 소식" not in client.get("/subscribe").text
    for path in ("/archive/sport", "/archive/sport/1", "/archive/sport/feed.atom",
                 "/subscribe/sport"):
        assert client.get(path).status_code == 404, path


def test_the_feed_reads_its_editions_in_a_fixed_number_of_queries(
        client: TestClient, app: App, world: World, clock: Clock) -> None:
    """Not one query per edition: three editions cost what one does."""
    def statements() -> int:
        seen: list[str] = []

        def count(*args: object) -> None:
            seen.append(str(args[2]))

        event.listen(app.engine, "before_cursor_execute", count)
        try:
            assert client.get("/archive/news/feed.atom").status_code == 200
        finally:
            event.remove(app.engine, "before_cursor_execute", count)
        return len(seen)

    publish(app, clock, "news", "One")
    one = statements()
    publish(app, clock, "news", "Two")
    publish(app, clock, "news", "Three")
    assert statements() == one


TAGGED = "https://www.huffingtonpost.ca/2017/09/25/hijabi-dolls_a_23222373/?utm_source=x&id=5&fbclid=y"
CLEAN = "https://www.huffingtonpost.ca/2017/09/25/hijabi-dolls_a_23222373/?id=5"


def _sent_with_items(app: App, clock: Clock, list_name: str) -> None:
    """A sent edition of `list_name`: a dated story with a tagged link, an undated one
    (fetched at 07:20), and a tagged link in the "also new" list."""
    now = clock()
    fetched = now.replace(hour=7, minute=20)
    with app.sessions() as s:
        mlist = get_list(s, list_name)
        edition = Edition(list_id=mlist.id, number=1, status=EditionStatus.DRAFT,
                          subject="Dolls", since=now - dt.timedelta(days=1), cutoff=now)
        edition.items = [
            EditionItem(position=0, title="Hijabi dolls", link=TAGGED, summary="Dolls.",
                        source_title="HuffPost Canada", published_at=fetched),
            EditionItem(position=1, title="An old undated post", summary="Old.",
                        link="https://example.org/old", source_title="Journal",
                        published_at=fetched, dated=False),
            EditionItem(position=2, title="More dolls", link=TAGGED + "&page=2",
                        summary="Not in the list.", source_title="HuffPost Canada",
                        published_at=fetched, brief=True),
        ]
        s.add(edition)
        s.flush()
        keep_rendered(edition, app.render(edition, mlist), now)
        edition.status, edition.sent_at = EditionStatus.SENT, now
        s.commit()


@pytest.mark.parametrize("keep_tracking", [False, True])
def test_archive_links_lose_tracking_and_undated_items_show_no_time(
        client: TestClient, app: App, world: World, clock: Clock, keep_tracking: bool) -> None:
    with app.sessions() as s:
        update_list(s, get_list(s, "news"), timezone="UTC", keep_tracking=keep_tracking)
        s.commit()
    _sent_with_items(app, clock, "news")
    page = lxml.html.fromstring(client.get("/archive/news/1").text)
    feed = feedparser.parse(client.get("/archive/news/feed.atom").content)
    html = feed.entries[0].content[0].value
    link = TAGGED if keep_tracking else CLEAN
    assert page.xpath("//h2/a/@href")[0] == link
    assert page.xpath("//a[@class='also-link']/@href") == [link + "&page=2"]
    assert f'<a href="{escape(link)}">Hijabi dolls</a>' in html
    assert f'<a href="{escape(link + "&page=2")}">More dolls</a>' in html
    assert ("utm_source" in html + client.get("/archive/news/1").text) is keep_tracking
    metas = [p.text_content() for p in page.xpath("//p[contains(@class, 'meta')]")]
    assert metas == ["HuffPost Canada · 7:20 AM", "Journal"]
    # The feed's "also new" list: headline, link and source, no blurb.
    assert "<h3>Also new</h3>" in html and "Not in the list." not in html


def test_the_browser_copy_shows_http_images_as_the_mail_does(
        client: TestClient, app: App, world: World, clock: Clock) -> None:
    """A feed's photo and a list's logo over plain http show in mail clients; the
    browser copy's Content-Security-Policy lets them show there too."""
    photo = "http://www.harbourtimes.example/images/2026/ferry-dawn.jpg"
    logo = "http://www.harbourtimes.example/logo.png"
    with app.sessions() as s:
        update_list(s, get_list(s, "news"), logo_url=logo)
        source, _ = add_source(s, "https://news.example.org/feed.xml", get_list(s, "news"))
        s.add(Article(source_id=source.id, guid="p1", link="https://example.org/p1",
                      content_hash="p1", title="Ferry at dawn", summary="The first ferry.",
                      image_url=photo, image_width=1200, image_height=800,
                      published_at=clock() - dt.timedelta(hours=1), first_seen_at=clock()))
        s.commit()
    report = app.send("news")
    assert report is not None and report.finished
    page = client.get("/archive/news/1")
    assert page.status_code == 200
    images = lxml.html.fromstring(page.text).xpath("//img/@src")
    assert photo in images and logo in images
    img_src = next(part.split()[1:] for part in
                   page.headers["Content-Security-Policy"].split(";")
                   if part.split()[0] == "img-src")
    assert "http:" in img_src and "https:" in img_src


def test_the_browser_copy_reads_each_story_once_and_in_its_language(
        client: TestClient, app: App, world: World) -> None:
    """The edition's page is the mail: a screen reader meets one link per story, its
    headline, and a Korean story of an English list in Korean; the feed says so too."""
    store_edition(app)
    with app.sessions() as s:
        mlist = get_list(s, "morning")
        update_list(s, mlist, public=True)
        edition = s.scalar(select(Edition).where(Edition.list_id == mlist.id))
        assert edition is not None
        keep_rendered(edition, app.render(edition, mlist), NOW)
        edition.status, edition.sent_at = EditionStatus.SENT, NOW
        s.commit()
    doc = lxml.html.fromstring(client.get("/archive/morning/1").text)
    for story in STORIES:
        [link] = exposed_links(doc, story.link)
        assert link.text_content() == story.title
        assert spoken_language(link) == ("ko" if story.language == "ko" else "en"), story.title
    feed = ET.fromstring(client.get("/archive/morning/feed.atom").content)
    content = feed.findtext(f"{{{ATOM}}}entry/{{{ATOM}}}content") or ""
    entry = lxml.html.fragment_fromstring(content, create_parent="div")
    for story in STORIES:
        [link] = entry.xpath(".//a[.=$title]", title=story.title)
        language = next((e.get("lang") for e in link.iterancestors() if e.get("lang")), "")
        assert language == ("ko" if story.language == "ko" else ""), story.title
    more = entry.xpath(".//a[.='Read the full story']")
    assert more and not [a for a in more if any(e.get("lang") for e in a.iterancestors())]


def _footer(html: str) -> list[lxml.html.HtmlElement]:
    doc = lxml.html.document_fromstring(html)
    return doc.xpath("//p[contains(concat(' ', normalize-space(@class), ' '), ' footer ')]")


def test_an_archived_edition_shows_an_archive_footer_not_the_mails(
        client: TestClient, app: App, editions: None) -> None:
    """The mail's footer ("This email was sent to you", Unsubscribe, Manage preferences,
    View in browser) is replaced by "From the archive of <list>: All editions ·
    Subscribe", in the list's language, styled as the mail's footer was."""
    r = client.get("/archive/news/1")
    footer = _footer(r.text)
    text = " ".join(" ".join(p.text_content().split()) for p in footer)
    assert "From the archive of Morning News: All editions · Subscribe" in text
    for gone in ("Unsubscribe", "Manage preferences", "View in browser", "sent to"):
        assert gone not in lxml.html.document_fromstring(r.text).text_content(), gone
    line = next(p for p in footer if "From the archive" in p.text_content())
    assert [(a.text_content(), a.get("href")) for a in line.iter("a")] == [
        ("All editions", "https://news.example.org/archive/news"),
        ("Subscribe", "https://news.example.org/subscribe/news")]
    assert line.get("style") and all(a.get("style") for a in line.iter("a"))
    assert client.get("/archive/news").status_code == 200
    assert r.headers["Content-Security-Policy"].startswith("default-src 'none'")

    korean = " ".join(p.text_content() for p in _footer(client.get("/archive/sport/1").text))
    assert "스포츠 소식 지난 호 보관함" in korean and "모든 호 보기" in korean
    assert "구독하기" in korean and "From the archive" not in korean


def test_a_private_lists_archive_footer_offers_no_public_links(
        client: TestClient, app: App, editions: None) -> None:
    with app.sessions() as s:
        mlist = get_list(s, "staff")
        edition = s.scalars(select(Edition).where(Edition.list_id == mlist.id)).one()
        url = app.view_url(edition, mlist)
    r = client.get(url[url.index("/archive/"):])
    assert r.status_code == 200, r.text
    line = next(p for p in _footer(r.text) if "From the archive" in p.text_content())
    assert " ".join(line.text_content().split()) == "From the archive of Staff Only"
    assert not line.xpath(".//a") and "/subscribe/" not in r.text
