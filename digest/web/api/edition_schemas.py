"""Request and response bodies of the edition and stats operations (see `schemas`)."""

from __future__ import annotations

import datetime as dt

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from digest.curate.draft import INTRO_MAX, NOTE_MAX, SUBJECT_MAX, SUMMARY_MAX, TITLE_MAX
from digest.models import EditionStatus
from digest.web.api.schemas import Request

# -- editions ---------------------------------------------------------------------


class ItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    position: int = Field(description="0 is the top; pinned items lead, those in brief "
                                      "come last")
    pinned: bool
    brief: bool = Field(description="In the compact \"also new\" list: headline and link")
    title: str
    summary: str
    note: str = Field(description="The editor's note shown with the item")
    link: str
    image_url: str
    image_caption: str
    source_title: str
    author: str
    published_at: dt.datetime = Field(description="When first seen, if not `dated`")
    dated: bool = Field(description="false: the feed gave no date; no time is shown")
    article_id: int | None = Field(description="null for a page added by its URL")


class EditionSummary(BaseModel):
    id: int
    list: str
    number: int
    status: EditionStatus
    subject: str
    scheduled_for: dt.datetime | None
    created_at: dt.datetime
    send_started_at: dt.datetime | None
    sent_at: dt.datetime | None
    item_count: int


class EditionOut(EditionSummary):
    intro: str
    since: dt.datetime = Field(description="Articles first seen after this were new")
    cutoff: dt.datetime
    recipients: int | None = Field(
        description="How many it would go to if sent now; null once it is sending")
    full_count: int = Field(description="Items told in full")
    brief_count: int = Field(description="Items in the \"also new\" list")
    held_count: int = Field(
        description="New stories it had no room for ([edition] brief_max): held over, the "
                    "next edition takes them")
    waiting_count: int = Field(
        description="New stories left out of it (proposals the editor dropped or passed "
                    "over): not mailed unless added; 0 once it is sending")
    later_count: int = Field(
        description="Stories first seen after it was built: the next edition takes them; "
                    "0 once it is sending")
    items: list[ItemOut]


class EditionPatch(Request):
    subject: str | None = Field(None, max_length=SUBJECT_MAX)
    intro: str | None = Field(None, max_length=INTRO_MAX,
                              description="Plain text; paragraphs at blank lines")


class ItemAdd(Request):
    article_id: int | None = Field(None, ge=1, le=2**31 - 1,
                                   description="One of the edition's proposals, or ...")
    url: str | None = Field(None, max_length=2000,
                            description="... an article's page: fetched and extracted")


class ItemPatch(Request):
    title: str | None = Field(None, max_length=TITLE_MAX)
    summary: str | None = Field(None, max_length=SUMMARY_MAX)
    note: str | None = Field(None, max_length=NOTE_MAX)
    pinned: bool | None = Field(None, description="true: leads the edition, told in full "
                                                  "(out of brief); not with brief: true")
    brief: bool | None = Field(None, description="true: into the \"also new\" list "
                                                 "(unpins it); false: told in full")
    position: int | None = Field(None, ge=0, le=100_000,
                                 description="Move to this index, within its group")

    @model_validator(mode="after")
    def _pinned_or_brief(self) -> ItemPatch:
        # The desk's buttons: pinning tells an item in full, putting it in brief unpins
        # it. Both at once asks for a pinned item in the "also new" list: refused, not
        # resolved by the order the fields happen to be applied in.
        if self.pinned and self.brief:
            raise ValueError("an item cannot be pinned and in brief at once: a pinned item "
                             "is told in full at the top; send \"pinned\": true or "
                             "\"brief\": true, not both")
        return self


class Proposal(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    article_id: int
    title: str
    link: str
    summary: str
    image_url: str
    source_title: str
    author: str
    language: str
    published_at: dt.datetime = Field(description="When first seen, if not `dated`")
    dated: bool


class ScheduleIn(Request):
    at: AwareDatetime | None = Field(description="With a time zone; null takes the time away "
                                               "(it goes at the list's next scheduled time)")


class SendQueued(BaseModel):
    edition_id: int
    status: str
    queued: int = Field(description="Deliveries queued now: the recipients")


class TestMail(Request):
    to: str | None = Field(None, max_length=320,
                           description="Where the test goes; your own address if absent")


class TestMailSent(BaseModel):
    to: str
    message_id: str


class PreviewOut(BaseModel):
    subject: str
    html: str
    text: str


# -- stats ------------------------------------------------------------------------


class EditionNumbers(BaseModel):
    """What became of one edition (see `digest.stats` for how each is counted)."""

    edition_id: int
    number: int
    subject: str
    status: str
    send_started_at: dt.datetime
    sent_at: dt.datetime | None
    recipients: int
    sent: int
    failed: int
    bounced: int
    complained: int
    unsubscribed: int
