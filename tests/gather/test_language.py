"""A story's language when its feed declares none (WCAG 3.1.2): told from its text at
gather time, or left unknown when the text cannot tell; a declared language always wins.

The feed is the one an audit found: RSS without <language>, its items in English, Korean
and Arabic, each with a sentence or two of description. It is served on loopback and
gathered through `App.fetch`; what is checked is the stored article's language, and the
mail a Korean list makes of it (`App.preview`), where only the stories in another
language than the list's carry a lang (and the Arabic one its direction).
"""

from __future__ import annotations

import lxml.html
import pytest
from sqlalchemy import select

from digest.app import App
from digest.errors import FetchError
from digest.gather.feeds import parse_feed
from digest.gather.sources import add_source
from digest.models import Article
from digest.publication import create_list
from subscribers.lists import get_list
from tests.conftest import DATA
from tests.test_mail_a11y import spoken_language

from .conftest import Loopback

WHEN = "Fri, 27 Nov 2026 05:00:00 +0000"  # an hour before the tests' clock

ENGLISH = ("Ferry fares to fall by a fifth from January",
           "The harbour authority said on Thursday that fares on every ferry route will "
           "fall by a fifth. The cut follows a year of record passenger numbers.")
KOREAN = ("한국어 뉴스: 서울에서 수상버스 노선 두 곳 추가",
          "서울시는 내년 봄부터 한강 수상버스 노선 두 곳을 새로 운행한다고 밝혔다. "
          "출퇴근 시간에는 십오 분 간격으로 배가 다닌다.")
ARABIC = ("خبر عاجل: إغلاق حاجز العواصف يوم الأحد لإجراء اختبار كامل",
          "قالت سلطة الميناء إن حاجز العواصف سيغلق يوم الأحد لإجراء اختبار كامل. "
          "وستتوقف العبارات عن العمل لمدة ست ساعات.")
# A Korean headline that quotes an English brand is Korean.
MIXED = ("삼성전자, Galaxy S25 Ultra 공개", "")
# Too short for any detector to tell its language.
SHORT = ("Update", "")
# Half Cyrillic, half Latin: no script speaks for the text.
AMBIGUOUS = ("Москва и Berlin: встреча министров", "Ministers meet in Moscow today")


def _rss(base: str, items: list[tuple[str, str]], language: str = "") -> bytes:
    declared = f"<language>{language}</language>" if language else ""
    body = "".join(
        f"<item><title>{title}</title><link>{base}/a/{n}</link><guid>{base}/a/{n}</guid>"
        f"<pubDate>{WHEN}</pubDate>"
        + (f"<description>{summary}</description>" if summary else "") + "</item>"
        for n, (title, summary) in enumerate(items))
    return (f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
            f"<title>World Desk</title><link>{base}/</link>{declared}{body}"
            f"</channel></rss>").encode()


def _gather(app: App, server: Loopback, feed: bytes, *, list_language: str = "en",
            full_text: bool = False, path: str = "/feed.xml") -> dict[str, str]:
    """Serve `feed` at `path`, add it to the list "world" and gather it once: the stored
    articles' languages by title."""
    server.route(path)(lambda h: h.reply(feed, Content_Type="application/rss+xml"))
    with app.sessions() as s:
        mlist = create_list(s, "world", title="World", language=list_language,
                            from_addr="World <news@world.example.org>")
        source, _ = add_source(s, server.url(path), mlist, full_text=full_text)
        s.commit()
        (report,) = app.fetch(s, source.id)
        assert report.status == "ok", report
        return {a.title: a.language for a in s.scalars(
            select(Article).where(Article.source_id == source.id))}


def test_a_feed_without_a_language_gets_each_story_s_own(app: App, server: Loopback) -> None:
    feed = _rss(server.base, [ENGLISH, KOREAN, ARABIC, MIXED])
    assert _gather(app, server, feed) == {
        ENGLISH[0]: "en", KOREAN[0]: "ko", ARABIC[0]: "ar", MIXED[0]: "ko"}


def test_a_text_too_short_or_too_mixed_to_tell_gets_no_language(app: App,
                                                                server: Loopback) -> None:
    # A wrong lang is worse than none: only the story whose text is clear gets one.
    feed = _rss(server.base, [ENGLISH, SHORT, AMBIGUOUS])
    assert _gather(app, server, feed) == {ENGLISH[0]: "en", SHORT[0]: "", AMBIGUOUS[0]: ""}


def test_a_declared_language_wins_over_the_text(app: App, server: Loopback) -> None:
    """The feed's <language> is kept even where the text says otherwise, and so is the
    page's <html lang> with its region; only what declares nothing is told."""
    declared = _gather(app, server, _rss(server.base, [ENGLISH, KOREAN], "fr"))
    assert declared == {ENGLISH[0]: "fr", KOREAN[0]: "fr"}

    paragraphs = "".join(f"<p>{KOREAN[1]} {n}번째 문단.</p>" for n in range(4))
    pages = {"/a/0": ('<html lang="en-GB">', "".join(f"<p>{ENGLISH[1]} Paragraph {n}.</p>"
                                                    for n in range(4))),
             "/a/1": ("<html>", paragraphs)}
    for path, (opening, text) in pages.items():
        page = (f"<!doctype html>{opening}<head><title>Story</title></head><body><article>"
                f"<h1>Story</h1>{text}</article></body></html>").encode()
        server.route(path)(lambda h, page=page: h.reply(page, Content_Type="text/html"))
    with app.sessions() as s:
        mlist = create_list(s, "pages", title="Pages", from_addr="p@news.example.org")
        feed = _rss(server.base, [ENGLISH, KOREAN])
        server.route("/full.xml")(lambda h: h.reply(feed, Content_Type="application/rss+xml"))
        source, _ = add_source(s, server.url("/full.xml"), mlist, full_text=True)
        s.commit()
        (report,) = app.fetch(s, source.id)
        assert report.status == "ok" and report.new == 2 and not report.pages_failed, report
        stored = {a.title: a.language for a in s.scalars(
            select(Article).where(Article.source_id == source.id))}
    assert stored == {ENGLISH[0]: "en-GB", KOREAN[0]: "ko"}


def test_a_korean_list_reads_the_english_and_arabic_stories_in_their_own(
        app: App, server: Loopback) -> None:
    _gather(app, server, _rss(server.base, [ENGLISH, KOREAN, ARABIC]), list_language="ko")
    with app.sessions() as s:
        edition, _ = app.build(s, "world")
        assert edition is not None
        doc = lxml.html.document_fromstring(app.preview(edition, get_list(s, "world")).html)
    assert doc.get("lang") == "ko"
    cells = {}
    for n, (title, _) in enumerate([ENGLISH, KOREAN, ARABIC]):
        [link] = [a for a in doc.xpath("//a[@href=$href]", href=f"{server.base}/a/{n}")
                  if title in a.text_content()]
        cells[title] = link.xpath("ancestor::td[contains(@class, 'story')]")[0]
        assert spoken_language(link) == ("en", "ko", "ar")[n], title
    assert (cells[ENGLISH[0]].get("lang"), cells[ENGLISH[0]].get("dir")) == ("en", None)
    assert (cells[ARABIC[0]].get("lang"), cells[ARABIC[0]].get("dir")) == ("ar", "rtl")
    # The Korean story is in the list's language: it needs no lang of its own.
    assert cells[KOREAN[0]].get("lang") is None


@pytest.mark.slow  # parses every feed of tests/data, 1,000-item ones too
def test_told_languages_agree_with_those_real_feeds_declare() -> None:
    """On the real feeds of tests/data, each entry's text (title and summary) is told
    without its declared language: never a wrong language, and most of them told (the
    rest are headlines without a summary, or a few words)."""
    from digest.gather.language import infer_language  # the module this file tests

    right = wrong = unsure = 0
    for path in sorted((DATA / "feeds").iterdir()):
        if path.suffix not in (".xml", ".rss", ".atom", ".rdf", ".json"):
            continue
        try:
            feed = parse_feed(path.read_bytes(), "https://example.org/feed")
        except FetchError:
            continue  # the deliberately broken ones
        for entry in feed.entries:
            if not entry.language:
                continue
            told = infer_language(entry.title, entry.summary)
            if not told:
                unsure += 1
            elif told == entry.language.replace("_", "-").split("-")[0].lower():
                right += 1
            else:
                wrong += 1
    assert wrong == 0
    assert right >= 0.8 * (right + unsure), (right, unsure)
