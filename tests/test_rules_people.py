"""Absences, handoffs and whom to warn, at the instant."""

from __future__ import annotations

from datetime import UTC, datetime
from datetime import timedelta as td

import pytest

from rules.base import RuleContext, Severity, Status
from rules.people import (
    absence_changes,
    escalated,
    escalation_time,
    handoff_overlap,
    is_absent,
    notify,
    same_person,
)
from tests.builders import T0
from tests.rule_scenarios import ADMIN, LEAD, PRIYA, SAM, make_config

H = td(hours=1)
D = td(days=1)
CONFIG = make_config(
    '[[absences]]\nwho = "priya@example.com"\nfrom = "2026-11-10"\nuntil = "2026-11-11"\n'
    '[[handoffs]]\naccount = "Client"\nfrom = "old@example.com"\n'
    'to = "priya@example.com"\non = "2026-11-02"\noverlap = "2d"\n'
    '[digests]\nescalate_after = "4h"\n'
)


def ctx(now: datetime, *, ooo: tuple[datetime, ...] = (), calendar: str = "") -> RuleContext:
    config = CONFIG
    if calendar:
        config = config.model_copy(
            update={
                "accounts": tuple(
                    a.model_copy(update={"calendar": calendar}) for a in config.accounts
                )
            }
        )
    base = RuleContext.create(config, now, out_of_office={PRIYA: list(ooo)})
    return base.with_account(config.accounts[0])


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "absent"),
    [
        ("2026-11-09T23:59:59", False),
        ("2026-11-10T00:00:00", True),
        ("2026-11-11T23:59:59", True),
        ("2026-11-12T00:00:00", False),
    ],
)
def test_absences_cover_whole_local_days(moment: str, absent: bool) -> None:
    now = utc("2026-11-20T00:00:00")
    assert is_absent(ctx(now), PRIYA, utc(moment)) is absent
    assert is_absent(ctx(now), SAM, utc(moment)) is False


def test_absence_days_follow_the_calendar_zone() -> None:
    now = utc("2026-11-20T00:00:00")
    # 2026-11-12T03:00Z is still the 11th in New York.
    assert is_absent(ctx(now, calendar="new_york"), PRIYA, utc("2026-11-12T03:00:00"))
    assert not is_absent(ctx(now), PRIYA, utc("2026-11-12T03:00:00"))


def test_an_out_of_office_counts_from_when_it_was_seen_for_absence_window() -> None:
    seen = T0 + H
    now = T0 + 30 * D
    assert not is_absent(ctx(now, ooo=(seen,)), PRIYA, seen - td(seconds=1))
    assert is_absent(ctx(now, ooo=(seen,)), PRIYA, seen)
    assert is_absent(ctx(now, ooo=(seen,)), PRIYA, seen + 7 * D)
    assert not is_absent(ctx(now, ooo=(seen,)), PRIYA, seen + 7 * D + td(seconds=1))


def test_an_out_of_office_not_yet_seen_at_now_does_not_count() -> None:
    assert not is_absent(ctx(T0, ooo=(T0 + H,)), PRIYA, T0)


def test_absence_changes_list_every_flip() -> None:
    changes = absence_changes(ctx(T0 + D, ooo=(T0,)), PRIYA)
    assert sorted(changes) == [T0 + 7 * D, utc("2026-11-10T00:00:00"), utc("2026-11-12T00:00:00")]
    assert absence_changes(ctx(T0), None) == []


def test_handoff_overlap_starts_at_local_midnight() -> None:
    overlap = handoff_overlap(ctx(T0), "old@example.com", PRIYA)
    assert overlap == (utc("2026-11-02T00:00:00"), utc("2026-11-04T00:00:00"))
    assert handoff_overlap(ctx(T0), "old@example.com", SAM) is None
    assert same_person(ctx(T0), PRIYA, "old@example.com", utc("2026-11-03T23:59:00"))
    assert not same_person(ctx(T0), PRIYA, "old@example.com", utc("2026-11-04T00:00:00"))
    assert not same_person(ctx(T0), PRIYA, "old@example.com", utc("2026-11-01T23:59:00"))
    assert same_person(ctx(T0), SAM, SAM, T0)


def test_whom_to_warn() -> None:
    assert notify(ctx(T0)) == (PRIYA, SAM)
    assert notify(ctx(T0), escalate=True) == (PRIYA, SAM, LEAD)
    assert notify(ctx(utc("2026-11-10T12:00:00"))) == (SAM, PRIYA)
    nobody = RuleContext.create(CONFIG, T0)
    assert notify(nobody, escalate=True) == (ADMIN,)


def test_escalation_counts_wall_time_from_the_deadline_or_the_opening() -> None:
    c = ctx(T0 + 8 * H)
    assert escalation_time(c, T0, T0 + 4 * H) == T0 + 8 * H
    assert escalation_time(c, T0, None) == T0 + 4 * H
    assert escalated(c, Severity.BREACH, Status.OPEN, T0, T0 + 4 * H)
    assert not escalated(c, Severity.WARNING, Status.OPEN, T0, T0 + 4 * H)
    assert not escalated(c, Severity.BREACH, Status.RESOLVED, T0, T0 + 4 * H)
    assert not escalated(
        ctx(T0 + 8 * H - td(seconds=1)), Severity.BREACH, Status.OPEN, T0, T0 + 4 * H
    )
