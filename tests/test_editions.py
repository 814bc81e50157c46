"""Choosing an edition's articles: window, cutoff, order, full and brief, copies,
idempotence."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.app import App
from digest.editions import EditionRules, build_edition, shorten
from digest.models import Article, Edition, EditionStatus, ListSource, Source
from digest.publication import create_list
from subscribers.models import MailingList
from tests.conftest import Clock


def _setup(s: Session) -> tuple[MailingList, Source]:
    mlist = create_list(s, "daily", title="Daily", from_addr="Daily <d@news.example.org>")
    other = create_list(s, "other", title="Other", from_addr="o@news.example.org")
    src = Source(url="https://example.org/feed.xml", title="Example Times")
    stranger = Source(url="https://example.org/other.xml", title="Other feed")
    s.add_all([src, stranger])
    s.flush()
    s.add_all([ListSource(list_id=mlist.id, source_id=src.id),
               ListSource(list_id=other.id, source_id=stranger.id)])
    s.flush()
    return mlist, stranger


def _article(s: Session, source_id: int, title: str, published: dt.datetime) -> Article:
    a = Article(source_id=source_id, guid=title, link=f"https://example.org/{title}",
                content_hash=title, title=title, summary=f"About {title}. " * 40,
                published_at=published, first_seen_at=published)
    s.add(a)
    s.flush()
    return a


def test_first_edition_takes_the_window_newest_first_and_caps(app: App, clock: Clock) -> None:
    now = clock()
    with app.sessions() as s:
        mlist, stranger = _setup(s)
        src_id = s.scalars(select(ListSource.source_id).where(
            ListSource.list_id == mlist.id)).one()
        for h in (1, 5, 3, 30):  # 30 h ago: outside the first 24 h window
            _article(s, src_id, f"h{h}", now - dt.timedelta(hours=h))
        _article(s, stranger.id, "not-ours", now - dt.timedelta(hours=1))
        _article(s, src_id, "future", now + dt.timedelta(hours=2))
        rules = EditionRules(window_hours=24, max_items=2, summary_chars=100)
        ed, created = build_edition(s, mlist, now=now, rules=rules)
        assert created and ed is not None
        assert [(i.title, i.brief) for i in ed.items] == [
            ("h1", False), ("h3", False), ("h5", True)]  # beyond max_items: in brief
        assert ed.number == 1 and ed.cutoff == now
        assert ed.since == now - dt.timedelta(hours=24)
        assert all(len(i.summary) <= 100 and i.summary.endswith("…") for i in ed.items)
        assert ed.items[0].source_title == "Example Times"
        assert ed.subject == "Daily: h1"
        # Building again returns the open draft instead of a second edition.
        again, created_again = build_edition(s, mlist, now=now, rules=rules)
        assert again is not None and again.id == ed.id and not created_again


def test_next_edition_starts_at_the_previous_cutoff(app: App, clock: Clock) -> None:
    with app.sessions() as s:
        mlist, _ = _setup(s)
        src_id = s.scalars(select(ListSource.source_id)).first()
        assert src_id is not None
        _article(s, src_id, "old", clock() - dt.timedelta(hours=2))
        rules = EditionRules()
        first, _ = build_edition(s, mlist, now=clock(), rules=rules)
        assert first is not None
        first.status = EditionStatus.SENT
        s.flush()
        clock.advance(hours=24)
        assert build_edition(s, mlist, now=clock(), rules=rules) == (None, False)
        _article(s, src_id, "new", clock() - dt.timedelta(hours=1))
        second, created = build_edition(s, mlist, now=clock(), rules=rules)
        assert created and second is not None
        assert [i.title for i in second.items] == ["new"] and second.number == 2
        assert second.since == first.cutoff


def test_items_are_copies(app: App, clock: Clock) -> None:
    with app.sessions() as s:
        mlist, _ = _setup(s)
        src_id = s.scalars(select(ListSource.source_id)).first()
        assert src_id is not None
        art = _article(s, src_id, "story", clock() - dt.timedelta(hours=1))
        ed, _ = build_edition(s, mlist, now=clock(), rules=EditionRules())
        assert ed is not None
        art.title = "changed later"
        s.commit()
        s.expire_all()
        assert s.get_one(Edition, ed.id).items[0].title == "story"


def test_shorten_cuts_at_a_word_and_keeps_short_text() -> None:
    assert shorten("short text", 50) == "short text"
    cut = shorten("한국어 문장은 띄어쓰기가 있어서 단어 경계에서 자를 수 있습니다 " * 5, 40)
    assert len(cut) <= 40 and cut.endswith("…") and not cut.endswith(" …")


def test_archived_list_gets_no_new_edition(app: App, clock: Clock) -> None:
    import pytest

    from digest.errors import InvalidInput
    from subscribers.lists import archive_list

    with app.sessions() as s:
        mlist, _ = _setup(s)
        src_id = s.scalars(select(ListSource.source_id)).first()
        assert src_id is not None
        _article(s, src_id, "story", clock() - dt.timedelta(hours=1))
        archive_list(s, mlist, now=clock())
        with pytest.raises(InvalidInput, match=r"archived.*--undo"):
            build_edition(s, mlist, now=clock(), rules=EditionRules())
