"""`unacknowledged`: a customer waited past warn_at × SLA, then the SLA, in business time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, ClassVar

from pydantic import Field

from monitor.classify import InternalPolicy, author, direction
from monitor.config import BusinessDuration, RuleSettings
from monitor.display import format_time, human_duration, plural
from monitor.records import Direction, MessageRecord
from rules.base import Answer, RuleContext, Severity, Status, ThreadView, Violation, numbered
from rules.people import escalated, escalation_time, notify

__all__ = [
    "RULE",
    "Clock",
    "Unacknowledged",
    "UnacknowledgedSettings",
    "Wait",
    "clock",
    "sla",
    "thresholds",
    "waited",
    "waits",
    "warn_fraction",
]


class UnacknowledgedSettings(RuleSettings):
    """[rules.unacknowledged]: the default SLA (business time; an account may set its own)
    and the warning threshold, as a fraction of the SLA."""

    sla: BusinessDuration = timedelta(hours=4)
    warn_at: Annotated[float, Field(strict=True, gt=0, lt=1)] = 0.75


def sla(ctx: RuleContext) -> timedelta:
    """The SLA in force: the owned account's own, else [rules.unacknowledged] sla."""
    account = ctx.terms
    if account is not None and account.sla is not None:
        return account.sla
    return ctx.settings(UnacknowledgedSettings).sla


def warn_fraction(ctx: RuleContext) -> float:
    """The part of the SLA after which a wait raises a warning ([rules.unacknowledged] warn_at)."""
    return ctx.settings(UnacknowledgedSettings).warn_at


@dataclass(slots=True)
class Wait:
    """One customer wait: the inbound message that started it, the chasers that followed,
    and what ended it (an acknowledging message, or \\Answered on one of its messages)."""

    start: MessageRecord
    chasers: list[MessageRecord] = field(default_factory=list)
    ended_at: datetime | None = None
    acknowledged_by: MessageRecord | None = None  # the outbound message that ended it
    flagged: MessageRecord | None = None  # the inbound message whose \Answered ended it


def waits(thread: ThreadView, ctx: RuleContext) -> list[Wait]:
    """Every wait of the thread, in order (messages must already be cut at `ctx.now`)."""
    return waits_in(thread.messages, thread.answered, ctx.policy)


def waits_in(
    messages: Sequence[MessageRecord], answered: frozenset[str], policy: InternalPolicy
) -> list[Wait]:
    """Every wait among `messages` (in message-time order), in order.

    Automatic and internal-only mail is ignored. An outbound message ends the wait; so does
    \\Answered on one of its inbound messages (a reply we cannot see, sent no earlier than
    that message). The next inbound message after either starts a new wait.
    """
    found: list[Wait] = []
    current: Wait | None = None
    for message in messages:
        if message.automatic is not None:
            continue
        way = direction(message, policy)
        if way is Direction.INBOUND:
            if current is None:
                current = Wait(message)
                found.append(current)
            else:
                current.chasers.append(message)
            if message.message_id in answered:
                current.ended_at = message.time
                current.flagged = message
                current = None
        elif way is Direction.OUTBOUND and current is not None:
            current.ended_at = message.time
            current.acknowledged_by = message
            current = None
    return found


class Unacknowledged:
    name: ClassVar[str] = "unacknowledged"
    description: ClassVar[str] = "A customer is waiting for an answer from us past the SLA."
    Settings: ClassVar[type[UnacknowledgedSettings]] = UnacknowledgedSettings

    def assess(self, thread: ThreadView, ctx: RuleContext) -> Answer:
        # Thresholds once per wait, for the violations and the next deadline alike. A wait
        # whose first message is \Answered (a reply we cannot see) never breaches, at any now.
        timed = [(w, *thresholds(w, ctx)) for w in waits(thread, ctx) if w.flagged is not w.start]
        return Answer(self._violations(thread, ctx, timed), _next_deadline(timed, ctx))

    def explain(
        self, thread: ThreadView, ctx: RuleContext, violations: Sequence[Violation]
    ) -> list[str]:
        """One line per wait: how long it ran against the thresholds, and what became of it."""
        found = waits(thread, ctx)
        if not found:
            return ["no customer message (inbound, not automatic) has waited for an answer"]
        zone = ctx.config.monitor.tz
        number = numbered(thread)
        by_start = {v.about: v for v in violations}
        lines = []
        for wait in found:
            start = number[wait.start.message_id]
            violation = by_start.get(wait.start.message_id)
            times = clock(wait, ctx)
            waited = human_duration(times.waited)
            if wait.flagged is wait.start:
                lines.append(f"#{start} is \\Answered (answered from a client we cannot see)")
            elif violation is None and wait.ended_at is not None:
                lines.append(
                    f"#{start} was answered after {waited} of business time, before the "
                    f"warning threshold ({human_duration(sla(ctx) * warn_fraction(ctx))})"
                )
            elif violation is None:
                lines.append(
                    f"#{start} has waited {waited} of business time; "
                    f"warning at {format_time(times.warn_at, zone)}"
                )
            elif violation.status is Status.RESOLVED:
                over = f", {human_duration(times.overdue)} past the SLA" if times.overdue else ""
                lines.append(
                    f"#{start} waited {waited} of business time before an answer{over}; "
                    f"resolved at {format_time(violation.resolved_at, zone)}"
                )
            else:
                past = (
                    f"{human_duration(times.overdue)} past the deadline "
                    f"{format_time(times.due_at, zone)}"
                    if times.overdue
                    else f"past the warning threshold, due at {format_time(times.due_at, zone)}"
                )
                chasers = f", chased {plural(len(wait.chasers), 'time')}" if wait.chasers else ""
                lines.append(f"#{start} has waited {waited} of business time, {past}{chasers}")
        return lines

    def _violations(
        self, thread: ThreadView, ctx: RuleContext, timed: list[tuple[Wait, datetime, datetime]]
    ) -> list[Violation]:
        found: list[Violation] = []
        for wait, warn_at, due_at in timed:
            # The wait runs up to, not including, the acknowledging instant: an answer at the
            # deadline is in time, an answer at the warning threshold raised nothing.
            end = wait.ended_at
            if end is not None:
                if end <= warn_at:
                    continue
                status = Status.RESOLVED
                severity = Severity.BREACH if end > due_at else Severity.WARNING
            else:
                if ctx.now < warn_at:
                    continue
                status = Status.OPEN
                severity = Severity.BREACH if ctx.now >= due_at else Severity.WARNING
            acknowledger = (
                author(wait.acknowledged_by, ctx.policy) if wait.acknowledged_by else None
            )
            up = escalated(ctx, severity, status, warn_at, due_at)
            found.append(
                Violation(
                    rule=self.name,
                    severity=severity,
                    status=status,
                    account=ctx.account_name,
                    thread_id=thread.thread_id,
                    subject=thread.subject,
                    owner=ctx.owner,
                    backup=ctx.backup,
                    notify=notify(ctx, escalate=up),
                    opened_at=warn_at,
                    due_at=due_at,
                    resolved_at=end,
                    senders=(acknowledger.lower(),) if acknowledger else (),
                    chasers=len(wait.chasers),
                    message_ids=(wait.start.message_id, *(m.message_id for m in wait.chasers)),
                    about=wait.start.message_id,
                )
            )
        return found


def _next_deadline(
    timed: list[tuple[Wait, datetime, datetime]], ctx: RuleContext
) -> datetime | None:
    """When the last wait next changes by itself: its warning, deadline or escalation."""
    if not timed or timed[-1][0].ended_at is not None:
        return None  # a wait that ended never changes again (only the last may be open)
    _wait, warn_at, due_at = timed[-1]
    later = [t for t in (warn_at, due_at, escalation_time(ctx, warn_at, due_at)) if t]
    return min((t for t in later if t > ctx.now), default=None)


def thresholds(wait: Wait, ctx: RuleContext) -> tuple[datetime, datetime]:
    """(warning instant, deadline) of a wait: warn_at × SLA and the SLA, in business time.

    Both are rounded up to the second: JSON shows times to the second, and a warning shown
    as opened at 09:19:58 must hold at `--now 09:19:58` (a fraction such as warn_at = 0.333
    would otherwise put it a fraction of a second later).
    """
    start, limit = wait.start.time, sla(ctx)
    calendar = ctx.calendar
    warn_at = calendar.add(start, limit * warn_fraction(ctx))
    return _whole_second(warn_at), _whole_second(calendar.add(start, limit))


def _whole_second(moment: datetime) -> datetime:
    if not moment.microsecond:
        return moment
    return moment.replace(microsecond=0) + timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class Clock:
    """A wait in business time as of `now`: one clock for the rule's reasons and explain's."""

    warn_at: datetime
    due_at: datetime
    waited: timedelta  # business time up to the end of the wait, or `now`
    overdue: timedelta  # business time past `due_at` by then (zero if not late)


def clock(wait: Wait, ctx: RuleContext) -> Clock:
    """The wait's thresholds, the business time it ran, and how far past its deadline."""
    warn_at, due_at = thresholds(wait, ctx)
    end = wait.ended_at or ctx.now
    calendar = ctx.calendar
    return Clock(
        warn_at, due_at, calendar.between(wait.start.time, end), calendar.between(due_at, end)
    )


def waited(violation: Violation, ctx: RuleContext) -> tuple[timedelta, timedelta] | None:
    """For a violation of this rule: (business time waited up to its resolution or
    `ctx.now`, business time past the deadline); None for other rules.

    Read from the violation alone: its wait began one SLA of business time before `due_at`,
    so no message needs loading. `ctx` is narrowed to the violation's account here.
    """
    if violation.rule != Unacknowledged.name or violation.due_at is None:
        return None
    # Found under this config (the store answers only when its config is this one).
    account = ctx.config.account(violation.account) if violation.account else None
    ctx = ctx.with_account(account)
    calendar, due_at = ctx.calendar, violation.due_at
    end = violation.resolved_at or ctx.now
    if end >= due_at:
        overdue = calendar.between(due_at, end)
        return sla(ctx) + overdue, overdue
    return sla(ctx) - calendar.between(end, due_at), timedelta(0)


RULE = Unacknowledged()
