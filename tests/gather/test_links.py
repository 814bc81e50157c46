"""The link a reader gets in mail (`clean_link`): the host as DNS reads it, no tracking
tags in the query or the fragment, and everything else (path, anchors) as the feed wrote it.

The links are shaped on the corpus: scripting.com's `#a080605` anchors, Google Books'
`#v=onepage&q&f=false`, huffingtonpost.ca's utm-tagged links.
"""

from __future__ import annotations

from html import escape

import lxml.html
import pytest
from sqlalchemy import select

from digest.app import App
from digest.gather.links import clean_link, link_key
from digest.gather.sources import add_source
from digest.models import Article
from digest.publication import create_list
from subscribers.lists import get_list
from tests.conftest import Clock
from tests.gather.conftest import Loopback, fetch_one


def test_the_host_is_lower_case_and_the_path_keeps_its_case() -> None:
    assert clean_link("https://Example.ORG/Politics/A-Story") == \
        "https://example.org/Politics/A-Story"
    assert clean_link("https://WWW.HuffingtonPost.ca:8443/2017/09/25/Dolls/?utm_source=x") == \
        "https://www.huffingtonpost.ca:8443/2017/09/25/Dolls/"
    # A login in the link (rare, but a feed may carry one) keeps its case: it is no host.
    assert clean_link("https://Editor:S3cret@News.Example.org/a") == \
        "https://Editor:S3cret@news.example.org/a"


def test_tracking_tags_in_the_fragment_are_dropped() -> None:
    assert clean_link("https://example.org/a#utm_source=rss&utm_medium=feed") == \
        "https://example.org/a"
    assert clean_link("https://example.org/a?id=5#utm_campaign=daily&fbclid=x") == \
        "https://example.org/a?id=5"
    # What is left of the fragment stays, as written.
    assert clean_link("https://example.org/a#page=2&utm_source=rss") == \
        "https://example.org/a#page=2"


@pytest.mark.parametrize("link", [
    "http://scripting.com/2017/06/26.html#a080605",
    "https://example.org/guide#section-2",
    "https://books.google.de/books?id=_MceYURa3VcC&printsec=frontcover#v=onepage&q&f=false",
    "https://docs.google.com/spreadsheets/d/12wA1pOrT/edit#gid=0",
    "https://mail.example.org/#!/inbox",
])
def test_real_anchors_are_kept_as_written(link: str) -> None:
    assert clean_link(link) == link


def test_the_parameters_kept_keep_their_spelling() -> None:
    # Re-encoding would turn %20 into +, and drop the blank `q`.
    assert clean_link("https://example.org/search?q=harbour%20wall&utm_source=rss&sort") == \
        "https://example.org/search?q=harbour%20wall&sort"


def test_a_clean_link_is_the_same_page_to_link_key() -> None:
    tagged = "http://Example.ORG/a/?utm_source=rss#utm_medium=feed"
    assert link_key(clean_link(tagged)) == link_key(tagged) == "example.org/a"


# -- a link too long to store is dropped, never cut ------------------------------------------

# Google News and ad servers wrap a story's link in a redirect whose query carries the
# whole tracking state; past 2,000 characters (Article.link's length) it cannot be kept.
LONG = "https://news.example.org/rd?" + "&".join(f"s{i}=" + "x" * 40 for i in range(120))


def _feed(base: str) -> bytes:
    # RSS 2.0 as nnw_livemint.xml writes it, without guids: the link is the identity.
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Harbour Wire</title><link>{base}/</link>
<item><title>Ferry fares to fall by a fifth</title><link>{escape(LONG)}</link>
<description>Fares on all three routes drop from January, the council said.</description>
<pubDate>Fri, 27 Nov 2026 06:10:00 +0000</pubDate></item>
<item><title>Library opens its photo archive</title>
<link>https://news.example.org/library</link>
<description>Glass plates from 1900 to 1950 go on show.</description>
<pubDate>Fri, 27 Nov 2026 06:00:00 +0000</pubDate></item>
</channel></rss>""".encode()


def test_a_link_too_long_to_store_is_dropped_and_the_story_kept(
        app: App, server: Loopback, clock: Clock) -> None:
    assert len(LONG) > 5000
    feed = _feed(server.base)
    server.route("/feed.xml")(lambda h: h.reply(feed, Content_Type="application/rss+xml"))
    with app.sessions() as s:
        mlist = create_list(s, "daily", title="Daily", from_addr="d@news.example.org")
        source, _ = add_source(s, server.url("/feed.xml"), mlist)
        s.commit()
        source_id = source.id
    assert fetch_one(app, source_id).new == 2
    clock.advance(hours=1)
    assert fetch_one(app, source_id).new == 0  # the next fetch knows it again
    with app.sessions() as s:
        links = {a.title: a.link for a in s.scalars(select(Article))}
        assert links == {"Ferry fares to fall by a fifth": "",
                         "Library opens its photo archive": "https://news.example.org/library"}
        edition, _created = app.build(s, "daily")
        assert edition is not None
        mail = app.preview(edition, get_list(s, "daily"))
    # Told without a link: its headline is no link, and no cut URL is anywhere.
    doc = lxml.html.document_fromstring(mail.html)
    assert [h.text_content() for h in doc.xpath("//h2[not(a)]")] == [
        "Ferry fares to fall by a fifth"]
    assert "news.example.org/rd" not in mail.html + mail.text


# -- tracking tags an outside attack found kept (issue 10) -------------------------------

@pytest.mark.parametrize(("tagged", "clean"), [
    ("https://www.lemonde.fr/planete/article/2026/11/27/cop.html#xtor=RSS-3208",
     "https://www.lemonde.fr/planete/article/2026/11/27/cop.html"),
    ("https://www.theguardian.com/world/2026/nov/27/ferry?CMP=share_btn_tw",
     "https://www.theguardian.com/world/2026/nov/27/ferry"),
    ("https://www.nytimes.com/2026/11/27/us/ferry.html?smid=tw-nytimes&smtyp=cur",
     "https://www.nytimes.com/2026/11/27/us/ferry.html?smtyp=cur"),
    ("https://example.org/a?id=7&WT.mc_id=rss&WT.tsrc=email", "https://example.org/a?id=7"),
    ("https://www.bbc.co.uk/news/uk-1?ns_campaign=bbc&ns_mchannel=social&ns_source=tw",
     "https://www.bbc.co.uk/news/uk-1"),
    ("https://example.org/a?__twitter_impression=true", "https://example.org/a"),
    ("https://news.yahoo.com/ferry.html?guccounter=1&guce_referrer=aHR0&guce_referrer_sig=Q",
     "https://news.yahoo.com/ferry.html"),
    ("https://example.org/a?s_kwcid=AL!1&page=2", "https://example.org/a?page=2"),
    ("https://example.org/a?icid=hp_top&spm=a2c4g.11186623", "https://example.org/a"),
])
def test_more_tracking_tags_are_dropped_from_mail_links(tagged: str, clean: str) -> None:
    assert clean_link(tagged) == clean
    # Two feeds' links to the page, one tagged, are one story.
    assert link_key(tagged) == link_key(clean)


def test_names_that_only_begin_like_a_tracking_tag_are_kept() -> None:
    kept = "https://example.org/search?ns=0&wt=2&cmpx=1&spmode=a&icids=4"
    assert clean_link(kept) == kept
