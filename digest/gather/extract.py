"""Full text of an article page, extracted with trafilatura, and feed entries enriched with it.

For a source added with `--full-text`, each new entry's page is fetched (by the caller,
with the same limits as feeds) and its main text replaces the feed's often truncated
content. trafilatura never fetches anything here: it gets the page's bytes.

Options, measured on the 44 pages of `corpora/articles` (mean token F1 of the plain text
that is stored, against the benchmark's articleBody; trafilatura 2.3.1, ~25 ms a page):

    default (comments kept)                           0.944
    include_comments=False                            0.965
      + favor_precision, include_formatting           0.976
        + "Related: …" teaser lines pruned            0.976  (rt.com, space.com)
          + repeated headline and caption left out  0.978  (chosen; rt.com, note100yen.com,
                                                            phys.org, thespacereview.com)
        + include_images                              0.970  captions and thumbnail lists
                                                             of related posts come through
        + include_links                               0.970

So the body is extracted without images or links; the lead image is the page's og:image
(or twitter:image) when the page shows that picture. A page without one, or whose
og:image is a social crop it never shows while a caption is on the page, is extracted a
second time, with images, to find the article's first picture: captioned, it leads (4 of
the 44 pages: Quanta's "_1200_Social.jpg" gives way to its captioned lede photo). The lead
image's caption, credit and alt text are read from the page's own <img> of that picture;
the stored content starts with it as a <figure>. The byline is the page's own (its
"byline" element) when trafilatura's author starts it, else trafilatura's names.
A first paragraph that repeats the headline, and the caption where the extractor kept it
as a paragraph, are left out of the text.
"""

from __future__ import annotations

import dataclasses
import html as htmllib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lxml.html
import trafilatura
from lxml import etree

from digest.errors import FetchError
from digest.gather.clean import html_to_text, image_url, is_boilerplate, safe_url, sanitize_html
from digest.gather.feeds import Entry
from digest.gather.fetch import FetchResult
from digest.gather.images import (
    LEAD_MIN_WIDTH,
    NO_IMAGE,
    Image,
    first_image,
    image_caption,
    pixels,
    same_image,
)
from digest.gather.repeats import drop_blocks, drop_title

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
# Short blocks that may be teaser lines ("Related: <another story>", "SEE MORE: …") or
# other boilerplate (clean.is_boilerplate), which trafilatura keeps as paragraphs: pruned
# before it runs, as it may run them into the paragraph next to them.
_SHORT_BLOCKS = ("//*[self::p or self::li or self::h2 or self::h3 or self::h4]"
                 "[string-length(.) < 300]")
# Share buttons and logos that trafilatura keeps among an article's images
# (thespacereview.com's first image is AddThis's "share" button).
_NOT_PHOTOS = "//img[" + " or ".join(
    f"contains(@src, '{word}')" for word in (
        "share", "button", "/icons/", "logo", "avatar", "badge", "spacer", "addthis")) + "]"
# What images.image_caption reads a caption or credit from.
_CAPTIONS = ("(//figcaption | //*[contains(@class, 'caption') or contains(@class, 'credit')])"
             "[1]")
_BYLINES = "//body//*[contains(translate(@class, 'BYLINE', 'byline'), 'byline')]"
_BY = re.compile(r"^by\b:?\s*", re.IGNORECASE)
_MORE_NAMES = re.compile(r"\s*(?:,|;|\||and\b|&|-|–|—)\s*\w")
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*$")
# What trafilatura and lxml raise on input they cannot make a tree of. (Deep nesting
# cannot recurse out of bounds: lxml stops a tree at 256 levels.)
_BAD_INPUT = (ValueError, TypeError, etree.LxmlError)


@dataclass(frozen=True)
class Extracted:
    """The main content of an article page, cleaned like a feed entry's."""

    title: str          # plain text, "" if none
    content_html: str   # sanitized, URLs absolute; the lead image first, as a <figure>
    text: str           # plain, boilerplate removed, without a repeated headline
    image_url: str      # lead image, absolute http(s) or ""
    image_caption: str
    language: str       # from the page's markup, "" if unknown
    image_credit: str = ""
    image_width: int | None = None
    image_height: int | None = None
    author: str = ""    # the page's byline
    canonical: str = ""  # the page's <link rel="canonical">, absolute http(s) or ""


def extract_article(html: bytes | str, url: str) -> Extracted | None:
    """The article in the page `html` fetched from `url`, or None when there is none.

    Never raises on what a site sends: a page that is not HTML, empty, or broken gives None.
    """
    try:
        tree = trafilatura.load_html(html)
        if tree is None:
            return None
        for block in tree.xpath(_SHORT_BLOCKS):
            if is_boilerplate(block.text_content()) and block.getparent() is not None:
                block.drop_tree()
        body = trafilatura.extract(tree, url=url or None, **_OPTIONS)
        meta = trafilatura.extract_metadata(tree, default_url=url or None, extensive=False)
        title = " ".join((meta.title or "").split())
        image = _lead_image(tree, url, meta.image or "")
        # An extractor keeps a photo's caption as a paragraph of the text.
        captions = [f"{image.caption} {image.credit}", image.caption] if image.caption else []
        content_html = sanitize_html(drop_blocks(drop_title(body or "", title), captions), url)
        text = html_to_text(content_html)
        if not text:
            return None
        return Extracted(
            title=title, content_html=_figure(image) + content_html, text=text,
            image_url=image.url, image_caption=image.caption, language=_language(tree),
            image_credit=image.credit, image_width=image.width, image_height=image.height,
            author=_byline(tree, meta.author or ""), canonical=_canonical(tree, url),
        )
    except _BAD_INPUT:
        return None


def _lead_image(tree: lxml.html.HtmlElement, url: str, og_image: str) -> Image:
    """The page's lead picture, with the caption, credit, alt text and size the page
    gives it: its og:image when the page shows that picture, else the article's first
    photo when the page captions it (og:image is then a social crop, 1200x630, that no
    reader of the page sees, and the photo's caption and credit belong to the photo),
    else og:image, else the article's first photo."""
    lead = image_url(og_image, url)
    found = NO_IMAGE
    if lead:
        width, height = (pixels(_meta(tree, f"og:image:{side}")) for side in ("width", "height"))
        found = Image(lead, width=width, height=height)
    img = _page_img(tree, url, found.url)
    # The second pass costs a third of a page's time: only when a caption may be found.
    if img is None and (not found.url or tree.xpath(_CAPTIONS)):
        photo = _first_image(tree, url)
        shown = _page_img(tree, url, photo.url)
        if not found.url or (shown is not None and any(image_caption(shown))
                             and (photo.width or LEAD_MIN_WIDTH) >= LEAD_MIN_WIDTH):
            found, img = photo, shown
    if img is None:
        return found
    caption, credit = image_caption(img)
    exact = _src(img, url) == found.url  # the <img>'s size is of this rendition
    return Image(found.url, caption or found.caption, credit or found.credit,
                 found.width or (pixels(img.get("width")) if exact else None),
                 found.height or (pixels(img.get("height")) if exact else None),
                 " ".join((img.get("alt") or "").split()))


def _page_img(tree: lxml.html.HtmlElement, url: str,
              image: str) -> lxml.html.HtmlElement | None:
    """The page's first <img> of the picture `image` (in any rendition), or None."""
    if not image:
        return None
    return next((el for el in tree.iter("img") if same_image(image, _src(el, url))), None)


def _first_image(tree: lxml.html.HtmlElement, url: str) -> Image:
    # A second pass, run only for pages without og:image: images change what trafilatura
    # keeps (captions, thumbnail lists), so the text comes from the pass without them.
    body = trafilatura.extract(tree, url=url or None, prune_xpath=_NOT_PHOTOS,
                               **(_OPTIONS | {"include_images": True}))
    return first_image(sanitize_html(body, url)) if body else NO_IMAGE


def _src(img: lxml.html.HtmlElement, base: str) -> str:
    src = img.get("src") or ""
    if not src or src.startswith("data:"):
        src = img.get("data-src") or img.get("data-lazy-src") or img.get("data-original") or ""
    return image_url(src, base)


def _figure(image: Image) -> str:
    """The lead image as a sanitized <figure>: its alt text, size, caption and credit."""
    if not image.url:
        return ""
    size = "".join(f' {side}="{value}"' for side, value in (
        ("width", image.width), ("height", image.height)) if value)
    caption = " ".join(part for part in (image.caption, image.credit) if part)
    return sanitize_html(
        f'<figure><img src="{htmllib.escape(image.url)}" alt="{htmllib.escape(image.alt)}"'
        f"{size}>" + (f"<figcaption>{htmllib.escape(caption)}</figcaption>" if caption else "")
        + "</figure>")


def _meta(tree: lxml.html.HtmlElement, prop: str) -> str:
    values = tree.xpath("//meta[@property=$p or @name=$p]/@content", p=prop)
    return str(values[0]) if values else ""


def _byline(tree: lxml.html.HtmlElement, authors: str) -> str:
    """The byline as the page writes it, without its "By".

    trafilatura gives the <meta name="author"> when there is one ("Maria Gomez" of "By
    Maria Gomez, City Hall reporter"), and splits a byline it reads at its commas into
    names joined by "; " ("Maria Gomez; City Hall reporter"). The page's own byline
    (an element with "byline" in its class) is taken instead when it starts with the
    first of those names and goes on only with more names or a title: no date, no
    "@handle", no "5 min read".
    """
    names = [" ".join(name.split()) for name in authors.split(";") if name.strip()]
    if not names:
        return ""
    for el in tree.xpath(_BYLINES):
        text = _BY.sub("", " ".join(" ".join(el.itertext()).split()), count=1)
        rest = text.removeprefix(names[0])
        if (rest != text and len(text) <= 120 and not re.search(r"\d", text)
                and (not rest or _MORE_NAMES.match(rest))):
            return text
    if len(names) > 1:  # the names as the page wrote them, one after another
        words = [r"\s+".join(map(re.escape, name.split())) for name in names]
        body = tree.find(".//body")
        match = re.search(r"\s*(?:,|;|\band\b|&|\|)\s*".join(words), " ".join(" ".join(
            (body if body is not None else tree).itertext()).split()))
        if match:  # pieces of text were joined with a space: "Gomez</a>, City"
            return re.sub(r"\s+(?=[,;])", "", match.group(0))
    return "; ".join(names)


def _canonical(tree: lxml.html.HtmlElement, url: str) -> str:
    """The page's <link rel="canonical">, absolute http(s), or ""."""
    for link in tree.iter("link"):
        if "canonical" in (link.get("rel") or "").lower().split():
            return safe_url(link.get("href") or "", url)
    return ""


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
    """`entry` with the page's text and content; its own title, image and language win.

    The page gives what the feed did not: the photo's caption and credit (of the same
    picture), the byline, and the canonical link.
    """
    image = Image(entry.image_url, entry.image_caption, entry.image_credit,
                  entry.image_width, entry.image_height)
    if not image.url:
        image = Image(extracted.image_url, extracted.image_caption, extracted.image_credit,
                      extracted.image_width, extracted.image_height)
    elif not (image.caption or image.credit) and same_image(image.url, extracted.image_url):
        image = dataclasses.replace(image, caption=extracted.image_caption,
                                    credit=extracted.image_credit)
    content_html, text = extracted.content_html, extracted.text
    if entry.title and (dropped := drop_title(content_html, entry.title)) != content_html:
        content_html, text = dropped, html_to_text(dropped)  # the feed's headline differs
    return dataclasses.replace(
        entry, title=entry.title or extracted.title, content_html=content_html,
        summary=text, image_url=image.url, image_caption=image.caption,
        image_credit=image.credit, image_width=image.width, image_height=image.height,
        author=entry.author or extracted.author, canonical=extracted.canonical,
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
