"""Stories told right: the blurb is the story, a photo keeps its caption, credit and size,
the headline is not repeated, and an image is a picture.

Feeds and pages are served on loopback and fetched through `App.fetch`, as the scheduler
does; what is checked is the stored article (its blurb, photo, caption and credit). The
shapes are real: Media RSS as HuffPost, the Guardian and Yonhap send it, Blogger's feed
and post page (tests/data/pages, see its README).
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Callable

from sqlalchemy import select

from digest.app import App
from digest.gather.clean import is_boilerplate
from digest.gather.extract import PageEnricher, extract_article
from digest.gather.feeds import Entry, parse_feed
from digest.gather.fetch import FetchResult
from digest.gather.sources import add_source
from digest.models import Article
from digest.publication import create_list
from tests.conftest import DATA, Clock

from .conftest import Handler, Loopback
from .test_extract import corpus

PAGES = DATA / "pages"
MRSS = 'xmlns:media="http://search.yahoo.com/mrss/"'
EDITORIAL = "Defense spending is not a strategy"
DISCLAIMER = ("This article was originally written in Korean and translated by a bilingual "
              "reporter with the help of generative AI tools.")


def _rss(base: str, items: str, when: str = "Tue, 02 Sep 2025 08:30:00 +0900") -> bytes:
    items = items.replace("{base}", base).replace("{when}", when)
    return (f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" {MRSS}><channel>'
            f"<title>Desk</title><link>{base}/</link>{items}</channel></rss>").encode()


def _fetch(app: App, server: Loopback, feed: bytes, *, full_text: bool = False,
           ) -> dict[str, Article]:
    """Serve `feed` at /feed.xml, fetch it once, and return the stored articles by path."""
    server.route("/feed.xml")(lambda h: h.reply(feed, Content_Type="application/rss+xml"))
    with app.sessions() as s:
        mlist = create_list(s, "daily", title="Daily", from_addr="d@news.example.org")
        source, _ = add_source(s, server.url("/feed.xml"), mlist, full_text=full_text)
        s.commit()
        (report,) = app.fetch(s, source.id)
        assert report.status == "ok", report
        return {a.link.removeprefix(server.base): a for a in s.scalars(select(Article))}


# --- 1. a photo caption is not the blurb ----------------------------------------------

# Yonhap's order: the photo (with its caption) before the story's <description>, which
# feedparser then files as content while the caption becomes the summary.
CAPTION_FIRST = """<item><title>Seoul raises defense budget by 8.2 percent</title>
<link>{base}/a/1</link><guid>{base}/a/1</guid><pubDate>{when}</pubDate>
<media:content url="https://img.example.com/2025/09/02/budget.jpg" medium="image"
  width="1200" height="800">
  <media:description><![CDATA[Defense Minister Ahn Gyu-back speaks at the National
  Assembly on Tuesday.]]></media:description>
  <media:credit><![CDATA[Yonhap]]></media:credit>
</media:content>
<description><![CDATA[<p>The government proposed a defense budget of 66.3 trillion won
for next year.</p>]]></description></item>"""
# HuffPost's order (tests/data/feeds/fj_HuffPostCanada.xml): <description> first, then
# media:content with a caption, then a video's media:content with an empty caption,
# which used to empty the summary.
STORY_FIRST = """<item><title>Winnipeg school orders custom hijabs</title>
<link>{base}/a/2</link><guid>{base}/a/2</guid><pubDate>{when}</pubDate>
<description type="html"><![CDATA[<p>Nusaybah Mohamed's basketball uniform will look
a little different this year.</p>]]></description>
<media:content url="https://img.example.com/hijab.png" width="" height="" medium="image">
  <media:credit><![CDATA[Dakota Collegiate/Twitter]]></media:credit>
  <media:description><![CDATA[About 50 female students wear hijabs.]]></media:description>
</media:content>
<media:content url="https://video.example.com/v.mp4" medium="video">
  <media:credit><![CDATA[]]></media:credit>
  <media:description><![CDATA[]]></media:description>
</media:content></item>"""
# The Guardian: two renditions of one photo, the 140 px one first, and the credit only.
RENDITIONS = """<item><title>Markets rally</title><link>{base}/a/3</link>
<guid>{base}/a/3</guid><pubDate>{when}</pubDate>
<description>&lt;p&gt;Shares rose in Seoul and Tokyo.&lt;/p&gt;</description>
<media:content width="140" url="https://i.guim.example/img/media/abc/master/3000.jpg?width=140">
  <media:credit scheme="urn:ebu">Photograph: Kim Hong-ji/Reuters</media:credit>
</media:content>
<media:content width="460" url="https://i.guim.example/img/media/abc/master/3000.jpg?width=460">
  <media:credit scheme="urn:ebu">Photograph: Kim Hong-ji/Reuters</media:credit>
</media:content></item>"""


def test_media_caption_and_credit_stay_with_the_photo(app: App, server: Loopback) -> None:
    stored = _fetch(app, server, _rss(server.base, CAPTION_FIRST + STORY_FIRST + RENDITIONS))
    budget = stored["/a/1"]
    assert budget.summary == ("The government proposed a defense budget of 66.3 trillion "
                              "won for next year.")
    assert budget.image_url == "https://img.example.com/2025/09/02/budget.jpg"
    assert budget.image_caption == ("Defense Minister Ahn Gyu-back speaks at the National "
                                    "Assembly on Tuesday.")
    assert (budget.image_credit, budget.image_width, budget.image_height) == (
        "Yonhap", 1200, 800)
    assert "Ahn Gyu-back" not in budget.content_html
    hijab = stored["/a/2"]
    assert hijab.summary.startswith("Nusaybah Mohamed's basketball uniform")
    assert hijab.image_caption == "About 50 female students wear hijabs."
    assert hijab.image_credit == "Dakota Collegiate/Twitter"
    assert hijab.image_width is None  # width="" is no size
    markets = stored["/a/3"]
    assert markets.summary == "Shares rose in Seoul and Tokyo."
    assert markets.image_url.endswith("?width=460") and markets.image_width == 460
    assert (markets.image_caption, markets.image_credit) == (
        "", "Photograph: Kim Hong-ji/Reuters")


def test_a_figure_caption_is_the_caption_not_the_start_of_the_blurb() -> None:
    feed = _rss("https://blog.example.com", """<item><title>Harbour opens</title>
<link>{base}/p/1</link><description><![CDATA[<figure><img src="/harbour.jpg" width="1024"
alt="The new pier"><figcaption>The new pier at dawn. Photo: Jane Doe</figcaption></figure>
<p>The harbour reopened on Monday after two years of work.</p>]]></description></item>""")
    (entry,) = parse_feed(feed, "https://blog.example.com/feed").entries
    assert entry.summary == "The harbour reopened on Monday after two years of work."
    assert (entry.image_url, entry.image_width) == ("https://blog.example.com/harbour.jpg", 1024)
    assert (entry.image_caption, entry.image_credit) == ("The new pier at dawn.",
                                                          "Photo: Jane Doe")


# A Blogger feed item: media:thumbnail is a 72 px crop, the post holds the 640 px photo in
# Blogger's caption table, and the post repeats its title in bold.
BLOGGER_ITEM = f"""<item><guid isPermaLink="false">tag:blogger.com,1999:blog-55.post-81</guid>
<pubDate>{{when}}</pubDate><title>{EDITORIAL}</title>
<description>&lt;p&gt;&lt;b&gt;{EDITORIAL}&lt;/b&gt;&lt;/p&gt;&lt;table align="center"
cellpadding="0" cellspacing="0" class="tr-caption-container"&gt;&lt;tbody&gt;&lt;tr&gt;&lt;td
style="text-align: center;"&gt;&lt;a href="https://blogger.googleusercontent.com/img/b/R29v/s1600/defense.jpg"&gt;&lt;img
alt="Defense Minister Ahn Gyu-back" border="0" height="427"
src="https://blogger.googleusercontent.com/img/b/R29v/s640/defense.jpg" width="640"
/&gt;&lt;/a&gt;&lt;/td&gt;&lt;/tr&gt;&lt;tr&gt;&lt;td class="tr-caption" style="text-align:
center;"&gt;Defense Minister Ahn Gyu-back answers questions at the National Assembly on
Tuesday. [POOL PHOTO]&lt;/td&gt;&lt;/tr&gt;&lt;/tbody&gt;&lt;/table&gt;&lt;p&gt;The
government on Tuesday proposed a defense budget of 66.3 trillion won.&lt;/p&gt;</description>
<link>{{base}}/2025/09/defense.html</link><author>noreply@blogger.com (Min-ji Park)</author>
<media:thumbnail url="https://blogger.googleusercontent.com/img/b/R29v/s72-c/defense.jpg"
height="72" width="72"/></item>"""


def test_blogger_post_photo_caption_and_credit(app: App, server: Loopback) -> None:
    article = _fetch(app, server, _rss(server.base, BLOGGER_ITEM))["/2025/09/defense.html"]
    assert article.summary == ("The government on Tuesday proposed a defense budget of 66.3 "
                               "trillion won.")
    assert article.image_url == "https://blogger.googleusercontent.com/img/b/R29v/s640/defense.jpg"
    assert (article.image_width, article.image_height) == (640, 427)
    assert article.image_caption == ("Defense Minister Ahn Gyu-back answers questions at the "
                                     "National Assembly on Tuesday.")
    assert article.image_credit == "[POOL PHOTO]"
    assert EDITORIAL not in article.content_html
    assert 'alt="Defense Minister Ahn Gyu-back"' in article.content_html


# --- 2. the headline is not repeated --------------------------------------------------

def test_a_headline_on_the_first_line_is_not_the_blurb() -> None:
    # The editorial's feed put the headline on the first line of its first paragraph,
    # which read "...is not a strategy What worries us...".
    feed = _rss("https://desk.example.com", f"""<item><title>{EDITORIAL}</title>
<link>{{base}}/e/1</link><description><![CDATA[<p>{EDITORIAL}<br>What worries us is that
the budget is offered as the whole answer.</p><p>Second.</p>]]></description></item>
<item><title>{EDITORIAL.upper()}!</title><link>{{base}}/e/2</link><description>
<![CDATA[<h2>{EDITORIAL}</h2><p>What worries us.</p>]]></description></item>
<item><title>Budget</title><link>{{base}}/e/3</link><description><![CDATA[<p>Budget
talks resume on Monday, officials said.</p>]]></description></item>""")
    first, second, third = parse_feed(feed, "https://desk.example.com/feed").entries
    assert first.summary == ("What worries us is that the budget is offered as the whole "
                             "answer.\n\nSecond.")
    assert EDITORIAL not in first.content_html
    assert second.summary == "What worries us."  # case and punctuation do not matter
    # A paragraph that only starts with the title's words is a sentence: kept.
    assert third.summary == "Budget talks resume on Monday, officials said."


def test_a_plain_text_description_that_starts_with_the_headline_is_not_repeated() -> None:
    """Plain-text descriptions put the headline on their first line or as their first
    sentence; under the headline the reader already sees, the blurb starts after it. A
    description that is only the headline, or starts with the title's words as a
    sentence of its own, is kept."""
    title = "Harbour reopens after the storm, officials say"
    body = "Boats returned to the quay on Monday after three days."
    feed = _rss("https://desk.example.com", "".join(
        f"<item><title>{t}</title><link>{{base}}/p/{n}</link><description>{d}</description>"
        "</item>" for n, (t, d) in enumerate([
            (title, f"{title}\n{body}"), (title, f"{title}. {body}"),
            (title, f"{title.upper()} – {body}"), (title, f"{title}."),
            ("Budget", "Budget talks resume on Monday, officials said.")])))
    got = [e.summary for e in parse_feed(feed, "https://desk.example.com/feed").entries]
    assert got == [body, body, body, f"{title}.",
                   "Budget talks resume on Monday, officials said."]


# --- 3. and 7. a newspaper page: photo with caption and credit, no repeated headline ---

PAGE_URLS = {
    "/2025/09/defense-spending-is-not-defense.html": "blogger-korean-daily-en.html",
    "/2025/09/defense-budget-editorial.html": "blogger-korean-daily-ko.html",
}


def _page(body: bytes) -> Callable[[Handler], None]:
    def serve(h: Handler) -> None:
        h.reply(body, Content_Type="text/html")
    return serve


def _serve_pages(server: Loopback, clock: Clock) -> bytes:
    for path, name in PAGE_URLS.items():
        body = (PAGES / name).read_bytes()
        server.route(path)(_page(body))
    items = "".join(
        f"<item><title>{title}</title><link>{{base}}{path}</link><pubDate>{{when}}</pubDate>"
        f"<description>{teaser}</description></item>"
        for path, title, teaser in (
            ("/2025/09/defense-spending-is-not-defense.html", EDITORIAL,
             "The government proposed a defense budget..."),
            ("/2025/09/defense-budget-editorial.html",
             "[사설] 국방비 증액이 곧 국방 전략은 아니다", "정부가 2일 내년 국방예산으로..."),
        ))
    return _rss(server.base, items, email.utils.format_datetime(clock()))


def test_newspaper_page_gives_photo_caption_credit_and_the_story_once(
        app: App, server: Loopback, clock: Clock) -> None:
    stored = _fetch(app, server, _serve_pages(server, clock), full_text=True)
    en = stored["/2025/09/defense-spending-is-not-defense.html"]
    assert en.image_url.endswith("/w1200-h630-p-k-no-nu/defense-minister-assembly.jpg")
    assert en.image_caption == ("Defense Minister Ahn Gyu-back answers questions at the "
                                "National Assembly in Yeouido, western Seoul, on Tuesday.")
    assert en.image_credit == "[POOL PHOTO]"
    assert en.author == "Min-ji Park"
    paragraphs = en.summary.split("\n\n")
    assert paragraphs[0].startswith("The government on Tuesday proposed a defense budget")
    assert paragraphs[2].startswith("What worries us is that the budget")
    # The AI-translation note tells the reader how the text was made: it is kept.
    assert paragraphs[-1].startswith(DISCLAIMER) and len(paragraphs) == 6
    assert EDITORIAL not in en.summary and "[POOL PHOTO]" not in en.summary
    assert not [p for p in paragraphs if is_boilerplate(p)]
    for furniture in ("No comments", "Post a Comment", "Share to X", "Popular Posts"):
        assert furniture not in en.summary and furniture not in en.content_html
    # The stored content keeps the photo with the page's alt text, caption and credit.
    assert 'alt="Defense Minister Ahn Gyu-back at the National Assembly"' in en.content_html
    assert "on Tuesday. [POOL PHOTO]</figcaption>" in en.content_html

    ko = stored["/2025/09/defense-budget-editorial.html"]
    assert ko.language == "ko" and ko.author == "박민지"
    assert ko.image_caption.startswith("안규백 국방부 장관이 2일 서울 여의도 국회에서")
    assert ko.image_credit == "[국회사진기자단]"
    assert ko.summary.startswith("정부가 2일 내년 국방예산으로 66조3000억원을 편성했다.")
    assert ko.summary.endswith("제대로 쓰는 것이 전략이다.")
    assert "국방 전략은 아니다" not in ko.summary
    for furniture in ("댓글 없음", "댓글 쓰기", "Facebook에서 공유하기", "인기 게시물"):
        assert furniture not in ko.summary


def test_canonical_link_of_the_page() -> None:
    page = (PAGES / "blogger-korean-daily-en.html").read_bytes()

    def enrich(body: bytes) -> Entry:
        def get_page(url: str) -> FetchResult:
            return FetchResult(url + "?m=1", 200, body, "text/html", "", "")
        teaser = Entry(guid="g", link="https://harbourdesk.blogspot.com/p?utm_source=x",
                       title=EDITORIAL, author="", published=None, content_html="",
                       summary="Teaser.", image_url="", image_caption="", language="")
        return PageEnricher(get_page, limit=1)(teaser)

    assert enrich(page).canonical == (
        "https://harbourdesk.blogspot.com/2025/09/defense-spending-is-not-defense.html")
    relative = page.replace(b"href='https://harbourdesk.blogspot.com/2025/09/",
                            b"href='/2025/09/", 1)
    assert enrich(relative).canonical == (
        "https://harbourdesk.blogspot.com/2025/09/defense-spending-is-not-defense.html")
    hostile = page.replace(b"href='https://harbourdesk.blogspot.com/2025/09/defense-spending"
                           b"-is-not-defense.html' rel='canonical'",
                           b"href='javascript:alert(1)' rel='canonical'")
    assert enrich(hostile).canonical == ""


NEWS_PAGE = "/politics/2026/12/04/council-passes-budget/"


def test_the_captioned_photo_leads_over_a_social_crop(
        app: App, server: Loopback, clock: Clock) -> None:
    # A newspaper's page (tests/data/pages/newspaper-council-budget.html): og:image is a
    # 1200x630 crop made for social cards, the article shows the 800 px photo in a
    # <figure> with its caption, credit and alt text, and the byline has a title.
    page = (PAGES / "newspaper-council-budget.html").read_bytes()
    server.route(NEWS_PAGE)(_page(page))
    feed = _rss(server.base, f"""<item><title>Council passes budget after marathon session
</title><link>{{base}}{NEWS_PAGE}</link><pubDate>{{when}}</pubDate><description>The city
council approved a budget.</description></item>""", email.utils.format_datetime(clock()))
    stored = _fetch(app, server, feed, full_text=True)

    story = stored[NEWS_PAGE]
    assert story.image_url == ("https://cdn.harbourdaily.example.com/photos/2026/12/04/"
                               "council-vote-800.jpg")
    assert (story.image_width, story.image_height) == (800, 533)
    assert story.image_caption == ("Council members vote on the budget at City Hall on "
                                   "Thursday night.")
    assert story.image_credit == "[POOL PHOTO]"
    assert story.content_html.startswith(
        '<figure><img src="https://cdn.harbourdaily.example.com/photos/2026/12/04/'
        'council-vote-800.jpg" alt="Council members raise their hands to vote" width="800" '
        'height="533"><figcaption>Council members vote on the budget at City Hall on '
        "Thursday night. [POOL PHOTO]</figcaption></figure>")
    assert story.author == "Maria Gomez, City Hall reporter"  # as the page writes it
    assert "[POOL PHOTO]" not in story.summary
    assert story.summary.startswith("The city council approved a 1.2 billion budget")
    assert story.summary.endswith("The mayor is expected to sign the budget on Monday.")

    # No photo in the article: the page's og:image leads, with its declared size.
    bare = extract_article(re.sub(rb"<figure.*?</figure>", b"", page, flags=re.S),
                           server.url(NEWS_PAGE))
    assert bare is not None
    assert bare.image_url == ("https://cdn.harbourdaily.example.com/social/2026/12/04/"
                              "council-vote_1200x630_social.jpg")
    assert (bare.image_width, bare.image_height, bare.image_caption) == (1200, 630, "")


def test_benchmark_pages_lead_with_their_captioned_photo() -> None:
    # Real pages whose og:image is a picture the page never shows (Quanta's
    # "_1200_Social.jpg", The Sun's composite): the article's own photo leads, with the
    # page's caption, credit and alt text.
    expected = {
        "www.quantamagazine.org": ("Tongue-Lungs_2880x1620_Lede.jpg",
                                   "Cells with taste receptors sometimes develop", ""),
        "www.thesun.co.uk": ("NINTCHDBPICT000540033229.jpg",
                             "Beijing Chaoyang Hospital in Beijing", "Credit: EPA"),
    }
    for domain, (name, caption, credit) in expected.items():
        page = corpus()[domain]
        got = extract_article(page.html(), page.url)
        assert got is not None
        assert got.image_url.endswith(name), (domain, got.image_url)
        assert got.image_caption.startswith(caption) and got.image_credit == credit, domain
        assert caption not in got.text, domain  # the caption is the photo's, not the text's
    # A page whose og:image is its photo keeps it (9to5mac.com, no caption on the page).
    mac = corpus()["9to5mac.com"]
    got = extract_article(mac.html(), mac.url)
    assert got is not None and got.image_url.endswith("12-inch-macbook-2017.jpg?resize=1024,512")


def test_the_byline_as_the_page_writes_it() -> None:
    # trafilatura reads these bylines as lists of names: "Jill Disis; CNN Business".
    for domain, byline in (
            ("www.cnn.com", "Jill Disis, CNN Business"),
            ("hosted.ap.org", "LISA MASCARO, MARY CLARE JALONICK and ERIC TUCKER "
                              "Associated Press"),
            ("slate.com", "Isaac Butler"),
            ("www.theverge.com", "Chaim Gartenberg"),  # not "Chaim Gartenberg@cgartenberg"
            ("www.vox.com", "Umair Irfan")):  # not "Umair Irfan Updated Nov 13, 2019"
        page = corpus()[domain]
        got = extract_article(page.html(), page.url)
        assert got is not None and got.author == byline, (domain, got and got.author)


def test_benchmark_pages_do_not_repeat_their_headline() -> None:
    for domain in ("phys.org", "www.rt.com", "www.thespacereview.com", "note100yen.com"):
        page = corpus()[domain]
        got = extract_article(page.html(), page.url)
        assert got is not None
        first = got.text.split("\n\n")[0]
        assert got.title[:30] not in first, (domain, first[:100])


# --- 5. images that are not images ----------------------------------------------------

def test_only_real_pictures_lead() -> None:
    feed = _rss("https://feeds.example.org", """
<item><title>Probe</title><link>{base}/1</link><description><![CDATA[<p>Text
<img src="x" onerror="alert(1)">.</p>]]></description></item>
<item><title>Pixel and data</title><link>{base}/2</link><description><![CDATA[
<img src="https://stats.example/p.gif" width="1" height="1"><img src="data:image/png;base64,AAAA">
<p>Story.</p><img src="https://img.example/photo.jpg" width="800" height="600">
]]></description></item>
<item><title>Icon first</title><link>{base}/3</link><description><![CDATA[
<img src="https://img.example/icon.png" width="32" height="32"><p>Story.</p>
<img src="https://img.example/wide.jpg" width="1024">]]></description>
<media:thumbnail url="https://img.example/thumb.jpg" width="72" height="72"/></item>
<item><title>Only small</title><link>{base}/4</link><description>Story.</description>
<media:thumbnail url="https://img.example/thumb.jpg" width="72" height="72"/></item>""")
    probe, pixel, icon, small = parse_feed(feed, "https://feeds.example.org/feed").entries
    assert (probe.image_url, probe.summary) == ("", "Text.")
    assert "<img" not in probe.content_html
    assert (pixel.image_url, pixel.image_width, pixel.image_height) == (
        "https://img.example/photo.jpg", 800, 600)
    assert (icon.image_url, icon.image_width) == ("https://img.example/wide.jpg", 1024)
    assert (small.image_url, small.image_width) == ("https://img.example/thumb.jpg", 72)


def test_a_video_description_is_the_story_and_the_feed_photo_leads() -> None:
    # YouTube's media:group holds the video, its thumbnail and its description: the
    # description is the story, not a caption of the thumbnail.
    youtube = parse_feed((DATA / "feeds" / "fj_youtube_atom.xml").read_bytes(),
                         "https://www.youtube.com/feeds/videos.xml").entries
    assert youtube[0].summary.startswith("A question is the most powerful force")
    assert all(e.summary and not e.image_caption for e in youtube)
    # Macworld's media:content (no size given) leads, not a 300 px photo further down.
    macworld = parse_feed((DATA / "feeds" / "nnw_macworld.rss").read_bytes(),
                          "https://www.macworld.com/index.rss").entries
    crossing = next(e for e in macworld if e.title.startswith("Animal Crossing"))
    assert crossing.image_url.endswith("animal-crossing-lead-100742868-large.3x2.jpg")
    assert not [e for e in macworld if "please click here" in e.summary]
