"""The I/O edge of rule evaluation: threads from the store, the pure engine run as of `now`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monitor.config import Config
from monitor.errors import ThreadNotFound
from monitor.storage.db import chunks
from monitor.storage.messages import MessageStore
from monitor.storage.violations import ThreadCheck, Transitions, ViolationStore
from rules.base import RuleContext, ThreadView, Violation
from rules.engine import assess, evaluate_threads
from rules.people import out_of_office_times

__all__ = [
    "Evaluation",
    "IncrementalResult",
    "evaluate_full",
    "evaluate_incremental",
    "evaluate_store",
    "find_thread",
    "store_context",
    "stored_violations",
]


def store_context(config: Config, store: MessageStore, now: datetime) -> RuleContext:
    """The context of an evaluation as of `now`, with the absences the store shows: our
    people's out-of-office replies up to `now`, read through their own index."""
    bare = RuleContext.create(config, now)
    absences = out_of_office_times(store.out_of_office_messages(bare.now), bare.policy, bare.now)
    return bare.with_out_of_office(absences)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The store evaluated as of `ctx.now`: every violation (open and resolved), in product
    order, and the context they were found in."""

    ctx: RuleContext
    violations: list[Violation]


def evaluate_store(config: Config, store: MessageStore, now: datetime) -> Evaluation:
    """Run the rules over every stored thread as of `now`: the engine cuts messages later
    than `now`; the config in force is `config` whatever `now`."""
    threads = store.threads()
    ctx = store_context(config, store, now)
    violations = evaluate_threads(threads, ctx)  # in product order
    return Evaluation(ctx, violations)


def find_thread(store: MessageStore, thread_id: str) -> ThreadView:
    """The thread named by `thread_id`: its id as given or in <>, the thread holding a
    message of that Message-ID, or one whose messages name it (a conversation, as of an
    earlier --now, rooted at a message never stored); only that thread is read. Raises
    ThreadNotFound."""
    wanted = thread_id.strip()
    names = [wanted] if wanted.startswith("<") else [wanted, f"<{wanted}>"]
    # Tried in this order, each only when the one before found nothing.
    for lookup in (lambda n: n, store.thread_of, store.thread_naming):
        for name in names:
            candidate = lookup(name)
            found = store.threads(thread_ids=[candidate]) if candidate else []
            if found:
                return found[0]
    raise ThreadNotFound(thread_id)


# -- incremental evaluation into the violation store ---------------------------------------

SHARED = "context"  # evaluation_state: the config and the absences every thread depends on
LAST_NOW = "last_now"  # evaluation_state: the instant of the last pass
LOAD_CHUNK = 2000  # threads loaded at a time: memory stays flat, IN lists stay short


@dataclass(frozen=True, slots=True)
class IncrementalResult:
    """What one pass into the violation store did: how many stored threads it evaluated (and
    whether that was every thread), and the transitions it recorded."""

    touched_threads: int
    transitions: Transitions
    full: bool = False


# The config keys no rule reads: editing them (a mailbox password, the SMTP server, a
# schedule) keeps every stored answer. Listed by exclusion, so that a key added later counts
# until it is known not to: at worst one needless full pass, never a stale answer.
_NOT_READ_BY_RULES: dict[str, Any] = {
    "mailboxes": True,
    "smtp": True,
    "reports": True,
    "monitor": {"database", "poll_interval", "backfill", "http_listen", "fetch_batch"},
    "digests": {"schedule", "immediate"},
}


def _shared_digest(ctx: RuleContext) -> str:
    """What every thread's answer depends on besides its own messages: the config the rules
    read and the out-of-office replies of our people seen anywhere up to `now`."""
    read = ctx.config.model_dump(exclude=_NOT_READ_BY_RULES)
    absences = ctx.out_of_office
    seen = sorted((who, tuple(t.isoformat() for t in times)) for who, times in absences.items())
    return hashlib.sha256(f"{read!r}\n{seen!r}".encode()).hexdigest()


def _next_check(thread: ThreadView, deadline: datetime | None, now: datetime) -> datetime | None:
    """When to evaluate the thread again with no change to it: its next deadline, or the
    first stored message later than `now` (cut from this evaluation), whichever is first."""
    later = [m.time for m in thread.messages if m.time > now]
    candidates = [t for t in (deadline, min(later, default=None)) if t is not None]
    return min(candidates, default=None)


def _store_is_current(violations: ViolationStore, ctx: RuleContext, digest: str) -> bool:
    """Whether the store's last pass ran under this config and these absences, and not later
    than `ctx.now` (time went back: trust nothing): only then do unchanged, undue threads keep
    their stored answer."""
    last_now = violations.shared_digest(LAST_NOW)
    return (
        last_now is not None
        and datetime.fromisoformat(last_now) <= ctx.now
        and violations.shared_digest(SHARED) == digest
    )


def _evaluate_into(
    store: MessageStore, violations: ViolationStore, ctx: RuleContext, digest: str, *, full: bool
) -> IncrementalResult:
    """Evaluate the changed and due threads (every thread with `full`) and record the answer
    under `digest` (`_shared_digest(ctx)`, worked out once by the caller)."""
    pending = violations.pending_changes()
    wanted = set(pending.thread_ids)
    if full:
        wanted |= set(store.thread_ids()) | set(violations.checks())
    else:
        wanted |= violations.due_threads(ctx.now)
    found: list[Violation] = []
    checks: list[ThreadCheck] = []
    keep: set[tuple[str, str]] = set()
    evaluated = 0
    for chunk in chunks(sorted(wanted), LOAD_CHUNK):
        for thread in store.threads(thread_ids=chunk):
            evaluated += 1
            assessment = assess(thread, ctx)
            found.extend(assessment.violations)
            ids = {thread.thread_id, *assessment.thread_ids}
            keep.update((tid, rule) for tid in ids for rule in assessment.failed)
            # A rule that failed is tried again on the next pass.
            next_at = (
                ctx.now
                if assessment.failed
                else _next_check(thread, assessment.next_deadline, ctx.now)
            )
            # The conversations it was as of now (a later message merged them) are checked
            # with it: when one comes due alone, the thread no longer splits that way, and
            # the violations stored under its id are withdrawn (or move, found elsewhere).
            checks.extend(ThreadCheck(tid, next_at) for tid in sorted(ids))
    gone = wanted - {c.thread_id for c in checks}
    transitions = violations.record(
        found,
        thread_ids=wanted,
        at=ctx.now,
        checks=checks,
        forget=gone,
        keep=keep,
        consume=pending,
    )
    violations.set_shared_digest(SHARED, digest, ctx.now)
    violations.set_shared_digest(LAST_NOW, ctx.now.isoformat(), ctx.now)
    return IncrementalResult(evaluated, transitions, full)


def evaluate_incremental(
    config: Config, store: MessageStore, violations: ViolationStore, now: datetime
) -> IncrementalResult:
    """Evaluate, as of `now`, only the threads that changed since they were last evaluated
    and those whose next deadline has come, and record their violations.

    Every thread is evaluated instead when what all threads share changed (the config, the
    out-of-office replies seen up to `now`), on the first pass, and when `now` is earlier
    than the last pass. The stored violations then equal a full evaluation as of `now`.
    """
    ctx = store_context(config, store, now)
    digest = _shared_digest(ctx)
    full = not _store_is_current(violations, ctx, digest)
    return _evaluate_into(store, violations, ctx, digest, full=full)


def stored_violations(
    config: Config, store: MessageStore, violations: ViolationStore, now: datetime
) -> Evaluation | None:
    """Every violation as of `now` (open and resolved, in product order) from the violation
    store, brought up to `now` by an incremental pass: the changed and due threads only.

    None when the store's last pass ran under another config or other absences, or later than
    `now`: its answer would need a full pass, which the caller then makes in memory instead of
    recording it (a trial config must not rewrite the daemon's audit log).
    """
    ctx = store_context(config, store, now)
    digest = _shared_digest(ctx)
    if not _store_is_current(violations, ctx, digest):
        return None
    _evaluate_into(store, violations, ctx, digest, full=False)
    return Evaluation(ctx, violations.all())  # in product order


def evaluate_full(
    config: Config, store: MessageStore, violations: ViolationStore, now: datetime
) -> IncrementalResult:
    """Evaluate every stored thread as of `now` and record their violations."""
    ctx = store_context(config, store, now)
    return _evaluate_into(store, violations, ctx, _shared_digest(ctx), full=True)
