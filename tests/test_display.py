"""How times read to people, out to the ends of the calendar."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from monitor.display import format_time, local_time

LONDON = ZoneInfo("Europe/London")
TOKYO = ZoneInfo("Asia/Tokyo")


def test_a_time_reads_in_the_zone_with_its_abbreviation() -> None:
    moment = datetime(2026, 11, 10, 9, 20, tzinfo=UTC)
    assert format_time(moment, LONDON) == "Tue 2026-11-10 09:20 GMT"
    assert format_time(None, LONDON) == "-"


def test_a_time_the_zone_cannot_reach_reads_in_utc() -> None:
    """London was 75 seconds behind UTC in year 1: its local time would fall before year 1."""
    first = datetime(1, 1, 1, tzinfo=UTC)
    assert format_time(first, LONDON).endswith("01-01 00:00 UTC")
    last = datetime.max.replace(tzinfo=UTC)
    assert format_time(last, TOKYO).endswith("9999-12-31 23:59 UTC")


def test_local_time_keeps_an_instant_no_zone_can_reach() -> None:
    east = timezone(timedelta(hours=1))
    moment = datetime(1, 1, 1, tzinfo=east)  # before year 1 in UTC
    assert local_time(moment, LONDON) is moment
