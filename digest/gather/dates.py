"""Publication dates as real feeds write them, where feedparser misreads them.

feedparser reads RFC 822 and W3C dates well, but the corpus of real feeds has shapes it
gets wrong, silently: "2020/1/10 14:33:00" (a Chinese forum) becomes 1 December 2020,
"Sat, Dec 16 2023 02:02:33 PM" (NBC New York) loses its PM, "mer, 16 nov 2022 …"
(Il Messaggero) and "Sat, 16 Dec 2023 14:02:33" (no zone) are not read at all, and a
Unix timestamp becomes 2015. The handlers here claim exactly those shapes and are
registered with feedparser (it tries them before its own); every other date is left to
feedparser. `parse` reads one string the same way, for JSON Feed.

A date without a zone is in the feed's own zone when the feed states one in its own
dates (an RSS channel's pubDate or lastBuildDate, a feed's updated): NBC New York
writes its items in local time and its channel in -0500. A feed that states no zone
gives no better guess than UTC, which is what it is read as. `localize` applies this to
feedparser's entries; a JSON Feed has no feed-level date, so its zoneless dates are UTC.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import feedparser

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
# "2020/1/10 14:33:00", "2020/01/10", with or without a zone.
_SLASHED = re.compile(rf"(?P<y>\d{{4}})/(?P<mo>\d{{1,2}})/(?P<d>\d{{1,2}})"
                      rf"(?:[ T]+{_TIME}(?:\s*{_AMPM})?)?(?:\s*{_ZONE})?")
# RFC 822 as written in the wild: any language, month first, 12-hour clock, no zone.
_WORD = r"[^\W\d_]+"
_LOOSE_822 = re.compile(
    rf"(?:(?P<wd>{_WORD})\.?,?\s+)?"
    rf"(?:(?P<d1>\d{{1,2}})\.?\s+(?P<m1>{_WORD})\.?|(?P<m2>{_WORD})\.?\s+(?P<d2>\d{{1,2}}),?)"
    rf"\s+(?P<y>\d{{4}}),?\s+{_TIME}(?:\s*{_AMPM})?(?:\s+{_ZONE})?")
_EPOCH = re.compile(r"\d{9,10}")  # seconds since 1970: 1973 to 2286
_ZONE_AT_END = re.compile(rf"\d:\d{{2}}(?::\d{{2}})?(?:[.,]\d+)?\s*(?:{_AMPM})?\s*{_ZONE}\s*$")


def parse(value: str) -> datetime | None:
    """One date string as an aware UTC datetime, or None; a date without a zone is UTC.

    The shapes below first, then RFC 3339 (JSON Feed's own) and RFC 822.
    """
    value = value.strip()
    if not value:
        return None
    for handler in _HANDLERS:
        if (parsed := handler(value)) is not None:
            return datetime(*parsed[:6], tzinfo=UTC)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
    return when.replace(tzinfo=when.tzinfo or UTC).astimezone(UTC)


def has_zone(value: str) -> bool:
    """Whether a date string says its zone (a timestamp is UTC by definition)."""
    value = value.strip()
    return bool(_EPOCH.fullmatch(value) or _ZONE_AT_END.search(value))


def feed_zone(feed: Any) -> timedelta | None:
    """The UTC offset the feed writes its own dates in, or None when it states none."""
    for key in ("published", "updated"):  # RSS pubDate / lastBuildDate, Atom updated
        raw = dict.get(feed, key)  # dict.get: FeedParserDict warns on "updated"
        if isinstance(raw, str) and (match := _ZONE_AT_END.search(raw.strip())):
            offset = _offset(match["zone"])
            if offset is not None:
                return offset
    return None


def localize(entries: Iterable[Any], zone: timedelta | None) -> None:
    """Move feedparser's readings of zoneless entry dates into the feed's zone.

    feedparser reads a date without a zone as UTC; in a feed that states its zone
    elsewhere, the date is that zone's local time.
    """
    if not zone:
        return
    for entry in entries:
        for key in ("published", "updated", "created"):
            raw, parsed = dict.get(entry, key), dict.get(entry, f"{key}_parsed")
            if isinstance(raw, str) and isinstance(parsed, time.struct_time) and (
                    not has_zone(raw)):
                moved = datetime(*parsed[:6]) - zone
                dict.__setitem__(entry, f"{key}_parsed", moved.timetuple())


def _offset(zone: str) -> timedelta | None:
    """A zone as an offset from UTC; None for a name not in the table."""
    if zone[0] in "+-":
        digits = zone[1:].replace(":", "")
        minutes = int(digits[:2]) * 60 + int(digits[2:])
        return timedelta(minutes=-minutes if zone[0] == "-" else minutes)
    hours = _ZONE_HOURS.get(zone.lower())
    return None if hours is None else timedelta(hours=hours)


def _utc(year: int, month: int, day: int, match: re.Match[str]) -> time.struct_time | None:
    """The 9-tuple in UTC feedparser wants, from the date and the match's time and zone."""
    hour, minute = int(match["h"] or 0), int(match["mi"] or 0)
    if ampm := match["ampm"]:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if ampm[0] in "Pp" else 0)
    zone = match["zone"]
    offset = _offset(zone) if zone else timedelta(0)
    if offset is None:
        return None  # a zone name nobody knows: let feedparser try
    try:
        local = datetime(year, month, day, hour, minute, int(match["s"] or 0))
    except ValueError:
        return None
    return (local - offset).timetuple()


def _slashed(value: str) -> time.struct_time | None:
    """'2020/1/10 14:33:00': feedparser reads the 1 as December's 1."""
    if not (match := _SLASHED.fullmatch(value.strip())):
        return None
    return _utc(int(match["y"]), int(match["mo"]), int(match["d"]), match)


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


_HANDLERS = (_slashed, _loose_822, _epoch)
for _handler in _HANDLERS:
    feedparser.registerDateHandler(_handler)
