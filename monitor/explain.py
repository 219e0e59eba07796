"""`pocwatch explain`: a thread's timeline, its SLA clock and each rule's verdict, as text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from monitor.classify import author, direction
from monitor.config import AccountConfig, CalendarConfig
from monitor.records import Automatic, Direction
from rules.accounts import first_customer_message
from rules.base import RuleContext, Status, ThreadView, Violation
from rules.conflicting_replies import conflicts
from rules.engine import evaluate_prepared, prepare, registered_rules
from rules.people import is_absent, same_person
from rules.unacknowledged import thresholds, waits

__all__ = [
    "ConflictLine",
    "Explanation",
    "MessageLine",
    "ReplyLine",
    "WaitClock",
    "explain",
    "explanation",
    "format_duration",
    "format_time",
    "render",
]


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
class ReplyLine:
    """An outbound, human reply: who, in which turn, and why it does not count if so."""

    number: int
    sender: str
    time: datetime
    turn: int
    excluded: str | None  # "allowed", "owner absent"


@dataclass(frozen=True, slots=True)
class ConflictLine:
    replies: tuple[ReplyLine, ...]
    opened_at: datetime
    resolved_at: datetime | None
    resolved_by: int | None  # the reply that answered a later turn alone


@dataclass(frozen=True, slots=True)
class Explanation:
    """Everything `explain` shows, as plain data (no I/O, no clock)."""

    thread_id: str
    subject: str
    now: datetime
    zone: ZoneInfo  # times are shown in monitor.timezone
    later: int  # messages after `now`: not taken into account
    account: AccountConfig | None
    first_customer: str | None
    calendar_name: str | None
    calendar: CalendarConfig | None
    sla: timedelta
    warn_fraction: float
    messages: tuple[MessageLine, ...]
    waits: tuple[WaitClock, ...]
    replies: tuple[ReplyLine, ...]
    conflicts: tuple[ConflictLine, ...]
    window: timedelta
    open_for: timedelta
    handoff_pairs: tuple[tuple[int, int], ...]  # replies that count as one sender (overlap)
    rules: tuple[tuple[str, str], ...]  # (name, description) of every registered rule
    violations: tuple[Violation, ...]
    admins: tuple[str, ...]


def explanation(thread: ThreadView, ctx: RuleContext) -> Explanation:
    """Explain one thread as of `ctx.now` (ctx as built for the whole store: no account)."""
    cut, ctx = prepare(thread, ctx)
    violations = evaluate_prepared(cut, ctx)
    number = {m.message_id: i for i, m in enumerate(cut.messages, 1)}
    found = waits(cut, ctx)
    acknowledges: dict[str, int] = {}
    chaser_of: dict[str, int] = {}
    clocks: list[WaitClock] = []
    calendar = ctx.calendar
    for wait in found:
        start = number[wait.start.message_id]
        if wait.acknowledged_by is not None:
            acknowledges[wait.acknowledged_by.message_id] = start
        for chaser in wait.chasers:
            chaser_of[chaser.message_id] = start
        warn_at, due_at = thresholds(wait, ctx)
        end = wait.ended_at or ctx.now
        clocks.append(
            WaitClock(
                start=start,
                chasers=tuple(number[c.message_id] for c in wait.chasers),
                started_at=wait.start.time,
                warn_at=warn_at,
                due_at=due_at,
                ended_at=wait.ended_at,
                acknowledged_by=number[wait.acknowledged_by.message_id]
                if wait.acknowledged_by
                else None,
                flagged=number[wait.flagged.message_id] if wait.flagged else None,
                waited=calendar.between(wait.start.time, end),
                overdue=calendar.between(due_at, end),
            )
        )
    lines: list[MessageLine] = []
    replies: list[ReplyLine] = []
    settings = ctx.config.rules.conflicting_replies
    turn = 0
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
        if message.automatic is not None:
            continue
        if way is Direction.INBOUND:
            turn += 1
        elif way is Direction.OUTBOUND:
            sender = (who or "").lower()
            excluded = None
            if sender in settings.allow:
                excluded = "allowed"
            elif sender == ctx.owner and is_absent(ctx, sender, message.time):
                excluded = "owner absent"
            replies.append(
                ReplyLine(number[message.message_id], sender, message.time, turn, excluded)
            )
    counted = [r for r in replies if r.excluded is None]
    by_id = {r.number: r for r in replies}
    conflict_lines = []
    for conflict in conflicts(cut, ctx):
        involved = tuple(by_id[number[r.message.message_id]] for r in conflict.replies)
        resolved_by = next(
            (r.number for r in counted if conflict.resolved_at and r.time == conflict.resolved_at),
            None,
        )
        conflict_lines.append(
            ConflictLine(involved, conflict.opened_at, conflict.resolved_at, resolved_by)
        )
    handoffs = tuple(
        (a.number, b.number)
        for i, a in enumerate(counted)
        for b in counted[i + 1 :]
        if a.sender != b.sender and same_person(ctx, a.sender, b.sender, b.time)
    )
    first = first_customer_message(cut.messages, lambda addr: not ctx.policy.is_internal(addr))
    return Explanation(
        thread_id=thread.thread_id,
        subject=thread.subject,
        now=ctx.now,
        zone=ctx.config.monitor.tz,
        later=len(thread.messages) - len(cut.messages),
        account=ctx.account,
        first_customer=first.from_addr if first else None,
        calendar_name=_calendar_name(ctx),
        calendar=ctx.config.calendar_for(ctx.account),
        sla=ctx.sla,
        warn_fraction=ctx.config.rules.unacknowledged.warn_at,
        messages=tuple(lines),
        waits=tuple(clocks),
        replies=tuple(replies),
        conflicts=tuple(conflict_lines),
        window=settings.window,
        open_for=settings.open_for,
        handoff_pairs=handoffs,
        rules=tuple((rule.name, rule.description) for rule in registered_rules()),
        violations=tuple(violations),
        admins=tuple(ctx.config.monitor.admins),
    )


def _calendar_name(ctx: RuleContext) -> str | None:
    if ctx.config.calendar_for(ctx.account) is None:
        return None
    if ctx.account is not None and ctx.account.calendar:
        return ctx.account.calendar
    return "default"


def explain(thread: ThreadView, ctx: RuleContext) -> str:
    """The text of `pocwatch explain` for one thread as of `ctx.now`."""
    return render(explanation(thread, ctx))


# -- rendering ------------------------------------------------------------------------------


def format_time(moment: datetime | None, zone: ZoneInfo) -> str:
    """`Tue 2026-11-10 09:20 GMT`: a local time with its zone abbreviation."""
    if moment is None:
        return "-"
    return moment.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z")


def format_duration(span: timedelta, *, days: bool = False) -> str:
    """`3h10m`, `45m`, `30s`, `0m`; with `days`, wall time such as `3d` or `1d2h`.

    Business time is shown in hours: a business day is not 24 hours.
    """
    seconds = max(int(span.total_seconds()), 0)
    if seconds < 60:
        return f"{seconds}s" if seconds else "0m"
    d, rest = divmod(seconds, 86400) if days else (0, seconds)
    h, rest = divmod(rest, 3600)
    m = rest // 60
    parts = [f"{d}d" if d else "", f"{h}h" if h else "", f"{m}m" if m else ""]
    return "".join(parts)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


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
    for name, description in ex.rules:
        out += _rule(ex, name, description)
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
        lines.append(f"  ({_plural(ex.later, 'later message')} after --now not taken into account)")
    return lines


def _account_text(ex: Explanation) -> str:
    account = ex.account
    if account is None:
        return "none (no account matches); the default SLA and calendar apply"
    people = [f"owner {account.owner or 'none'}", f"backup {account.backup or 'none'}"]
    if account.escalate_to:
        people.append(f"escalate to {account.escalate_to}")
    return f"{account.name} ({', '.join(people)})"


def _calendar_text(ex: Explanation) -> str:
    calendar = ex.calendar
    if calendar is None:
        return "none: every hour is open"
    hours = ", ".join(str(h) for h in calendar.hours)
    text = f"{ex.calendar_name}: {calendar.timezone}, {' '.join(calendar.days)} {hours}"
    if calendar.holidays:
        text += f", {_plural(len(calendar.holidays), 'holiday')}"
    return text


def _clock(ex: Explanation) -> list[str]:
    t = ex.zone
    warn = ex.sla * ex.warn_fraction
    rows = [
        ["Account:", _account_text(ex)],
        ["Calendar:", _calendar_text(ex)],
        [
            "SLA:",
            f"{format_duration(ex.sla)} of business time "
            f"(warning at {ex.warn_fraction:.0%}: {format_duration(warn)})",
        ],
    ]
    if not ex.waits:
        rows.append(["Waits:", "none: no customer message (inbound, not automatic) waits"])
    for i, w in enumerate(ex.waits, 1):
        label = "Wait:" if len(ex.waits) == 1 else f"Wait {i}:"
        started = f"started by #{w.start} at {format_time(w.started_at, t)}"
        if w.chasers:
            started += f" ({_plural(len(w.chasers), 'chaser')}: "
            started += ", ".join(f"#{n}" for n in w.chasers) + ")"
        rows.append([label, started])
        rows.append(
            ["", f"warning at {format_time(w.warn_at, t)}, due at {format_time(w.due_at, t)}"]
        )
        rows.append(["", _wait_state(ex, w)])
    return _table(rows)


def _wait_state(ex: Explanation, w: WaitClock) -> str:
    waited = format_duration(w.waited)
    if w.flagged is not None:
        if w.flagged == w.start:
            return f"#{w.start} is \\Answered (a reply we cannot see): it never breaches"
        return f"ended by \\Answered on #{w.flagged} after {waited} of business time"
    if w.ended_at is not None:
        verdict = "in time" if not w.overdue else f"{format_duration(w.overdue)} late"
        return (
            f"acknowledged by #{w.acknowledged_by} at {format_time(w.ended_at, ex.zone)} "
            f"after {waited} of business time: {verdict}"
        )
    text = f"waiting for {waited} of business time so far"
    if w.overdue:
        return text + f": {format_duration(w.overdue)} past due"
    return text + f": {format_duration(ex.sla - w.waited)} left"


def _rule(ex: Explanation, name: str, description: str) -> list[str]:
    found = [v for v in ex.violations if v.rule == name]
    if found:
        states = ", ".join(f"{v.severity} {v.status}" for v in found)
        notify = list(dict.fromkeys(a for v in found if v.is_open for a in v.notify))
        head = f"  {name}: FIRED ({states})"
        if notify:
            head += f"; notify {', '.join(notify)}"
    else:
        head = f"  {name}: not fired"
    reasons = {
        "unacknowledged": _why_unacknowledged,
        "conflicting_replies": _why_conflicting,
        "unowned": _why_unowned,
    }.get(name)
    lines = reasons(ex, found) if reasons else [description]
    return [head, *(f"    {line}" for line in lines)]


def _why_unacknowledged(ex: Explanation, found: list[Violation]) -> list[str]:
    if not ex.waits:
        return ["no customer message (inbound, not automatic) has waited for an answer"]
    t = ex.zone
    by_start = {v.about: v for v in found}
    number_of = {m.message_id: m.number for m in ex.messages}
    lines = []
    for w in ex.waits:
        v = next((v for about, v in by_start.items() if number_of.get(about) == w.start), None)
        waited = format_duration(w.waited)
        if w.flagged == w.start:
            lines.append(f"#{w.start} is \\Answered (answered from a client we cannot see)")
        elif v is None and w.ended_at is not None:
            lines.append(
                f"#{w.start} was answered after {waited} of business time, before the warning "
                f"threshold ({format_duration(ex.sla * ex.warn_fraction)})"
            )
        elif v is None:
            lines.append(
                f"#{w.start} has waited {waited} of business time; "
                f"warning at {format_time(w.warn_at, t)}"
            )
        elif v.status is Status.RESOLVED:
            over = f", {format_duration(w.overdue)} past the SLA" if w.overdue else ""
            lines.append(
                f"#{w.start} waited {waited} of business time before an answer{over}; "
                f"resolved at {format_time(v.resolved_at, t)}"
            )
        else:
            past = (
                f"{format_duration(w.overdue)} past the deadline {format_time(w.due_at, t)}"
                if w.overdue
                else f"past the warning threshold, due at {format_time(w.due_at, t)}"
            )
            chasers = f", chased {_plural(len(w.chasers), 'time')}" if w.chasers else ""
            lines.append(f"#{w.start} has waited {waited} of business time, {past}{chasers}")
    return lines


def _names(replies: Sequence[ReplyLine]) -> str:
    grouped: dict[str, list[str]] = {}
    for r in replies:
        grouped.setdefault(r.sender, []).append(f"#{r.number}")
    return " and ".join(f"{who} ({', '.join(nums)})" for who, nums in grouped.items())


def _why_conflicting(ex: Explanation, found: list[Violation]) -> list[str]:
    t = ex.zone
    lines = []
    for c in ex.conflicts:
        turns = {r.turn for r in c.replies}
        how = (
            "in the same turn"
            if len(turns) == 1
            else f"within {format_duration(ex.window, days=True)} of each other"
        )
        lines.append(f"{_names(c.replies)} answered {how}: opened {format_time(c.opened_at, t)}")
        if c.resolved_at is None:
            lines.append(
                "open until a later turn is answered by one sender, "
                f"or until {format_time(c.opened_at + ex.open_for, t)} (open_for) at the latest"
            )
        elif c.resolved_by is not None:
            lines.append(
                f"resolved at {format_time(c.resolved_at, t)}: #{c.resolved_by} answered "
                "a later turn alone"
            )
        else:
            lines.append(
                f"resolved at {format_time(c.resolved_at, t)}: "
                f"open_for ({format_duration(ex.open_for, days=True)}) after it opened"
            )
    for r in ex.replies:
        if r.excluded == "allowed":
            lines.append(
                f"{r.sender} (#{r.number}) never counts: in rules.conflicting_replies.allow"
            )
        elif r.excluded:
            lines.append(f"{r.sender} (#{r.number}) does not count: the owner was absent then")
    if found:
        return lines
    counted = [r for r in ex.replies if r.excluded is None]
    senders = {r.sender for r in counted}
    if not ex.replies:
        lines.append("no reply from us to the customer (outbound, not automatic)")
    elif len(senders) <= 1:
        lines.append(
            f"only one of us wrote to the customer: {_names(counted)}"
            if counted
            else "no reply counts"
        )
    elif ex.handoff_pairs:
        pairs = ", ".join(f"#{a} and #{b}" for a, b in ex.handoff_pairs)
        lines.append(f"{pairs} count as one sender: a handoff's old and new owner in its overlap")
    else:
        lines.append(
            f"{_names(counted)} answered, but not in the same turn nor within "
            f"{format_duration(ex.window, days=True)} of each other"
        )
    return lines


def _why_unowned(ex: Explanation, found: list[Violation]) -> list[str]:
    has_customer_mail = any(
        m.direction is Direction.INBOUND and m.automatic is None for m in ex.messages
    )
    if ex.account is not None and ex.account.owner:
        return [f"account {ex.account.name} is owned by {ex.account.owner}"]
    if not has_customer_mail:
        return ["no customer mail (inbound, not automatic): nobody needs to own it"]
    admins = f"; monitor.admins warned: {', '.join(ex.admins)}" if ex.admins else ""
    if ex.account is not None:
        return [f"account {ex.account.name} has no owner{admins}"]
    return [f"no account matches the customer ({ex.first_customer or 'unknown'}){admins}"]
