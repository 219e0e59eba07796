"""Durations as written in pocwatch.toml: `30s`, `90m`, `4h`, `1h30m`, `2d`."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
_DURATION = re.compile(r"(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?")
# Larger than any deadline makes sense, small enough that timedelta never overflows.
_MAX_SECONDS = 100 * 365 * 86400


def parse_duration(text: str, *, allow_days: bool = True) -> timedelta:
    """Parse a duration such as `1h30m`; units go from days down to seconds, integers only.

    Business-time SLAs pass `allow_days=False`: a business "day" is ambiguous (8 open hours or 24
    wall hours?), so those are written in hours.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected a duration such as '4h' or '1h30m', got {text!r}")
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None:
        raise ValueError(
            f"invalid duration {text!r}: use whole numbers with units d, h, m, s "
            "in that order, such as '30s', '90m', '4h', '1h30m' or '2d'"
        )
    if match["d"] is not None and not allow_days:
        raise ValueError(
            f"days are not allowed in a business-time duration ({text!r}): write hours, "
            f"such as '{int(match['d']) * 8}h' for that many 8-hour business days"
        )
    seconds = sum(int(match[unit]) * size for unit, size in _UNITS if match[unit] is not None)
    if seconds > _MAX_SECONDS:
        raise ValueError(f"duration {text!r} is too long (at most 100 years)")
    return timedelta(seconds=seconds)


def format_duration(td: timedelta, *, use_days: bool = True) -> str:
    """Write a duration the way parse_duration reads it (`1d2h30m`); sub-seconds are dropped.

    Negative durations get a leading `-` (for display such as "overdue by"); parse_duration
    refuses them.
    """
    sign = "-" if td < timedelta(0) else ""
    total = abs(td) // timedelta(seconds=1)
    parts: list[str] = []
    for unit, size in _UNITS:
        if unit == "d" and not use_days:
            continue
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count}{unit}")
    return sign + ("".join(parts) or "0s")
