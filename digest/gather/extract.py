"""Full text of an article page, extracted with trafilatura, and feed entries enriched with it.

For a source added with `--full-text`, each new entry's page is fetched (by the caller,
with the same limits as feeds) and its main text replaces the feed's often truncated
content. trafilatura never fetches anything here: it gets the page's bytes.

Options, measured on the 44 pages of `corpora/articles` (mean token F1 of the plain text
that is stored, against the benchmark's articleBody; trafilatura 2.3.1, ~25 ms a page):

    default (comments kept)                           0.944
    include_comments=False                            0.965
      + favor_precision, include_formatting           0.976
        + "Related: …" teaser lines pruned (chosen)   0.976  (rt.com, space.com)
        + include_images                              0.970  captions and thumbnail lists
                                                             of related posts come through
        + include_links                               0.970

So the body is extracted without images or links; the lead image is the page's og:image
(or twitter:image), and only a page without one is extracted a second time, with images,
to find its first picture.
"""

from __future__ import annotations

import dataclasses
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lxml.html
import trafilatura
from lxml import etree

from digest.errors import FetchError
from digest.gather.clean import first_image, html_to_text, safe_url, sanitize_html
from digest.gather.feeds import Entry
from digest.gather.fetch import FetchResult

_OPTIONS: dict[str, Any] = {
    "output_format": "html",
    "include_comments": False,   # comments are not the article, and cost 2 points of F1
    "include_images": False,     # see the module docstring
    "include_links": False,
    "include_tables": True,
    "include_formatting": True,  # headings, lists, emphasis survive into content_html
    "favor_precision": True,     # drops more boilerplate; +1 point of F1
}
# A page served as any of these is not an article: it is not handed to trafilatura.
_NOT_HTML = re.compile(r"^\s*(?:image|audio|video|font)/|^\s*application/(?!xhtml|xml)", re.I)
# Lines that point away from the article ("Related: <another story>", "Like this story?
# Share it with a friend!"), which trafilatura keeps as paragraphs: pruned before it runs.
_TEASER_PREFIXES = ("related:", "read more:", "read also:", "also read:", "see also:",
                    "more:", "recommended:", "like this story?", "like this article?")
_TEASERS = (
    "//*[self::p or self::li or self::h2 or self::h3 or self::h4][string-length(.) < 300]["
    + " or ".join(
        f"starts-with(translate(normalize-space(.), '{string.ascii_uppercase}',"
        f" '{string.ascii_lowercase}'), '{prefix}')" for prefix in _TEASER_PREFIXES)
    + "]"
)
# Share buttons and logos that trafilatura keeps among an article's images
# (thespacereview.com's first image is AddThis's "share" button).
_NOT_PHOTOS = "//img[" + " or ".join(
    f"contains(@src, '{word}')" for word in (
        "share", "button", "/icons/", "logo", "avatar", "badge", "spacer", "addthis")) + "]"
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*$")
# What trafilatura and lxml raise on input they cannot make a tree of. (Deep nesting
# cannot recurse out of bounds: lxml stops a tree at 256 levels.)
_BAD_INPUT = (ValueError, TypeError, etree.LxmlError)


@dataclass(frozen=True)
class Extracted:
    """The main content of an article page, cleaned like a feed entry's."""

    title: str          # plain text, "" if none
    content_html: str   # sanitized, URLs absolute
    text: str           # plain, boilerplate removed
    image_url: str      # lead image, absolute http(s) or ""
    image_caption: str
    language: str       # from the page's markup, "" if unknown


def extract_article(html: bytes | str, url: str) -> Extracted | None:
    """The article in the page `html` fetched from `url`, or None when there is none.

    Never raises on what a site sends: a page that is not HTML, empty, or broken gives None.
    """
    try:
        tree = trafilatura.load_html(html)
        if tree is None:
            return None
        body = trafilatura.extract(tree, url=url or None, prune_xpath=_TEASERS, **_OPTIONS)
        content_html = sanitize_html(body or "", url)
        text = html_to_text(content_html)
        if not text:
            return None
        meta = trafilatura.extract_metadata(tree, default_url=url or None, extensive=False)
        image_url, caption = safe_url(meta.image or "", url), ""
        if not image_url:
            image_url, caption = _first_image(tree, url)
        return Extracted(
            title=" ".join((meta.title or "").split()), content_html=content_html, text=text,
            image_url=image_url, image_caption=caption, language=_language(tree),
        )
    except _BAD_INPUT:
        return None


def _first_image(tree: lxml.html.HtmlElement, url: str) -> tuple[str, str]:
    # A second pass, run only for pages without og:image: images change what trafilatura
    # keeps (captions, thumbnail lists), so the text comes from the pass without them.
    body = trafilatura.extract(tree, url=url or None, prune_xpath=[_TEASERS, _NOT_PHOTOS],
                               **(_OPTIONS | {"include_images": True}))
    return first_image(sanitize_html(body, url)) if body else ("", "")


def _language(tree: lxml.html.HtmlElement) -> str:
    """The page's declared language: <html lang>, else Content-Language, else og:locale."""
    candidates = [tree.get("lang") or tree.get("{http://www.w3.org/XML/1998/namespace}lang")]
    candidates += tree.xpath(
        "//meta[translate(@http-equiv, 'CONTELAGU', 'contelagu')='content-language']/@content"
        " | //meta[@property='og:locale']/@content")
    for value in candidates:
        tag = str(value or "").split(",")[0].strip().replace("_", "-")
        if _LANGUAGE_TAG.match(tag):
            return tag[:16]
    return ""


def with_full_text(entry: Entry, extracted: Extracted) -> Entry:
    """`entry` with the page's text and content; its own title, image and language win."""
    image, caption = entry.image_url, entry.image_caption
    if not image:
        image, caption = extracted.image_url, extracted.image_caption
    return dataclasses.replace(
        entry, title=entry.title or extracted.title, content_html=extracted.content_html,
        summary=extracted.text, image_url=image, image_caption=caption,
        language=entry.language or extracted.language,
    )


class PageEnricher:
    """Replaces each new entry's feed content with its page's full text, counting failures.

    `get_page` fetches one URL (the caller binds the source's limits, so each page has
    the feed's timeout and size cap); at most `limit` pages are fetched per run. A page
    that fails to load or has no article leaves the entry as the feed gave it.
    """

    def __init__(self, get_page: Callable[[str], FetchResult], limit: int) -> None:
        self.get_page = get_page
        self.limit = limit
        self.fetched = 0    # pages requested
        self.enriched = 0   # entries that got their page's text
        self.failed = 0     # pages that did not load or gave nothing better than the feed
        self.first_error = ""  # why the first page that did not load did not

    def __call__(self, entry: Entry) -> Entry:
        if not entry.link or self.fetched >= self.limit:
            return entry
        self.fetched += 1
        try:
            page = self.get_page(entry.link)
        except FetchError as exc:
            self.failed += 1
            self.first_error = self.first_error or str(exc)
            return entry
        extracted = None
        if not _NOT_HTML.match(page.content_type):
            extracted = extract_article(page.body, page.url)
        # A paywall or consent page yields a teaser shorter than the feed's own text.
        if extracted is None or len(extracted.text) < len(entry.summary):
            self.failed += 1
            return entry
        self.enriched += 1
        return with_full_text(entry, extracted)
