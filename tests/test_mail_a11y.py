"""The mail as a screen reader and a keyboard meet it: one link per story (its
headline), photos that say what they show or nothing, never the headline again, and a
story in another language than the list's read in its own.

The edition is stored as the desk and the sender find it (articles with their language,
caption and the alt text of their page, items copied from them) and read as a reader
gets it: the inlined HTML of `App.preview`. The last tests run axe-core on it in
Chromium, light and dark, on a desktop and a narrow phone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

import lxml.html
import pytest
from lxml.html import HtmlElement

from digest import curate
from digest.app import App
from digest.demo import IMAGES
from digest.editions import item_from_article
from digest.gather.sources import add_source
from digest.models import Article, Edition, EditionStatus
from digest.publication import create_list
from digest.render import Preview
from subscribers.lists import get_list
from tests.web.axe import assert_accessible
from tests.web.browser import artifacts, browser, page  # noqa: F401 (fixtures)

if TYPE_CHECKING:
    from playwright.sync_api import Page, Route

NOW = dt.datetime(2026, 11, 27, 7, 0, tzinfo=dt.UTC)
PHOTOS = "https://photos.test/"


@dataclass(frozen=True)
class Story:
    """What the test stores for one story, and what a reader should meet."""

    title: str
    link: str
    language: str = ""  # the article's, as its feed or page said it
    photo: str = ""  # under digest/demo/images
    caption: str = ""
    page_alt: str = ""  # the alt text its page gave the photo
    brief: bool = False  # in the "also new" list


STORIES = [
    Story("Ferry fares to fall by a fifth from January",
          "https://harbour-times.example/2026/11/ferry-fares", "en-GB",
          "harbour-times/ferry-dawn.jpg", "The 6:40 sailing leaves North Quay."),
    Story("해림시, 수상버스 노선 두 곳 추가", "https://seoul-daily.example/news/water-bus", "ko",
          "seoul-daily/water-bus.jpg", "중앙 부두에 정박한 수상버스."),
    # Its page wrote the headline as the photo's alt text, as some sites do.
    Story("Library opens its archive of harbour photographs",
          "https://city-notes.example/items/library-archive", "en",
          "city-notes/glass-plates.jpg",
          page_alt="Library opens its archive of harbour photographs"),
    Story("Storm barrier to close on Sunday for a full test",
          "https://harbour-times.example/2026/11/storm-barrier",
          photo="harbour-times/storm-barrier.jpg",
          page_alt="The storm barrier's gates half raised, seen from the east bank"),
    Story("Council delays its vote on the harbour wall",
          "https://city-notes.example/items/harbour-wall"),
    Story("야간버스, 동쪽 강변 노선 운행 재개", "https://seoul-daily.example/news/night-bus", "ko",
          brief=True),
    Story("Night buses return to the east bank", "https://city-notes.example/items/night-buses",
          "en", brief=True),
]
FULL = [s for s in STORIES if not s.brief]


def store_edition(app: App, *, layout: str = "hero", toc: bool = False) -> None:
    """The English list "morning" and its edition #1 (a draft) of STORIES, each item
    copied from its article as the desk copies a proposal."""
    with app.sessions() as s:
        mlist = create_list(s, "morning", title="The Morning Harbour", language="en",
                            from_addr="Harbour <news@harbour.example.org>",
                            timezone="Europe/London", layout=layout, toc=toc)
        source, _ = add_source(s, "https://harbour-times.example/feed.xml", mlist)
        edition = Edition(list_id=mlist.id, number=1, status=EditionStatus.DRAFT,
                          subject="Ferry fares to fall", since=NOW - dt.timedelta(days=1),
                          cutoff=NOW)
        for n, story in enumerate(STORIES):
            image = PHOTOS + story.photo if story.photo else ""
            shown = (f'<p><img src="{image}" alt="{story.page_alt}" width="1200" '
                     f'height="800"></p>' if image else "")
            article = Article(
                source_id=source.id, guid=f"g{n}", link=story.link, content_hash=f"h{n}",
                title=story.title, summary=f"What happened in {story.title}, told briefly.",
                content_html=f"{shown}<p>What happened, told briefly.</p>",
                image_url=image, image_caption=story.caption,
                image_width=1200 if image else None, image_height=800 if image else None,
                language=story.language, published_at=NOW - dt.timedelta(hours=n + 1),
                first_seen_at=NOW)
            s.add(article)
            s.flush()
            item = item_from_article(article, n, "The Harbour Times", 400)
            item.brief = story.brief
            edition.items.append(item)
        s.add(edition)
        s.commit()


def mail(app: App, **look: bool | str) -> Preview:
    """The edition of `store_edition` as a reader gets it."""
    store_edition(app, **look)  # type: ignore[arg-type]
    with app.sessions() as s:
        mlist = get_list(s, "morning")
        edition = s.query(Edition).filter_by(list_id=mlist.id, number=1).one()
        return app.preview(edition, mlist)


# -- what assistive technology is given -----------------------------------------------------

def hidden(element: HtmlElement) -> bool:
    """Out of the accessibility tree: aria-hidden on it or on an element around it."""
    return any(e.get("aria-hidden") == "true" for e in element.iterancestors()) or (
        element.get("aria-hidden") == "true")


def exposed_links(doc: HtmlElement, href: str) -> list[HtmlElement]:
    """The links to `href` a screen reader lists."""
    return [a for a in doc.xpath("//a[@href=$href]", href=href) if not hidden(a)]


def spoken_language(element: HtmlElement) -> str:
    """The language a screen reader reads `element` in: the nearest lang around it."""
    return next(e.get("lang") for e in (element, *element.iterancestors())
                if e.get("lang") is not None)


def text(element: HtmlElement) -> str:
    return " ".join(element.text_content().split())


LOOKS = [{"layout": layout, "toc": toc} for layout in ("hero", "compact")
         for toc in (False, True)]


@pytest.mark.parametrize("look", LOOKS, ids=lambda look: f"{look['layout']}-toc{look['toc']}")
def test_each_story_is_one_link_named_by_its_headline(app: App,
                                                      look: dict[str, bool | str]) -> None:
    doc = lxml.html.document_fromstring(mail(app, **look).html)
    for story in STORIES:
        [link] = exposed_links(doc, story.link)
        assert text(link) == story.title
        # The photo's and "Read the full story" still link there for a click, hidden
        # from screen readers and out of the tab order alike (a focusable element that
        # is hidden would be reached by Tab and announced as nothing).
        others = [a for a in doc.xpath("//a[@href=$href]", href=story.link) if a is not link]
        assert len(others) == (0 if story.brief else 1 + bool(story.photo)), story.title
        assert all(a.get("aria-hidden") == "true" and a.get("tabindex") == "-1"
                   for a in others), story.title
    # Every other link is exposed once: the contents' anchors, the footer's.
    for a in doc.xpath("//a[@href]"):
        assert not hidden(a) or a.get("href") in {s.link for s in STORIES}, a.get("href")


@pytest.mark.parametrize("look", LOOKS, ids=lambda look: f"{look['layout']}-toc{look['toc']}")
def test_a_photo_says_what_it_shows_or_nothing_never_the_headline(
        app: App, look: dict[str, bool | str]) -> None:
    doc = lxml.html.document_fromstring(mail(app, **look).html)
    alts = {img.get("src").removeprefix(PHOTOS): (img.get("class"), img.get("alt"))
            for img in doc.xpath("//img[starts-with(@src, $p)]", p=PHOTOS)}
    assert len(alts) == len([s for s in FULL if s.photo])
    for story in FULL:
        if not story.photo:
            continue
        kind, alt = alts[story.photo]
        assert alt != story.title
        if kind == "thumb":  # beside its headline, without its caption: decorative
            assert alt == "", story.title
        else:  # the page's description, else the caption, else nothing
            assert alt == ((story.page_alt if story.page_alt != story.title else "")
                           or story.caption), story.title


def test_the_plain_text_part_gives_each_story_its_link_once(app: App) -> None:
    part = mail(app).text
    for story in STORIES:
        assert part.count(story.link) == 1, story.title


@pytest.mark.parametrize("look", LOOKS, ids=lambda look: f"{look['layout']}-toc{look['toc']}")
def test_a_story_in_another_language_is_read_in_it(app: App,
                                                   look: dict[str, bool | str]) -> None:
    doc = lxml.html.document_fromstring(mail(app, **look).html)
    assert doc.get("lang") == "en"
    for story in STORIES:
        [link] = exposed_links(doc, story.link)
        assert spoken_language(link) == ("ko" if story.language == "ko" else "en"), story.title
        if story.language == "ko" and not story.brief:
            # Its container says so once, for the headline, blurb and caption alike,
            # without a direction of its own (Korean runs left to right as English does).
            story_cell = link.xpath("ancestor::td[contains(@class, 'story')]")[0]
            assert story_cell.get("lang") == "ko" and story_cell.get("dir") is None
            assert all(spoken_language(p) == "ko" for p in story_cell.xpath(
                ".//p[contains(@class, 'summary')]"))
            # What the list writes there itself is in the list's language.
            [more] = doc.xpath("//a[@class='more-link'][@href=$href]", href=story.link)
            assert text(more).startswith("Read the full story")
            assert spoken_language(more) == "en"
        if story.caption and story.language == "ko" and look["layout"] == "hero":
            [caption] = [td for td in doc.xpath("//td[contains(@class, 'caption')]")
                         if story.caption in text(td)]
            assert spoken_language(caption) == "ko"
    # An English story in an English list needs no lang of its own, whatever its region.
    english = exposed_links(doc, STORIES[0].link)[0]
    assert not [e for e in english.iterancestors() if e.get("lang") not in (None, "en")]
    assert not english.xpath("ancestor::td[@lang]")
    if look["toc"]:
        entries = {text(a): spoken_language(a) for a in doc.xpath("//a[@class='toc-link']")}
        assert entries[STORIES[1].title] == "ko" and entries[STORIES[0].title] == "en"


@pytest.mark.parametrize(("title", "text", "language"), [
    ("서울 시의회, 내년 예산안 통과",
     "서울시의회는 5일 본회의를 열고 내년도 예산안을 의결했다.", "ko"),
    ("Neue Fähre verbindet die Inseln ab Montag",
     "Die neue Fähre fährt ab Montag dreimal täglich zwischen den beiden Inseln und "
     "ersetzt das alte Schiff, das seit mehr als dreißig Jahren im Dienst war.", "de"),
])
def test_a_page_added_by_its_address_is_read_in_its_language(
        app: App, title: str, text: str, language: str) -> None:
    """A page the editor added by its URL has no article, so no feed's word on its
    language: it is told from its headline and text."""
    store_edition(app)
    added = curate.FetchedPage(url="https://elsewhere.example/story", title=title, text=text,
                              image_url="", image_caption="", site="elsewhere.example")
    with app.sessions() as s:
        mlist = get_list(s, "morning")
        edition = s.query(Edition).filter_by(list_id=mlist.id, number=1).one()
        curate.add_page(s, edition, added, now=NOW, rules=app.edition_rules())
        s.commit()
        doc = lxml.html.document_fromstring(app.preview(edition, mlist).html)
    [link] = exposed_links(doc, added.url)
    assert spoken_language(link) == language
    # The list's own English stories stay unmarked.
    assert spoken_language(exposed_links(doc, STORIES[0].link)[0]) == "en"


def test_a_right_to_left_story_in_a_left_to_right_list_runs_its_own_way(app: App) -> None:
    """Arabic in an English list: its own lang and dir, its lines begin on the right;
    the editor's words around it stay English, left to right."""
    store_edition(app)
    with app.sessions() as s:
        article = s.query(Article).filter_by(link=STORIES[4].link).one()
        article.language = "ar"
        mlist = get_list(s, "morning")
        edition = s.query(Edition).filter_by(list_id=mlist.id, number=1).one()
        s.commit()
        doc = lxml.html.document_fromstring(app.preview(edition, mlist).html)
    [link] = exposed_links(doc, STORIES[4].link)
    cell = link.xpath("ancestor::td[contains(@class, 'story')]")[0]
    assert (cell.get("lang"), cell.get("dir"), cell.get("align")) == ("ar", "rtl", "right")
    [more] = doc.xpath("//a[@class='more-link'][@href=$href]", href=STORIES[4].link)
    assert more.getparent().get("lang") == "en" and more.getparent().get("dir") == "ltr"
    others = exposed_links(doc, STORIES[0].link)[0].xpath("ancestor::td[@dir]")
    assert not others


# -- axe-core in Chromium ---------------------------------------------------------------------

def _photos(route: Route) -> None:
    url = route.request.url
    if url.startswith(PHOTOS):
        route.fulfill(body=(IMAGES / url.removeprefix(PHOTOS)).read_bytes(),
                      content_type="image/jpeg")
    else:
        route.abort()  # nothing else leaves the machine


@pytest.mark.browser
@pytest.mark.parametrize("layout", ["hero", "compact"])
@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [1280, 320])
def test_axe_finds_nothing_serious_in_the_mail(app: App, page: Page,  # noqa: F811
                                               layout: str, scheme: str, width: int) -> None:
    html = mail(app, layout=layout, toc=True).html
    page.set_viewport_size({"width": width, "height": 900})
    page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
    page.route("**/*", _photos)
    page.set_content(html, wait_until="load")
    assert_accessible(page, "email")
    # Tab reaches each story's headline once, and no link Tab reaches is hidden.
    reached = page.evaluate("""() => [...document.querySelectorAll('a[href]')]
        .filter(a => a.tabIndex >= 0 && !a.closest('[aria-hidden="true"]'))
        .map(a => a.getAttribute('href'))""")
    for story in STORIES:
        assert reached.count(story.link) == 1, story.title
    assert page.evaluate("""() => [...document.querySelectorAll('[aria-hidden="true"] a, '
        + 'a[aria-hidden="true"]')].every(a => a.tabIndex < 0)""")
