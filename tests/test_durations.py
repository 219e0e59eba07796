"""Durations as written in pocwatch.toml."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("90m", timedelta(minutes=90)),
        ("4h", timedelta(hours=4)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2d", timedelta(days=2)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("0s", timedelta(0)),
        (" 4h ", timedelta(hours=4)),
    ],
)
def test_parses_the_documented_forms(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_1h30m_is_90m() -> None:
    assert parse_duration("1h30m") == parse_duration("90m")


@pytest.mark.parametrize(
    "text",
    ["", "   ", "4", "h", "4 h", "1.5h", "-4h", "30m1h", "4hours", "2w", "1h 30m", "PT4H", "4H"],
)
def test_garbage_is_refused_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match=r"invalid duration .*'1h30m'"):
        parse_duration(text)


def test_a_non_string_is_refused() -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(4)  # type: ignore[arg-type]


def test_days_are_refused_for_business_time() -> None:
    assert parse_duration("16h", allow_days=False) == timedelta(hours=16)
    with pytest.raises(ValueError, match=r"days are not allowed .*'2d'.*'16h'"):
        parse_duration("2d", allow_days=False)


def test_absurd_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="too long"):
        parse_duration("99999999999d")


@pytest.mark.parametrize(
    ("td", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(minutes=90), "1h30m"),
        (timedelta(days=2), "2d"),
        (timedelta(days=1, seconds=1), "1d1s"),
        (timedelta(seconds=59, microseconds=999999), "59s"),
        (-timedelta(hours=2), "-2h"),
    ],
)
def test_formats_canonically(td: timedelta, text: str) -> None:
    assert format_duration(td) == text


def test_formats_without_days_for_business_time() -> None:
    text = format_duration(timedelta(days=2, minutes=5), use_days=False)
    assert text == "48h5m"
    assert parse_duration(text, allow_days=False) == timedelta(days=2, minutes=5)


whole_seconds = st.integers(min_value=0, max_value=100 * 365 * 86400).map(
    lambda s: timedelta(seconds=s)
)


@given(whole_seconds)
def test_format_then_parse_round_trips(td: timedelta) -> None:
    assert parse_duration(format_duration(td)) == td
    assert parse_duration(format_duration(td, use_days=False), allow_days=False) == td


@given(st.integers(0, 400), st.integers(0, 400), st.integers(0, 400), st.integers(0, 400))
def test_any_unit_combination_adds_up(d: int, h: int, m: int, s: int) -> None:
    text = f"{d}d{h}h{m}m{s}s"
    assert parse_duration(text) == timedelta(days=d, hours=h, minutes=m, seconds=s)


@given(st.text(alphabet="0123456789dhms .-:PTW", max_size=8))
def test_parse_either_succeeds_or_raises_value_error(text: str) -> None:
    try:
        result = parse_duration(text)
    except ValueError:
        return
    assert result >= timedelta(0)
    assert parse_duration(format_duration(result)) == result
