"""Parse RSS 0.9x/1.0/2.0, Atom and JSON Feed documents into plain, sanitized entries.

feedparser reads the XML formats (sloppy ones too: a feed that is ill-formed but still
yields entries is accepted, real feeds are like that). JSON Feed is mapped by hand,
since feedparser cannot read it. Every field of an `Entry` is safe to store and render:
HTML sanitized, URLs absolute http(s), text plain, dates aware UTC.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from xml.sax import SAXParseException

import feedparser
import lxml.html
from lxml import etree

from digest.errors import FetchError
from digest.gather import dates
from digest.gather.clean import (
    as_html,
    html_to_text,
    image_url,
    plain_text,
    safe_url,
    sanitize_html,
    text_to_html,
)
from digest.gather.images import Image, first_image, lead_image, pixels, split_credit
from digest.gather.repeats import drop_title

# A date further ahead than this is a typo or a scheduled post, not a publication time:
# trusted, it would pin the entry to the top of every "newest" list for months. The
# slack covers wrong time zones; the caller falls back to the time it first saw the entry.
FUTURE_SLACK = dates.FUTURE_SLACK
_HTML_TYPES = ("text/html", "application/xhtml+xml")
# bozo exceptions that say nothing about the document itself.
_HARMLESS_BOZO = (feedparser.NonXMLContentType, feedparser.CharacterEncodingOverride)
_FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/feed+json",
               "application/json")
_EMAIL_THEN_NAME = re.compile(r"\S+@\S+\s*\((.+)\)")
_BARE_EMAIL = re.compile(r"\S+@\S+\.\w+")
_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif")
_MRSS = "http://search.yahoo.com/mrss"  # Media RSS, with or without the final slash
# Where _media_text leaves what it read for _xml_entry: {media URL or "": (caption, credit)}
_MEDIA_TEXT = "digest_media_text"


@dataclass(frozen=True)
class Entry:
    """One item of a feed, cleaned."""

    guid: str           # the feed's id/guid, "" if none
    link: str           # absolute http(s) URL or ""
    title: str          # plain text
    author: str
    published: datetime | None  # aware, UTC; None when the feed gives no usable date
    content_html: str   # sanitized, URLs absolute
    summary: str        # plain text, boilerplate removed, not truncated
    image_url: str      # lead image, absolute http(s) or ""
    image_caption: str
    language: str       # from the entry or the feed, "" if unknown
    image_credit: str = ""  # who took or owns the lead image ("Reuters", "[POOL PHOTO]")
    image_width: int | None = None  # the lead image's size in pixels, when given
    image_height: int | None = None
    canonical: str = ""  # the page's own <link rel="canonical">, when its page was fetched


@dataclass(frozen=True)
class Feed:
    title: str
    site_url: str
    language: str
    entries: list[Entry]


def parse_feed(body: bytes, url: str, content_type: str = "", *,
               now: datetime | None = None) -> Feed:
    """Parse a feed document fetched from `url`; FetchError when it is not a feed.

    `now` (default: the current time) is the reference for rejecting future dates.
    """
    now = now or datetime.now(UTC)
    if _looks_like_json(body):
        return _parse_json_feed(body, url, now)
    return _parse_xml_feed(body, url, content_type, now)


def _looks_like_json(body: bytes) -> bool:
    # Sniff the content, not the Content-Type: servers send JSON Feed as text/plain and
    # RSS as application/json often enough.
    return body.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")


def _not_a_feed(url: str, reason: str) -> FetchError:
    """The error for a document that is no feed, or a feed cut short: the reason first,
    the URL last.

    A reason that carries its own advice (after a semicolon) keeps it; any other is
    told to check the URL.
    """
    if reason == _CUT_SHORT:  # a feed after all, only not all of it: say that first
        return FetchError(f"truncated: {reason} ({url})")
    advice = "" if ";" in reason else "; check the URL"
    return FetchError(f"not an RSS, Atom or JSON feed: {reason}{advice} ({url})")


# Why a feed cut short by its server is not read, in the words of the fetcher's own
# "truncated: …" (fetch.py): the reason first, the URL last.
_CUT_SHORT = ("the feed ends in the middle of the document; the server sent only part of "
              "it: it will be tried again at the next fetch")


# --- RSS and Atom -------------------------------------------------------------------

def _parse_xml_feed(body: bytes, url: str, content_type: str, now: datetime) -> Feed:
    headers = {"content-location": url}  # the base of relative links without xml:base
    if content_type:
        headers["content-type"] = content_type  # feedparser weighs it against the XML
    # sanitize_html=False: nh3 in clean.sanitize_html is the one sanitizer. Nor does
    # feedparser rewrite relative URIs in content (its sgmllib pass halves the speed):
    # sanitize_html resolves them against the content's xml:base, which feedparser
    # still reports as the detail's `base`.
    # No warnings filter here: catch_warnings is process-global (unsafe with threads),
    # and the only warnings feedparser 6 emits come from reading `updated`/
    # `updated_parsed` through FeedParserDict, which _date avoids with dict.get.
    d = feedparser.parse(body, response_headers=headers, sanitize_html=False,
                          resolve_relative_uris=False)
    info = d.get("feed", {})
    feed_lang = _str(info.get("language"))
    feed_author = _author(info)
    raw_entries = d.get("entries", [])
    dates.settle(raw_entries, dates.feed_zone(info), now)
    if d.get("version", "").startswith("rss"):
        _fix_nested_titles(raw_entries, body)
    _media_text(raw_entries, body)
    entries = [
        entry for raw in raw_entries
        if (entry := _xml_entry(raw, url, feed_lang, feed_author, now)) is not None
    ]
    exc = d.get("bozo_exception")
    broken = d.get("bozo") and exc is not None and not isinstance(exc, _HARMLESS_BOZO)
    if not entries and (not d.get("version") or broken):
        raise _not_a_feed(url, _why_not(body, url, exc))
    if isinstance(exc, SAXParseException) and _cut_in_an_item(body) and _truncated(body):
        # feedparser's loose pass still gives the items, the last one cut where the
        # download stopped (a blurb that ends mid-word) and never repaired, as its guid
        # is then known. Like miniflux, which refuses a document its XML decoder cannot
        # finish, nothing of it is stored: the items are in the feed again at the next
        # fetch, whole. (A feed that only lacks its closing </channel></rss>, as some
        # generators write it, has every item whole and is read.)
        raise _not_a_feed(url, _CUT_SHORT)
    return Feed(
        title=_detail_text(info.get("title_detail"), _str(info.get("title"))),
        site_url=safe_url(_str(info.get("link")), url),
        language=feed_lang,
        entries=entries,
    )


def _xml_entry(e: Any, url: str, feed_lang: str, feed_author: str,
               now: datetime) -> Entry | None:
    link = safe_url(_str(e.get("link")), url)
    title = _detail_text(e.get("title_detail"), _str(e.get("title")))
    if not (title or link):
        return None  # nothing to show and nothing to click: not an article
    media_text: dict[str, tuple[str, str]] = e.get(_MEDIA_TEXT) or {}
    captions = {" ".join(caption.split()) for caption, _ in media_text.values()}
    html, base, lang = _pick_content(e, link or url, captions)
    content_html = sanitize_html(drop_title(html, title), base)
    summary_detail = e.get("summary_detail")
    summary = ""
    if summary_detail and not _is_caption(summary_detail, captions):
        summary = _detail_text(summary_detail, multiline=True, title=title)
    image = lead_image([*_media_images(e, link or url, media_text),
                         first_image(content_html)])
    return Entry(
        guid=_str(e.get("id")),
        link=link,
        title=title,
        author=_author(e) or feed_author,
        published=_not_future(_date(e), now),
        content_html=content_html,
        summary=summary or html_to_text(content_html),
        image_url=image.url,
        image_caption=image.caption,
        language=lang or feed_lang,
        image_credit=image.credit,
        image_width=image.width,
        image_height=image.height,
    )


def _media_text(entries: list[Any], body: bytes) -> None:
    """Give each entry the captions and credits of its Media RSS images, and its story.

    feedparser reads <media:description> as the entry's summary, or as its content when
    the item's own <description> came first, and an empty one after that empties the
    summary: a photo caption became the story's blurb, or the story was lost. Here the
    captions are read by element and kept apart, and an RSS item's own <description>
    is put back as its summary.
    """
    if _MRSS.encode() not in body:
        return
    for entry, item in zip(entries, _xml_items(body, len(entries)), strict=True):
        # A description beside a video (YouTube's media:group) is the video's text, the
        # story itself: only one beside photos alone is a caption.
        item_words = _media_words(item) if _about_photos(item) else ("", "")
        found = {"": item_words}
        for media in item.iter():
            if (_media_tag(media) not in ("content", "thumbnail") or not media.get("url")
                    or not (_media_tag(media) == "thumbnail" or _is_image(media))):
                continue
            group = media.getparent()
            inherited = item_words
            if group is not item and group is not None and _about_photos(group):
                inherited = _media_words(group, item_words)
            found[media.get("url", "").strip()] = _media_words(media, inherited)
        if any(caption or credit for caption, credit in found.values()):
            entry[_MEDIA_TEXT] = found
        own = next((c for c in item if isinstance(c.tag, str)
                    and c.tag in ("description", "{http://purl.org/rss/1.0/}description")), None)
        story = "".join(own.itertext()).strip() if own is not None else ""
        if story:
            detail = entry.get("summary_detail") or {}
            entry["summary_detail"] = feedparser.FeedParserDict(
                detail, type="text/html", value=story)


def _xml_items(body: bytes, count: int) -> list[Any]:
    """The document's <item> or <entry> elements, read by lxml, or [] unless there are
    `count` of them (then they are feedparser's entries, in the same order)."""
    parser = etree.XMLParser(recover=True, resolve_entities=False, no_network=True)
    try:
        root = etree.fromstring(body.lstrip(), parser)
    except etree.XMLSyntaxError:
        return []
    items = list(root.iter("{*}item", "{*}entry")) if root is not None else []
    return items if len(items) == count else []


def _about_photos(el: Any) -> bool:
    """True when every media:content in `el` is an image."""
    return not any(_media_tag(c) == "content" and not _is_image(c) for c in el.iter())


def _media_words(el: Any, inherited: tuple[str, str] = ("", "")) -> tuple[str, str]:
    """(caption, credit) from the media:description and media:credit children of `el`."""
    caption, credit = inherited
    for child in el:
        tag = _media_tag(child)
        text = " ".join("".join(child.itertext()).split())
        if tag == "description" and text:
            caption = text
        elif tag == "credit" and text:
            credit = text
    return caption, credit


def _media_tag(el: Any) -> str:
    """The local name of a Media RSS element, "" for any other."""
    if not isinstance(el.tag, str):
        return ""
    name = etree.QName(el)
    return name.localname if (name.namespace or "").rstrip("/") == _MRSS else ""


def _is_caption(detail: Any, captions: Collection[str]) -> bool:
    return " ".join(_str(detail.get("value")).split()) in captions


def _fix_nested_titles(entries: list[Any], body: bytes) -> None:
    """Put back each RSS item's own <title> where feedparser took a nested one.

    feedparser 6 forgets the item's title once it meets any <image> inside the item, so
    a later nested <title> wins: the Google Cloud blog's <og><image>…</og><author>
    <title>job title</title></author> gives every post its author's job title.
    """
    if body.count(b"<title") <= 2 * body.count(b"<item"):
        return  # no nested titles: skip the second parse
    items = _xml_items(body, len(entries))
    for entry, item in zip(entries, items, strict=True):
        own = next((c for c in item
                    if isinstance(c.tag, str) and etree.QName(c).localname == "title"), None)
        detail = entry.get("title_detail")
        if own is None or not detail or not own.text:
            continue
        nested = [t for t in item.iter("{*}title") if t is not own]
        if any(" ".join(t.itertext()).strip() == detail.get("value") for t in nested):
            detail["value"] = own.text.strip()


def _pick_content(e: Any, fallback_base: str,
                  captions: Collection[str] = ()) -> tuple[str, str, str]:
    """(html, base, language) of the entry's fullest body: HTML content, else summary.

    A text that is one of the entry's photo `captions` is not its body.
    """
    details = [c for c in e.get("content", [])
               if _str(c.get("value")) and not _is_caption(c, captions)]
    details.sort(key=lambda c: c.get("type") not in _HTML_TYPES)  # stable: HTML first
    summary = e.get("summary_detail")
    if summary and _str(summary.get("value")) and not _is_caption(summary, captions):
        details.append(summary)
    if not details:
        return "", fallback_base, ""
    c = details[0]
    value = c["value"]
    html = value if c.get("type") in _HTML_TYPES else text_to_html(value)
    return html, safe_url(_str(c.get("base")), fallback_base) or fallback_base, _str(
        c.get("language"))


def _detail_text(detail: Any, fallback: str = "", multiline: bool = False,
                 title: str = "") -> str:
    """Plain text of a feedparser text construct (title, summary) of any declared type;
    with `title`, a first paragraph or line that repeats it is left out."""
    if not detail:
        return plain_text(fallback, multiline=multiline)
    is_html = True if detail.get("type") in _HTML_TYPES else None  # "text" may lie
    if title:
        html = as_html(_str(detail.get("value")), is_html=is_html)
        return html_to_text(drop_title(html, title))
    return plain_text(_str(detail.get("value")), is_html=is_html, multiline=multiline)


def _author(e: Any) -> str:
    """The author's name; a bare e-mail address (RSS's <author>) is not shown."""
    raw = _str(e.get("author"))
    # feedparser cuts "jonas@insanity.industries (Jonas)" at a 4-letter TLD and takes
    # "stries (Jonas" for the name: read RSS's "email (Name)" form here instead.
    if match := _EMAIL_THEN_NAME.fullmatch(raw):
        name = match[1]
    else:
        name = _str(e.get("author_detail", {}).get("name")) or raw
    name = plain_text(name)
    return "" if _BARE_EMAIL.fullmatch(name) else name


def _media_images(e: Any, base: str, media_text: dict[str, tuple[str, str]]) -> list[Image]:
    """Images of media:content, media:thumbnail and image enclosures, with the caption
    and credit Media RSS gives them, in that order."""
    credits = [_str(c.get("content")) for c in e.get("media_credit", [])]
    fallback = media_text.get("", ("", next((c for c in credits if c), "")))
    candidates = [m for m in e.get("media_content", []) if _is_image(m)]
    candidates += e.get("media_thumbnail", [])
    found: list[Image] = []
    for media in candidates:
        src = _str(media.get("url"))
        if url := image_url(src, base):
            found.append(_image(url, *media_text.get(src, fallback), width=pixels(
                _str(media.get("width"))), height=pixels(_str(media.get("height")))))
    for link in e.get("links", []):
        if (link.get("rel") == "enclosure" and _str(link.get("type")).startswith("image/")
                and (url := image_url(_str(link.get("href")), base))):
            found.append(_image(url, *fallback))
    return found


def _is_image(media: Any) -> bool:
    kind = _str(media.get("medium")) or _str(media.get("type"))
    src = _str(media.get("url"))
    return kind == "image" or kind.startswith("image/") or (
        not kind and src.lower().split("?")[0].endswith(_IMAGE_EXTENSIONS))


def _image(url: str, caption: str, credit: str, *, width: int | None = None,
           height: int | None = None) -> Image:
    """An Image whose caption may be HTML and may end with its credit ("… [YONHAP]")."""
    caption = plain_text(caption)
    if not credit:
        caption, credit = split_credit(caption)
    return Image(url, caption, plain_text(credit), width, height)


def _date(e: Any) -> datetime | None:
    """The entry's date (feedparser's reading, with `dates`' handlers), aware UTC; a
    placeholder (the Unix epoch, 0001-01-01) is no date, and the next one is tried."""
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = dict.get(e, key)  # not e.get: see the note in _parse_xml_feed
        if isinstance(parsed, time.struct_time):
            try:
                when = datetime(*parsed[:6], tzinfo=UTC)
            except ValueError:
                continue
            if not dates.is_placeholder(when):
                return when
    return None


def _why_not(body: bytes, url: str, exc: object) -> str:
    """Why a document gave no feed, with what to do when there is something to do."""
    head = body.lstrip()[:1024].lower()
    if not head:
        return "the document is empty"
    if (page := html_page(body, url)) is not None:
        found = page[1]
        if found:
            return f"it is an HTML page; the page names its feed at {found}, add that instead"
        return "it is an HTML page"
    if _truncated(body):
        return _CUT_SHORT
    if not head.lstrip(b"\xef\xbb\xbf").startswith(b"<"):
        return "it is neither XML nor JSON"
    if isinstance(exc, SAXParseException):
        # Not its line number: feedparser may have rewritten the document's head.
        return f"the XML is broken ({exc.getMessage()})"
    return f"{exc}" if exc else "no feed elements found"


_ITEM_OPEN = re.compile(rb"<(?:[\w.-]+:)?(?:item|entry)[\s>]")
_ITEM_CLOSE = re.compile(rb"</(?:[\w.-]+:)?(?:item|entry)\s*>")


def _cut_in_an_item(body: bytes) -> bool:
    """Whether the document's last <item> or <entry> is opened and never closed."""
    opened = [m.start() for m in _ITEM_OPEN.finditer(body)]
    closed = [m.start() for m in _ITEM_CLOSE.finditer(body)]
    return bool(opened) and (not closed or opened[-1] > closed[-1])


def _truncated(body: bytes) -> bool:
    """Whether the document is well-formed XML as far as it goes but ends too early.

    Fed to libxml2 piece by piece, a document cut mid-way raises nothing until it is
    closed (an element, a tag, a CDATA section or a character left open); one broken
    anywhere else raises on the way.
    """
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    try:
        parser.feed(body.lstrip())  # a blank line before <?xml is no truncation
    except etree.XMLSyntaxError:
        return False
    try:
        parser.close()
    except etree.XMLSyntaxError:
        return True
    return False


def _why_not_json(exc: Exception) -> str:
    """What is wrong with JSON that does not parse: cut short, or broken."""
    if isinstance(exc, json.JSONDecodeError):
        text = exc.doc
        try:
            json.loads(text, strict=False)  # a raw newline in a string is not the fault
        except json.JSONDecodeError as loose:
            # Failing where the text ends (or in a string running to it): cut short.
            if loose.msg.startswith("Unterminated string") or (
                    loose.pos >= len(text.rstrip())):
                return _CUT_SHORT
    return f"invalid JSON ({exc})"


def html_page(body: bytes, url: str) -> tuple[str, str] | None:
    """(its title, the feed it names with <link rel="alternate"> or "") when `body` is
    an HTML page, as `_why_not` tells one; None when it is not."""
    head = body.lstrip()[:1024].lower()
    if b"<html" not in head and b"<!doctype html" not in head:
        return None
    try:
        title = lxml.html.document_fromstring(body).findtext(".//title") or ""
    except (etree.ParserError, ValueError):
        title = ""
    return " ".join(title.split()), _discover_feed(body, url)


_ROOT = re.compile(rb"<(?![?!])(?:[\w.-]+:)?([\w.-]+)")


def feed_format(body: bytes) -> str:
    """What a document that parse_feed read is: "RSS", "Atom" or "JSON", by its root
    element (RDF is RSS 1.0); "" when that says nothing."""
    if _looks_like_json(body):
        return "JSON"
    root = _ROOT.search(body)
    name = root.group(1).lower() if root else b""
    return {b"rss": "RSS", b"rdf": "RSS", b"channel": "RSS", b"feed": "Atom"}.get(name, "")


def _discover_feed(body: bytes, url: str) -> str:
    """The first feed an HTML page announces with <link rel="alternate">, or ""."""
    try:
        root = lxml.html.document_fromstring(body)
    except (etree.ParserError, ValueError):
        return ""
    for link in root.iter("link"):
        rels = (link.get("rel") or "").lower().split()
        if "alternate" in rels and (link.get("type") or "").lower() in _FEED_TYPES:
            return safe_url(link.get("href") or "", url)
    return ""


# --- JSON Feed ----------------------------------------------------------------------

def _parse_json_feed(body: bytes, url: str, now: datetime) -> Feed:
    try:
        doc = json.loads(body)  # detects UTF-8/16/32 and a BOM by itself
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise _not_a_feed(url, _why_not_json(exc)) from None
    version = _str(doc.get("version")) if isinstance(doc, dict) else ""
    if (not isinstance(doc, dict) or not isinstance(doc.get("items"), list)
            or (version and "jsonfeed.org" not in version)):
        raise _not_a_feed(url, "JSON without a JSON Feed version and items list")
    home = safe_url(_str(doc.get("home_page_url")), url)
    lang = _str(doc.get("language"))
    author = _json_author(doc)
    entries = [
        entry for item in doc["items"] if isinstance(item, dict)
        and (entry := _json_entry(item, home or url, lang, author, now)) is not None
    ]
    return Feed(title=plain_text(_str(doc.get("title"))), site_url=home,
                language=lang, entries=entries)


def _json_entry(item: dict[str, Any], base: str, feed_lang: str, feed_author: str,
                now: datetime) -> Entry | None:
    link = safe_url(_str(item.get("url")), base) or safe_url(
        _str(item.get("external_url")), base)
    title = plain_text(_str(item.get("title")))  # plain text by the spec, but check
    if not (title or link):
        return None
    html = _str(item.get("content_html")) or text_to_html(_str(item.get("content_text")))
    content_html = sanitize_html(drop_title(html, title), link or base)
    summary = html_to_text(drop_title(as_html(_str(item.get("summary"))), title))
    lead = image_url(_str(item.get("image")), link or base) or image_url(
        _str(item.get("banner_image")), link or base) or _json_attachment_image(item, base)
    image = Image(lead) if lead else first_image(content_html)  # the feed's choice first
    published = dates.parse(_str(item.get("date_published")), now=now) or dates.parse(
        _str(item.get("date_modified")), now=now)
    return Entry(
        guid=_str(item.get("id")), link=link, title=title,
        author=_json_author(item) or feed_author,
        published=_not_future(published, now), content_html=content_html,
        summary=summary or html_to_text(content_html),
        image_url=image.url, image_caption=image.caption, image_credit=image.credit,
        image_width=image.width, image_height=image.height,
        language=_str(item.get("language")) or feed_lang,
    )


def _json_author(obj: dict[str, Any]) -> str:
    """Names from `authors` (1.1) or `author` (1.0), comma-joined."""
    authors = obj.get("authors")
    if not isinstance(authors, list):
        authors = [obj.get("author")]
    names = [plain_text(_str(a.get("name"))) for a in authors if isinstance(a, dict)]
    return ", ".join(n for n in names if n)


def _json_attachment_image(item: dict[str, Any], base: str) -> str:
    attachments = item.get("attachments")
    for a in attachments if isinstance(attachments, list) else []:
        if (isinstance(a, dict) and _str(a.get("mime_type")).startswith("image/")
                and (found := image_url(_str(a.get("url")), base))):
            return found
    return ""


# --- shared -------------------------------------------------------------------------

def _not_future(when: datetime | None, now: datetime) -> datetime | None:
    if when is None or when > now + FUTURE_SLACK:
        return None
    return min(when, now)  # a few hours ahead is a wrong zone: it was published by now


def _str(value: object) -> str:
    """A JSON or feedparser value as a stripped string; ids may be numbers."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""
