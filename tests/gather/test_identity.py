"""An article's identity when it is stored: each story of a source once, none lost.

Feeds are served on loopback and fetched through `App.fetch`, as the scheduler does;
the stories are real feeds of the corpus (tests/data/feeds) or shaped on them.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import re
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from digest.app import App
from digest.gather.feeds import Entry, parse_feed
from digest.gather.feeds import Feed as Parsed
from digest.gather.sources import add_source, store_entries
from digest.models import Article, Source
from digest.publication import create_list
from subscribers.members import add_member
from tests.conftest import DATA, Clock

from .conftest import Handler, Loopback, fetch_one

FEEDS = DATA / "feeds"


class Feed:
    """The document the loopback server hands out at /feed.xml, changed between fetches."""

    def __init__(self, server: Loopback, body: bytes = b"") -> None:
        self.body = body
        self.status = 200
        server.route("/feed.xml")(self._reply)

    def _reply(self, h: Handler) -> None:
        h.reply(self.body, self.status, Content_Type="application/rss+xml")


def _source(app: App, server: Loopback) -> int:
    with app.sessions() as s:
        source = Source(url=server.url("/feed.xml"))
        s.add(source)
        s.commit()
        return source.id


def _articles(app: App, source_id: int) -> list[Article]:
    with app.sessions() as s:
        return list(s.scalars(select(Article).where(Article.source_id == source_id)
                              .order_by(Article.id)))


def _rss(*items: str) -> bytes:
    return ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>heise online News</title><link>https://www.heise.de/newsticker/</link>"
            f"{''.join(items)}</channel></rss>").encode()


def _item(title: str, link: str, teaser: str, *, guid: str = "", date: str = "") -> str:
    return (f"<item><title>{title}</title><link>{link}</link>"
            + (f'<guid isPermaLink="false">{guid}</guid>' if guid else "")
            + f"<description>{teaser}</description>"
            + (f"<pubDate>{date}</pubDate>" if date else "") + "</item>")


# -- undated items ----------------------------------------------------------------------

HEISE = (FEEDS / "mf_heise_rss090.rdf").read_bytes()  # 60 items, none of them dated
HEISE_NEW = b"""
	<item>
		<title>Raspberry Pi 3 Model A+ vorgestellt</title>
		<link>https://www.heise.de/newsticker/meldung/Raspberry-Pi-3-Model-A-4216384.html?wt_mc=rss.ho.beitrag.rdf</link>
			<description>Die Raspberry Pi Foundation bringt den kleinen Pi 3B+.</description>
	</item>
"""


def test_undated_items_of_the_first_fetch_are_backlog_later_ones_are_news(
        app: App, server: Loopback, clock: Clock) -> None:
    feed = Feed(server)
    feed.status = 503  # a first fetch that fails is no first fetch
    source_id = _source(app, server)
    assert fetch_one(app, source_id).status == "error"
    feed.status, feed.body = 200, HEISE
    first = clock.advance(minutes=15)
    assert (fetch_one(app, source_id).new) == 60
    stored = _articles(app, source_id)
    assert {(a.backlog, a.date_from_feed, a.published_at) for a in stored} == {
        (True, False, first)}
    # Heise puts a new story on top; it has no date either, but it is news.
    feed.body = HEISE.replace(b"</channel>\n", b"</channel>\n" + HEISE_NEW, 1)
    assert HEISE_NEW in feed.body
    later = clock.advance(minutes=15)
    assert fetch_one(app, source_id).new == 1
    *old, new = _articles(app, source_id)
    assert new.title == "Raspberry Pi 3 Model A+ vorgestellt"
    assert (new.backlog, new.date_from_feed, new.published_at) == (False, False, later)
    assert len(old) == 60 and all(a.backlog and a.published_at == first for a in old)


# -- links ------------------------------------------------------------------------------

OLED = "www.heise.de/newsticker/meldung/OLED-TVs-Vorsichtsmassnahmen-gegen-Einbrennen-4205274"
IBM = "www.heise.de/newsticker/meldung/Mega-Deal-IBM-uebernimmt-Red-Hat-4205582"
EPIC = "www.heise.de/newsticker/meldung/Fortnite-Macher-Epic-Games-soll-15-Milliarden"


def test_a_link_that_gains_tracking_https_or_a_slash_is_the_same_article(
        app: App, server: Loopback, clock: Clock) -> None:
    # Heise's items have no guid and no date; its links carry a Webtrekk tag, which
    # names the feed they came through. Between fetches each teaser was reworded.
    feed = Feed(server, _rss(
        _item("OLED-TVs: Vorsichtsmaßnahmen gegen Einbrennen",
              f"http://{OLED}.html?wt_mc=rss.ho.beitrag.rdf", "Wer gerade einen OLED kauft."),
        _item("Mega-Deal: IBM übernimmt Red Hat", f"http://{IBM}.html",
              "Giganten-Hochzeit in den USA."),
        _item("Fortnite-Macher: Epic Games soll 15 Milliarden Dollar wert sein",
              f"https://{EPIC}", "Epic Games konnte neue Geldgeber überzeugen.")))
    source_id = _source(app, server)
    assert fetch_one(app, source_id).new == 3
    feed.body = _rss(
        _item("OLED-TVs: Vorsichtsmaßnahmen gegen Einbrennen",
              f"https://{OLED}.html?wt_mc=rss.ho.beitrag.atom&utm_source=rss",
              "Wer gerade einen OLED-Fernseher kauft, sollte Hinweise beachten."),
        _item("Mega-Deal: IBM übernimmt Red Hat", f"https://{IBM}.html",
              "Giganten-Hochzeit in den USA: IBM zahlt 30 Milliarden Euro."),
        _item("Fortnite-Macher: Epic Games soll 15 Milliarden Dollar wert sein",
              f"https://{EPIC}/", "Insgesamt flossen 1,25 Milliarden US-Dollar."))
    clock.advance(minutes=15)
    report = fetch_one(app, source_id)
    assert (report.new, report.seen) == (0, 3)
    assert [a.link_key for a in _articles(app, source_id)] == [f"{OLED}.html", f"{IBM}.html",
                                                                EPIC]


def test_an_article_stored_under_its_pages_canonical_link_is_known_by_the_feeds_link(
        app: App, clock: Clock) -> None:
    # WordPress feeds may link an article by its short link; the page names its
    # permalink. The next fetch has the short link only, without the tag this time.
    def feed(link: str, teaser: str) -> list[Entry]:
        doc = _rss(_item("Harbour ferry back in service", link, teaser,
                         date="Fri, 27 Nov 2026 05:00:00 GMT"))
        return parse_feed(doc, "https://harbour.example/feed/", now=clock()).entries

    def page(entry: Entry) -> Entry:
        return dataclasses.replace(entry, canonical="https://harbour.example/2026/11/ferry/")

    with app.sessions() as s:
        source = Source(url="https://harbour.example/feed/", full_text=True)
        s.add(source)
        s.flush()
        first = feed("https://harbour.example/?p=4711&utm_source=rss", "The ferry sails.")
        assert _store(s, source, first, clock, page) == 1
        (article,) = s.scalars(select(Article))
        assert article.link_key == "harbour.example/2026/11/ferry"
        again = feed("https://harbour.example/?p=4711", "The ferry sails again at six.")
        assert _store(s, source, again, clock, page) == 0


def _store(s: Session, source: Source, entries: list[Entry], clock: Clock,
           enrich: Callable[[Entry], Entry]) -> int:
    new, _seen, _backlog = store_entries(s, source, Parsed("Harbour", "", "en", entries),
                                         clock(), 200, enrich)
    source.last_success_at = clock()
    s.flush()
    return new


# -- guids ------------------------------------------------------------------------------

SCRIPTING = (FEEDS / "nnw_scriptingNews.rss").read_bytes()
ITEM = re.compile(rb"<item>.*?</item>\s*", re.S)


def _without(doc: bytes, *dates: bytes) -> bytes:
    """The document without the items published at those times."""
    return ITEM.sub(lambda m: b"" if any(d in m.group(0) for d in dates) else m.group(0), doc)


def test_two_posts_under_one_guid_are_both_kept(app: App, server: Loopback,
                                               clock: Clock) -> None:
    # scripting.com gave two posts of a day one guid and link (same minute's anchor):
    # "Good morning Internet guzzlers!" at 12:27:31, the Dropbox post at 12:32:31.
    later = (b"Sun, 25 Jun 2017 12:32:31 GMT", b"Sat, 24 Jun 2017 14:52:32 GMT")
    feed = Feed(server, _without(SCRIPTING, *later))
    source_id = _source(app, server)
    assert fetch_one(app, source_id).new == 48  # fetched before the second posts were up
    feed.body = SCRIPTING
    clock.advance(minutes=15)
    report = fetch_one(app, source_id)
    assert (report.new, report.seen) == (2, 50)
    stored = _articles(app, source_id)
    twins = [a for a in stored if a.link == "http://scripting.com/2017/06/25.html#a080631"]
    assert [a.summary[:20] for a in twins] == ["Good morning Interne", "In 2015 I wrote that"]
    assert twins[1].guid.startswith("http://scripting.com/2017/06/25.html#a080631#reused-")
    clock.advance(minutes=15)
    assert fetch_one(app, source_id).new == 0
    # A first fetch of the whole document keeps all 50 as well.
    with app.sessions() as s:
        s.execute(delete(Article))
        s.get_one(Source, source_id).last_success_at = None
        s.commit()
    assert fetch_one(app, source_id).new == 50


def test_posts_told_apart_only_by_their_links_anchors_are_all_kept(
        app: App, server: Loopback, clock: Clock) -> None:
    # scripting.com without its guids: each post is an anchor on the day's page, which
    # is all a reader (and the dedup) has to tell them by.
    doc = re.sub(rb"\s*<guid>[^<]*</guid>", b"", SCRIPTING)
    assert b"<guid>" not in doc
    feed = Feed(server, _without(doc, b"Mon, 26 Jun 2017 19:40:58 GMT"))
    source_id = _source(app, server)
    assert fetch_one(app, source_id).new == 49
    # The 19:40 post is up, and the morning post of that day was edited.
    morning = b"<description>Good morning students and teachers! \xf0\x9f\x8d\x8f</description>"
    assert morning in doc
    feed.body = doc.replace(morning, morning.replace(b"teachers!", b"teachers, and parents!"))
    clock.advance(minutes=15)
    report = fetch_one(app, source_id)
    assert (report.new, report.seen) == (1, 50)
    (late,) = [a for a in _articles(app, source_id)
               if a.link == "http://scripting.com/2017/06/26.html#a030658"]
    assert late.summary.startswith("This is the human side of Health care")
    clock.advance(minutes=15)
    assert fetch_one(app, source_id).new == 0
    assert len(_articles(app, source_id)) == 50


def test_a_guid_given_to_another_post_is_another_article(app: App, server: Loopback,
                                                         clock: Clock) -> None:
    day = "Fri, 27 Nov 2026 0{}:00:00 GMT"
    feed = Feed(server, _rss(
        _item("Council approves sea wall", "https://harbour.example/news/sea-wall",
              "The council voted 7 to 2.", guid="story-17", date=day.format(5)),
        _item("Ferry back in service", "https://harbour.example/news/ferry",
              "The ferry sails at six.", guid="story-18", date=day.format(6))))
    source_id = _source(app, server)
    assert fetch_one(app, source_id).new == 2
    # An edited teaser under the same guid and link, and a moved link with the same
    # text, are the same articles.
    feed.body = _rss(
        _item("Council approves sea wall", "https://harbour.example/news/sea-wall",
              "The council voted 7 to 2; work starts in May.", guid="story-17",
              date=day.format(5)),
        _item("Ferry back in service", "https://harbour.example/2026/11/27/ferry",
              "The ferry sails at six.", guid="story-18", date=day.format(6)))
    clock.advance(minutes=15)
    assert fetch_one(app, source_id).new == 0
    # The CMS hands story-17 to a new post: another link, other words.
    festival = _item("Harbour festival this weekend", "https://harbour.example/news/festival",
                     "Boats, music and fish soup.", guid="story-17", date=day.format(7))
    feed.body = _rss(festival, _item(
        "Ferry back in service", "https://harbour.example/2026/11/27/ferry",
        "The ferry sails at six.", guid="story-18", date=day.format(6)))
    clock.advance(minutes=15)
    assert fetch_one(app, source_id).new == 1
    stored = {a.title: a for a in _articles(app, source_id)}
    assert sorted(stored) == ["Council approves sea wall", "Ferry back in service",
                              "Harbour festival this weekend"]
    # The edit of the second fetch was stored; the festival did not overwrite it.
    assert stored["Council approves sea wall"].summary == \
        "The council voted 7 to 2; work starts in May."
    assert stored["Ferry back in service"].link == "https://harbour.example/2026/11/27/ferry"
    assert stored["Harbour festival this weekend"].guid.startswith("story-17#reused-")
    clock.advance(minutes=15)
    assert fetch_one(app, source_id).new == 0
    # The sea wall story back in the feed beside the festival: both are known.
    feed.body = _rss(festival, _item(
        "Council approves sea wall", "https://harbour.example/news/sea-wall",
        "The council voted 7 to 2.", guid="story-17", date=day.format(5)))
    assert fetch_one(app, source_id).new == 0
    stored = {a.title: a for a in _articles(app, source_id)}
    assert len(stored) == 3
    assert stored["Council approves sea wall"].summary == "The council voted 7 to 2."
    assert stored["Harbour festival this weekend"].summary == "Boats, music and fish soup."


def test_two_posts_with_one_link_and_their_own_guids_are_both_kept(
        app: App, server: Loopback) -> None:
    # Daring Fireball links a sponsor's site from a "[Sponsor]" post and again from the
    # week's thank-you post: one link, two guids, two texts.
    Feed(server, (FEEDS / "nnw_DaringFireball.atom").read_bytes())
    source_id = _source(app, server)
    assert fetch_one(app, source_id).new == 48
    titles = [a.title for a in _articles(app, source_id) if a.link == "http://mnml.af/"]
    assert sorted(titles) == ["Mnml – A Mac Client for Medium",
                              "[Sponsor] MNML: A macOS Writing App for Medium.com"]


def test_a_post_edited_beside_a_new_one_under_its_guid_and_link_is_updated(
        app: App, server: Loopback, clock: Clock) -> None:
    # scripting.com gives two posts of a minute one guid and link. Here the morning
    # post is edited in the same fetch that brings the Dropbox post under its guid.
    later = b"Sun, 25 Jun 2017 12:32:31 GMT"
    morning = b"<description>Good morning Internet guzzlers! \xf0\x9f\x8d\xba</description>"
    assert morning in SCRIPTING
    feed = Feed(server, _without(SCRIPTING, later))
    source_id = _source(app, server)
    assert fetch_one(app, source_id).new == 49
    feed.body = SCRIPTING.replace(morning, morning.replace(b"guzzlers!",
                                                           b"guzzlers, and a good week!"))
    clock.advance(minutes=15)
    report = fetch_one(app, source_id)
    assert (report.new, report.seen) == (1, 50)
    stored = _articles(app, source_id)
    twins = [a for a in stored if a.link == "http://scripting.com/2017/06/25.html#a080631"]
    assert [a.summary[:38] for a in twins] == ["Good morning Internet guzzlers, and a ",
                                               "In 2015 I wrote that Dropbox could be "]
    assert twins[1].guid.startswith("http://scripting.com/2017/06/25.html#a080631#reused-")
    assert len(stored) == 50
    clock.advance(minutes=15)
    assert fetch_one(app, source_id).new == 0
    assert [(a.id, a.summary) for a in _articles(app, source_id)] == [
        (a.id, a.summary) for a in stored]


def test_an_edited_headline_and_body_beside_a_new_post_under_one_guid_and_link(
        app: App, server: Loopback, clock: Clock) -> None:
    # A CMS that links its posts by id hands story-17 and its link to the festival
    # post, and the sea wall story gets a new headline and teaser in the same fetch.
    link = "https://harbour.example/news?id=17"
    day = "Fri, 27 Nov 2026 0{}:00:00 GMT"
    feed = Feed(server, _rss(_item("Council approves sea wall", link,
                                   "The council voted 7 to 2.", guid="story-17",
                                   date=day.format(5))))
    source_id = _source(app, server)
    assert fetch_one(app, source_id).new == 1
    feed.body = _rss(
        _item("Harbour festival this weekend", link, "Boats, music and fish soup.",
              guid="story-17", date=day.format(7)),
        _item("Council approves sea wall, work starts in May", link,
              "The council voted 7 to 2; the wall is built by autumn.", guid="story-17",
              date=day.format(5)))
    clock.advance(minutes=15)
    assert fetch_one(app, source_id).new == 1
    stored = _articles(app, source_id)
    assert [(a.title, a.summary) for a in stored] == [
        ("Council approves sea wall, work starts in May",
         "The council voted 7 to 2; the wall is built by autumn."),
        ("Harbour festival this weekend", "Boats, music and fish soup.")]
    assert stored[0].guid == "story-17" and stored[1].guid.startswith("story-17#reused-")
    clock.advance(minutes=15)
    assert fetch_one(app, source_id).new == 0
    assert len(_articles(app, source_id)) == 2


def test_a_headline_and_slug_fixed_under_the_same_guid_and_date_is_the_same_post(
        app: App, server: Loopback, clock: Clock) -> None:
    # WordPress: the guid is the post's ?p= address; the slug follows the headline, so
    # an editor fixing a typo in the headline changes the link as well.
    date = "Fri, 27 Nov 2026 05:00:00 +0000"
    feed = Feed(server, _rss(_item(
        "Ferry bakc in service", "https://harbour.example/2026/11/27/ferry-bakc-in-service/",
        "The ferry sails at six.", guid="https://harbour.example/?p=4711", date=date)))
    source_id = _source(app, server)
    assert fetch_one(app, source_id).new == 1
    feed.body = _rss(_item(
        "Ferry back in service", "https://harbour.example/2026/11/27/ferry-back-in-service/",
        "The ferry sails at six.", guid="https://harbour.example/?p=4711", date=date))
    clock.advance(minutes=15)
    assert fetch_one(app, source_id).new == 0
    (article,) = _articles(app, source_id)
    assert (article.title, article.link, article.guid) == (
        "Ferry back in service", "https://harbour.example/2026/11/27/ferry-back-in-service/",
        "https://harbour.example/?p=4711")
    assert article.link_key == "harbour.example/2026/11/27/ferry-back-in-service"
    # The same guid on another day, with another link and other words, is another post.
    feed.body = _rss(_item(
        "Night buses return", "https://harbour.example/2026/11/28/night-buses/",
        "Three lines run again.", guid="https://harbour.example/?p=4711",
        date="Sat, 28 Nov 2026 05:00:00 +0000"))
    clock.advance(minutes=15)
    assert fetch_one(app, source_id).new == 1
    assert [a.title for a in _articles(app, source_id)] == ["Ferry back in service",
                                                            "Night buses return"]


# -- edits and editions -----------------------------------------------------------------

def _mail_text(app: App) -> list[str]:
    """The text part of each mail in the outbox, oldest first."""
    folder = Path(app.settings["delivery.outbox_dir"]) / "new"
    mails = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
             for p in sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime_ns)]
    return [m.get_body(("plain",)).get_content()  # type: ignore[union-attr]
            for m in mails if isinstance(m, EmailMessage)]


def _headlines(app: App) -> list[str] | None:
    """The headlines of the next edition, built as `digest edition build` does."""
    with app.sessions() as s:
        edition, _created = app.build(s, "harbour")
        s.commit()
        return None if edition is None else [i.title for i in edition.items]


def _harbour_list(app: App, server: Loopback, clock: Clock) -> None:
    """The list "harbour", its one source this server's feed, and a reader."""
    with app.sessions() as s:
        mlist = create_list(s, "harbour", title="Harbour Daily",
                            from_addr="Harbour Daily <news@harbour.example>",
                            timezone="Europe/London", postal_address="1 Quay St, Harbour")
        add_source(s, server.url("/feed.xml"), mlist)
        add_member(s, mlist, "reader@example.org", confirmed=True, now=clock())
        s.commit()


def test_an_edit_goes_out_as_edited_and_an_edited_article_that_went_out_stays_out(
        app: App, server: Loopback, clock: Clock) -> None:
    link = "https://harbour.example/2026/11/27/ferry-bakc-in-service/"
    ferry = ("Ferry bakc in service", link, "The ferry sails at six.")
    date = "Fri, 27 Nov 2026 05:00:00 +0000"
    feed = Feed(server, _rss(_item(*ferry, guid="https://harbour.example/?p=4711",
                                   date=date)))
    _harbour_list(app, server, clock)
    assert fetch_one(app, 1).new == 1
    # The editor fixes the headline's typo before the digest goes out: the fix goes.
    link = link.replace("bakc", "back")
    fixed = ("Ferry back in service", link, "The ferry sails at six, and at seven.")
    feed.body = _rss(_item(*fixed, guid="https://harbour.example/?p=4711", date=date))
    clock.advance(minutes=15)
    assert fetch_one(app, 1).new == 0
    assert _headlines(app) == ["Ferry back in service"]
    report = app.send("harbour")
    assert report is not None and report.finished
    (text,) = _mail_text(app)
    assert "Ferry back in service" in text and "bakc" not in text
    assert "The ferry sails at six, and at seven." in text
    # Edited again after it went out, beside a new post: only the new post is news.
    clock.advance(hours=1)
    feed.body = _rss(
        _item("Ferry back in service after repairs", link, "The ferry sails at six.",
              guid="https://harbour.example/?p=4711", date=date),
        _item("Night buses return", "https://harbour.example/2026/11/27/night-buses/",
              "Three lines run again.", guid="https://harbour.example/?p=4712",
              date="Fri, 27 Nov 2026 06:30:00 +0000"))
    assert fetch_one(app, 1).new == 1
    assert _headlines(app) == ["Night buses return"]
    assert [a.title for a in _articles(app, 1)] == ["Ferry back in service after repairs",
                                                    "Night buses return"]


def test_an_edit_of_a_full_text_article_whose_page_fails_keeps_the_pages_text(
        app: App, clock: Clock) -> None:
    # The page enricher hands an entry back as the feed gave it when its page fails.
    def feed(title: str) -> list[Entry]:
        doc = _rss(_item(title, "https://harbour.example/2026/11/27/ferry/",
                         "The ferry sails.", guid="https://harbour.example/?p=4711",
                         date="Fri, 27 Nov 2026 05:00:00 GMT"))
        return parse_feed(doc, "https://harbour.example/feed/", now=clock()).entries

    def page(words: str) -> Callable[[Entry], Entry]:
        return lambda e: dataclasses.replace(e, summary=words, content_html=f"<p>{words}</p>")

    def failed(entry: Entry) -> Entry:
        return entry

    with app.sessions() as s:
        source = Source(url="https://harbour.example/feed/", full_text=True)
        s.add(source)
        s.flush()
        assert _store(s, source, feed("Ferry bakc in service"), clock,
                      page("The ferry sails at six from the north quay.")) == 1
        assert _store(s, source, feed("Ferry back in service"), clock, failed) == 0
        (article,) = s.scalars(select(Article))
        s.refresh(article)
        assert (article.title, article.summary) == (
            "Ferry back in service", "The ferry sails at six from the north quay.")
        assert _store(s, source, feed("Ferry back in service at last"), clock,
                      page("The ferry sails at six and at seven.")) == 0
        s.refresh(article)
        assert (article.title, article.summary, article.content_html) == (
            "Ferry back in service at last", "The ferry sails at six and at seven.",
            "<p>The ferry sails at six and at seven.</p>")


# -- one guid, one post; a new guid and a new link, a new post --------------------------

def _episode(n: int, title: str, blurb: str, *, guid: str = "") -> str:
    # Shaped on a podcast feed (atp.fm): one item a day, each with its own guid and link.
    return _item(title, f"https://radio.example/ep/{n}", blurb, guid=guid or f"pod{n}",
                 date=f"{['Fri', 'Sat', 'Sun', 'Mon'][n - 1]}, {26 + n} Nov 2026 05:00:00 GMT")


@pytest.mark.parametrize(("title", "blurb"), [
    ("The Daily Update", "Your daily news podcast. Subscribe for more."),
    ("Weather", ""),
    ("Today&#39;s crossword", "A new puzzle every day. Solve it online or in print."),
])
def test_a_recurring_headline_under_a_new_guid_and_link_is_news(
        app: App, server: Loopback, clock: Clock, title: str, blurb: str) -> None:
    # The same headline and blurb every day: only the guid and the link tell the
    # episodes apart, and each is a new post.
    feed = Feed(server, _rss(_episode(1, title, blurb)))
    _harbour_list(app, server, clock)
    assert fetch_one(app, 1).new == 1
    report = app.send("harbour")
    assert report is not None and report.finished
    # The next day, the new episode above yesterday's.
    clock.advance(days=1)
    feed.body = _rss(_episode(2, title, blurb), _episode(1, title, blurb))
    assert fetch_one(app, 1).new == 1
    with app.sessions() as s:
        edition, _created = app.build(s, "harbour")
        s.commit()
        assert edition is not None
        assert [i.link for i in edition.items] == ["https://radio.example/ep/2"]
    # A feed that lists only its latest episode.
    clock.advance(days=1)
    feed.body = _rss(_episode(3, title, blurb))
    assert fetch_one(app, 1).new == 1
    # The feed changes how it writes its guids: same links and words, known posts.
    clock.advance(days=1)
    feed.body = _rss(*(_episode(n, title, blurb, guid=f"https://radio.example/ep/{n}")
                       for n in (3, 2, 1)))
    assert fetch_one(app, 1).new == 0
    assert [a.link for a in _articles(app, 1)] == [
        f"https://radio.example/ep/{n}" for n in (1, 2, 3)]


def test_a_headline_and_slug_fixed_under_the_same_guid_and_redated_is_not_sent_again(
        app: App, server: Loopback, clock: Clock) -> None:
    # The CMS bumps an entry's date when it is edited; the guid stays.
    site = "https://harbour.example"
    weekend = "Around the harbour: a market, a regatta and a talk at the museum."
    feed = Feed(server, _rss(
        _item("Minister resigns over expenses", f"{site}/minister-resigns",
              "The harbour minister stood down on Thursday.", guid="p1",
              date="Fri, 27 Nov 2026 05:00:00 GMT"),
        _item("Ten things to do this weekend", f"{site}/ten-things", weekend, guid="p2",
              date="Fri, 27 Nov 2026 05:30:00 GMT")))
    _harbour_list(app, server, clock)
    assert fetch_one(app, 1).new == 2
    report = app.send("harbour")
    assert report is not None and report.finished
    clock.advance(hours=3)
    feed.body = _rss(
        _item("Minister resigns over expenses scandal, says sorry",
              f"{site}/minister-resigns-over-expenses-scandal",
              "The harbour minister stood down on Thursday.", guid="p1",
              date="Fri, 27 Nov 2026 08:40:00 GMT"),
        _item("Ten things to do this weekend", f"{site}/ten-things-to-do-this-weekend",
              weekend + " And the ferry runs late on Saturday.", guid="p2",
              date="Fri, 27 Nov 2026 08:45:00 GMT"))
    assert fetch_one(app, 1).new == 0
    assert _headlines(app) is None  # nothing new to mail
    assert sorted((a.title, a.link) for a in _articles(app, 1)) == [
        ("Minister resigns over expenses scandal, says sorry",
         f"{site}/minister-resigns-over-expenses-scandal"),
        ("Ten things to do this weekend", f"{site}/ten-things-to-do-this-weekend")]
