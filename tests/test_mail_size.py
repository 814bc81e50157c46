"""The size of an edition's mail: Gmail clips an HTML part over about 102 KB, and the
clipped part holds the footer with the unsubscribe link."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import lxml.html
import pytest
from click.testing import CliRunner, Result

from digest.app import App
from digest.cli import main
from digest.config import Settings
from digest.curate.draft import NOTE_MAX, SUMMARY_MAX
from digest.models import Edition, EditionItem, EditionStatus
from digest.publication import create_list
from digest.render import make_environment, preview, render_edition
from subscribers.members import add_member
from tests.size_report import twenty

NOW = dt.datetime(2026, 11, 27, 7, 0, tzinfo=dt.UTC)
POSTAL = "Harbour News Ltd\n12 North Quay\nHaerim 04524"


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


# -- the limit: a draft made to fit, a send over it refused ----------------------------------


def _longest_items(language: str) -> list[EditionItem]:
    """20 stories with the longest headline, blurb and note the desk accepts."""
    ctx = twenty(language)  # TITLE_MAX, SUMMARY_MAX and NOTE_MAX characters each
    return [
        EditionItem(position=n, title=i.title, link=i.link, summary=i.summary, note=i.note,
                    image_url=i.image_url, image_caption=i.image_caption,
                    image_credit=i.image_credit, image_width=i.image_width,
                    image_height=i.image_height, source_title=i.source_title,
                    author=i.author, published_at=i.published_at)
        for n, i in enumerate(ctx.items)
    ]


@pytest.fixture
def cli(app: App, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
        ) -> Callable[..., Result]:
    """`digest …` on the `app` fixture's database and outbox."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIGEST_CONFIG", raising=False)
    for key in ("database.url", "delivery.backend", "delivery.outbox_dir", "public_url",
                "data_dir"):
        monkeypatch.setenv("DIGEST_" + key.replace(".", "_").upper(), str(settings[key]))

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    return invoke


def _draft(app: App, language: str) -> int:
    with app.sessions() as s:
        mlist = create_list(s, "morning", title="The Morning Harbour", language=language,
                            from_addr="Harbour <news@harbour.example.org>",
                            timezone="Europe/London", postal_address=POSTAL)
        add_member(s, mlist, "ada@example.org", name="Ada", confirmed=True, origin="admin",
                   now=app.clock())
        edition = Edition(list_id=mlist.id, number=1, status=EditionStatus.DRAFT,
                          subject="Twenty stories", since=NOW - dt.timedelta(days=1),
                          cutoff=NOW, items=_longest_items(language))
        s.add(edition)
        s.commit()
        return edition.id


def _sent(cli: Callable[..., Result], settings: Settings) -> tuple[EmailMessage, EmailMessage]:
    """`digest edition send` the draft to its one reader: the message and its HTML part."""
    r = cli("edition", "send", "--list", "morning")
    assert r.exit_code == 0, r.output
    [path] = _outbox(settings)
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    html_part = msg.get_body(("html",))
    assert isinstance(html_part, EmailMessage)
    return msg, html_part


def _outbox(settings: Settings) -> list[Path]:
    folder = Path(settings["delivery.outbox_dir"]) / "new"
    return sorted(folder.iterdir()) if folder.is_dir() else []


@pytest.mark.parametrize("language", ["en", "ko"])
def test_an_edition_over_the_limit_is_not_sent_and_the_error_says_what_to_shorten(
        app: App, settings: Settings, cli: Callable[..., Result], language: str) -> None:
    edition_id = _draft(app, language)
    r = cli("edition", "send", "--list", "morning")
    assert r.exit_code == 1
    said = " ".join(r.output.split())
    assert said.startswith("Error: edition #1 of 'morning' is ")
    assert "over the 100 KB limit ([edition] html_max_kb)" in said
    assert "Shorten the longest blurbs and notes (stories 1, 2, 3)" in said
    assert "/desk/morning" in said
    assert _outbox(settings) == []
    with app.sessions() as s:
        assert s.get_one(Edition, edition_id).status == EditionStatus.DRAFT


@pytest.mark.parametrize("language", ["en", "ko"])
def test_preview_makes_the_longest_edition_fit_with_the_footer_inside(
        app: App, settings: Settings, cli: Callable[..., Result], tmp_path: Path,
        language: str) -> None:
    """20 stories with the longest headline, blurb and note the desk accepts: the preview
    cuts blurbs and notes, then moves stories to "also new", and says so; the mail that
    goes out is under the limit with its unsubscribe link in it."""
    edition_id = _draft(app, language)
    r = cli("edition", "preview", "--list", "morning", "-o", str(tmp_path / "p.html"))
    assert r.exit_code == 0, r.output
    said = " ".join(r.output.split())
    assert re.search(r"HTML was \d+ KB, over the 100 KB limit: shortened \d+ blurb\(s\) and "
                     r"note\(s\)( and moved \d+ stor(y|ies) to the \"also new\" list)?"
                     r"( and held \d+ stor(y|ies) over for the next edition)?; "
                     r"now \d+ KB\.", said), said
    assert len((tmp_path / "p.html").read_bytes()) <= 100 * 1024
    with app.sessions() as s:
        items = s.get_one(Edition, edition_id).items
        assert all(len(i.summary) <= 1200 and len(i.note) <= 1200
                   for i in items if not i.brief)
        # A story moved to "also new" shows no blurb or note there, and keeps them whole
        # should an editor tell it in full again.
        assert all(len(i.summary) == SUMMARY_MAX and len(i.note) == NOTE_MAX
                   for i in items if i.brief)
        assert not items[0].brief  # the lead story stays

    msg, html_part = _sent(cli, settings)
    html = html_part.get_payload(decode=True)
    assert isinstance(html, bytes) and len(html) <= 100 * 1024
    doc = lxml.html.document_fromstring(html)
    # The footer, whole, inside the part: what Gmail shows before it would clip.
    unsubscribe = msg["List-Unsubscribe"].split(",")[0].strip("<> ")
    [link] = doc.xpath("//a[@href=$href]", href=unsubscribe)
    assert link.text_content() == ("구독 취소" if language == "ko" else "Unsubscribe")
    [manage] = doc.xpath("//a[contains(@href, '/preferences/')]")
    assert manage.text_content() == ("수신 설정" if language == "ko" else "Manage preferences")
    [view] = doc.xpath("//a[contains(@href, '/archive/morning/1')]")
    assert view.text_content() == ("브라우저에서 보기" if language == "ko" else "View in browser")
    text = doc.text_content()
    assert "ada@example.org" in text
    assert all(line in text for line in POSTAL.split("\n"))
    last_story = doc.xpath("//h2")[-1].text_content()[:20].encode()
    assert html.index(b"/preferences/") > html.index(last_story)  # after every story


def test_a_preview_that_cannot_make_the_draft_fit_changes_nothing(
        app: App, cli: Callable[..., Result], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With a limit no 20-story edition can meet (30 KB), the preview does not leave the
    editors' draft cut short for nothing: it says what the best would be and that
    nothing changed, and the send is refused as before."""
    edition_id = _draft(app, "en")
    with app.sessions() as s:
        words = [(i.summary, i.note, i.brief) for i in s.get_one(Edition, edition_id).items]
    monkeypatch.setenv("DIGEST_EDITION_HTML_MAX_KB", "30")
    r = cli("edition", "preview", "--list", "morning", "-o", str(tmp_path / "p.html"))
    assert r.exit_code == 0, r.output
    said = " ".join(r.output.split())
    assert re.search(r"HTML is \d+ KB, over the 30 KB limit, and cannot be made to fit "
                     r"\(\d+ KB at best, with blurbs and notes cut short and stories moved "
                     r"to \"also new\" or held over\): nothing was changed\. Drop stories on the "
                     r"desk, or raise \[edition\] html_max_kb\.", said), said
    with app.sessions() as s:
        assert [(i.summary, i.note, i.brief)
                for i in s.get_one(Edition, edition_id).items] == words


def test_the_html_part_is_measured_as_it_goes_out_encoded(
        app: App, settings: Settings, cli: Callable[..., Result], tmp_path: Path) -> None:
    """A Korean edition of 20 stories with 320-character blurbs and 100-character notes
    is about 97 KB of HTML, but base64 makes it about 130 KB on the wire, where Gmail
    measures: the draft is made to fit as encoded, and the part that goes out is."""
    edition_id = _draft(app, "ko")
    ctx = twenty("ko", title=90, summary=320, note=100)
    with app.sessions() as s:
        for item, told in zip(s.get_one(Edition, edition_id).items, ctx.items, strict=True):
            item.title, item.summary, item.note = told.title, told.summary, told.note
        s.commit()
    assert _html_kb("ko", title=90, summary=320, note=100) < 100  # decoded, it fits
    r = cli("edition", "preview", "--list", "morning", "-o", str(tmp_path / "p.html"))
    assert r.exit_code == 0, r.output
    assert "over the 100 KB limit" in " ".join(r.output.split()), r.output
    _msg, html_part = _sent(cli, settings)
    assert html_part["Content-Transfer-Encoding"] == "base64"
    wire = html_part.get_payload(decode=False)
    assert isinstance(wire, str) and len(wire.encode()) <= 100 * 1024
