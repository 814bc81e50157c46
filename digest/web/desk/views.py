"""What the desk's templates are given, built from the database in a few queries.

The draft page must stay fast with 200 proposed articles: the items come in one query,
the proposals in two (articles, then the list's sources). The edition is rendered as
email once per page, to say how large its HTML part is (`mailsize.html_bytes`, as
sending measures it: 0.1 to 0.5 s); a caller that has just measured it passes the size.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from fastapi.responses import HTMLResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest import curate
from digest.app import App
from digest.cron import list_trigger, next_runs
from digest.deliver import ledger
from digest.editions import article_languages, item_language, last_sent
from digest.errors import InvalidInput, NotFound
from digest.mailsize import html_bytes, kb
from digest.models import (
    Article,
    Edition,
    EditionItem,
    EditionKind,
    EditionStatus,
    ListSource,
)
from digest.publication import REVIEW
from digest.render import other_language
from digest.users import UserView
from digest.web.desk.done import (
    NO_NOTICE,
    NO_REFUSAL,
    NOT_STALE,
    NOTHING_DONE,
    Done,
    Notice,
    Refusal,
    Stale,
    gone,
    refused,
    told,
)
from digest.web.pages import Page, Pages, WebSession, sentence
from subscribers.lists import all_lists, get_list
from subscribers.models import MailingList

# The site's policy, plus pictures from the articles' sites: thumbnails are hotlinked.
DESK_CSP = ("default-src 'none'; style-src 'self'; img-src 'self' https: data:; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")

OPEN = (EditionStatus.DRAFT, EditionStatus.APPROVED, EditionStatus.SENDING)
STATUS_LABELS = {EditionStatus.DRAFT: "Draft", EditionStatus.APPROVED: "Approved",
                 EditionStatus.SENDING: "Being sent"}

@dataclass(frozen=True)
class ListRow:
    """One list on the desk's front page."""

    name: str
    title: str
    language: str
    mode: str
    state: str  # "Draft #4, 12 articles", "No draft", ...
    scheduled: str  # local time, or ""
    last_sent: str  # local date of the last edition sent, or ""


@dataclass(frozen=True, kw_only=True)
class DeskHome(Page):
    """web/desk/home.html"""

    lists: list[ListRow]


@dataclass(frozen=True)
class ItemView:
    id: int
    number: int  # 1-based, as the reader sees the order
    title: str
    summary: str
    note: str
    link: str
    image_url: str
    source_title: str
    age: str
    pinned: bool
    brief: bool  # in the "also new" list: headline and link
    can_up: bool
    can_down: bool
    by_url: bool  # added by URL, not from a feed
    language: str = ""  # its article's, when not the list's ("" for the list's or unknown)
    article_id: int | None = None  # None for one added by URL


@dataclass(frozen=True)
class ProposalView:
    article_id: int
    title: str
    link: str
    image_url: str
    source_title: str
    language: str
    age: str  # "3 h ago"; "undated, found 3 h ago" when the feed gave no date


@dataclass(frozen=True, kw_only=True)
class DraftPage(Page):
    """web/desk/draft.html: the list's next edition (None: no draft yet)."""

    list_name: str
    list_title: str
    list_language: str
    timezone: str
    review_mode: bool
    number: int  # 0 without an edition
    status: str  # draft | approved | sending | ""
    status_label: str
    editable: bool
    subject: str
    intro: str
    scheduled: str  # local, readable; "" when not scheduled
    schedule_value: str  # for <input type=datetime-local>: the edition's time or the next cron
    items: list[ItemView]  # told in full, pinned ones first
    brief_items: list[ItemView]  # the "also new" list
    tally: str  # "25 articles: 20 in full, 5 in brief; ..." ("" without an edition)
    proposals: list[ProposalView]
    progress: dict[str, int]  # deliveries per status while sending
    last_sent: str
    user_email: str
    size: str = ""  # the HTML part as it goes out, "79 KB" ("" without articles)
    limit: str = ""  # [edition] html_max_kb, "100 KB"
    over: bool = False  # over the limit: it will not be sent as it stands
    notice: Notice = NO_NOTICE
    error: Notice = NO_NOTICE  # a refusal, or a stale button's redirect (done.py)
    invalid: str = ""  # the id of the field the error is about ("title-7", "url")
    field_error: str = ""  # what is wrong with it, next to it
    typed: dict[str, str] = field(default_factory=dict)  # a refused form's fields, by id
    focus: str = ""  # the id of the element with `autofocus` (done.py): one per page
    limits: dict[str, int] = field(default_factory=lambda: {
        "title": curate.TITLE_MAX, "summary": curate.SUMMARY_MAX, "note": curate.NOTE_MAX,
        "subject": curate.SUBJECT_MAX, "intro": curate.INTRO_MAX})


def desk_home(s: Session, now: dt.datetime) -> DeskHome:
    """Every active list with the state of its next edition: four queries in all."""
    lists = all_lists(s)
    open_editions = {e.list_id: e for e in s.scalars(
        select(Edition).where(Edition.kind == EditionKind.DIGEST, Edition.status.in_(OPEN))
        .order_by(Edition.number))}  # the newest open edition of a list wins
    counts: dict[int, int] = {edition_id: n for edition_id, n in s.execute(
        select(EditionItem.edition_id, func.count()).where(
            EditionItem.edition_id.in_([e.id for e in open_editions.values()]))
        .group_by(EditionItem.edition_id))}
    sent: dict[int, dt.datetime | None] = {list_id: at for list_id, at in s.execute(
        select(Edition.list_id, func.max(Edition.sent_at))
        .where(Edition.kind == EditionKind.DIGEST).group_by(Edition.list_id))}
    rows = []
    for mlist in lists:
        zone = _zone(mlist)
        edition = open_editions.get(mlist.id)
        state = "No draft"
        if edition is not None:
            n = counts.get(edition.id, 0)
            state = (f"{STATUS_LABELS[edition.status]} #{edition.number}, "
                     f"{n} article{'' if n == 1 else 's'}")
        scheduled = edition.scheduled_for if edition is not None else None
        last = sent.get(mlist.id)
        rows.append(ListRow(
            mlist.name, mlist.title, mlist.language, mlist.mode, state,
            local(scheduled, zone) if scheduled else "",
            local(last, zone) if last else ""))
    return DeskHome(title="Desk", lists=rows)


def draft_page(app: App, s: Session, mlist: MailingList, user: UserView, *,
               notice: str = "", error: Refusal = NO_REFUSAL, stale: Stale = NOT_STALE,
               size: int | None = None, done: Done = NOTHING_DONE) -> DraftPage:
    """The desk of one list: its open edition (if any), how large its HTML part is
    (`size` in bytes when the caller has just measured it; else it is rendered once),
    and the proposed articles; saying `notice`, or what `done` was, or why a form was
    refused (`error`, with its field and what was typed) or a button was stale, and
    where the focus goes: the error, else the control that was used, else the notice.
    A page with an error has a title starting "Error: ", as the console's have."""
    now = app.clock()
    zone = _zone(mlist)
    edition = curate.current_edition(s, mlist)
    items = _items(s, edition, mlist, now) if edition is not None else []
    editable = edition is not None and edition.status in curate.EDITABLE
    rules = app.edition_rules()
    proposals = [
        ProposalView(p.article_id, p.title, p.link, p.image_url, p.source_title,
                     p.language, age(p.published_at, now, dated=p.dated))
        for p in curate.proposals(s, edition, mlist, now=now, rules=rules)
    ] if edition is None or editable else []
    previous = last_sent(s, mlist)
    scheduled = edition.scheduled_for if edition is not None else None
    if edition is not None and edition.items and size is None:
        size = mail_size(app, edition, mlist)
    limit = size_limit(app)
    said, focus = told(done, items, proposals)
    if notice:
        said, focus = Notice(notice), "notice"
    if stale.code == "changed" and edition is None:  # gone too since the redirect
        stale = Stale("closed", stale.article)
    wrong = refused(error, items) if error.reason else gone(
        stale, _headline(s, mlist, stale.article), edition.number if edition else 0)
    if wrong.text or wrong.title:
        focus = "error"
    return DraftPage(
        title=f"{'Error: ' if focus == 'error' else ''}{mlist.title}: desk",
        list_name=mlist.name, list_title=mlist.title,
        list_language=mlist.language, timezone=zone.key, review_mode=mlist.mode == REVIEW,
        number=edition.number if edition else 0, status=edition.status if edition else "",
        status_label=STATUS_LABELS.get(edition.status, "") if edition else "",
        editable=editable, subject=edition.subject if edition else "",
        intro=edition.intro if edition else "",
        scheduled=local(scheduled, zone) if scheduled else "",
        schedule_value=_schedule_value(mlist, scheduled, now),
        items=[i for i in items if not i.brief], brief_items=[i for i in items if i.brief],
        tally=(str(curate.tally(s, edition, mlist, now=now, rules=rules))
               if edition is not None else ""),
        proposals=proposals,
        progress=(ledger.status_counts(s, edition.id)
                  if edition is not None and edition.status == EditionStatus.SENDING else {}),
        last_sent=(f"#{previous.number}, {local(previous.sent_at or previous.cutoff, zone)}"
                   if previous else ""),
        user_email=user.email, notice=said, error=wrong, focus=focus,
        invalid=error.field if focus == "error" else "", typed=error.typed,
        field_error=sentence(error.reason) if error.field else "",
        size=kb(size) if size is not None else "", limit=kb(limit),
        over=size is not None and size > limit,
    )


def mail_size(app: App, edition: Edition, mlist: MailingList) -> int:
    """The edition's HTML part in bytes, as it goes out (`mailsize.html_bytes`, the
    measure of `App.fit` and of sending's check): rendered now for a draft."""
    return html_bytes(app.render(edition, mlist))


def size_limit(app: App) -> int:
    """`[edition] html_max_kb` in bytes."""
    return int(app.settings["edition.html_max_kb"] * 1024)


def _items(s: Session, edition: Edition, mlist: MailingList,
           now: dt.datetime) -> list[ItemView]:
    items = list(edition.items)  # ordered by position: pinned, in full, in brief
    languages = article_languages(s, (i.article_id for i in items
                                      if i.article_id is not None))
    groups = [(not i.pinned) + i.brief for i in items]
    views = []
    for index, i in enumerate(items):
        first, last = groups.index(groups[index]), _last(groups, groups[index])
        views.append(ItemView(
            id=i.id, number=index + 1, title=i.title, summary=i.summary, note=i.note,
            link=i.link, image_url=i.image_url, source_title=i.source_title,
            age=age(i.published_at, now, dated=i.dated), pinned=i.pinned, brief=i.brief,
            can_up=index > first, can_down=index < last, by_url=i.article_id is None,
            language=other_language(item_language(i, languages), mlist.language),
            article_id=i.article_id))
    return views


def _headline(s: Session, mlist: MailingList,
              article_id: int | None) -> tuple[str, str] | None:
    """One of the list's articles' headline and language ("" for the list's), to name it
    in a message; None when it is not one (gone, or a number from an edited link)."""
    if article_id is None:
        return None
    row = s.execute(select(Article.title, Article.language).join(
        ListSource, ListSource.source_id == Article.source_id).where(
        Article.id == article_id, ListSource.list_id == mlist.id)).first()
    if row is None:
        return None
    return row.title, other_language(row.language, mlist.language)




def _last(groups: list[int], group: int) -> int:
    return len(groups) - 1 - groups[::-1].index(group)


def age(when: dt.datetime, now: dt.datetime, *, dated: bool = True) -> str:
    """"12 min ago", "3 h ago", "2 days ago"; for an article its feed gave no date
    (`when` is when it was first seen), "undated, found 3 h ago"."""
    minutes = int((now - when).total_seconds() // 60)
    if minutes < 1:
        text = "just now"
    elif minutes < 60:
        text = f"{minutes} min ago"
    elif minutes < 48 * 60:
        text = f"{minutes // 60} h ago"
    else:
        text = f"{minutes // (24 * 60)} days ago"
    return text if dated else f"undated, found {text}"


def local(when: dt.datetime, zone: ZoneInfo) -> str:
    """"Fri 27 Nov 2026, 15:00 (Asia/Seoul)": not strftime's %d, which pads with 0."""
    t = when.astimezone(zone)
    return f"{t:%a} {t.day} {t:%b %Y, %H:%M} ({zone.key})"


def parse_local(value: str, mlist: MailingList) -> dt.datetime:
    """A <input type=datetime-local> value ("2026-11-28T07:00") in the list's timezone,
    as an aware datetime. InvalidInput when it is not one."""
    try:
        naive = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(f"{value[:40]!r} is not a date and time; give one like "
                           "2026-11-28 07:00") from None
    if naive.tzinfo is not None:
        return naive
    return naive.replace(tzinfo=_zone(mlist))


def _schedule_value(mlist: MailingList, scheduled: dt.datetime | None,
                    now: dt.datetime) -> str:
    when = scheduled
    if when is None:
        try:
            upcoming = next_runs(list_trigger(mlist.schedule, mlist.timezone), now, 1)
        except InvalidInput:
            upcoming = []
        when = upcoming[0] if upcoming else now + dt.timedelta(hours=1)
    return f"{when.astimezone(_zone(mlist)):%Y-%m-%dT%H:%M}"


def _zone(mlist: MailingList) -> ZoneInfo:
    try:
        return ZoneInfo(mlist.timezone or "UTC")
    except (KeyError, ValueError, OSError):  # checked when set; kept safe here anyway
        return ZoneInfo("UTC")


def render(pages: Pages, viewer: WebSession, name: str, page: Page, *,
           status: int = 200) -> HTMLResponse:
    """A desk page: private, with the desk's CSP."""
    return pages.render(name, page, viewer=viewer, status=status,
                        headers={"Content-Security-Policy": DESK_CSP})


def render_draft(app: App, pages: Pages, viewer: WebSession, user: UserView, list_name: str,
                 *, status: int = 200, notice: str = "", error: str | Refusal = "",
                 stale: Stale = NOT_STALE, size: int | None = None,
                 done: Done = NOTHING_DONE) -> HTMLResponse:
    """The draft page of `list_name`, or the 404 page for a list that does not exist;
    `size`, the edition's HTML part when the caller has just measured it; `error`, why
    a form was refused (a `Refusal` says which item and field, and what was typed)."""
    if isinstance(error, str):
        error = Refusal(error)
    with app.sessions() as s:
        try:
            mlist = get_list(s, list_name)
        except NotFound as exc:
            return list_not_found(pages, exc)
        page = draft_page(app, s, mlist, user, notice=notice, error=error, stale=stale,
                          size=size, done=done)
    return render(pages, viewer, "web/desk/draft.html", page, status=status)


def list_not_found(pages: Pages, exc: NotFound) -> HTMLResponse:
    return pages.message(404, "List not found", str(exc), private=True)
