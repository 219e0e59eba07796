"""Properties of rules.calendar over random calendars and instants, DST changes included.

Business time is exact to the microsecond: every comparison below is equality, not tolerance.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.calendar import BusinessCalendar

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TINY = timedelta(microseconds=1)

ZONES = [
    "Europe/London",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Kolkata",
    "UTC",
    "America/Santiago",  # changes at local midnight
    "Australia/Lord_Howe",  # a 30-minute DST shift
]
# Local dates of DST changes in 2026-2027 for the zones above, where instants are drawn densely.
DST_DATES = [
    date(2026, 3, 8),
    date(2026, 3, 29),
    date(2026, 4, 5),
    date(2026, 9, 6),
    date(2026, 10, 4),
    date(2026, 10, 25),
    date(2026, 11, 1),
    date(2027, 3, 14),
    date(2027, 3, 28),
    date(2027, 4, 4),
    date(2027, 10, 3),
    date(2027, 10, 31),
    date(2027, 11, 7),
]


@st.composite
def open_ranges(draw: st.DrawFn) -> tuple[tuple[timedelta, timedelta], ...]:
    """1-3 sorted ranges on a quarter-hour grid, sometimes touching, possibly ending at 24:00."""
    count = draw(st.integers(1, 3))
    touching = draw(st.booleans())
    size = count + 1 if touching else 2 * count
    points = draw(st.lists(st.integers(0, 96), min_size=size, max_size=size, unique=True))
    points.sort()
    quarters = [timedelta(minutes=15 * p) for p in points]
    if touching:
        return tuple(itertools.pairwise(quarters))
    return tuple(zip(quarters[::2], quarters[1::2], strict=True))


@st.composite
def calendars(draw: st.DrawFn) -> BusinessCalendar:
    holidays = draw(
        st.frozensets(
            st.one_of(
                st.dates(date(2025, 12, 1), date(2028, 1, 31)),
                st.sampled_from(DST_DATES),
            ),
            max_size=8,
        )
    )
    return BusinessCalendar(
        tz=ZoneInfo(draw(st.sampled_from(ZONES))),
        weekdays=draw(st.frozensets(st.integers(0, 6), min_size=1)),
        hours=draw(open_ranges()),
        holidays=holidays,
    )


near_dst = st.builds(
    lambda day, minutes: (
        datetime.combine(day, datetime.min.time(), UTC) + timedelta(minutes=minutes)
    ),
    st.sampled_from(DST_DATES),
    st.integers(-48 * 60, 48 * 60),
)
instants = st.one_of(
    st.datetimes(datetime(2026, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC)),
    near_dst,
)
# Whole quarter hours land on opening and closing instants; microseconds test exactness.
durations = st.one_of(
    st.integers(0, 4 * 60).map(lambda q: timedelta(minutes=15 * q)),
    st.timedeltas(timedelta(0), timedelta(hours=60)),
)


@FAST
@given(calendars(), instants, durations)
def test_between_undoes_add(cal: BusinessCalendar, start: datetime, duration: timedelta) -> None:
    due = cal.add(start, duration)
    assert due.tzinfo is UTC
    assert due >= start
    assert cal.between(start, due) == duration


@FAST
@given(calendars(), instants, durations.filter(bool))
def test_add_ends_in_open_time_and_is_earliest(
    cal: BusinessCalendar, start: datetime, duration: timedelta
) -> None:
    due = cal.add(start, duration)
    # Either open or the closing instant of an open interval.
    assert cal.is_open(due - TINY)
    assert cal.between(start, due - TINY) < duration


@FAST
@given(calendars(), instants, durations, durations)
def test_add_is_monotonic_in_duration(
    cal: BusinessCalendar, start: datetime, first: timedelta, second: timedelta
) -> None:
    shorter, longer = sorted((first, second))
    assert cal.add(start, shorter) <= cal.add(start, longer)


@FAST
@given(calendars(), instants, instants, durations)
def test_add_is_monotonic_in_start(
    cal: BusinessCalendar, first: datetime, second: datetime, duration: timedelta
) -> None:
    earlier, later = sorted((first, second))
    assert cal.add(earlier, duration) <= cal.add(later, duration)


@FAST
@given(calendars(), instants, durations, durations)
def test_between_is_additive(
    cal: BusinessCalendar, start: datetime, first: timedelta, second: timedelta
) -> None:
    a, b, c = start, start + first, start + first + second
    assert cal.between(a, b) + cal.between(b, c) == cal.between(a, c)
    assert cal.between(c, a) == timedelta(0) or a == c


@FAST
@given(calendars(), instants)
def test_next_open(cal: BusinessCalendar, at: datetime) -> None:
    opening = cal.next_open(at)
    assert opening >= at
    assert cal.is_open(opening)
    assert cal.between(at, opening) == timedelta(0)
    assert (opening == at) == cal.is_open(at)


@FAST
@given(calendars(), instants)
def test_is_open_agrees_with_between(cal: BusinessCalendar, at: datetime) -> None:
    assert cal.is_open(at) == (cal.between(at, at + TINY) == TINY)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calendars(), near_dst, st.integers(1, 36 * 60))
def test_between_matches_counting_minutes(
    cal: BusinessCalendar, start: datetime, minutes: int
) -> None:
    # Ranges, offsets and DST changes all fall on whole minutes, so is_open at each minute
    # (a local-time lookup, independent of the interval walk) counts the open time exactly.
    counted = sum(cal.is_open(start + timedelta(minutes=m)) for m in range(minutes))
    assert cal.between(start, start + timedelta(minutes=minutes)) == timedelta(minutes=counted)


@FAST
@given(st.sampled_from(ZONES), instants, durations)
def test_whole_days_are_wall_time(zone: str, start: datetime, duration: timedelta) -> None:
    # A holiday long after the instants drawn makes this calendar walk its intervals instead
    # of taking the always-open shortcut; split ranges meet at noon and midnight.
    halves = ((timedelta(0), timedelta(hours=12)), (timedelta(hours=12), timedelta(hours=24)))
    cal = BusinessCalendar(
        tz=ZoneInfo(zone),
        weekdays=frozenset(range(7)),
        hours=halves,
        holidays=frozenset({date(2040, 1, 1)}),
    )
    assert not cal.is_always_open
    always = BusinessCalendar.always_open()
    assert cal.add(start, duration) == always.add(start, duration) == start + duration
    assert cal.between(start, start + duration) == duration
