"""The rules engine: runs every registered rule over a thread."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import NamedTuple

from monitor.config import AccountConfig
from monitor.threads import thread_messages
from rules.accounts import match_account
from rules.base import Rule, RuleContext, ThreadView, Violation, sort_key
from rules.people import absence_changes, out_of_office_times
from rules.registry import registered_rules

__all__ = [
    "Assessment",
    "as_of",
    "assess",
    "assess_prepared",
    "evaluate_thread",
    "evaluate_threads",
    "sort_key",
]

log = logging.getLogger(__name__)


def _cut(thread: ThreadView, ctx: RuleContext) -> ThreadView:
    """The thread's messages up to `now`: later messages are not known yet."""
    messages = sorted(
        (m for m in thread.messages if m.time <= ctx.now), key=lambda m: m.time
    )  # stable: ties keep the stored order
    if len(messages) == len(thread.messages) and all(
        a is b for a, b in zip(messages, thread.messages, strict=True)
    ):
        return thread
    return replace(thread, messages=tuple(messages))


def as_of(thread: ThreadView, ctx: RuleContext) -> list[ThreadView]:
    """The conversations a stored thread was at `now`, in order of their first message.

    Later messages are cut. One of them may be what merged the thread (a reply naming two
    conversations): those that were apart then are apart again, each under its own root, as
    threading those messages alone gives. Threading decides each message on what precedes it,
    so this equals the threads of every message up to `now`; a thread with nothing later is
    returned whole.
    """
    cut = _cut(thread, ctx)
    if cut is thread or not cut.messages:
        return [cut]
    policy = ctx.policy
    pieces = thread_messages(cut.messages, lambda addr: not policy.is_internal(addr))
    if len(pieces) == 1 and pieces[0].thread_id == thread.thread_id:
        return [cut]
    by_id = {m.message_id: m for m in cut.messages}
    found = []
    for piece in pieces:
        members = set(piece.message_ids)
        messages = tuple(m for m in cut.messages if m.message_id in members)
        found.append(
            replace(
                cut,
                thread_id=piece.thread_id,
                subject=by_id[piece.message_ids[0]].subject,
                messages=messages,
                answered=cut.answered & members,
            )
        )
    return found


def _with_thread_absences(thread: ThreadView, ctx: RuleContext) -> RuleContext:
    """Add the out-of-office replies of our people seen in this thread (the store may not
    have passed them yet)."""
    extra = out_of_office_times(thread.messages, ctx.policy, ctx.now)
    if not extra:
        return ctx
    seen = dict(ctx.out_of_office)
    for who, times in extra.items():
        seen[who] = tuple(sorted({*seen.get(who, ()), *times}))
    return ctx.with_out_of_office(seen)


class Assessment(NamedTuple):
    """A thread's violations as of `now`, when they next change with no new mail, and the
    rules that failed on it (their violations are unknown, not absent)."""

    violations: list[Violation]
    next_deadline: datetime | None
    failed: frozenset[str] = frozenset()
    thread_ids: tuple[str, ...] = ()  # the conversations it was as of `now` (see as_of)


def prepare(thread: ThreadView, ctx: RuleContext) -> tuple[ThreadView, RuleContext]:
    """Decide the account of one conversation as of `now` (see `as_of`), and add the
    absences it shows."""
    policy = ctx.policy
    account = match_account(
        thread.messages,
        ctx.config.accounts,
        policy=policy,
        arrived_in=thread.arrived_in,
    )
    assert account is None or isinstance(account, AccountConfig)
    return thread, _with_thread_absences(thread, ctx.with_account(account))


def assess_prepared(
    thread: ThreadView, ctx: RuleContext, rules: Sequence[Rule] | None = None
) -> Assessment:
    """`assess` for one conversation as of `now` (`as_of`) whose context `prepare` narrowed,
    by the registered rules or the `rules` given (explain shows the rules it is given)."""
    found: list[Violation] = []
    candidates: list[datetime] = []
    failed: set[str] = set()
    for rule in registered_rules() if rules is None else rules:
        try:
            answer = rule.assess(thread, ctx)
        except Exception:
            log.exception("rule %s failed on thread %s", rule.name, thread.thread_id)
            failed.add(rule.name)
            continue
        found.extend(answer.violations)
        if answer.next_deadline is not None:
            candidates.append(answer.next_deadline)
    found.sort(key=sort_key)
    if found:
        # Whom to warn first follows the owner's absences.
        candidates.extend(absence_changes(ctx, ctx.owner))
    deadline = min((t for t in candidates if t > ctx.now), default=None)
    return Assessment(found, deadline, frozenset(failed))


def assess(thread: ThreadView, ctx: RuleContext) -> Assessment:
    """Every violation of one thread as of `ctx.now` (open and resolved, in product order),
    and the earliest later instant at which they may change if no new mail arrives.

    Messages later than `now` are cut, and a thread a later message merged is assessed as
    the conversations it was then (`as_of`); the config in force is `ctx.config` whatever
    `now`. The account decides the owner, calendar and SLA (the defaults without one). A
    rule that fails is logged, skipped and named in `failed`: one bad rule never stops the
    pass.
    """
    pieces = as_of(thread, ctx)
    answers = [assess_prepared(*prepare(piece, ctx)) for piece in pieces]
    ids = tuple(piece.thread_id for piece in pieces)
    if len(answers) == 1:
        return answers[0]._replace(thread_ids=ids)
    found = sorted((v for answer in answers for v in answer.violations), key=sort_key)
    deadline = min((a.next_deadline for a in answers if a.next_deadline), default=None)
    failed = frozenset(rule for answer in answers for rule in answer.failed)
    return Assessment(found, deadline, failed, ids)


def evaluate_thread(thread: ThreadView, ctx: RuleContext) -> list[Violation]:
    """Every violation of one thread as of `ctx.now`, open and resolved, in product order
    (see `assess`)."""
    return assess(thread, ctx).violations


def evaluate_threads(threads: Iterable[ThreadView], ctx: RuleContext) -> list[Violation]:
    """evaluate_thread over many threads, merged in product order."""
    found = [v for thread in threads for v in evaluate_thread(thread, ctx)]
    found.sort(key=sort_key)
    return found
