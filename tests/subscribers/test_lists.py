from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.orm import Session

from digest.errors import InvalidInput, NotFound
from subscribers.lists import all_lists, create_list, get_list, list_counts
from subscribers.members import add_member, remove_member


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
        ({"language": "english!"}, "not a language tag"),
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
