"""Clean what feeds send: an nh3 allowlist, absolute URLs, no boilerplate, plain text.

Feed HTML is hostile by default. `sanitize_html` is the one gate every piece of feed
markup passes before it is stored, rendered into mail or shown on the web: lxml first
drops site boilerplate ("Share this:", "No comments", ...), then nh3 keeps only the
allowlist below. nh3 runs last so nothing lxml re-serializes can reopen a hole.
"""

from __future__ import annotations

import copy
import hashlib
import html as htmllib
import re
import unicodedata
from urllib.parse import urljoin, urlsplit

import lxml.html
import nh3
from lxml import etree

TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "dd", "del", "div",
    "dl", "dt", "em", "figcaption", "figure", "h2", "h3", "h4", "hr", "i", "img", "ins",
    "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp", "small", "strong", "sub",
    "sup", "table", "tbody", "td", "tfoot", "th", "thead", "time", "tr", "u", "ul",
})
# Attributes per tag. No style, class, id or on*: mail clients and our own pages style
# the content; anything else is a tracking or script vector.
ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "abbr": {"title"},
    "ol": {"start"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "time": {"datetime"},
}
# Allowed on every tag: harmless, and lang/dir keep mixed-language and RTL text right.
GENERIC_ATTRIBUTES = frozenset({"dir", "lang", "title"})
# Removed with everything inside; other unknown tags are unwrapped, keeping their text.
DROP_WITH_CONTENT = frozenset({
    "applet", "audio", "button", "canvas", "embed", "form", "frame", "frameset", "head",
    "iframe", "input", "math", "noscript", "object", "script", "select", "style", "svg",
    "template", "textarea", "title", "video",
})
LINK_SCHEMES = frozenset({"http", "https", "mailto"})
WEB_SCHEMES = frozenset({"http", "https"})

# Lines that point away from the article ("Related: <another story>", "SEE MORE: …",
# "Like this story? Share it…"): a block that is one of these, alone or followed by the
# headline it points to, is boilerplate; extract also prunes them before trafilatura.
TEASER_PREFIXES = ("related", "read more", "read also", "also read", "see also",
                   "see more", "more", "recommended", "don't miss", "listen", "watch",
                   "like this story", "like this article")
_TEASER = "|".join(re.escape(p).replace("'", "['’]?") for p in TEASER_PREFIXES)
# The labels of share buttons, which sites put in a row ("Share on Facebook Tweet Share
# this:"): a block of two or more of them and nothing else is boilerplate.
_SHARE = (r"share\ (?:on|via|to)\ [\w.-]+|share(?:\ this)?|tweet|e-?mail(?:\ this)?|print"
          r"|pin\ it"
          r"|copy\ link|facebook|twitter|linkedin|reddit|whatsapp|telegram|pinterest")

# Whole-block boilerplate: a block is dropped only when its entire text (whitespace
# collapsed, surrounding punctuation trimmed, case ignored) matches one of these, so a
# real paragraph that mentions "comments" or "share" is never touched.
_BOILERPLATE = re.compile(
    r"""^(?:
      no\ comments?(?:\ yet)? | \d+\ comments?     # Blogger/WordPress comment counters
    | post\ a\ comment | leave\ a\ (?:reply|comment) | add\ a\ comment
    | share\ this(?:\ (?:post|article|story|page))?
    | share\ (?:on|via|to)\ (?:facebook|twitter|x|linkedin|reddit|whatsapp|telegram
        |pinterest|tumblr|mastodon|bluesky|threads|pocket|e-?mail|kakao\w*|naver|band)
    | click\ to\ (?:share\ on\ \w+|print|email\ (?:a\ link\ to\ a\ friend|this))
        (?:\ \(opens\ in\ new\ window\))?          # Jetpack sharing buttons
    | related(?:\ (?:posts|articles|stories|coverage|content|reading|links|news))?
    | (?:""" + _SHARE + r""")(?:[\ :|,·•/]+(?:""" + _SHARE + r"""))+  # a row of share buttons
    | subscribe\ to\ (?:our|the|my)\ newsletter
    | continue\ reading\b.{0,200}                   # WordPress excerpt link, title after it
    | the\ post\ .+\ appeared\ first\ on\ .+        # WordPress feed footer
    | (?:to\ read\ this\ article\ in\ full,?\ )?(?:please\ )?click\ here  # IDG's teaser end
    | (?:""" + _TEASER + r""")(?:\ ?[:?]\ ?.{0,200})?  # teaser, with its headline
    | \[(?:insight|related|see\ also|more)\](?:\ .{0,200})?  # "[INSIGHT] <headline>"
    | 댓글\ ?없음 | 댓글\ ?쓰기 | 댓글\ ?\d+\ ?개? | 공유하기 | 구독하기
    # Blogger's post footer: its byline with the time and comment count, its labels
    # (a list, no sentence), and its share buttons, written together without spaces.
    | posted\ by\ .{1,80}?\ at\ \d{1,2}:\d{2}(?::\d{2})?(?:\ ?[ap]\.?m\.?)?
        (?:\ (?:no|\d+)\ comments?)?
    | (?:labels|라벨):\ ?[^.!?]{1,200}
    | (?:(?:email\ this|blogthis!?|share\ to\ (?:twitter|facebook|pinterest|x
        |linkedin|tumblr))\ ?){2,}
    )$""",
    re.IGNORECASE | re.VERBOSE | re.DOTALL,
)
_TRIM = " \t\n:.…!|»«→←-–—·•"
_BOILERPLATE_MAX = 400  # longer blocks are content; also bounds the cost of the check
_BOILERPLATE_BLOCKS = frozenset({
    "aside", "dd", "div", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "li",
    "nav", "p", "section",
})
# Inline elements are checked only at the top level ("…</p><a>No comments</a>"): inside
# a paragraph they are part of a sentence.
TOP_INLINE = frozenset({"a", "b", "em", "i", "small", "span", "strong"})
# "Related posts" and "Share this:" headings are followed by their list of links.
_HEADING_WITH_LIST = re.compile(r"^(?:related|share)", re.IGNORECASE)

# Controls and non-characters lxml refuses ("All strings must be XML compatible").
_BAD_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
# What would turn the text around or colour a terminal, not add a word: the bidi
# embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069: "\u202egnp.exe"
# reads as "exe.png") and whole ANSI escape sequences (ESC [ 31 m), which would leave
# "[31m" behind once the ESC alone is dropped. The marks U+200E/U+200F that right-to-left
# text needs are kept.
_STEERING = re.compile("\x1b\\[[0-?]*[ -/]*[@-~]|\x1b\\][^\x07\x1b]*(?:\x07|\x1b\\\\)?"
                       "|[\u202a-\u202e\u2066-\u2069]")
_MARKUP = re.compile(r"<[a-zA-Z/!?]|&(?:#\d+|#x[0-9a-fA-F]+|[a-zA-Z]\w*);")
_URL_TAB_NL = re.compile("[\t\n\r]")
_URL_EDGE = "".join(chr(i) for i in range(0x21))  # C0 controls and space (WHATWG)
# An image source that is one bare word ("x", "null", "undefined"): no file, no path.
_NO_PATH = re.compile(r"^\s*[\w-]+\s*$")
_CLASS = "contains(concat(' ', normalize-space(@class), ' '), ' {} ')"
_CAPTION_BOXES = f".//*[{_CLASS.format('tr-caption-container')} or {_CLASS.format('wp-caption')}]"
_CAPTION_TEXT = f".//*[{_CLASS.format('tr-caption')} or {_CLASS.format('wp-caption-text')}]"
# Blocks outside the allowlist, kept as <div> so their text stays apart from the next.
_BLOCKS_AS_DIV = frozenset({
    "address", "article", "aside", "center", "details", "dialog", "fieldset", "footer",
    "header", "hgroup", "main", "nav", "section", "summary",
})


def safe_url(url: str, base: str = "") -> str:
    """An absolute http(s) URL, resolved against `base`, or "" for anything else."""
    return resolve_url(url, base, WEB_SCHEMES)


def image_url(src: str, base: str = "") -> str:
    """`src` as a lead image's absolute http(s) URL, or "" when it names no picture
    (`src="x"` resolved against the page would be a URL, but of nothing)."""
    return "" if _NO_PATH.match(src) else safe_url(src, base)


def resolve_url(url: str, base: str, schemes: frozenset[str]) -> str:
    """`url` made absolute against `base` if its scheme is in `schemes`, else ""."""
    # Browsers drop tabs and newlines anywhere in a URL and controls at its ends, so
    # "java\tscript:" is javascript: to them; do the same before looking at the scheme.
    url = _URL_TAB_NL.sub("", url or "").strip(_URL_EDGE)
    if not url:
        return ""
    base = resolve_url(base, "", WEB_SCHEMES) if base else ""
    try:
        # An entity-encoded scheme ("&#106;avascript:") is harmless as a relative path,
        # until some later step decodes it: refuse it outright.
        hidden = urlsplit(htmllib.unescape(url)).scheme.lower()
        if base:
            url = urljoin(base, url)
        parts = urlsplit(url)
        if parts.scheme.lower() in WEB_SCHEMES and not parts.hostname:
            return ""
    except ValueError:  # a malformed IPv6 host or port
        return ""
    if parts.scheme.lower() not in schemes or (hidden and hidden not in schemes):
        return ""
    return url.replace(" ", "%20")


def sanitize_html(html: str, base_url: str = "") -> str:
    """Safe HTML from feed HTML: allowlisted tags, absolute http(s) URLs, no boilerplate."""
    root = fragment(html)
    if root is None:
        return ""
    drop_boilerplate(root)
    _prepare(root, base_url)
    markup = _STEERING.sub("", inner_html(root))  # entities read: see _to_text

    def attribute_filter(tag: str, attr: str, value: str) -> str | None:
        # nh3 does not re-check what this returns against url_schemes: it must be safe.
        if attr == "href":
            return resolve_url(value, base_url, LINK_SCHEMES) or None
        if attr == "src":
            return resolve_url(value, base_url, WEB_SCHEMES) or None
        return value

    cleaned = nh3.clean(
        markup, tags=set(TAGS), clean_content_tags=set(DROP_WITH_CONTENT),
        attributes={"*": set(GENERIC_ATTRIBUTES)} | {
            tag: set(attrs) for tag, attrs in ATTRIBUTES.items()},
        url_schemes=set(LINK_SCHEMES), attribute_filter=attribute_filter,
        link_rel="noopener noreferrer", strip_comments=True,
    )
    return cleaned.strip()


def _math_as_tex(root: lxml.html.HtmlElement) -> None:
    """Each MathML formula as its TeX source, text: nh3 drops MathML whole (no mXSS), and
    "request <math>n</math> bytes" would read "request bytes"."""
    for math in list(root.iter("math")):
        tex = math.get("alttext") or next(
            (a.text for a in math.iter("annotation")
             if a.get("encoding") == "application/x-tex" and a.text), "")
        if tex:
            math.tail = " ".join(tex.split()) + (math.tail or "")
            math.drop_tree()  # keeps the tail, now the formula's text


def _prepare(root: lxml.html.HtmlElement, base_url: str) -> None:
    """Resolve URLs and keep what the allowlist would lose for no good reason."""
    _caption_figures(root)
    _math_as_tex(root)
    for el in root.iter(*_BLOCKS_AS_DIV, "h1", "h5", "h6", "img"):
        if el.tag in _BLOCKS_AS_DIV:
            # nh3 unwraps a tag it does not allow, which would run the text of two
            # blocks together ("<article>…here</article>encoded" -> "hereencoded").
            el.tag = "div"
        elif el.tag == "h1":
            el.tag = "h2"
        elif el.tag in ("h5", "h6"):
            el.tag = "h4"
        else:
            # Lazy-loading themes put the real image in data-src and a placeholder
            # (often a data: GIF) in src, which the allowlist would leave empty.
            lazy = el.get("data-src") or el.get("data-lazy-src") or el.get("data-original")
            if lazy and (not el.get("src") or el.get("src", "").startswith("data:")):
                el.set("src", lazy)
            if _NO_PATH.match(el.get("src") or ""):
                del el.attrib["src"]  # <img src="x">: a probe or a placeholder, no picture
    # Check URLs here too, before lxml serializes them: it percent-encodes href and src,
    # which would hide "java\tscript:" from the check in nh3's attribute filter.
    for el in root.iter():
        for attr, schemes in (("href", LINK_SCHEMES), ("src", WEB_SCHEMES)):
            if el.get(attr) is not None:
                url = resolve_url(el.get(attr, ""), base_url, schemes)
                if url:
                    el.set(attr, url)
                else:
                    del el.attrib[attr]
    for img in list(root.iter("img")):
        if not img.get("src"):
            _drop_inline(img)  # an image without a usable source shows as a broken icon


def _caption_figures(root: lxml.html.HtmlElement) -> None:
    """Blogger's caption tables and WordPress's caption boxes as <figure>/<figcaption>,
    which the allowlist keeps: their class, the only sign of a caption, is not kept."""
    for box in root.xpath(_CAPTION_BOXES):
        img = next(box.iter("img"), None)
        caption = next(iter(box.xpath(_CAPTION_TEXT)), None)
        if img is None or caption is None or box.getparent() is None:
            continue
        figure = lxml.html.Element("figure")
        link = img.getparent()
        figure.append(copy.deepcopy(link if link is not None and link.tag == "a" else img))
        figure[0].tail = None
        figcaption = lxml.html.Element("figcaption")
        figcaption.text = " ".join(caption.text_content().split())
        figure.append(figcaption)
        figure.tail = box.tail
        box.getparent().replace(box, figure)


def _drop_inline(el: lxml.html.HtmlElement) -> None:
    """Remove `el`, and the space before it when punctuation follows ("a picture .")."""
    if re.match(r"[.,;:!?)]", el.tail or ""):
        prev = el.getprevious()
        if prev is not None:
            prev.tail = (prev.tail or "").rstrip()
        elif (parent := el.getparent()) is not None:
            parent.text = (parent.text or "").rstrip()
    el.drop_tree()


def html_to_text(html: str) -> str:
    """Readable plain text: blank lines between paragraphs, "- " before list items."""
    return _to_text(html, keep_boilerplate=False)


def _to_text(html: str, keep_boilerplate: bool) -> str:
    root = fragment(html)
    if root is None:
        return ""
    if not keep_boilerplate:
        drop_boilerplate(root)
    _caption_figures(root)  # a photo's caption is not text of the story
    # Again once entities are read: "&#x202E;" is an override too.
    return _STEERING.sub("", _TextBuilder(keep_boilerplate).build(root))


def plain_text(value: str, *, is_html: bool | None = None, multiline: bool = False) -> str:
    """Plain text from a feed text field (title, author, summary) that may be HTML.

    With is_html None the field is taken for HTML when it has a tag or an entity in it:
    feeds mislabel their text both ways, and a title must never carry markup.
    """
    value = as_html(value, is_html=is_html)
    if multiline:
        return html_to_text(value)
    # One line (a title, a name) is never boilerplate: a post may be called "Related".
    return " ".join(_to_text(value, keep_boilerplate=True).split())


def as_html(value: str, *, is_html: bool | None = None) -> str:
    """A feed text field as HTML; with is_html None, HTML when it has a tag or entity."""
    if is_html is None:
        is_html = bool(_MARKUP.search(value))
    return value if is_html else text_to_html(value)


def inner_html(root: lxml.html.HtmlElement) -> str:
    """The markup inside `root`, a fragment's parent."""
    return htmllib.escape(root.text or "", quote=False) + "".join(
        str(lxml.html.tostring(child, encoding="unicode")) for child in root)


def content_hash(title: str, text: str) -> str:
    """sha256 hex of title and text, normalized so trivial re-formatting is the same."""
    def norm(s: str) -> str:
        return " ".join(unicodedata.normalize("NFKC", s).casefold().split())

    return hashlib.sha256(f"{norm(title)}\n{norm(text)}".encode()).hexdigest()


def is_boilerplate(text: str) -> bool:
    """True when a block's whole text is site furniture rather than content."""
    text = " ".join(text.split()).strip(_TRIM)
    return bool(text) and bool(_BOILERPLATE.match(text))


def drop_boilerplate(root: lxml.html.HtmlElement) -> None:
    """Remove the blocks of `root` whose whole text is boilerplate."""
    for el in list(root.iter(*_BOILERPLATE_BLOCKS, *TOP_INLINE)):
        if el.tag in TOP_INLINE and el.getparent() is not root:
            continue
        text = _short_text(el)
        if text is None or not is_boilerplate(text):
            continue
        nxt = el.getnext()
        if (el.tag[0] == "h" and _HEADING_WITH_LIST.match(text.strip())
                and nxt is not None and nxt.tag in ("ul", "ol")):
            nxt.drop_tree()
        box = el.getparent()
        if box is not None:
            el.drop_tree()  # keeps the tail text, which belongs to the parent
        # A box that held only this ("Related coverage" and its list in an <aside>)
        # would stay behind as an empty <div>.
        if (box is not None and box is not root and box.tag in _BOILERPLATE_BLOCKS
                and len(box) == 0 and not (box.text or "").strip()
                and box.getparent() is not None):
            box.drop_tree()


def _short_text(el: lxml.html.HtmlElement) -> str | None:
    """The element's text, or None as soon as it is too long to be boilerplate."""
    parts: list[str] = []
    size = 0
    for piece in el.itertext():
        size += len(piece)
        if size > _BOILERPLATE_MAX:
            return None
        parts.append(piece)
    return "".join(parts)


def fragment(html: str) -> lxml.html.HtmlElement | None:
    """An HTML fragment parsed under a <div>, or None when there is nothing in it."""
    html = _BAD_CHARS.sub("", _STEERING.sub("", html or ""))
    if not html.strip():
        return None
    # lxml refuses str input that carries an XML encoding declaration.
    html = re.sub(r"^\s*<\?xml[^>]*>", "", html)
    try:
        root = lxml.html.fragment_fromstring(html, create_parent="div")
    except (etree.ParserError, ValueError):
        return None
    # Comments and processing instructions go, their tails (real text) stay.
    etree.strip_elements(root, etree.Comment, etree.ProcessingInstruction, with_tail=False)
    # <embed> is a void element, but libxml2 reads the text after it as its content,
    # which would then be dropped with it: keep the text, lose the tag.
    etree.strip_tags(root, "embed")
    return root


# A figure's caption belongs to its image (Entry.image_caption), not to the text.
_SKIP_TEXT = DROP_WITH_CONTENT | {"figcaption"}
_BR = "\x0b"  # marks <br> among the text; _fragment removed any \x0b of the input
_IMG = "\x0c"  # marks an <img>, so "a picture <img>." reads "a picture."
_IMG_GAP = re.compile(r"\s*\x0c+\s*(?=[.,;:!?)])|\x0c")
PARAGRAPHS = frozenset({
    "address", "article", "aside", "blockquote", "caption", "dd", "div", "dl", "dt",
    "figcaption", "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr",
    "li", "main", "nav", "ol", "p", "pre", "section", "table", "tr", "ul",
}) | _BLOCKS_AS_DIV


class _TextBuilder:
    """Walks a tree without recursion (hostile HTML nests deep) and collects paragraphs."""

    def __init__(self, keep_boilerplate: bool = False) -> None:
        self.keep_boilerplate = keep_boilerplate
        self.blocks: list[tuple[str, bool]] = []  # (text, is a list item)
        self.pieces: list[str] = []
        self.items = 0  # depth of open <li>: their paragraphs get "- "

    def build(self, root: lxml.html.HtmlElement) -> str:
        walker = etree.iterwalk(root, events=("start", "end"))
        for event, el in walker:
            tag = el.tag
            if event == "start":
                if tag in _SKIP_TEXT:
                    walker.skip_subtree()
                    continue
                self._open(tag, el.text)
            else:
                if tag not in _SKIP_TEXT:
                    self._close(tag)
                if el is not root and el.tail:
                    self.pieces.append(el.tail)
        self.flush()
        return self._join()

    def _open(self, tag: str, text: str | None) -> None:
        if tag in PARAGRAPHS:
            self.flush()
            self.items += tag == "li"
        elif tag == "br":
            self.pieces.append(_BR)
        elif tag in ("td", "th"):
            self.pieces.append(" ")
        elif tag == "img":
            self.pieces.append(_IMG)
            return
        if text:
            self.pieces.append(text)

    def _close(self, tag: str) -> None:
        if tag in PARAGRAPHS:
            self.flush()
            self.items -= tag == "li"

    def flush(self) -> None:
        as_item = self.items > 0
        joined = _IMG_GAP.sub(lambda m: "" if m.group(0) != _IMG else " ", "".join(self.pieces))
        lines = (" ".join(line.split()) for line in joined.split(_BR))
        text = "\n".join(line for line in lines if line)
        self.pieces = []
        if text and (self.keep_boilerplate or not is_boilerplate(text)):
            self.blocks.append(("- " + text if as_item else text, as_item))

    def _join(self) -> str:
        out: list[str] = []
        for i, (text, item) in enumerate(self.blocks):
            if i:
                out.append("\n" if item and self.blocks[i - 1][1] else "\n\n")
            out.append(text)
        return "".join(out)


def text_to_html(text: str) -> str:
    """Escaped paragraphs from plain text (blank-line separated), newlines kept as <br>."""
    blocks = re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip())
    return "".join(
        "<p>" + "<br>".join(htmllib.escape(line.strip()) for line in block.split("\n")) + "</p>"
        for block in blocks if block.strip()
    )
