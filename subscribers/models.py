"""Tables owned by the subscribers package: lists, subscribers, memberships, suppression,
and the admin console's CSV import jobs.

Designed for what comes next (consent records, attributes and tags, forget, blocked
domains), so later work adds behaviour, not columns torn out and put back.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

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
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from digest.db import Base, UTCDateTime, str_enum, utcnow


class MembershipStatus(StrEnum):
    """A subscriber's state on a list: pending (they have not confirmed yet: double
    opt-in), confirmed (they get the list's mail) or unsubscribed."""

    # The API's OpenAPI shows the docstring. Counts per status are shown in this order.
    PENDING = "pending"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"


class MailingList(Base):
    """A publication: its subscribers get its editions."""

    __tablename__ = "lists"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    from_addr: Mapped[str] = mapped_column(String(320))
    reply_to: Mapped[str] = mapped_column(String(320), default="")
    schedule: Mapped[str] = mapped_column(String(100), default="0 7 * * *")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    mode: Mapped[str] = mapped_column(String(16), default="auto")  # auto | review
    # Review mode, at the scheduled time, for a draft no editor approved:
    # hold (wait for approval) | notify (hold, and mail `editor_emails`) | send (go out).
    review_policy: Mapped[str] = mapped_column(String(16), default="hold",
                                               server_default="hold")
    # Comma-separated addresses told about held drafts (they need no account).
    editor_emails: Mapped[str] = mapped_column(Text, default="", server_default="")
    # The newest scheduled time the scheduler has dealt with (sent, held, empty or
    # skipped as missed): cron times up to here are never run again.
    last_scheduled_for: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    double_optin: Mapped[bool] = mapped_column(Boolean, default=True)
    # Deliver at the send hour in each subscriber's own timezone (Subscriber.timezone).
    local_time: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    language: Mapped[str] = mapped_column(String(16), default="en")
    # Offered on the public subscribe form and shown in the public archive.
    public: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # Links in this list's mail keep their utm_* and other tracking parameters.
    keep_tracking: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The sender's postal address, in every edition's footer (CAN-SPAM, bulk-sender rules).
    postal_address: Mapped[str] = mapped_column(Text, default="", server_default="")
    # How an edition is laid out: hero (every story's photo across the column) |
    # compact (the lead story large, a thumbnail beside each headline after it).
    layout: Mapped[str] = mapped_column(String(16), default="hero", server_default="hero")
    # An "In this edition" table of contents at the top of the mail.
    toc: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # A #rrggbb colour for headings and links; '' = the templates' own.
    accent_color: Mapped[str] = mapped_column(String(16), default="", server_default="")
    # An absolute http(s) URL of a logo shown above the title; '' = none.
    logo_url: Mapped[str] = mapped_column(String(2000), default="", server_default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    archived_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)

    memberships: Mapped[list[Membership]] = relationship(back_populates="mailing_list")


class Subscriber(Base):
    """A person, once, whatever lists they are on. `email` is normalized (see addresses).

    `email_hash` and `domain` are derived from `email` and stored so that sending can
    exclude suppressed addresses and blocked domains with index lookups (SQL cannot hash).
    """

    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    domain: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    timezone: Mapped[str] = mapped_column(String(64), default="")
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    memberships: Mapped[list[Membership]] = relationship(back_populates="subscriber")


class Membership(Base):
    """A subscriber on a list, with the consent record: how, when and from where."""

    __tablename__ = "memberships"
    __table_args__ = (
        UniqueConstraint("list_id", "subscriber_id"),
        Index("ix_memberships_list_status", "list_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[MembershipStatus] = mapped_column(str_enum(MembershipStatus),
                                                     default=MembershipStatus.PENDING)
    # form | import | api | admin | cli
    origin: Mapped[str] = mapped_column(String(16), default="cli")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_ip: Mapped[str] = mapped_column(String(64), default="")
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    confirmed_ip: Mapped[str] = mapped_column(String(64), default="")
    unsubscribed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    unsubscribe_reason: Mapped[str] = mapped_column(String(200), default="")
    # Which sign-up of the address this record is: 0 the first, one more each time it
    # comes back after leaving. A confirm link carries it, so a link is good only for
    # the sign-up it was mailed for (a time could not tell two sign-ups a second apart).
    signup: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The `signup` the newest confirmation mail was queued for (None: none since 0010):
    # the resend limit holds back a mail only while the last one's link still works.
    mailed_signup: Mapped[int | None] = mapped_column(Integer, nullable=True)

    mailing_list: Mapped[MailingList] = relationship(back_populates="memberships")
    subscriber: Mapped[Subscriber] = relationship(back_populates="memberships")


class Suppression(Base):
    """An address never mailed again: kept as a hash so it survives `forget`.

    `email_hash` is sha256 of the normalized address (see `subscribers.addresses`).
    Rows with reason "domain" block a whole domain: their `email_hash` is sha256 of
    "@" + domain (unique like any other row) and `domain` holds it in clear, because a
    domain is not personal data and admins need to see which ones they blocked.
    `domain` is "" on address rows.
    """

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    domain: Mapped[str] = mapped_column(String(255), default="", index=True)
    # hard_bounce | complaint | unsubscribe_all | admin | domain
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)



# Reading what happened after an edition went out (digest.stats): unsubscribes of a
# list by time, and bounces and complaints by time.
Index("ix_memberships_list_unsubscribed", Membership.list_id, Membership.unsubscribed_at)
Index("ix_suppressions_reason_created", Suppression.reason, Suppression.created_at)


class ImportStatus(StrEnum):
    """An import job's state: queued → running → done | failed (also a job whose
    process died: see `digest.imports`)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ImportJob(Base):
    """A CSV import started in the admin console: its file, progress and outcome.

    The counts are those of `importing.ImportReport`; `rows` grows as the import runs and
    `heartbeat_at` with it, so a job whose process died (still "running", heartbeat
    old) is told apart from a slow one (see `digest.imports`)."""

    __tablename__ = "import_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"),
                                         index=True)
    filename: Mapped[str] = mapped_column(String(300))  # as uploaded, for people
    path: Mapped[str] = mapped_column(String(1000))  # where it is stored
    size: Mapped[int] = mapped_column(Integer, default=0)  # bytes
    confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(320), default="")  # a user's email
    status: Mapped[ImportStatus] = mapped_column(str_enum(ImportStatus),
                                                 default=ImportStatus.QUEUED)
    rows: Mapped[int] = mapped_column(Integer, default=0)  # data rows processed so far
    added: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    suppressed: Mapped[int] = mapped_column(Integer, default=0)
    confirmations: Mapped[int] = mapped_column(Integer, default=0)  # mails queued after
    rejects_path: Mapped[str] = mapped_column(String(1000), default="")
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)

    mailing_list: Mapped[MailingList] = relationship()
