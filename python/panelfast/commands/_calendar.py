"""When a weekly schedule's entries fall, as instants, in the schedule's IANA time zone.

Each (local date, entry) gives exactly one instant, so daylight saving time
never makes an entry run twice or not at all:

- a wall-clock time that does not exist that day (spring forward: 02:30 in
  Europe/Paris on the last Sunday of March) falls on the first minute that
  exists after it (03:00 local), once;
- a wall-clock time that exists twice (fall back: 02:30 on the last Sunday
  of October) falls on its first occurrence only (summer time).
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache

from panelfast.commands._model import Schedule

__all__ = ["Occurrence", "entry_instant", "latest_before", "next_after", "occurrences"]

#: The longest gap a time zone ever made (Samoa skipped a whole day in 2011), in minutes.
_LONGEST_GAP_MIN = 48 * 60


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One entry of one schedule at one instant (unix seconds)."""

    at: float
    schedule_id: str
    entry: int
    action: str
    #: The entry's wall-clock time: entries a DST gap moved to the same instant
    #: keep their wall-clock order (02:00 off, then 02:30 on: on).
    wall: str = ""


@lru_cache(maxsize=64)
def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def _exists(wall: datetime, zone: zoneinfo.ZoneInfo) -> datetime | None:
    """``wall`` (naive local time) as a UTC instant, or None if the zone skips it."""
    instant = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    back = instant.astimezone(zone).replace(tzinfo=None)
    return instant if back == wall else None


def entry_instant(day: date, hour: int, minute: int, zone: zoneinfo.ZoneInfo) -> float:
    """The instant of local ``hour:minute`` on ``day``: see the module docstring for DST."""
    wall = datetime.combine(day, time(hour, minute))
    instant = _exists(wall, zone)
    step = timedelta(minutes=1)
    probe = wall
    for _ in range(_LONGEST_GAP_MIN):
        if instant is not None:
            return instant.timestamp()
        probe += step
        instant = _exists(probe, zone)
    raise ValueError(f"{zone.key}: no valid local time within 48 h after {wall}")


def occurrences(schedules: Iterable[Schedule], after: float, until: float) -> list[Occurrence]:
    """Every entry falling in ``(after, until]`` (unix seconds), in order of time."""
    found: list[Occurrence] = []
    if until <= after:
        return found
    for schedule in schedules:
        zone = _zone(schedule.timezone)
        # One day of margin each side: an entry shifted out of a gap may land on the next day.
        first = datetime.fromtimestamp(after, zone).date() - timedelta(days=1)
        last = datetime.fromtimestamp(until, zone).date() + timedelta(days=1)
        day = first
        while day <= last:
            weekday = day.weekday()
            for k, entry in enumerate(schedule.entries):
                if weekday not in entry.weekdays():
                    continue
                at = entry_instant(day, entry.hour, entry.minute, zone)
                if after < at <= until:
                    found.append(Occurrence(at, schedule.id, k, entry.action, entry.at))
            day += timedelta(days=1)
    found.sort(key=lambda o: (o.at, o.schedule_id, o.wall, o.entry))
    return found


def latest_before(schedule: Schedule, now: float) -> Occurrence | None:
    """The schedule's last entry at or before ``now``: the state it says the output is in."""
    # Weekly entries: the last one is within the past week, if there is any.
    past = occurrences([schedule], now - 8 * 86400, now)
    return past[-1] if past else None


def next_after(schedules: Iterable[Schedule], now: float) -> float | None:
    """The first instant after ``now`` at which any entry falls, within eight days."""
    ahead = occurrences(schedules, now, now + 8 * 86400)
    return ahead[0].at if ahead else None
