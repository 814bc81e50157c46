"""Every new story reaches the reader once (digest.stories, digest.editions): late
arrivals go in the next edition, overflow goes in brief, a new source's archive and
undated first-fetch items stay out, and one story from two feeds is one item.

Feeds are served on loopback and gathered as `digest fetch` does; their shape is the
RSS 2.0 of the corpus's news feeds (nnw_livemint.xml: title, link, description, author,
pubDate, guid per item)."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections.abc import Iterator, Sequence
from email.utils import format_datetime
from html import escape
from pathlib import Path

import pytest
from sqlalchemy import select

from digest import curate
from digest.app import App
from digest.editions import EditionRules
from digest.gather.sources import add_source
from digest.models import Article, Edition, EditionStatus
from digest.publication import create_list
from digest.stories import same_headline
from subscribers.lists import get_list
from subscribers.members import add_member
from tests import loopback
from tests.conftest import Clock

FEEDS = Path(__file__).parent / "data" / "feeds"

Item = tuple[str, str, dt.datetime | None]  # headline, link, date (None: undated)
Told = tuple[str, str, dt.datetime | None, str]  # ... and the story's own blurb


def rss(title: str, items: Sequence[Item | Told]) -> bytes:
    """A news feed as the corpus's RSS 2.0 feeds write one; an item without a blurb of
    its own gets one made of its headline."""
    parts = [f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>{escape(title)}</title>
<link>https://{title.lower().replace(" ", "")}.example.org/</link>
<description>News from {escape(title)}</description>"""]
    for headline, link, date, *blurb in items:
        told = blurb[0] if blurb else f"What happened: {escape(headline)}, told at length."
        parts.append(f"""<item>
<title><![CDATA[{headline}]]></title>
<link><![CDATA[{link}]]></link>
<description><![CDATA[{told}]]></description>
<author><![CDATA[Kim Min-ji]]></author>
{f"<pubDate>{format_datetime(date)}</pubDate>" if date else ""}
<guid isPermaLink="false">{escape(title)}-{escape(link)}</guid>
</item>""")
    parts.append("</channel></rss>")
    return "\n".join(parts).encode()


class Feeds:
    """What the loopback server serves at each path; change it between fetches."""

    def __init__(self) -> None:
        self.bodies: dict[str, bytes] = {}
        self.base = ""
        # Set `held` and the server answers only once it is set again: a slow feed.
        self.held: threading.Event | None = None
        self.asked = threading.Event()

    def answer(self, path: str) -> bytes | None:
        held = self.held
        if held is not None:
            self.asked.set()
            held.wait(20)
        return self.bodies.get(path)

    def set(self, path: str, title: str, items: Sequence[Item | Told]) -> str:
        self.bodies[path] = rss(title, items)
        return self.base + path


@pytest.fixture
def feeds() -> Iterator[Feeds]:
    served = Feeds()
    with loopback.feed_server(served.answer) as base:
        served.base = base
        yield served


def make_list(app: App, clock: Clock, *urls: str) -> None:
    with app.sessions() as s:
        mlist = create_list(s, "daily", title="Harbour Daily",
                            from_addr="Harbour Daily <news@news.example.org>",
                            timezone="Asia/Seoul")
        for url in urls:
            add_source(s, url, mlist)
        add_member(s, mlist, "reader@example.org", confirmed=True, now=clock())
        s.commit()


def fetch(app: App) -> None:
    with app.sessions() as s:
        failed = [(r.url, r.error) for r in app.fetch(s) if r.status != "ok"]
        assert not failed


def build(app: App) -> Edition | None:
    with app.sessions() as s:
        edition, _created = app.build(s, "daily")
        s.commit()
        if edition is not None:
            _ = list(edition.items)  # loaded before the session closes
        return edition


def headlines(edition: Edition | None, *, brief: bool | None = None) -> list[str]:
    assert edition is not None
    return [i.title for i in edition.items if brief is None or i.brief == brief]


def send(app: App) -> None:
    report = app.send("daily")
    assert report is not None and report.finished


def test_an_article_dated_before_the_last_send_but_fetched_after_it_goes_next(
        app: App, clock: Clock, feeds: Feeds) -> None:
    sent_at = clock()
    url = feeds.set("/wire.xml", "Harbour Wire", [
        ("Ferry timetable changes for the winter season", "https://wire.example.org/1",
         sent_at - dt.timedelta(hours=3))])
    make_list(app, clock, url)
    fetch(app)
    send(app)  # edition #1, cut off now
    # The feed publishes late: a story dated half an hour before the send appears in it
    # only now, at the next fetch a quarter of an hour after the send.
    clock.advance(minutes=15)
    feeds.set("/wire.xml", "Harbour Wire", [
        ("Fishing fleet returns to port after the storm", "https://wire.example.org/2",
         sent_at - dt.timedelta(minutes=30)),
        ("Ferry timetable changes for the winter season", "https://wire.example.org/1",
         sent_at - dt.timedelta(hours=3))])
    fetch(app)
    clock.advance(hours=1)
    second = build(app)
    assert headlines(second) == ["Fishing fleet returns to port after the storm"]
    with app.sessions() as s:  # the desk proposed it as well, before the build
        assert curate.proposals(s, second, get_list(s, "daily"), now=clock(),
                                rules=app.edition_rules()) == []


def test_articles_a_fetch_stores_after_an_edition_was_built_go_in_the_next(
        app: App, clock: Clock, feeds: Feeds) -> None:
    """A fetch that began before an edition was built and stored its articles after it
    (a slow feed, a fetch run by the scheduler while an editor sends) loses none of
    them: the edition leaves them to the next one."""
    now = clock()
    first = ("Harbour reopens after the storm, officials say",
             "https://wire.example.org/1", now - dt.timedelta(minutes=30))
    make_list(app, clock, feeds.set("/wire.xml", "Harbour Wire", [first]))
    fetch(app)
    clock.advance(minutes=15)
    second = ("Fishing fleet returns to port as the harbour reopens",
              "https://wire.example.org/2", clock() - dt.timedelta(minutes=5))
    feeds.set("/wire.xml", "Harbour Wire", [second, first])
    feeds.held = threading.Event()
    slow = threading.Thread(target=fetch, args=(app,))
    slow.start()  # takes the source's lease, asks the feed, waits for it
    try:
        assert feeds.asked.wait(10)
        clock.advance(minutes=1)
        assert headlines(build(app)) == [first[0]]
        send(app)
    finally:
        feeds.held.set()
        slow.join(30)
    feeds.held = None
    clock.advance(hours=1)
    assert headlines(build(app)) == [second[0]]


def test_late_arrivals_are_proposed_on_the_desk(app: App, clock: Clock, feeds: Feeds) -> None:
    sent_at = clock()
    url = feeds.set("/wire.xml", "Harbour Wire", [
        ("Ferry timetable changes for the winter season", "https://wire.example.org/1",
         sent_at - dt.timedelta(hours=3))])
    make_list(app, clock, url)
    fetch(app)
    send(app)
    clock.advance(minutes=15)
    feeds.set("/wire.xml", "Harbour Wire", [
        ("Fishing fleet returns to port after the storm", "https://wire.example.org/2",
         sent_at - dt.timedelta(minutes=30))])
    fetch(app)
    with app.sessions() as s:
        [proposal] = curate.proposals(s, None, get_list(s, "daily"), now=clock(),
                                      rules=app.edition_rules())
        assert proposal.title == "Fishing fleet returns to port after the storm"
        assert proposal.dated


def test_a_new_sources_archive_does_not_pour_into_the_next_edition(
        app: App, clock: Clock, feeds: Feeds) -> None:
    now = clock()
    url = feeds.set("/wire.xml", "Harbour Wire", [
        ("Ferry timetable changes for the winter season", "https://wire.example.org/1",
         now - dt.timedelta(hours=3))])
    make_list(app, clock, url)
    fetch(app)
    send(app)
    clock.advance(hours=24)
    # An editor adds a source whose feed keeps two months of stories, all first seen now.
    archive: list[Item] = [(f"Harbour museum exhibition opens, week {n}",
                            f"https://museum.example.org/{n}", now - dt.timedelta(days=7 * n))
                           for n in range(1, 9)]
    fresh: list[Item] = [("Museum opens a new wing for the ship models",
                          "https://museum.example.org/new", clock() - dt.timedelta(hours=2)),
                         ("Museum curator retires after thirty years",  # late: dated before
                          "https://museum.example.org/late",  # the send, within late_hours
                          now - dt.timedelta(hours=20))]
    with app.sessions() as s:
        add_source(s, feeds.set("/museum.xml", "Museum News", fresh + archive),
                   get_list(s, "daily"))
        s.commit()
    fetch(app)
    edition = build(app)
    assert edition is not None
    assert headlines(edition) == ["Museum opens a new wing for the ship models",
                                  "Museum curator retires after thirty years"]
    # The archive is left out, and the count says so (the CLI and the desk show it).
    with app.sessions() as s:
        counts = curate.tally(s, s.get_one(Edition, edition.id), get_list(s, "daily"),
                              now=clock(), rules=app.edition_rules())
    assert str(counts).endswith("; 8 articles dated more than [edition] late_hours before "
                                "the last edition left out as old news (a new source's "
                                "archive)"), str(counts)


def test_undated_items_are_new_only_after_the_first_fetch(app: App, clock: Clock) -> None:
    """Undated entries get `backlog` when found on their source's first fetch (the
    gatherer decides); the edition takes only those found later, shown undated."""
    now = clock()
    with app.sessions() as s:
        mlist = create_list(s, "daily", title="Daily", from_addr="d@news.example.org")
        source, _ = add_source(s, "https://example.org/feed.xml", mlist)
        for n, backlog in ((1, True), (2, True), (3, False)):
            s.add(Article(source_id=source.id, guid=f"u{n}", link=f"https://example.org/{n}",
                          content_hash=f"u{n}", title=f"Undated story number {n}",
                          published_at=now - dt.timedelta(minutes=n),
                          first_seen_at=now - dt.timedelta(minutes=n),
                          date_from_feed=False, backlog=backlog))
        s.commit()
        edition, _ = app.build(s, "daily")
        assert edition is not None
        assert [(i.title, i.dated) for i in edition.items] == [("Undated story number 3", False)]


def test_undated_items_found_together_keep_the_feeds_order(
        app: App, clock: Clock, feeds: Feeds) -> None:
    """Three undated items a feed adds at once (newest at the top, as feeds list them)
    go out in the feed's order, not upside down."""
    now = clock()
    dated: Item = ("Harbour reopens after the storm, officials say",
                   "https://wire.example.org/0", now - dt.timedelta(hours=1))
    make_list(app, clock, feeds.set("/wire.xml", "Harbour Wire", [dated]))
    fetch(app)
    clock.advance(minutes=15)
    added: list[Item] = [(f"Undated notice number {n} from the harbour master's office",
                          f"https://wire.example.org/notice/{n}", None) for n in (3, 2, 1)]
    feeds.set("/wire.xml", "Harbour Wire", [*added, dated])
    fetch(app)
    told = headlines(build(app))
    assert told[:3] == [h for h, _l, _d in added], told


def test_25_new_articles_with_max_items_20_all_reach_the_mail(
        app: App, clock: Clock, feeds: Feeds) -> None:
    now = clock()
    items: list[Item] = [(f"Harbour report number {n}: the quay, the boats and the fish",
                          f"https://wire.example.org/story/{n}", now - dt.timedelta(minutes=n))
                         for n in range(1, 26)]
    make_list(app, clock, feeds.set("/wire.xml", "Harbour Wire", items))
    fetch(app)
    edition = build(app)
    assert app.edition_rules().max_items == 20
    assert len(headlines(edition, brief=False)) == 20
    assert len(headlines(edition, brief=True)) == 5
    with app.sessions() as s:
        edition = s.get_one(Edition, edition.id) if edition else None
        assert edition is not None
        rendered = app.render(edition, get_list(s, "daily"))
    for headline, link, _date in items:
        assert headline in rendered.text and link in rendered.text
        assert escape(headline) in rendered.html and link in rendered.html


def test_beyond_brief_max_the_cli_and_the_desk_say_how_many_wait(
        app: App, clock: Clock, feeds: Feeds) -> None:
    now = clock()
    make_list(app, clock, feeds.set("/wire.xml", "Harbour Wire", [
        (f"Harbour report number {n}: the quay, the boats and the fish",
         f"https://wire.example.org/story/{n}", now - dt.timedelta(minutes=n))
        for n in range(1, 9)]))
    fetch(app)
    app.settings = app.settings.with_overrides(edition__max_items=3, edition__brief_max=2)
    edition = build(app)
    assert len(headlines(edition, brief=False)) == 3 and len(headlines(edition, brief=True)) == 2
    with app.sessions() as s:
        edition = s.get_one(Edition, edition.id) if edition else None
        assert edition is not None
        counts = curate.tally(s, edition, get_list(s, "daily"), now=clock(),
                              rules=app.edition_rules())
    assert (counts.full, counts.brief, counts.held, counts.waiting, counts.new) == (
        3, 2, 3, 0, 8)
    assert str(counts) == ("5 articles: 3 in full, 2 in brief; 3 more new articles held "
                           "over for the next edition (no room: [edition] brief_max, "
                           "html_max_kb)")
    # `digest edition build` prints `str(counts)` for the draft (see tests/test_cli.py).


def test_stories_beyond_brief_max_go_in_the_next_edition(
        app: App, clock: Clock, feeds: Feeds) -> None:
    """Eight new stories with max_items 3 and brief_max 2: five go now, the three left
    over go in the next edition, which says so; none is lost."""
    now = clock()
    items: list[Item] = [(f"Harbour report number {n}: the quay, the boats and the fish",
                          f"https://wire.example.org/story/{n}", now - dt.timedelta(minutes=n))
                         for n in range(1, 9)]
    make_list(app, clock, feeds.set("/wire.xml", "Harbour Wire", items))
    fetch(app)
    app.settings = app.settings.with_overrides(edition__max_items=3, edition__brief_max=2)
    first = headlines(build(app))
    assert first == [h for h, _l, _d in items[:5]]
    send(app)
    clock.advance(hours=24)
    assert headlines(build(app)) == [h for h, _l, _d in items[5:]]


def test_the_stories_of_a_cancelled_edition_go_in_the_next_one(
        app: App, clock: Clock, feeds: Feeds) -> None:
    """An edition cancelled before it went out carried nothing to the readers: its
    stories are new all the same, and the next edition has them."""
    now = clock()
    items: list[Item] = [("Harbour reopens after the storm, officials say",
                          "https://wire.example.org/1", now - dt.timedelta(minutes=20)),
                         ("Fishing fleet returns to port as the harbour reopens",
                          "https://wire.example.org/2", now - dt.timedelta(minutes=10))]
    make_list(app, clock, feeds.set("/wire.xml", "Harbour Wire", items))
    fetch(app)
    cancelled = build(app)
    assert cancelled is not None
    with app.sessions() as s:
        s.get_one(Edition, cancelled.id).status = EditionStatus.CANCELLED
        s.commit()
    clock.advance(minutes=5)
    assert sorted(headlines(build(app))) == sorted(h for h, _l, _d in items)


def test_posts_of_one_feed_that_all_link_to_one_page_are_each_a_story(
        app: App, clock: Clock, feeds: Feeds) -> None:
    """A council's feed links every notice to its news page: three notices (their own
    guids, headlines and words) are three stories, and a fourth at the same link after
    they went out is news too. Only another source's post at that page is a twin."""
    page = "https://city.example.gov/news.aspx"
    now = clock()
    notices: list[Told] = [
        ("Road closure on Main Street", page, now - dt.timedelta(minutes=30),
         "Main Street closes between 1st and 3rd Avenue for resurfacing."),
        ("Library opens new branch", page, now - dt.timedelta(minutes=20),
         "The new branch on Harbour Road opens on Saturday with a reading hour."),
        ("Water main repair notice", page, now - dt.timedelta(minutes=10),
         "Residents of the east quarter may see low pressure until Friday.")]
    make_list(app, clock, feeds.set("/city.xml", "City Hall", notices))
    fetch(app)
    assert sorted(headlines(build(app))) == sorted(n[0] for n in notices)
    send(app)
    clock.advance(hours=24)
    later: Told = ("Council meeting moved to Thursday", page, clock() - dt.timedelta(hours=1),
                   "The council's December meeting moves to Thursday at 7 pm.")
    feeds.set("/city.xml", "City Hall", [later, *notices])
    fetch(app)
    assert headlines(build(app)) == [later[0]]


def test_stories_held_over_go_next_though_more_news_keeps_coming(
        app: App, clock: Clock, feeds: Feeds) -> None:
    """30 new stories a day with room for 20 (5 in full, 15 in brief): the 10 held over
    from the first edition lead the second one's "also new" list, ahead of the day's
    own overflow, instead of being held again behind newer news every day."""
    app.settings = app.settings.with_overrides(edition__max_items=5, edition__brief_max=15)

    def day(first: int) -> list[Item]:
        return [(f"Harbour report number {n}: the quay, the boats and the fish",
                 f"https://wire.example.org/story/{n}",
                 clock() - dt.timedelta(minutes=n - first + 1)) for n in range(first, first + 30)]

    monday = day(0)
    make_list(app, clock, feeds.set("/wire.xml", "Harbour Wire", monday))
    fetch(app)
    first = headlines(build(app))
    assert first == [h for h, _l, _d in monday[:20]]
    send(app)
    clock.advance(hours=24)
    tuesday = day(100)
    feeds.set("/wire.xml", "Harbour Wire", tuesday + monday)
    fetch(app)
    second = build(app)
    assert headlines(second, brief=False) == [h for h, _l, _d in tuesday[:5]]
    assert headlines(second, brief=True) == [h for h, _l, _d in monday[20:] + tuesday[5:10]]


def test_fitting_an_edition_of_long_links_keeps_as_many_stories_as_fit(
        app: App, clock: Clock, feeds: Feeds) -> None:
    """150 stories whose links are 1,500 characters long (tracking-laden feeds write
    such links): fitting the mail holds over only what does not fit, so the edition is
    close to the limit, not one story in 5 KB with 100 held."""
    now = clock()
    items: list[Item] = [(f"Harbour report number {n}: the quay, the boats and the fish",
                          f"https://wire.example.org/story/{n}?q=" + "x" * 1500,
                          now - dt.timedelta(minutes=n)) for n in range(1, 151)]
    make_list(app, clock, feeds.set("/wire.xml", "Harbour Wire", items))
    fetch(app)
    # One in full: the "also new" list of 100 headlines is what must give way.
    app.settings = app.settings.with_overrides(edition__max_items=1)
    edition = build(app)
    assert edition is not None
    with app.sessions() as s:
        fit = app.fit(s.get_one(Edition, edition.id), get_list(s, "daily"))
    assert fit.fits and fit.after > 0.8 * fit.limit, fit
    assert len(headlines(edition)) >= 20, len(headlines(edition))


def test_stories_held_over_for_size_go_next_though_the_next_edition_is_full_too(
        app: App, clock: Clock, feeds: Feeds) -> None:
    """A list whose mail holds only three stories (long links, a 20 KB limit): what the
    first edition held over for size fills the second's "also new" list, though the
    second has more new stories than fit; the day's own overflow waits instead, so no
    story is held for ever behind newer news."""
    app.settings = app.settings.with_overrides(edition__html_max_kb=20)

    def day(first: int) -> list[Item]:
        return [(f"Harbour report number {n}: the quay, the boats and the fish",
                 f"https://wire.example.org/story/{n}?q=" + "x" * 600,
                 clock() - dt.timedelta(minutes=n - first + 1)) for n in range(first, first + 12)]

    monday = day(0)
    make_list(app, clock, feeds.set("/wire.xml", "Harbour Wire", monday))
    fetch(app)
    first = build(app)
    assert first is not None and first.held, "the first edition holds nothing over"
    owed = {a.title for a in _articles(app) if a.id in first.held}
    send(app)
    clock.advance(hours=24)
    feeds.set("/wire.xml", "Harbour Wire", day(100) + monday)
    fetch(app)
    second = build(app)
    # Room for three: the day's newest in full, then the oldest news owed, not more of
    # the day's own.
    assert len(headlines(second, brief=False)) == 1
    told = headlines(second, brief=True)
    assert told and set(told) <= owed, told


def _articles(app: App) -> list[Article]:
    with app.sessions() as s:
        return list(s.scalars(select(Article)))


def test_a_story_held_over_goes_next_though_another_feed_has_it_too(
        app: App, clock: Clock, feeds: Feeds) -> None:
    """A story held over (no room) that a second feed also brings (Daring Fireball's
    Atom and JSON feeds) goes in the next edition: its twin, seen with it, does not
    make its page "seen before" and keep it out for ever."""
    now = clock()
    stories: list[Item] = [(f"Harbour report number {n}: the quay, the boats and the fish",
                            f"https://wire.example.org/story/{n}", now - dt.timedelta(minutes=n))
                           for n in range(1, 4)]
    twin = (stories[2][0], stories[2][1] + "?utm_source=json", stories[2][2])
    make_list(app, clock, feeds.set("/wire.xml", "Harbour Wire", stories),
              feeds.set("/wire.json.xml", "Harbour Wire JSON", [twin]))
    fetch(app)
    app.settings = app.settings.with_overrides(edition__max_items=1, edition__brief_max=1)
    assert headlines(build(app)) == [stories[0][0], stories[1][0]]
    send(app)
    clock.advance(hours=24)
    assert headlines(build(app)) == [stories[2][0]]


@pytest.mark.parametrize("brief_max", [100, 0])
def test_an_edition_too_large_to_mail_is_made_to_fit_when_built_and_loses_nothing(
        app: App, clock: Clock, feeds: Feeds, brief_max: int) -> None:
    """200 new stories with long headlines, links and blurbs: the edition built (as the
    one-step send and the scheduler build it) fits [edition] html_max_kb, so it goes out
    rather than being refused; what did not fit is held over, and every story reaches
    the reader over the editions that follow. The "also new" list gives way first: its
    last headlines are held over, and the 20 stories told in full stay so."""
    app.settings = app.settings.with_overrides(edition__brief_max=brief_max)
    now = clock()
    items: list[Told] = [
        (f"Harbour report number {n}: the quay, the boats, the fish market and the new "
         f"ferry timetable explained",
         f"https://wire.example.org/2026/11/27/harbour/report-number-{n}-the-quay-the-boats-"
         f"the-fish-market-and-the-ferry?ref=section-front",
         now - dt.timedelta(minutes=n),
         "Boats returned to the quay on Monday after three days of storm. " * 10)
        for n in range(1, 201)]
    make_list(app, clock, feeds.set("/wire.xml", "Harbour Wire", items))
    fetch(app)
    mailed: list[str] = []
    for number in range(5):
        edition = build(app)
        if edition is None:
            break
        if number == 0:  # the "also new" list gave way: every story told in full stays
            assert len(headlines(edition, brief=False)) == 20
        with app.sessions() as s:
            fit = app.fit(s.get_one(Edition, edition.id), get_list(s, "daily"))
        assert fit.fits and not fit.changed, fit.message()  # made to fit when built
        send(app)
        mailed += headlines(edition)
        clock.advance(hours=24)
    assert sorted(mailed) == sorted(h for h, _l, _d, _b in items)


def test_one_story_from_two_feeds_is_one_item_naming_both(
        app: App, clock: Clock, feeds: Feeds) -> None:
    now = clock()
    story = "Harbour reopens after the storm, officials say"
    yonhap = feeds.set("/yonhap.xml", "Yonhap", [
        (story, "https://news.example.org/harbour?id=7&utm_source=rss&utm_medium=feed",
         now - dt.timedelta(hours=1)),
        ("Podcast", "https://yonhap.example.org/podcast/12", now - dt.timedelta(hours=2))])
    herald = feeds.set("/herald.xml", "The Korea Herald", [
        (story, "http://news.example.org/harbour?id=7", now - dt.timedelta(minutes=50)),
        ("Podcast", "https://herald.example.org/podcast/3", now - dt.timedelta(hours=2))])
    times = feeds.set("/times.xml", "Korea Times", [
        ("‘Harbour reopens after the storm’, officials say",
         "https://times.example.org/a/991", now - dt.timedelta(minutes=40))])
    make_list(app, clock, yonhap, herald, times)
    fetch(app)
    edition = build(app)
    assert edition is not None
    told = [i for i in edition.items if "harbour" in i.title.lower()]
    assert len(told) == 1, [i.title for i in edition.items]
    # Told by the one with the most text (here the Korea Times'), naming all three.
    assert sorted(told[0].source_title.split(" · ")) == [
        "Korea Times", "The Korea Herald", "Yonhap"]
    # Two podcasts of two sources are two stories, whatever their headlines.
    assert headlines(edition).count("Podcast") == 2
    send(app)
    # The twins were carried with the story: not proposed, not in the next edition, even
    # when another feed brings the page again with other tracking parameters.
    clock.advance(hours=2)
    with app.sessions() as s:
        add_source(s, feeds.set("/wire.xml", "Harbour Wire", [
            ("What the reopening means for the fishing fleet",
             "https://news.example.org/harbour/?id=7&fbclid=abc",
             clock() - dt.timedelta(minutes=5)),
            ("Fishing fleet returns to port after the storm", "https://wire.example.org/2",
             clock() - dt.timedelta(minutes=5))]), get_list(s, "daily"))
        s.commit()
    fetch(app)
    with app.sessions() as s:
        assert [p.title for p in curate.proposals(
            s, None, get_list(s, "daily"), now=clock(), rules=app.edition_rules())] == [
            "Fishing fleet returns to port after the storm"]
    assert headlines(build(app)) == ["Fishing fleet returns to port after the storm"]


def test_same_headline_needs_a_long_alike_headline() -> None:
    assert same_headline("Harbour reopens after the storm, officials say",
                         "HARBOUR REOPENS AFTER THE STORM — OFFICIALS SAY")
    assert same_headline("항구 재개장, 폭풍 후 어선들이 돌아왔다고 관계자들이 밝혀",
                         "항구 재개장… 폭풍 후 어선들이 돌아왔다고 관계자들이 밝혀")
    assert not same_headline("Daily briefing", "Daily Briefing")
    assert not same_headline("Live updates: the storm over the harbour, day 12",
                             "Live updates: the storm over the harbour, day 13")
    assert not same_headline("Harbour reopens after the storm, officials say",
                             "Airport closes before the storm, officials say")


def test_one_word_that_changes_the_news_keeps_two_headlines_apart() -> None:
    """Headlines a word apart are two stories when that word is the news: which Korea,
    open or close, rise or fall. A word like "the", or "reopens" for "reopened", is not."""
    for a, b in [("North Korea fires a ballistic missile into the East Sea",
                  "South Korea fires a ballistic missile into the East Sea"),
                 ("Seoul's stock market opens higher on chip exports",
                  "Seoul's stock market closes higher on chip exports"),
                 ("Harbour fees rise for fishing boats from next month",
                  "Harbour fees fall for fishing boats from next month"),
                 ("Police arrest suspect in the harbour warehouse fire",
                  "Police release suspect in the harbour warehouse fire"),
                 ("Heavy snow expected across the east coast this morning",
                  "Heavy snow expected across the west coast this evening")]:
        assert not same_headline(a, b), (a, b)
    assert same_headline("Harbour reopens after the storm, officials say",
                         "Harbour reopened after storm, officials said")


def test_one_headline_over_two_towns_stories_is_two_items(
        app: App, clock: Clock, feeds: Feeds) -> None:
    """Two local papers' "Police investigate after man found dead in park" are two
    stories (other links, other words below the headline); the same wire story in two
    papers, under one headline and much the same words, is one."""
    now = clock()
    headline = "Police investigate after man found dead in park"
    wire = "Harbour reopens after the storm, officials say"
    make_list(app, clock, feeds.set("/north.xml", "Northport Gazette", [
        (headline, "https://northport.example.org/news/park-death", now - dt.timedelta(hours=1),
         "Officers in Northport were called to Lincoln Park at dawn on Saturday, where a "
         "jogger had found the body of a man in his sixties near the boating lake."),
        (wire, "https://northport.example.org/news/harbour", now - dt.timedelta(hours=2),
         "Officials said on Monday that the harbour reopened after three days, as the "
         "fishing boats returned to their moorings.")]),
        feeds.set("/south.xml", "Southbay Courier", [
        (headline, "https://southbay.example.org/local/riverside", now - dt.timedelta(hours=1),
         "Southbay detectives are treating as unexplained the death of a 31-year-old "
         "woman's brother, whose body was found in Riverside Park late on Friday."),
        (wire, "https://southbay.example.org/local/harbour-reopens", now - dt.timedelta(hours=2),
         "The harbour reopened on Monday, officials said, after a three-day closure; the "
         "fishing boats returned to their moorings.")]))
    fetch(app)
    told = headlines(build(app))
    assert told.count(headline) == 2, told
    assert told.count(wire) == 1, told


def test_posts_of_one_day_page_told_apart_by_anchors_each_go_out(
        app: App, clock: Clock, feeds: Feeds) -> None:
    """scripting.com posts a day's short posts as anchors of one day page: each is a
    story of its own, in this edition and after it (one post that went out does not
    hide the next ones on the page); a link to the page itself is one of them."""
    page = "http://scripting.com/2026/11/27.html"
    now = clock()
    posts: list[Item] = [(f"Post number {n} of the day about the open web and its feeds",
                          f"{page}#a0{n}", now - dt.timedelta(minutes=10 * n))
                         for n in range(1, 4)]
    url = feeds.set("/scripting.xml", "Scripting News", posts)
    make_list(app, clock, url)
    fetch(app)
    assert sorted(headlines(build(app))) == sorted(h for h, _l, _d in posts)
    send(app)
    clock.advance(hours=2)
    later: list[Item] = [("A fourth post, later in the day, on podcasts and their feeds",
                          f"{page}#a04", clock() - dt.timedelta(minutes=5)), *posts]
    feeds.set("/scripting.xml", "Scripting News", later)
    fetch(app)
    assert headlines(build(app)) == ["A fourth post, later in the day, on podcasts and their feeds"]


def test_the_editor_moves_an_item_between_full_and_brief(app: App, clock: Clock,
                                                          feeds: Feeds) -> None:
    now = clock()
    make_list(app, clock, feeds.set("/wire.xml", "Harbour Wire", [
        (f"Harbour report number {n}: the quay, the boats and the fish",
         f"https://wire.example.org/story/{n}", now - dt.timedelta(minutes=n))
        for n in range(1, 6)]))
    fetch(app)
    app.settings = app.settings.with_overrides(edition__max_items=3)
    edition = build(app)
    assert edition is not None
    with app.sessions() as s:
        ed = s.get_one(Edition, edition.id)
        first, second, third, fourth, fifth = (i.id for i in ed.items)
        curate.brief_item(s, ed, second, True)  # to the head of the "also new" list
        curate.brief_item(s, ed, fifth, False)  # to the end of the full ones
        curate.pin_item(s, ed, fourth, True)  # pinned: told in full, leading
        s.commit()
        assert [(i.id, i.pinned, i.brief) for i in ed.items] == [
            (fourth, True, False), (first, False, False), (third, False, False),
            (fifth, False, False), (second, False, True)]
        assert curate.move_item(s, ed, second, to=0) == 4  # stays in its group


def test_rules_default_to_the_settings_table() -> None:
    from digest.config import SETTINGS

    defaults = {(st.section, st.name): st.default for st in SETTINGS}
    rules = EditionRules()
    assert rules.late_hours == defaults[("edition", "late_hours")]
    assert rules.brief_max == defaults[("edition", "brief_max")]



def _daring_fireball(kind: str, title: str, when: dt.datetime) -> bytes:
    """Daring Fireball's own Atom or JSON feed (tests/data/feeds) holding only its post
    `title`, dated `when`: the site's two feeds link one linked-list post differently
    (Atom to the page it links, JSON Feed to the post), under one short headline."""
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    body = (FEEDS / f"nnw_DaringFireball.{kind}").read_text(encoding="utf-8")
    if kind == "json":
        doc = json.loads(body)
        doc["items"] = [dict(i, date_published=stamp, date_modified=stamp)
                        for i in doc["items"] if i["title"] == title]
        return json.dumps(doc).encode()
    head, _, rest = body.partition("<entry>")
    entries = ["<entry>" + e for e in rest.split("<entry>")]
    (entry,) = [e for e in entries if f"<title>{title}</title>" in e]
    entry = re.sub(r"<(published|updated)>[^<]+<", lambda m: f"<{m[1]}>{stamp}<", entry)
    return (head + entry.partition("</entry>")[0] + "</entry></feed>").encode()


def test_one_post_in_two_feeds_of_its_site_is_one_story_whatever_its_links(
        app: App, clock: Clock, feeds: Feeds) -> None:
    """Daring Fireball's Atom and JSON feeds on one list: "Bad App Citizens" links the
    page it quotes in one and the post in the other, with the same words below. One
    story, though its headline is too short to be matched by itself; two short headlines
    over other words stay two."""
    when = clock() - dt.timedelta(hours=1)
    feeds.bodies["/df.atom"] = _daring_fireball("atom", "Bad App Citizens", when)
    feeds.bodies["/df.json"] = _daring_fireball("json", "Bad App Citizens", when)
    feeds.set("/a.xml", "Harbour Wire", [(
        "Weather", "https://a.example.org/w/1", when,
        "Rain over the harbour from noon, clearing by the evening with a light wind.")])
    feeds.set("/b.xml", "Hill Gazette", [(
        "Weather", "https://b.example.org/w/9", when,
        "Snow on the hills overnight; the pass road may close before the morning.")])
    make_list(app, clock, *(feeds.base + p for p in ("/df.atom", "/df.json", "/a.xml",
                                                      "/b.xml")))
    fetch(app)
    edition = build(app)
    assert sorted(headlines(edition)) == ["Bad App Citizens", "Weather", "Weather"]


def test_one_post_mailed_from_one_feed_of_its_site_is_not_told_again_by_the_other(
        app: App, clock: Clock, feeds: Feeds) -> None:
    """The Atom feed's "Bad App Citizens" went out; the site's JSON Feed, added later,
    brings the same post under another link: it is not proposed again."""
    when = clock() - dt.timedelta(hours=1)
    feeds.bodies["/df.atom"] = _daring_fireball("atom", "Bad App Citizens", when)
    feeds.bodies["/df.json"] = _daring_fireball("json", "Bad App Citizens", when)
    make_list(app, clock, feeds.base + "/df.atom")
    fetch(app)
    assert headlines(build(app)) == ["Bad App Citizens"]
    send(app)
    clock.advance(hours=1)
    with app.sessions() as s:
        add_source(s, feeds.base + "/df.json", get_list(s, "daily"))
        s.commit()
    fetch(app)
    with app.sessions() as s:
        assert curate.proposals(s, None, get_list(s, "daily"), now=clock(),
                                rules=app.edition_rules()) == []


WIRE = ("Power was cut to about 40,000 homes across the south coast overnight as winds "
        "reached 120 km/h, the grid operator said on Sunday morning.")


@pytest.mark.parametrize("retold", [
    "Storm knocks out power to thousands - Reuters",
    "Storm knocks out power to thousands | Reuters",
    "UPDATE: Storm knocks out power to thousands",
    "Storm knocks out power to thousands (video)",
    "Storm knocks out electricity to thousands",
])
def test_a_wire_story_under_a_retouched_headline_is_not_told_twice(
        app: App, clock: Clock, feeds: Feeds, retold: str) -> None:
    """Two sources carry one wire story word for word; one adds its agency, a label or
    a synonym to the headline. One story in the edition, and not again after it went."""
    when = clock() - dt.timedelta(hours=1)
    a = feeds.set("/a.xml", "Coast Herald", [
        ("Storm knocks out power to thousands", "https://herald.example.org/1", when, WIRE),
        ("Harbour festival opens on Friday", "https://herald.example.org/2", when,
         "Boats, music and food stalls line the quay for three days from Friday noon.")])
    b = feeds.set("/b.xml", "Wire Digest", [
        (retold, "https://wire.example.org/77", when, WIRE),
        ("Council approves new school budget", "https://wire.example.org/78", when,
         "Boats, music and food stalls line the quay for three days from Friday noon.")])
    make_list(app, clock, a, b)
    fetch(app)
    told = headlines(build(app))
    assert len([h for h in told if "thousands" in h]) == 1, told
    # Other headlines over one blurb (a feed's boilerplate) are two stories.
    assert {"Harbour festival opens on Friday", "Council approves new school budget"} \
        <= set(told)


def test_a_wire_story_retold_after_it_went_out_is_not_proposed(
        app: App, clock: Clock, feeds: Feeds) -> None:
    when = clock() - dt.timedelta(hours=1)
    a = feeds.set("/a.xml", "Coast Herald", [
        ("Storm knocks out power to thousands", "https://herald.example.org/1", when, WIRE)])
    make_list(app, clock, a)
    fetch(app)
    send(app) if build(app) else None
    clock.advance(hours=1)
    with app.sessions() as s:
        add_source(s, feeds.set("/b.xml", "Wire Digest", [
            ("Storm knocks out power to thousands - Reuters", "https://wire.example.org/77",
             clock() - dt.timedelta(minutes=10), WIRE)]), get_list(s, "daily"))
        s.commit()
    fetch(app)
    with app.sessions() as s:
        assert curate.proposals(s, None, get_list(s, "daily"), now=clock(),
                                rules=app.edition_rules()) == []


def test_korean_headlines_apart_by_a_particle_are_one_story(
        app: App, clock: Clock, feeds: Feeds) -> None:
    """Korean says in 16 characters what English says in 30: "서울시, 새 자전거 도로
    개통" and "서울시가 새 자전거 도로 개통" (a particle apart) are one story; so are
    "정부는 …" and "정부가 …" over blurbs a particle apart too. (A wide character counts
    two, as Twitter counts them: a ten-syllable headline is still too short to be
    matched by its words alone, unless the blurbs are one text.)"""
    when = clock() - dt.timedelta(hours=1)
    bike = "서울시는 6일 한강을 따라 12킬로미터 길이의 자전거 전용 도로를 새로 열었다고 밝혔다."
    a = feeds.set("/a.xml", "연합뉴스", [
        ("서울시, 새 자전거 도로 개통", "https://yna.example.kr/1", when, bike),
        ("정부는 내년도 예산안 국회 제출", "https://yna.example.kr/2", when,
         "정부는 6일 내년도 예산안을 국회에 제출했다고 밝혔다. 총지출은 지난해보다 늘었다.")])
    b = feeds.set("/b.xml", "코리아헤럴드", [
        ("서울시가 새 자전거 도로 개통", "https://herald.example.kr/9", when, bike),
        ("정부가 내년도 예산안 국회 제출", "https://herald.example.kr/8", when,
         "정부가 6일 내년도 예산안을 국회에 제출했다고 밝혔다. 총지출은 지난해보다 늘었다.")])
    make_list(app, clock, a, b)
    fetch(app)
    assert len(headlines(build(app))) == 2
