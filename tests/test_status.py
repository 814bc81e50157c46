"""`digest status`: next runs from each list's cron in its timezone (no scheduler
running), sources' health, and the last editions with their delivery counts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from digest import schedule
from digest.app import App
from digest.cli import main
from digest.models import Delivery, DeliveryStatus, Source
from subscribers.lists import get_list
from tests.conftest import Clock
from tests.test_schedule import add_articles, at, hourly, make_list


def status_output(app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                  *args: str) -> str:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIGEST_CONFIG", raising=False)
    monkeypatch.setenv("DIGEST_DATABASE_URL", app.settings["database.url"])
    r = CliRunner().invoke(main, ["status", *args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


def row(output: str, section: str, first_cell: str) -> list[str]:
    """The cells of the row of table `section` whose first cell is `first_cell`."""
    titles = ("Schedule", "Sources", "Editions")
    text = output.split(f"{section}\n", 1)[1]
    for title in titles:
        text = text.split(f"\n{title}\n", 1)[0]
    [line] = [ln for ln in text.splitlines() if re.match(rf"│\s*{first_cell}\s", ln)]
    return [cell.strip() for cell in line.strip("│").split("│")]


def test_status_shows_schedule_sources_and_editions(
    app: App, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_list(app, clock, "morning", timezone="Asia/Seoul", members=3)
    make_list(app, clock, "weekly", schedule="0 8 * * mon", mode="review",
              review_policy="notify")
    add_articles(app, "morning", hourly(at("2026-11-27 00:00"), 22))
    with app.sessions() as s:  # one source fails again and again
        s.execute(update(Source).where(Source.url.endswith("weekly.xml")).values(
            consecutive_failures=3, last_error="HTTP 500 from the server",
            next_fetch_at=at("2026-11-27 07:00")))
        s.commit()
    clock.now = at("2026-11-27 22:00")  # 07:00 in Seoul
    assert schedule.run_due(app) == [("morning", schedule.STARTED)]
    with app.sessions() as s:  # one delivery refused, the rest still queued
        first = s.scalars(select(Delivery.id).order_by(Delivery.id)).first()
        s.execute(update(Delivery).where(Delivery.id == first).values(status=DeliveryStatus.FAILED))
        s.commit()

    out = status_output(app, tmp_path, monkeypatch)

    assert out.index("Schedule") < out.index("Sources") < out.index("Editions")
    morning = row(out, "Schedule", "morning")
    assert morning[1:3] == ["auto", "0 7 * * * Asia/Seoul"]
    assert morning[3].count("07:00 KST") == 3
    assert morning[4] == "2026-11-27 22:00 UTC"  # the time last dealt with
    weekly = row(out, "Schedule", "weekly")
    assert weekly[1] == "review (notify)" and weekly[4] == "never"
    assert weekly[3].count("Mon ") == 3 and weekly[3].count("08:00 UTC") == 3
    with app.sessions() as s:
        ids = {name: s.scalars(select(Source.id).where(Source.url.endswith(f"{name}.xml")))
               .one() for name in ("morning", "weekly")}
    # id, source, last success, failures, next fetch, last error
    failing = row(out, "Sources", str(ids["weekly"]))
    assert failing[3:] == ["3", "2026-11-27 07:00 UTC", "HTTP 500 from the server"]
    assert row(out, "Sources", str(ids["morning"]))[4] == "next round"
    # list, #, status, scheduled, sent, failed, pending, other, bounced, soft, complaints
    assert row(out, "Editions", "morning") == [
        "morning", "1", "sending", "2026-11-27 22:00 UTC", "0", "1", "2", "0", "0", "0", "0"]


def test_status_of_an_empty_database(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = status_output(app, tmp_path, monkeypatch, "--editions", "1")
    assert "Schedule" in out and "Editions" in out


def test_status_of_a_list_whose_schedule_cannot_be_used(
    app: App, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_list(app, clock)
    with app.sessions() as s:
        get_list(s, "news").schedule = "0 7 1 * mon"  # set before schedules were checked
        s.commit()
    out = status_output(app, tmp_path, monkeypatch)
    assert row(out, "Schedule", "news")[3].startswith("unusable: ")
