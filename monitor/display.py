"""How times and durations read to people: explain now, digests and reports later.

Not the config syntax: `monitor.durations` writes durations the way pocwatch.toml reads them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

__all__ = ["format_short_time", "format_time", "human_duration", "local_time", "plural"]


def format_time(moment: datetime | None, zone: ZoneInfo) -> str:
    """`Tue 2026-11-10 09:20 GMT`: a local time with its zone abbreviation."""
    if moment is None:
        return "-"
    return local_time(moment, zone).strftime("%a %Y-%m-%d %H:%M %Z")


def local_time(moment: datetime, zone: ZoneInfo) -> datetime:
    """`moment` in `zone`, or in UTC where the local time would fall outside years 1-9999
    (which datetime cannot hold): a time shown in UTC beats a traceback."""
    for target in (zone, UTC):
        try:
            return moment.astimezone(target)
        except OverflowError:
            continue
    return moment


def format_short_time(moment: datetime | None, zone: ZoneInfo) -> str:
    """`2026-11-10 09:20`: a local time for table columns (the zone is said once, below)."""
    return local_time(moment, zone).strftime("%Y-%m-%d %H:%M") if moment else "-"


def human_duration(span: timedelta, *, days: bool = False) -> str:
    """`3h10m`, `45m`, `30s`, `0m`; with `days`, wall time such as `3d` or `1d2h`.

    Business time is shown in hours: a business day is not 24 hours. Negative spans read
    `0m`: nothing is left, nothing is late.
    """
    seconds = max(int(span.total_seconds()), 0)
    if seconds < 60:
        return f"{seconds}s" if seconds else "0m"
    d, rest = divmod(seconds, 86400) if days else (0, seconds)
    h, rest = divmod(rest, 3600)
    m = rest // 60
    parts = [f"{d}d" if d else "", f"{h}h" if h else "", f"{m}m" if m else ""]
    return "".join(parts)


def plural(count: int, word: str) -> str:
    """`1 chaser`, `2 chasers`."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"
