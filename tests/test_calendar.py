"""Business time in rules.calendar: worked examples of SLA deadlines and open time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from monitor.config import CalendarConfig
from rules.calendar import BusinessCalendar

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
WEEKDAYS = frozenset(range(5))
EVERY_DAY = frozenset(range(7))


def hm(text: str) -> timedelta:
    hours, minutes = text.split(":")
    return timedelta(hours=int(hours), minutes=int(minutes))


def ranges(*texts: str) -> tuple[tuple[timedelta, timedelta], ...]:
    return tuple((hm(text.split("-")[0]), hm(text.split("-")[1])) for text in texts)


def calendar(
    *hours: str,
    tz: ZoneInfo = LONDON,
    days: frozenset[int] = WEEKDAYS,
    holidays: tuple[str, ...] = (),
) -> BusinessCalendar:
    return BusinessCalendar(
        tz=tz,
        weekdays=days,
        hours=ranges(*hours),
        holidays=frozenset(date.fromisoformat(day) for day in holidays),
    )


def local(text: str, tz: ZoneInfo = LONDON, fold: int = 0) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=tz, fold=fold)


OFFICE = calendar("09:00-17:30", holidays=("2026-12-25", "2026-12-26"))
SPLIT = calendar("09:00-12:00", "13:00-17:30")
EVENINGS = calendar("18:00-24:00")
ALL_DAY_LONDON = calendar("00:00-24:00", days=EVERY_DAY)
ALL_DAY_NEW_YORK = calendar("00:00-24:00", tz=NEW_YORK, days=EVERY_DAY)
OFFICE_EVERY_DAY_LONDON = calendar("09:00-17:30", days=EVERY_DAY)
OFFICE_EVERY_DAY_NEW_YORK = calendar("09:00-17:30", tz=NEW_YORK, days=EVERY_DAY)
NIGHT_LONDON = calendar("01:00-03:00", days=EVERY_DAY)
NIGHT_NEW_YORK = calendar("01:00-03:00", tz=NEW_YORK, days=EVERY_DAY)
ALWAYS = BusinessCalendar.always_open()


# (case, calendar, start in the calendar's zone, SLA, deadline in the calendar's zone)
DEADLINES = [
    ("friday evening waits for monday", OFFICE, "2026-11-20 18:00", "4:00", "2026-11-23 13:00"),
    ("before opening starts at opening", OFFICE, "2026-11-23 08:00", "4:00", "2026-11-23 13:00"),
    ("within the day", OFFICE, "2026-11-23 10:15", "2:30", "2026-11-23 12:45"),
    ("exactly at closing", OFFICE, "2026-11-24 13:30", "4:00", "2026-11-24 17:30"),
    ("one minute past closing", OFFICE, "2026-11-24 13:30", "4:01", "2026-11-25 09:01"),
    ("full day exactly", OFFICE, "2026-11-24 09:00", "8:30", "2026-11-24 17:30"),
    ("at closing rolls to next day", OFFICE, "2026-11-24 17:30", "1:00", "2026-11-25 10:00"),
    ("40h over a weekend", OFFICE, "2026-11-19 12:00", "40:00", "2026-11-26 09:30"),
    ("christmas and weekend", OFFICE, "2026-12-24 16:00", "4:00", "2026-12-28 11:30"),
    ("boxing day on a saturday", OFFICE, "2026-12-25 10:00", "1:00", "2026-12-28 10:00"),
    ("lunch break split", SPLIT, "2026-11-24 11:00", "2:00", "2026-11-24 14:00"),
    ("message during lunch", SPLIT, "2026-11-24 12:15", "4:00", "2026-11-24 17:00"),
    ("deadline at lunch", SPLIT, "2026-11-24 09:00", "3:00", "2026-11-24 12:00"),
    ("split over a night", SPLIT, "2026-11-24 16:30", "4:00", "2026-11-25 12:00"),
    ("ends at 24:00", EVENINGS, "2026-11-20 23:00", "2:00", "2026-11-23 19:00"),
    ("deadline at midnight", EVENINGS, "2026-11-23 20:00", "4:00", "2026-11-24 00:00"),
    ("midnight is continuous", ALL_DAY_LONDON, "2026-11-23 22:00", "4:00", "2026-11-24 02:00"),
    # London springs forward on 2026-03-29 (a 23-hour day) and falls back on 2026-10-25.
    ("24h over spring forward", ALL_DAY_LONDON, "2026-03-28 12:00", "24:00", "2026-03-29 13:00"),
    ("24h over fall back", ALL_DAY_LONDON, "2026-10-24 12:00", "24:00", "2026-10-25 11:00"),
    (
        "office hours over DST",
        OFFICE_EVERY_DAY_LONDON,
        "2026-03-28 17:00",
        "1:00",
        "2026-03-29 09:30",
    ),
    ("24h over NY spring", ALL_DAY_NEW_YORK, "2026-03-07 12:00", "24:00", "2026-03-08 13:00"),
    ("24h over NY fall", ALL_DAY_NEW_YORK, "2026-10-31 12:00", "24:00", "2026-11-01 11:00"),
]


@pytest.mark.parametrize(
    ("cal", "start", "sla", "due"),
    [case[1:] for case in DEADLINES],
    ids=[case[0] for case in DEADLINES],
)
def test_deadlines(cal: BusinessCalendar, start: str, sla: str, due: str) -> None:
    deadline = cal.add(local(start, cal.tz), hm(sla))
    assert deadline == local(due, cal.tz)
    assert deadline.tzinfo is UTC
    assert cal.between(local(start, cal.tz), deadline) == hm(sla)


# (case, calendar, local date with a DST change, open hours that day)
DST_DAYS = [
    ("London spring, whole day", ALL_DAY_LONDON, "2026-03-29", "23:00"),
    ("London autumn, whole day", ALL_DAY_LONDON, "2026-10-25", "25:00"),
    ("New York spring, whole day", ALL_DAY_NEW_YORK, "2026-03-08", "23:00"),
    ("New York autumn, whole day", ALL_DAY_NEW_YORK, "2026-11-01", "25:00"),
    ("London spring, office", OFFICE_EVERY_DAY_LONDON, "2026-03-29", "8:30"),
    ("London autumn, office", OFFICE_EVERY_DAY_LONDON, "2026-10-25", "8:30"),
    ("New York spring, office", OFFICE_EVERY_DAY_NEW_YORK, "2026-03-08", "8:30"),
    ("New York autumn, office", OFFICE_EVERY_DAY_NEW_YORK, "2026-11-01", "8:30"),
    ("London spring, 01-03", NIGHT_LONDON, "2026-03-29", "1:00"),
    ("London autumn, 01-03", NIGHT_LONDON, "2026-10-25", "3:00"),
    ("New York spring, 01-03", NIGHT_NEW_YORK, "2026-03-08", "1:00"),
    ("New York autumn, 01-03", NIGHT_NEW_YORK, "2026-11-01", "3:00"),
    ("London ordinary day, whole day", ALL_DAY_LONDON, "2026-03-30", "24:00"),
    ("London ordinary night, 01-03", NIGHT_LONDON, "2026-03-30", "2:00"),
]


@pytest.mark.parametrize(
    ("cal", "day", "open_hours"),
    [case[1:] for case in DST_DAYS],
    ids=[case[0] for case in DST_DAYS],
)
def test_open_time_on_dst_days(cal: BusinessCalendar, day: str, open_hours: str) -> None:
    start = local(f"{day} 00:00", cal.tz)
    next_day = date.fromisoformat(day) + timedelta(days=1)
    end = local(f"{next_day.isoformat()} 00:00", cal.tz)
    assert cal.between(start, end) == hm(open_hours)
    # The day's open time, then not one microsecond more, as the deadline from midnight.
    assert cal.between(start, cal.add(start, hm(open_hours))) == hm(open_hours)


def test_spring_forward_gap_is_skipped() -> None:
    # 01:30-02:30 on 2026-03-29: 01:30-02:00 never happens in London, 02:00-02:30 BST does.
    cal = calendar("01:30-02:30", days=EVERY_DAY)
    start = local("2026-03-29 00:00")
    assert cal.between(start, start + timedelta(days=1)) == timedelta(minutes=30)
    assert cal.next_open(start) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert cal.add(start, timedelta(minutes=30)) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


def test_fall_back_repeated_times_count_twice() -> None:
    cal = calendar("01:15-01:45", days=EVERY_DAY)
    start = local("2026-10-25 00:00")
    assert cal.between(start, start + timedelta(days=1)) == timedelta(hours=1)
    first = local("2026-10-25 01:30", fold=0)  # 00:30 UTC, BST
    second = local("2026-10-25 01:30", fold=1)  # 01:30 UTC, GMT
    assert cal.is_open(first) and cal.is_open(second)
    assert not cal.is_open(datetime(2026, 10, 25, 1, 0, tzinfo=UTC))
    # 15 minutes to 01:45 BST, then the second 01:15-01:45 (GMT).
    assert cal.add(first, timedelta(minutes=30)) == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    assert cal.add(first, timedelta(minutes=45)) == datetime(2026, 10, 25, 1, 45, tzinfo=UTC)


def test_is_open_at_the_edges() -> None:
    assert OFFICE.is_open(local("2026-11-24 09:00"))
    assert OFFICE.is_open(local("2026-11-24 17:29:59.999999"))
    assert not OFFICE.is_open(local("2026-11-24 17:30"))
    assert not OFFICE.is_open(local("2026-11-24 08:59:59.999999"))
    assert not OFFICE.is_open(local("2026-11-21 12:00"))  # Saturday
    assert not OFFICE.is_open(local("2026-12-25 12:00"))  # holiday
    assert not SPLIT.is_open(local("2026-11-24 12:30"))
    assert EVENINGS.is_open(local("2026-11-24 23:59:59.999999"))
    assert not EVENINGS.is_open(local("2026-11-25 00:00"))


def test_next_open() -> None:
    open_instant = local("2026-11-24 10:00")
    assert OFFICE.next_open(open_instant) == open_instant
    assert OFFICE.next_open(open_instant).tzinfo is UTC
    assert OFFICE.next_open(local("2026-11-20 17:30")) == local("2026-11-23 09:00")
    assert OFFICE.next_open(local("2026-12-24 18:00")) == local("2026-12-28 09:00")
    assert SPLIT.next_open(local("2026-11-24 12:00")) == local("2026-11-24 13:00")


def test_between() -> None:
    week = OFFICE.between(local("2026-11-23 00:00"), local("2026-11-30 00:00"))
    assert week == timedelta(hours=42, minutes=30)
    assert OFFICE.between(local("2026-11-24 12:00"), local("2026-11-24 11:00")) == timedelta(0)
    assert OFFICE.between(local("2026-11-24 12:00"), local("2026-11-24 12:00")) == timedelta(0)
    assert OFFICE.between(local("2026-11-21 00:00"), local("2026-11-23 00:00")) == timedelta(0)
    assert SPLIT.between(local("2026-11-24 11:30"), local("2026-11-24 13:30")) == hm("1:00")
    christmas = OFFICE.between(local("2026-12-21 00:00"), local("2026-12-28 00:00"))
    assert christmas == timedelta(hours=34)  # four days: the 25th is a holiday


def test_zero_duration_is_the_start_even_when_closed() -> None:
    saturday = local("2026-11-21 12:00")
    assert OFFICE.add(saturday, timedelta(0)) == saturday
    assert OFFICE.add(saturday, timedelta(0)).tzinfo is UTC


def test_inputs_in_any_zone_give_utc() -> None:
    start = datetime(2026, 11, 20, 23, 30, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    # 18:00 in London (GMT): the Friday evening case again.
    assert OFFICE.add(start, hm("4:00")) == datetime(2026, 11, 23, 13, 0, tzinfo=UTC)


def test_always_open() -> None:
    start = datetime(2026, 3, 29, 0, 30, tzinfo=LONDON)
    assert ALWAYS.is_always_open
    # Real time: aware arithmetic in LONDON would add wall time across the spring-forward gap.
    assert ALWAYS.add(start, hm("4:00")) == datetime(2026, 3, 29, 4, 30, tzinfo=UTC)
    assert ALWAYS.add(start, hm("4:00")).tzinfo is UTC
    assert ALWAYS.between(start, start + timedelta(days=3)) == timedelta(hours=71)  # wall +3d
    assert ALWAYS.between(start, start.astimezone(UTC) + timedelta(days=3)) == timedelta(days=3)
    assert ALWAYS.between(start, start - timedelta(days=3)) == timedelta(0)
    assert ALWAYS.is_open(start)
    assert ALWAYS.next_open(start) == start
    assert BusinessCalendar.from_config(None) == ALWAYS


def test_whole_days_every_day_are_always_open_in_any_zone() -> None:
    assert calendar("00:00-12:00", "12:00-24:00", tz=NEW_YORK, days=EVERY_DAY).is_always_open
    assert not calendar("00:00-24:00", days=WEEKDAYS).is_always_open
    assert not calendar("00:00-24:00", days=EVERY_DAY, holidays=("2026-12-25",)).is_always_open
    assert not calendar("00:00-12:00", "12:01-24:00", days=EVERY_DAY).is_always_open


def test_from_config() -> None:
    config = CalendarConfig.model_validate(
        {
            "timezone": "Europe/London",
            "days": ["mon", "tue", "wed", "thu", "fri"],
            "hours": ["13:00-17:30", "09:00-12:00"],
            "holidays": ["2026-12-25", "2026-12-26"],
        }
    )
    cal = BusinessCalendar.from_config(config)
    assert cal == BusinessCalendar(
        tz=LONDON,
        weekdays=WEEKDAYS,
        hours=ranges("09:00-12:00", "13:00-17:30"),
        holidays=frozenset({date(2026, 12, 25), date(2026, 12, 26)}),
    )
    assert cal.add(local("2026-11-24 12:15"), hm("4:00")) == local("2026-11-24 17:00")


def test_refuses_what_it_cannot_answer() -> None:
    closed = BusinessCalendar(tz=LONDON, weekdays=frozenset(), hours=ranges("09:00-17:00"))
    start = local("2026-11-24 10:00")
    with pytest.raises(ValueError, match="no open time"):
        closed.add(start, hm("4:00"))
    with pytest.raises(ValueError, match="no open time"):
        closed.next_open(start)
    assert closed.between(start, start + timedelta(days=30)) == timedelta(0)
    assert not closed.is_open(start)
    with pytest.raises(ValueError, match="negative"):
        OFFICE.add(start, -hm("1:00"))
    with pytest.raises(ValueError, match="aware"):
        OFFICE.add(datetime(2026, 11, 24, 10, 0), hm("1:00"))
    with pytest.raises(ValueError, match="overlap"):
        calendar("09:00-12:00", "11:00-17:00")
    with pytest.raises(ValueError, match="within one day"):
        calendar("18:00-25:00")
    with pytest.raises(ValueError, match="weekdays"):
        calendar("09:00-17:00", days=frozenset({7}))


def test_unsorted_hours_are_sorted() -> None:
    assert calendar("13:00-17:30", "09:00-12:00") == SPLIT
    assert hash(calendar("13:00-17:30", "09:00-12:00")) == hash(SPLIT)


def test_long_holiday_run_is_walked_through() -> None:
    days = tuple((date(2026, 12, 1) + timedelta(days=n)).isoformat() for n in range(60))
    cal = calendar("09:00-17:30", holidays=days)
    assert cal.add(local("2026-11-30 17:00"), hm("1:00")) == local("2027-02-01 09:30")
