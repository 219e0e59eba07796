"""The I/O edge of rule evaluation: threads from the store, the pure engine run as of `now`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.classify import InternalPolicy, author
from monitor.config import Config
from monitor.errors import ThreadNotFound
from monitor.records import Automatic
from monitor.storage.messages import MessageStore, StoredThread
from rules.base import RuleContext, ThreadView, Violation
from rules.engine import evaluate_threads, sort_key

__all__ = [
    "Evaluation",
    "evaluate_store",
    "find_thread",
    "load_threads",
    "out_of_office_seen",
    "rule_context",
    "waited",
]


def thread_view(stored: StoredThread) -> ThreadView:
    return ThreadView(
        thread_id=stored.thread_id,
        subject=stored.subject,
        messages=stored.messages,
        answered=stored.answered,
        arrived_in=stored.arrived_in,
    )


def load_threads(store: MessageStore) -> list[ThreadView]:
    """Every stored thread, as the rules see it."""
    return [thread_view(t) for t in store.threads()]


def out_of_office_seen(
    threads: Iterable[ThreadView], policy: InternalPolicy, now: datetime
) -> dict[str, tuple[datetime, ...]]:
    """Internal address -> times of its out-of-office replies anywhere in the store, up to
    `now` (an owner's out-of-office in one thread makes them absent in every thread)."""
    seen: dict[str, set[datetime]] = {}
    for thread in threads:
        for message in thread.messages:
            if message.automatic is not Automatic.OUT_OF_OFFICE or message.time > now:
                continue
            who = author(message, policy)
            if who and policy.is_internal(who):
                seen.setdefault(who.lower(), set()).add(message.time)
    return {who: tuple(sorted(times)) for who, times in seen.items()}


def rule_context(config: Config, threads: Iterable[ThreadView], now: datetime) -> RuleContext:
    """The context of one evaluation pass as of `now`, with the absences the store shows."""
    bare = RuleContext.create(config, now)
    return RuleContext.create(
        config, now, out_of_office=out_of_office_seen(threads, bare.policy, bare.now)
    )


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The store evaluated as of `ctx.now`: its threads and every violation (open and
    resolved), in product order."""

    ctx: RuleContext
    threads: list[ThreadView]
    violations: list[Violation]

    def thread(self, thread_id: str) -> ThreadView | None:
        return next((t for t in self.threads if t.thread_id == thread_id), None)


def evaluate_store(config: Config, store: MessageStore, now: datetime) -> Evaluation:
    """Run the rules over every stored thread as of `now`: the engine cuts messages later
    than `now`; the config in force is `config` whatever `now`."""
    threads = load_threads(store)
    ctx = rule_context(config, threads, now)
    violations = evaluate_threads(threads, ctx)
    violations.sort(key=sort_key)
    return Evaluation(ctx, threads, violations)


def find_thread(store: MessageStore, threads: list[ThreadView], thread_id: str) -> ThreadView:
    """The thread named by `thread_id`: its id as given or in <>, or the thread holding a
    message of that Message-ID. Raises ThreadNotFound."""
    by_id = {t.thread_id: t for t in threads}
    wanted = thread_id.strip()
    candidates = [wanted] if wanted.startswith("<") else [wanted, f"<{wanted}>"]
    for candidate in candidates:
        if candidate in by_id:
            return by_id[candidate]
    for candidate in candidates:
        holder = store.thread_of(candidate)
        if holder is not None and holder in by_id:
            return by_id[holder]
    raise ThreadNotFound(thread_id)


def waited(
    violation: Violation, threads: Mapping[str, ThreadView], ctx: RuleContext
) -> tuple[timedelta, timedelta] | None:
    """For an `unacknowledged` violation: (business time waited up to its resolution or
    `ctx.now`, business time past the deadline); None for other rules."""
    if violation.rule != "unacknowledged" or violation.due_at is None:
        return None
    thread = threads.get(violation.thread_id)
    start = (
        next((m.time for m in thread.messages if m.message_id == violation.about), None)
        if thread
        else None
    )
    if start is None:
        return None
    account = next((a for a in ctx.config.accounts if a.name == violation.account), None)
    calendar = ctx.with_account(account).calendar
    end = violation.resolved_at or ctx.now
    return calendar.between(start, end), calendar.between(violation.due_at, end)
