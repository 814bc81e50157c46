"""The size of an edition's mail: Gmail clips an HTML part over about 102 KB, and the
clipped part holds the footer with the unsubscribe link."""

from __future__ import annotations

from digest.render import make_environment, preview, render_edition
from tests.size_report import twenty


def _html_kb(language: str, title: int, summary: int, note: int) -> float:
    ctx = twenty(language, title=title, summary=summary, note=note)
    rendered = render_edition(make_environment(), ctx)
    shown = preview(rendered, "Twenty stories", "https://news.example.org")
    return len(shown.html.encode("utf-8")) / 1024


def test_twenty_stories_with_a_note_on_each_stay_under_80_kb() -> None:
    """Fonts and colours are set once per story, not on every paragraph: 20 stories with
    a photo, a caption, a 320-character blurb (`[edition] summary_chars`) and a
    400-character note each were 99.9 KB when every paragraph named its font."""
    assert _html_kb("en", title=90, summary=320, note=400) < 80
