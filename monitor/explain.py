"""`pocwatch explain`: a thread's timeline, its SLA clock and each rule's verdict, as text."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from monitor.classify import author, direction
from monitor.config import AccountConfig, CalendarConfig
from monitor.display import format_time, human_duration, plural
from monitor.records import Automatic, Direction
from rules.base import Rule, RuleContext, ThreadView, Violation, numbered
from rules.engine import as_of, assess_prepared, prepare
from rules.registry import registered_rules
from rules.unacknowledged import clock, sla, waits, warn_fraction

__all__ = [
    "Explanation",
    "MessageLine",
    "RuleLines",
    "WaitClock",
    "explain",
    "explanation",
    "render",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MessageLine:
    """One message of the timeline; `number` is its place in the thread (#1 first)."""

    number: int
    message_id: str
    time: datetime
    direction: Direction
    author: str | None
    sent_as: str | None  # the From when a colleague wrote "as" a shared address
    automatic: Automatic | None
    acknowledges: int | None  # the inbound message whose wait this one ended
    answered: bool  # \Answered in a watched folder
    chaser_of: int | None  # a customer follow-up to this unanswered message


@dataclass(frozen=True, slots=True)
class WaitClock:
    """One customer wait measured in business time (message numbers, not ids)."""

    start: int
    chasers: tuple[int, ...]
    started_at: datetime
    warn_at: datetime
    due_at: datetime
    ended_at: datetime | None
    acknowledged_by: int | None
    flagged: int | None  # the message whose \Answered flag ended the wait
    waited: timedelta  # business time up to the end of the wait, or `now`
    overdue: timedelta  # business time past `due_at` by then


@dataclass(frozen=True, slots=True)
class RuleLines:
    """One rule's part: its name and, in its own words, why it fired or did not (or that
    it failed on this thread: its violations are then unknown)."""

    name: str
    why: tuple[str, ...]
    failed: bool = False


@dataclass(frozen=True, slots=True)
class Explanation:
    """Everything `explain` shows, as plain data (no I/O, no clock)."""

    thread_id: str
    subject: str
    now: datetime
    zone: ZoneInfo  # times are shown in monitor.timezone
    later: int  # messages after `now`: not taken into account
    apart: tuple[tuple[str, int], ...]  # (id, messages) of conversations merged only later
    account: AccountConfig | None
    calendar_name: str | None
    calendar: CalendarConfig | None
    sla: timedelta
    warn_fraction: float
    messages: tuple[MessageLine, ...]
    waits: tuple[WaitClock, ...]
    rules: tuple[RuleLines, ...]  # every rule given, in order
    violations: tuple[Violation, ...]


def explanation(
    thread: ThreadView,
    ctx: RuleContext,
    rules: Sequence[Rule] | None = None,
    *,
    focus: str | None = None,
) -> Explanation:
    """Explain one thread as of `ctx.now` (ctx as built for the whole store: no account)
    by `rules`, the registered ones unless given.

    A thread that a later message merged is explained as the conversation it was then that
    holds `focus` (a thread id or Message-ID; the first one without), the others named.
    """
    rules = registered_rules() if rules is None else rules
    pieces = as_of(thread, ctx)
    piece = _focused(pieces, focus)
    cut, ctx = prepare(piece, ctx)
    assessment = assess_prepared(cut, ctx, rules)
    violations = assessment.violations
    number = numbered(cut)
    acknowledges: dict[str, int] = {}
    chaser_of: dict[str, int] = {}
    clocks: list[WaitClock] = []
    for wait in waits(cut, ctx):
        start = number[wait.start.message_id]
        if wait.acknowledged_by is not None:
            acknowledges[wait.acknowledged_by.message_id] = start
        for chaser in wait.chasers:
            chaser_of[chaser.message_id] = start
        times = clock(wait, ctx)
        clocks.append(
            WaitClock(
                start=start,
                chasers=tuple(number[c.message_id] for c in wait.chasers),
                started_at=wait.start.time,
                warn_at=times.warn_at,
                due_at=times.due_at,
                ended_at=wait.ended_at,
                acknowledged_by=number[wait.acknowledged_by.message_id]
                if wait.acknowledged_by
                else None,
                flagged=number[wait.flagged.message_id] if wait.flagged else None,
                waited=times.waited,
                overdue=times.overdue,
            )
        )
    lines: list[MessageLine] = []
    for message in cut.messages:
        way = direction(message, ctx.policy)
        who = author(message, ctx.policy)
        lines.append(
            MessageLine(
                number=number[message.message_id],
                message_id=message.message_id,
                time=message.time,
                direction=way,
                author=who,
                sent_as=message.from_addr if who != message.from_addr else None,
                automatic=message.automatic,
                acknowledges=acknowledges.get(message.message_id),
                answered=message.message_id in cut.answered,
                chaser_of=chaser_of.get(message.message_id),
            )
        )
    return Explanation(
        thread_id=cut.thread_id,
        subject=cut.subject,
        now=ctx.now,
        zone=ctx.config.monitor.tz,
        later=len(thread.messages) - sum(len(p.messages) for p in pieces),
        apart=tuple((p.thread_id, len(p.messages)) for p in pieces if p is not piece),
        account=ctx.account,
        calendar_name=ctx.calendar_name,
        calendar=ctx.config.calendars.get(ctx.calendar_name or ""),
        sla=sla(ctx),
        warn_fraction=warn_fraction(ctx),
        messages=tuple(lines),
        waits=tuple(clocks),
        rules=tuple(
            _rule_lines(rule, cut, ctx, violations, failed=rule.name in assessment.failed)
            for rule in rules
        ),
        violations=tuple(violations),
    )


def _rule_lines(
    rule: Rule,
    thread: ThreadView,
    ctx: RuleContext,
    violations: Sequence[Violation],
    *,
    failed: bool,
) -> RuleLines:
    """A rule's reasons; a rule that fails (to assess or to explain) is named, and the
    others still explain themselves."""
    if failed:
        return RuleLines(
            rule.name, ("it raised an error (logged); its violations are unknown",), True
        )
    try:
        why = rule.explain(thread, ctx, [v for v in violations if v.rule == rule.name])
    except Exception:
        log.exception("rule %s failed to explain thread %s", rule.name, thread.thread_id)
        return RuleLines(rule.name, ("it raised an error while explaining (logged)",), True)
    return RuleLines(rule.name, tuple(why))


def _focused(pieces: Sequence[ThreadView], focus: str | None) -> ThreadView:
    """The conversation that is, or holds, `focus` (with or without <>); the first without."""
    if focus is not None and len(pieces) > 1:
        wanted = {focus.strip(), f"<{focus.strip()}>"}
        for piece in pieces:
            if piece.thread_id in wanted or any(m.message_id in wanted for m in piece.messages):
                return piece
    return pieces[0]


def explain(thread: ThreadView, ctx: RuleContext, *, focus: str | None = None) -> str:
    """The text of `pocwatch explain` for one thread as of `ctx.now` (see `explanation`)."""
    return render(explanation(thread, ctx, focus=focus))


# -- rendering ------------------------------------------------------------------------------


def _table(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))] if rows else []
    return [
        (indent + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row))).rstrip()
        for row in rows
    ]


def render(ex: Explanation) -> str:
    """The whole explanation as lines of text (pure: same data, same text)."""
    t = ex.zone
    out = [
        f"Thread {ex.thread_id}: {' '.join(ex.subject.split())}",
        f"As of {format_time(ex.now, t)} (times in {ex.zone.key}).",
        "",
        "Timeline:",
    ]
    out += _timeline(ex)
    out += ["", "SLA clock (business time):"]
    out += _clock(ex)
    out += ["", "Rules:"]
    for rule in ex.rules:
        out += _rule(ex, rule)
    return "\n".join(out) + "\n"


def _timeline(ex: Explanation) -> list[str]:
    if not ex.messages:
        lines = ["  (no message of this thread is known as of then)"]
    else:
        rows = []
        for m in ex.messages:
            notes = []
            if m.sent_as:
                notes.append(f"as {m.sent_as}")
            if m.acknowledges is not None:
                notes.append(f"acknowledges #{m.acknowledges}")
            if m.chaser_of is not None:
                notes.append(f"chaser of #{m.chaser_of}")
            if m.answered:
                notes.append("\\Answered")
            if m.direction is Direction.INTERNAL and m.automatic is None:
                notes.append("internal only: never acknowledges")
            if m.automatic is Automatic.OUT_OF_OFFICE and m.direction is not Direction.INBOUND:
                notes.append(f"marks {m.author} absent")
            rows.append(
                [
                    f"#{m.number}",
                    format_time(m.time, ex.zone),
                    str(m.direction),
                    m.author or "(no sender)",
                    f"automatic ({m.automatic})" if m.automatic else "human",
                    ", ".join(notes) or "-",
                    m.message_id,
                ]
            )
        lines = _table(rows)
    if ex.later:
        lines.append(f"  ({plural(ex.later, 'later message')} after --now not taken into account)")
    if ex.apart:
        others = ", ".join(f"{tid} ({plural(count, 'message')})" for tid, count in ex.apart)
        lines.append(f"  (a later message joined this conversation with: {others})")
    return lines


def _account_text(ex: Explanation) -> str:
    account = ex.account
    if account is None:
        return "none (no account matches); the default SLA and calendar apply"
    people = [f"owner {account.owner or 'none'}", f"backup {account.backup or 'none'}"]
    if account.escalate_to:
        people.append(f"escalate to {account.escalate_to}")
    text = f"{account.name} ({', '.join(people)})"
    if account.owner is None:
        text += "; nobody owns it, so the default SLA and calendar apply"
    return text


def _calendar_text(ex: Explanation) -> str:
    calendar = ex.calendar
    if calendar is None:
        return "none: every hour is open"
    hours = ", ".join(str(h) for h in calendar.hours)
    text = f"{ex.calendar_name}: {calendar.timezone}, {' '.join(calendar.days)} {hours}"
    if calendar.holidays:
        text += f", {plural(len(calendar.holidays), 'holiday')}"
    return text


def _clock(ex: Explanation) -> list[str]:
    t = ex.zone
    warn = ex.sla * ex.warn_fraction
    rows = [
        ["Account:", _account_text(ex)],
        ["Calendar:", _calendar_text(ex)],
        [
            "SLA:",
            f"{human_duration(ex.sla)} of business time "
            f"(warning at {ex.warn_fraction:.0%}: {human_duration(warn)})",
        ],
    ]
    if not ex.waits:
        rows.append(["Waits:", "none: no customer message (inbound, not automatic) waits"])
    for i, w in enumerate(ex.waits, 1):
        label = "Wait:" if len(ex.waits) == 1 else f"Wait {i}:"
        started = f"started by #{w.start} at {format_time(w.started_at, t)}"
        if w.chasers:
            started += f" ({plural(len(w.chasers), 'chaser')}: "
            started += ", ".join(f"#{n}" for n in w.chasers) + ")"
        rows.append([label, started])
        rows.append(
            ["", f"warning at {format_time(w.warn_at, t)}, due at {format_time(w.due_at, t)}"]
        )
        rows.append(["", _wait_state(ex, w)])
    return _table(rows)


def _wait_state(ex: Explanation, w: WaitClock) -> str:
    waited = human_duration(w.waited)
    if w.flagged is not None:
        if w.flagged == w.start:
            return f"#{w.start} is \\Answered (a reply we cannot see): it never breaches"
        return f"ended by \\Answered on #{w.flagged} after {waited} of business time"
    if w.ended_at is not None:
        verdict = "in time" if not w.overdue else f"{human_duration(w.overdue)} late"
        return (
            f"acknowledged by #{w.acknowledged_by} at {format_time(w.ended_at, ex.zone)} "
            f"after {waited} of business time: {verdict}"
        )
    text = f"waiting for {waited} of business time so far"
    if w.overdue:
        return text + f": {human_duration(w.overdue)} past due"
    return text + f": {human_duration(ex.sla - w.waited)} left"


def _rule(ex: Explanation, rule: RuleLines) -> list[str]:
    found = [v for v in ex.violations if v.rule == rule.name]
    if found:
        states = ", ".join(f"{v.severity} {v.status}" for v in found)
        notify = list(dict.fromkeys(a for v in found if v.is_open for a in v.notify))
        head = f"  {rule.name}: FIRED ({states})"
        if notify:
            head += f"; notify {', '.join(notify)}"
    elif rule.failed:
        head = f"  {rule.name}: FAILED on this thread"
    else:
        head = f"  {rule.name}: not fired"
    return [head, *(f"    {line}" for line in rule.why)]
