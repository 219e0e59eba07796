"""`unacknowledged`: a customer waited past warn_at × SLA, then the SLA, in business time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from monitor.classify import InternalPolicy, author, direction
from monitor.config import UnacknowledgedConfig
from monitor.records import Direction, MessageRecord
from rules.base import Answer, RuleContext, Severity, Status, ThreadView, Violation
from rules.people import escalated, escalation_time, notify

__all__ = ["RULE", "Unacknowledged", "Wait", "thresholds", "waits"]


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
    Config: ClassVar[type[UnacknowledgedConfig]] = UnacknowledgedConfig

    def assess(self, thread: ThreadView, ctx: RuleContext) -> Answer:
        found = waits(thread, ctx)
        return Answer(self._violations(thread, ctx, found), _next_deadline(found, ctx))

    def _violations(
        self, thread: ThreadView, ctx: RuleContext, found_waits: list[Wait]
    ) -> list[Violation]:
        found: list[Violation] = []
        for wait in found_waits:
            if wait.flagged is wait.start:
                continue  # answered from a client we cannot see: never breaches, at any now
            warn_at, due_at = thresholds(wait, ctx)
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


def _next_deadline(found: list[Wait], ctx: RuleContext) -> datetime | None:
    """When the last wait next changes by itself: its warning, deadline or escalation."""
    if not found or found[-1].ended_at is not None:
        return None  # a wait that ended never changes again
    warn_at, due_at = thresholds(found[-1], ctx)
    later = [t for t in (warn_at, due_at, escalation_time(ctx, warn_at, due_at)) if t]
    return min((t for t in later if t > ctx.now), default=None)


def thresholds(wait: Wait, ctx: RuleContext) -> tuple[datetime, datetime]:
    """(warning instant, deadline) of a wait: warn_at × SLA and the SLA, in business time."""
    start, sla = wait.start.time, ctx.sla
    calendar = ctx.calendar
    warn_at = calendar.add(start, sla * ctx.config.rules.unacknowledged.warn_at)
    return warn_at, calendar.add(start, sla)


RULE = Unacknowledged()
