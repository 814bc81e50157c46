"""The public archive: the public lists, each list's sent editions, each edition "in the
browser", and an Atom feed of a list's editions. No login.

Only digests that went out (status sent) of public, active lists are listed; anything
else, a private or archived list included, is a plain 404, so the archive does not
confirm which private lists exist. One exception: an edition's own page, the "view in
browser" link of its footer, is there from the moment it starts sending (readers get it
while the rest is still going out), and a private list's edition opens with the key that
link carries (`digest.edition_links`): that edition only, no login.

An edition's page is the email itself: the HTML rendered once when it was sent, with
the per-subscriber slots filled with neutral values (no address, no name) and what only a
reader's copy needs taken out: the reason line, and the links to unsubscribe, to manage
preferences and to view in the browser (in the browser there is no reader; they led to
the sign-up form, or nowhere for a private list). A public list's page offers "Subscribe"
in their place. It is served as its own document with a Content-Security-Policy of its
own: inline styles (email HTML has nothing else) and images over https or plain http (a
feed's photo or a list's logo may be http, and mail clients show those too; a page served
over https still has the browser block them as mixed content), still no scripts, and
sandboxed, so even markup that slipped through a feed runs in an origin of its own, away
from the editors' session cookie.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

import lxml.html
from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, Response
from lxml.html import HtmlElement
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session, selectinload

from digest.app import App
from digest.edition_links import NOT_VALID
from digest.editions import article_languages, item_language
from digest.errors import InvalidInput
from digest.models import Edition, EditionKind, EditionStatus
from digest.render import (
    Slotted,
    format_date,
    labels,
    mail_link,
    other_language,
    text_direction,
)
from digest.web.deps import AppDep, PagesDep
from digest.web.pages import Pages
from digest.web.public_views import (
    ArchivedList,
    ArchiveIndexPage,
    ArchiveListPage,
    EditionLink,
)
from digest.web.subscribe import choice
from digest.web.words import words
from subscribers.lists import all_lists
from subscribers.models import MailingList

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 20
FEED_SIZE = 20
ATOM = "http://www.w3.org/2005/Atom"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
# Archive pages change when an edition goes out; a few minutes of caching is harmless.
CACHE = {"Cache-Control": "public, max-age=300"}
EDITION_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; "
    "font-src https: data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'; "
    "sandbox allow-popups allow-popups-to-escape-sandbox"
)
# The mail's footer lines, as templates/email/digest.html marks them.
FOOTER_LINES = "//p[contains(concat(' ', normalize-space(@class), ' '), ' footer ')]"
# The slots of a reader's own links, and the value that marks them in the archive copy.
READER_LINKS = ("unsubscribe_url", "manage_url")
READER_MARK = "about:blank#digest-reader-"
# The slots whose whole line is the reader's own ("You subscribed on...", "This email was
# sent to ..."): the archive copy leaves those lines out, since the page was sent to nobody.
READER_LINES = ("reason", "email")


@router.api_route("/archive", methods=["GET", "HEAD"])
def archive_index(app: AppDep, pages: PagesDep) -> Response:
    """The public lists, with how many editions went out and when the last did."""
    with app.sessions() as s:
        lists = [m for m in all_lists(s) if m.public]
        stats = dict(((lid, (n, last)) for lid, n, last in s.execute(
            select(Edition.list_id, func.count(), func.max(Edition.sent_at))
            .where(*_sent()).group_by(Edition.list_id))))
        shown = []
        for mlist in sorted(lists, key=lambda m: (m.title.casefold(), m.name)):
            n, last = stats.get(mlist.id, (0, None))
            shown.append(ArchivedList(**vars(choice(mlist)), editions=n,
                                      last_sent=_date(last, mlist) if last else ""))
    return pages.render("web/archive_index.html", ArchiveIndexPage(title="Archive", lists=shown),
                        headers=CACHE)


# Before /{number}: "feed.atom" would match that pattern too.
@router.api_route("/archive/{list_name}/feed.atom", methods=["GET", "HEAD"])
def archive_feed(list_name: str, app: AppDep) -> Response:
    """An Atom feed of the list's last FEED_SIZE editions."""
    with app.sessions() as s:
        mlist = _public_list(s, list_name)
        editions = _editions(s, mlist, limit=FEED_SIZE, offset=0, with_items=True)
        xml = atom_feed(mlist, editions, app.settings["public_url"].rstrip("/"),
                        article_languages(s, (i.article_id for e in editions
                                              for i in e.items if i.article_id is not None)))
    return Response(xml, media_type="application/atom+xml; charset=utf-8", headers=CACHE)


@router.api_route("/archive/{list_name}/{number}", methods=["GET", "HEAD"])
def edition_view(list_name: str, number: str, app: AppDep, pages: PagesDep,
                 key: str = "") -> Response:
    """The edition as subscribers saw it, slots filled with neutral values. A private
    list's edition needs the `key` of its footer link (403 with a page saying so when
    the key is another edition's of the list, or damaged). A key that is not the list's
    gets the same answer whether or not a list of that name exists, so keys cannot be
    used to find private lists' names."""
    with app.sessions() as s:
        mlist = s.scalar(select(MailingList).where(MailingList.name == list_name))
        if mlist is None or mlist.archived_at is not None:
            if key:
                return _not_valid(pages, NOT_VALID)
            raise HTTPException(404)
        if not (mlist.public or key):
            raise HTTPException(404)
        edition = s.scalar(select(Edition).where(
            Edition.kind == EditionKind.DIGEST,
            Edition.status.in_((EditionStatus.SENT, EditionStatus.SENDING)),
            Edition.list_id == mlist.id, Edition.number == _number(number)))
        if not mlist.public:
            refused = _key_refused(app, pages, key, mlist, edition)
            if refused is not None:
                return refused
        if edition is None or not edition.html:
            raise HTTPException(404)
        html = fill_neutral(edition, mlist, app)
    # A private edition is one reader's link: no shared cache keeps it.
    cache = CACHE if mlist.public else {"Cache-Control": "private, no-store"}
    return HTMLResponse(html, headers={**cache, "Content-Security-Policy": EDITION_CSP,
                                       "Referrer-Policy": "no-referrer"})


def _key_refused(app: App, pages: Pages, key: str, mlist: MailingList,
                 edition: Edition | None) -> Response | None:
    """None when `key` opens `edition` of the private `mlist`; else the page that says
    why not, the same whether or not the edition exists (a key names one edition)."""
    try:
        named = app.edition_links.names(key)
    except InvalidInput as exc:
        return _not_valid(pages, str(exc))
    if named[0] != mlist.id:  # another list's key: as if this list were not there
        return _not_valid(pages, NOT_VALID)
    if edition is not None and named[1] == edition.id:
        return None
    return pages.message(403, "This link does not work",
                         "this link is for another edition of the newsletter; use the "
                         "\u201cview in browser\u201d link of the email you want to read",
                         private=True)


def _not_valid(pages: Pages, message: str) -> Response:
    return pages.message(403, "This link does not work", message, private=True)


@router.api_route("/archive/{list_name}", methods=["GET", "HEAD"])
def archive_list(list_name: str, app: AppDep, pages: PagesDep, page: str = "1") -> Response:
    """The list's sent editions, newest first, PAGE_SIZE a page (`?page=2`)."""
    number = _number(page)
    with app.sessions() as s:
        mlist = _public_list(s, list_name)
        total = s.scalar(select(func.count()).select_from(Edition).where(
            *_sent(), Edition.list_id == mlist.id)) or 0
        last_page = max(1, math.ceil(total / PAGE_SIZE))
        if number < 1 or number > last_page:
            raise HTTPException(404)
        editions = _editions(s, mlist, limit=PAGE_SIZE, offset=(number - 1) * PAGE_SIZE)
        base = f"/archive/{mlist.name}"
        listing = ArchiveListPage(
            title=f"{mlist.title}: archive", mailing_list=choice(mlist),
            editions=[EditionLink(number=e.number, subject=e.subject or f"No. {e.number}",
                                  sent=_date(e.sent_at, mlist), url=f"{base}/{e.number}")
                      for e in editions],
            page_number=number, pages=last_page,
            newer_url=(base if number == 2 else f"{base}?page={number - 1}") if number > 1
            else "",
            older_url=f"{base}?page={number + 1}" if number < last_page else "",
            feed_url=f"{base}/feed.atom",
        )
    return pages.render("web/archive_list.html", listing, headers=CACHE)


def fill_neutral(edition: Edition, mlist: MailingList, app: App) -> str:
    """Edition HTML with its slots filled for anyone to see: no address, no name, and
    the mail's footer replaced by the archive's (`browser_footer`)."""
    slotted = Slotted(edition.html, edition.slot_key)
    neutral = {name: READER_MARK + name for name in (*READER_LINKS, *READER_LINES)}
    html = slotted.fill({name: neutral.get(name, "") for name in slotted.names}, html=True)
    public_url = app.settings["public_url"].rstrip("/")
    said = words(mlist.language)
    links = [(f"{public_url}/archive/{mlist.name}", said["archive_all"]),
             (f"{public_url}/subscribe/{mlist.name}", said["archive_subscribe"])]
    footer = ArchiveFooter(said["archive_footer"].format(title=mlist.title),
                           links if mlist.public else [])
    return browser_footer(html, app.view_url(edition, mlist), footer)


@dataclass(frozen=True)
class ArchiveFooter:
    """What the archive copy says in place of the mail's footer: "From the archive of
    <list>" and, for a public list, its links (url, label): all editions, subscribe."""

    text: str
    links: list[tuple[str, str]]


def browser_footer(html: str, view_url: str, footer: ArchiveFooter) -> str:
    """`html` (slots filled with READER_MARK values) with the mail's footer lines (the
    `<p class="footer">` that hold why they get it, the address it was sent to, and the
    reader's links and "view in browser" link to `view_url`, the page itself) replaced
    by one line of `footer`, styled as the first of them and its links as theirs. Other
    footer lines (the postal address) stay.
    A template whose footer is not so marked (a templates_dir's own) loses the reader's
    lines and links wherever they are, and a public list's "Subscribe" takes the
    reader links' place. Parsed, not cut by pattern."""
    doc = lxml.html.document_fromstring(html)
    page = urlsplit(view_url)._replace(query="", fragment="")

    def readers(link: HtmlElement) -> bool:
        href = link.get("href", "")
        return href.startswith(READER_MARK) or bool(
            view_url and urlsplit(href)._replace(query="", fragment="") == page)

    mail_lines = [p for p in doc.xpath(FOOTER_LINES)
                  if any(READER_MARK + name in p.text_content() for name in READER_LINES)
                  or any(readers(a) for a in p.iter("a"))]
    offer = None
    if mail_lines:
        _archive_line(mail_lines, footer)
    elif footer.links:
        offer = footer.links[-1]
    for para in list(doc.iter("p")):
        if any(READER_MARK + name in para.text_content() for name in READER_LINES):
            para.drop_tree()
    lines: dict[HtmlElement, list[HtmlElement]] = {}
    for link in doc.xpath("//a[@href]"):
        if readers(link):
            lines.setdefault(link.getparent(), []).append(link)
    for line, gone in lines.items():
        _rebuild(line, gone, offer)
    return str(lxml.html.tostring(doc, encoding="unicode", doctype="<!DOCTYPE html>"))


def _archive_line(mail_lines: list[HtmlElement], footer: ArchiveFooter) -> None:
    """Put `footer`'s line where the first of `mail_lines` is, with its tag and
    attributes (the mail's inline style), its links with those of the mail's first
    footer link (but its href); drop `mail_lines`."""
    first = mail_lines[0]
    line = lxml.html.Element(first.tag, dict(first.attrib))
    sample = next((a for p in mail_lines for a in p.iter("a")), None)
    style = {k: v for k, v in (sample.attrib if sample is not None else {}).items()
             if k != "href"}
    line.text = footer.text + (": " if footer.links else "")
    for n, (url, label) in enumerate(footer.links):
        link = lxml.html.Element("a", {**style, "href": url})
        link.text = label
        link.tail = " \u00b7 " if n < len(footer.links) - 1 else None
        line.append(link)
    first.addprevious(line)
    for para in mail_lines:
        para.drop_tree()


def _rebuild(line: HtmlElement, gone: list[HtmlElement],
             subscribe: tuple[str, str] | None) -> None:
    """`line` without the links `gone`: its links alone, joined by its separator, when
    it holds nothing else; else the links dropped where they stand."""
    links = [child for child in line if child.tag == "a"]
    if len(links) != len(line) or (line.text or "").strip():
        for link in gone:
            link.drop_tree()
        return
    separator = next((a.tail for a in links if a.tail and a.tail.strip()), " \u00b7 ")
    kept = [a for a in links if a not in gone]
    reader = [a for a in gone if a.get("href", "").startswith(READER_MARK)]
    if subscribe and reader:
        offer = copy.deepcopy(reader[0])
        offer.set("href", subscribe[0])
        offer.text, offer.tail = subscribe[1], None
        for child in list(offer):
            offer.remove(child)
        kept.insert(0, offer)
    if not kept:
        line.drop_tree()
        return
    for child in list(line):
        line.remove(child)
    line.text = None
    for n, link in enumerate(kept):
        link.tail = separator if n < len(kept) - 1 else None
        line.append(link)


def atom_feed(mlist: MailingList, editions: list[Edition], public_url: str,
              languages: Mapping[int, str] | None = None) -> bytes:
    """An Atom 1.0 document (RFC 4287) of `editions`, newest first. Ids are tag URIs of
    the list's and the edition's database ids, so renaming a list or moving the site
    does not make readers see every edition again. `languages`: each item's article's
    language, by article id (`editions.article_languages`), for a story in another
    language than the list's to say so."""
    host = urlsplit(public_url).hostname or "localhost"
    tag = f"tag:{host},{mlist.created_at:%Y-%m-%d}:digest/list/{mlist.id}"
    base = f"{public_url}/archive/{mlist.name}"
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed", {XML_LANG: mlist.language})
    _sub(feed, "id", tag)
    _sub(feed, "title", mlist.title)
    if mlist.description:
        _sub(feed, "subtitle", mlist.description)
    newest = editions[0].sent_at if editions else mlist.created_at
    _sub(feed, "updated", _rfc3339(newest or mlist.created_at))
    _sub(feed, "link", rel="self", type="application/atom+xml", href=f"{base}/feed.atom")
    _sub(feed, "link", rel="alternate", type="text/html", href=base)
    author = _sub(feed, "author")
    _sub(author, "name", mlist.title)
    for edition in editions:
        entry = _sub(feed, "entry")
        _sub(entry, "id", f"{tag}/edition/{edition.id}")
        _sub(entry, "title", edition.subject or f"{mlist.title} No. {edition.number}")
        sent = _rfc3339(edition.sent_at or edition.created_at)
        _sub(entry, "updated", sent)
        _sub(entry, "published", sent)
        _sub(entry, "link", rel="alternate", type="text/html", href=f"{base}/{edition.number}")
        _sub(entry, "content", _entry_html(edition, mlist, languages or {}), type="html")
    body: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + body


def _entry_html(edition: Edition, mlist: MailingList, languages: Mapping[int, str]) -> str:
    """A feed reader's version of the edition: the intro, each article's headline, link,
    source and blurb, then the "also new" list's headlines, links and sources; not the
    email's table layout, which readers strip anyway. Links are as the mail gave them.
    A story in another language than the list's is in an element of its own that says
    which, as in the mail; "Read the full story" is in the list's."""
    parts = [f"<p>{escape(p)}</p>" for p in edition.intro.split("\n\n") if p.strip()]
    words = labels(mlist.language)
    full = [item for item in edition.items if not item.brief]
    brief = [item for item in edition.items if item.brief]
    for item in full:
        link = mail_link(item.link, mlist.keep_tracking)
        own = _own_language(item_language(item, languages), mlist.language)
        story = [_headline("h2", item.title, link)]
        if item.source_title:
            story.append(f"<p><em>{escape(item.source_title)}</em></p>")
        if item.summary:
            story.append(f"<p>{escape(item.summary)}</p>")
        parts.append(f"<div{own}>" + "\n".join(story) + "</div>" if own else "\n".join(story))
        if link:  # in the list's language: after the story's own element
            parts.append(f'<p><a href="{escape(link)}">{escape(words["read_more"])}</a></p>')
    if brief:
        parts.append(f"<h3>{escape(words['also_new'])}</h3>")
        parts.append("<ul>" + "".join(
            f"<li{_own_language(item_language(item, languages), mlist.language)}>"
            f"{_headline('span', item.title, mail_link(item.link, mlist.keep_tracking))}"
            + (f" <em>{escape(item.source_title)}</em>" if item.source_title else "") + "</li>"
            for item in brief) + "</ul>")
    return "\n".join(parts)


def _own_language(own: str, language: str) -> str:
    """` lang="ko"` (with its direction when not the list's) for a story whose language
    `own` is not the list's `language`; else ""."""
    own = other_language(own, language)
    if not own:
        return ""
    direction = text_direction(own)
    turned = f' dir="{direction}"' if direction != text_direction(language) else ""
    return f' lang="{escape(own)}"{turned}'


def _headline(tag: str, title: str, link: str) -> str:
    text = f'<a href="{escape(link)}">{escape(title)}</a>' if link else escape(title)
    return f"<{tag}>{text}</{tag}>"


def _sub(parent: ET.Element, name: str, text: str = "", **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ATOM}}}{name}", attrs)
    if text:
        element.text = text
    return element


def _rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _public_list(s: Session, name: str) -> MailingList:
    mlist = s.scalar(select(MailingList).where(MailingList.name == name))
    if mlist is None or not mlist.public or mlist.archived_at is not None:
        raise HTTPException(404)
    return mlist


def _sent() -> tuple[ColumnElement[bool], ...]:
    return (Edition.kind == EditionKind.DIGEST, Edition.status == EditionStatus.SENT)


def latest_editions(s: Session, mlists: list[MailingList]) -> dict[int, EditionLink]:
    """The last sent edition of each of `mlists` that has one, by list id: one query
    (the front page shows every public list's)."""
    by_id = {m.id: m for m in mlists}
    last = (select(Edition.list_id, func.max(Edition.number).label("number"))
            .where(*_sent(), Edition.list_id.in_(by_id)).group_by(Edition.list_id)
            .subquery())
    found = s.scalars(select(Edition).join(last, (Edition.list_id == last.c.list_id)
                                           & (Edition.number == last.c.number)))
    return {e.list_id: EditionLink(
        number=e.number, subject=e.subject or f"No. {e.number}",
        sent=_date(e.sent_at, by_id[e.list_id]),
        url=f"/archive/{by_id[e.list_id].name}/{e.number}") for e in found}


def _editions(s: Session, mlist: MailingList, *, limit: int, offset: int,
              with_items: bool = False) -> list[Edition]:
    """The list's sent editions, newest first; `with_items` loads every edition's items
    in one more query (the feed shows them), not one query per edition."""
    query = (select(Edition).where(*_sent(), Edition.list_id == mlist.id)
             .order_by(Edition.number.desc()).limit(limit).offset(offset))
    if with_items:
        query = query.options(selectinload(Edition.items))
    return list(s.scalars(query))


def _number(text: str) -> int:
    """A positive whole number from the URL, or 404 (not FastAPI's JSON 422)."""
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise HTTPException(404)
    return int(text)


def _date(when: dt.datetime | None, mlist: MailingList) -> str:
    """The day `when` fell on in the list's timezone: "27 November 2026"."""
    if when is None:
        return ""
    try:
        zone = zoneinfo.ZoneInfo(mlist.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        zone = zoneinfo.ZoneInfo("UTC")
    return format_date(when.astimezone(zone).date(), "en")
