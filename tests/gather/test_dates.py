"""Dates as real feeds write them: each shape of the corpus read to the right moment.

The shapes are the corpus's (`../shared/corpora/feeds`, surveyed for every pubDate,
dc:date, updated, published and date_published); feedparser alone misreads the ones here.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from digest.app import App
from digest.gather import dates
from digest.gather.feeds import Entry, parse_feed
from digest.models import Article, Source
from tests.conftest import Clock

from .conftest import Loopback, fetch_one

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
    # feed, which is in Chinese (zh-cn): Beijing's time, UTC+8.
    entries = corpus("nnw_kc0011.rss")
    assert entries[0].published == datetime(2020, 1, 10, 6, 33, tzinfo=UTC)
    assert entries[-1].published == datetime(2020, 1, 10, 6, 3, tzinfo=UTC)
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


# -- numeric and Korean dates (the outside attack of issue 10) --------------------------

def feed(*item_dates: str, channel_date: str = "", now: datetime = NOW) -> list[Entry]:
    """An RSS feed with one item per date, read at `now`."""
    channel = f"<lastBuildDate>{channel_date}</lastBuildDate>" if channel_date else ""
    items = "".join(f"<item><title>Story {n}</title><link>https://news.example.org/{n}"
                    f"</link><pubDate>{date}</pubDate></item>"
                    for n, date in enumerate(item_dates))
    body = (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>News</title>{channel}{items}</channel></rss>")
    return parse_feed(body.encode(), "https://news.example.org/feed", now=now).entries


@pytest.mark.parametrize(("written", "meant"), [
    # Year, month, day with dots, as Korean, Chinese and Japanese sites write them.
    ("2026.12.05 14:30", datetime(2026, 12, 5, 14, 30)),
    ("2026.12.05. 14:30:10", datetime(2026, 12, 5, 14, 30, 10)),
    ("2026.12.5 09:05", datetime(2026, 12, 5, 9, 5)),
    ("2026.11.30", datetime(2026, 11, 30)),
    ("2026.12.05 14:30 KST", datetime(2026, 12, 5, 5, 30)),
    # Korean: year 년, month 월, day 일; 오전 is AM and 오후 PM, before the time.
    ("2026년 12월 6일 01:11", datetime(2026, 12, 6, 1, 11)),
    ("2026년 12월 6일 오후 1:11", datetime(2026, 12, 6, 13, 11)),
    ("2026년 12월 5일 오후 11:11:05", datetime(2026, 12, 5, 23, 11, 5)),
    ("2026년 12월 6일 오전 12:05:09", datetime(2026, 12, 6, 0, 5, 9)),
    ("2026년 12월 5일 (토) 오후 3:00", datetime(2026, 12, 5, 15, 0)),
    ("2026. 12. 5. 오후 3:00:00", datetime(2026, 12, 5, 15, 0)),  # ko-KR toLocaleString
    # A 12-hour clock after an ISO date: 12 AM is the hour after midnight.
    ("2026-12-05 12:30:00 AM", datetime(2026, 12, 5, 0, 30)),
    ("2026-12-05 12:30:00 PM", datetime(2026, 12, 5, 12, 30)),
    ("2026-12-05T11:30:00 PM", datetime(2026, 12, 5, 23, 30)),
    ("2026-12-05 01:30 am +0100", datetime(2026, 12, 5, 0, 30)),
    # Month and day before the year: a part over 12 decides; a 12-hour clock is American.
    ("12/5/2026 11:25:00 PM", datetime(2026, 12, 5, 23, 25)),
    ("3/4/2026 11:25:00 AM", datetime(2026, 3, 4, 11, 25)),
    ("25/11/2026 17:25", datetime(2026, 11, 25, 17, 25)),
    ("11/25/2026 17:25", datetime(2026, 11, 25, 17, 25)),
    ("05.12.2026 17:25", datetime(2026, 12, 5, 17, 25)),  # dots: German, Russian, ...
    ("05-12-2026 17:25", datetime(2026, 12, 5, 17, 25)),  # dashes: Dutch, Indian, ...
    # Slashes and a 24-hour clock, both parts 12 or less: month first, as dateutil does.
    ("05/12/2026 17:25", datetime(2026, 5, 12, 17, 25)),
])
def test_numeric_and_korean_dates(written: str, meant: datetime, clock: Clock) -> None:
    (entry,) = feed(written, now=clock.advance(days=9, hours=12))  # 6 December, 18:00
    assert entry.published == meant.replace(tzinfo=UTC)


def test_a_korean_date_without_a_zone_is_in_the_feeds_zone(clock: Clock) -> None:
    (entry,) = feed("2026년 12월 6일 오후 1:11", channel_date="Sun, 06 Dec 2026 14:00:00 +0900",
                    now=clock.advance(days=9))
    assert entry.published == datetime(2026, 12, 6, 4, 11, tzinfo=UTC)


def test_the_other_dates_of_the_feed_say_which_comes_first(clock: Clock) -> None:
    # 25/11 can only be day first, so the same feed's 05/12 is the 5th of December.
    day_first = feed("25/11/2026 09:00", "05/12/2026 17:25", now=clock.advance(days=9))
    assert [e.published for e in day_first] == [
        datetime(2026, 11, 25, 9, 0, tzinfo=UTC), datetime(2026, 12, 5, 17, 25, tzinfo=UTC)]
    # 11/25 can only be month first: 05/12 stays the 12th of May, even with dots.
    month_first = feed("11/25/2026 09:00", "05/12/2026 17:25", now=clock())
    assert [e.published.month for e in month_first if e.published] == [11, 5]


def test_a_reading_far_in_the_future_gives_way_to_the_other(clock: Clock) -> None:
    # Read on 27 November: month first, 12/05 would be next week; day first it is May.
    (entry,) = feed("12/05/2026 17:25", now=clock())
    assert entry.published == datetime(2026, 5, 12, 17, 25, tzinfo=UTC)
    (us,) = feed("12/05/2026 05:25 PM", now=clock())
    assert us.published == datetime(2026, 5, 12, 17, 25, tzinfo=UTC)
    # Both readings in the future: no date.
    (both,) = feed("12/11/2026 17:25", now=datetime(2026, 10, 1, tzinfo=UTC))
    assert both.published is None


@pytest.mark.parametrize("written", ["09:15:00 PM", "21:15", "21:15:00 +0900", "오후 9:15"])
def test_a_time_without_a_date_is_no_date(written: str, clock: Clock) -> None:
    # feedparser puts the day it runs in front of the time: "published" right now. Read
    # long after any day this test runs, so that day is not dropped as a future date.
    (entry,) = feed(written, now=clock.advance(days=365 * 70))
    assert entry.published is None


def test_json_feed_reads_the_new_shapes_too(clock: Clock) -> None:
    dated = ["2026.11.20 14:30", "2026년 11월 21일 오후 1:11", "12/05/2026 17:25",
             "09:15:00 PM"]
    doc = {"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": [
        {"id": str(n), "url": f"https://j.example.org/{n}", "title": f"Post {n}",
         "date_published": date} for n, date in enumerate(dated)]}
    entries = parse_feed(json.dumps(doc).encode(), "https://j.example.org/feed.json",
                         now=clock()).entries
    assert [e.published for e in entries] == [
        datetime(2026, 11, 20, 14, 30, tzinfo=UTC),
        datetime(2026, 11, 21, 13, 11, tzinfo=UTC),
        datetime(2026, 5, 12, 17, 25, tzinfo=UTC),
        None,
    ]


def test_stored_articles_keep_the_dates_the_feed_wrote(app: App, server: Loopback,
                                                      clock: Clock) -> None:
    # A Korean news site: dates in Korean and with dots, in the channel's +0900, and one
    # item that gives only a time. Fetched on 27 November 2026, 06:00 UTC (15:00 in Seoul).
    items = [("반도체 수출 역대 최대", "2026년 11월 27일 오후 1:11"),
             ("서울 첫눈 관측", "2026.11.26 14:30"),
             ("오늘의 날씨", "09:15:00 PM")]
    body = ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            "<title>연합뉴스</title><link>https://news.example.kr/</link><language>ko</language>"
            "<lastBuildDate>Fri, 27 Nov 2026 15:00:00 +0900</lastBuildDate>"
            + "".join(f"<item><title>{title}</title><link>https://news.example.kr/{n}</link>"
                      f"<pubDate>{date}</pubDate></item>"
                      for n, (title, date) in enumerate(items))
            + "</channel></rss>").encode()
    server.route("/rss.xml")(lambda h: h.reply(body, 200, Content_Type="application/rss+xml"))
    with app.sessions() as s:
        source = Source(url=server.url("/rss.xml"))
        s.add(source)
        s.commit()
        source_id = source.id
    assert fetch_one(app, source_id).new == 3
    with app.sessions() as s:
        stored = {a.title: (a.date_from_feed, a.published_at)
                  for a in s.scalars(select(Article).where(Article.source_id == source_id))}
    assert stored == {
        "반도체 수출 역대 최대": (True, datetime(2026, 11, 27, 4, 11, tzinfo=UTC)),
        "서울 첫눈 관측": (True, datetime(2026, 11, 26, 5, 30, tzinfo=UTC)),
        "오늘의 날씨": (False, clock()),  # undated: the time it was first seen stands in
    }


# -- placeholders and impossible dates (the outside attack of issue 10) -----------------

@pytest.mark.parametrize("written", [
    "Thu, 01 Jan 1970 00:00:00 +0000",  # the Unix epoch: "no date" in many CMSs
    "1970-01-01T00:00:00Z",
    "Wed, 31 Dec 1969 19:00:00 -0500",  # the same instant, written in New York
    "0001-01-01T00:00:00Z",  # .NET's DateTime.MinValue
    "Mon, 01 Jan 0001 00:00:00 +0000",
    "1900-01-01T00:00:00",
    "2020-13-45",  # no such month or day (feedparser: 1 January 2021)
    "2020-02-30T10:00:00Z",
])
def test_a_placeholder_or_impossible_date_is_no_date(written: str) -> None:
    # Read as 1970, the item was dropped from the edition as archive; read as 2021, it
    # was dated wrong. Undated, it is new when first seen.
    (entry,) = rss(written)
    assert entry.published is None
    doc = {"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": [
        {"id": "1", "url": "https://j.example.org/1", "title": "Post",
         "date_published": written}]}
    (item,) = parse_feed(json.dumps(doc).encode(), "https://j.example.org/feed.json",
                         now=NOW).entries
    assert item.published is None


def test_a_placeholder_gives_way_to_the_entrys_other_date() -> None:
    body = ('<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            "<title>News</title><entry><title>A story</title>"
            '<link href="https://news.example.org/a"/><id>urn:a</id>'
            "<published>1970-01-01T00:00:00Z</published>"
            "<updated>2026-11-20T08:00:00Z</updated></entry></feed>")
    (entry,) = parse_feed(body.encode(), "https://news.example.org/feed", now=NOW).entries
    assert entry.published == datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def test_archives_of_the_nineties_keep_their_dates() -> None:
    (entry,) = rss("Sat, 10 Jan 1998 10:00:00 GMT")
    assert entry.published == datetime(1998, 1, 10, 10, 0, tzinfo=UTC)
    (early,) = rss("1993-04-30T12:00:00Z")  # the web was made public that day
    assert early.published == datetime(1993, 4, 30, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("written", "meant"), [
    # A zone name after an ISO date is read as it is after an RFC 822 one.
    ("2020-01-10T14:33:00 KST", datetime(2020, 1, 10, 5, 33)),
    ("2020-01-10 14:33:00 KST", datetime(2020, 1, 10, 5, 33)),  # feedparser: midnight
    ("2020-01-10T14:33:00 CET", datetime(2020, 1, 10, 13, 33)),
    # A month's short name, and a date without a time: that day at 00:00.
    ("Jan 10, 2020", datetime(2020, 1, 10)),
    ("January 10, 2020", datetime(2020, 1, 10)),
    ("Sept. 3, 2020", datetime(2020, 9, 3)),
    ("Jan 10, 2020 2:33 pm", datetime(2020, 1, 10, 14, 33)),
    ("January 10, 2020 2:33 pm", datetime(2020, 1, 10, 14, 33)),
])
def test_zone_names_after_iso_dates_and_short_month_names(written: str,
                                                          meant: datetime) -> None:
    (entry,) = rss(written)
    assert entry.published == meant.replace(tzinfo=UTC)
    assert dates.parse(written, now=NOW) == meant.replace(tzinfo=UTC)  # JSON Feed's


def test_a_date_without_a_time_is_that_day_in_the_feeds_zone() -> None:
    (entry,) = rss("Jan 10, 2020", channel_date="Fri, 10 Jan 2020 15:00:00 +0900")
    assert entry.published == datetime(2020, 1, 9, 15, 0, tzinfo=UTC)


def _korean_feed(*item_dates: str, language: str = "ko", channel_date: str = "",
                 now: datetime = NOW) -> list[Entry]:
    """A Korean news site's RSS: <language>ko</language>, times in Seoul, no zone."""
    channel = f"<lastBuildDate>{channel_date}</lastBuildDate>" if channel_date else ""
    items = "".join(f"<item><title>기사 {n}</title><link>https://news.example.kr/{n}"
                    f"</link><pubDate>{date}</pubDate></item>"
                    for n, date in enumerate(item_dates))
    lang = f"<language>{language}</language>" if language else ""
    body = (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>뉴스</title>{lang}{channel}{items}</channel></rss>")
    return parse_feed(body.encode(), "https://news.example.kr/rss", now=now).entries


def test_a_korean_feeds_dates_without_a_zone_are_seoul_time() -> None:
    """A feed in Korean that states no zone writes Seoul's time (Korea has one zone):
    9 AM is 00:00 UTC, not 9 AM UTC shown as 6 PM; 02:30 the next morning is not nine
    hours in the future (then put at the time of the fetch)."""
    now = datetime(2026, 12, 6, 19, 0, tzinfo=UTC)
    morning, night, rfc = _korean_feed(
        "2026년 12월 6일 오전 9:00", "2026-12-07 02:30:00", "Sun, 06 Dec 2026 21:10:00",
        now=now)
    assert morning.published == datetime(2026, 12, 6, 0, 0, tzinfo=UTC)
    assert night.published == datetime(2026, 12, 6, 17, 30, tzinfo=UTC)
    assert rfc.published == datetime(2026, 12, 6, 12, 10, tzinfo=UTC)
    # A zone the feed states is the feed's, whatever its language; an explicit zone
    # is the date's own.
    (stated,) = _korean_feed("2026-12-06 09:00:00", channel_date="Sun, 06 Dec 2026 "
                             "10:00:00 +0000", now=now)
    assert stated.published == datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
    (own,) = _korean_feed("Sun, 06 Dec 2026 09:00:00 +0100", now=now)
    assert own.published == datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
    # Nothing says where an English or unlabelled feed is: UTC, as before.
    for language in ("en", ""):
        (utc,) = _korean_feed("2026-12-06 09:00:00", language=language, now=now)
        assert utc.published == datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
