"""A list's schedule: its 5-field cron in its timezone, and which times are due.

Pure functions over the lists' settings and a `now`, so tests move the clock by hand.
The trigger is APScheduler's CronTrigger (so `digest serve` and `digest status` agree
to the second), fixed in two places where it differs from cron: weekday numbers and
the night clocks fall back.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from digest.errors import InvalidInput
from subscribers.models import MailingList

log = logging.getLogger(__name__)

_US = dt.timedelta(microseconds=1)


class ListTrigger(CronTrigger):  # type: ignore[misc]  # APScheduler 3 has no type hints
    """A cron trigger that fires a fixed time once on the night clocks fall back.

    APScheduler fires "30 2 * * *" at 02:30 summer time and again at 02:30 winter time:
    two editions of a daily list. Like Vixie cron, a schedule with a fixed hour keeps
    the first of the two; one with a wildcard hour ("*/15 * * * *") keeps both, as they
    are an hour apart. A time that does not exist (02:30 as clocks spring forward) fires
    an hour later, at 03:30: APScheduler's choice, kept.
    """

    def get_next_fire_time(self, previous: dt.datetime | None,
                           now: dt.datetime) -> dt.datetime | None:
        fire: dt.datetime | None = super().get_next_fire_time(previous, now)
        while fire is not None and self._second_of_repeated_hour(fire):
            fire = super().get_next_fire_time(fire, fire)
        return fire

    def _second_of_repeated_hour(self, fire: dt.datetime) -> bool:
        hour = next(f for f in self.fields if f.name == "hour")
        if str(hour).startswith("*"):
            return False
        local = fire.astimezone(self.timezone)
        first = local.replace(fold=0)
        return bool(first.astimezone(dt.UTC) != local.astimezone(dt.UTC))


_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def list_trigger(schedule: str, timezone: str) -> ListTrigger:
    """The trigger for a list's 5-field cron in its IANA timezone."""
    try:
        minute, hour, day, month, weekday = schedule.split()
        if day not in ("*", "?") and weekday not in ("*", "?"):
            # cron fires when either matches, APScheduler when both do: refuse rather
            # than guess which one was meant.
            raise ValueError("give a day of the month or a weekday, not both")
        return ListTrigger(minute=minute, hour=hour, day=day.replace("?", "*"), month=month,
                           day_of_week=cron_weekdays(weekday),
                           timezone=ZoneInfo(timezone or "UTC"))
    except (ValueError, ZoneInfoNotFoundError) as exc:
        raise InvalidInput(
            f"schedule {schedule!r} in {timezone!r} cannot be used: {exc}; change it with "
            "`digest lists set` (minute hour day month weekday, e.g. '0 7 * * mon-fri')"
        ) from None


def cron_weekdays(field: str) -> str:
    """A cron weekday field (0 or 7 = Sunday) as APScheduler 3 names, which count from
    Monday = 0: "1-5" -> "mon,tue,wed,thu,fri", "*/2" -> "sun,tue,thu,sat"."""
    days: set[int] = set()
    for part in field.lower().split(","):
        body, _, step = part.partition("/")
        if body in ("*", "?"):
            low, high = 0, 6
        elif "-" in body:
            low, high = (_day(x) for x in body.split("-", 1))
            high = 7 if high == 0 and low > 0 else high  # "fri-sun", "5-0"
        else:
            low = high = _day(body)
            high = 6 if step else high  # "1/2": from Monday, every other day
        if low > high:
            raise ValueError(f"weekday range {body!r} runs backwards")
        days |= {d % 7 for d in range(low, high + 1, int(step) if step else 1)}
    if len(days) == 7:
        return "*"
    return ",".join(_DAYS[d] for d in sorted(days, key=lambda d: (d - 1) % 7))


def _day(token: str) -> int:
    if token in _DAYS:
        return _DAYS.index(token)
    if token == "7":  # cron's other Sunday; kept as 7 so ranges like "5-7" go up
        return 7
    if token.isdigit() and int(token) < 7:
        return int(token)
    raise ValueError(f"weekday {token!r} is not 0-7 or sun-sat")


def fire_times(trigger: ListTrigger, after: dt.datetime,
               until: dt.datetime | None = None) -> Iterator[dt.datetime]:
    """The trigger's times in (after, until], oldest first, in UTC; no end without
    `until`."""
    fire = trigger.get_next_fire_time(None, after + _US)
    while fire is not None and (until is None or fire <= until):
        yield fire.astimezone(dt.UTC)
        fire = trigger.get_next_fire_time(fire, fire)


def next_runs(trigger: ListTrigger, now: dt.datetime, count: int) -> list[dt.datetime]:
    """The trigger's next `count` times after `now`, in UTC."""
    return list(islice(fire_times(trigger, now), count))


@dataclass(frozen=True)
class Due:
    """A list's scheduled time to run now, and times passed over since the last one."""

    list_id: int
    list_name: str
    scheduled_for: dt.datetime | None  # the newest time inside the grace window, if any
    skipped_from: dt.datetime | None  # the oldest time passed over: too late, or coalesced


def due_editions(lists: Iterable[MailingList], now: dt.datetime,
                 grace: dt.timedelta) -> list[Due]:
    """What each list has due at `now`: pure over the lists' schedules and markers.

    Of the times since the list's `last_scheduled_for` (or its creation), only the
    newest runs, and only if it is at most `grace` old; the others are passed over, so
    downtime never sends a list two editions at once.
    """
    due: list[Due] = []
    for mlist in lists:
        if mlist.archived_at is not None:
            continue
        try:
            trigger = list_trigger(mlist.schedule, mlist.timezone)
        except InvalidInput as exc:
            log.error("list %s: %s", mlist.name, exc)
            continue
        done = mlist.last_scheduled_for or mlist.created_at
        # Only the grace window is walked: a minutely cron is 360 steps in 6 hours.
        newest = deque(fire_times(trigger, max(done, now - grace), now), maxlen=1)
        latest = newest[0] if newest else None
        first = next(fire_times(trigger, done, now), None)
        skipped = first if first != latest else None
        if latest or skipped:
            due.append(Due(mlist.id, mlist.name, latest, skipped))
    return due
