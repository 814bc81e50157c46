"""Publication dates as real feeds write them, where feedparser misreads them.

feedparser reads RFC 822 and W3C dates well, but the corpus of real feeds and an outside
attack found shapes it gets wrong, silently: "2020/1/10 14:33:00" (a Chinese forum) and
"2026.12.05 14:30" and "2026년 12월 6일 오후 1:11" (Korean sites) become the 1st of the
month at midnight, "Sat, Dec 16 2023 02:02:33 PM" (NBC New York) and
"2026-12-05 12:30:00 AM" lose their AM/PM, "mer, 16 nov 2022 …" (Il Messaggero),
"Sat, 16 Dec 2023 14:02:33" (no zone) and "12/5/2026 11:25:00 PM" are not read at all, a
Unix timestamp becomes 2015, and a bare time ("09:15:00 PM") gets the day feedparser runs
on, so an old story looks published just now. The handlers here claim exactly those
shapes and are registered with feedparser (it tries them before its own); every other
date is left to feedparser. `parse` reads one string the same way, for JSON Feed.

A time without a date is no date: the item is undated, never "now". Nor is a date that
cannot be one ("2020-13-45", which feedparser moves on to 2021-01-01), or a date before
1990 (`EARLIEST`): feeds write the Unix epoch ("Thu, 01 Jan 1970 00:00:00 +0000", in any
zone), 0001-01-01, 1900-01-01 or DOS's 1980-01-01 when they know no date, and nothing was
published on the web before 1991; archives of the 1990s keep their dates. Read as 1970,
such an item was dropped from editions as old.

A date without a time ("Jan 10, 2020", "2026.11.30") is that day at 00:00.

Day and month before the year ("05/12/2026") are ambiguous when both are 12 or less.
They are decided, in this order, by: a part over 12 ("25/11/2026" is day first); the
feed's other dates in the same shape (a feed that writes "25/11/2026" writes day first
throughout); a 12-hour clock (AM/PM is American: month first); the separator, as PHP's
strtotime does: slashes are month first (dateutil's default, and JavaScript's), dots and
dashes day first ("05.12.2026" is German, Russian, Polish...). Then a reading more than a
day in the future gives way to the other one when that one is not (read on 27 November,
"12/05/2026" is 12 May, not next week). feedparser itself reads no such dates, and
rss2email only uses feedparser's readings.

A date without a zone is in the feed's own zone when the feed states one in its own
dates (an RSS channel's pubDate or lastBuildDate, a feed's updated): NBC New York
writes its items in local time and its channel in -0500. A feed that states no zone but
its language is in that language's zone when it has one only (`LANGUAGE_ZONES`: a Korean
site writes Seoul's time). Any other gives no better guess than UTC, which is what it is
read as. `settle` applies this, and
the two rules above that need the feed and the time of reading, to feedparser's
entries; a JSON Feed has no feed-level date, so its zoneless dates are UTC.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import feedparser

# A date further ahead than this is not trusted (feeds.FUTURE_SLACK, which says why); a
# reading of an ambiguous date this far ahead gives way to the other reading.
FUTURE_SLACK = timedelta(days=1)
# The earliest date taken as a publication date; before it, a placeholder (the docstring).
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)

_ENGLISH_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ENGLISH_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                   "nov", "dec")
# Month names and abbreviations of the languages feeds come in most, English first;
# a name is looked up whole, then by its first four letters, then three.
_MONTHS = {
    **{m: i for i, m in enumerate(_ENGLISH_MONTHS, 1)},
    "gen": 1, "ene": 1, "janv": 1, "fév": 2, "fev": 2, "mär": 3, "mrz": 3, "mrt": 3,
    "avr": 4, "abr": 4, "mag": 5, "mai": 5, "mei": 5, "giu": 6, "juin": 6, "lug": 7,
    "juil": 7, "ago": 8, "aoû": 8, "aou": 8, "set": 9, "ott": 10, "okt": 10, "out": 10,
    "dic": 12, "déc": 12, "dez": 12,
}
# Zone names feeds write: RFC 822's, and the European and Asian ones real feeds use
# (feedparser and the standard library read CET as UTC). Ambiguous ones (IST) are left out.
_ZONE_HOURS = {
    "ut": 0, "utc": 0, "gmt": 0, "z": 0, "wet": 0,
    "ast": -4, "adt": -3, "est": -5, "edt": -4, "cst": -6, "cdt": -5,
    "mst": -7, "mdt": -6, "pst": -8, "pdt": -7, "akst": -9, "akdt": -8, "hst": -10,
    "bst": 1, "cet": 1, "met": 1, "west": 1, "cest": 2, "mest": 2, "eet": 2, "eest": 3,
    "msk": 3, "hkt": 8, "sgt": 8, "awst": 8, "jst": 9, "kst": 9,
    "acst": 9.5, "aest": 10, "acdt": 10.5, "aedt": 11, "nzst": 12, "nzdt": 13,
}
_TIME = r"(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2}))?(?:[.,]\d+)?"
_AMPM = r"(?P<ampm>[AaPp]\.?[Mm]\.?)"
_ZONE = r"(?P<zone>[Zz]|[+-]\d{2}:?\d{2}|(?![AaPp]\.?[Mm]\.?\s*$)[A-Za-z]{1,5})"
# Year first: "2020/1/10 14:33:00", "2026.12.05. 14:30" (Korean sites end the day with a
# dot, and the ko-KR locale writes "2026. 12. 5."), "2026-12-05 12:30:00 AM".
_YEAR_FIRST = (r"(?P<y>\d{4})(?P<ys>[./-])\s?(?P<ym>\d{1,2})(?P=ys)\s?(?P<yd>\d{1,2})"
               r"(?:(?<=\d)\.(?=\s|$))?")
# Day and month before the year: "12/5/2026", "05.12.2026", "05-12-2026".
_YEAR_LAST = r"(?P<a>\d{1,2})(?P<ls>[./-])(?P<b>\d{1,2})(?P=ls)(?P<ly>\d{4})"
_NUMERIC = re.compile(rf"(?:{_YEAR_FIRST}|{_YEAR_LAST})"
                      rf"(?:(?:[ T]+|,\s*){_TIME}(?:\s*{_AMPM})?)?(?:\s*{_ZONE})?")
_TIME_ONLY = re.compile(rf"{_TIME}(?:\s*{_AMPM})?(?:\s*{_ZONE})?")
# Korean: "2026년 12월 5일 (토) 오후 1:11" is "2026.12.5 1:11 PM"; 오전 is AM, 오후 PM.
_KOREAN_DATE = re.compile(r"(\d{4})\s*년\s*(\d{1,2})\s*월\s*(\d{1,2})\s*일")
_KOREAN_WEEKDAY = re.compile(r"\s*\([월화수목금토일]\)")
_CLOCK = r"\d{1,2}:\d{2}(?::\d{2})?"
_KOREAN_MERIDIEM = re.compile(rf"(오전|오후)\s*({_CLOCK})|({_CLOCK})\s*(오전|오후)")
# RFC 822 as written in the wild: any language, month first, 12-hour clock, no zone,
# no time ("Jan 10, 2020").
_WORD = r"[^\W\d_]+"
_LOOSE_822 = re.compile(
    rf"(?:(?P<wd>{_WORD})\.?,?\s+)?"
    rf"(?:(?P<d1>\d{{1,2}})\.?\s+(?P<m1>{_WORD})\.?|(?P<m2>{_WORD})\.?\s+(?P<d2>\d{{1,2}}),?)"
    rf"\s+(?P<y>\d{{4}})(?:,?\s+{_TIME}(?:\s*{_AMPM})?(?:\s+{_ZONE})?)?")
# A year written as "0001": email.utils takes it for 2001, as it does "01".
_YEAR_ZERO = re.compile(r"(?<![\d:+-])0\d{3}(?!\d)")  # not a zone: "-0700"
# An ISO 8601 date at the start, checked for a month and day that exist.
_ISO_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?!\d)")
_EPOCH = re.compile(r"\d{9,10}")  # seconds since 1970: 1973 to 2286
_ZONE_AT_END = re.compile(rf"\d:\d{{2}}(?::\d{{2}})?(?:[.,]\d+)?\s*(?:{_AMPM})?\s*{_ZONE}\s*$")


def parse(value: str, *, now: datetime | None = None) -> datetime | None:
    """One date string as an aware UTC datetime, or None; a date without a zone is UTC.

    The shapes below first, then RFC 3339 (JSON Feed's own) and RFC 822. `now` decides
    between day first and month first as the module's docstring says.
    """
    value = value.strip()
    if not value or _TIME_ONLY.fullmatch(_western(value)) or _YEAR_ZERO.search(value):
        return None
    for parsed in (_numeric(value, now=now), _loose_822(value), _epoch(value)):
        if parsed is not None:
            return _dated(datetime(*parsed[:6], tzinfo=UTC))
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
    try:
        return _dated(when.replace(tzinfo=when.tzinfo or UTC).astimezone(UTC))
    except OverflowError:  # 0001-01-01 in a zone east of UTC
        return None


def is_placeholder(when: datetime) -> bool:
    """Whether a reading is too early to be a publication date (the docstring's EARLIEST)."""
    return when < EARLIEST


def _dated(when: datetime) -> datetime | None:
    return None if is_placeholder(when) else when


def has_zone(value: str) -> bool:
    """Whether a date string says its zone (a timestamp is UTC by definition)."""
    value = value.strip()
    return bool(_EPOCH.fullmatch(value) or _ZONE_AT_END.search(value))


#: The one zone of the places a language is written in, for a feed that states none:
#: Korea, Japan, and China, Taiwan and Hong Kong (all UTC+8) each keep a single zone.
LANGUAGE_ZONES = {"ko": timedelta(hours=9), "ja": timedelta(hours=9),
                  "zh": timedelta(hours=8)}


def feed_zone(feed: Any) -> timedelta | None:
    """The UTC offset the feed writes its own dates in: the zone of its own dates, else
    that of its language when the language is written in one zone only (a Korean site
    writes Seoul's time), else None."""
    for key in ("published", "updated"):  # RSS pubDate / lastBuildDate, Atom updated
        raw = dict.get(feed, key)  # dict.get: FeedParserDict warns on "updated"
        if isinstance(raw, str) and (match := _ZONE_AT_END.search(raw.strip())):
            offset = _offset(match["zone"])
            if offset is not None:
                return offset
    language = dict.get(feed, "language")
    if isinstance(language, str) and language.strip():
        return LANGUAGE_ZONES.get(language.strip().replace("_", "-").split("-")[0].lower())
    return None


def settle(entries: Sequence[Any], zone: timedelta | None, now: datetime) -> None:
    """Correct feedparser's readings of entry dates with what only the feed knows.

    A bare time is no date (feedparser dates it today). Day and month before the year
    are read in the order the feed's other dates show, else by the rules of the
    module's docstring, with `now` to tell the future. A date without a zone is in the
    feed's zone (feedparser reads it as UTC).
    """
    keys = ("published", "updated", "created")
    raws = [[raw if isinstance(raw := dict.get(e, key), str) else None for key in keys]
            for e in entries]
    order = _feed_order(raw for row in raws for raw in row if raw)
    for entry, row in zip(entries, raws, strict=True):
        for key, raw in zip(keys, row, strict=True):
            parsed = dict.get(entry, f"{key}_parsed")
            if raw is None:
                continue
            if _TIME_ONLY.fullmatch(_western(raw.strip())) or _impossible(raw):
                parsed = None
            elif (own := _numeric(raw, now=now, day_first=order, zone=zone)) is not None:
                parsed = own
            elif zone and isinstance(parsed, time.struct_time) and not has_zone(raw):
                parsed = (datetime(*parsed[:6]) - zone).timetuple()
            else:
                continue
            dict.__setitem__(entry, f"{key}_parsed", parsed)


def _offset(zone: str) -> timedelta | None:
    """A zone as an offset from UTC; None for a name not in the table."""
    if zone[0] in "+-":
        digits = zone[1:].replace(":", "")
        minutes = int(digits[:2]) * 60 + int(digits[2:])
        return timedelta(minutes=-minutes if zone[0] == "-" else minutes)
    hours = _ZONE_HOURS.get(zone.lower())
    return None if hours is None else timedelta(hours=hours)


def _utc(year: int, month: int, day: int, match: re.Match[str],
         zone: timedelta | None = None) -> time.struct_time | None:
    """The 9-tuple in UTC feedparser wants, from the date and the match's time and zone.

    A match without a zone is in `zone`, or UTC.
    """
    hour, minute = int(match["h"] or 0), int(match["mi"] or 0)
    if ampm := match["ampm"]:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if ampm[0] in "Pp" else 0)
    written = match["zone"]
    offset = _offset(written) if written else zone or timedelta(0)
    if offset is None:
        return None  # a zone name nobody knows: let feedparser try
    try:
        local = datetime(year, month, day, hour, minute, int(match["s"] or 0))
    except ValueError:
        return None
    return (local - offset).timetuple()


def _numeric(value: str, *, now: datetime | None = None, day_first: bool | None = None,
             zone: timedelta | None = None) -> time.struct_time | None:
    """'2020/1/10 14:33', '2026년 12월 6일 오후 1:11', '12/5/2026 11:25:00 PM'.

    feedparser reads the first two as the 1st of the month at midnight, the third not at
    all. ISO 8601 without AM/PM is left to feedparser. `day_first` is what the feed's
    other dates show; `now` and `zone` as in `settle`.
    """
    if not (match := _NUMERIC.fullmatch(_western(value.strip()))):
        return None
    if match["y"]:
        named_zone = bool(match["zone"]) and match["zone"][0] not in "+-Zz"
        if match["ys"] == "-" and not match["ampm"] and not named_zone:
            return None  # ISO 8601: feedparser's (it reads "KST" as UTC, or not at all)
        return _utc(int(match["y"]), int(match["ym"]), int(match["yd"]), match, zone)
    a, b, year = int(match["a"]), int(match["b"]), int(match["ly"])
    decided = True
    if a > 12 or b > 12:  # the date itself says
        day_first = a > 12
    elif day_first is None:  # the feed does not say either
        day_first, decided = not match["ampm"] and match["ls"] != "/", a == b
    orders = [(b, a), (a, b)] if day_first else [(a, b), (b, a)]  # (month, day)
    readings = [reading for month, day in orders[:1 if decided else 2]
                if (reading := _utc(year, month, day, match, zone)) is not None]
    if now is not None:  # a reading too far ahead gives way to one that is not
        readings = [r for r in readings
                    if datetime(*r[:6], tzinfo=UTC) <= now + FUTURE_SLACK] or readings
    return readings[0] if readings else None


def _impossible(value: str) -> bool:
    """'2020-13-45': an ISO date whose month or day does not exist (feedparser carries
    the excess over: 2021-01-01)."""
    if not (match := _ISO_DATE.match(value.strip())):
        return False
    try:
        datetime(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return True
    return False


def _feed_order(values: Iterable[str]) -> bool | None:
    """Whether the feed writes day first ('25/11/2026'), month first, or cannot tell."""
    seen = set()
    for value in values:
        if (match := _NUMERIC.fullmatch(_western(value.strip()))) and match["a"]:
            a, b = int(match["a"]), int(match["b"])
            if a > 12 or b > 12:
                seen.add(a > 12)
    return seen.pop() if len(seen) == 1 else None


def _western(value: str) -> str:
    """A Korean date written as the numeric shapes: '2026.12.6 1:11 PM'."""
    if not any("\uac00" <= c <= "\ud7a3" for c in value):  # no Hangul: as it is
        return value
    value = _KOREAN_WEEKDAY.sub("", _KOREAN_DATE.sub(r"\1.\2.\3", value))
    return _KOREAN_MERIDIEM.sub(
        lambda m: f"{m[2] or m[3]} {'PM' if (m[1] or m[4]) == '오후' else 'AM'}", value)


def _loose_822(value: str) -> time.struct_time | None:
    """RFC 822 with what feedparser cannot read: other languages, month first, AM/PM, no zone."""
    if not (match := _LOOSE_822.fullmatch(value.strip())):
        return None
    month = _month(match["m1"] or match["m2"])
    if month is None:
        return None  # not a date
    english = ((match["wd"] or "mon")[:3].lower() in _ENGLISH_DAYS
               and (match["m1"] or "")[:3].lower() in _ENGLISH_MONTHS)
    numeric_zone = bool(match["zone"]) and match["zone"][0] in "+-Zz"
    if english and numeric_zone and not match["ampm"]:
        return None  # plain RFC 822: feedparser's
    return _utc(int(match["y"]), month, int(match["d1"] or match["d2"]), match)


def _epoch(value: str) -> time.struct_time | None:
    """'1518478934': feedparser takes it for a date in 2015."""
    if not _EPOCH.fullmatch(value.strip()):
        return None
    return time.gmtime(int(value))


def _month(name: str) -> int | None:
    name = name.lower().rstrip(".")
    return _MONTHS.get(name) or _MONTHS.get(name[:4]) or _MONTHS.get(name[:3])


_HANDLERS = (_numeric, _loose_822, _epoch)
for _handler in _HANDLERS:
    feedparser.registerDateHandler(_handler)
