"""Dates as real feeds write them: each shape of the corpus read to the right moment.

The shapes are the corpus's (`../shared/corpora/feeds`, surveyed for every pubDate,
dc:date, updated, published and date_published); feedparser alone misreads the ones here.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.gather.feeds import Entry, parse_feed

FEEDS = Path(__file__).resolve().parent.parent / "data" / "feeds"
NOW = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)


def corpus(name: str) -> list[Entry]:
    return parse_feed((FEEDS / name).read_bytes(), "https://feeds.example.org/f",
                      now=NOW).entries


def rss(item_date: str, channel_date: str = "") -> list[Entry]:
    channel = f"<lastBuildDate>{channel_date}</lastBuildDate>" if channel_date else ""
    body = (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>News</title>{channel}<item><title>A story</title>"
            f"<link>https://news.example.org/a</link><pubDate>{item_date}</pubDate>"
            f"</item></channel></rss>")
    return parse_feed(body.encode(), "https://news.example.org/feed", now=NOW).entries


def test_year_slash_month_slash_day_is_read_as_written() -> None:
    # kc0011.net: "2020/1/10 14:33:00" (feedparser: 1 December 2020). No zone in the
    # feed: UTC.
    entries = corpus("nnw_kc0011.rss")
    assert entries[0].published == datetime(2020, 1, 10, 14, 33, tzinfo=UTC)
    assert entries[-1].published == datetime(2020, 1, 10, 14, 3, tzinfo=UTC)
    assert all(e.published and e.published.date().isoformat() == "2020-01-10"
               for e in entries)


def test_month_first_with_a_twelve_hour_clock_in_the_feeds_zone() -> None:
    # NBC New York: item "Sat, Dec 16 2023 02:02:33 PM" (feedparser: 02:02), channel
    # dates in -0500: the item's time is New York's.
    (story,) = corpus("feedrs_rss_2.0_nbcny.xml")
    assert story.published == datetime(2023, 12, 16, 19, 2, 33, tzinfo=UTC)


def test_day_and_month_names_in_another_language() -> None:
    # Il Messaggero: "mer, 16 nov 2022 00:38:15 +0100" (feedparser: no date at all).
    (story,) = corpus("feedrs_rss_2.0_ilmessaggero.xml")
    assert story.published == datetime(2022, 11, 15, 23, 38, 15, tzinfo=UTC)


@pytest.mark.parametrize(("written", "meant"), [
    ("2020/1/10 14:33:00", datetime(2020, 1, 10, 14, 33)),
    ("2020/01/10", datetime(2020, 1, 10)),
    ("Sat, Dec 16 2023 02:02:33 PM", datetime(2023, 12, 16, 14, 2, 33)),
    ("Sat, Dec 16 2023 12:15:00 AM", datetime(2023, 12, 16, 0, 15)),
    ("Sat, 16 Dec 2023 02:02:33 PM -0500", datetime(2023, 12, 16, 19, 2, 33)),
    ("Sat, 16 Dec 2023 14:02:33", datetime(2023, 12, 16, 14, 2, 33)),  # no zone: UTC
    ("Wed, 16 Nov 2022 00:38:15 CET", datetime(2022, 11, 15, 23, 38, 15)),
    ("Mi, 16 Nov 2022 00:38:15 +0100", datetime(2022, 11, 15, 23, 38, 15)),
    ("mer, 16 nov 2022 00:38:15 +0100", datetime(2022, 11, 15, 23, 38, 15)),
    ("16 mai 2022 10:00:00 +0200", datetime(2022, 5, 16, 8, 0)),
    ("1518478934", datetime(2018, 2, 12, 23, 42, 14)),  # a Unix timestamp
    # Shapes feedparser already reads stay as they were.
    ("Wed, 5 Nov 2025 13:52:10  EST", datetime(2025, 11, 5, 18, 52, 10)),
    ("Thu, 14 May 2020 10:00:18 Z", datetime(2020, 5, 14, 10, 0, 18)),
    ("Fri, 31 May 2019 12:17:58 -0700", datetime(2019, 5, 31, 19, 17, 58)),
    ("2023-07-23T17:57:55+00:00", datetime(2023, 7, 23, 17, 57, 55)),
    ("2019-08-27", datetime(2019, 8, 27)),
])
def test_shapes_real_feeds_use(written: str, meant: datetime) -> None:
    (entry,) = rss(written)
    assert entry.published == meant.replace(tzinfo=UTC)


def test_a_date_without_a_zone_is_in_the_zone_the_feed_states() -> None:
    (local,) = rss("2020/1/10 14:33:00", channel_date="Fri, 10 Jan 2020 15:00:00 +0800")
    assert local.published == datetime(2020, 1, 10, 6, 33, tzinfo=UTC)
    (iso,) = rss("2020-01-10 14:33:00", channel_date="Fri, 10 Jan 2020 15:00:00 EST")
    assert iso.published == datetime(2020, 1, 10, 19, 33, tzinfo=UTC)
    # A date that states its own zone keeps it.
    (zoned,) = rss("Fri, 10 Jan 2020 14:33:00 GMT", channel_date="Fri, 10 Jan 2020 15:00:00 +0800")
    assert zoned.published == datetime(2020, 1, 10, 14, 33, tzinfo=UTC)


def test_json_feed_dates_are_read_the_same_way() -> None:
    items = [{"id": str(n), "url": f"https://j.example.org/{n}", "title": f"Post {n}",
              "date_published": date} for n, date in enumerate(
                  ["2020/1/10 14:33:00", "Sat, Dec 16 2023 02:02:33 PM",
                   "2023-07-23T17:57:55+02:00", "someday"])]
    doc = {"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": items}
    entries = parse_feed(json.dumps(doc).encode(), "https://j.example.org/feed.json",
                         now=NOW).entries
    assert [e.published for e in entries] == [
        datetime(2020, 1, 10, 14, 33, tzinfo=UTC),
        datetime(2023, 12, 16, 14, 2, 33, tzinfo=UTC),
        datetime(2023, 7, 23, 15, 57, 55, tzinfo=UTC),
        None,
    ]


def test_future_dates_in_the_new_shapes_are_still_not_trusted() -> None:
    assert rss("2099/1/10 14:33:00")[0].published is None
    assert rss("Fri, Nov 27 2099 02:00:00 PM")[0].published is None
    assert rss("4102444800")[0].published is None  # 2100-01-01 as a timestamp
