"""The mail in both layouts as Chromium draws it: 600 and 375 px wide, light and dark,
with photos and with photos blocked (as many mail clients start). Screenshots go to
the test's tmp_path and to /tmp/issue11-shots/ (or $DIGEST_MAIL_SHOTS) to look at.

The edition is served from a made-up https://mail.test/ by Playwright's router, its
photos from digest/demo/images: nothing leaves the machine.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from digest.demo import IMAGES
from digest.editions import shorten
from digest.render import (
    HEADLINE_MAX,
    DigestContext,
    ItemContext,
    make_environment,
    preview,
    render_edition,
)
from tests.test_render import golden_context

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Route

pytestmark = pytest.mark.browser

SHOTS = Path(os.environ.get("DIGEST_MAIL_SHOTS", "/tmp/issue11-shots"))
PHOTOS = "https://photos.test/"
LOGO = ('<svg xmlns="http://www.w3.org/2000/svg" width="144" height="48">'
        '<rect width="144" height="48" rx="6" fill="#1a73e8"/><text x="72" y="31" '
        'font-family="Arial" font-size="18" fill="#fff" text-anchor="middle">HARBOUR</text>'
        '</svg>')


def _story(n: int, photo: str, title: str, *, language: str = "", note: str = "",
           width: int = 1200, height: int = 800) -> ItemContext:
    return ItemContext(
        title=title, link=f"https://news.example/2026/11/story-{n}",
        summary="Fares on all three cross-harbour routes will fall by a fifth from "
                "January, after a year in which passenger numbers climbed back above "
                "their 2019 level for the first time.",
        image_url=PHOTOS + photo if photo else "", image_caption="Seen from North Quay.",
        image_credit="Mira Okafor", image_width=width, image_height=height,
        source_title="The Harbour Times", author="Dan Whitlock",
        published_at=datetime(2026, 11, 27, 6, n, tzinfo=UTC), note=note,
        language=language,
    )


def edition(layout: str) -> DigestContext:
    """Five stories (one Korean, one without a photo), a note, the "also new" list, a
    table of contents, an accent colour and a logo."""
    items = [
        _story(1, "harbour-times/ferry-dawn.jpg", "Ferry fares to fall by a fifth from January"),
        _story(2, "harbour-times/storm-barrier.jpg",
               "Storm barrier to close on Sunday for its first full test since the repair",
               width=1200, height=675, note="We will be at the barrier on Sunday."),
        _story(3, "seoul-daily/water-bus.jpg", "해림시, 수상버스 노선 두 곳 추가", language="ko"),
        _story(4, "", "Council delays its vote on the harbour wall until February"),
        _story(5, "city-notes/glass-plates.jpg",
               "Library opens its archive of 4,000 harbour photographs"),
    ]
    return replace(golden_context(), items=items, layout=layout, toc=True,
                   accent_color="#1a5fb4", logo_url="https://brand.test/logo.svg")


def _serve(page: Page, html: str, *, photos: bool) -> None:
    def answer(route: Route) -> None:
        url = route.request.url
        if url == "https://mail.test/edition.html":
            route.fulfill(body=html, content_type="text/html; charset=utf-8")
        elif photos and url.startswith(PHOTOS):
            route.fulfill(body=(IMAGES / url.removeprefix(PHOTOS)).read_bytes(),
                          content_type="image/jpeg")
        elif photos and url == "https://brand.test/logo.svg":
            route.fulfill(body=LOGO, content_type="image/svg+xml")
        else:  # photos blocked, as a mail client does until the reader allows them
            route.abort()
    page.route("**/*", answer)
    page.goto("https://mail.test/edition.html")
    page.wait_for_load_state("load")


CASES = [(layout, width, scheme, photos)
         for layout in ("hero", "compact") for width in (600, 375)
         for scheme in ("light", "dark") for photos in (True, False)]


@pytest.mark.parametrize(("layout", "width", "scheme", "photos"), CASES)
def test_mail_layout(browser: Browser, tmp_path: Path, layout: str, width: int, scheme: str,
                     photos: bool) -> None:
    ctx = edition(layout)
    shown = preview(render_edition(make_environment(), ctx), ctx.subject, ctx.public_url,
                    language=ctx.language, title=ctx.list_title)
    context = browser.new_context(viewport={"width": width, "height": 900},
                                  color_scheme=scheme,  # type: ignore[arg-type]
                                  is_mobile=width < 600, device_scale_factor=1)
    page = context.new_page()
    try:
        _serve(page, shown.html, photos=photos)
        name = f"{layout}-{width}-{scheme}-{'photos' if photos else 'blocked'}"
        target = tmp_path / f"{name}.png"
        page.screenshot(path=target, full_page=True)
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(target, SHOTS / target.name)
        _check(page, layout, width, scheme, photos)
    finally:
        context.close()


def _check(page: Page, layout: str, width: int, scheme: str, photos: bool) -> None:
    # Nothing to scroll sideways, on a phone too.
    assert page.evaluate("document.scrollingElement.scrollWidth") <= width
    # The footer with its unsubscribe link is there and on screen once scrolled to.
    unsubscribe = page.get_by_role("link", name="Unsubscribe")
    unsubscribe.scroll_into_view_if_needed()
    assert unsubscribe.is_visible()
    images = page.evaluate("""() => [...document.images].map(img => ({
        cls: img.className, alt: img.alt, loaded: img.complete && img.naturalWidth > 0,
        width: img.getBoundingClientRect().width, height: img.getBoundingClientRect().height,
        background: getComputedStyle(img).backgroundColor}))""")
    photos_shown = [i for i in images if i["cls"] != "logo"]
    assert len(photos_shown) == 4
    for img in photos_shown:
        assert img["loaded"] == photos, img
        # Blocked, a photo keeps its place (its width and height attributes) on the
        # placeholder colour, with its alt text; a thumbnail's is "", as its headline
        # is beside it (read once, not twice).
        assert img["height"] > 40 and bool(img["alt"]) == (img["cls"] != "thumb"), img
        assert img["background"] != "rgba(0, 0, 0, 0)", img
    for logo in (i for i in images if i["cls"] == "logo"):  # the title is below it
        assert logo["alt"] == "" and logo["background"] != "rgba(0, 0, 0, 0)", logo
    thumbs = [i for i in images if i["cls"] == "thumb"]
    if layout == "compact":
        assert len(thumbs) == 3  # every story after the lead that has a photo
        assert all(t["width"] <= (96 if width < 600 else 160) for t in thumbs), thumbs
    else:
        assert not thumbs
    # Dark mode recolours the paper; light keeps it light.
    paper = page.evaluate("getComputedStyle(document.querySelector('.paper'))"
                          ".backgroundColor")
    assert (paper == "rgb(28, 27, 25)") == (scheme == "dark"), paper
    # The Korean story says so, for screen readers and line breaking.
    assert page.locator("[lang=ko] >> text=해림시, 수상버스 노선 두 곳 추가").count() >= 1
    # The table of contents leads to each story.
    page.evaluate("window.scrollTo(0, 0)")
    page.get_by_role("link", name=re.compile("Library opens its archive")).first.click()
    page.wait_for_function("window.scrollY > 300")



LONG_URL = ("https://micro.example.social/@harbourwatch/statuses/11348234902349823490/"
            "photos/2026-11-27-the-ferry-at-dawn-from-north-quay-seen-through-the-fog-"
            "over-the-storm-barrier?ref=feed&lang=en-GB&size=original")


@pytest.mark.parametrize("layout", ["hero", "compact"])
def test_unbroken_words_wrap_on_a_phone(browser: Browser, layout: str) -> None:
    # A feed put 5,000 letters without a space in <title> (mail cuts it to 300), and a
    # microblog post's 190-character permalink stands in its blurb and caption: at
    # 375 px nothing scrolls sideways, in a mail of Korean text too.
    assert len(LONG_URL) > 180
    ctx = edition(layout)
    long = [replace(ctx.items[0], title=shorten("Ferry" + "x" * 5000, HEADLINE_MAX)),
            replace(ctx.items[1], summary=f"Seen at dawn: {LONG_URL}",
                    image_caption=LONG_URL, image_credit=LONG_URL),
            replace(ctx.items[2], title=shorten("해림시" + "수" * 400, HEADLINE_MAX)),
            replace(ctx.items[3], title=LONG_URL)]
    ctx = replace(ctx, items=long + list(ctx.items[4:]))
    shown = preview(render_edition(make_environment(), ctx), ctx.subject, ctx.public_url,
                    language=ctx.language, title=ctx.list_title)
    for width in (375, 400):
        context = browser.new_context(viewport={"width": width, "height": 900},
                                      is_mobile=True, device_scale_factor=1)
        page = context.new_page()
        try:
            _serve(page, shown.html, photos=True)
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=SHOTS / f"{layout}-{width}-unbroken.png")
            assert page.evaluate("document.scrollingElement.scrollWidth") <= width
        finally:
            context.close()
