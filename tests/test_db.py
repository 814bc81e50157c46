"""The database: migrations match the models and upgrade the data they find, SQLite runs
in WAL with foreign keys."""

from __future__ import annotations

import datetime as dt

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import (
    Boolean,
    Integer,
    String,
    bindparam,
    column,
    insert,
    inspect,
    select,
    table,
    text,
)
from sqlalchemy.exc import IntegrityError

from digest.app import App
from digest.config import Settings
from digest.db import Base, UTCDateTime
from digest.migrations import upgrade
from digest.models import Article, EditionItem, Source
from tests.conftest import Clock


def test_migrations_create_exactly_the_models(app: App) -> None:
    with app.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], "models changed without a migration: add one under digest/migrations"


def test_init_twice_is_harmless(app: App) -> None:
    app.init_db()
    with app.engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM alembic_version")) == 1


def test_an_init_that_fails_midway_leaves_the_database_as_it_was(settings: Settings,
                                                                 clock: Clock) -> None:
    """`digest init` is all or nothing: stopped midway (Ctrl-C, a failure in its ninth
    revision here), it leaves no half-made schema, so running it again works. (On
    SQLite every CREATE TABLE committed by itself: the first tables stayed, with no
    revision recorded, and every later init said "table lists already exists".)"""
    app = App(settings, clock=clock)
    try:
        with app.engine.begin() as conn:  # in the way of revision 0009's new table
            conn.execute(text("CREATE TABLE senders (x INTEGER)"))
        with pytest.raises(Exception, match="senders"):
            app.init_db()
        with app.engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) <= {"senders", "alembic_version"}
            if "alembic_version" in inspect(conn).get_table_names():
                assert conn.scalar(text("SELECT count(*) FROM alembic_version")) == 0
        with app.engine.begin() as conn:  # out of the way: init again
            conn.execute(text("DROP TABLE senders"))
        app.init_db()
        with app.engine.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM alembic_version")) == 1
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
    finally:
        app.close()


def test_sqlite_pragmas(app: App) -> None:
    if app.engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    with app.engine.connect() as conn:
        assert conn.scalar(text("PRAGMA journal_mode")) == "wal"
        assert conn.scalar(text("PRAGMA foreign_keys")) == 1


def test_times_are_stored_and_read_as_utc(app: App) -> None:
    seoul = dt.timezone(dt.timedelta(hours=9))
    with app.sessions() as s:
        src = Source(url="https://example.org/f", last_fetch_at=dt.datetime(2026, 3, 1, 9, 0,
                                                                            tzinfo=seoul))
        s.add(src)
        s.commit()
        s.expire_all()
        got = s.get_one(Source, src.id).last_fetch_at
    assert got == dt.datetime(2026, 3, 1, 0, 0, tzinfo=dt.UTC) and got.tzinfo is not None
    with app.sessions() as s, pytest.raises(Exception, match="naive datetime"):
        s.add(Source(url="https://example.org/g", last_fetch_at=dt.datetime(2026, 3, 1)))
        s.commit()


def test_upgrading_merges_duplicate_articles_into_the_oldest(settings: Settings,
                                                             clock: Clock) -> None:
    """0006 makes an article's identity in its source (guid, else link, else text hash)
    unique. Duplicates that overlapping fetches stored before are merged: the oldest row
    stays, edition items point to it, the others go."""
    app = App(settings, clock=clock)
    try:
        upgrade(app.engine, "0005")
        ids = _articles_with_duplicates(app, clock)
        upgrade(app.engine)
        with app.sessions() as s:
            left = set(s.scalars(select(Article.id)))
            items = list(s.scalars(select(EditionItem.article_id)
                                   .order_by(EditionItem.position)))
            assert s.scalars(select(Source.fetch_lease_owner)).all() == ["", ""]
        assert left == {ids[k] for k in ("g1", "l2", "h", "g2-with-l2", "g1-elsewhere")}
        assert items == [ids["g1"], ids["l2"], ids["g1"], ids["h"], None]
        with app.sessions() as s, pytest.raises(IntegrityError):
            s.add(Article(**_article(1, "again", guid="g1")))
            s.commit()
    finally:
        app.close()


def _article(source_id: int, title: str, *, guid: str = "", link: str = "",
             digest_hash: str = "0" * 64) -> dict[str, object]:
    return dict(source_id=source_id, title=title, guid=guid, link=link,
                content_hash=digest_hash,
                published_at=dt.datetime(2026, 11, 26, tzinfo=dt.UTC))


def _articles_with_duplicates(app: App, clock: Clock) -> dict[str, int]:
    """Rows as version 0005 let overlapping fetches store them: name -> id."""
    sources = table("sources", column("url", String), column("kind", String),
                    column("title", String), column("site_url", String),
                    column("full_text", Boolean), column("created_at", UTCDateTime()),
                    column("etag", String), column("last_modified", String),
                    column("last_error", String), column("consecutive_failures", Integer))
    with app.sessions() as s:
        for url in ("https://a.example.org/feed", "https://b.example.org/feed"):
            s.execute(insert(sources).values(
                url=url, kind="feed", title="", site_url="", full_text=False,
                created_at=clock(), etag="", last_modified="", last_error="",
                consecutive_failures=0))
        specs = {
            "g1": _article(1, "first", guid="g1", link="https://a.example.org/1"),
            "g1-again": _article(1, "again", guid="g1", link="https://a.example.org/1"),
            "g1-moved": _article(1, "moved", guid="g1", link="https://a.example.org/one"),
            "l2": _article(1, "no guid", link="https://a.example.org/2"),
            "l2-again": _article(1, "no guid again", link="https://a.example.org/2"),
            "h": _article(1, "text only", digest_hash="1" * 64),
            "h-again": _article(1, "text only again", digest_hash="1" * 64),
            "g2-with-l2": _article(1, "a guid", guid="g2", link="https://a.example.org/2"),
            "g1-elsewhere": _article(2, "other source", guid="g1"),
        }
        # The tables as 0005 had them: the models have moved on since.
        articles = table("articles", column("id", Integer), column("source_id", Integer),
                         column("guid", String), column("link", String),
                         column("content_hash", String), column("title", String),
                         column("author", String), column("summary", String),
                         column("content_html", String), column("image_url", String),
                         column("image_caption", String), column("language", String),
                         column("published_at", UTCDateTime()),
                         column("date_from_feed", Boolean),
                         column("first_seen_at", UTCDateTime()))
        ids = {}
        for name, spec in specs.items():  # one by one: ids in this order
            ids[name] = s.execute(insert(articles).values(
                author="", summary="", content_html="", image_url="", image_caption="",
                language="", date_from_feed=True, first_seen_at=clock(), **spec,
            ).returning(articles.c.id)).scalar_one()
        lists = table("lists", column("id", Integer), column("name", String),
                      column("title", String), column("description", String),
                      column("from_addr", String), column("reply_to", String),
                      column("schedule", String), column("timezone", String),
                      column("mode", String), column("double_optin", Boolean),
                      column("language", String), column("created_at", UTCDateTime()))
        list_id = s.execute(insert(lists).values(
            name="news", title="News", description="", from_addr="news@example.org",
            reply_to="", schedule="0 7 * * *", timezone="UTC", mode="auto",
            double_optin=True, language="en", created_at=clock(),
        ).returning(lists.c.id)).scalar_one()
        editions = table("editions", column("id", Integer), column("list_id", Integer),
                         column("kind", String), column("number", Integer),
                         column("status", String), column("subject", String),
                         column("intro", String), column("since", UTCDateTime()),
                         column("cutoff", UTCDateTime()), column("created_at", UTCDateTime()),
                         column("html", String), column("text", String))
        edition_id = s.execute(insert(editions).values(
            list_id=list_id, kind="digest", number=1, status="sent", subject="", intro="",
            since=clock(), cutoff=clock(), created_at=clock(), html="", text="",
        ).returning(editions.c.id)).scalar_one()
        items = table("edition_items", column("edition_id", Integer),
                      column("article_id", Integer), column("position", Integer),
                      column("title", String), column("summary", String),
                      column("link", String), column("image_url", String),
                      column("image_caption", String), column("source_title", String),
                      column("author", String), column("published_at", UTCDateTime()),
                      column("note", String), column("pinned", Boolean))
        for position, name in enumerate(["g1-again", "l2-again", "g1", "h-again", None]):
            s.execute(insert(items).values(
                edition_id=edition_id, position=position, title="t", summary="", link="l",
                image_url="", image_caption="", source_title="", author="", note="",
                pinned=False, article_id=ids[name] if name else None,
                published_at=clock()))
        s.commit()
        return ids


def test_upgrading_from_the_first_schema_keeps_every_row(settings: Settings,
                                                          clock: Clock) -> None:
    """On SQLite a batch migration rebuilds a table (0002 to 0004 rebuild `lists`): with
    foreign keys on, dropping the old table would cascade to every row that points at it
    (memberships, editions and their deliveries, list sources)."""
    app = App(settings, clock=clock)
    try:
        upgrade(app.engine, "0001")
        rows = {
            "lists": "(id, name, title, description, from_addr, reply_to, schedule, "
                     "timezone, mode, double_optin, language, created_at) VALUES (1, 'news', "
                     "'', '', 'n@example.org', '', '', 'UTC', 'auto', false, 'en', :now)",
            "subscribers": "(id, email, email_hash, domain, name, timezone, attributes, tags, "
                           "created_at, updated_at) VALUES (1, 'ann@example.org', 'h', "
                           "'example.org', '', '', '{}', '[]', :now, :now)",
            "memberships": "(list_id, subscriber_id, status, origin, created_at, created_ip, "
                           "confirmed_ip, unsubscribe_reason) VALUES (1, 1, 'confirmed', "
                           "'cli', :now, '', '', '')",
            "sources": "(id, url, kind, title, site_url, full_text, created_at, etag, "
                       "last_modified, last_error, consecutive_failures) VALUES (1, "
                       "'https://example.org/feed', 'feed', '', '', false, :now, '', '', '', 0)",
            "list_sources": "(list_id, source_id, created_at) VALUES (1, 1, :now)",
            "editions": "(id, list_id, kind, number, status, subject, intro, since, cutoff, "
                        "created_at, html, text) VALUES (1, 1, 'digest', 1, 'sent', '', '', "
                        ":now, :now, :now, '', '')",
        }
        with app.engine.begin() as conn:
            for name, values in rows.items():
                insert_row = text(f"INSERT INTO {name} {values}")
                if ":now" in values:
                    insert_row = insert_row.bindparams(bindparam("now", clock(), UTCDateTime()))
                conn.execute(insert_row)
        upgrade(app.engine)
        with app.engine.connect() as conn:
            left = {name: conn.scalar(text(f"SELECT count(*) FROM {name}")) for name in rows}
            assert conn.scalar(text("SELECT public FROM lists")) in (1, True)
        assert left == dict.fromkeys(rows, 1)
    finally:
        app.close()


def test_upgrading_to_login_sessions_keeps_users_and_their_tokens(settings: Settings,
                                                                  clock: Clock) -> None:
    """0008 drops users.session_epoch (on SQLite by rebuilding `users`, which API tokens
    refer to) and starts login_failures afresh in its new shape."""
    app = App(settings, clock=clock)
    try:
        upgrade(app.engine, "0007")
        when = bindparam("now", clock(), UTCDateTime())
        with app.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO users (id, email, name, role, password_hash, session_epoch, "
                "disabled, created_at) VALUES (1, 'ed@example.org', 'Ed', 'editor', 'x', 3, "
                "false, :now)").bindparams(when))
            conn.execute(text(
                "INSERT INTO api_tokens (user_id, name, prefix, token_hash, created_at) "
                "VALUES (1, 'zapier', 'dg_abcde', 'h', :now)").bindparams(when))
            conn.execute(text("INSERT INTO login_failures (key, at) VALUES "
                              "('user:ed@example.org', :now)").bindparams(when))
        upgrade(app.engine)
        with app.engine.connect() as conn:
            assert conn.execute(text("SELECT email, role FROM users")).all() == [
                ("ed@example.org", "editor")]
            assert conn.scalar(text("SELECT count(*) FROM api_tokens")) == 1
            assert conn.scalar(text("SELECT count(*) FROM login_failures")) == 0
            assert conn.scalar(text("SELECT count(*) FROM login_sessions")) == 0
    finally:
        app.close()


def test_upgrading_to_0011_gives_stored_articles_their_link_keys(settings: Settings,
                                                                 clock: Clock) -> None:
    """0011 adds articles.link_key and fills it for the articles already stored, so the
    next fetch and the next edition know them by it: an article linked with tracking
    parameters, over http, with a trailing slash, is one page with its twins. An item
    already in an edition is dated as its article was."""
    app = App(settings, clock=clock)
    try:
        upgrade(app.engine, "0010")
        articles = table("articles", column("source_id", Integer), column("guid", String),
                         column("link", String), column("content_hash", String),
                         column("title", String), column("author", String),
                         column("summary", String), column("content_html", String),
                         column("image_url", String), column("image_caption", String),
                         column("language", String), column("published_at", UTCDateTime()),
                         column("date_from_feed", Boolean),
                         column("first_seen_at", UTCDateTime()))
        links = {
            "g1": "http://www.heise.de/newsticker/meldung/IBM-4205582.html?wt_mc=rss.ho.beitrag.rdf",
            "g2": "https://Example.org/2026/11/ferry/?utm_source=rss&id=7#comments",
            "g3": "",
        }
        with app.engine.begin() as conn:
            conn.execute(text("INSERT INTO sources (id, url, kind, title, site_url, full_text, "
                              "created_at, etag, last_modified, last_error, "
                              "consecutive_failures) VALUES (1, 'https://example.org/feed', "
                              "'feed', '', '', false, :now, '', '', '', 0)")
                         .bindparams(bindparam("now", clock(), UTCDateTime())))
            for guid, link in links.items():
                conn.execute(insert(articles).values(
                    source_id=1, guid=guid, link=link, content_hash=guid * 32, title=guid,
                    author="", summary="", content_html="", image_url="", image_caption="",
                    language="", published_at=clock(), date_from_feed=True,
                    first_seen_at=clock()))
            # An edition that carried the undated one (g3) and a dated one (g1).
            conn.execute(text("INSERT INTO lists (id, name, title, description, from_addr, "
                              "reply_to, schedule, timezone, mode, double_optin, language, "
                              "created_at) VALUES (1, 'news', 'News', '', 'n@example.org', "
                              "'', '0 7 * * *', 'UTC', 'auto', false, 'en', :now)")
                         .bindparams(bindparam("now", clock(), UTCDateTime())))
            conn.execute(text("INSERT INTO editions (id, list_id, kind, number, status, "
                              "subject, intro, since, cutoff, created_at, html, text) VALUES "
                              "(1, 1, 'digest', 1, 'sent', 'News', '', :now, :now, :now, "
                              "'', '')").bindparams(bindparam("now", clock(), UTCDateTime())))
            conn.execute(text("UPDATE articles SET date_from_feed = false WHERE guid = 'g3'"))
            for position, guid in enumerate(("g1", "g3")):
                conn.execute(text(
                    "INSERT INTO edition_items (edition_id, article_id, position, title, "
                    "summary, link, image_url, image_caption, source_title, author, "
                    "published_at, note, pinned) SELECT 1, id, :position, title, '', link, "
                    "'', '', '', '', published_at, '', false FROM articles WHERE guid = :guid")
                    .bindparams(position=position, guid=guid))
        upgrade(app.engine)
        with app.sessions() as s:
            keys = dict(s.execute(select(Article.guid, Article.link_key)).all())
            backlog = set(s.scalars(select(Article.backlog)))
            dated = dict(s.execute(select(EditionItem.title, EditionItem.dated)).all())
        assert keys == {"g1": "www.heise.de/newsticker/meldung/IBM-4205582.html",
                        "g2": "example.org/2026/11/ferry?id=7", "g3": ""}
        assert backlog == {False}
        # The undated article's item shows no made-up time after the upgrade.
        assert dated == {"g1": True, "g3": False}
    finally:
        app.close()


def test_upgrading_to_0012_gives_lists_the_default_mail_settings(settings: Settings,
                                                                  clock: Clock) -> None:
    """0012 adds the list settings of issue 11: a list made before it has no postal address,
    the hero layout, no table of contents, the templates' colour and no logo."""
    app = App(settings, clock=clock)
    try:
        upgrade(app.engine, "0011")
        with app.engine.begin() as conn:
            conn.execute(text("INSERT INTO lists (id, name, title, description, from_addr, "
                              "reply_to, schedule, timezone, mode, double_optin, language, "
                              "created_at) VALUES (1, 'news', 'News', '', 'n@example.org', '', "
                              "'0 7 * * *', 'UTC', 'auto', false, 'en', :now)")
                         .bindparams(bindparam("now", clock(), UTCDateTime())))
        upgrade(app.engine)
        with app.engine.connect() as conn:
            row = conn.execute(text("SELECT postal_address, layout, toc, accent_color, "
                                    "logo_url FROM lists")).one()
        assert tuple(row) in (("", "hero", 0, "", ""), ("", "hero", False, "", ""))
    finally:
        app.close()


def test_upgrading_to_0014_keeps_deliveries_and_finds_them_by_message_id(
        settings: Settings, clock: Clock) -> None:
    """0014 adds what came back for each delivery (none, for those sent before), an index
    on the Message-ID notices are matched by, and the notices seen, one per key."""
    app = App(settings, clock=clock)
    try:
        upgrade(app.engine, "0013")
        rows = [
            "lists (id, name, title, description, from_addr, reply_to, schedule, timezone, "
            "mode, double_optin, language, created_at) VALUES (1, 'news', '', '', "
            "'n@example.org', '', '', 'UTC', 'auto', false, 'en', :now)",
            "subscribers (id, email, email_hash, domain, name, timezone, attributes, tags, "
            "created_at, updated_at) VALUES (1, 'ann@example.org', 'h', 'example.org', '', "
            "'', '{}', '[]', :now, :now)",
            "editions (id, list_id, kind, number, status, subject, intro, since, cutoff, "
            "created_at, html, text) VALUES (1, 1, 'digest', 1, 'sent', '', '', :now, :now, "
            ":now, '', '')",
            "deliveries (id, edition_id, subscriber_id, status, attempts, next_attempt_at, "
            "claimed_by, message_id, last_error, sent_at) VALUES (7, 1, 1, 'sent', 1, :now, "
            "'', '<1.7@news.example.org>', '', :now)",
        ]
        with app.engine.begin() as conn:
            for values in rows:
                conn.execute(text(f"INSERT INTO {values}")
                             .bindparams(bindparam("now", clock(), UTCDateTime())))
        upgrade(app.engine)
        with app.engine.connect() as conn:
            row = conn.execute(text("SELECT id, feedback, feedback_at FROM deliveries "
                                    "WHERE message_id = '<1.7@news.example.org>'")).one()
            indexes = {ix["name"] for ix in inspect(conn).get_indexes("deliveries")}
        assert tuple(row) == (7, "", None)
        assert "ix_deliveries_message_id" in indexes
        insert_notice = text("INSERT INTO feedback_notices (provider, key, seen_at) "
                             "VALUES ('ses', 'n-1', :now)").bindparams(
                                 bindparam("now", clock(), UTCDateTime()))
        with app.engine.begin() as conn:
            conn.execute(insert_notice)
        with pytest.raises(IntegrityError), app.engine.begin() as conn:
            conn.execute(insert_notice)
    finally:
        app.close()
