"""A story's lead image: which picture leads, and its caption, credit and size.

A feed or page names many images: tracking pixels, icons, 72 px thumbnails, share
buttons, the photo. `lead_image` picks the one to show; `image_caption` reads its caption
and credit where sites put them (<figcaption>, Blogger's caption table, an element with
"caption" or "credit" in its class), `split_credit` the credit that ends a caption, and
`image_alt` the alt text an article's content gives the picture.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import lxml.html

from digest.gather.clean import fragment, image_url


@dataclass(frozen=True)
class Image:
    """A lead image: absolute http(s) URL, its caption and credit, its size when known."""

    url: str = ""
    caption: str = ""   # plain text, without the credit
    credit: str = ""    # "[POOL PHOTO]", "Yonhap", "Photo: Jane Doe"
    width: int | None = None
    height: int | None = None
    alt: str = ""


NO_IMAGE = Image()
LEAD_MIN_WIDTH = 300  # narrower images (icons, thumbnails) lead only when nothing else does
# A credit at the end of a caption: "[POOL PHOTO]", "(Yonhap)", "/ Reuters",
# "Photo: Jane Doe", "Courtesy of the ministry".
_CREDIT = re.compile(
    r"""\s*(?:
      \[(?P<bracket>[^\[\]]{2,60})\]
    | \((?P<paren>(?:photo|image|courtesy|credit|yonhap|newsis|news1|reuters|ap|afp|epa
        |getty|xinhua|kyodo|ani|pti)\b[^()]{0,50})\)
    | (?:^|(?<=[.!?]))\s*(?P<label>(?:photos?|photograph|image|credit|courtesy)
        (?:\ of|\ by)?\s*[:=]?\s+[^.:]{2,60})
    | \s/\s*(?P<slash>[^/]{2,40})
    )\s*$""",
    re.IGNORECASE | re.VERBOSE,
)


def split_credit(caption: str) -> tuple[str, str]:
    """(caption, credit) of a photo caption that ends with its credit, else (caption, "")."""
    caption = " ".join(caption.split())
    match = _CREDIT.search(caption)
    if match is None:
        return caption, ""
    whole = match.group(0).strip()
    credit = whole if match["bracket"] or match["paren"] else next(
        g for g in match.groups() if g)
    return caption[:match.start()].strip(), credit.strip()


def first_image(html: str) -> Image:
    """The lead picture of (sanitized) HTML, with its caption: the first image known to
    be at least LEAD_MIN_WIDTH wide, else the first; never a tracking pixel.

    An image of unknown size is not taken for wide here: a podcast's 200 px episode art
    comes before a Flattr badge of no stated size, and the art should lead.
    """
    root = fragment(html)
    if root is None:
        return NO_IMAGE
    found: list[Image] = []
    for img in root.iter("img"):
        src = image_url(img.get("src", ""))
        width, height = pixels(img.get("width")), pixels(img.get("height"))
        if src and not _pixel(width, height):
            found.append(Image(src, *image_caption(img), width, height,
                               " ".join((img.get("alt") or "").split())))
    wide = [i for i in found if (i.width or 0) >= LEAD_MIN_WIDTH]
    return (wide or found or [NO_IMAGE])[0]


def lead_image(images: list[Image]) -> Image:
    """The first of `images` (the feed's own, then the content's pick) not known to be
    narrower than LEAD_MIN_WIDTH (Blogger's 72 px media:thumbnail, the Guardian's 140 px
    rendition), else the first; never a tracking pixel. NO_IMAGE if none."""
    found = [i for i in images if i.url and not _pixel(i.width, i.height)]
    wide = [i for i in found if i.width is None or i.width >= LEAD_MIN_WIDTH]
    return (wide or found or [NO_IMAGE])[0]


def _pixel(width: int | None, height: int | None) -> bool:
    """1x1 and 0x0 images are tracking pixels (FeedBurner, WordPress stats)."""
    return (width is not None and width <= 1) or (height is not None and height <= 1)


def image_caption(img: lxml.html.HtmlElement) -> tuple[str, str]:
    """(caption, credit) of an <img> from its <figure>'s <figcaption>, or Blogger's
    caption table (td.tr-caption), or a caption/credit element right after the image."""
    figure = next(img.iterancestors("figure"), None)
    holder = figure.find(".//figcaption") if figure is not None else None
    credit_el = None
    if holder is None:
        table = next((t for t in img.iterancestors("table")
                      if "tr-caption-container" in (t.get("class") or "")), None)
        cells = table.xpath(".//td[contains(@class, 'tr-caption')]") if table is not None \
            else []
        holder = cells[0] if cells else None
    if holder is None:  # <div class="photo"><img><span class="caption">…</span></div>
        for box in [img.getparent(), *(a for a in img.iterancestors())][:3]:
            if box is None:
                break
            captions = box.xpath(".//*[contains(@class, 'caption') or self::figcaption]")
            credits = box.xpath(".//*[contains(@class, 'credit')]")
            if captions or credits:
                holder = captions[0] if captions else None
                credit_el = credits[0] if credits else None
                break
    scope = figure if figure is not None else holder
    if credit_el is None and scope is not None:
        credit_el = next(iter(scope.xpath(".//*[contains(@class, 'credit')]")), None)
    credit = " ".join(credit_el.text_content().split()) if credit_el is not None else ""
    text = " ".join(holder.text_content().split()) if holder is not None else ""
    if credit and credit in text:
        text = text.replace(credit, "").strip()
    elif not credit:
        text, credit = split_credit(text)
    return text, credit


def pixels(value: str | None) -> int | None:
    """A width or height attribute as whole pixels ("640", "640px"), None if not one."""
    match = re.fullmatch(r"\s*(\d{1,5})(?:\.\d*)?\s*(?:px)?\s*", value or "")
    return int(match[1]) if match else None


def same_image(a: str, b: str) -> bool:
    """True when two image URLs name the same picture, maybe in another rendition
    (Blogger's /s640/photo.jpg and /w1200-h630/photo.jpg, "?w=150")."""
    if not a or not b:
        return False
    pa, pb = urlsplit(a).path, urlsplit(b).path
    name = pa.rsplit("/", 1)[-1]
    return pa == pb or ("." in name and len(name) > 8 and name == pb.rsplit("/", 1)[-1])


# An alt text that is only the image's file name ("IMG_2041.jpg"), which CMSs fill in.
_FILE_NAME = re.compile(r"\S+\.(?:jpe?g|png|gif|webp|avif)", re.IGNORECASE)


def image_alt(html: str, url: str) -> str:
    """The alt text that the feed or page gave the image `url` where `html` (an
    article's sanitized content) shows it; "" when it gave none or only a file name."""
    root = fragment(html) if url else None
    if root is None:
        return ""
    for img in root.iter("img"):
        if same_image(image_url(img.get("src", "")), url):
            alt = " ".join((img.get("alt") or "").split())
            return "" if _FILE_NAME.fullmatch(alt) else alt
    return ""
