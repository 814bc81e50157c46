"""clean: the nh3 allowlist, boilerplate removal, plain text, URL checks."""

from __future__ import annotations

import re

import pytest

from digest.gather.clean import (
    content_hash,
    html_to_text,
    is_boilerplate,
    plain_text,
    safe_url,
    sanitize_html,
)
from digest.gather.images import Image, first_image, split_credit

BASE = "https://blog.example.com/2024/05/post/"
REAL = "<p>The council met on Tuesday and voted on the new budget.</p>"


@pytest.mark.parametrize("block", [
    "<p>No comments:</p>",
    "<p>No comments yet</p>",
    "<p>3 Comments</p>",
    "<div><a href='#comment-form'>Post a Comment</a></div>",
    "<h3>Leave a Reply</h3>",
    "<p>Share this:</p>",
    "<p>Share on Facebook</p>",
    "<li>Share on Twitter</li>",
    "<p><a href='https://x.example/'>Click to share on Twitter (Opens in new window)</a></p>",
    "<h3>Related posts</h3>",
    "<p><strong>Subscribe to our newsletter</strong></p>",
    "<p>Continue reading <span>The budget vote</span> →</p>",
    "<p>The post <a href='/p'>Budget vote</a> appeared first on <a href='/'>City News</a>.</p>",
    "<p>댓글 없음:</p>",
    "<div><a href='#c'>댓글 쓰기</a></div>",
    "<p>공유하기</p>",
    "<p><b>구독하기</b></p>",
    # A row of share buttons, as the attack's feed item and WordPress share bars send it.
    "<div class='share'><a href='https://facebook.com/share'>Share on Facebook</a> "
    "<a href='https://twitter.com/intent'>Tweet</a> Share this:</div>",
    "<p><a href='#'>Facebook</a> | <a href='#'>Twitter</a> | <a href='#'>Email</a></p>",
    # Blogger's post footer, as feeds of Blogger sites carry it in the post's body.
    "<p>Share on Facebook | Share on Twitter | Email this</p>",
    "<p>Posted by Jane at 10:02 AM 3 comments</p>",
    "<div class='post-footer'>Posted by <a href='/p'>Kim Min-ji</a> at 9:15 PM "
    "No comments</div>",
    "<p>Labels: town, news</p>",
    "<p>라벨: 지역, 뉴스</p>",
    "<p>Email ThisBlogThis!Share to TwitterShare to FacebookShare to Pinterest</p>",
    # A newspaper's "Related coverage" box, its heading and its list of links.
    "<aside class='related-box'><h4>Related coverage</h4><ul><li><a href='/a'>What is in "
    "the budget</a></li><li><a href='/b'>Transit fares to stay flat</a></li></ul></aside>",
])
def test_boilerplate_blocks_are_removed(block: str) -> None:
    html = REAL + block
    assert sanitize_html(html, BASE) == REAL
    assert html_to_text(html) == "The council met on Tuesday and voted on the new budget."


@pytest.mark.parametrize("para", [
    "<p>No comments were made by the minister after the vote.</p>",
    "<p>Share this with anyone who asks how the budget was passed.</p>",
    "<p>Readers left 40 comments, most of them about parking.</p>",
    "<p>He answered <a href='https://x.example/'>No comments</a> and left the room.</p>",
    "<p>Related posts on this blog cover the earlier votes in detail.</p>",
    "<p>이 기사를 친구에게 공유하기 전에 끝까지 읽어 주세요.</p>",
    "<p>We share this view: print the ballot, email it, tweet it.</p>",
    "<p>Email</p>", "<p>Print</p>",  # one word alone may be a heading of the story
    "<p>Related coverage of the vote ran on page three.</p>",
    "<p>댓글 없음이라는 표시는 아직 아무도 의견을 남기지 않았다는 뜻이다.</p>",
    "<p>Posted by the council at 10:02 AM, the notice was taken down an hour later.</p>",
    "<p>Labels: the new rules say what they must show. Sugar comes first.</p>",
    "<p>Email this form to the council before Friday.</p>",
])
def test_real_paragraphs_mentioning_comments_or_sharing_are_kept(para: str) -> None:
    cleaned = sanitize_html(REAL + para, BASE)
    assert plain_text(para) in plain_text(cleaned)
    assert plain_text(para) in html_to_text(REAL + para)


def test_share_heading_takes_its_list_of_buttons_along() -> None:
    html = (REAL + '<div class="sharedaddy"><h3>Share this:</h3><ul>'
            '<li><a href="https://twitter.com/share">Twitter</a></li>'
            '<li><a href="https://facebook.com/share">Facebook</a></li></ul></div>'
            "<h4>Related</h4><ul><li><a href='/other'>Another post</a></li></ul>")
    text = html_to_text(html)
    assert text == "The council met on Tuesday and voted on the new budget."
    assert "facebook" not in sanitize_html(html, BASE)


def test_is_boilerplate_matches_whole_text_only() -> None:
    assert is_boilerplate("  Share this:  ")
    assert is_boilerplate("NO COMMENTS")
    assert not is_boilerplate("Share this story about no comments")
    assert not is_boilerplate("")


def test_relative_urls_are_made_absolute_and_links_get_rel() -> None:
    html = ('<p><a href="/about">about</a> <a href="next/">next</a> '
            '<a href="//cdn.example.net/x">cdn</a> <a href="mailto:ed@example.com">mail</a></p>'
            '<img src="pic.jpg" alt="A picture">')
    out = sanitize_html(html, BASE)
    assert 'href="https://blog.example.com/about"' in out
    assert 'href="https://blog.example.com/2024/05/post/next/"' in out
    assert 'href="https://cdn.example.net/x"' in out
    assert 'href="mailto:ed@example.com"' in out
    assert 'src="https://blog.example.com/2024/05/post/pic.jpg"' in out
    assert out.count('rel="noopener noreferrer"') == 4


def test_relative_urls_without_a_base_are_dropped() -> None:
    out = sanitize_html('<a href="/about">about</a><img src="pic.jpg">')
    assert out == '<a rel="noopener noreferrer">about</a>'


def test_allowlist_removes_active_content() -> None:
    html = """
      <script>alert(1)</script><style>p { color: red }</style>
      <iframe src="https://evil.example/">frame</iframe><object>obj</object><embed src="x">
      <form action="/steal"><input name="pw"><button>Send</button></form>
      <svg onload="alert(2)"><circle r="1"/></svg><noscript>ns</noscript>
      <p onclick="alert(3)" style="color:red" class="x" id="y">Kept <em>text</em></p>
      <a href="javascript:alert(4)" onmouseover="alert(5)">js</a>
      <a href=" JaVaScRiPt:alert(6)">js2</a><a href="java&#x09;script:alert(7)">js3</a>
      <a href="vbscript:x">vb</a><img src="data:image/png;base64,AAAA" alt="d">
      <img src="https://ok.example/a.png" onerror="alert(8)" width="10" height="10">
    """
    out = sanitize_html(html, BASE)
    lowered = out.lower()
    for bad in ("<script", "<style", "<iframe", "<object", "<embed", "<form", "<input",
                "<button", "<svg", "<noscript", "onclick", "onerror", "onload", "onmouseover",
                "style=", "class=", "id=", "javascript", "vbscript", "data:", "alert"):
        assert bad not in lowered, bad
    assert "<p>Kept <em>text</em></p>" in out
    assert '<img src="https://ok.example/a.png" width="10" height="10">' in out
    assert "frame" not in out and "Send" not in out and "ns" not in out


def test_headings_and_lazy_images_survive_the_allowlist() -> None:
    html = ('<h1>Big</h1><h6>Small</h6>'
            '<img src="data:image/gif;base64,R0lGOD" data-src="/real.jpg" alt="lazy">')
    out = sanitize_html(html, BASE)
    assert "<h2>Big</h2>" in out and "<h4>Small</h4>" in out
    assert 'src="https://blog.example.com/real.jpg"' in out


def test_html_to_text_layout() -> None:
    html = """<h2>Title &amp; more</h2><p>First   paragraph,
      with <b>bold</b>&nbsp;text.<br>Second line.</p>
      <ul><li>one</li><li>two <i>items</i></li></ul>
      <script>var hidden = 1;</script><p>Last.</p><!-- a comment -->tail"""
    assert html_to_text(html) == (
        "Title & more\n\nFirst paragraph, with bold text.\nSecond line.\n\n"
        "- one\n- two items\n\nLast.\n\ntail"
    )


def test_html_to_text_korean() -> None:
    html = ("<p>오늘   서울에서\n회의가 열렸다.</p><p>공유하기</p>"
            "<p>다음 회의는 &lt;6월&gt;에 열린다.</p>")
    assert html_to_text(html) == "오늘 서울에서 회의가 열렸다.\n\n다음 회의는 <6월>에 열린다."


def test_html_to_text_survives_hostile_input() -> None:
    assert html_to_text("") == ""
    assert html_to_text("\x00\x01 <p>ok\x0b</p>") == "ok"
    # libxml2 stops at 256 levels and drops what is deeper: no crash, no recursion error.
    for depth in (200, 5000):
        deep = "<div>" * depth + "deep" + "</div>" * depth
        assert html_to_text(deep) == ("deep" if depth < 250 else "")
        assert ("deep" in sanitize_html(deep)) is (depth < 250)
    assert html_to_text('<?xml version="1.0" encoding="utf-8"?><p>x</p>') == "x"


def test_plain_text_guesses_html() -> None:
    assert plain_text("AT&amp;T &lt;3") == "AT&T <3"
    assert plain_text("3 < 5 and 7 > 2") == "3 < 5 and 7 > 2"
    assert plain_text("<b>Bold</b> <script>x()</script>claim") == "Bold claim"
    assert plain_text("<b>kept literally</b>", is_html=False) == "<b>kept literally</b>"
    assert plain_text("a\n\nb", multiline=True) == "a\n\nb"
    assert plain_text("Related") == "Related"  # a title is never boilerplate
    assert plain_text("<p>Share this:</p><p>Text</p>", multiline=True) == "Text"


def test_first_image_skips_tracking_pixels_and_reads_the_caption() -> None:
    html = sanitize_html(
        '<img src="https://feeds.example/~r/x/~4/abc" width="1" height="1">'
        "<figure><img src='/lead.jpg' alt='A pier'><figcaption>The pier at dawn. Photo: <b>Ann"
        "</b> Lee</figcaption></figure>", BASE)
    assert first_image(html) == Image("https://blog.example.com/lead.jpg", "The pier at dawn.",
                                      "Photo: Ann Lee", alt="A pier")
    assert first_image("<p>no image</p>") == Image()


@pytest.mark.parametrize(("caption", "expected"), [
    ("The minister on Tuesday. [POOL PHOTO]", ("The minister on Tuesday.", "[POOL PHOTO]")),
    ("안규백 장관이 답하고 있다. [국회사진기자단]",
     ("안규백 장관이 답하고 있다.", "[국회사진기자단]")),
    ("Protesters march in Seoul on Saturday. (Yonhap)",
     ("Protesters march in Seoul on Saturday.", "(Yonhap)")),
    ("The pier at dawn. Photograph: Kim Hong-ji/Reuters",
     ("The pier at dawn.", "Photograph: Kim Hong-ji/Reuters")),
    ("Courtesy of the ministry", ("", "Courtesy of the ministry")),
    ("Seoul (the capital) at night.", ("Seoul (the capital) at night.", "")),
    ("A photo of the pier.", ("A photo of the pier.", "")),
])
def test_a_caption_ends_with_its_credit(caption: str, expected: tuple[str, str]) -> None:
    assert split_credit(caption) == expected


@pytest.mark.parametrize(("html", "text"), [
    # Blocks outside the allowlist are unwrapped by nh3: their text ran together.
    ("<article>Read the report</article>encoded in the file",
     "Read the report\n\nencoded in the file"),
    ("<section><p>One</p></section><section><p>Two</p></section>", "One\n\nTwo"),
    ("<center>Centred</center>after", "Centred\n\nafter"),
    # An image that was removed, or is not text, leaves no space before the full stop.
    ("<p>See a picture <img src='https://img.example/a.jpg'>.</p>", "See a picture."),
    ("<p>See a picture <img src='x'>.</p>", "See a picture."),
    # libxml2 puts the text after a (void) <embed> inside it.
    ("<p>Watch <embed src='https://v.example/a.swf'>the launch</embed> live.</p>",
     "Watch the launch live."),
])
def test_no_joined_words_and_no_leftovers(html: str, text: str) -> None:
    assert html_to_text(sanitize_html(html, BASE)) == text
    assert html_to_text(html) == text


@pytest.mark.parametrize("teaser", [
    "<p><strong>SEE MORE:</strong> <a href='/b'>Seoul and Tokyo agree on chips</a></p>",
    "<p>DON'T MISS</p>", "<h3>DON’T MISS: <a href='/c'>Rents in Seoul</a></h3>",
    "<p>Listen:</p>", "<p>[INSIGHT] <a href='/d'>Why the won keeps falling</a></p>",
    "<p>To read this article in full, please <a href='/e'>click here</a></p>",
])
def test_teaser_lines_are_boilerplate(teaser: str) -> None:
    assert html_to_text(REAL + teaser) == "The council met on Tuesday and voted on the new budget."


@pytest.mark.parametrize("para", [
    "<p>Listen to the minister explain the budget, one lawmaker said.</p>",
    "<p>Don't miss the point: the budget is a choice.</p>",
    "<p>More than 300 people came to the hearing.</p>",
    "<p>[INSIGHT] is the name of the paper's weekly column on markets and money, "
    "which this week looks at the won and why it keeps falling against the dollar, "
    "and at what the central bank could do about it before the end of the year, "
    "when the new rules for foreign exchange dealers come into force.</p>",
])
def test_sentences_that_mention_teasers_are_kept(para: str) -> None:
    assert plain_text(para) in html_to_text(REAL + para)


@pytest.mark.parametrize(("url", "expected"), [
    ("https://example.com/a?b=1#c", "https://example.com/a?b=1#c"),
    ("  http://example.com/x \n", "http://example.com/x"),
    ("/path", "https://blog.example.com/path"),
    ("../up", "https://blog.example.com/2024/05/up"),
    ("//cdn.example.net/y", "https://cdn.example.net/y"),
    ("with space.html", "https://blog.example.com/2024/05/post/with%20space.html"),
    ("javascript:alert(1)", ""),
    (" JaVaScRiPt:alert(1)", ""),
    ("java\tscript:alert(1)", ""),
    ("java\nscript:alert(1)", ""),
    ("\x00javascript:alert(1)", ""),
    ("&#106;avascript:alert(1)", ""),
    ("vbscript:msgbox(1)", ""),
    ("data:text/html,<script>alert(1)</script>", ""),
    ("mailto:ed@example.com", ""),
    ("ftp://example.com/f", ""),
    ("http://", ""),
    ("http://[::1", ""),
    ("", ""),
])
def test_safe_url(url: str, expected: str) -> None:
    assert safe_url(url, BASE) == expected


def test_safe_url_without_base_needs_an_absolute_url() -> None:
    assert safe_url("/path") == ""
    assert safe_url("https://example.com") == "https://example.com"
    assert safe_url("/path", "javascript:alert(1)//") == ""


def test_content_hash_ignores_case_spacing_and_width() -> None:
    h = content_hash("Budget  Vote", "The council\nmet.")
    assert re.fullmatch(r"[0-9a-f]{64}", h)
    assert h == content_hash("budget vote", " THE COUNCIL met. ")
    assert h == content_hash("Ｂｕｄｇｅｔ Vote", "The council met.")  # full-width letters
    assert h != content_hash("Budget Vote", "The council met again.")
    assert content_hash("a", "b c") != content_hash("a b", "c")
