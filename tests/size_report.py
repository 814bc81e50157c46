"""How large an edition's mail is: `python -m tests.size_report`.

Prints the HTML part (as a reader's client receives it, slots filled) and the whole
encoded message for: the demo's edition (`digest demo` in a temporary folder), and
20 items with the longest headline, blurb and note the desk accepts
(digest.curate.draft's TITLE_MAX, SUMMARY_MAX, NOTE_MAX), in English and Korean, plus
a "typical" 20 items (a 320-character blurb, `[edition] summary_chars`, and a
400-character note on every item). For the note of issue 11; asserts nothing.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import replace
from email import message_from_bytes, policy
from pathlib import Path

from rich.console import Console

from digest.curate.draft import NOTE_MAX, SUMMARY_MAX, TITLE_MAX
from digest.deliver.message import MessageTemplate, Recipient
from digest.render import DigestContext, ItemContext, Rendered, make_environment, render_edition

EN_WORDS = ("The harbour authority said fares on all three cross-harbour routes will drop "
            "from January, after passenger numbers climbed back above their earlier level. ")
KO_WORDS = "해림시는 수상버스 노선 두 곳을 내년 봄부터 추가로 운행한다고 27일 밝혔다. "


def _fill(words: str, size: int) -> str:
    return (words * (size // len(words) + 1))[:size].strip()


def twenty(language: str, *, title: int = TITLE_MAX, summary: int = SUMMARY_MAX,
           note: int = NOTE_MAX, image: bool = True) -> DigestContext:
    """20 items of headline, blurb and note `title`, `summary` and `note` characters long."""
    words = KO_WORDS if language == "ko" else EN_WORDS
    items = [
        ItemContext(
            title=_fill(words, title), link=f"https://news.example/2026/11/story-{n}",
            summary=_fill(words, summary),
            image_url=f"https://images.example/story-{n}.jpg" if image else "",
            image_caption=_fill(words, 80) if image else "", image_credit="Reuters",
            image_width=1600, image_height=900, source_title="The Harbour Times",
            author="Dan Whitlock", published_at=dt.datetime(2026, 11, 27, 6, n, tzinfo=dt.UTC),
            note=_fill(words, note),
        )
        for n in range(20)
    ]
    return DigestContext(
        list_name="morning", list_title="The Morning Harbour",
        list_description="News from the waterfront, every weekday at seven.",
        edition_number=42, edition_date=dt.date(2026, 11, 27),
        subject="Twenty stories", intro=_fill(words, 300), language=language, items=items,
        public_url="https://news.example.org", timezone="Europe/London",
    )


def message_bytes(rendered: Rendered) -> bytes:
    template = MessageTemplate(
        html=rendered.html, text=rendered.text, subject="Twenty stories",
        from_addr="The Morning Harbour <digest@news.example.org>", list_id="morning.example.org",
        list_name="The Morning Harbour", edition_key="e1", slot_key=rendered.slot_key,
    )
    reader = Recipient(1, "reader@example.org", "Reader",
                       "https://news.example.org/unsubscribe/" + "t" * 120)
    return template.build(reader, dt.datetime(2026, 11, 27, 7, tzinfo=dt.UTC)).data


def html_part(data: bytes) -> bytes:
    msg = message_from_bytes(data, policy=policy.default)
    for part in msg.walk():
        if part.get_content_type() == "text/html":
            return bytes(part.get_payload(decode=True))
    raise AssertionError("no HTML part")


def demo_message() -> bytes:
    from digest.demo.run import run_demo

    with tempfile.TemporaryDirectory() as tmp:
        outbox = run_demo(Path(tmp) / "demo", Console(quiet=True))
        return sorted((outbox / "new").iterdir())[0].read_bytes()


def main() -> None:
    console = Console()
    env = make_environment()
    cases: list[tuple[str, bytes]] = [("demo edition", demo_message())]
    for language in ("en", "ko"):
        for layout in ("hero", "compact"):
            longest = render_edition(env, replace(twenty(language), layout=layout))
            cases.append((f"20 items, longest, {language}, {layout}", message_bytes(longest)))
            typical = render_edition(env, replace(
                twenty(language, title=90, summary=320, note=400), layout=layout))
            cases.append((f"20 items, 320/400, {language}, {layout}", message_bytes(typical)))
    for name, data in cases:
        html, size = html_part(data), len(data) / 1024
        console.print(f"{name:30} HTML {len(html) / 1024:7.1f} KB   message {size:7.1f} KB")


if __name__ == "__main__":
    main()
