"""Tables owned by the publisher: sources, articles, editions, their items, deliveries, the
feedback notices seen, and the web app's users, API tokens, login sessions and login
failures."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from digest.db import Base, UTCDateTime, str_enum, utcnow


class Source(Base):
    """A feed (or, later, a page) and its health."""

    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="feed")  # feed | page
    title: Mapped[str] = mapped_column(String(300), default="")
    site_url: Mapped[str] = mapped_column(String(2000), default="")
    full_text: Mapped[bool] = mapped_column(Boolean, default=False)
    # Paused (`digest sources pause`): no fetch takes it until resumed; its articles stay.
    paused: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Conditional GET validators from the last 200 response.
    etag: Mapped[str] = mapped_column(String(500), default="")
    last_modified: Mapped[str] = mapped_column(String(100), default="")
    # The last 200 body read whole and committed with its articles: a sha256 (hex) of it
    # and of what else decided how it was read (digest.gather.sources.body_digest), and
    # how many entries it gave. The same again is not read again ("" until one is read).
    body_digest: Mapped[str] = mapped_column(String(64), default="", server_default="")
    body_entries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Health.
    last_fetch_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_success_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    last_error_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    next_fetch_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The fetch lease (digest.gather.lease): who is fetching the source, and until when
    # they may; free when the time is None or past.
    fetch_lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    fetch_lease_owner: Mapped[str] = mapped_column(String(200), default="")
    # When the fetch holding the lease began: an edition built meanwhile ends before it.
    fetch_lease_from: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Every fetch and every failed one, ever: /metrics' counters (digest.metrics).
    fetches: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    fetch_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    articles: Mapped[list[Article]] = relationship(back_populates="source")


class ListSource(Base):
    """Which sources feed which lists; one source may feed many lists."""

    __tablename__ = "list_sources"

    list_id: Mapped[int] = mapped_column(
        ForeignKey("lists.id", ondelete="CASCADE"), primary_key=True
    )
    source_id: Mapped[int] = mapped_column(
        ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


def _identity(name: str, column: str, where: str) -> Index:
    return Index(name, "source_id", column, unique=True, sqlite_where=text(where),
                 postgresql_where=text(where))


class Article(Base):
    """One gathered article, sanitized. Deduplicated per source by guid, link and text.

    Which entry of a feed is which stored article, digest.gather.identity decides from
    all three and the date (a guid with a new link, new words and another date is a new
    post; links compare by `link_key`); an entry that is a stored article with other
    words or another link is an edit of it, which changes its words and link but keeps
    its guid, date and `first_seen_at`. Its identity in the table is its guid, else its
    link, else its text's hash; the three partial unique indexes hold it, so a fetch
    racing another fetch of the source cannot store an entry twice: its INSERT finds the
    row there and does nothing. (The plain indexes serve the dedup's lookups, which
    match any row's link, key or hash.)

    `guid` is the feed's, except for a post that a feed gave a guid one of the source's
    articles already has (scripting.com's two posts of a minute; a CMS that hands an old
    id to a new story): it is stored as `<guid>#reused-<12 hex digits of its link and
    text>`, which the dedup reads as that guid; a post without a guid whose link another
    one has gets `#reused-<...>` alone. `published_at` is the feed's date, or,
    for an undated item (`date_from_feed` false), the time it was first seen: a stand-in
    for sorting, never to be shown as its date.
    """

    __tablename__ = "articles"
    __table_args__ = (
        Index("ix_articles_source_guid", "source_id", "guid"),
        Index("ix_articles_source_link", "source_id", "link"),
        Index("ix_articles_source_hash", "source_id", "content_hash"),
        Index("ix_articles_published", "published_at"),
        Index("ix_articles_link_key", "link_key"),
        _identity("uq_articles_source_guid", "guid", "guid <> ''"),
        _identity("uq_articles_source_link", "link", "guid = '' AND link <> ''"),
        _identity("uq_articles_source_hash", "content_hash", "guid = '' AND link = ''"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    guid: Mapped[str] = mapped_column(String(2000), default="")
    link: Mapped[str] = mapped_column(String(2000), default="")
    # What every link to this page shares (digest.gather.links.link_key), from its page's
    # canonical link when a full-text fetch read one, else the feed's: "" without a link.
    link_key: Mapped[str] = mapped_column(String(2000), default="", server_default="")
    content_hash: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(String(300), default="")
    summary: Mapped[str] = mapped_column(Text, default="")  # plain text, boilerplate removed
    content_html: Mapped[str] = mapped_column(Text, default="")  # sanitized HTML
    image_url: Mapped[str] = mapped_column(String(2000), default="")
    image_caption: Mapped[str] = mapped_column(Text, default="")
    image_credit: Mapped[str] = mapped_column(Text, default="", server_default="")
    image_width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    image_height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    language: Mapped[str] = mapped_column(String(16), default="")
    # Publication time in UTC; the first-seen time when the feed gave none.
    published_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    date_from_feed: Mapped[bool] = mapped_column(Boolean, default=True)
    first_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # An undated item found on its source's first successful fetch: old news of unknown
    # age, never offered by itself (an editor may still add it). Undated items that
    # appear later are news (false).
    backlog: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    source: Mapped[Source] = relationship(back_populates="articles")


class EditionKind(StrEnum):
    """A digest, or a list's standing double opt-in mailing, whose deliveries are its
    confirmation mails (one ledger for all mail)."""

    DIGEST = "digest"
    CONFIRM = "confirm"


class EditionStatus(StrEnum):
    """An edition's state: draft; approved by an editor (for review mode, or to go out
    at a time they set); sending (rendered, its mail queued); sent (every message dealt
    with); cancelled (never sent)."""

    # The API's OpenAPI shows the docstring. A draft may go to sending without approval.
    # A list's confirmation mailing (EditionKind.CONFIRM) stays sending: a standing
    # queue. Nothing in digest cancels an edition yet. One message's state is
    # DeliveryStatus, whose HANDING_OVER and DELIVERED are stored as "sending" and "sent".
    DRAFT = "draft"
    APPROVED = "approved"
    SENDING = "sending"
    SENT = "sent"
    CANCELLED = "cancelled"


class Edition(Base):
    """One issue of a list. Creation is idempotent per (list, scheduled time)."""

    __tablename__ = "editions"
    __table_args__ = (
        UniqueConstraint("list_id", "number"),
        UniqueConstraint("list_id", "scheduled_for"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    kind: Mapped[EditionKind] = mapped_column(str_enum(EditionKind), default=EditionKind.DIGEST)
    number: Mapped[int] = mapped_column(Integer)  # 0 for the confirmation mailing
    status: Mapped[EditionStatus] = mapped_column(str_enum(EditionStatus),
                                                  default=EditionStatus.DRAFT)
    subject: Mapped[str] = mapped_column(Text, default="")
    intro: Mapped[str] = mapped_column(Text, default="")
    # Articles first seen after `since` and up to `cutoff` were new (digest.stories).
    since: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    cutoff: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    scheduled_for: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Rendered once (Jinja2 + premailer) when sending starts; slots filled per subscriber.
    html: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    # The render's slot key (see digest.slots): only tokens holding it are slots. Empty
    # for editions rendered before keys existed.
    slot_key: Mapped[str] = mapped_column(String(32), default="", server_default="")
    rendered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    send_started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The articles it had no room for (beyond max_items and brief_max), by id: held
    # over, the next edition takes them (digest.stories).
    held: Mapped[list[int]] = mapped_column(JSON, default=list, server_default="[]")

    items: Mapped[list[EditionItem]] = relationship(
        back_populates="edition", order_by="EditionItem.position", cascade="all, delete-orphan"
    )


class EditionItem(Base):
    """An article as it appears in an edition: copied, so later edits of the article
    do not change a sent edition; editors may change headline and blurb here."""

    __tablename__ = "edition_items"
    __table_args__ = (UniqueConstraint("edition_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="CASCADE"))
    article_id: Mapped[int | None] = mapped_column(
        ForeignKey("articles.id", ondelete="SET NULL"), nullable=True, index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text, default="")
    link: Mapped[str] = mapped_column(String(2000))
    image_url: Mapped[str] = mapped_column(String(2000), default="")
    image_caption: Mapped[str] = mapped_column(Text, default="")
    image_credit: Mapped[str] = mapped_column(Text, default="", server_default="")
    image_width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    image_height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    source_title: Mapped[str] = mapped_column(String(300), default="")
    author: Mapped[str] = mapped_column(String(300), default="")
    published_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    dated: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # In the compact "also new" list (headline and link) rather than told in full.
    brief: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    note: Mapped[str] = mapped_column(Text, default="")  # the editor's annotation
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)

    edition: Mapped[Edition] = relationship(back_populates="items")


class DeliveryStatus(StrEnum):
    """The state of one message, a ledger row (see digest.deliver.ledger for its life).
    Two values are spelled like `EditionStatus` ones, as they always were in the
    database, yet mean other things: "sending" is HANDING_OVER, "sent" is DELIVERED."""

    QUEUED = "queued"  # waiting; `next_attempt_at` says from when
    CLAIMED = "claimed"  # a worker holds it until `lease_until`
    HANDING_OVER = "sending"  # the message body was handed over; only the final "." was left
    DELIVERED = "sent"
    FAILED = "failed"
    UNCERTAIN = "uncertain"  # the worker died between handing it over and hearing back
    SKIPPED = "skipped"  # suppressed or unsubscribed after it was queued


class Delivery(Base):
    """The ledger: one row per (edition, subscriber). The truth about who got what."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("edition_id", "subscriber_id"),
        Index("ix_deliveries_queue", "edition_id", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[DeliveryStatus] = mapped_column(str_enum(DeliveryStatus),
                                                   default=DeliveryStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str] = mapped_column(String(200), default="")
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Our "<...@domain>" Message-ID, or the id an API provider gave the message: bounce
    # and complaint notices name it (indexed for digest.feedback's lookups).
    message_id: Mapped[str] = mapped_column(String(300), default="", index=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # What came back (digest.feedback): "" | hard_bounce | soft_bounce | complaint, and
    # when the provider says it happened.
    feedback: Mapped[str] = mapped_column(String(16), default="", server_default="")
    feedback_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


# User roles, weakest first: an admin can do everything an editor can.
EDITOR = "editor"
ADMIN = "admin"
ROLES = (EDITOR, ADMIN)


class User(Base):
    """Someone who logs in to the desk or the console, or calls the JSON API."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # lowercased
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16), default=EDITOR)
    password_hash: Mapped[str] = mapped_column(String(300), default="")  # argon2id
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)

    tokens: Mapped[list[ApiToken]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True)
    login_sessions: Mapped[list[LoginSession]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True)


class ApiToken(Base):
    """A bearer token for the JSON API, acting with its user's role. Only its sha256 is
    kept: the token is shown once, when made. (It is 32 random bytes, so a fast hash is
    enough; argon2 is for passwords, which people choose.)"""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    prefix: Mapped[str] = mapped_column(String(16))  # shown in listings: "dg_AbCd…"
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)

    user: Mapped[User] = relationship(back_populates="tokens")


class LoginSession(Base):
    """A logged-in browser (digest.login_sessions). The cookie holds a random id; only its
    sha256 is kept, so a copy of this table opens no session. Logging out deletes the
    row, which every web worker sees at once."""

    __tablename__ = "login_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)

    user: Mapped[User] = relationship(back_populates="login_sessions")


class LoginFailure(Base):
    """One failed login: the account typed and the client address it came from, for
    throttling across every web worker (they share the database, not memory). Rows older
    than digest.login_throttle's window are pruned on login."""

    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_account_at", "account", "at"),
        Index("ix_login_failures_client_at", "client", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account: Mapped[str] = mapped_column(String(320))  # the address typed, lowercased
    client: Mapped[str] = mapped_column(String(64))  # web.throttle.client_key: IPv6 by /64
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


class SenderBeat(Base):
    """A running sender (`digest worker`, `digest serve`'s thread): who, since when, its
    last heartbeat (renewed every `[delivery] heartbeat_seconds`, removed on a clean
    stop) and what it has written to the ledger since it started (digest.heartbeat)."""

    __tablename__ = "senders"

    id: Mapped[int] = mapped_column(primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    backend: Mapped[str] = mapped_column(String(32), default="")
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    beat_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    sent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    failed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    deferred: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    uncertain: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class FeedbackNotice(Base):
    """A provider's notice already taken in (a webhook's event id, a DSN's Message-ID):
    `digest.feedback.first_sight` refuses a replay. Rows older than
    `digest.feedback.NOTICES_KEPT` are pruned as new ones come."""

    __tablename__ = "feedback_notices"
    __table_args__ = (UniqueConstraint("provider", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(300))
    seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
