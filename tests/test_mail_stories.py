"""How an edition's stories look in the mail: the "also new" list, undated items, the
photo's caption and credit and size, and links without tracking parameters.

Each test stores an edition with its items in the database and reads the mail a
subscriber would get (`App.preview`: the HTML and the text part), as a reader checks it.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import lxml.html
import pytest
from lxml.html import HtmlElement

from digest.app import App
from digest.gather.sources import add_source
from digest.models import Edition, EditionItem, EditionStatus
from digest.publication import create_list
from digest.render import Preview
from subscribers.lists import get_list
from tests import loopback
from tests.conftest import Clock
from tests.test_stories import rss

NOW = dt.datetime(2026, 11, 27, 7, 0, tzinfo=dt.UTC)
# A real feed's link shape (huffingtonpost.ca tags every link with utm_campaign).
TAGGED = ("https://www.huffingtonpost.ca/2017/09/25/hijabi-dolls_a_23222373/"
          "?utm_source=x&id=5&fbclid=y")


def _item(position: int, title: str, **values: Any) -> EditionItem:
    fields: dict[str, Any] = dict(
        title=title, link=f"https://harbour-times.example/2026/11/story-{position}",
        summary=f"What happened in story {position}, told in two sentences. And why.",
        source_title="The Harbour Times", author="",
        published_at=dt.datetime(2026, 11, 27, 6, 15, tzinfo=dt.UTC),
    )
    fields.update(values)
    return EditionItem(position=position, **fields)


def _mail(app: App, items: list[EditionItem], *, language: str = "en",
          keep_tracking: bool = False) -> Preview:
    with app.sessions() as s:
        mlist = create_list(s, "morning", title="The Morning Harbour", language=language,
                            from_addr="Harbour <news@harbour.example.org>",
                            timezone="Europe/London", keep_tracking=keep_tracking)
        edition = Edition(list_id=mlist.id, number=1, status=EditionStatus.DRAFT,
                          subject="Ferry fares", since=NOW - dt.timedelta(days=1),
                          cutoff=NOW, items=items)
        s.add(edition)
        s.commit()
        return app.preview(edition, mlist)


def _doc(preview: Preview) -> HtmlElement:
    return lxml.html.document_fromstring(preview.html)


def _style(element: HtmlElement) -> dict[str, str]:
    pairs = (rule.split(":", 1) for rule in element.get("style", "").split(";") if ":" in rule)
    return {name.strip(): value.strip() for name, value in pairs}


def _full_and_brief() -> list[EditionItem]:
    return [
        _item(0, "Ferry fares to fall by a fifth from January",
              image_url="https://images.harbour.example/ferry.jpg"),
        _item(1, "Library opens its archive of harbour photographs"),
        _item(2, "Council delays vote on harbour wall", brief=True,
              source_title="City Notes", image_url="https://images.harbour.example/wall.jpg"),
        _item(3, "Night buses return to the east bank", brief=True,
              link="https://city-notes.example/items/night-buses"),
    ]


# -- the "also new" list ------------------------------------------------------------------


def test_brief_items_are_a_list_of_headlines_after_the_stories(app: App) -> None:
    mail = _mail(app, _full_and_brief())
    doc = _doc(mail)
    told = [h.text_content() for h in doc.xpath("//h2")]
    assert told == ["Ferry fares to fall by a fifth from January",
                    "Library opens its archive of harbour photographs"]
    [label] = doc.xpath("//p[contains(@class, 'also-label')]")
    assert label.text_content() == "Also new"
    briefs = doc.xpath("//td[contains(@class, 'also-item')]")
    assert [b.xpath(".//a/@href")[0] for b in briefs] == [
        "https://harbour-times.example/2026/11/story-2",
        "https://city-notes.example/items/night-buses"]
    assert [b.text_content().split()[:3] for b in briefs] == [
        ["Council", "delays", "vote"], ["Night", "buses", "return"]]
    assert "City Notes" in briefs[0].text_content()
    assert "The Harbour Times" in briefs[1].text_content()
    # Headline, link and source only: no image, no blurb, no time.
    assert "wall.jpg" not in mail.html
    assert "story 2" not in mail.html and "story 3" not in mail.html
    assert "6:15" not in briefs[0].text_content()
    # After the stories in full, before the footer.
    body = doc.text_content()
    assert body.index("Library opens") < body.index("Also new") < body.index("Council delays")
    assert body.index("Night buses") < body.index("This email was sent to")
    assert "4 stories" in doc.xpath("//td[contains(@class, 'dateline')]")[0].text_content()


def test_brief_items_in_the_text_part(app: App) -> None:
    text = _mail(app, _full_and_brief()).text
    also = text[text.index("ALSO NEW"):]
    assert also.startswith(
        "ALSO NEW\n\n"
        "  - Council delays vote on harbour wall\n"
        "    City Notes\n"
        "    https://harbour-times.example/2026/11/story-2\n\n"
        "  - Night buses return to the east bank\n"
        "    The Harbour Times\n"
        "    https://city-notes.example/items/night-buses\n")
    assert "story 2" not in text and "\n3.  " not in text
    assert text.index("2.  Library opens") < text.index("ALSO NEW") < text.index("You are")


def test_the_also_new_list_is_in_the_lists_language(app: App) -> None:
    mail = _mail(app, _full_and_brief(), language="ko")
    assert "그 밖의 새 기사" in mail.text and "그 밖의 새 기사" in _doc(mail).text_content()
    assert "Also new" not in mail.html and "ALSO NEW" not in mail.text


def test_no_also_new_list_without_brief_items(app: App) -> None:
    mail = _mail(app, [_item(0, "Ferry fares to fall by a fifth from January")])
    assert "Also new" not in mail.html and "ALSO NEW" not in mail.text
    assert not _doc(mail).xpath("//p[contains(@class, 'also-label')]")


def test_the_also_new_list_fits_a_phone_and_dark_mode(app: App) -> None:
    doc = _doc(_mail(app, _full_and_brief()))
    styles = "\n".join(s.text or "" for s in doc.xpath("//style"))
    dark = styles[styles.index("prefers-color-scheme: dark"):]
    phone = styles[styles.index("max-width: 620px"):styles.index("prefers-color-scheme")]
    for cls in (".also-link", ".also-source", ".also-label"):
        assert cls in dark
    assert ".also-headline" in phone
    [link] = doc.xpath("//a[contains(@class, 'also-link')]")[:1]
    assert _style(link)["color"] == "#1a1a1a"  # inlined, for clients that drop <style>


# -- undated items ------------------------------------------------------------------------


def test_an_undated_item_shows_no_time(app: App) -> None:
    fetched = dt.datetime(2026, 11, 27, 7, 20, tzinfo=dt.UTC)  # 7:20 AM in London
    items = [_item(0, "A story from 2018 the feed gave no date", published_at=fetched,
                   dated=False, author="Jo Park"),
             _item(1, "A dated story", published_at=fetched)]
    mail = _mail(app, items)
    metas = [p.text_content() for p in _doc(mail).xpath("//p[contains(@class, 'meta')]")]
    assert metas == ["The Harbour Times · Jo Park", "The Harbour Times · 7:20 AM"]
    assert "    The Harbour Times · Jo Park\n" in mail.text
    assert mail.text.count("7:20") == 1 and mail.html.count("7:20") == 1


# -- the photo's caption, credit and size --------------------------------------------------


def test_the_credit_follows_the_caption_and_is_not_the_blurb(app: App) -> None:
    items = [_item(0, "Ferry fares to fall", summary="Fares on all three routes drop.",
                   image_url="https://images.harbour.example/ferry.jpg",
                   image_caption="The 6:40 sailing leaves North Quay.",
                   image_credit="Reuters")]
    doc = _doc(_mail(app, items))
    [caption] = doc.xpath("//td[contains(@class, 'caption')]")
    assert caption.text_content().strip() == "The 6:40 sailing leaves North Quay. Photo: Reuters"
    [credit] = caption.xpath(".//span[contains(@class, 'credit')]")
    assert credit.text_content() == "Photo: Reuters"
    assert _style(credit)["font-style"] == "italic"  # set apart from the caption
    summaries = [p.text_content() for p in doc.xpath("//p[contains(@class, 'summary')]")]
    assert summaries == ["Fares on all three routes drop."]


def test_a_credit_alone_and_in_korean(app: App) -> None:
    items = [_item(0, "수상버스 노선 추가", image_url="https://images.harbour.example/bus.jpg",
                   image_credit="연합뉴스")]
    [caption] = _doc(_mail(app, items, language="ko")).xpath(
        "//td[contains(@class, 'caption')]")
    assert caption.text_content().strip() == "사진: 연합뉴스"


def test_a_credit_the_caption_already_names_is_not_repeated(app: App) -> None:
    items = [_item(0, "Ferry fares to fall", image_url="https://images.harbour.example/f.jpg",
                   image_caption="North Quay at dawn. Photo: Mira Okafor",
                   image_credit="Mira Okafor")]
    [caption] = _doc(_mail(app, items)).xpath("//td[contains(@class, 'caption')]")
    assert caption.text_content().strip() == "North Quay at dawn. Photo: Mira Okafor"


@pytest.mark.parametrize(("written", "shown"), [
    ("(Photo: John Roe)", "(Photo: John Roe)"),  # a figcaption's "… (Photo: John Roe)"
    ("[POOL PHOTO]", "[POOL PHOTO]"),
    ("[YONHAP]", "[YONHAP]"),  # set apart by the feed already
    ("AP Photo/Evan Vucci", "AP Photo/Evan Vucci"),  # AP's own form
    ("Credit: Mira Okafor", "Credit: Mira Okafor"),
    ("사진=연합뉴스", "사진=연합뉴스"),
    ("Getty Images", "Photo: Getty Images"),  # names an agency, not what it is
])
def test_a_credit_that_says_what_it_is_gets_no_second_label(app: App, written: str,
                                                             shown: str) -> None:
    items = [_item(0, "Ferry fares to fall", image_url="https://images.harbour.example/f.jpg",
                   image_caption="North Quay at dawn.", image_credit=written)]
    [caption] = _doc(_mail(app, items)).xpath("//td[contains(@class, 'caption')]")
    assert caption.text_content().strip() == f"North Quay at dawn. {shown}"


def test_image_size_is_scaled_to_the_column(app: App) -> None:
    items = [
        _item(0, "Wide photo", image_url="https://images.harbour.example/wide.jpg",
              image_width=1200, image_height=675),
        _item(1, "Unknown size", image_url="https://images.harbour.example/unknown.jpg"),
        _item(2, "Small photo", image_url="https://images.harbour.example/small.jpg",
              image_width=240, image_height=180),
    ]
    doc = _doc(_mail(app, items))
    wide, unknown, small = doc.xpath("//img[contains(@src, 'images.harbour.example')]")
    assert (wide.get("width"), wide.get("height")) == ("600", "338")  # 1200×675 kept 16:9
    # Unknown size: the column's width for Outlook, which reads no CSS width on images
    # (caniemail: css-width, css-max-width); every other client draws it at its own
    # width, at most the column's: a 120 px picture is not stretched to 600.
    assert (unknown.get("width"), unknown.get("height")) == ("600", None)
    assert _style(unknown)["width"] == "auto" and _style(unknown)["max-width"] == "100%"
    styles = "\n".join(s.text or "" for s in doc.xpath("//style"))
    phone = styles[styles.index("max-width: 620px"):styles.index("prefers-color-scheme")]
    assert "lead-img-fit" in unknown.get("class").split()  # on a phone too:
    assert phone.index(".lead-img { width: 100% !important;") < phone.index(
        ".lead-img-fit { width: auto !important; }")
    # Narrower than 300 px: its own size, never stretched to the column.
    assert (small.get("width"), small.get("height")) == ("240", "180")
    assert _style(small)["width"] == "240px" and _style(small)["max-width"] == "100%"
    styles = "\n".join(s.text or "" for s in doc.xpath("//style"))
    phone = styles[styles.index("max-width: 620px"):styles.index("prefers-color-scheme")]
    assert ".lead-img-small { max-width: 100% !important;" in phone
    assert ".lead-img-small { width" not in phone


# -- links without tracking parameters -------------------------------------------------------


def _links(preview: Preview) -> set[str]:
    return {a.get("href") for a in _doc(preview).xpath("//a[contains(@href, 'hijabi')]")}


def test_links_in_mail_lose_tracking_parameters(app: App) -> None:
    items = [_item(0, "Hijabi dolls", link=TAGGED,
                   image_url="https://images.harbour.example/dolls.jpg"),
             _item(1, "Also hijabi dolls", link=TAGGED + "#top", brief=True)]
    mail = _mail(app, items)
    clean = "https://www.huffingtonpost.ca/2017/09/25/hijabi-dolls_a_23222373/?id=5"
    assert _links(mail) == {clean, clean + "#top"}
    assert f"    {clean}\n" in mail.text and f"    {clean}#top\n" in mail.text
    assert "utm_" not in mail.html + mail.text and "fbclid" not in mail.html + mail.text


def test_a_list_that_keeps_tracking_gets_links_whole(app: App) -> None:
    mail = _mail(app, [_item(0, "Hijabi dolls", link=TAGGED)], keep_tracking=True)
    assert _links(mail) == {TAGGED}
    assert f"    {TAGGED}\n" in mail.text


def test_links_in_mail_have_a_lower_case_host_and_no_tracking_fragment(app: App) -> None:
    items = [_item(0, "Hijabi dolls", link="https://WWW.HuffingtonPost.ca/2017/09/25/"
                   "hijabi-dolls_a_23222373/#utm_source=rss&utm_medium=feed"),
             _item(1, "Also hijabi dolls", brief=True,
                   link="http://scripting.com/2017/06/26.html?hijabi#a080605")]
    mail = _mail(app, items)
    assert _links(mail) == {
        "https://www.huffingtonpost.ca/2017/09/25/hijabi-dolls_a_23222373/",
        "http://scripting.com/2017/06/26.html?hijabi#a080605"}
    assert "utm_" not in mail.html + mail.text
    assert "    https://www.huffingtonpost.ca/2017/09/25/hijabi-dolls_a_23222373/\n" in mail.text


def test_a_page_reached_over_http_and_https_is_linked_over_https(
        app: App, clock: Clock) -> None:
    # The Herald's feed links over http and tells the story at length, so its article
    # tells it; Yonhap's links to the same page over https.
    now, headline = clock(), "Harbour reopens after the storm, officials say"
    long = "The harbour reopened on Friday after a week of storms. " * 6
    mail = _gathered_mail(app, {
        "/herald.xml": rss("The Korea Herald", [
            (headline, "http://news.example.org/harbour/7", now - dt.timedelta(hours=1),
             long)]),
        "/yonhap.xml": rss("Yonhap", [
            (headline, "https://news.example.org/harbour/7?utm_source=rss",
             now - dt.timedelta(minutes=50), "The harbour reopened.")]),
    })
    doc = _doc(mail)
    assert [h.text_content() for h in doc.xpath("//h2")] == [headline]
    assert "a week of storms" in mail.text  # told by the Herald
    assert set(doc.xpath("//a[contains(@href, 'harbour/7')]/@href")) == {
        "https://news.example.org/harbour/7"}
    assert "http://news.example.org" not in mail.html + mail.text


def _gathered_mail(app: App, feeds: dict[str, bytes]) -> Preview:
    """The mail of the first edition of a list that reads `feeds` (path: RSS body),
    served on loopback and gathered as `digest fetch` does."""
    with loopback.feed_server(feeds.get) as base:
        with app.sessions() as s:
            create_list(s, "morning", title="The Morning Harbour",
                        from_addr="Harbour <news@harbour.example.org>")
            for path in feeds:
                add_source(s, base + path, get_list(s, "morning"))
            s.commit()
        with app.sessions() as s:
            assert all(r.status == "ok" for r in app.fetch(s))
    with app.sessions() as s:
        edition, _created = app.build(s, "morning")
        assert edition is not None
        return app.preview(edition, get_list(s, "morning"))


def test_a_lead_image_keeps_the_alt_text_its_feed_gave_it(app: App, clock: Clock) -> None:
    # As the corpus's Korean news feeds write a photo (demo seoul-daily.xml): its own
    # alt text, its size, its caption; the second story's image has a file name for alt,
    # which is none: the photo is decorative then, its headline right below it.
    now = clock()
    told = ('<figure><img src="https://images.harbour.example/water-bus.jpg" '
            'alt="The water bus moored at the central pier" width="1200" height="800">'
            '<figcaption>The water bus at the central pier on Friday.</figcaption></figure>'
            '<p>The water bus runs again from Monday, the city said.</p>')
    bare = ('<p><img src="https://images.harbour.example/IMG_2041.jpg" alt="IMG_2041.jpg" '
            'width="1200" height="675"></p><p>The library opens its photo archive.</p>')
    mail = _gathered_mail(app, {"/daily.xml": rss("Seoul Daily", [
        ("Water bus returns on Monday", "https://daily.example.org/1",
         now - dt.timedelta(hours=1), told),
        ("Library opens its photo archive", "https://daily.example.org/2",
         now - dt.timedelta(hours=2), bare)])})
    alts = {img.get("src").rsplit("/", 1)[1]: img.get("alt")
            for img in _doc(mail).xpath("//img[contains(@src, 'harbour.example')]")}
    assert alts == {"water-bus.jpg": "The water bus moored at the central pier",
                    "IMG_2041.jpg": ""}


def test_a_huge_headline_is_cut_in_both_parts(app: App) -> None:
    # A feed that put a whole post, 100 KB of it, in <title>.
    huge = "Harbour wall " + "and the council said more about it " * 3000
    mail = _mail(app, [_item(0, huge), _item(1, huge, brief=True)])
    doc = _doc(mail)
    shown = [h.text_content() for h in doc.xpath("//h2")] + [
        a.text_content() for a in doc.xpath("//a[contains(@class, 'also-link')]")]
    assert len(shown) == 2
    for headline in shown:
        assert headline.startswith("Harbour wall and the council said")
        assert headline.endswith("…") and len(headline) <= 300
    assert len(mail.html) < 30_000 and len(mail.text) < 10_000
    assert "Harbour wall and the council said more" in mail.text


# -- an item without a title --------------------------------------------------------------

PERMALINK = ("https://micro.example.social/@harbourwatch/statuses/1134823490234982345/"
             "2026-11-27-the-ferry-at-dawn-from-north-quay-seen-through-the-fog-over-the-"
             "storm-barrier-and-the-lighthouse?lang=en-GB")


def test_an_untitled_post_is_headed_by_its_first_words(app: App, clock: Clock) -> None:
    # A microblog's JSON Feed, as jsonfeed.org's microblog example writes it: no title,
    # the post in content_text; one post is a photo alone, with no text at all.
    assert len(PERMALINK) == 190
    now = clock()
    post = ("The 6:40 ferry left North Quay in thick fog this morning, its horn sounding "
            "every minute until it cleared the storm barrier. Worth getting up for.")
    items = [
        {"id": "1", "url": PERMALINK, "content_text": post,
         "date_published": (now - dt.timedelta(hours=1)).isoformat()},
        {"id": "2", "url": PERMALINK + "&n=2", "content_text": "Fog again. Lovely.",
         "date_published": (now - dt.timedelta(hours=2)).isoformat()},
        {"id": "3", "url": PERMALINK + "&n=3",
         "date_published": (now - dt.timedelta(hours=3)).isoformat()},
    ]
    feed = {"version": "https://jsonfeed.org/version/1.1", "title": "Harbour Watch",
            "home_page_url": "https://micro.example.social/@harbourwatch", "items": items}
    mail = _gathered_mail(app, {"/feed.json": json.dumps(feed).encode()})
    doc = _doc(mail)
    headlines = [h.text_content() for h in doc.xpath("//h2")]
    assert headlines == [
        "The 6:40 ferry left North Quay in thick fog this morning, its horn sounding…",
        "Fog again. Lovely.",
        PERMALINK + "&n=3",  # no text at all: its link is all there is to show
    ]
    assert "The 6:40 ferry left North Quay in thick fog this morning" in mail.text
    summaries = [p.text_content() for p in doc.xpath("//p[contains(@class, 'summary')]")]
    assert summaries == [post]  # the short post is told once, in its headline
    # The subject names the lead by the same headline, not by nothing.
    assert mail.subject == ("The Morning Harbour: The 6:40 ferry left North Quay in thick fog "
                            "this morning, its horn sounding…")
