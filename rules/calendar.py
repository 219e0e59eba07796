"""Business time: open hours of a calendar, counted as real elapsed time (DST-correct)."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from monitor.config import CalendarConfig

__all__ = ["BusinessCalendar"]

_ZERO = timedelta(0)
_DAY = timedelta(days=1)
_SECOND = timedelta(seconds=1)
# Offset changes are found by sampling each UTC year at this step, then bisecting to the second:
# no real zone changes its offset twice within six hours.
_PROBE_STEP = timedelta(hours=6)

# An open range of local time: (start, end) offsets from local midnight, end <= 24h.
OpenRange = tuple[timedelta, timedelta]
# Naive UTC instants inside the module: cheaper arithmetic, one meaning.
_Interval = tuple[datetime, datetime]
_OffsetSpan = tuple[datetime, datetime, timedelta]


@dataclass(frozen=True)
class BusinessCalendar:
    """When an SLA clock runs: the open hours of open days in one time zone, minus holidays.

    Open time is the set of real instants whose local wall time falls in an open range of an
    open, non-holiday local date, so a DST change lengthens or shortens only the ranges that
    span it, local times in a spring-forward gap are never open, and repeated fall-back times
    count twice. Every method takes aware datetimes in any zone and returns aware UTC ones.
    """

    tz: ZoneInfo
    weekdays: frozenset[int]  # date.weekday() numbers, Monday = 0
    hours: tuple[OpenRange, ...]  # sorted, non-overlapping; 24h closes at the next midnight
    holidays: frozenset[date] = frozenset()
    _open_on: tuple[bool, ...] = field(init=False, repr=False, compare=False)
    _always_open: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        weekdays = frozenset(self.weekdays)
        if not weekdays <= frozenset(range(7)):
            raise ValueError(f"weekdays must be 0 (Monday) to 6, got {sorted(weekdays)}")
        hours = tuple(sorted(self.hours))
        for start, end in hours:
            if not _ZERO <= start < end <= _DAY:
                raise ValueError(f"open range {start}-{end} is not within one day")
        for (_, earlier_end), (later_start, _) in itertools.pairwise(hours):
            if later_start < earlier_end:
                raise ValueError(f"open ranges overlap at {later_start}")
        object.__setattr__(self, "weekdays", weekdays)
        object.__setattr__(self, "hours", hours)
        object.__setattr__(self, "holidays", frozenset(self.holidays))
        object.__setattr__(self, "_open_on", tuple(day in weekdays for day in range(7)))
        object.__setattr__(
            self,
            "_always_open",
            len(weekdays) == 7 and not self.holidays and _covers_whole_day(hours),
        )

    @classmethod
    def from_config(cls, config: CalendarConfig | None) -> BusinessCalendar:
        """The calendar of a `[calendars.NAME]` table; None (no calendar) means always open."""
        if config is None:
            return cls.always_open()
        return cls(
            tz=config.tz,
            weekdays=config.weekdays,
            hours=tuple((hours.start, hours.end) for hours in config.hours),
            holidays=frozenset(config.holidays),
        )

    @classmethod
    def always_open(cls) -> BusinessCalendar:
        """Every instant open: business time is wall time."""
        return cls(
            tz=ZoneInfo("UTC"),
            weekdays=frozenset(range(7)),
            hours=((_ZERO, _DAY),),
            holidays=frozenset(),
        )

    @property
    def is_always_open(self) -> bool:
        return self._always_open

    def is_open(self, at: datetime) -> bool:
        """Whether `at` is open time (an opening instant is open, a closing instant is not)."""
        instant = _utc(at)
        if self._always_open:
            return True
        # Through UTC, so a nonexistent local time given as input reads as the real instant.
        wall = instant.replace(tzinfo=UTC).astimezone(self.tz).replace(tzinfo=None)
        if not self._open_on[wall.weekday()] or wall.date() in self.holidays:
            return False
        since_midnight = wall - datetime.combine(wall.date(), time())
        return any(start <= since_midnight < end for start, end in self.hours)

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The earliest instant by which `duration` of open time has elapsed since `start`.

        A deadline that uses up an open range exactly is its closing instant (17:30), not the
        next opening; a zero duration is `start` itself, open or not.
        """
        if duration < _ZERO:
            raise ValueError(f"duration must not be negative, got {duration}")
        begin = _utc(start)
        if not duration or self._always_open:
            return (begin + duration).replace(tzinfo=UTC)
        remaining = duration
        for lo, hi in self._open_intervals(begin):
            if hi - lo >= remaining:
                return (lo + remaining).replace(tzinfo=UTC)
            remaining -= hi - lo
        raise AssertionError("open intervals never run out")  # pragma: no cover

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Open time within [start, end); zero when `end` is not after `start`."""
        lo_bound, hi_bound = _utc(start), _utc(end)
        if hi_bound <= lo_bound or not self._has_open_time():
            return _ZERO
        if self._always_open:
            return hi_bound - lo_bound
        total = _ZERO
        for lo, hi in self._open_intervals(lo_bound):
            if lo >= hi_bound:
                break
            total += min(hi, hi_bound) - lo
        return total

    def next_open(self, at: datetime) -> datetime:
        """`at` when it is open, else the next opening instant."""
        begin = _utc(at)
        if self._always_open:
            return begin.replace(tzinfo=UTC)
        for lo, _ in self._open_intervals(begin):
            return lo.replace(tzinfo=UTC)
        raise AssertionError("open intervals never run out")  # pragma: no cover

    def _has_open_time(self) -> bool:
        # Holidays are finite and hours non-empty, so open days guarantee open time within
        # a week of any holiday run: the walks below end.
        return bool(self.weekdays) and bool(self.hours)

    def _open_intervals(self, begin: datetime) -> Iterator[_Interval]:
        """Open intervals in naive UTC, in order, clipped to start at `begin`; endless."""
        if not self._has_open_time():
            raise ValueError("the calendar has no open time (no open days or no hours)")
        hours, open_on, holidays = self.hours, self._open_on, self.holidays
        for span_lo, span_hi, offset in _offset_spans_from(self.tz, begin):
            # Within one span local time is UTC plus a constant, so walking local dates in
            # order walks UTC in order: gaps and repeats fall at span edges by construction.
            wall_lo, wall_hi = span_lo + offset, span_hi + offset
            midnight = datetime.combine(wall_lo.date(), time())
            while midnight < wall_hi:
                if open_on[midnight.weekday()] and (
                    not holidays or midnight.date() not in holidays
                ):
                    for start, end in hours:
                        lo, hi = midnight + start, midnight + end
                        if hi <= wall_lo:
                            continue
                        if lo >= wall_hi:
                            break
                        yield max(lo, wall_lo) - offset, min(hi, wall_hi) - offset
                midnight += _DAY


def _covers_whole_day(hours: Iterable[OpenRange]) -> bool:
    covered = _ZERO
    for start, end in hours:
        if start > covered:
            return False
        covered = max(covered, end)
    return covered >= _DAY


def _utc(at: datetime) -> datetime:
    """`at` as a naive UTC datetime; naive input is refused rather than guessed."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"expected an aware datetime, got naive {at.isoformat()}")
    return at.astimezone(UTC).replace(tzinfo=None)


def _offset_spans_from(tz: tzinfo, begin: datetime) -> Iterator[_OffsetSpan]:
    """(start, end, UTC offset) spans of constant offset from `begin` on, in naive UTC."""
    year = begin.year
    while True:
        for lo, hi, offset in _offset_spans(tz, year):
            if hi > begin:
                yield max(lo, begin), hi, offset
        year += 1


@functools.lru_cache(maxsize=512)
def _offset_spans(tz: tzinfo, year: int) -> tuple[_OffsetSpan, ...]:
    """A UTC year cut where the zone's offset changes (zoneinfo does not expose transitions)."""
    first, last = datetime(year, 1, 1), datetime(year + 1, 1, 1)
    spans: list[_OffsetSpan] = []
    span_start, offset = first, _offset_at(tz, first)
    probe = first
    while probe < last:
        # The last probe stops a second short: a change at `last` belongs to the next year.
        next_probe = min(probe + _PROBE_STEP, last - _SECOND)
        if next_probe <= probe:
            break
        if _offset_at(tz, next_probe) != offset:
            change = _change_within(tz, probe, next_probe)
            spans.append((span_start, change, offset))
            span_start, offset = change, _offset_at(tz, change)
        probe = next_probe
    spans.append((span_start, last, offset))
    return tuple(spans)


def _change_within(tz: tzinfo, before: datetime, after: datetime) -> datetime:
    """The first whole second in (before, after] where the offset differs from `before`'s."""
    old = _offset_at(tz, before)
    lo, hi = 0, int((after - before) / _SECOND)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset_at(tz, before + mid * _SECOND) == old:
            lo = mid
        else:
            hi = mid
    return before + hi * _SECOND


def _offset_at(tz: tzinfo, instant: datetime) -> timedelta:
    offset = instant.replace(tzinfo=UTC).astimezone(tz).utcoffset()
    assert offset is not None  # astimezone into a tzinfo always yields an aware datetime
    return offset
