"""`conflicting_replies`: more than one of us answered the same customer conversation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import ClassVar, Literal

from monitor.classify import author, direction
from monitor.config import Duration, Email, PositiveDuration, RuleSettings
from monitor.display import format_time, human_duration
from monitor.records import Direction, MessageRecord
from rules.base import Answer, RuleContext, Severity, Status, ThreadView, Violation, numbered
from rules.people import escalated, escalation_time, is_absent, notify, same_person

__all__ = [
    "RULE",
    "Conflict",
    "ConflictingReplies",
    "ConflictingRepliesSettings",
    "Reply",
    "conflicts",
]


class ConflictingRepliesSettings(RuleSettings):
    """[rules.conflicting_replies]: wall-time windows and the addresses that never count.

    `absence_window` (how long an out-of-office reply makes its sender absent) lives here as
    product.md places it, though whom a violation warns first depends on it for every rule.
    """

    window: PositiveDuration = timedelta(hours=24)
    open_for: PositiveDuration = timedelta(days=3)
    absence_window: Duration = timedelta(days=7)
    allow: tuple[Email, ...] = ()


@dataclass(frozen=True, slots=True)
class Reply:
    """An outbound, non-automatic message: its author, its turn (the number of inbound,
    non-automatic messages before it), and why it never conflicts, if so."""

    message: MessageRecord
    sender: str
    turn: int
    excluded: Literal["allowed", "owner absent"] | None = None

    @property
    def time(self) -> datetime:
        return self.message.time

    @property
    def counts(self) -> bool:
        return self.excluded is None


@dataclass(slots=True)
class Conflict:
    """One conflict: the reply that opened it, every reply involved, how it ended."""

    about: str
    opened_at: datetime
    last_turn: int
    replies: list[Reply] = field(default_factory=list)
    resolved_at: datetime | None = None
    resolved_by: Reply | None = None  # the reply that answered a later turn alone

    def involve(self, replies: list[Reply]) -> None:
        known = {r.message.message_id for r in self.replies}
        self.replies.extend(r for r in replies if r.message.message_id not in known)
        self.replies.sort(key=lambda r: r.time)


def _replies(thread: ThreadView, ctx: RuleContext) -> tuple[list[Reply], dict[int, str]]:
    """Every reply, those that do not count marked so (the rule skips them, explain says
    why), and the first outbound message of each turn (counted or not)."""
    allow = set(ctx.settings(ConflictingRepliesSettings).allow)
    owner = ctx.owner
    turn = 0
    first_of_turn: dict[int, str] = {}
    replies: list[Reply] = []
    for message in thread.messages:
        if message.automatic is not None:
            continue
        way = direction(message, ctx.policy)
        if way is Direction.INBOUND:
            turn += 1
            continue
        if way is not Direction.OUTBOUND:
            continue  # internal-only mail never conflicts
        first_of_turn.setdefault(turn, message.message_id)
        sender = (author(message, ctx.policy) or "").lower()
        if sender in allow:
            replies.append(Reply(message, sender, turn, "allowed"))
        elif sender == owner and is_absent(ctx, owner, message.time):
            # the backup answering alongside an absent owner is no conflict
            replies.append(Reply(message, sender, turn, "owner absent"))
        else:
            replies.append(Reply(message, sender, turn))
    return replies, first_of_turn


def conflicts(thread: ThreadView, ctx: RuleContext) -> list[Conflict]:
    """Every conflict of the thread, in order (messages must already be cut at `ctx.now`).

    Two replies conflict when their senders differ (a handoff's old and new owner are one
    sender during its overlap) and they share a turn or are at most `window` apart. An open
    conflict takes in further conflicting replies of its turn; the first reply of a later
    turn resolves it (that turn is answered by one sender), or `open_for` after it opened.
    A resolution starts afresh: replies before it no longer pair with later ones.
    """
    return _conflicts_among(*_replies(thread, ctx), ctx)


def _conflicts_among(
    replies: Sequence[Reply], first_of_turn: Mapping[int, str], ctx: RuleContext
) -> list[Conflict]:
    """`conflicts` over the replies `_replies` found (explain needs those replies too)."""
    settings = ctx.settings(ConflictingRepliesSettings)
    found: list[Conflict] = []
    used: set[str] = set()
    current: Conflict | None = None
    history: list[Reply] = []

    def expire(before: datetime) -> None:
        nonlocal current, history
        if current is not None and current.opened_at + settings.open_for <= before:
            ended = current.resolved_at = current.opened_at + settings.open_for
            history = [r for r in history if r.time > ended]
            current = None

    for reply in replies:
        if not reply.counts:
            continue
        expire(reply.time)
        if current is not None and reply.turn > current.last_turn:
            current.resolved_at, current.resolved_by = reply.time, reply
            current, history = None, [reply]
            continue
        partners = [
            earlier
            for earlier in history
            if not same_person(ctx, earlier.sender, reply.sender, reply.time)
            and (earlier.turn == reply.turn or reply.time - earlier.time <= settings.window)
        ]
        history.append(reply)
        if not partners:
            continue
        if current is None:
            about = first_of_turn[reply.turn]
            if about in used:  # this turn already had a conflict, which expired
                about = reply.message.message_id
            used.add(about)
            current = Conflict(about, reply.time, reply.turn)
            found.append(current)
        current.last_turn = reply.turn
        current.involve([*partners, reply])
    expire(ctx.now)
    return found


class ConflictingReplies:
    name: ClassVar[str] = "conflicting_replies"
    description: ClassVar[str] = "More than one of us answered the same customer conversation."
    Settings: ClassVar[type[ConflictingRepliesSettings]] = ConflictingRepliesSettings

    def assess(self, thread: ThreadView, ctx: RuleContext) -> Answer:
        found = conflicts(thread, ctx)
        return Answer(self._violations(thread, ctx, found), _next_deadline(found, ctx))

    def explain(
        self, thread: ThreadView, ctx: RuleContext, violations: Sequence[Violation]
    ) -> list[str]:
        """Each conflict and how it ended, the replies that never count, and when none fired,
        why the replies were no conflict."""
        settings = ctx.settings(ConflictingRepliesSettings)
        zone = ctx.config.monitor.tz
        number = numbered(thread)
        window = human_duration(settings.window, days=True)
        replies, first_of_turn = _replies(thread, ctx)
        lines = []
        for c in _conflicts_among(replies, first_of_turn, ctx):
            turns = {r.turn for r in c.replies}
            how = "in the same turn" if len(turns) == 1 else f"within {window} of each other"
            lines.append(
                f"{_names(c.replies, number)} answered {how}: "
                f"opened {format_time(c.opened_at, zone)}"
            )
            if c.resolved_at is None:
                lines.append(
                    "open until a later turn is answered by one sender, or until "
                    f"{format_time(c.opened_at + settings.open_for, zone)} (open_for) at the latest"
                )
            elif c.resolved_by is not None:
                lines.append(
                    f"resolved at {format_time(c.resolved_at, zone)}: "
                    f"#{number[c.resolved_by.message.message_id]} answered a later turn alone"
                )
            else:
                lines.append(
                    f"resolved at {format_time(c.resolved_at, zone)}: "
                    f"open_for ({human_duration(settings.open_for, days=True)}) after it opened"
                )
        for r in replies:
            at = f"{r.sender} (#{number[r.message.message_id]})"
            if r.excluded == "allowed":
                lines.append(f"{at} never counts: in rules.conflicting_replies.allow")
            elif r.excluded == "owner absent":
                lines.append(f"{at} does not count: the owner was absent then")
        if violations:
            return lines
        counted = [r for r in replies if r.counts]
        handoffs = [
            (a, b)
            for i, a in enumerate(counted)
            for b in counted[i + 1 :]
            if a.sender != b.sender and same_person(ctx, a.sender, b.sender, b.time)
        ]
        if not replies:
            lines.append("no reply from us to the customer (outbound, not automatic)")
        elif len({r.sender for r in counted}) <= 1:
            lines.append(
                f"only one of us wrote to the customer: {_names(counted, number)}"
                if counted
                else "no reply counts"
            )
        elif handoffs:
            pairs = ", ".join(
                f"#{number[a.message.message_id]} and #{number[b.message.message_id]}"
                for a, b in handoffs
            )
            lines.append(
                f"{pairs} count as one sender: a handoff's old and new owner in its overlap"
            )
        else:
            lines.append(
                f"{_names(counted, number)} answered, but not in the same turn nor within "
                f"{window} of each other"
            )
        return lines

    def _violations(
        self, thread: ThreadView, ctx: RuleContext, found_conflicts: list[Conflict]
    ) -> list[Violation]:
        found: list[Violation] = []
        for conflict in found_conflicts:
            status = Status.OPEN if conflict.resolved_at is None else Status.RESOLVED
            up = escalated(ctx, Severity.BREACH, status, conflict.opened_at, None)
            found.append(
                Violation(
                    rule=self.name,
                    severity=Severity.BREACH,
                    status=status,
                    account=ctx.account_name,
                    thread_id=thread.thread_id,
                    subject=thread.subject,
                    owner=ctx.owner,
                    backup=ctx.backup,
                    notify=notify(ctx, escalate=up),
                    opened_at=conflict.opened_at,
                    due_at=None,
                    resolved_at=conflict.resolved_at,
                    senders=tuple(dict.fromkeys(r.sender for r in conflict.replies)),
                    chasers=0,
                    message_ids=tuple(r.message.message_id for r in conflict.replies),
                    about=conflict.about,
                )
            )
        return found


def _names(replies: Sequence[Reply], number: Mapping[str, int]) -> str:
    """`a@x (#2, #5) and b@x (#3)`: the senders in order of first reply, with their messages."""
    grouped: dict[str, list[str]] = {}
    for r in replies:
        grouped.setdefault(r.sender, []).append(f"#{number[r.message.message_id]}")
    return " and ".join(f"{who} ({', '.join(nums)})" for who, nums in grouped.items())


def _next_deadline(found: list[Conflict], ctx: RuleContext) -> datetime | None:
    """When the last conflict next changes by itself: open_for running out, or escalation."""
    if not found or found[-1].resolved_at is not None:
        return None
    opened_at = found[-1].opened_at
    expiry = opened_at + ctx.settings(ConflictingRepliesSettings).open_for
    later = [t for t in (expiry, escalation_time(ctx, opened_at, None)) if t]
    return min((t for t in later if t > ctx.now), default=None)


RULE = ConflictingReplies()
