"""Rendering: golden files, escaping, template overrides, slots, premailer once."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import lxml.html
import premailer
import pytest

from digest import slots
from digest.errors import ConfigError
from digest.render import (
    SLOT_PREFIX,
    SUBSCRIBER_SLOTS,
    ConfirmContext,
    DigestContext,
    ItemContext,
    Rendered,
    Slotted,
    builtin_templates_dir,
    format_date,
    make_environment,
    preview,
    render_confirmation,
    render_edition,
    wrap,
)

GOLDEN = Path(__file__).parent / "data" / "render"
KST = timezone(timedelta(hours=9))


def golden_context() -> DigestContext:
    """English and Korean items; with and without image, caption, credit, note and
    author; two more in the "also new" list, one undated."""
    items = [
        ItemContext(
            title="Ferry fares to fall by a fifth from January",
            link="https://harbour-times.example/2026/11/ferry-fares?utm=rss&ref=feed",
            summary="The harbour authority said fares on all three cross-harbour routes "
                    "will drop from 1 January, after passenger numbers climbed back above "
                    "their 2019 level.\n\nCouncillors welcomed the cut but asked for later "
                    "sailings on weekdays.",
            image_url="https://images.digest.example/harbour-times/ferry-dawn.jpg",
            image_caption="The 6:40 sailing leaves North Quay.",
            image_credit="Mira Okafor / Harbour Times",
            image_width=1600,
            image_height=900,
            source_title="The Harbour Times",
            author="Dan Whitlock",
            published_at=datetime(2026, 11, 27, 6, 15, tzinfo=UTC),
            note="",
        ),
        ItemContext(
            title="해림시, 수상버스 노선 두 곳 추가",
            link="https://seoul-daily.example/news/20261127/water-bus",
            summary="해림시는 수상버스 노선 두 곳을 내년 봄부터 추가로 운행한다고 27일 밝혔다. "
                    "출퇴근 시간대에는 15분 간격으로 운행할 계획이다.",
            image_url="",
            image_caption="",
            source_title="서울데일리",
            author="김민지 기자",
            published_at=datetime(2026, 11, 27, 9, 30, tzinfo=KST),
            note="Readers in Haerim asked about this one.\nThe route map is in the article.",
        ),
        ItemContext(
            title="Library opens its archive of harbour photographs",
            link="https://city-notes.example/items/library-archive",
            summary="More than 4,000 glass plates, some 120 years old, can now be seen online.",
            image_url="https://images.digest.example/city-notes/glass-plates.jpg",
            image_caption="",
            source_title="City Notes",
            author="",
            published_at=datetime(2026, 11, 26, 18, 5, tzinfo=UTC),
            note="",
        ),
    ]
    return DigestContext(
        list_name="morning",
        list_title="The Morning Harbour",
        list_description="News from the waterfront, every weekday at seven.",
        edition_number=42,
        edition_date=date(2026, 11, 27),
        subject="Ferry fares to fall, and two new water-bus routes",
        intro="Good morning. Cheaper ferries are coming in January.\n\n"
              "Also today: Haerim's water buses & a trove of old photographs.",
        language="en",
        items=items,
        public_url="https://news.example.org",
        timezone="Europe/London",
        also_new=[
            ItemContext(
                title="Council delays vote on the harbour wall",
                link="https://city-notes.example/items/harbour-wall-vote",
                summary="Not shown in the also-new list.", image_url="", image_caption="",
                source_title="City Notes", author="", note="", dated=False, brief=True,
                published_at=datetime(2026, 11, 27, 6, 40, tzinfo=UTC),
            ),
            ItemContext(
                title="야간버스, 동쪽 강변 노선 운행 재개",
                link="https://seoul-daily.example/news/20261127/night-bus",
                summary="", image_url="", image_caption="", source_title="서울데일리",
                author="", note="", brief=True,
                published_at=datetime(2026, 11, 27, 8, 0, tzinfo=KST),
            ),
        ],
        postal_address="The Morning Harbour Ltd\n1 Harbour Road\nPortsmouth PO1 2AB, UK",
        view_url="https://news.example.org/archive/morning/42",
    )


def korean_context() -> DigestContext:
    ctx = golden_context()
    return replace(ctx, list_title="아침 항구 소식", language="ko", timezone="Asia/Seoul",
                   subject="해림시 수상버스 노선 추가", intro="좋은 아침입니다.",
                   items=[ctx.items[1]])


@pytest.fixture(scope="module")
def rendered() -> Rendered:
    return render_edition(make_environment(), golden_context())


def _check_golden(name: str, actual: str, slot_key: str) -> None:
    """`actual` against the golden file, its slot tokens without the render's random key."""
    actual = actual.replace(slots.marker(slot_key), slots.PREFIX)
    path = GOLDEN / name
    if os.environ.get("DIGEST_REGENERATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, (
        f"{name} differs from the golden file; if the change is intended, rerun with "
        "DIGEST_REGENERATE_GOLDEN=1 and review the diff")


def test_golden_html(rendered: Rendered) -> None:
    _check_golden("expected.html", rendered.html, rendered.slot_key)


def test_golden_text(rendered: Rendered) -> None:
    _check_golden("expected.txt", rendered.text, rendered.slot_key)


def test_html_shows_what_readers_see(rendered: Rendered) -> None:
    ctx = golden_context()
    doc = lxml.html.document_fromstring(rendered.html)
    assert doc.get("lang") == "en"
    assert doc.get("dir") == "ltr"
    assert doc.findtext(".//title") == ctx.subject
    for item in ctx.items:
        [link] = doc.xpath("//h2/a[@href=$href]", href=item.link)
        assert link.text_content() == item.title
    [caption] = doc.xpath("//td[contains(@class, 'caption')]")
    assert " ".join(caption.text_content().split()) == (
        "The 6:40 sailing leaves North Quay. Photo: Mira Okafor / Harbour Times")
    assert caption.xpath("span[@class='credit']/text()") == ["Photo: Mira Okafor / Harbour Times"]
    imgs = doc.xpath("//img[contains(concat(' ', @class, ' '), ' lead-img ')]")
    assert [i.get("src") for i in imgs] == [ctx.items[0].image_url, ctx.items[2].image_url]
    for img in imgs:
        assert img.get("width") == "600" and img.get("border") == "0"
        assert "max-width:" in img.get("style") and "height: auto" in img.get("style")
    assert imgs[0].get("height") == "338"  # 1600×900 in a 600 px column
    also = [a.text_content() for a in doc.xpath("//a[@class='also-link']")]
    assert also == [i.title for i in ctx.also_new]
    # The photo's alt says what it shows (its caption), not the headline again; one
    # without a caption is decorative: the headline follows it with the same link.
    assert [i.get("alt") for i in imgs] == [ctx.items[0].image_caption, ""]
    note = doc.xpath("//td[contains(@class, 'note')]")[0].text_content()
    assert "Editor's note" in note and "The route map is in the article." in note
    assert doc.xpath("//a[@href=$href]", href=slots.token("unsubscribe_url", rendered.slot_key))
    assert slots.token("email", rendered.slot_key) in doc.text_content()
    # Why they get it and the preference page are each reader's own: slots.
    assert slots.token("reason", rendered.slot_key) in doc.text_content()
    assert doc.xpath("//a[@href=$href]", href=slots.token("manage_url", rendered.slot_key))
    intro = [p.text_content() for p in doc.xpath("//p[contains(@class, 'intro')]")]
    assert intro[1] == "Also today: Haerim's water buses & a trove of old photographs."
    assert "{{" not in rendered.html and "{%" not in rendered.html


def test_html_is_inlined_and_keeps_media_queries(rendered: Rendered) -> None:
    doc = lxml.html.document_fromstring(rendered.html)
    headline = doc.xpath("//h2")[0]
    assert "font-size:28px" in headline.get("style")
    assert "color:#1a1a1a" in doc.xpath("//h2/a")[0].get("style")
    styles = "\n".join(s.text or "" for s in doc.xpath("//style"))
    assert "@media screen and (max-width: 620px)" in styles
    assert "@media (prefers-color-scheme: dark)" in styles
    assert doc.xpath("//meta[@name='color-scheme']/@content") == ["light dark"]
    assert not doc.xpath("//*[@data-premailer]")
    assert "<!--[if mso]>" in rendered.html  # Outlook's ghost table and fonts survive lxml
    for banned in ("display:flex", "display: flex", "display:grid", "position:", "float:",
                   "background-image", "<script", "<link"):
        assert banned not in rendered.html


def test_text_part(rendered: Rendered) -> None:
    text = rendered.text
    assert text.startswith("THE MORNING HARBOUR\nNo. 42 · Friday, 27 November 2026\n")
    assert "1.  Ferry fares to fall by a fifth from January\n" in text
    assert "    The Harbour Times · Dan Whitlock · 6:15 AM\n" in text
    assert "\n    https://harbour-times.example/2026/11/ferry-fares?utm=rss&ref=feed\n" in text
    assert "    City Notes · 26 Nov, 6:05 PM\n" in text
    assert "Editor's note: Readers in Haerim asked about this one." in text
    assert f"Unsubscribe: {slots.token('unsubscribe_url', rendered.slot_key)}\n" in text
    assert "&amp;" not in text and "&#" not in text and "<" not in text
    assert max(len(line) for line in text.splitlines() if "https://" not in line) <= 72


def test_values_are_escaped_never_markup() -> None:
    ctx = golden_context()
    evil = replace(ctx.items[0], title="<script>alert(1)</script>",
                   summary='<img src=x onerror="alert(2)">', image_caption="<b>bold</b>",
                   link="javascript:alert(3)")
    ctx = replace(ctx, items=[evil], list_title="A & B <i>", intro="<p>hi</p>")
    out = render_edition(make_environment(), ctx)
    doc = lxml.html.document_fromstring(out.html)
    assert not doc.xpath("//script | //i | //b | //img[@onerror] | //@href[contains(., 'script')]")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out.html
    assert '&lt;img src=x onerror="alert(2)"&gt;' in out.html  # text, not a tag
    assert doc.xpath("//h2")[0].text_content() == "<script>alert(1)</script>"
    # The text part is plain text: the same characters, not entities.
    assert "<script>alert(1)</script>" in out.text and "A & B <I>" in out.text


def test_override_with_undefined_name_fails_clearly(tmp_path: Path) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "digest.html").write_text("<p>{{ ctx.list_title }}</p>\n"
                                                    "<p>{{ ctx.nope }}</p>\n")
    with pytest.raises(ConfigError, match=r"digest\.html:2: .*nope") as info:
        render_edition(make_environment(tmp_path), golden_context())
    assert str(tmp_path) in str(info.value)


def test_override_is_used(tmp_path: Path) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "digest.html").write_text(
        "<html><head><style>p { color: red; }</style></head><body>"
        "<p>{{ ctx.list_title }}</p><a href=\"{{ slot('unsubscribe_url') }}\">x</a>"
        "</body></html>")
    out = render_edition(make_environment(str(tmp_path)), golden_context())
    assert '<p style="color:red">The Morning Harbour</p>' in out.html
    assert Slotted(out.html, out.slot_key).names == {"unsubscribe_url"}
    assert out.text.startswith("THE MORNING HARBOUR")  # digest.txt still the built-in one


def test_override_can_extend_the_builtin_and_replace_a_block(tmp_path: Path) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "digest.html").write_text(
        '{% extends "builtin/email/digest.html" %}'
        "{% block footer %}<tr><td>Printed on the quay. "
        "<a href=\"{{ slot('unsubscribe_url') }}\">Stop</a></td></tr>{% endblock %}")
    out = render_edition(make_environment(tmp_path), golden_context())
    assert "Printed on the quay." in out.html
    assert "Manage preferences" not in out.html
    assert "Ferry fares to fall by a fifth from January" in out.html


def test_overriding_the_base_layout_changes_both_emails(tmp_path: Path) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "base.html").write_text(
        '{% extends "builtin/email/base.html" %}'
        "{% block css %}.masthead { letter-spacing: 2px; }{% endblock %}"
        '{% block head %}<meta name="robots" content="noindex">{% endblock %}')
    env = make_environment(tmp_path)
    confirm = ConfirmContext(list_name="morning", list_title="The Morning Harbour",
                             list_description="", subject="Confirm", language="en",
                             public_url="https://news.example.org")
    digest_html = render_edition(env, golden_context()).html
    confirm_html = render_confirmation(env, confirm).html
    for html in (digest_html, confirm_html):
        masthead = lxml.html.document_fromstring(html).xpath("//h1")[0]
        assert "letter-spacing:2px" in masthead.get("style")  # inlined by premailer
        assert '<meta name="robots" content="noindex">' in html
    # Each email's own blocks still apply on top: the digest's preheader filler.
    assert "\u034f\u200c" in digest_html and "\u034f\u200c" not in confirm_html


def test_the_confirmation_has_the_fonts_and_outlook_handling_of_the_digest(
        tmp_path: Path) -> None:
    """Both emails share the head Outlook on Windows needs (96 dpi, a font it has, the
    600 px ghost table) and the confirm button names its fonts: a font stack escaped
    into &#39; was dropped by premailer, leaving Outlook's Times New Roman."""
    env = make_environment(tmp_path)
    confirm = ConfirmContext(list_name="morning", list_title="The Morning Harbour",
                             list_description="", subject="Confirm", language="en",
                             public_url="https://news.example.org")
    confirm_html = render_confirmation(env, confirm).html
    button = lxml.html.document_fromstring(confirm_html).xpath("//a")[0]
    assert 'font-family:-apple-system, "Segoe UI", Roboto' in button.get("style")
    for html in (render_edition(env, golden_context()).html, confirm_html):
        assert "<o:PixelsPerInch>96</o:PixelsPerInch>" in html
        assert "font-family: 'Segoe UI', Arial" in html  # Outlook's own font rule
        assert '<!--[if mso]><table role="presentation" align="center" width="600"' in html
        assert "[data-ogsc] .masthead" in html  # Outlook.com's dark mode


def test_missing_templates_dir_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="templates_dir"):
        make_environment(tmp_path / "nowhere")


def test_builtin_templates_are_found() -> None:
    assert (builtin_templates_dir() / "email" / "digest.txt").is_file()


def test_premailer_runs_once_per_edition(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = premailer.Premailer.transform

    def counting(self: premailer.Premailer, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(premailer.Premailer, "transform", counting)
    render_edition(make_environment(), golden_context())
    assert len(calls) == 1


def test_korean_edition() -> None:
    out = render_edition(make_environment(), korean_context())
    assert "아침 항구 소식" in out.text
    assert "제42호 · 2026년 11월 27일 금요일" in out.text
    assert "해림시, 수상버스 노선 두 곳 추가" in out.text
    assert "서울데일리 · 김민지 기자 · 오전 9:30" in out.text
    assert "편집자 주: Readers in Haerim" in out.text
    assert "구독 취소: " + slots.token("unsubscribe_url", out.slot_key) in out.text
    doc = lxml.html.document_fromstring(out.html)
    assert doc.get("lang") == "ko"
    assert doc.findtext(".//title") == "해림시 수상버스 노선 추가"
    assert doc.xpath("//h2")[0].text_content() == "해림시, 수상버스 노선 두 곳 추가"
    assert "'Malgun Gothic'" in out.html  # Korean fonts lead the Outlook stack
    # Hangul counts two columns: no wrapped line is wider than 72 on screen.
    for line in wrap(korean_context().items[0].summary * 3, 72).splitlines():
        assert sum(2 if "가" <= c <= "힣" else 1 for c in line) <= 72


def test_format_date() -> None:
    assert format_date(date(2026, 11, 27), "ko") == "2026년 11월 27일"
    assert format_date(date(2026, 11, 27), "en") == "27 November 2026"
    assert format_date(date(2026, 11, 27), "ko-KR", weekday=True) == "2026년 11월 27일 금요일"


def test_slot_tokens() -> None:
    key = slots.new_key()
    assert slots.token("unsubscribe_url", key) == f"{SLOT_PREFIX}{key}_unsubscribe_url__"
    assert slots.new_key() != key and len(key) == 16
    assert set(SUBSCRIBER_SLOTS) == {"unsubscribe_url", "email", "name", "confirm_url",
                                     "manage_url", "reason"}
    for bad in ("", "a b", "_x", "x_", "a__b", "é", "a-b"):
        with pytest.raises(ValueError):
            slots.token(bad, key)
    with pytest.raises(ValueError, match="16 hex digits"):
        slots.token("email", "not-a-key")


def test_each_render_has_its_own_slot_key(rendered: Rendered) -> None:
    again = render_edition(make_environment(), golden_context())
    assert again.slot_key != rendered.slot_key
    assert Slotted(again.html, again.slot_key).names == {"unsubscribe_url", "email",
                                                         "manage_url", "reason"}
    assert Slotted(again.html, rendered.slot_key).names == set()  # another render's key


def test_slotted_fill_escapes_for_html_only() -> None:
    key = slots.new_key()

    def slot(name: str) -> str:
        return slots.token(name, key)

    s = Slotted(f"<p>Hi {slot('name')}</p><a href=\"{slot('unsubscribe_url')}\">u</a>"
                f"{slot('name')}", key)
    assert s.names == {"name", "unsubscribe_url"}
    values = {"name": "a&b<c>", "unsubscribe_url": 'https://x.example/u?t=1&l="2"'}
    assert s.fill(values, html=True) == (
        '<p>Hi a&amp;b&lt;c&gt;</p><a href="https://x.example/u?t=1&amp;l=&quot;2&quot;">u</a>'
        "a&amp;b&lt;c&gt;")
    assert s.fill(values, html=False) == (
        '<p>Hi a&b<c></p><a href="https://x.example/u?t=1&l="2"">u</a>a&b<c>')
    with pytest.raises(KeyError, match="unsubscribe_url"):
        s.fill({"name": "x"}, html=True)
    assert Slotted("no slots here", key).fill({}, html=True) == "no slots here"


def test_preview_fills_every_slot_with_a_link_that_unsubscribes_no_one(
        rendered: Rendered) -> None:
    shown = preview(rendered, "Today", "https://news.example.org/?a=1&b=2",
                    email="reader@example.org", name="Reader")
    assert SLOT_PREFIX not in shown.html and SLOT_PREFIX not in shown.text
    assert 'href="https://news.example.org/?a=1&amp;b=2/unsubscribe/preview"' in shown.html
    assert "https://news.example.org/?a=1&b=2/unsubscribe/preview" in shown.text
    assert "reader@example.org" in shown.html and shown.subject == "Today"
