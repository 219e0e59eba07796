"""`conflicting_replies`: more than one of us answered the same customer conversation."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from monitor.classify import author, direction
from monitor.config import ConflictingRepliesConfig
from monitor.records import Direction, MessageRecord
from rules.base import Answer, RuleContext, Severity, Status, ThreadView, Violation
from rules.people import escalated, escalation_time, is_absent, notify, same_person

__all__ = ["RULE", "Conflict", "ConflictingReplies", "Reply", "conflicts"]


@dataclass(frozen=True, slots=True)
class Reply:
    """An outbound, non-automatic message that counts: its author and its turn (the number
    of inbound, non-automatic messages before it)."""

    message: MessageRecord
    sender: str
    turn: int

    @property
    def time(self) -> datetime:
        return self.message.time


@dataclass(slots=True)
class Conflict:
    """One conflict: the reply that opened it, every reply involved, how it ended."""

    about: str
    opened_at: datetime
    last_turn: int
    replies: list[Reply] = field(default_factory=list)
    resolved_at: datetime | None = None

    def involve(self, replies: list[Reply]) -> None:
        known = {r.message.message_id for r in self.replies}
        self.replies.extend(r for r in replies if r.message.message_id not in known)
        self.replies.sort(key=lambda r: r.time)


def _replies(thread: ThreadView, ctx: RuleContext) -> tuple[list[Reply], dict[int, str]]:
    """The replies that count, and the first outbound message of each turn (counted or not)."""
    allow = set(ctx.config.rules.conflicting_replies.allow)
    owner = ctx.owner
    turn = 0
    first_of_turn: dict[int, str] = {}
    counted: list[Reply] = []
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
            continue
        if sender == owner and is_absent(ctx, owner, message.time):
            continue  # the backup answering alongside an absent owner is no conflict
        counted.append(Reply(message, sender, turn))
    return counted, first_of_turn


def conflicts(thread: ThreadView, ctx: RuleContext) -> list[Conflict]:
    """Every conflict of the thread, in order (messages must already be cut at `ctx.now`).

    Two replies conflict when their senders differ (a handoff's old and new owner are one
    sender during its overlap) and they share a turn or are at most `window` apart. An open
    conflict takes in further conflicting replies of its turn; the first reply of a later
    turn resolves it (that turn is answered by one sender), or `open_for` after it opened.
    A resolution starts afresh: replies before it no longer pair with later ones.
    """
    settings = ctx.config.rules.conflicting_replies
    replies, first_of_turn = _replies(thread, ctx)
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
        expire(reply.time)
        if current is not None and reply.turn > current.last_turn:
            current.resolved_at = reply.time
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
    Config: ClassVar[type[ConflictingRepliesConfig]] = ConflictingRepliesConfig

    def assess(self, thread: ThreadView, ctx: RuleContext) -> Answer:
        found = conflicts(thread, ctx)
        return Answer(self._violations(thread, ctx, found), _next_deadline(found, ctx))

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


def _next_deadline(found: list[Conflict], ctx: RuleContext) -> datetime | None:
    """When the last conflict next changes by itself: open_for running out, or escalation."""
    if not found or found[-1].resolved_at is not None:
        return None
    opened_at = found[-1].opened_at
    expiry = opened_at + ctx.config.rules.conflicting_replies.open_for
    later = [t for t in (expiry, escalation_time(ctx, opened_at, None)) if t]
    return min((t for t in later if t > ctx.now), default=None)


RULE = ConflictingReplies()
