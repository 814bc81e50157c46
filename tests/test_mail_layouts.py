"""What a list's look changes in its mail: the layout (hero or compact), the table of
contents, the accent colour and logo, each story's language, the images' sizes and
the inbox's preview line. As a reader's client gets it: the inlined HTML."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import lxml.html
import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.demo.run import FEEDS
from digest.render import DigestContext, make_environment, render_edition
from tests.test_render import golden_context


def _html(ctx: DigestContext) -> lxml.html.HtmlElement:
    return lxml.html.document_fromstring(render_edition(make_environment(), ctx).html)


def _preheader(ctx: DigestContext) -> str:
    return str(_html(ctx).xpath("string(//div[@class='preheader'])")).strip()


def test_preheader_is_the_intro_else_the_second_headline_never_the_subject() -> None:
    ctx = golden_context()
    assert _preheader(ctx).startswith("Good morning. Cheaper ferries are coming")
    without_intro = _preheader(replace(ctx, intro=""))
    # The subject already names the lead story: the preview goes on from there.
    assert without_intro.startswith(ctx.items[1].title), without_intro
    assert ctx.items[0].title not in without_intro
    one = replace(ctx, intro="", items=ctx.items[:1], also_new=[])
    assert _preheader(one).startswith("The harbour authority said fares")


#: The lead photos, whatever other class they have (`lead-img-fit`: of unknown size).
LEAD_IMG = "//img[contains(concat(' ', @class, ' '), ' lead-img ')]"


def test_hero_layout_shows_each_photo_across_the_column() -> None:
    doc = _html(replace(golden_context(), layout="hero"))
    assert not doc.xpath("//img[@class='thumb']")
    widths = [img.get("width") for img in doc.xpath(LEAD_IMG)]
    assert widths == ["600", "600"]
    # The lead's own size is known (1600x900): Outlook gets the height that keeps it.
    assert doc.xpath(LEAD_IMG)[0].get("height") == "338"


def test_compact_layout_puts_a_thumbnail_beside_each_headline_after_the_lead() -> None:
    ctx = replace(golden_context(), layout="compact")
    doc = _html(ctx)
    lead = doc.xpath(LEAD_IMG)
    assert len(lead) == 1 and lead[0].get("alt") == ctx.items[0].image_caption
    thumbs = doc.xpath("//img[@class='thumb']")
    assert len(thumbs) == 1  # the one with a photo
    # Beside its own headline the thumbnail is decorative: alt="", not the headline
    # read twice (WCAG H2), even when its feed gave the photo an alt text.
    assert thumbs[0].get("alt") == ""
    described = replace(ctx.items[2], image_alt="The ferry at dawn")
    doc_alt = _html(replace(ctx, items=[ctx.items[0], described]))
    assert [t.get("alt") for t in doc_alt.xpath("//img[@class='thumb']")] == [""]
    assert int(thumbs[0].get("width")) <= 200
    # Beside its headline: in one row of one table.
    row = thumbs[0].xpath("ancestor::tr[1]")[0]
    assert ctx.items[2].title in row.text_content()
    # A known size keeps its shape: 1200x800 shown 160 wide is 107 high.
    sized = replace(ctx.items[2], image_width=1200, image_height=800)
    doc = _html(replace(ctx, items=[ctx.items[0], sized]))
    thumb = doc.xpath("//img[@class='thumb']")[0]
    assert (thumb.get("width"), thumb.get("height")) == ("160", "107")


def test_table_of_contents_links_to_each_story() -> None:
    ctx = replace(golden_context(), toc=True)
    doc = _html(ctx)
    links = doc.xpath("//a[@class='toc-link']")
    assert [a.text_content() for a in links] == [i.title for i in ctx.items]
    anchors = {a.get("name") for a in doc.xpath("//a[@name]")}
    for link in links:  # name anchors: Gmail and Outlook follow those, not ids
        assert link.get("href").removeprefix("#") in anchors
    assert "In this edition" in doc.text_content()
    assert not _html(golden_context()).xpath("//a[@class='toc-link']")


def test_accent_colour_and_logo() -> None:
    ctx = replace(golden_context(), accent_color="#1a5fb4",
                  logo_url="https://news.example.org/logo.png")
    doc = _html(ctx)
    more = doc.xpath("//a[@class='more-link']")[0]
    assert "color:#1a5fb4" in more.get("style").replace(" ", "")
    logo = doc.xpath("//img[@class='logo']")[0]
    assert logo.get("src") == "https://news.example.org/logo.png"
    # The title is right below it as text: the logo is decorative (alt=""), and while
    # blocked its box has the photos' placeholder colour, light and dark.
    assert logo.get("alt") == ""
    assert doc.xpath("string(//h1[@class='masthead'])").strip() == ctx.list_title
    placeholders = [rule for style in doc.xpath("//style/text()") for rule in style.split("}")
                    if "background-color" in rule and ".thumb" in rule]
    assert len(placeholders) == 2, placeholders  # light, and dark mode
    assert all(".logo" in rule.split("{")[-2] for rule in placeholders), placeholders
    plain = _html(golden_context())
    assert not plain.xpath("//img[@class='logo']")
    assert "#9b2226" in plain.xpath("//a[@class='more-link']")[0].get("style")


def test_a_story_in_another_language_says_so() -> None:
    ctx = golden_context()
    korean = replace(ctx.items[1], language="ko-KR")
    english = replace(ctx.items[0], language="en-GB")  # the list's own: no lang of its own
    doc = _html(replace(ctx, items=[english, korean]))
    marked = doc.xpath("//td[@class='px story'][@lang]")
    assert [td.get("lang") for td in marked] == ["ko-KR"]
    assert korean.title in marked[0].text_content()


def test_edition_preview_tries_a_layout_without_changing_the_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo's feeds through the real commands: `edition preview --layout compact`
    shows thumbnails; the list stays hero; the Korean feed's stories say they are."""
    monkeypatch.chdir(tmp_path)
    for name in ("DIGEST_CONFIG", "DIGEST_DATABASE_URL", "DIGEST_DELIVERY_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DIGEST_PUBLIC_URL", "https://news.example.org")
    monkeypatch.setenv("DIGEST_EDITION_WINDOW_HOURS", str(24 * 365 * 30))
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    run("init")
    run("lists", "create", "morning", "--title", "Morning", "--from",
        "Morning <m@news.example.org>", "--postal-address", "1 Harbour Road, Portsmouth")
    for feed in sorted(FEEDS.iterdir()):
        run("sources", "add", str(feed), "--list", "morning")
    run("fetch")
    compact, hero = tmp_path / "compact.html", tmp_path / "hero.html"
    run("edition", "preview", "--list", "morning", "-o", str(compact), "--layout", "compact")
    run("edition", "preview", "--list", "morning", "-o", str(hero))
    shown = lxml.html.document_fromstring(compact.read_text(encoding="utf-8"))
    assert len(shown.xpath(LEAD_IMG)) == 1
    assert len(shown.xpath("//img[@class='thumb']")) >= 3
    assert "layout" in run("lists", "show", "morning")
    assert "hero" in " ".join(run("lists", "show", "morning").split())
    usual = lxml.html.document_fromstring(hero.read_text(encoding="utf-8"))
    assert not usual.xpath("//img[@class='thumb']")
    korean = usual.xpath("//td[@class='px story'][starts-with(@lang, 'ko')]")
    assert korean and "해림" in korean[0].text_content()
    result = runner.invoke(main, ["edition", "preview", "--list", "morning", "-o",
                                  str(compact), "--layout", "grid"])
    assert result.exit_code == 2 and "'grid' is not one of 'hero', 'compact'" in result.output
