"""A list's next edition: finding it, the articles proposed for it, changing its items."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.editions import (
    EditionRules,
    build_edition,
    default_subject,
    edition_window,
    headline,
    item_from_article,
    item_from_story,
    lock_edition,
    new_draft,
    next_since,
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
from digest.stories import Story, archived, new_stories
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
    """A story new to the list that is in no edition of the list yet (see
    `digest.stories`): told by one article, perhaps from several sources."""

    article_id: int
    title: str
    link: str
    summary: str  # the first 400 characters
    image_url: str
    source_title: str  # every source that has it, "Yonhap · The Korea Herald"
    author: str
    language: str
    published_at: dt.datetime  # when first seen, for an undated article
    dated: bool  # False: the feed gave no date


def proposals(s: Session, edition: Edition | None, mlist: MailingList, *,
              now: dt.datetime, rules: EditionRules,
              limit: int = PROPOSALS_MAX) -> list[Proposal]:
    """Stories the editor could add, newest first: new to the list since the window of
    `edition` began (or, with no edition, since the last one sent) up to `now`, by the
    rules an edition is built by (`digest.stories`: late arrivals in, a new source's
    archive and undated first-fetch items out, twins as one), and in no edition of
    this list, `edition` included."""
    return [_proposal(story) for story in new_stories_for(s, edition, mlist, now, rules)
            [:limit]]


def new_stories_for(s: Session, edition: Edition | None, mlist: MailingList,
                    now: dt.datetime, rules: EditionRules) -> list[Story]:
    """The stories new to the list in the window of `edition` (else of the next one)."""
    since = edition.since if edition is not None else next_since(s, mlist, now, rules)
    return new_stories(s, mlist, edition_window(s, mlist, since, now, rules))


@dataclass(frozen=True)
class Tally:
    """What an edition holds of the news, as the CLI and the desk say it."""

    full: int  # items told in full
    brief: int  # items in the "also new" list
    held: int = 0  # no room for them ([edition] brief_max): the next edition takes them
    waiting: int = 0  # new stories the editor left out: proposals, not mailed unless added
    later: int = 0  # first seen after it was built: the next edition takes them
    old: int = 0  # first seen for it but dated before [edition] late_hours: old news

    @property
    def new(self) -> int:
        return self.full + self.brief + self.held + self.waiting + self.later

    def __str__(self) -> str:
        text = (f"{_n(self.full + self.brief, 'article')}: {self.full} in full, "
                f"{self.brief} in brief")
        if self.held:
            text += (f"; {_n(self.held, 'more new article')} held over for the next "
                     "edition (no room: [edition] brief_max, html_max_kb)")
        if self.waiting:
            text += (f"; {_n(self.waiting, 'new article')} left out: proposed on the desk, "
                     "not mailed unless added")
        if self.later:
            text += f"; {_n(self.later, 'article')} new since it was built, for the next edition"
        if self.old:
            text += (f"; {_n(self.old, 'article')} dated more than [edition] late_hours "
                     "before the last edition left out as old news (a new source's archive)")
        return text


def tally(s: Session, edition: Edition, mlist: MailingList, *, now: dt.datetime,
          rules: EditionRules) -> Tally:
    """How many of `edition`'s items are in full and in brief, how many stories it holds
    over, how many it left out as old news, and (only while it can change) how many new
    stories are outside it: left out by the editor, or first seen after it was built."""
    brief = sum(i.brief for i in edition.items)
    inside = {i.article_id for i in edition.items}
    held = set(edition.held or ()) - inside
    waiting = later = 0
    if edition.status in EDITABLE:
        for story in new_stories_for(s, edition, mlist, now, rules):
            if story.article.id in held:
                continue
            if story.article.first_seen_at > edition.cutoff:
                later += 1
            else:
                waiting += 1
    old = archived(s, mlist, edition_window(s, mlist, edition.since, edition.cutoff, rules))
    return Tally(len(edition.items) - brief, brief, len(held), waiting, later, old)


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _proposal(story: Story) -> Proposal:
    a = story.article
    return Proposal(a.id, headline(a), a.link, a.summary[:400], a.image_url,
                    story.sources, a.author, a.language, story.when, a.date_from_feed)


# -- changing the items -------------------------------------------------------------------


def add_article(s: Session, edition: Edition, article_id: int, *,
                rules: EditionRules) -> EditionItem:
    """Append article `article_id` (one of the list's proposals) to the edition."""
    with changing(s, edition) as edition:
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
        mlist = s.get_one(MailingList, edition.list_id)
        until = max(edition.cutoff, article.first_seen_at)
        story = next((t for t in new_stories_for(s, edition, mlist, until, rules)
                      if t.article.id == article_id), None)
        if story is not None:  # as proposed: naming every source that has it
            item = item_from_story(story, next_position(edition), rules.summary_chars)
        else:
            item = item_from_article(article, next_position(edition),
                                     source_label(s.get_one(Source, article.source_id)),
                                     rules.summary_chars)
        edition.items.append(item)
        s.flush()
        return item


def drop_item(s: Session, edition: Edition, item_id: int) -> EditionItem:
    """Take an item out of the edition; its article becomes a proposal again."""
    with changing(s, edition) as edition:
        item = _item(edition, item_id)
        edition.items.remove(item)  # deleted first: another item may need its position
        s.flush()
        _renumber(s, edition, _ordered(edition))
        return item


def pin_item(s: Session, edition: Edition, item_id: int, pinned: bool) -> EditionItem:
    """Pin an item (it moves to the end of the pinned items, which lead the edition, and
    is told in full) or unpin it (it moves to the head of the others in full)."""
    with changing(s, edition) as edition:
        item = _item(edition, item_id)
        item.pinned = pinned
        if pinned:
            item.brief = False
        _renumber(s, edition, _ordered(edition, moved=item, last=pinned))
        return item


def brief_item(s: Session, edition: Edition, item_id: int, brief: bool) -> EditionItem:
    """Put an item in the compact "also new" list (headline and link; it moves to the
    head of that list) or tell it in full (it moves to the end of the full items). A
    pinned item is told in full: putting it in brief unpins it."""
    with changing(s, edition) as edition:
        item = _item(edition, item_id)
        item.brief = brief
        if brief:
            item.pinned = False
        _renumber(s, edition, _ordered(edition, moved=item, last=not brief))
        return item


def move_item(s: Session, edition: Edition, item_id: int, *, to: int) -> int:
    """Move an item to index `to` (0 is the top), kept inside its group: pinned items,
    then the others in full, then those in brief. Returns the index it ended at."""
    with changing(s, edition) as edition:
        item = _item(edition, item_id)
        order = _ordered(edition)
        order.remove(item)
        group = _group(item)
        low = sum(_group(i) < group for i in order)
        high = low + sum(_group(i) == group for i in order)
        index = min(max(to, low), high)
        order.insert(index, item)
        _renumber(s, edition, order)
        return index


def edit_item(s: Session, edition: Edition, item_id: int, *, title: str | None = None,
              summary: str | None = None, note: str | None = None) -> EditionItem:
    """Change an item's headline, blurb or editor's note (plain text; None keeps it)."""
    with changing(s, edition) as edition:
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
    """The edition locked and reread (`editions.lock_edition`, as `start_sending` locks
    it), if it may still change; InvalidInput if it is being sent or went out. Held to
    the commit, the lock makes a send that starts meanwhile wait for this change and
    mail it; a change that comes while a send starts waits, and is refused here."""
    edition = lock_edition(s, edition.id)
    if edition.status not in EDITABLE:
        state = {EditionStatus.SENDING: "is already being sent",
                 EditionStatus.SENT: "was sent already"}.get(
                     edition.status, f"is {edition.status}")
        raise InvalidInput(f"edition #{edition.number} {state}; nothing changed. The next "
                           "edition is drafted once it has gone out")
    return edition


@contextmanager
def changing(s: Session, edition: Edition) -> Iterator[Edition]:
    """The edition made `editable`, for a change to its items; after the change, a
    subject digest wrote ("<list title>: <lead headline>", `editions.default_subject`)
    follows the lead story when the change gave it another headline (edited) or made
    another story lead (dropped, moved, pinned, told in brief), so the subject never
    names a headline that is no longer in the mail. A subject an editor wrote is kept:
    it is one that is not the default for the lead as it was."""
    edition = editable(s, edition)
    before = _lead_title(edition)
    yield edition
    after = _lead_title(edition)
    if after is None or after == before:
        return
    mlist = s.get_one(MailingList, edition.list_id)
    # An empty draft (an editor's first article to come) has no subject yet.
    ours = default_subject(mlist, before) if before is not None else ""
    if edition.subject in ("", ours):
        edition.subject = default_subject(mlist, after)
        s.flush()


def _lead_title(edition: Edition) -> str | None:
    """The headline of the story the edition leads with (None when it has none)."""
    order = _ordered(edition)
    return order[0].title if order else None


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


def _group(item: EditionItem) -> int:
    """0 pinned, 1 in full, 2 in brief: the order of the groups in an edition."""
    return 0 if item.pinned else 2 if item.brief else 1


def _ordered(edition: Edition, moved: EditionItem | None = None, *,
             last: bool = False) -> list[EditionItem]:
    """Pinned items first, then the others in full, then those in brief, each group by
    position; `moved` goes to the head of its group, or to its end if `last`."""
    order = sorted(edition.items, key=lambda i: (_group(i), i.position))
    if moved is None:
        return order
    order.remove(moved)
    group = _group(moved)
    order.insert(sum(_group(i) < group or (last and _group(i) == group) for i in order),
                 moved)
    return order


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
