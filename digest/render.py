"""Rendering an edition: Jinja2 templates, premailer inlining, per-subscriber slots.

An edition is rendered exactly once (Jinja2, then premailer at about 10 ms), to HTML and
plain text. What differs per subscriber (unsubscribe URL, address, name) stays in the
output as slot tokens (see `digest.slots`: each render has its own random key, so no
content can forge one), which `Slotted.fill` replaces by plain substitution when each
message is built: microseconds, not milliseconds.

Templates come from the user's `templates_dir` first, then the built-in `templates/`
folder; see docs/templates.md for what they are given.
"""

from __future__ import annotations

import functools
import html as _html
import logging
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
import premailer

from digest import slots
from digest.errors import ConfigError
from digest.gather.links import clean_link

HTML_TEMPLATE = "email/digest.html"
TEXT_TEMPLATE = "email/digest.txt"

SLOT_PREFIX = slots.PREFIX
#: Per-subscriber values every message is given.
SUBSCRIBER_SLOTS = slots.NAMES


#: The longest headline mail shows, in characters; a longer one (a feed that put its
#: whole post in <title>) is cut at a word with "…": the story's link has the rest.
HEADLINE_MAX = 300


@dataclass(frozen=True)
class ItemContext:
    """One article as the templates see it; every text is plain text, never HTML."""

    title: str
    link: str
    summary: str
    image_url: str
    image_caption: str
    source_title: str
    author: str
    published_at: datetime  # when `dated`; else when it was first fetched, never shown
    note: str  # the editor's annotation, may be ""
    image_credit: str = ""  # who took the photo, shown after the caption
    image_width: int | None = None  # the image's own size in pixels, when known
    image_height: int | None = None
    dated: bool = True  # False: the feed gave no date, so no time is shown
    brief: bool = False  # in the "also new" list: headline, link and source only
    language: str = ""  # the story's own language ("ko", "en-gb"), "" when unknown
    image_alt: str = ""  # the alt text the feed or page gave the image, "" when none


@dataclass(frozen=True)
class DigestContext:
    """One edition as the templates see it (`ctx`). Per-subscriber values are slots."""

    list_name: str
    list_title: str
    list_description: str
    edition_number: int
    edition_date: date  # in the list's timezone
    subject: str
    intro: str
    language: str  # "en", "ko", ...
    items: list[ItemContext]
    public_url: str  # base URL, no trailing slash
    timezone: str  # the list's timezone name, for showing times
    # The "also new" list after the stories in full: headline, link and source each.
    also_new: list[ItemContext] = field(default_factory=list)
    # The list's look (digest lists set): "hero" (each story's photo across the column)
    # or "compact" (a thumbnail beside each headline after the lead story); an "In this
    # edition" table of contents; a #rrggbb colour for links and rules ("" = the
    # templates' own); an http(s) logo above the title ("" = none).
    layout: str = "hero"
    toc: bool = False
    accent_color: str = ""
    logo_url: str = ""
    # The footer: the sender's postal address (lines joined by "\n"; "" = not set) and
    # the edition's page in the archive (a signed link for a private list; "" = none).
    postal_address: str = ""
    view_url: str = ""


@dataclass(frozen=True)
class ConfirmContext:
    """A list's double opt-in mail as the templates see it; `confirm_url` is a slot."""

    list_name: str
    list_title: str
    list_description: str
    subject: str
    language: str
    public_url: str


@dataclass(frozen=True)
class Rendered:
    """An edition rendered once: both parts still hold slot tokens, those of `slot_key`
    (stored with them, as `editions.slot_key`)."""

    html: str
    text: str
    slot_key: str


class Slotted:
    """A string with slot tokens, split once; fill() costs microseconds."""

    def __init__(self, text: str, slot_key: str) -> None:
        # re.split with one group alternates literal text and slot names.
        self._parts = slots.pattern(slot_key).split(text)
        self.names: frozenset[str] = frozenset(self._parts[1::2])

    def fill(self, values: Mapping[str, str], *, html: bool) -> str:
        """The text with every slot replaced; values are HTML-escaped when `html`."""
        missing = self.names.difference(values)
        if missing:
            raise KeyError(f"no value for slot(s) {', '.join(sorted(missing))}; "
                           f"this text needs {', '.join(sorted(self.names))}")
        parts = self._parts.copy()
        for i in range(1, len(parts), 2):
            value = values[parts[i]]
            parts[i] = _html.escape(value, quote=True) if html else value
        return "".join(parts)


def builtin_templates_dir() -> Path:
    """The bundled templates: digest/_templates in a wheel, the repo's templates/ otherwise."""
    here = Path(__file__).resolve().parent
    # The wheel's copy is checked first: a stray site-packages/templates could exist.
    for candidate in (here / "_templates", here.parent / "templates"):
        if (candidate / HTML_TEMPLATE).is_file():
            return candidate
    raise ConfigError(f"the built-in templates are missing (looked in {here / '_templates'} "
                      f"and {here.parent / 'templates'}); reinstall digest")


def make_environment(templates_dir: str | Path = "") -> jinja2.Environment:
    """The Jinja2 environment: `templates_dir` (if set) overrides the built-in templates."""
    builtin = jinja2.FileSystemLoader(builtin_templates_dir())
    loaders: list[jinja2.BaseLoader] = []
    if str(templates_dir):
        user = Path(templates_dir)
        if not user.is_dir():
            raise ConfigError(f"templates_dir {str(user)!r} does not exist or is not a folder; "
                              "create it or set templates_dir to \"\" for the built-in templates")
        loaders.append(jinja2.FileSystemLoader(user))
    # "builtin/email/digest.html" lets an override extend the original and change one block.
    loaders += [builtin, jinja2.PrefixLoader({"builtin": builtin})]
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(("html", "htm", "xml"), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        format_date=format_date,
        local_time=local_time,
        meta_line=meta_line,
        paragraphs=paragraphs,
        wrap=wrap,
        text_direction=text_direction,
        preview_text=preview_text,
        story_language=story_language,
        http_url=http_url,
        image_box=image_box,
        thumb_box=thumb_box,
        dark_accent=dark_accent,
        credit_line=credit_line,
        picture_alt=picture_alt,
    )
    return env


def render_edition(env: jinja2.Environment, ctx: DigestContext) -> Rendered:
    """Render `ctx` to inlined HTML and plain text: Jinja2 once and premailer once."""
    return _render_email(env, HTML_TEMPLATE, TEXT_TEMPLATE, ctx)


def render_confirmation(env: jinja2.Environment, ctx: ConfirmContext) -> Rendered:
    """The double opt-in mail of a list (email/confirm.html and .txt), rendered once;
    its `confirm_url` slot is filled per subscriber."""
    return _render_email(env, "email/confirm.html", "email/confirm.txt", ctx)


def _render_email(env: jinja2.Environment, html_name: str, text_name: str,
                  ctx: DigestContext | ConfirmContext) -> Rendered:
    key = slots.new_key()
    source = _render(env, html_name, ctx, key)
    html = inline_css(source)
    # A slot lost on the way (say, inside a <style> premailer rewrote) would silently
    # send every subscriber a broken link; catching it here costs one regex pass.
    lost = Slotted(source, key).names - Slotted(html, key).names
    if lost:
        raise ConfigError(f"{html_name}: slot(s) {', '.join(sorted(lost))} did not survive "
                          "CSS inlining; put slots in text or attributes, not in <style>")
    text = _render(env, text_name, ctx, key).rstrip() + "\n"
    return Rendered(html=html, text=text, slot_key=key)


@dataclass(frozen=True)
class Preview:
    """An edition as a reader sees it, the slots filled with sample values."""

    html: str
    text: str
    subject: str


def preview(rendered: Rendered, subject: str, public_url: str, *,
            email: str = "reader@example.org", name: str = "Reader", language: str = "en",
            title: str = "") -> Preview:
    """The one preview of an edition (the CLI's file, the desk, the API, the demo).

    Its unsubscribe link leads to the "this link does not work" page: a preview must
    not carry a working token that could unsubscribe a real subscriber.
    """
    values = dict.fromkeys(SUBSCRIBER_SLOTS, "")
    # The preference link leads where the unsubscribe link does: the "does not work" page.
    values.update(unsubscribe_url=preview_unsubscribe_url(public_url), email=email,
                  name=name, manage_url=preview_unsubscribe_url(public_url),
                  reason=reason(language, title))
    return Preview(html=Slotted(rendered.html, rendered.slot_key).fill(values, html=True),
                   text=Slotted(rendered.text, rendered.slot_key).fill(values, html=False),
                   subject=subject)


def preview_unsubscribe_url(public_url: str) -> str:
    return f"{public_url.rstrip('/')}/unsubscribe/preview"


def inline_css(html: str) -> str:
    """Move the CSS of <style> blocks into style attributes, for clients that drop <style>.

    The <style> blocks stay too (media queries and dark mode can only live there);
    a block marked `data-premailer="ignore"` is left exactly as written.
    """
    inliner = premailer.Premailer(
        html,
        allow_network=False,
        disable_validation=True,  # cssutils would warn on every mso-* property
        keep_style_tags=True,
        remove_classes=False,  # the media queries select by class
        strip_important=False,  # dark-mode rules need !important to beat inline styles
        cssutils_logging_level=logging.CRITICAL,
        # Width and height attributes are written by hand for Outlook (width="600" on
        # images); premailer would overwrite them from CSS ("100%", "auto").
        disable_basic_attributes=["width", "height"],
    )
    return str(inliner.transform())


def _render(env: jinja2.Environment, name: str, ctx: DigestContext | ConfirmContext,
            slot_key: str) -> str:
    """One template rendered; its `slot(name)` writes the tokens of `slot_key`."""
    try:
        template = env.get_template(name)
        return template.render(ctx=ctx, labels=labels(ctx.language),
                               slot=functools.partial(slots.token, key=slot_key))
    except jinja2.TemplateError as exc:
        raise ConfigError(f"template {_where(exc, name)}: {exc.message or exc}; "
                          "fix the template (see docs/templates.md for what it is given)"
                          ) from exc


def _where(exc: jinja2.TemplateError, name: str) -> str:
    """file:line of the template frame that failed, as precisely as Jinja tells it."""
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return f"{exc.filename or exc.name or name}:{exc.lineno}"
    where = name
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:  # Jinja rewrites template frames to the template's file and line
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith((".html", ".txt", ".css")):
            where = f"{filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return where


# -- what the templates are given --------------------------------------------------------

_LABELS: dict[str, dict[str, str]] = {
    "en": {
        "edition": "No. {number}",
        "stories": "{count} stories",
        "story": "1 story",
        "read_more": "Read the full story",
        "editors_note": "Editor's note",
        "also_new": "Also new",
        "in_this_edition": "In this edition",
        "photo_credit": "Photo: {credit}",
        "why": "You are subscribed to {title}.",
        "why_since": "You subscribed to {title} on {date}.",
        "sent_to": "This email was sent to {email}.",
        "unsubscribe": "Unsubscribe",
        "manage": "Manage preferences",
        "view_in_browser": "View in browser",
        "postal_address": "Postal address",
        "confirm_subject": "Confirm your subscription to {title}",
        "confirm_intro": "Please confirm that you want to receive {title}.",
        "confirm_button": "Yes, subscribe me",
        "confirm_ignore": "If you did not ask for this, ignore this email: you will not "
                          "be subscribed and will hear nothing more from us.",
        "confirm_sent_to": "This email was sent to {email} because someone asked to "
                           "subscribe this address.",
    },
    "ko": {
        "edition": "제{number}호",
        "stories": "기사 {count}건",
        "story": "기사 1건",
        "read_more": "기사 전문 보기",
        "editors_note": "편집자 주",
        "also_new": "그 밖의 새 기사",
        "in_this_edition": "이번 호 목차",
        "photo_credit": "사진: {credit}",
        "why": "{title} 뉴스레터를 구독 중이셔서 이 메일을 보내드립니다.",
        "why_since": "{date}에 {title} 뉴스레터를 구독하셔서 이 메일을 보내드립니다.",
        "sent_to": "이 메일은 {email} 주소로 발송되었습니다.",
        "unsubscribe": "구독 취소",
        "manage": "수신 설정",
        "view_in_browser": "브라우저에서 보기",
        "postal_address": "주소",
        "confirm_subject": "{title} 구독을 확인해 주세요",
        "confirm_intro": "{title} 뉴스레터 구독을 원하시는지 확인해 주세요.",
        "confirm_button": "네, 구독하겠습니다",
        "confirm_ignore": "구독을 신청하지 않으셨다면 이 메일을 무시해 주세요. "
                          "구독되지 않으며 더 이상 메일을 보내지 않습니다.",
        "confirm_sent_to": "누군가 {email} 주소로 구독을 신청하여 이 메일을 보내드립니다.",
    },
}


def labels(language: str) -> Mapping[str, str]:
    """The fixed words of the templates in `language` (English when unknown). The pages
    a mail's links open have theirs in `digest.web.words`, for the same languages."""
    return _LABELS.get(base_language(language), _LABELS["en"])


@functools.lru_cache(maxsize=4096)
def reason(language: str, title: str, subscribed_on: date | None = None) -> str:
    """Why a reader gets the mail, in the list's language: "You subscribed to <title> on
    <date>." when the date is known, else "You are subscribed to <title>.". Cached: a
    list's readers share a few thousand dates at most, and the sender asks per message."""
    words = labels(language)
    if subscribed_on is None:
        return words["why"].format(title=title)
    return words["why_since"].format(title=title, date=format_date(subscribed_on, language))


_EN_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December")
_EN_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_KO_DAYS = ("월요일", "화요일", "수요일", "목요일", "금요일", "토요일", "일요일")
_RTL = frozenset({"ar", "fa", "he", "ur", "yi", "ps", "sd", "ug", "dv"})


def base_language(language: str) -> str:
    """ "ko" for "ko-KR", "ko_kr" or "KO": the key of a language's words."""
    return language.replace("_", "-").split("-")[0].lower()


def format_date(value: date, language: str = "en", weekday: bool = False) -> str:
    """"27 November 2026" or "2026년 11월 27일"; not strftime, which follows the locale."""
    if base_language(language) == "ko":
        text = f"{value.year}년 {value.month}월 {value.day}일"
        return f"{text} {_KO_DAYS[value.weekday()]}" if weekday else text
    text = f"{value.day} {_EN_MONTHS[value.month - 1]} {value.year}"
    return f"{_EN_DAYS[value.weekday()]}, {text}" if weekday else text


def local_time(value: datetime, ctx: DigestContext) -> str:
    """When an item appeared, in the list's timezone: "7:30 AM", or with the day
    ("26 Nov, 6:05 PM") when it is not the edition's day. Naive times are UTC."""
    try:
        zone = ZoneInfo(ctx.timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder ("Europe")
        raise ConfigError(f"list {ctx.list_name!r} has an unknown timezone {ctx.timezone!r}; "
                          "use an IANA name such as Europe/London or Asia/Seoul") from None
    local = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(zone)
    hour12 = local.hour % 12 or 12
    same_day = local.date() == ctx.edition_date
    if base_language(ctx.language) == "ko":
        clock = f"{'오전' if local.hour < 12 else '오후'} {hour12}:{local.minute:02d}"
        return clock if same_day else f"{local.month}월 {local.day}일 {clock}"
    clock = f"{hour12}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}"
    return clock if same_day else f"{local.day} {_EN_MONTHS[local.month - 1][:3]}, {clock}"


def meta_line(item: ItemContext, ctx: DigestContext) -> str:
    """ "Source · Author · time", leaving out what is empty or repeats the source, and
    the time of an item its feed gave no date."""
    parts = [item.source_title.strip()]
    author = item.author.strip()
    if author and author.casefold() != parts[0].casefold():
        parts.append(author)
    if item.dated:  # an undated item's time is only when we fetched it: never shown
        parts.append(local_time(item.published_at, ctx))
    return " · ".join(p for p in parts if p)


def paragraphs(text: str) -> list[str]:
    """Paragraphs split at blank lines, spaces tidied; single line breaks are kept."""
    out = []
    for block in re.split(r"\n[ \t\r\f\v]*\n", text.strip()):
        lines = (" ".join(line.split()) for line in block.splitlines())
        para = "\n".join(line for line in lines if line)
        if para:
            out.append(para)
    return out


def wrap(text: str, width: int = 72, indent: str = "") -> str:
    """Plain text wrapped to `width` columns, a blank line between paragraphs.

    Widths are display columns: Hangul and other wide characters count two, so Korean
    lines are as wide on screen as English ones. Words longer than a line (URLs) stay whole.
    """
    avail = max(width - _columns(indent), 20)
    out: list[str] = []
    for para in paragraphs(text):
        if out:
            out.append("")
        for line in para.split("\n"):
            out.extend(indent + row for row in _wrap_line(line, avail))
    return "\n".join(out)


def _wrap_line(line: str, width: int) -> list[str]:
    rows: list[str] = []
    words: list[str] = []
    used = 0
    for word in line.split(" "):
        w = _columns(word)
        if words and used + 1 + w > width:
            rows.append(" ".join(words))
            words, used = [], 0
        used += w + (1 if words else 0)
        words.append(word)
    if words:
        rows.append(" ".join(words))
    return rows


def _columns(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def preview_text(ctx: DigestContext) -> str:
    """The inbox's preview line, read after the subject, which names the lead story:
    the intro, else the headlines after the lead (those of "also new" when it is the
    only story told in full), else the lead's blurb; never the subject again. Not
    truncated: the template does that."""
    if ctx.intro.strip():
        return " ".join(ctx.intro.split())
    rest = [i.title for i in ctx.items[1:]] or [i.title for i in ctx.also_new]
    if rest:
        return " · ".join(rest)
    if ctx.items and ctx.items[0].summary.strip():
        return " ".join(ctx.items[0].summary.split())
    return ctx.list_description


def story_language(item: ItemContext, language: str) -> str:
    """The story's language when it is not `language` (the list's), for its own `lang`
    attribute, so that screen readers and hyphenation read it right; else ""."""
    return other_language(item.language, language)


def other_language(own: str, language: str) -> str:
    """`own` (a story's language) when it is known and not `language` (the list's),
    else "": what mail and the archive mark with a `lang` of its own."""
    return own if own and base_language(own) != base_language(language) else ""


def text_direction(language: str) -> str:
    """ "rtl" for right-to-left languages, else "ltr"."""
    return "rtl" if base_language(language) in _RTL else "ltr"


def http_url(url: str) -> str:
    """`url` if it is http(s), else "": a feed's javascript: or data: link never reaches mail."""
    url = url.strip()
    return url if url.lower().startswith(("https://", "http://")) else ""


def mail_link(url: str, keep_tracking: bool = False) -> str:
    """An article's link as mail and the archive give it: http(s) only (else ""), and
    without tracking parameters (utm_*, fbclid, ...) unless the list keeps them."""
    url = http_url(url)
    return url if keep_tracking or not url else clean_link(url)


#: The mail's column in CSS pixels: a lead image fills it.
COLUMN_WIDTH = 600
#: Narrower images are shown at their own width: stretched to the column they blur.
FULL_WIDTH_MIN = 300


@dataclass(frozen=True)
class ImageBox:
    """How wide and high a lead image is drawn; Outlook goes by these attributes."""

    width: int
    height: int | None  # None when the image's own size is unknown
    full: bool  # spans the column (on a phone too); else kept at its own width
    # Size unknown: drawn at its own width, at most the column's (CSS `width: auto`), so
    # a 120 px picture is not stretched to 600; Outlook reads only `width` (the column's).
    fit: bool = False


def image_box(item: ItemContext) -> ImageBox:
    """The lead image fitted to the column, its aspect ratio kept; when the feed did not
    say how large the image is, the column's width for Outlook and no height (`fit`)."""
    width = item.image_width if item.image_width and item.image_width > 0 else None
    height = item.image_height if item.image_height and item.image_height > 0 else None
    if width is None:
        return ImageBox(COLUMN_WIDTH, None, True, fit=True)
    if width < FULL_WIDTH_MIN:
        return ImageBox(width, height, False)
    return ImageBox(COLUMN_WIDTH, round(height * COLUMN_WIDTH / width) if height else None, True)


#: A thumbnail's width in the compact layout, beside its headline (96 px on a phone).
THUMB_WIDTH = 160


def thumb_box(item: ItemContext) -> ImageBox:
    """The compact layout's thumbnail: THUMB_WIDTH wide (an image's own width when it
    is narrower), its aspect ratio kept when the image's size is known."""
    width = item.image_width if item.image_width and item.image_width > 0 else None
    height = item.image_height if item.image_height and item.image_height > 0 else None
    shown = min(width, THUMB_WIDTH) if width else THUMB_WIDTH
    return ImageBox(shown, round(height * shown / width) if width and height else None, False)


def picture_alt(item: ItemContext) -> str:
    """The alt text of a story's photo: what its feed or page said the picture shows,
    else its caption, else "" (decorative). Never the headline: the photo links where the
    headline does, which comes right after it, so a screen reader read the headline
    twice, and a client blocking images showed it twice; an alt text that only repeats
    the headline (some sites write their pictures' so) is left out for the same reason."""
    headline = " ".join(item.title.split()).casefold()
    for text in (item.image_alt, item.image_caption):
        text = " ".join(text.split())
        if text and text.casefold() != headline:
            return text
    return ""


def dark_accent(color: str) -> str:
    """A list's accent colour (#rrggbb) lightened halfway to white, so that its links
    and labels stay legible on the dark-mode background."""
    rgb = [int(color[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{c + (255 - c) // 2:02x}" for c in rgb)


# A credit that says what it is: it begins with the word ("Picture: …", "(Photo: John
# Roe)"), has "photo" or "credit" in it ("AP Photo/Evan Vucci", "[POOL PHOTO]"), or a ©.
_CREDITED = re.compile(r"[\[(]?\s*(?:photo|picture|image|credit|사진|\(c\))"
                       r"|.*(?:\b(?:photo|photograph|credit)\b|사진|©)", re.IGNORECASE)
_BRACKETED = re.compile(r"\[[^\]]*\]|\([^)]*\)")  # "[YONHAP]", "(Reuters)"


def credit_line(item: ItemContext, language: str = "en") -> str:
    """ "Photo: Reuters" for the image's credit, in `language`; "" when there is none or
    the caption names it already. A credit that says what it is ("© AP", "AP Photo/Evan
    Vucci"), or is in brackets as the feed set it apart ("[YONHAP]"), stays as it is."""
    credit = " ".join(item.image_credit.split())
    if not credit or credit.casefold() in item.image_caption.casefold():
        return ""
    if _CREDITED.match(credit) or _BRACKETED.fullmatch(credit):
        return credit
    return labels(language)["photo_credit"].format(credit=credit)
