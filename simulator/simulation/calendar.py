"""Virtual time for the SimPy drivers: JST datetimes from ``env.now``, 開庁日, office hours and operating windows.

``env.now`` counts seconds from the run's start; every date a component or a report sees is derived from it as
a timezone-aware JST datetime. Closed periods (nights, weekends, 祝日 via jpholiday, 12/29–1/3, maintenance
windows, outages) are kept as merged intervals so a station can ask "when may this job start". This module
must never read the wall clock: only the simulation decides what time it is.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import jpholiday

from simulator.errors import InputError

__all__ = [
    "JST",
    "Availability",
    "SimClock",
    "Window",
    "is_open_day",
    "parse_duration",
    "parse_hhmm",
]

JST = ZoneInfo("Asia/Tokyo")
DAY = 86_400.0


def is_open_day(day: date) -> bool:
    """開庁日: a weekday that is not a 祝日 (jpholiday) and not in the 年末年始 closure 12/29–1/3 (F-37)."""
    if day.weekday() >= 5 or jpholiday.is_holiday(day):
        return False
    return not ((day.month == 12 and day.day >= 29) or (day.month == 1 and day.day <= 3))


def parse_hhmm(text: str, field: str) -> time:
    try:
        hours, minutes = (int(part) for part in text.split(":"))
        if hours == 24 and minutes == 0:
            return time(23, 59, 59, 999_999)
        return time(hours, minutes)
    except (ValueError, TypeError):
        raise InputError(field, f"must be HH:MM (got {text!r})") from None


def parse_duration(value: object, field: str) -> float:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"2h"``, ``"1d"`` or ``"500ms"``."""
    if isinstance(value, bool):
        raise InputError(field, "must be a duration such as 90s, 15m, 2h or 1d")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        units = (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0), ("d", DAY))
        for suffix, scale in units:
            if text.endswith(suffix):
                number = text[: -len(suffix)]
                try:
                    seconds = float(number) * scale
                except ValueError:
                    raise InputError(field, f"must be a duration such as 90s, 15m, 2h or 1d (got {value!r})") from None
                break
        else:
            try:
                seconds = float(text)
            except ValueError:
                raise InputError(field, f"must be a duration such as 90s, 15m, 2h or 1d (got {value!r})") from None
    else:
        raise InputError(field, "must be a duration such as 90s, 15m, 2h or 1d")
    if seconds < 0:
        raise InputError(field, "must not be negative")
    return seconds


@dataclass(frozen=True)
class SimClock:
    """Maps ``env.now`` (seconds since ``start``) to JST datetimes and back."""

    start: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise InputError("start", "must be timezone-aware (JST)")

    def at(self, now: float) -> datetime:
        return (self.start + timedelta(seconds=now)).astimezone(JST)

    def seconds(self, moment: datetime) -> float:
        if moment.tzinfo is None:
            raise InputError("time", "must be timezone-aware (JST)")
        return (moment - self.start).total_seconds()

    def midnight(self, day: date) -> float:
        """Seconds at 00:00 JST of ``day``."""
        return self.seconds(datetime.combine(day, time(0, 0), JST))

    def days(self, horizon: float) -> Iterator[date]:
        """Every calendar day that overlaps [0, horizon)."""
        first = self.at(0).date()
        last = self.at(max(horizon - 1e-6, 0)).date()
        day = first
        while day <= last:
            yield day
            day += timedelta(days=1)


@dataclass(frozen=True)
class Window:
    """When a system takes work. ``open_days_only``: only 開庁日; ``hours``: (from, to) each day it is open;
    ``weekly_maintenance``: (weekday 0=Mon, from, to) closed each week (F-12)."""

    name: str
    hours: tuple[time, time] | None = None  # None: 24 hours
    open_days_only: bool = False
    weekly_maintenance: tuple[int, time, time] | None = None

    def closed(self, clock: SimClock, horizon: float) -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        for day in clock.days(horizon):
            base = clock.midnight(day)
            if self.open_days_only and not is_open_day(day):
                out.append((base, base + DAY))
                continue
            if self.hours is not None:
                opens = _clock_seconds(self.hours[0])
                closes = _clock_seconds(self.hours[1])
                out.append((base, base + opens))
                out.append((base + closes, base + DAY))
            if self.weekly_maintenance is not None and day.weekday() == self.weekly_maintenance[0]:
                out.append((base + _clock_seconds(self.weekly_maintenance[1]),
                             base + _clock_seconds(self.weekly_maintenance[2])))
        return out


def _clock_seconds(moment: time) -> float:
    return moment.hour * 3600.0 + moment.minute * 60.0 + moment.second + moment.microsecond / 1e6


class Availability:
    """Closed intervals of one station or link, merged and sorted, with the two questions a scheduler asks."""

    __slots__ = ("ends", "starts")

    def __init__(self, closed: Iterable[tuple[float, float]] = ()) -> None:
        merged: list[list[float]] = []
        for start, end in sorted((a, b) for a, b in closed if b > a):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        self.starts: list[float] = [a for a, _ in merged]
        self.ends: list[float] = [b for _, b in merged]

    def __bool__(self) -> bool:
        return bool(self.starts)

    def union(self, other: Availability | Sequence[tuple[float, float]]) -> Availability:
        extra = list(zip(other.starts, other.ends, strict=True)) if isinstance(other, Availability) else list(other)
        return Availability([*zip(self.starts, self.ends, strict=True), *extra])

    def intervals(self) -> list[tuple[float, float]]:
        return list(zip(self.starts, self.ends, strict=True))

    def is_up(self, t: float) -> bool:
        i = bisect_right(self.ends, t)
        return not (i < len(self.starts) and self.starts[i] <= t)

    def next_up(self, t: float) -> float:
        """``t`` if open then, else the end of the closed interval containing it."""
        i = bisect_right(self.ends, t)
        if i < len(self.starts) and self.starts[i] <= t:
            return self.ends[i]
        return t

    def fit(self, t: float, service: float) -> float:
        """Earliest start ≥ ``t`` such that [start, start + service) touches no closed interval."""
        starts, ends = self.starts, self.ends
        n = len(starts)
        i = bisect_right(ends, t)
        while i < n:
            if t + service <= starts[i] and t < starts[i]:
                return t
            if ends[i] > t:
                t = ends[i]
            i += 1
        return t

    def closed_within(self, a: float, b: float) -> float:
        """Seconds closed inside [a, b)."""
        total = 0.0
        for start, end in zip(self.starts, self.ends, strict=True):
            lo, hi = max(start, a), min(end, b)
            if hi > lo:
                total += hi - lo
        return total
