"""The API's request and response bodies (pydantic), which its OpenAPI documents.

Requests forbid unknown fields, so a typo (`"titel"`) is a 422 rather than silently
ignored. In PATCH bodies an absent field, or null, leaves the value as it is.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from subscribers.models import MembershipStatus

T = TypeVar("T")

Email = Field(min_length=1, max_length=320, examples=["reader@example.org"])


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        # PostgreSQL cannot store U+0000 in text; refused here for every database alike.
        if has_nul(data):
            raise ValueError("text may not contain NUL characters (\\u0000)")
        return data


def has_nul(value: Any) -> bool:
    """Whether a string anywhere in a JSON value holds U+0000."""
    if isinstance(value, str):
        return "\0" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False


# -- errors and pages ---------------------------------------------------------------


class ErrorDetail(BaseModel):
    in_: str = Field(alias="in", description="body, query, path or header")
    field: str = Field(description="Dotted path of the field, e.g. `subscribers.3.email`")
    message: str


class ErrorBody(BaseModel):
    status: int = Field(description="The HTTP status, repeated")
    code: str = Field(description="Stable, for programs: not_found, invalid_request, "
                                  "invalid_value, unauthorized, forbidden, conflict, ...")
    message: str = Field(description="For people: what happened and what to do")
    details: list[ErrorDetail] = Field(description="Where a request failed validation")


class ErrorResponse(BaseModel):
    error: ErrorBody


class Page(BaseModel, Generic[T]):
    """One page of a collection. `next` is the cursor of the following page (pass it as
    `?after=`), null on the last one."""

    data: list[T]
    next: str | None


# -- lists ------------------------------------------------------------------------


class MemberCounts(BaseModel):
    pending: int
    confirmed: int
    unsubscribed: int


class ListOut(BaseModel):
    name: str
    title: str
    description: str
    from_addr: str
    reply_to: str
    schedule: str = Field(description="cron: minute hour day month weekday")
    timezone: str
    mode: str
    review_policy: str
    editor_emails: str
    double_optin: bool
    local_time: bool
    language: str
    public: bool
    keep_tracking: bool = Field(description="Article links in mail keep utm_*, fbclid and "
                                "the like; false: they are dropped")
    postal_address: str = Field(description="In every mail's footer (CAN-SPAM, bulk-sender "
                                "rules); lines separated by newlines; '' = not set yet")
    layout: Literal["hero", "compact"] = Field(description="hero: every story's photo across "
                                               "the column; compact: the lead story large, "
                                               "a thumbnail beside each headline after it")
    toc: bool = Field(description='An edition opens with "In this edition", its stories')
    accent_color: str = Field(description="#rrggbb of headings and links; '' = the default")
    logo_url: str = Field(description="https:// URL of a logo above the title; '' = none")
    created_at: dt.datetime
    archived_at: dt.datetime | None
    members: MemberCounts


class ListDetail(ListOut):
    recipients: int = Field(description="Confirmed, unsuppressed: who the next edition goes to")
    sources: int
    editions: int
    last_sent_at: dt.datetime | None


class ListSettings(Request):
    """A list's settings but its sender; `digest lists create --help` says what each means."""

    title: str | None = Field(None, max_length=1000)
    description: str | None = Field(None, max_length=10_000)
    reply_to: str | None = Field(None, max_length=1000)
    schedule: str | None = Field(None, max_length=100, examples=["0 7 * * *"])
    timezone: str | None = Field(None, max_length=100, examples=["Europe/Berlin"])
    mode: Literal["auto", "review"] | None = None
    review_policy: Literal["hold", "notify", "send"] | None = None
    editor_emails: str | None = Field(None, max_length=10_000)
    double_optin: bool | None = None
    local_time: bool | None = None
    language: str | None = Field(None, max_length=16, examples=["en"])
    public: bool | None = None
    keep_tracking: bool | None = None
    postal_address: str | None = Field(None, max_length=1000,
                                       examples=["1 Harbour Road\nPortsmouth PO1 2AB, UK"])
    layout: Literal["hero", "compact"] | None = None
    toc: bool | None = None
    accent_color: str | None = Field(None, max_length=16, examples=["#1a73e8"])
    logo_url: str | None = Field(None, max_length=4000,
                                 examples=["https://example.org/logo.png"])


class ListCreate(ListSettings):
    name: str = Field(min_length=1, max_length=64, examples=["weekly-news"],
                      description="1-64 lowercase letters, digits, '-' or '_'")
    from_addr: str = Field(min_length=1, max_length=1000,
                           examples=["Morning News <news@example.org>"])


class ListPatch(ListSettings):
    name: str | None = Field(None, min_length=1, max_length=64,
                             description="A new name: renames the list")
    from_addr: str | None = Field(None, max_length=1000)
    archived: bool | None = Field(None, description="false brings an archived list back")


# -- members of a list ------------------------------------------------------------


class MemberOut(BaseModel):
    email: str
    name: str
    status: MembershipStatus
    tags: list[str]
    origin: str
    created_at: dt.datetime = Field(description="When this consent record began")
    confirmed_at: dt.datetime | None
    unsubscribed_at: dt.datetime | None
    unsubscribe_reason: str
    suppressed: bool = Field(description="The address or its domain is suppressed: no mail")


class MemberAdd(Request):
    email: str = Email
    name: str = Field("", max_length=1000)
    confirmed: bool = Field(False, description="You vouch that they asked: no double opt-in")


class MemberAdded(MemberOut):
    outcome: Literal["added", "updated", "unchanged"]
    confirmation_queued: bool


class MemberPatch(Request):
    # Two of the MembershipStatus values (a Literal of its members would word the
    # validation errors with their reprs).
    status: Literal["confirmed", "unsubscribed"] | None = Field(
        None, description="confirmed: you vouch for their consent (an unsubscribed member "
                          "starts a new consent record); unsubscribed: they leave the list")
    resend_confirmation: bool = Field(
        False, description="Queue a new confirmation mail for a pending member (at most one "
                           "per 10 minutes)")


class MemberChanged(MemberOut):
    changed: bool
    confirmation_queued: bool


class BulkRow(Request):
    email: str = Field(max_length=1000)
    name: str = Field("", max_length=1000)


class BulkAdd(Request):
    subscribers: list[BulkRow] = Field(min_length=1, max_length=10_000)
    confirmed: bool = Field(False, description="You vouch that everyone here asked to "
                                               "subscribe: no confirmation mails")


class BulkReject(BaseModel):
    index: int = Field(description="Position in `subscribers`, from 0")
    email: str
    reason: str


class BulkResult(BaseModel):
    """As an import: nobody who unsubscribed is added back (they count as unchanged)."""

    added: int
    updated: int
    unchanged: int
    suppressed: int
    rejected: int
    rejects: list[BulkReject]
    confirmations_queued: int


# -- people -----------------------------------------------------------------------


class SubscriberSummary(BaseModel):
    email: str
    name: str
    tags: list[str]
    created_at: dt.datetime
    lists: dict[str, str] = Field(description="list name -> membership status")


class SubscriberData(BaseModel):
    id: int
    email: str
    name: str
    timezone: str
    attributes: dict[str, Any]
    tags: list[str]
    created_at: dt.datetime | None
    updated_at: dt.datetime | None


class ConsentRecord(BaseModel):
    list: str
    list_title: str
    status: str
    origin: str
    created_at: dt.datetime | None
    created_ip: str
    confirmed_at: dt.datetime | None
    confirmed_ip: str
    unsubscribed_at: dt.datetime | None
    unsubscribe_reason: str


class SuppressionData(BaseModel):
    scope: Literal["address", "domain"]
    domain: str | None
    reason: str
    detail: str
    since: dt.datetime | None


class DeliveryCounts(BaseModel):
    total: int
    by_status: dict[str, int]


class Person(BaseModel):
    """Everything stored about a person (`digest subscribers show --json`)."""

    email: str
    subscriber: SubscriberData | None = Field(
        description="null: only the suppression of the address is stored")
    memberships: list[ConsentRecord]
    suppression: SuppressionData | None
    deliveries: DeliveryCounts


class PersonPatch(Request):
    name: str | None = Field(None, max_length=1000)
    timezone: str | None = Field(None, max_length=100,
                                 description="IANA zone for local-time lists; \"\" clears it")
    attributes: dict[str, Any] | None = Field(
        None, description="Keys to set; a null value removes the key")
    add_tags: list[str] = Field([], max_length=100)
    remove_tags: list[str] = Field([], max_length=100)


class Forgotten(BaseModel):
    removed: Person = Field(description="What was stored before it was erased")
    placeholder: str | None = Field(description="The emptied row's address now")
    memberships: int
    deliveries: int
    suppression_reason: str
    rejected_rows: int = Field(0, description="Rows naming the address taken out of the "
                               "rejects files of console imports")
    outbox_messages: int = Field(0, description="Messages to the address deleted from "
                                 "the outbox")
    running_imports: int = Field(0, description="Imports running meanwhile, whose files "
                                 "were left to them: forget again once they end")


# -- suppressions -----------------------------------------------------------------


class SuppressionOut(BaseModel):
    id: int
    scope: Literal["address", "domain"]
    email: str | None = Field(description="null when only the hash is stored, or a domain")
    domain: str | None
    reason: str
    detail: str
    created_at: dt.datetime


class SuppressionAdd(Request):
    email: str | None = Field(None, max_length=1000, description="An address, or ...")
    domain: str | None = Field(None, max_length=1000, description="... a whole domain")
    reason: Literal["admin", "hard_bounce", "complaint", "unsubscribe_all"] = "admin"
    detail: str = Field("", max_length=2000, description="A note (not the address)")


class SuppressionAdded(SuppressionOut):
    created: bool


class Removed(BaseModel):
    removed: bool


# -- sources ----------------------------------------------------------------------


class SourceOut(BaseModel):
    id: int
    url: str
    title: str
    site_url: str
    full_text: bool
    lists: list[str]
    articles: int
    created_at: dt.datetime
    last_fetch_at: dt.datetime | None
    last_success_at: dt.datetime | None
    last_error: str
    last_error_at: dt.datetime | None
    consecutive_failures: int
    next_fetch_at: dt.datetime | None


class SourceAdd(Request):
    url: str = Field(min_length=1, max_length=2000, examples=["https://example.org/feed.xml"])
    list: str = Field(min_length=1, max_length=64, description="The list it feeds")
    full_text: bool = Field(False, description="Fetch each new article's page for its text")


class SourceAdded(SourceOut):
    attached: bool = Field(description="false: it fed this list already")

