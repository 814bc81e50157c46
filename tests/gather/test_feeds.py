"""feeds: every corpus feed in tests/data/feeds parses to sane entries; quirks and attacks."""

from __future__ import annotations

import csv
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import lxml.html
import pytest
from sqlalchemy import select

from digest.app import App
from digest.errors import FetchError
from digest.gather.clean import ATTRIBUTES, GENERIC_ATTRIBUTES, TAGS
from digest.gather.feeds import Entry, Feed, parse_feed
from digest.gather.sources import add_source
from digest.models import Article, Source
from digest.publication import create_list

from .conftest import Loopback, fetch_one

FEEDS = Path(__file__).resolve().parent.parent / "data" / "feeds"
NOW = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
MANIFEST = {row["filename"]: row for row in csv.DictReader(
    (FEEDS / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines(), delimiter="\t")}

# Entries each feed yields, measured once and pinned; None: the file is not a feed.
# Counts below the file's item count are items with neither title nor link, dropped.
EXPECTED: dict[str, int | None] = {
    "mf_heise_rss090.rdf": 60,
    "nnw_bio.rdf": 30,
    "feedrs_rss_1.0_iso8859.xml": 1,
    "nnw_allthis.atom": 12,
    "nnw_cloudblog.rss": 20,
    "nnw_donthitsave.xml": 10,
    "nnw_kc0011.rss": 20,
    "nnw_livemint.xml": 25,
    "nnw_macworld.rss": 30,
    "nnw_medscape.rss": 20,
    "nnw_atp.rss": 100,  # a podcast, 385 KB
    "fj_CRE.xml": 30,  # a podcast, 614 KB
    "nnw_scriptingNews.rss": 50,
    "mf_golem_ISO-8859-1.xml": 40,
    "mf_ibash_WINDOWS-1251.xml": 50,
    "mf_cerclepsy_no_encoding_ISO-8859-1.xml": 9,  # 10 items, one entirely empty
    "mf_bbcurdu.xml": 26,
    "fj_TechCrunch.xml": 20,
    "fj_HuffPostCanada.xml": 2,
    "fj_InvalidDateFormat.xml": 2,
    "fj_a10.xml": 5,
    "feedrs_rss_2.0_encoding_1.xml": 1,
    "feedrs_rss_2.0_ilmessaggero.xml": 1,
    "feedrs_rss_2.0_nbcny.xml": 1,
    "feedrs_rss_2.0_relurl_1.xml": 2,
    "fp_demoronize-1.xml": 0,  # its one item has only a description
    "fp_rss_incomplete_cdata.xml": None,
    "fp_http_high_bit_date.xml": 0,  # a channel without items
    "nnw_DaringFireball.atom": 48,
    "nnw_DaringFireball.rss": 47,  # Atom, whatever its name says
    "nnw_yakubin.atom": 12,  # 871 KB: one entry alone is 540 KB of HTML and MathML
    "nnw_qemu.atom": 10,
    "nnw_expertopinionent.atom": 43,
    "feedrs_atom_xml_base.xml": 1,
    "fj_pet_atom.xml": 10,
    "fj_youtube_atom.xml": 15,
    "fj_google_alerts_atom.xml": 20,
    "feedrs_atom_mediarss_reddit_1.xml": 25,
    "fp_large_atom_css_sanitisation.xml": 15,
    "nnw_DaringFireball.json": 48,
    "nnw_3960.json": 20,
    "feedrs_jsonfeed_elastic_1.1.json": 3,
    "fj_json_feed_with_escaped_uris.json": 30,
    "jsonfeed_spec_1.1_simple.json": 2,
    "jsonfeed_spec_1.1_podcast.json": 1,
    "jsonfeed_spec_1.1_microblog.json": 1,
    "nnw_ScriptingNews.json": None,
    "nnw_allthis-partial.json": None,
}
TAG = re.compile(r"<[a-zA-Z/!][^>]*>")


def origin(name: str) -> str:
    """The URL the feed was fetched from (relative links resolve against it)."""
    given = MANIFEST[name]["origin"].split(" ")[0]
    return given if given.startswith("http") else f"https://feeds.example.org/{name}"


def load(name: str) -> Feed:
    return parse_feed((FEEDS / name).read_bytes(), origin(name), now=NOW)


def is_web_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def check_html(html: str) -> None:
    """Only allowlisted tags, no event handlers or styles, only http(s)/mailto URLs."""
    if not html:
        return
    root = lxml.html.fragment_fromstring(html, create_parent="div")
    for el in root.iter():
        assert el.tag in TAGS or el is root, el.tag
        for attr, value in el.attrib.items():
            assert (attr in ATTRIBUTES.get(el.tag, ()) or attr in GENERIC_ATTRIBUTES
                    or (el.tag, attr) == ("a", "rel")), attr
            if attr in ("href", "src"):
                assert is_web_url(value) or value.startswith("mailto:"), value


def check_entry(e: Entry) -> None:
    assert e.title or e.link
    assert e.link == "" or is_web_url(e.link), e.link
    assert e.image_url == "" or is_web_url(e.image_url), e.image_url
    assert e.published is None or (e.published.utcoffset() == timedelta(0)
                                   and e.published <= NOW)
    for text in (e.title, e.author, e.image_caption):
        assert "\n" not in text and not TAG.search(text), text
    check_html(e.content_html)


def test_the_manifest_lists_every_copied_feed() -> None:
    files = {p.name for p in FEEDS.iterdir() if p.is_file()} - {"MANIFEST.tsv"}
    assert files == set(MANIFEST)
    assert set(EXPECTED) | {"hostile.xml"} == set(MANIFEST)
    for row in MANIFEST.values():
        assert row["license"], row["filename"]
    assert len([n for n, c in EXPECTED.items() if c]) >= 24


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_feed(name: str) -> None:
    expected = EXPECTED[name]
    if expected is None:
        with pytest.raises(FetchError, match=r"^(not an RSS, Atom or JSON feed|truncated): "):
            load(name)
        return
    feed = load(name)
    assert len(feed.entries) == expected
    assert feed.site_url == "" or is_web_url(feed.site_url)
    for entry in feed.entries:
        check_entry(entry)


def test_xml_base_resolves_relative_urls() -> None:
    (e,) = load("feedrs_atom_xml_base.xml").entries
    image = "https://numi.st/post/2022/travel-uke/IMG_1232.jpeg"
    assert f'src="{image}"' in e.content_html
    assert e.image_url == image
    df = load("nnw_DaringFireball.atom").entries
    post = next(e for e in df if "Dickbars" in e.title)
    assert 'href="https://daringfireball.net/misc/2017/06/dickbar-vox.png"' in post.content_html
    rss_base = load("feedrs_rss_2.0_relurl_1.xml").entries[0]
    assert rss_base.link == "https://insanity.industries/post/pareto-optimal-compression/"


def test_relative_links_resolve_against_the_feed_url() -> None:
    feed = load("nnw_qemu.atom")  # every link in it is relative, self link too
    assert feed.site_url == "https://www.qemu.org/"
    assert feed.entries[0].link == "https://www.qemu.org/2025/08/26/qemu-10-1-0/"
    kc = load("nnw_kc0011.rss").entries[0]  # img src="skins/default/..." in descriptions
    assert 'src="http://www.kc0011.net/skins/default/filetype/jpg.gif"' in kc.content_html


def test_eight_bit_encodings_are_decoded() -> None:
    cyrillic = load("mf_ibash_WINDOWS-1251.xml").entries
    assert all(re.search("[А-Яа-яЁё]", e.title + e.summary) for e in cyrillic)
    assert cyrillic[0].title == "Цитата #17703"
    for name in ("mf_golem_ISO-8859-1.xml", "mf_cerclepsy_no_encoding_ISO-8859-1.xml",
                 "feedrs_rss_1.0_iso8859.xml", "feedrs_rss_2.0_encoding_1.xml"):
        text = " ".join(e.title + e.summary for e in load(name).entries)
        assert re.search("[äöüßéèàçãõ]", text), name
        assert "Ã" not in text and "\ufffd" not in text, name
    assert load("nnw_kc0011.rss").entries[0].title == "建国35周年纪念，华表，和平鸽"  # gb2312
    assert load("feedrs_rss_2.0_encoding_1.xml").entries[0].title.startswith("Revolução")


def test_cp1252_smart_quotes_in_c1_range_are_mapped() -> None:
    body = ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><item>'
            "<title>don\u0092t</title><link>https://x.example/1</link></item></channel></rss>")
    (e,) = parse_feed(body.encode(), "https://x.example/feed").entries
    assert e.title == "don\u2019t"


def test_dates() -> None:
    assert all(e.published is None for e in load("mf_heise_rss090.rdf").entries)  # no dates
    bio = load("nnw_bio.rdf").entries[0]  # dc:date 2019-08-27, no time
    assert bio.published == datetime(2019, 8, 27, tzinfo=UTC)
    medscape = load("nnw_medscape.rss").entries[0]  # "Wed, 5 Nov 2025 13:52:10  EST"
    assert medscape.published == datetime(2025, 11, 5, 18, 52, 10, tzinfo=UTC)
    (italian,) = load("feedrs_rss_2.0_ilmessaggero.xml").entries  # "mer, 16 nov 2022"
    assert italian.published == datetime(2022, 11, 15, 23, 38, 15, tzinfo=UTC)
    elastic = load("feedrs_jsonfeed_elastic_1.1.json").entries  # RFC 822 in JSON Feed
    assert elastic[0].published == datetime(2019, 5, 31, 19, 17, 58, tzinfo=UTC)
    assert [e.published is None for e in elastic] == [False, False, True]
    livemint = load("nnw_livemint.xml").entries[0]  # <pubDate><![CDATA[...]]> </pubDate>
    assert livemint.published == datetime(2019, 5, 29, 10, 16, tzinfo=UTC)


def test_the_long_podcast_and_misnamed_feeds() -> None:
    # The four corpus feeds first left out of tests/data/feeds (large or misnamed): each
    # item with its own date, the newest first, as the feed gives them.
    cre = load("fj_CRE.xml").entries
    assert cre[0].title == "CRE207 Planetarien"
    assert cre[0].published == datetime(2015, 2, 13, 22, 38, 52, tzinfo=UTC)
    assert cre[-1].published == datetime(2011, 4, 9, 1, 30, tzinfo=UTC)
    assert cre[0].image_url == "http://meta.metaebene.me/media/cre/cre207-planetarien.jpg"
    atp = load("nnw_atp.rss").entries
    assert (atp[0].title, atp[0].link) == ("311: Mutually Assured Destruction",
                                           "http://atp.fm/episodes/311")
    assert atp[0].published == datetime(2019, 1, 31, 16, 58, 12, tzinfo=UTC)
    assert atp[-1].published == datetime(2017, 3, 9, 6, 9, 41, tzinfo=UTC)
    df = load("nnw_DaringFireball.rss")  # Atom 1.0 in a file named .rss
    assert df.title == "Daring Fireball" and len({e.guid for e in df.entries}) == 47
    assert df.entries[0].published == datetime(2016, 2, 27, 21, 59, 47, tzinfo=UTC)
    assert df.entries[-1].published == datetime(2015, 11, 11, 13, 8, 58, tzinfo=UTC)
    yakubin = load("nnw_yakubin.atom").entries  # dates at midnight UTC, as written
    assert yakubin[0].published == datetime(2025, 1, 17, tzinfo=UTC)
    assert yakubin[-1].published == datetime(2022, 11, 16, tzinfo=UTC)
    # Its formulas are MathML, which the sanitizer drops whole: their TeX stays, as text.
    reserve = next(e for e in yakubin if e.title == "Reserve and commit")
    assert "When you request n bytes from bumpalo" in reserve.summary
    pdf = yakubin[1]  # a link to a PDF, with no text of its own
    assert pdf.link.endswith(".pdf") and pdf.summary == "" and pdf.content_html == ""
    for entries in (cre, atp, df.entries, yakubin):
        assert all(e.published is not None and e.title and e.link for e in entries)


def feed_with_date(date: str) -> bytes:
    return (f'<rss version="2.0"><channel><item><title>t</title><link>https://x.example/</link>'
            f"<pubDate>{date}</pubDate></item></channel></rss>").encode()


def test_future_dates_are_not_trusted() -> None:
    far = parse_feed(feed_with_date("Fri, 27 Nov 2099 06:00:00 GMT"), "https://x.example/",
                     now=NOW).entries[0]
    assert far.published is None
    near = parse_feed(feed_with_date("Fri, 27 Nov 2026 10:00:00 GMT"), "https://x.example/",
                      now=NOW).entries[0]
    assert near.published == NOW  # hours ahead: a wrong zone, published by now
    past = parse_feed(feed_with_date("Thu, 26 Nov 2026 10:00:00 +0200"), "https://x.example/",
                      now=NOW).entries[0]
    assert past.published == datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def test_media_images_and_captions() -> None:
    huff = load("fj_HuffPostCanada.xml").entries[0]  # media:content image + media:credit
    assert huff.image_url.startswith("http://o.aolcdn.com/hss/storage/midas/")
    # media:description is the photo's caption and media:credit its credit; the item's
    # <description> (which feedparser sees after the caption) stays the story.
    assert huff.image_caption.startswith("About 50 female students at Dakota Collegiate")
    assert huff.image_credit == "Dakota Collegiate/Twitter"
    assert huff.summary.startswith("Winnipeg high school student Nusaybah Mohamed")
    assert "About 50 female" not in huff.summary
    assert all(e.image_url.endswith(".jpg") for e in load("nnw_macworld.rss").entries)
    assert all("bbci.co.uk" in e.image_url for e in load("mf_bbcurdu.xml").entries)
    assert all("ytimg.com" in e.image_url for e in load("fj_youtube_atom.xml").entries)
    tc = load("fj_TechCrunch.xml").entries[0]  # first media:content, not the avatar after it
    assert tc.image_url == "http://tctechcrunch2011.files.wordpress.com/2011/11/angies-list.jpeg?w=150"
    (enclosure,) = load("feedrs_rss_2.0_ilmessaggero.xml").entries
    assert enclosure.image_url.endswith("7054869_16003922_missili_polonia_1_.jpg")


def test_nested_titles_do_not_replace_the_item_title() -> None:
    entries = load("nnw_cloudblog.rss").entries
    assert entries[0].title == ("Want to keep your employees productive? "
                                "Pay attention to shadow IT clues")
    assert not any(e.title.startswith("Product Manager") for e in entries)
    assert entries[0].author == "Diane Chaleff"


def test_titles_are_plain_text() -> None:
    alerts = load("fj_google_alerts_atom.xml").entries  # <title type="html"> with <b>
    assert alerts[0].title.startswith("Report offers Prediction of Automotive Slack Market")
    pet = load("fj_pet_atom.xml").entries  # xhtml and html titles
    assert pet[0].title == "Sentry Calming Collar for dogs"
    untitled = [e for e in load("nnw_scriptingNews.rss").entries if not e.title]
    assert len(untitled) == 39 and all(e.link.startswith("http://scripting.com/") for e in untitled)


def test_authors() -> None:
    assert load("fj_a10.xml").entries[0].author == "John Doe"  # a10:author
    assert load("fj_a10.xml").entries[0].link == "http://www.example.com/5"  # a10:link
    relurl = load("feedrs_rss_2.0_relurl_1.xml").entries[0]  # "email (Name)", long TLD
    assert relurl.author == "Jonas Große Sundrup"
    assert load("mf_bbcurdu.xml").entries[0].author == ""  # a bare address is not a name
    assert load("feedrs_jsonfeed_elastic_1.1.json").entries[0].author == (
        "Chris Churilo, Fake Author 1")


def test_json_feed_and_atom_of_the_same_site_agree() -> None:
    atom, json_feed = load("nnw_DaringFireball.atom"), load("nnw_DaringFireball.json")
    assert [e.title for e in atom.entries] == [e.title for e in json_feed.entries]
    assert [e.published for e in atom.entries] == [e.published for e in json_feed.entries]
    assert json_feed.entries[0].link == ("https://daringfireball.net/linked/2017/06/26/"
                                         "the-talk-show-195")


def test_json_feed_fields() -> None:
    german = load("nnw_3960.json")
    assert german.language == "de-DE" and german.entries[0].language == "de-DE"
    assert german.entries[0].author == "Frank Boës"
    assert german.entries[0].image_url == "https://cdn.3960.org/favicon-192x192.png"
    elastic = load("feedrs_jsonfeed_elastic_1.1.json").entries
    assert [e.guid for e in elastic] == ["", "", ""]  # items without "id"
    assert [e.language for e in elastic][:2] == ["en-US", "en-AU"]
    simple = load("jsonfeed_spec_1.1_simple.json").entries
    assert [(e.guid, e.link, e.summary) for e in simple] == [
        ("2", "https://example.org/second-item", "This is a second item."),
        ("1", "https://example.org/initial-post", "Hello, world!"),
    ]
    assert simple[1].content_html == "<p>Hello, world!</p>"
    (micro,) = load("jsonfeed_spec_1.1_microblog.json").entries
    assert micro.author == "Brent Simmons" and micro.title == ""
    assert micro.content_html == "<p>Cats are neat.</p><p>https://example.org/cats</p>"
    (podcast,) = load("jsonfeed_spec_1.1_podcast.json").entries
    assert podcast.image_url == ""  # its attachment is audio
    assert '<a href="http://adobe.com/"' in podcast.content_html  # html over content_text
    escaped = load("fj_json_feed_with_escaped_uris.json").entries
    assert all(e.link.startswith("https://lukedorny.com/") for e in escaped)


def test_json_that_is_not_a_json_feed() -> None:
    with pytest.raises(FetchError, match="JSON without a JSON Feed version"):
        load("nnw_ScriptingNews.json")
    # A download cut mid-string (a raw newline where it stops) is truncated, not broken,
    # and said so first, as an XML feed cut short is: not "not a feed: … truncated".
    with pytest.raises(FetchError) as cut:
        load("nnw_allthis-partial.json")
    assert str(cut.value) == (
        "truncated: the feed ends in the middle of the document; the server sent only part "
        "of it: it will be tried again at the next fetch "
        f"({origin('nnw_allthis-partial.json')})")
    with pytest.raises(FetchError, match="invalid JSON"):
        parse_feed(b'{"version": "https://jsonfeed.org/version/1.1",, "items": []}',
                   "https://x.example/f")
    with pytest.raises(FetchError, match="not an RSS, Atom or JSON feed"):
        parse_feed(b'{"version": "something else", "items": []}', "https://x.example/f")


@pytest.mark.parametrize(("body", "reason"), [
    (b"", "empty"),
    (b"   \n", "empty"),
    (b"\x00\xff\xfe garbage \x01", "neither XML nor JSON"),
    (b"plain text, not markup at all", "neither XML nor JSON"),
    (b"<rss version='2.0'><channel><item><title>a</titl></item></channel></rss>",
     "the XML is broken (mismatched tag)"),
    (b"<!DOCTYPE html><html><head><title>Blog</title></head><body><p>Hi</p></body></html>",
     "it is an HTML page; check the URL"),
])
def test_documents_that_are_not_feeds(body: bytes, reason: str) -> None:
    with pytest.raises(FetchError, match=r"^not an RSS, Atom or JSON feed: ") as info:
        parse_feed(body, "https://x.example/page")
    assert reason in str(info.value)
    assert str(info.value).endswith("check the URL (https://x.example/page)")


def test_an_html_page_names_its_feed() -> None:
    page = (b'<html><head><link rel="alternate" type="application/rss+xml" href="/feed.xml">'
            b"</head><body>Blog</body></html>")
    with pytest.raises(FetchError, match=r"names its feed at https://x\.example/feed\.xml"):
        parse_feed(page, "https://x.example/blog/")


def test_an_empty_but_valid_feed_is_no_error() -> None:
    feed = parse_feed(b'<rss version="2.0"><channel><title>Quiet</title></channel></rss>',
                      "https://x.example/feed", "application/rss+xml")
    assert feed == Feed("Quiet", "", "", [])


def test_sloppy_feeds_that_still_have_entries_are_accepted() -> None:
    # fj_InvalidDateFormat misses </rss>; TechCrunch has a blank line before <?xml?>.
    assert len(load("fj_InvalidDateFormat.xml").entries) == 2
    assert len(load("fj_TechCrunch.xml").entries) == 20


# --- hostile input ------------------------------------------------------------------

ACTIVE = re.compile(r"javascript|vbscript|data:|<script|<style|<iframe|<form|<svg|<object|"
                    r"<embed|<meta|<base|<link|<input|<button|<math|\son\w+\s*=|style=|"
                    r"background=", re.IGNORECASE)


def assert_harmless(e: Entry) -> None:
    for field in ("guid", "title", "author", "summary", "image_caption", "language"):
        value = getattr(e, field)
        assert not ACTIVE.search(value) and not TAG.search(value), (field, value)
    for url in (e.link, e.image_url):
        assert url == "" or is_web_url(url), url
    assert not ACTIVE.search(e.content_html), e.content_html
    check_html(e.content_html)


def test_hostile_feed_leaves_nothing_active() -> None:
    feed = load("hostile.xml")
    assert feed.title == "Hostile feed" and feed.site_url == ""
    assert [e.guid for e in feed.entries] == ["hostile-1", "hostile-2", ""]
    for e in feed.entries:
        assert_harmless(e)
    first, second, third = feed.entries
    assert first.link == "" and first.title == "Scripts in the title"
    assert first.author == "Mallory"
    assert 'href="https://good.example/ok"' in first.content_html
    assert "<p>Styled</p>" in first.content_html and "cell" in first.content_html
    # The item's enclosure, media:content and media:thumbnail are all unusable, and so
    # is the content's <img src="x">: resolved, it would be a URL, but of no picture.
    assert first.image_url == ""
    assert second.image_url == ""
    assert third.image_url == "https://feeds.example.org/pic.jpg"  # javascript: src skipped


def test_hostile_json_feed_leaves_nothing_active() -> None:
    item = {
        "id": 7, "url": "javascript:alert(1)", "external_url": "data:text/html,x",
        "title": "<img src=x onerror=alert(2)>Title<script>alert(3)</script>",
        "content_html": '<p onclick="alert(4)">Body<iframe src="https://evil.example/">'
                        '</iframe><a href="JAVASCRIPT:alert(5)">x</a></p>',
        "summary": "<b>sum</b>", "image": "javascript:alert(6)",
        "banner_image": "vbscript:x",
        "attachments": [{"url": "javascript:alert(7)", "mime_type": "image/png"},
                        {"url": "/ok.png", "mime_type": "image/png"}],
        "authors": [{"name": "<script>alert(8)</script>Eve"}],
        "date_published": "not a date",
    }
    doc = {"version": "https://jsonfeed.org/version/1.1", "title": "<b>T</b>",
           "home_page_url": "javascript:alert(9)", "items": [item, "not an item", {}]}
    feed = parse_feed(json.dumps(doc).encode(), "https://hostile.example/feed.json")
    assert feed.title == "T" and feed.site_url == ""
    (e,) = feed.entries
    assert_harmless(e)
    assert (e.guid, e.link, e.title, e.author) == ("7", "", "Title", "Eve")
    assert e.image_url == "https://hostile.example/ok.png"
    assert e.summary == "sum" and e.published is None


def test_a_feed_cut_mid_way_is_called_truncated() -> None:
    whole = (FEEDS / "nnw_bio.rdf").read_bytes()
    for cut in (500, 3320, 3420):  # inside a tag, after <item …>, inside a CDATA title
        with pytest.raises(FetchError) as info:
            parse_feed(whole[:cut], "https://connect.biorxiv.org/biorxiv_xml/")
        assert str(info.value) == (
            "truncated: the feed ends in the middle of the document; the server sent only "
            "part of it: it will be tried again at the next fetch "
            "(https://connect.biorxiv.org/biorxiv_xml/)")
    # Broken in the middle is not truncated: that is said differently.
    broken = whole.replace(b"</title>", b"</titel>", 1)
    with pytest.raises(FetchError, match=r"the XML is broken \(mismatched tag\)"):
        parse_feed(broken[:3420], "https://connect.biorxiv.org/biorxiv_xml/")


def test_a_feed_cut_inside_an_item_is_refused_and_read_whole_next_time(
        app: App, server: Loopback) -> None:
    # Daring Fireball's Atom feed, cut in the middle of its third entry's content: the
    # loose parser still gives three entries, the third with half a blurb.
    whole = (FEEDS / "nnw_DaringFireball.atom").read_bytes()
    third = whole.index(b"<entry>", whole.index(b"<entry>", whole.index(b"<entry>") + 1) + 1)
    start, end = whole.index(b"<content", third), whole.index(b"</content>", third)
    cut = whole[:(start + end) // 2]
    body = {"feed": cut}
    server.route("/feed")(lambda h: h.reply(body["feed"], Content_Type="application/atom+xml"))
    with app.sessions() as s:
        mlist = create_list(s, "daily", title="Daily", from_addr="d@news.example.org")
        source, _ = add_source(s, server.url("/feed"), mlist)
        s.commit()
        source_id = source.id

    report = fetch_one(app, source_id)
    assert report.status == "error"
    assert report.error == ("truncated: the feed ends in the middle of the document; the "
                            "server sent only part of it: it will be tried again at the "
                            f"next fetch ({server.url('/feed')})")
    with app.sessions() as s:
        assert s.scalars(select(Article)).all() == []  # not even the two whole entries
        assert s.get_one(Source, source_id).last_error == report.error

    body["feed"] = whole  # the next fetch gets it all: the third story whole
    assert fetch_one(app, source_id).status == "ok"
    expected = parse_feed(whole, server.url("/feed")).entries[2]
    with app.sessions() as s:
        stored = s.scalars(select(Article).where(Article.link == expected.link)).one()
        assert stored.summary == expected.summary
        assert len(s.scalars(select(Article)).all()) == 48


def test_a_feed_without_its_closing_tags_is_read() -> None:
    # Every item whole, only </channel></rss> missing (tests/data/feeds/
    # fj_InvalidDateFormat.xml): nothing was cut, so nothing is refused.
    feed = load("fj_InvalidDateFormat.xml")
    assert [e.title for e in feed.entries] == ["Item 0 with an invalid date",
                                               "Item 1 with all valid dates"]


def test_the_reason_comes_before_the_url() -> None:
    url = "https://example.org/" + "long/" * 30
    page = (b'<html><head><link rel="alternate" type="application/rss+xml" href="/feed.xml">'
            b"</head><body>Blog</body></html>")
    with pytest.raises(FetchError) as info:
        parse_feed(page, url)
    assert str(info.value) == (
        "not an RSS, Atom or JSON feed: it is an HTML page; the page names its feed at "
        f"https://example.org/feed.xml, add that instead ({url})")


# -- characters that steer the text, not words (the outside attack of issue 10) ---------

def test_direction_overrides_and_terminal_escapes_are_dropped_from_feed_text() -> None:
    # U+202E turns "gnp.exe" into "exe.png" on screen; an ANSI colour code kept "[31m"
    # once its ESC was dropped. Raw, and as character references in HTML.
    body = ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            "<title>News</title><item>"
            "<title>Invoice \u202egnp.exe \x1b[31mURGENT\x1b[0m \u2067now\u2069</title>"
            "<link>https://news.example.org/a</link>"
            "<author>desk@news.example.org (Ann \u202dLee\u202c)</author>"
            "<description>&lt;p&gt;Open &amp;#x202E;the \x1b[1mfile\x1b[0m. "
            "\u05e9\u05dc\u05d5\u05dd\u200f ok&lt;/p&gt;</description>"
            "</item></channel></rss>")
    (entry,) = parse_feed(body.encode(), "https://news.example.org/feed", now=NOW).entries
    assert entry.title == "Invoice gnp.exe URGENT now"
    assert entry.author == "Ann Lee"
    # The right-to-left mark Hebrew text needs stays.
    assert entry.summary == "Open the file. \u05e9\u05dc\u05d5\u05dd\u200f ok"
    assert entry.content_html == "<p>Open the file. \u05e9\u05dc\u05d5\u05dd\u200f ok</p>"
