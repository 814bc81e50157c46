"""Every template and layout against caniemail.com's support data (tests/data/caniemail):
no feature the layout depends on may be unsupported in Gmail (web), Outlook for Windows
or Apple Mail unless the templates give those clients a fallback, named in FALLBACKS.

The inventory is read from the rendered, inlined HTML, as a mail client gets it: the
elements and attributes, the CSS properties of style attributes and <style> blocks, their
selectors, at-rules, units and !important. Run with -s to print it (`pytest -s -k
inventory tests/test_caniemail.py`).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import lxml.html
import pytest

from digest.publication import LAYOUTS
from digest.render import (
    ConfirmContext,
    DigestContext,
    make_environment,
    render_confirmation,
    render_edition,
)
from tests.test_render import golden_context, korean_context

DATA = Path(__file__).parent / "data" / "caniemail" / "features.json"

#: The clients every mail must work in, as caniemail names them: (family, platform).
CLIENTS = {
    "Gmail (web)": ("gmail", "desktop-webmail"),
    "Outlook for Windows": ("outlook", "windows"),
    "Apple Mail (macOS)": ("apple-mail", "macos"),
    "Apple Mail (iOS)": ("apple-mail", "ios"),
}

#: Features some of CLIENTS lack, which the templates use anyway because what those
#: clients show without them is still the whole mail, laid out right. Each says how.
FALLBACKS: dict[str, str] = {
    # Outlook for Windows (Word) reads no media queries: it keeps the 600 px desktop
    # layout, held by width attributes and the ghost table of base.html; every phone
    # client reads them and gets the narrow padding, sizes and stacked thumbnails.
    "css-at-media": "Outlook keeps the 600 px desktop layout (width attributes, ghost table)",
    # Dark mode is an enhancement: without it the light colours stay, readable as set.
    "css-at-media-prefers-color-scheme": "clients without it show the light design",
    "css-color-scheme": "a hint to clients that recolour; the light design stands alone",
    "html-meta-color-scheme": "a hint to clients that recolour; the light design stands alone",
    # Decoration only: square corners in Outlook.
    "css-border-radius": "square corners in Outlook for Windows",
    # The hidden preheader's belt and braces: Outlook hides it by mso-hide: all.
    "css-opacity": "the preheader is hidden in Outlook by mso-hide: all",
    "css-max-height": "the preheader is hidden in Outlook by mso-hide: all",
    "css-overflow": "the preheader is hidden in Outlook by mso-hide: all",
    # Only an unbroken word longer than a line needs it (a bare URL in a blurb): Gmail
    # breaks such words itself (a <wbr> every 30 characters); Outlook for Windows keeps
    # the 600 px column fixed by table attributes, so at worst that one cell scrolls.
    "css-overflow-wrap": "Gmail breaks long words itself; Outlook keeps the 600 px column",
    # overflow-wrap's old name, for clients that do not know its value "anywhere".
    "css-word-wrap": "the same as css-overflow-wrap, for clients without 'anywhere'",
    # Only Outlook.com's dark-mode rules ([data-ogsc], in a <style> of their own, so
    # that Gmail's dropping them costs nothing else) select by attribute.
    "css-selector-attribute": "only Outlook.com's dark-mode rules, in a block of their own",
    # word-spacing: normal undoes a spacing Outlook.com adds; Word adds none.
    "css-word-spacing": "a reset for Outlook.com; Word needs none",
    # Word renders every mail its own way, doctype or not; the others read it.
    "html-doctype": "Outlook for Windows renders with Word whatever the doctype",
    # Gmail opens every link in a new tab by itself.
    "html-target": "Gmail opens links in a new tab without it",
}

# Unsupported is a "n" in caniemail's latest result for the client; "a" (partial) and
# "y" count as supported, "u" (untested) is reported but not failed.


def features() -> dict[str, dict[str, object]]:
    return {f["slug"]: f for f in json.loads(DATA.read_text(encoding="utf-8"))}


def support(feature: dict[str, object], family: str, platform: str) -> str:
    """caniemail's latest result ("y", "a #1", "n", "u") for one client."""
    stats = feature["stats"]
    assert isinstance(stats, dict)
    versions = stats.get(family, {}).get(platform) or {}
    return str(list(versions.values())[-1]) if versions else "u"


# -- what the mail uses ------------------------------------------------------------------

_TABLE = {"table", "tr", "td", "th", "tbody", "thead", "tfoot"}
_SKIP_TAGS = {"html", "head", "title", "meta", "a", "br", "noscript", "xml"}
_DECLARATION = re.compile(r"([-a-zA-Z]+)\s*:\s*([^;{}]+)")
_UNITS = {"px": "css-unit-px", "%": "css-unit-percent", "em": "css-unit-em",
          "rem": "css-unit-rem", "pt": "css-unit-pt", "vw": "css-unit-vw", "vh": "css-unit-vh"}


def css_features(slugs: set[str], css: str, where: str, out: dict[str, set[str]]) -> None:
    """The features of declarations `css` (a style attribute or a rule's body)."""
    for prop, value in _DECLARATION.findall(css):
        prop, value = prop.lower(), value.strip().lower()
        if prop.startswith(("mso-", "-ms-", "-webkit-", "-moz-")):
            continue  # one vendor's own property: read by it alone, ignored by the rest
        slug = _css_slug(prop, value)
        out[slug if slug in slugs else f"(no data) {prop}"].add(where)
        for unit, unit_slug in _UNITS.items():
            if re.search(rf"\d{re.escape(unit)}(?![a-z])", value):
                out[unit_slug].add(where)
        if "!important" in value:
            out["css-important"].add(where)
        for function in re.findall(r"([a-z-]+)\(", value):
            name = {"var": "css-variables", "calc": "css-unit-calc"}.get(
                function, f"css-{function}" if f"css-{function}" in slugs
                else f"css-function-{function}")
            out[name if name in slugs else f"(no data) {function}()"].add(where)


def _css_slug(prop: str, value: str) -> str:
    if prop == "display":
        return {"none": "css-display-none", "flex": "css-display-flex",
                "grid": "css-display-grid"}.get(value.split()[0], "css-display")
    if prop.startswith("border-") and prop not in ("border-collapse", "border-spacing",
                                                   "border-radius", "border-image"):
        return "css-border"
    for family in ("padding", "margin"):
        if prop.startswith(family + "-") and "inline" not in prop and "block" not in prop:
            return f"css-{family}"
    if prop in ("top", "left", "right", "bottom"):
        return "css-left-right-top-bottom"
    return f"css-{prop}"


def stylesheet_features(slugs: set[str], css: str, out: dict[str, set[str]]) -> None:
    """The features of a <style> block: at-rules, selectors, then declarations."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    for at_rule, prelude in re.findall(r"@([a-z-]+)([^{]*)\{", css):
        out[f"css-at-{at_rule}"].add("<style>")
        if "prefers-color-scheme" in prelude:
            out["css-at-media-prefers-color-scheme"].add("<style>")
    for selectors, body in re.findall(r"([^{}@]+)\{([^{}]*)\}", css):
        for selector in selectors.split(","):
            if "," in selectors:
                out["css-selector-grouping"].add("<style>")
            _selector_features(selector.strip(), out)
        css_features(slugs, body, "<style>", out)


def _selector_features(selector: str, out: dict[str, set[str]]) -> None:
    if not selector or selector.startswith("@"):
        return
    if "." in selector:
        out["css-selector-class"].add(selector)
    if "[" in selector:
        out["css-selector-attribute"].add(selector)
    if re.search(r"(^|[\s>+~])#", selector):
        out["css-selector-id"].add(selector)
    if re.search(r"(^|[\s>+~])[a-z][a-z0-9]*(?=$|[\s.:#\[>+~])", selector):
        out["css-selector-type"].add(selector)
    if re.search(r"[^\s>+~]\s+[^\s>+~]", selector):
        out["css-selector-descendant"].add(selector)
    for combinator, slug in ((">", "child"), ("+", "adjacent-sibling"),
                             ("~", "general-sibling")):
        if combinator in selector:
            out[f"css-selector-{slug}"].add(selector)
    for pseudo in re.findall(r"(?<!:):([a-z-]+)", selector):
        out[f"css-pseudo-class-{pseudo}"].add(selector)
    for pseudo in re.findall(r"::([a-z-]+)", selector):
        out[f"css-pseudo-element-{pseudo}"].add(selector)


def inventory(html: str, slugs: set[str]) -> dict[str, set[str]]:
    """caniemail's slug -> where the mail uses it; "(no data) …" for what it lacks."""
    out: dict[str, set[str]] = defaultdict(set)
    if html.lstrip().lower().startswith("<!doctype"):
        out["html-doctype"].add("<!DOCTYPE>")
    if "<!--" in html:
        out["html-comments"].add("<!--[if mso]>")
    tree = lxml.html.document_fromstring(html)
    for el in tree.iter():
        if not isinstance(el.tag, str):
            continue
        tag = el.tag.lower()
        if tag in _TABLE:
            out["html-table"].add(tag)
        elif re.fullmatch(r"h[1-6]", tag):
            out["html-h1-h6"].add(tag)
        elif tag == "meta" and el.get("name", "").lower() in ("color-scheme",
                                                             "supported-color-schemes"):
            out["html-meta-color-scheme"].add("<meta name=color-scheme>")
        elif tag not in _SKIP_TAGS:
            out[f"html-{tag}" if f"html-{tag}" in slugs else f"(no data) <{tag}>"].add(tag)
        if tag == "style":
            stylesheet_features(slugs, el.text or "", out)
        for attr, value in el.attrib.items():
            attr = attr.lower()
            if attr == "style":
                css_features(slugs, value, f"<{tag} style>", out)
            elif attr == "href" and value.startswith("#"):
                out["html-anchor-links"].add(f"<{tag} href=#…>")
            elif attr == "href" and value.startswith("mailto:"):
                out["html-mailto-links"].add(f"<{tag} href=mailto:>")
            elif f"html-{attr}" in slugs:
                out[f"html-{attr}"].add(f"<{tag} {attr}>")
            elif attr == "loading":
                out["html-loading-attribute"].add(f"<{tag} loading>")
    return out


# -- the mail as every template and layout renders it ---------------------------------------

def renders() -> dict[str, str]:
    """Every template and layout, in English and Korean, table of contents on and off."""
    env = make_environment()
    out = {}
    for layout in LAYOUTS:
        for toc in (False, True):
            for name, base in (("en", golden_context()), ("ko", korean_context())):
                ctx: DigestContext = replace(base, layout=layout, toc=toc,
                                             accent_color="#1a73e8" if toc else "",
                                             logo_url="https://news.example.org/logo.png"
                                             if toc else "")
                out[f"digest {layout} toc={toc} {name}"] = render_edition(env, ctx).html
    confirm = ConfirmContext(list_name="morning", list_title="The Morning Harbour",
                             list_description="", subject="Confirm", language="en",
                             public_url="https://news.example.org")
    out["confirm"] = render_confirmation(env, confirm).html
    return out


@pytest.fixture(scope="module")
def used() -> dict[str, dict[str, set[str]]]:
    """Per rendering, the inventory of what it uses."""
    slugs = set(features())
    return {name: inventory(html, slugs) for name, html in renders().items()}


def _merged(used: dict[str, dict[str, set[str]]]) -> dict[str, set[str]]:
    merged: dict[str, set[str]] = defaultdict(set)
    for name, found in used.items():
        for slug, where in found.items():
            merged[slug].update(f"{name}: {w}" for w in sorted(where)[:2])
    return merged


def test_inventory_lists_what_the_mail_uses(used: dict[str, dict[str, set[str]]]) -> None:
    data = features()
    merged = _merged(used)
    lines = []
    for slug in sorted(merged):
        verdicts = "" if slug not in data else "  ".join(
            f"{client}: {support(data[slug], *key)}" for client, key in CLIENTS.items())
        lines.append(f"{slug:42} {verdicts}")
    print("\n".join(lines))
    # The skeleton every layout stands on, found where it must be.
    for slug in ("html-table", "html-img", "html-width", "html-align", "html-role",
                 "css-at-media", "css-padding"):
        assert slug in merged, slug


def unsupported(merged: dict[str, set[str]]) -> list[str]:
    """What `merged` uses that some client of CLIENTS lacks and FALLBACKS does not name."""
    data = features()
    problems = []
    for slug, where in sorted(merged.items()):
        if slug not in data or slug in FALLBACKS:
            continue
        missing = [client for client, key in CLIENTS.items()
                   if support(data[slug], *key).startswith("n")]
        if missing:
            problems.append(f"{slug} ({data[slug]['title']}) is unsupported in "
                            f"{', '.join(missing)}; used in {', '.join(sorted(where)[:3])}")
    return problems


def test_nothing_layout_critical_is_unsupported_without_a_fallback(
    used: dict[str, dict[str, set[str]]]
) -> None:
    problems = unsupported(_merged(used))
    assert not problems, ("give these a fallback and name it in FALLBACKS, or stop using "
                          "them:\n" + "\n".join(problems))


def test_the_check_catches_a_layout_outlook_cannot_draw() -> None:
    """A flex row or a background image (what an override template might try) fails."""
    html = ('<!DOCTYPE html><html><head><style>.row { display: flex; }</style></head>'
            '<body><div class="row" style="background-image: url(a.png)">'
            '<a href="#top">x</a></div></body></html>')
    problems = "\n".join(unsupported(inventory(html, set(features()))))
    assert "css-display-flex" in problems and "Outlook for Windows" in problems
    assert "css-background-image" in problems


def test_every_fallback_named_is_still_needed(used: dict[str, dict[str, set[str]]]) -> None:
    """FALLBACKS stays true: each entry is used, and some client lacks it."""
    data = features()
    merged = _merged(used)
    stale = [slug for slug in FALLBACKS
             if slug not in merged or not any(support(data[slug], *key).startswith("n")
                                              for key in CLIENTS.values())]
    assert not stale, f"FALLBACKS names features no longer used or lacking: {stale}"
