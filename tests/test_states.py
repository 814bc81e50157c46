"""The state machines' enums: the strings stored are the ones databases already hold,
rows read back as the enums' members, and JSON and the OpenAPI show plain strings."""

from __future__ import annotations

import json
import typing
from pathlib import Path

from sqlalchemy import CheckConstraint, bindparam, select, text
from sqlalchemy.dialects import postgresql, sqlite

from digest.app import App
from digest.db import UTCDateTime
from digest.imports import create_job
from digest.models import Delivery, DeliveryStatus, Edition, EditionKind, EditionStatus
from digest.publication import create_list
from digest.web.api import create_api
from digest.web.api.edition_schemas import EditionSummary
from digest.web.api.schemas import MemberPatch
from subscribers.members import add_member
from subscribers.models import ImportJob, ImportStatus, Membership, MembershipStatus
from tests.conftest import Clock

#: What every database holds, from the first migration on: never to change.
STORED = {
    EditionKind: {"DIGEST": "digest", "CONFIRM": "confirm"},
    EditionStatus: {"DRAFT": "draft", "APPROVED": "approved", "SENDING": "sending",
                    "SENT": "sent", "CANCELLED": "cancelled"},
    DeliveryStatus: {"QUEUED": "queued", "CLAIMED": "claimed", "HANDING_OVER": "sending",
                     "DELIVERED": "sent", "FAILED": "failed", "UNCERTAIN": "uncertain",
                     "SKIPPED": "skipped"},
    MembershipStatus: {"PENDING": "pending", "CONFIRMED": "confirmed",
                       "UNSUBSCRIBED": "unsubscribed"},
    ImportStatus: {"QUEUED": "queued", "RUNNING": "running", "DONE": "done",
                   "FAILED": "failed"},
}


def test_the_stored_values_are_the_old_strings() -> None:
    for enum, values in STORED.items():
        assert {m.name: m.value for m in enum} == values, enum.__name__


def test_the_columns_stay_plain_strings() -> None:
    """VARCHAR(16) with no CHECK constraint or enum type, as before (test_db compares the
    whole schema with the migrations)."""
    for column in (Edition.kind, Edition.status, Delivery.status, Membership.status,
                   ImportJob.status):
        for dialect in (sqlite.dialect(), postgresql.dialect()):
            assert column.type.compile(dialect=dialect) == "VARCHAR(16)", column
        assert not [c for c in column.table.constraints if isinstance(c, CheckConstraint)]


def test_rows_store_the_strings_and_read_back_as_members(app: App, clock: Clock,
                                                         tmp_path: Path) -> None:
    now = clock()
    with app.sessions() as s:
        mlist = create_list(s, "news", from_addr="news@example.org")
        member, _ = add_member(s, mlist, "ann@example.org", confirmed=True, now=now)
        assert member is not None
        edition = Edition(list_id=mlist.id, number=1, status=EditionStatus.SENDING,
                          since=now, cutoff=now)
        s.add(edition)
        s.flush()
        s.add(Delivery(edition_id=edition.id, subscriber_id=member.subscriber_id,
                       status=DeliveryStatus.HANDING_OVER, next_attempt_at=now))
        create_job(s, mlist, filename="a.csv", path=tmp_path / "a.csv", size=1,
                   confirmed=False, created_by="", now=now)
        s.commit()
    raw = {
        "editions": ("kind", "status"), "deliveries": ("status",),
        "memberships": ("status",), "import_jobs": ("status",),
    }
    with app.engine.connect() as conn:
        stored = {(table, c): conn.scalar(text(f"SELECT {c} FROM {table}"))
                  for table, columns in raw.items() for c in columns}
    assert stored == {
        ("editions", "kind"): "digest", ("editions", "status"): "sending",
        ("deliveries", "status"): "sending", ("memberships", "status"): "confirmed",
        ("import_jobs", "status"): "queued",
    }
    assert all(type(v) is str for v in stored.values())
    with app.sessions() as s:
        edition = s.get_one(Edition, edition.id)
        delivery = s.scalars(select(Delivery)).one()
        membership = s.scalars(select(Membership)).one()
        job = s.scalars(select(ImportJob)).one()
        assert edition.kind is EditionKind.DIGEST and edition.status is EditionStatus.SENDING
        assert delivery.status is DeliveryStatus.HANDING_OVER
        assert membership.status is MembershipStatus.CONFIRMED
        assert job.status is ImportStatus.QUEUED
        # Members equal their strings, in Python and so in templates.
        assert edition.status == "sending" == delivery.status
        assert json.dumps([edition.status, delivery.status]) == '["sending", "sending"]'
        assert f"{edition.status} {job.status}" == "sending queued"


def test_rows_written_as_strings_read_back_as_members(app: App, clock: Clock) -> None:
    """As a database written before the enums holds them."""
    with app.sessions() as s:
        mlist = create_list(s, "news", from_addr="news@example.org")
        s.commit()
        s.execute(text("INSERT INTO editions (list_id, kind, number, status, subject, intro, "
                       "since, cutoff, created_at, html, text) VALUES (:list, 'confirm', 0, "
                       "'sent', '', '', :now, :now, :now, '', '')")
                  .bindparams(bindparam("now", type_=UTCDateTime)),
                  {"list": mlist.id, "now": clock()})
        s.commit()
        edition = s.scalars(select(Edition)).one()
        assert edition.kind is EditionKind.CONFIRM and edition.status is EditionStatus.SENT
        assert s.scalars(select(Edition).where(Edition.status == "sent")).one() is edition


def test_json_and_openapi_show_the_values(app: App, clock: Clock) -> None:
    summary = EditionSummary(
        id=1, list="news", number=1, status=EditionStatus.SENT, subject="", created_at=clock(),
        scheduled_for=None, send_started_at=None, sent_at=None, item_count=0)
    assert summary.model_dump(mode="json")["status"] == "sent"
    assert json.loads(summary.model_dump_json())["status"] == "sent"
    schemas = create_api(app).openapi()["components"]["schemas"]
    assert schemas["EditionStatus"]["enum"] == list(STORED[EditionStatus].values())
    assert schemas["MembershipStatus"]["enum"] == list(STORED[MembershipStatus].values())
    # A request may set two of the statuses, named in a Literal kept to the enum's values.
    patch = typing.get_args(typing.get_args(MemberPatch.model_fields["status"].annotation)[0])
    assert set(patch) == {MembershipStatus.CONFIRMED, MembershipStatus.UNSUBSCRIBED}
