"""Blocks that repeat what a story shows elsewhere: its headline, its photo's caption.

Feeds and pages often start the text with the headline (in bold, as a heading, or as the
first line of the first paragraph), and extractors keep a photo's caption as a paragraph.
The reader sees both already, above the text and under the photo.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection

import lxml.html

from digest.gather.clean import PARAGRAPHS, fragment, inner_html


def drop_title(html: str, title: str) -> str:
    """`html` without a leading block, or first line of one, that repeats `title`."""
    root = fragment(html)
    if root is None or not _words(title):
        return html
    if (root.text or "").strip():
        # Text before any tag: a plain-text description whose first line or sentence
        # is the headline ("Headline\nBody", "Headline. Body", "Headline - Body").
        rest = _after_title(root.text or "", title)
        if rest is None:
            return html
        root.text = rest
        return inner_html(root)
    first = next((el for el in root.iter() if el is not root and (
        (el.text or "").strip() or el.tag in ("br", "img"))), None)
    if first is None or first.tag in ("br", "img"):
        return html
    parent = first.getparent()
    ends_line = first.tag in PARAGRAPHS or (not (first.tail or "").strip() and (
        first.getnext() is None or first.getnext().tag == "br"))
    if ends_line and same_headline(" ".join(first.itertext()), title):
        _drop_with_empty_parents(first)
        if parent is not None and len(parent) and parent[0].tag == "br" and not (
                parent.text or "").strip():
            parent[0].drop_tree()  # the line break after an inline headline
    elif (br := first.find("br")) is not None and same_headline(
            (first.text or "") + "".join(_outer_text(e) for e in _children_before(br)),
            title):
        # "<p>Headline<br>What worries us…</p>": the headline is the paragraph's first line
        for el in _children_before(br):
            el.drop_tree()
        first.text = ""
        br.drop_tree()
    else:
        return html
    return inner_html(root)


def _after_title(text: str, title: str) -> str | None:
    """`text` after a first line or sentence that is `title` (by words, case aside), or
    None: "Budget talks resume" under the title "Budget" is a sentence, kept."""
    words = re.findall(r"\w+", unicodedata.normalize("NFKC", title))
    if not words:
        return None
    head = re.match(r"\W*" + r"\W+".join(map(re.escape, words))
                    + r"[^\w\n]*?(?:\n|[.!?:。]\s|\s[-–—|]\s)\s*",
                    unicodedata.normalize("NFKC", text), re.IGNORECASE)
    if head is None or not text[head.end():].strip():
        return None
    return unicodedata.normalize("NFKC", text)[head.end():]


def _drop_with_empty_parents(el: lxml.html.HtmlElement) -> None:
    """Remove `el`, and the blocks around it that are left with no text and no image
    (the <p> of a <b>headline</b>, the <table> of a caption cell)."""
    parent = el.getparent()
    el.drop_tree()
    while (parent is not None and parent.getparent() is not None
           and not "".join(parent.itertext()).strip() and not parent.xpath(".//img")):
        el, parent = parent, parent.getparent()
        el.drop_tree()


def drop_blocks(html: str, texts: Collection[str]) -> str:
    """`html` without the blocks whose whole text is one of `texts` (words compared, case
    and punctuation ignored): a photo's caption that an extractor kept as a paragraph."""
    wanted = {w for t in texts if (w := _words(t))}
    root = fragment(html)
    if root is None or not wanted:
        return html
    hits = [el for el in root.iter(*_CAPTION_BLOCKS)
            if _words(" ".join(el.itertext())) in wanted]
    if not hits:
        return html
    for el in hits:
        if el.getparent() is not None:
            _drop_with_empty_parents(el)
    return inner_html(root)


def same_headline(text: str, title: str) -> bool:
    """True when `text` is the headline `title`, compared by words (case and punctuation
    ignored); either may carry the site's name after a separator ("Headline | Site")."""
    got, want = _words(text), _words(title)
    return bool(got and want) and (got == want or got == _main_part(title)
                                   or want == _main_part(text))


def _main_part(text: str) -> str:
    """The words of the longest part of "Headline | Site" or "Site - Headline"."""
    parts = _TITLE_SEPARATOR.split(text)
    return _words(max(parts, key=len)) if len(parts) > 1 else ""


_CAPTION_BLOCKS = ("p", "div", "td", "th", "li", "figcaption", "blockquote", "dd")
_TITLE_SEPARATOR = re.compile(r"\s+(?:[|–—·:]|::|-)\s+")


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", unicodedata.normalize("NFKC", text).casefold()))


def _children_before(marker: lxml.html.HtmlElement) -> list[lxml.html.HtmlElement]:
    parent = marker.getparent()
    return [] if parent is None else list(parent)[:parent.index(marker)]


def _outer_text(el: lxml.html.HtmlElement) -> str:
    return " ".join(el.itertext()) + " " + (el.tail or "")
