"""A list's next edition: finding it, the articles proposed for it, changing its items."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.editions import (
    EditionRules,
    build_edition,
    item_from_article,
    last_sent,
    new_draft,
    open_edition,
)
from digest.errors import InvalidInput, NotFound
from digest.gather.sources import source_label
from digest.models import (
    Article,
    Edition,
    EditionItem,
    EditionKind,
    EditionStatus,
    ListSource,
    Source,
)
from subscribers.lists import require_active
from subscribers.models import MailingList

EDITABLE = (EditionStatus.DRAFT, EditionStatus.APPROVED)
TITLE_MAX, SUMMARY_MAX, NOTE_MAX = 300, 2000, 2000
SUBJECT_MAX, INTRO_MAX = 200, 5000
PROPOSALS_MAX = 200
# Controls but tab and newline: nothing an editor types on purpose.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


# -- finding the edition -----------------------------------------------------------------


def current_edition(s: Session, mlist: MailingList) -> Edition | None:
    """The list's next edition as it stands (draft, approved or sending), or None."""
    return open_edition(s, mlist)


def draft_for(s: Session, mlist: MailingList, *, now: dt.datetime,
              rules: EditionRules) -> Edition | None:
    """The list's open edition, or a new draft of the articles since the last edition
    (None when there are none). An archived list raises InvalidInput."""
    return build_edition(s, mlist, now=now, rules=rules)[0]


def get_edition(s: Session, mlist: MailingList, number: int) -> Edition:
    """Edition `number` of the list; NotFound otherwise."""
    edition = s.scalar(select(Edition).where(Edition.list_id == mlist.id,
                                             Edition.kind == EditionKind.DIGEST,
                                             Edition.number == number))
    if edition is None:
        raise NotFound(f"list {mlist.name!r} has no edition #{number}; the desk shows "
                       "its current one")
    return edition


# -- what could go in ---------------------------------------------------------------------


@dataclass(frozen=True)
class Proposal:
    """An article of the list's sources that is in no edition of the list yet."""

    article_id: int
    title: str
    link: str
    summary: str  # the first 400 characters
    image_url: str
    source_title: str
    author: str
    language: str
    published_at: dt.datetime


def proposals(s: Session, edition: Edition | None, mlist: MailingList, *,
              now: dt.datetime, limit: int = PROPOSALS_MAX) -> list[Proposal]:
    """Articles the editor could add, newest first: published since the window of
    `edition` began (or, with no edition, since the last one sent) up to `now`, in no
    edition of this list, and not linked from `edition` already. Two queries."""
    if edition is not None:
        since = edition.since
    else:
        previous = last_sent(s, mlist)
        since = previous.cutoff if previous else now - dt.timedelta(days=1)
    used = (select(EditionItem.article_id)
            .join(Edition, Edition.id == EditionItem.edition_id)
            .where(Edition.list_id == mlist.id, EditionItem.article_id.is_not(None)))
    rows = s.execute(
        select(Article.id, Article.title, Article.link, func.substr(Article.summary, 1, 400),
               Article.image_url, Article.source_id, Article.author, Article.language,
               Article.published_at)
        .join(ListSource, ListSource.source_id == Article.source_id)
        .where(ListSource.list_id == mlist.id, Article.published_at > since,
               Article.published_at <= now, Article.id.not_in(used))
        .order_by(Article.published_at.desc(), Article.id.desc())
        .limit(limit)
    ).all()
    labels = {src.id: source_label(src) for src in s.scalars(
        select(Source).join(ListSource, ListSource.source_id == Source.id)
        .where(ListSource.list_id == mlist.id))}
    taken = {i.link for i in edition.items} if edition is not None else set()
    return [Proposal(aid, title or link, link, summary or "", image, labels.get(sid, ""),
                     author, language, published)
            for aid, title, link, summary, image, sid, author, language, published in rows
            if link not in taken]


# -- changing the items -------------------------------------------------------------------


def add_article(s: Session, edition: Edition, article_id: int, *,
                rules: EditionRules) -> EditionItem:
    """Append article `article_id` (one of the list's proposals) to the edition."""
    edition = editable(s, edition)
    article = s.get(Article, article_id)
    feeds_list = article is not None and s.get(
        ListSource, (edition.list_id, article.source_id)) is not None
    if article is None or not feeds_list:
        raise NotFound(f"article {article_id} is not one of this list's articles; "
                       "pick one from the proposals")
    where = s.scalar(select(Edition.number).join(EditionItem).where(
        Edition.list_id == edition.list_id, EditionItem.article_id == article_id))
    if where is not None:
        raise InvalidInput(f"{article.title!r} is already in edition #{where}")
    source = s.get_one(Source, article.source_id)
    item = item_from_article(article, next_position(edition), source_label(source),
                             rules.summary_chars)
    edition.items.append(item)
    s.flush()
    return item


def drop_item(s: Session, edition: Edition, item_id: int) -> EditionItem:
    """Take an item out of the edition; its article becomes a proposal again."""
    edition = editable(s, edition)
    item = _item(edition, item_id)
    edition.items.remove(item)  # deleted first: another item may need its position
    s.flush()
    _renumber(s, edition, _ordered(edition))
    return item


def pin_item(s: Session, edition: Edition, item_id: int, pinned: bool) -> EditionItem:
    """Pin an item (it moves to the end of the pinned items, which lead the edition) or
    unpin it (it moves to the head of the others)."""
    edition = editable(s, edition)
    item = _item(edition, item_id)
    item.pinned = pinned
    _renumber(s, edition, _ordered(edition, moved=item))
    return item


def move_item(s: Session, edition: Edition, item_id: int, *, to: int) -> int:
    """Move an item to index `to` (0 is the top), kept inside its group: an unpinned
    item cannot go above a pinned one. Returns the index it ended at."""
    edition = editable(s, edition)
    item = _item(edition, item_id)
    order = _ordered(edition)
    order.remove(item)
    pinned = sum(i.pinned for i in order)
    low, high = (0, pinned) if item.pinned else (pinned, len(order))
    index = min(max(to, low), high)
    order.insert(index, item)
    _renumber(s, edition, order)
    return index


def edit_item(s: Session, edition: Edition, item_id: int, *, title: str | None = None,
              summary: str | None = None, note: str | None = None) -> EditionItem:
    """Change an item's headline, blurb or editor's note (plain text; None keeps it)."""
    edition = editable(s, edition)
    item = _item(edition, item_id)
    if title is not None:
        title = clean_text(title, TITLE_MAX, "the headline", one_line=True)
        if not title:
            raise InvalidInput("the headline cannot be empty; drop the article instead")
        item.title = title
    if summary is not None:
        item.summary = clean_text(summary, SUMMARY_MAX, "the blurb")
    if note is not None:
        item.note = clean_text(note, NOTE_MAX, "the note")
    s.flush()
    return item


def set_intro(s: Session, edition: Edition, intro: str, subject: str | None = None) -> None:
    """Set the edition's introduction (plain text, paragraphs at blank lines) and,
    when given, its subject line."""
    edition = editable(s, edition)
    intro = clean_text(intro, INTRO_MAX, "the introduction")
    if subject is not None:
        subject = clean_text(subject, SUBJECT_MAX, "the subject", one_line=True)
        if not subject:
            raise InvalidInput("the subject cannot be empty")
        edition.subject = subject
    edition.intro = intro
    s.flush()


# -- shared by the modules of digest.curate ------------------------------------------------


def editable(s: Session, edition: Edition) -> Edition:
    """The edition reread and locked (FOR UPDATE on PostgreSQL), if it may still change."""
    edition = s.get_one(Edition, edition.id, with_for_update=True, populate_existing=True)
    if edition.status not in EDITABLE:
        state = ("is being sent" if edition.status == EditionStatus.SENDING
                 else f"is {edition.status}")
        raise InvalidInput(f"edition #{edition.number} {state} and can no longer be changed; "
                           "the next edition is drafted once it has gone out")
    return edition


def next_position(edition: Edition) -> int:
    """The position after the last item."""
    return max((i.position for i in edition.items), default=-1) + 1


def empty_draft(s: Session, mlist: MailingList, now: dt.datetime,
                rules: EditionRules) -> Edition:
    """A new draft without items, for an editor who adds the first article by hand."""
    require_active(mlist)
    edition = new_draft(s, mlist, now, rules)
    s.add(edition)
    s.flush()
    return edition


def clean_text(value: str, limit: int, what: str, *, one_line: bool = False) -> str:
    """An editor's plain text: controls removed, trimmed, one line if asked, at most
    `limit` characters (InvalidInput beyond)."""
    text = _CONTROLS.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))
    text = " ".join(text.split()) if one_line else text.strip()
    if len(text) > limit:
        raise InvalidInput(f"{what} has {len(text)} characters; keep it to {limit}")
    return text


def _item(edition: Edition, item_id: int) -> EditionItem:
    for item in edition.items:
        if item.id == item_id:
            return item
    raise NotFound(f"item {item_id} is not in edition #{edition.number}; reload the desk")


def _ordered(edition: Edition, moved: EditionItem | None = None) -> list[EditionItem]:
    """Pinned items first, each group by position; `moved` goes to the seam."""
    order = sorted(edition.items, key=lambda i: i.position)
    pinned = [i for i in order if i.pinned and i is not moved]
    rest = [i for i in order if not i.pinned and i is not moved]
    if moved is None:
        return pinned + rest
    return [*pinned, moved, *rest]


def _renumber(s: Session, edition: Edition, order: list[EditionItem]) -> None:
    """Positions 0..n-1 in `order`. Through negative numbers first: (edition, position)
    is unique, and rows are updated one by one."""
    for index, item in enumerate(order):
        item.position = -1 - index
    s.flush()
    for index, item in enumerate(order):
        item.position = index
    s.flush()
    s.expire(edition, ["items"])  # the collection reloads in the new order
