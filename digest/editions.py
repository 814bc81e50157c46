"""Choosing the articles for the next edition, and the edition's render context.

Building is pure over the database: it reads articles and writes one edition with its
items, nothing else. Items are copies, so a later change to an article never changes
an edition that went out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session

from digest.errors import NotReady
from digest.gather.images import image_alt
from digest.gather.language import infer_language
from digest.gather.links import link_key
from digest.models import (
    Article,
    Edition,
    EditionItem,
    EditionKind,
    EditionStatus,
    ListSource,
    Source,
)
from digest.render import HEADLINE_MAX, DigestContext, ItemContext, Rendered, mail_link
from digest.stories import Story, Window, new_stories, window
from subscribers.lists import require_active
from subscribers.models import MailingList

OPEN_STATUSES = (EditionStatus.DRAFT, EditionStatus.APPROVED, EditionStatus.SENDING)


@dataclass(frozen=True)
class EditionRules:
    """How an edition is chosen: from `[edition]` settings."""

    window_hours: int = 24
    max_items: int = 20
    summary_chars: int = 320
    late_hours: int = 48
    brief_max: int = 100


def open_edition(s: Session, mlist: MailingList) -> Edition | None:
    """The list's edition that is drafted or sending and not finished, if any."""
    return s.scalar(
        select(Edition)
        .where(Edition.list_id == mlist.id, Edition.kind == EditionKind.DIGEST,
               Edition.status.in_(OPEN_STATUSES))
        .order_by(Edition.number.desc())
        .limit(1)
    )


def lock_edition(s: Session, edition_id: int) -> Edition:
    """The edition reread, with its row held for this transaction: the one lock that an
    editor's change (`curate.editable`) and the start of a send (`start_sending`) both
    take before they read it, so that one waits for the other to commit.

    The lock is a write to the row (an UPDATE that changes nothing), not SELECT … FOR
    UPDATE, which SQLite ignores: on SQLite the write takes the database's write lock
    (waiting up to `[database] timeout` for it), on PostgreSQL the row's lock, and on
    both the reread then sees what the other side committed. Everything the session
    read before is expired (after a flush, so nothing written is lost): it may be stale.
    """
    s.flush()
    s.execute(update(Edition).where(Edition.id == edition_id)
              .values(status=Edition.status),
              execution_options={"synchronize_session": False})
    s.expire_all()
    return s.get_one(Edition, edition_id)


#: Why an edition in each other status cannot start going out.
_GONE = {EditionStatus.SENDING: "is being sent already",
         EditionStatus.SENT: "was sent already", EditionStatus.CANCELLED: "was cancelled"}


def require_sendable(edition: Edition, mlist: MailingList) -> None:
    """May this edition go out? NotReady, saying why and what to do, if not.

    The one rule, asked where sending starts (`deliver.worker.start_sending`, whoever
    calls it: CLI, desk, API, scheduler) and where an edition is cleared to go
    (`curate.approve`, `curate.schedule`): the list is not archived, the edition is a
    draft or approved, and it has at least one article. It is for digests: a list's
    confirmation mailing has no articles and goes out as people sign up.
    """
    if edition.kind != EditionKind.DIGEST:
        return
    which = f"edition #{edition.number} of {mlist.name!r}"
    if mlist.archived_at is not None:
        raise NotReady(f"list {mlist.name!r} is archived, so {which} does not go out; bring "
                       f"the list back with `digest lists archive {mlist.name} --undo`")
    if edition.status not in (EditionStatus.DRAFT, EditionStatus.APPROVED):
        gone = _GONE.get(edition.status, f"is {edition.status}")
        raise NotReady(f"{which} {gone}; the next edition is drafted from newer articles")
    if not edition.items:
        raise NotReady(f"{which} has no articles; add one first (on the desk, "
                       f"/desk/{mlist.name}), or it does not go out")


def why_nothing_new(s: Session, mlist: MailingList, now: dt.datetime,
                    rules: EditionRules) -> str:
    """Why building found nothing for `mlist` at `now`, and what to do: no sources, no
    articles, a first edition's window that the articles' dates fall outside of, or
    nothing gathered since the last edition went out."""
    name = mlist.name
    sources = s.scalar(select(func.count()).where(ListSource.list_id == mlist.id)) or 0
    if not sources:
        return (f"list {name} has no sources; add a feed with "
                f"`digest sources add URL --list {name}`")
    mine = select(ListSource.source_id).where(ListSource.list_id == mlist.id)
    count, backlog, newest, oldest = s.execute(
        select(func.count(), func.count().filter(Article.backlog),
               func.max(Article.published_at).filter(~Article.backlog),
               func.min(Article.published_at).filter(~Article.backlog))
        .where(Article.source_id.in_(mine))
    ).one()
    if not count:
        return (f"its {_plural(sources, 'source')} have brought no articles yet; run "
                "`digest fetch`, and `digest sources ls` to see their health")
    undated = (f"; {_plural(backlog, 'undated article')} from a first fetch "
               f"{'is' if backlog == 1 else 'are'} old news, not offered" if backlog else "")
    previous = last_sent(s, mlist)
    if previous is not None:
        return (f"its {_plural(count, 'article')} went out in edition #{previous.number} or "
                f"before it{undated}; run `digest fetch` to gather new ones")
    if newest is None:
        return f"its {_plural(count, 'article')} are all undated{undated}"
    age = now - newest
    # Hours back to the oldest, so that the window suggested takes every one of them.
    hours = max(rules.window_hours + 1, int((now - oldest).total_seconds() // 3600) + 2)
    return (f"it has {_plural(count, 'article')}, the newest dated "
            f"{newest:%Y-%m-%d %H:%M} UTC ({_age(age)} ago), but a first edition takes only "
            f"those dated in the last {rules.window_hours} hours ([edition] window_hours)"
            f"{undated}. To take older ones, widen the window, e.g. "
            f"`DIGEST_EDITION_WINDOW_HOURS={hours} digest edition build --list {name}`, or "
            "set window_hours under [edition] in the settings file")


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _age(age: dt.timedelta) -> str:
    hours = int(age.total_seconds() // 3600)
    return _plural(hours, "hour") if hours < 48 else _plural(hours // 24, "day")


def last_sent(s: Session, mlist: MailingList) -> Edition | None:
    """The newest edition that went (or is going) out; its cutoff starts the next one."""
    return s.scalar(
        select(Edition)
        .where(Edition.list_id == mlist.id, Edition.kind == EditionKind.DIGEST,
               Edition.status.in_((EditionStatus.SENDING, EditionStatus.SENT)))
        .order_by(Edition.number.desc())
        .limit(1)
    )


def edition_window(s: Session, mlist: MailingList, since: dt.datetime, until: dt.datetime,
                   rules: EditionRules) -> Window:
    """The window of the list's next edition covering (since, until]: with
    `[edition] late_hours` of late arrivals when an edition went out before, and the
    stories it held over (`Edition.held`)."""
    previous = last_sent(s, mlist)
    return window(since, until, first=previous is None, late_hours=rules.late_hours,
                  held=frozenset(previous.held or ()) if previous else frozenset())


def fetches_begun(s: Session, mlist: MailingList, now: dt.datetime) -> dt.datetime:
    """Where an edition built at `now` ends: `now`, or just before the earliest fetch
    of the list's sources still running began. Such a fetch stores its articles as
    first seen when it began, after this edition is built: the next one takes them."""
    begun = s.scalar(
        select(Source.fetch_lease_from)
        .join(ListSource, ListSource.source_id == Source.id)
        .where(ListSource.list_id == mlist.id, Source.fetch_lease_from.is_not(None),
               Source.fetch_lease_until > now)
        .order_by(Source.fetch_lease_from).limit(1))
    if begun is None or begun > now:
        return now
    return begun - dt.timedelta(microseconds=1)


@dataclass(frozen=True)
class Selection:
    """The stories new to a list, as an edition takes them: the first `max_items` in
    full, the next `brief_max` in the "also new" list, the rest `left_out`."""

    full: list[Story]
    brief: list[Story]
    left_out: list[Story]  # held over for the next edition (`Edition.held`)

    @property
    def total(self) -> int:
        return len(self.full) + len(self.brief) + len(self.left_out)


def select_stories(stories: list[Story], rules: EditionRules,
                   held: frozenset[int] = frozenset()) -> Selection:
    """`stories` (newest first) cut into full, brief and left out by `rules`. Stories
    the last edition `held` over lead the "also new" list, then the newest others, so
    a run of full editions cannot hold them over for ever: what waits again is the
    day's own overflow, at the end of the list, where fitting the mail
    (`mailsize.fit_edition`) holds stories over from too."""
    owed = [n for n, t in enumerate(stories) if t.article.id in held]
    fresh = [n for n, t in enumerate(stories) if t.article.id not in held]
    full = set((fresh + owed)[: rules.max_items])
    rest = [n for n in owed + fresh if n not in full]  # owed first
    brief = rest if not rules.brief_max else rest[: rules.brief_max]
    chosen = full | set(brief)
    return Selection([t for n, t in enumerate(stories) if n in full],
                     [stories[n] for n in brief],
                     [t for n, t in enumerate(stories) if n not in chosen])


def build_edition(
    s: Session, mlist: MailingList, *, now: dt.datetime, rules: EditionRules,
    scheduled_for: dt.datetime | None = None,
) -> tuple[Edition | None, bool]:
    """Draft the next edition of `mlist`.

    Returns (edition, created). An edition already open is returned as it is
    (created False), so building twice is harmless; (None, False) means no new articles.
    An archived list gets no new edition (InvalidInput says how to bring it back).
    """
    existing = open_edition(s, mlist)
    if existing is not None:
        return existing, False
    require_active(mlist)
    edition = _draft(s, mlist, now, rules, scheduled_for)
    return edition, edition is not None


def edition_for(s: Session, mlist: MailingList, scheduled_for: dt.datetime) -> Edition | None:
    """The list's edition for one scheduled time, if there is one (at most one can be)."""
    return s.scalar(select(Edition).where(Edition.list_id == mlist.id,
                                          Edition.scheduled_for == scheduled_for))


def waiting_draft(s: Session, mlist: MailingList, before: dt.datetime) -> Edition | None:
    """A digest drafted and not sending, built by hand or for a time before `before`."""
    return s.scalar(
        select(Edition)
        .where(Edition.list_id == mlist.id, Edition.kind == EditionKind.DIGEST,
               Edition.status.in_((EditionStatus.DRAFT, EditionStatus.APPROVED)),
               or_(Edition.scheduled_for.is_(None), Edition.scheduled_for < before))
        .order_by(Edition.number.desc())
        .limit(1)
    )


def build_scheduled(
    s: Session, mlist: MailingList, *, scheduled_for: dt.datetime, now: dt.datetime,
    rules: EditionRules,
) -> Edition | None:
    """The list's edition for `scheduled_for`, made once whoever asks and how often.

    The one there already; else a waiting draft (built by hand, or held from an earlier
    time), which keeps the editors' work and moves to this time; else a new edition.
    None when there are no new articles. An edition still sending from an earlier
    time does not stop a new one. Commits. Two schedulers asking at once meet at the
    unique (list, scheduled_for): the loser rolls back and returns the winner's.
    """
    for _attempt in range(3):  # a lost race on (list, number) with a hand-made build
        existing = edition_for(s, mlist, scheduled_for)
        if existing is not None:
            return existing
        try:
            edition = waiting_draft(s, mlist, scheduled_for)
            if edition is not None:
                edition.scheduled_for = scheduled_for
            else:
                edition = _draft(s, mlist, now, rules, scheduled_for)
            s.commit()
            # None means no articles left: maybe because another scheduler has just
            # built this very edition from them.
            return edition or edition_for(s, mlist, scheduled_for)
        except IntegrityError:
            s.rollback()
    return edition_for(s, mlist, scheduled_for)


def recent_editions(s: Session, mlist: MailingList, limit: int) -> list[Edition]:
    """The list's newest digests, newest first."""
    return list(s.scalars(
        select(Edition).where(Edition.list_id == mlist.id, Edition.kind == EditionKind.DIGEST)
        .order_by(Edition.number.desc()).limit(limit)
    ))


def _draft(s: Session, mlist: MailingList, now: dt.datetime, rules: EditionRules,
           scheduled_for: dt.datetime | None) -> Edition | None:
    """A new draft of the stories new since the last edition that went out (see
    `digest.stories`), None if none: the first `max_items` in full, the next
    `brief_max` in brief, any beyond held over for the next edition. It ends at `now`,
    or before a fetch still running began (`fetches_begun`)."""
    edition = new_draft(s, mlist, now, rules, scheduled_for=scheduled_for)
    edition.cutoff = fetches_begun(s, mlist, now)
    w = edition_window(s, mlist, edition.since, edition.cutoff, rules)
    chosen = select_stories(new_stories(s, mlist, w), rules, w.held)
    if not chosen.full:
        return None
    edition.subject = default_subject(mlist, headline(chosen.full[0].article))
    edition.held = [story.article.id for story in chosen.left_out]
    edition.items = [
        item_from_story(story, i, rules.summary_chars, brief=i >= len(chosen.full))
        for i, story in enumerate(chosen.full + chosen.brief)
    ]
    s.add(edition)
    s.flush()
    return edition


def new_draft(s: Session, mlist: MailingList, now: dt.datetime, rules: EditionRules, *,
              scheduled_for: dt.datetime | None = None) -> Edition:
    """A draft of `mlist` without items or subject, not yet added to the session: the
    one place drafts are numbered (after the list's highest number, so a number is never
    given twice, even after a cancelled edition) and given the time they cover (since
    the last edition that went out, or `[edition] window_hours` for a first one)."""
    number = (s.scalar(select(func.max(Edition.number)).where(Edition.list_id == mlist.id))
              or 0) + 1
    since = next_since(s, mlist, now, rules)
    return Edition(list_id=mlist.id, number=number, status=EditionStatus.DRAFT, since=since,
                   cutoff=now, scheduled_for=scheduled_for, created_at=now, subject="")


def next_since(s: Session, mlist: MailingList, now: dt.datetime,
               rules: EditionRules) -> dt.datetime:
    """Where the list's next edition begins: the cutoff of the last edition that went
    out, or `[edition] window_hours` before `now` for a first one."""
    previous = last_sent(s, mlist)
    return previous.cutoff if previous else now - dt.timedelta(hours=rules.window_hours)


def item_from_story(story: Story, position: int, chars: int, *,
                    brief: bool = False) -> EditionItem:
    """An edition item told by the story's article, naming all its sources, and linking
    to its page over https when a twin links to the same page so (`secure_link`)."""
    item = item_from_article(story.article, position, story.sources, chars)
    item.link = secure_link(story)
    item.brief = brief
    return item


def secure_link(story: Story) -> str:
    """The teller's link, or a twin's link to the same page (`link_key`) over https when
    the teller's is plain http: a reader should not be sent over http to a page its
    site serves over https."""
    link = story.article.link
    if not link.lower().startswith("http://"):
        return link
    key = link_key(link)
    if not key:
        return link
    return next((t.link for t in story.twins
                 if t.link.lower().startswith("https://") and link_key(t.link) == key), link)


#: An untitled article's headline is the first words of its text, about this long.
UNTITLED_HEADLINE = 80


def headline(a: Article) -> str:
    """The article's headline; an untitled one's (a microblog post) is the first words
    of its text, cut at a word with "…", or its link when it has no text at all."""
    return a.title or shorten(a.summary, UNTITLED_HEADLINE) or a.link


def item_from_article(a: Article, position: int, source_title: str, chars: int) -> EditionItem:
    """An edition item copied from an article.

    An untitled one (a microblog post) is headed by the first words of its text, cut at
    a word with "…", and by its link only when it has no text at all: a 190-character
    permalink made a poor headline. A text the headline holds whole is not told twice.
    """
    title = headline(a)
    told = not a.title and title == " ".join(a.summary.split())
    return EditionItem(
        article_id=a.id, position=position, title=title,
        summary="" if told else shorten(a.summary, chars), link=a.link, image_url=a.image_url,
        image_caption=a.image_caption, image_credit=a.image_credit,
        image_width=a.image_width, image_height=a.image_height, source_title=source_title,
        author=a.author, published_at=a.published_at, dated=a.date_from_feed,
    )


def default_subject(mlist: MailingList, lead_title: str) -> str:
    """"<list title>: <lead headline>", kept short enough for a phone's inbox."""
    return shorten(f"{mlist.title}: {lead_title}" if lead_title else mlist.title, 110)


def shorten(text: str, limit: int) -> str:
    """`text` cut at a word boundary to at most `limit` characters, with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    # Korean and most scripts use spaces; a text with none in reach is cut mid-word.
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,.;:—-") + "…"


def keep_rendered(edition: Edition, rendered: Rendered, now: dt.datetime) -> None:
    """Store what was rendered on the edition: both parts and the key of their slot
    tokens, which only make sense together (see `digest.slots`)."""
    edition.html, edition.text, edition.slot_key = rendered.html, rendered.text, rendered.slot_key
    edition.rendered_at = now


def stored_render(edition: Edition) -> Rendered:
    """What `keep_rendered` stored."""
    return Rendered(html=edition.html, text=edition.text, slot_key=edition.slot_key)


def render_context(edition: Edition, mlist: MailingList, public_url: str, *,
                   view_url: str = "") -> DigestContext:
    """What the templates see for `edition`; `view_url` is its page in the archive
    (`App.view_url`), the footer's "view in browser" link."""
    tz = ZoneInfo(mlist.timezone or "UTC")
    languages, alts = _languages(edition), _image_alts(edition)
    items = [
        ItemContext(
            title=shorten(i.title, HEADLINE_MAX), link=mail_link(i.link, mlist.keep_tracking),
            summary=i.summary,
            image_url=i.image_url, image_caption=i.image_caption, source_title=i.source_title,
            author=i.author, published_at=i.published_at.astimezone(tz), note=i.note,
            image_credit=i.image_credit, image_width=i.image_width,
            image_height=i.image_height, dated=i.dated, brief=i.brief,
            language=item_language(i, languages),
            image_alt=alts.get(i.article_id or 0, ""),
        )
        for i in sorted(edition.items, key=lambda i: i.position)
    ]
    return DigestContext(
        list_name=mlist.name, list_title=mlist.title, list_description=mlist.description,
        edition_number=edition.number, edition_date=edition.cutoff.astimezone(tz).date(),
        subject=edition.subject, intro=edition.intro, language=mlist.language or "en",
        items=[i for i in items if not i.brief], also_new=[i for i in items if i.brief],
        public_url=public_url.rstrip("/"), timezone=mlist.timezone or "UTC",
        layout=mlist.layout, toc=mlist.toc, accent_color=mlist.accent_color,
        logo_url=mlist.logo_url,
        postal_address=mlist.postal_address, view_url=view_url,
    )


def article_languages(s: Session, article_ids: Iterable[int]) -> dict[int, str]:
    """The language of each article that has one (from its feed or page, or told from
    its text), by id, in one query: an edition's item keeps no language of its own, and
    mail, the desk and the archive mark a story in another language than the list's."""
    ids = set(article_ids)
    if not ids:
        return {}
    rows = s.execute(select(Article.id, Article.language).where(Article.id.in_(ids)))
    return {article_id: language for article_id, language in rows if language}


def item_language(item: EditionItem, languages: Mapping[int, str]) -> str:
    """An item's language: its article's, from `article_languages`; for a page the
    editor added by its address (no article, no feed's word), told from its headline
    and text, as a stored article's is when no feed or page declares one."""
    if item.article_id is not None:
        return languages.get(item.article_id, "")
    return infer_language(item.title, item.summary)


def _languages(edition: Edition) -> dict[int, str]:
    """`article_languages` of the edition's items; empty for an edition in no session."""
    s = object_session(edition)
    if s is None:
        return {}
    return article_languages(s, (i.article_id for i in edition.items
                                 if i.article_id is not None))


def _image_alts(edition: Edition) -> dict[int, str]:
    """The alt text that the feed or page gave each item's lead image, by article id,
    read from its article's content (an item keeps no alt text of its own). Items
    without an image, or whose article gave none, are not in it."""
    s = object_session(edition)
    pictured = {i.article_id: i.image_url for i in edition.items
                if i.article_id is not None and i.image_url}
    if s is None or not pictured:
        return {}
    rows = s.execute(select(Article.id, Article.content_html)
                     .where(Article.id.in_(pictured)))
    alts = {article_id: image_alt(html, pictured[article_id]) for article_id, html in rows}
    return {article_id: alt for article_id, alt in alts.items() if alt}
