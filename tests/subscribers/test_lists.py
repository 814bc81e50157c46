from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.orm import Session

from digest.errors import InvalidInput, NotFound
from digest.models import Edition, EditionKind, ListSource, Source
from digest.publication import ListOverview, create_list, list_overview, update_list
from subscribers.lists import (
    all_lists,
    archive_list,
    get_list,
    list_counts,
    rename_list,
    require_active,
    unarchive_list,
)
from subscribers.members import add_member, remove_member
from subscribers.suppress import suppress


def test_create_with_defaults(db: Session) -> None:
    mlist = create_list(db, "weekly-news_2", from_addr="Zoë Müller <Zoe@Bücher.example>")
    db.commit()
    assert mlist.id
    assert mlist.title == "weekly-news_2"
    assert mlist.from_addr == "Zoë Müller <Zoe@bücher.example>"
    assert (mlist.schedule, mlist.timezone, mlist.mode) == ("0 7 * * *", "UTC", "auto")
    assert mlist.double_optin is True
    assert get_list(db, "weekly-news_2") is mlist


def test_create_with_everything(db: Session) -> None:
    mlist = create_list(
        db,
        "daily",
        title="The Daily",
        from_addr='"Smith, Jo" <jo@example.org>',
        schedule="30  6 * *  mon-fri",
        timezone="Europe/Berlin",
        mode="review",
        reply_to="editors@example.org",
        description="d",
        double_optin=False,
        language="pt-BR",
    )
    assert mlist.from_addr == '"Smith, Jo" <jo@example.org>'
    assert mlist.reply_to == "editors@example.org"
    assert mlist.schedule == "30 6 * * mon-fri"
    assert (mlist.timezone, mlist.mode, mlist.language) == ("Europe/Berlin", "review", "pt-BR")


def test_duplicate_name(db: Session) -> None:
    create_list(db, "news", from_addr="n@example.org")
    with pytest.raises(InvalidInput, match="list 'news' exists"):
        create_list(db, "news", from_addr="n@example.org")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "News"}, "list name 'News' is not usable"),
        ({"name": "-news"}, "not usable"),
        ({"name": "a" * 65}, "not usable"),
        ({"name": "new s"}, "not usable"),
        ({"timezone": "Mars/Olympus"}, "time zone 'Mars/Olympus' is unknown"),
        ({"timezone": "Europe"}, "unknown"),
        ({"timezone": ""}, "unknown"),
        ({"mode": "manual"}, "mode 'manual' is not one of auto, review"),
        ({"from_addr": "not an address"}, "is not a valid email address"),
        ({"from_addr": ""}, "is not one address"),
        ({"from_addr": "Smith, Jo <jo@example.org>"}, "put a name with commas in quotes"),
        ({"reply_to": "a@example.org, b@example.org"}, "reply-to address"),
        ({"schedule": "daily"}, "not a cron expression of 5 fields"),
        ({"schedule": "0 7 * *"}, "5 fields"),
        ({"schedule": "0 7 * * * *"}, "5 fields"),
        ({"schedule": "0 7 * * $"}, "5 fields"),
        ({"schedule": "0 7 1 * mon"}, "not both"),
        ({"schedule": "0 25 * * *"}, "cannot be used"),
        ({"language": "english!"}, "not a language tag"),
        ({"language": "en-" + "-".join(["abcdefgh"] * 3)}, "not a language tag"),
    ],
)
def test_bad_values(db: Session, kwargs: dict[str, str], message: str) -> None:
    args = {"name": "news", "from_addr": "News <news@example.org>", **kwargs}
    with pytest.raises(InvalidInput, match=message):
        create_list(db, **args)  # type: ignore[arg-type]
    assert all_lists(db) == []


def test_get_list_not_found_names_the_lists(db: Session) -> None:
    with pytest.raises(NotFound, match="no lists yet: create it with `digest lists create x"):
        get_list(db, "x")
    create_list(db, "alpha", from_addr="a@example.org")
    create_list(db, "beta", from_addr="b@example.org")
    with pytest.raises(NotFound, match="list 'x' not found; lists are: alpha, beta"):
        get_list(db, "x")
    for i in range(10):
        create_list(db, f"more{i}", from_addr="b@example.org")
    with pytest.raises(NotFound, match="see `digest lists ls`"):
        get_list(db, "x")


def test_all_lists_hides_archived(db: Session, now: dt.datetime) -> None:
    create_list(db, "b", from_addr="b@example.org")
    old = create_list(db, "a", from_addr="a@example.org")
    old.archived_at = now
    assert [m.name for m in all_lists(db)] == ["b"]
    assert [m.name for m in all_lists(db, include_archived=True)] == ["a", "b"]
    assert get_list(db, "a") is old


def test_counts(db: Session, now: dt.datetime) -> None:
    news = create_list(db, "news", from_addr="n@example.org")
    empty = create_list(db, "empty", from_addr="n@example.org")
    add_member(db, news, "a@example.org", confirmed=True, now=now)
    add_member(db, news, "b@example.org", confirmed=True, now=now)
    add_member(db, news, "c@example.org", now=now)
    remove_member(db, news, "b@example.org", now=now)
    assert list_counts(db) == {
        news.id: {"pending": 1, "confirmed": 1, "unsubscribed": 1},
        empty.id: {"pending": 0, "confirmed": 0, "unsubscribed": 0},
    }


def test_update_checks_everything_then_sets_what_changed(db: Session) -> None:
    mlist = create_list(db, "news", title="News", from_addr="n@example.org")
    changed = update_list(
        db, mlist, title=" The  News ", from_addr="Desk <desk@example.org>",
        reply_to="editors@example.org", schedule="0 8  * * mon", timezone="Asia/Seoul",
        mode="review", description="Weekly.", language="ko", double_optin=False,
    )
    assert changed == {
        "title": ("News", "The News"),
        "from_addr": ("n@example.org", "Desk <desk@example.org>"),
        "reply_to": ("", "editors@example.org"),
        "schedule": ("0 7 * * *", "0 8 * * mon"),
        "timezone": ("UTC", "Asia/Seoul"),
        "mode": ("auto", "review"),
        "description": ("", "Weekly."),
        "language": ("en", "ko"),
        "double_optin": (True, False),
    }
    assert update_list(db, mlist, mode="review", timezone="Asia/Seoul") == {}
    # Empty: reply-to goes back to the sender, the title to the name.
    assert update_list(db, mlist, reply_to=" ", title="") == {
        "reply_to": ("editors@example.org", ""), "title": ("The News", "news")}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mode": "manual"}, "mode 'manual' is not one of auto, review"),
        ({"timezone": "Mars/Olympus"}, "time zone 'Mars/Olympus' is unknown"),
        ({"schedule": "daily"}, "not a cron expression"),
        ({"from_addr": "nope"}, "not a valid email address"),
        ({"language": "?"}, "not a language tag"),
        ({"title": "x" * 201}, "title is 201 characters long; at most 200 fit"),
        ({"from_addr": "N" * 320 + " <n@example.org>"}, "longer than 320 characters"),
        ({"double_optin": "yes"}, "double opt-in must be true or false"),
        ({"colour": "red"}, "lists have no setting colour; they have title, description"),
    ],
)
def test_update_refuses_bad_values_and_changes_nothing(
    db: Session, changes: dict[str, object], message: str
) -> None:
    mlist = create_list(db, "news", from_addr="n@example.org")
    with pytest.raises(InvalidInput, match=message):
        update_list(db, mlist, **{"description": "Changed", **changes})
    assert mlist.description == ""


def test_rename(db: Session, now: dt.datetime) -> None:
    mlist = create_list(db, "news", title="News", from_addr="n@example.org")
    create_list(db, "other", from_addr="n@example.org")
    add_member(db, mlist, "a@example.org", now=now)
    assert rename_list(db, mlist, "daily") is True
    assert get_list(db, "daily") is mlist and mlist.title == "News"
    assert list_counts(db)[mlist.id]["pending"] == 1
    assert rename_list(db, mlist, "daily") is False
    with pytest.raises(InvalidInput, match="list 'other' exists"):
        rename_list(db, mlist, "other")
    with pytest.raises(InvalidInput, match="list name 'Daily News' is not usable"):
        rename_list(db, mlist, "Daily News")
    with pytest.raises(NotFound, match="list 'news' not found; lists are: daily, other"):
        get_list(db, "news")


def test_archive_and_back(db: Session, now: dt.datetime) -> None:
    mlist = create_list(db, "news", from_addr="n@example.org")
    require_active(mlist)
    assert archive_list(db, mlist, now=now) is True
    assert archive_list(db, mlist, now=now + dt.timedelta(days=1)) is False
    assert mlist.archived_at == now
    assert all_lists(db) == [] and all_lists(db, include_archived=True) == [mlist]
    with pytest.raises(InvalidInput, match=r"list 'news' is archived \(since 2026-03-01\) and "
                       "gets no editions; .*`digest lists archive news --undo`"):
        require_active(mlist)
    assert unarchive_list(db, mlist) is True
    assert unarchive_list(db, mlist) is False
    require_active(mlist)
    assert all_lists(db) == [mlist]


def test_overview(db: Session, now: dt.datetime) -> None:
    mlist = create_list(db, "news", from_addr="n@example.org")
    assert list_overview(db, mlist) == ListOverview(
        {"pending": 0, "confirmed": 0, "unsubscribed": 0}, 0, 0, 0, None)
    for email in ("a@example.org", "b@example.org", "c@example.org"):
        add_member(db, mlist, email, confirmed=True, now=now)
    add_member(db, mlist, "d@example.org", now=now)
    suppress(db, "c@example.org", "complaint", now=now)
    source = Source(url="https://example.org/feed")
    db.add(source)
    db.flush()
    db.add(ListSource(list_id=mlist.id, source_id=source.id))
    db.add(Edition(list_id=mlist.id, number=1, since=now, cutoff=now, sent_at=now))
    db.add(Edition(list_id=mlist.id, number=2, since=now, cutoff=now))
    db.add(Edition(list_id=mlist.id, kind=EditionKind.CONFIRM, number=0, since=now, cutoff=now,
                   sent_at=now + dt.timedelta(days=1)))
    db.flush()
    assert list_overview(db, mlist) == ListOverview(
        {"pending": 1, "confirmed": 3, "unsubscribed": 0}, 2, 1, 2, now)
