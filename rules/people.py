"""Who is who at an instant: absences, handoffs, and whom a violation warns."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta

from monitor.classify import InternalPolicy, author
from monitor.records import Automatic, MessageRecord
from rules.base import RuleContext, Severity, Status

__all__ = [
    "absence_changes",
    "absence_window",
    "escalated",
    "escalation_time",
    "handoff_overlap",
    "is_absent",
    "notify",
    "out_of_office_times",
    "same_person",
]


def out_of_office_times(
    messages: Iterable[MessageRecord], policy: InternalPolicy, until: datetime
) -> dict[str, tuple[datetime, ...]]:
    """Internal address -> times of its out-of-office replies up to `until`: an owner's
    out-of-office in any thread makes them absent in every thread."""
    seen: dict[str, set[datetime]] = {}
    for message in messages:
        if message.automatic is not Automatic.OUT_OF_OFFICE or message.time > until:
            continue
        who = author(message, policy)
        if who and policy.is_internal(who):
            seen.setdefault(who.lower(), set()).add(message.time)
    return {who: tuple(sorted(times)) for who, times in seen.items()}


def absence_window(ctx: RuleContext) -> timedelta:
    """How long an out-of-office reply makes its sender absent: a key of the conflict rule's
    table, which every rule's warnings follow."""
    # Imported here: that rule module imports this one.
    from rules.conflicting_replies import ConflictingRepliesSettings

    return ctx.settings(ConflictingRepliesSettings).absence_window


def is_absent(ctx: RuleContext, who: str | None, at: datetime) -> bool:
    """Whether `who` is away at `at`: an [[absences]] entry covers that local date (inclusive,
    in the account's calendar zone), or their out-of-office reply was seen at most
    `absence_window` before `at` (and not after `ctx.now`: what was known then)."""
    if not who:
        return False
    who = who.lower()
    day = at.astimezone(ctx.zone).date()
    for absence in ctx.config.absences:
        if absence.who == who and absence.start <= day <= absence.until:
            return True
    window = absence_window(ctx)
    return any(
        seen <= at and seen <= ctx.now and at - seen <= window
        for seen in ctx.out_of_office.get(who, ())
    )


def absence_changes(ctx: RuleContext, who: str | None) -> list[datetime]:
    """Instants at which `is_absent(who, ...)` may flip: [[absences]] entries begin and end at
    local midnights; an out-of-office stops counting after `absence_window`."""
    if not who:
        return []
    who = who.lower()
    changes: list[datetime] = []
    for absence in ctx.config.absences:
        if absence.who == who:
            for day in (absence.start, absence.until + timedelta(days=1)):
                changes.append(datetime.combine(day, time(), tzinfo=ctx.zone).astimezone(UTC))
    window = absence_window(ctx)
    changes.extend(seen + window for seen in ctx.out_of_office.get(who, ()) if seen <= ctx.now)
    return changes


def handoff_overlap(ctx: RuleContext, old: str, new: str) -> tuple[datetime, datetime] | None:
    """[start, end) of the overlap in which `old` and `new` count as one sender, for the
    thread's account: from local midnight of `on` (account's calendar zone) for `overlap`."""
    if ctx.account is None:
        return None
    for handoff in ctx.config.handoffs:
        if handoff.account != ctx.account.name:
            continue
        if {handoff.old_owner, handoff.new_owner} == {old, new}:
            # Elapsed time from local midnight, like every other wall-time duration.
            start = datetime.combine(handoff.on, time(), tzinfo=ctx.zone).astimezone(UTC)
            return start, start + handoff.overlap
    return None


def same_person(ctx: RuleContext, earlier: str, later: str, at: datetime) -> bool:
    """Whether two authors count as one sender for a message sent at `at` by `later`:
    the same address, or old and new owner of a handoff whose overlap holds `at`."""
    if earlier == later:
        return True
    overlap = handoff_overlap(ctx, earlier, later)
    return overlap is not None and overlap[0] <= at < overlap[1]


def escalation_time(
    ctx: RuleContext, opened_at: datetime, due_at: datetime | None
) -> datetime | None:
    """When an open breach escalates: `digests.escalate_after` (wall time) after its deadline,
    or after it opened where there is none; never when escalate_after is unset."""
    after: timedelta | None = ctx.config.digests.escalate_after
    if after is None:
        return None
    return (due_at if due_at is not None else opened_at) + after


def escalated(
    ctx: RuleContext,
    severity: Severity,
    status: Status,
    opened_at: datetime,
    due_at: datetime | None,
) -> bool:
    """Whether an open breach has escalated by `now` (see escalation_time)."""
    if severity is not Severity.BREACH or status is not Status.OPEN:
        return False
    when = escalation_time(ctx, opened_at, due_at)
    return when is not None and ctx.now >= when


def notify(ctx: RuleContext, *, escalate: bool = False) -> tuple[str, ...]:
    """Whom to warn, in order: owner and backup (backup first while the owner is absent at
    `now`), `escalate_to` once escalated; `monitor.admins` when nobody owns the thread."""
    owner, backup = ctx.owner, ctx.backup
    people = [backup, owner] if is_absent(ctx, owner, ctx.now) else [owner, backup]
    if owner is None:
        people.extend(ctx.config.monitor.admins)
    if escalate and ctx.account is not None:
        people.append(ctx.account.escalate_to)
    return tuple(dict.fromkeys(p.lower() for p in people if p))
