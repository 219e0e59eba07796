"""The violation store: violations by fingerprint, their audit log, and which threads to check.

`record` takes one evaluation of some threads and writes only what changed: a new violation,
a severity change, a resolution, a reopening, a move to another thread (threads merged), or a
withdrawal (the rules no longer find it). Recording the same evaluation twice writes nothing.

`thread_changes` is the message store's log of the threads it changed; `thread_checks`
remembers, per evaluated thread, when its violations next change with no new mail
(`next_check_at`, indexed). An incremental pass evaluates the logged threads and the due ones,
and consumes the log entries it read in the transaction that records its answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Connection

from monitor.records import Severity, Status, Violation, sort_key
from monitor.storage.db import chunks
from monitor.storage.models import (
    EvaluationStateRow,
    ThreadChangeRow,
    ThreadCheckRow,
    ViolationEventRow,
    ViolationRow,
)

__all__ = [
    "EVENTS",
    "PendingChanges",
    "ThreadCheck",
    "Transition",
    "Transitions",
    "ViolationEvent",
    "ViolationStore",
]

# opened, severity (changed), resolved, reopened, moved (threads merged), withdrawn (the rules
# no longer find it: the row goes, its audit log stays).
EVENTS = ("opened", "severity", "resolved", "reopened", "moved", "withdrawn")
CHUNK = 500


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of one violation, as written to the audit log."""

    fingerprint: str
    event: str
    violation: Violation  # as evaluated (as last stored, for `withdrawn`)
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Transitions:
    """What recording one evaluation changed, in the order it was written."""

    items: tuple[Transition, ...] = ()

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Transition]:
        return iter(self.items)

    def of(self, event: str) -> list[Transition]:
        return [t for t in self.items if t.event == event]

    def __add__(self, other: Transitions) -> Transitions:
        return Transitions(self.items + other.items)


@dataclass(frozen=True, slots=True)
class ViolationEvent:
    """One audit log entry."""

    fingerprint: str
    at: datetime
    event: str
    severity: str
    status: str
    thread_id: str
    detail: str


@dataclass(frozen=True, slots=True)
class ThreadCheck:
    """A thread just evaluated: evaluate it again at `next_check_at` (None: only when it
    changes)."""

    thread_id: str
    next_check_at: datetime | None


@dataclass(frozen=True, slots=True)
class PendingChanges:
    """The logged thread changes not yet consumed: the threads, and the log entries to
    consume once their evaluation is recorded."""

    thread_ids: frozenset[str]
    entries: tuple[int, ...]


def _values(violation: Violation) -> dict[str, Any]:
    return {
        "rule": violation.rule,
        "about": violation.about,
        "thread_id": violation.thread_id,
        "severity": str(violation.severity),
        "status": str(violation.status),
        "account": violation.account,
        "subject": violation.subject,
        "owner": violation.owner,
        "backup": violation.backup,
        "notify": list(violation.notify),
        "opened_at": violation.opened_at,
        "due_at": violation.due_at,
        "resolved_at": violation.resolved_at,
        "senders": list(violation.senders),
        "chasers": violation.chasers,
        "message_ids": list(violation.message_ids),
    }


def _violation(row: Any) -> Violation:
    return Violation(
        rule=row.rule,
        severity=Severity(row.severity),
        status=Status(row.status),
        account=row.account,
        thread_id=row.thread_id,
        subject=row.subject,
        owner=row.owner,
        backup=row.backup,
        notify=tuple(row.notify),
        opened_at=row.opened_at,
        due_at=row.due_at,
        resolved_at=row.resolved_at,
        senders=tuple(row.senders),
        chasers=row.chasers,
        message_ids=tuple(row.message_ids),
        about=row.about,
    )


def _changes(old: Violation, new: Violation) -> list[tuple[str, str]]:
    """The audit events between a stored violation and its new evaluation."""
    events: list[tuple[str, str]] = []
    if old.thread_id != new.thread_id:
        events.append(("moved", f"{old.thread_id} -> {new.thread_id}"))
    if old.status is Status.OPEN and new.status is Status.RESOLVED:
        events.append(("resolved", ""))
    elif old.status is Status.RESOLVED and new.status is Status.OPEN:
        events.append(("reopened", ""))
    if old.severity is not new.severity:
        events.append(("severity", f"{old.severity} -> {new.severity}"))
    return events


class ViolationStore:
    """Violations, their audit log and the thread check bookkeeping, over one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- violations --------------------------------------------------------------------------

    def record(
        self,
        evaluated: Sequence[Violation],
        *,
        thread_ids: Iterable[str],
        at: datetime,
        checks: Iterable[ThreadCheck] = (),
        forget: Iterable[str] = (),
        keep: Iterable[tuple[str, str]] = (),
        consume: PendingChanges | None = None,
    ) -> Transitions:
        """Store one evaluation of `thread_ids` as of `at`, in one transaction.

        `evaluated` is every violation (open and resolved) the rules found in those threads.
        A stored violation of one of those threads that is no longer found is withdrawn,
        unless its (thread id, rule) is in `keep`: a rule that failed found nothing, which
        says nothing. `checks` are written to thread_checks alongside; `forget` drops the
        checks of threads that no longer exist; `consume` deletes the change log entries
        this evaluation answered.
        """
        found = {v.fingerprint: v for v in evaluated}
        scope = set(thread_ids) | {v.thread_id for v in evaluated}
        kept = set(keep)
        written: list[Transition] = []
        with self.engine.begin() as conn:
            stored: dict[str, Violation] = {}
            for chunk in chunks(sorted(scope), CHUNK):
                for row in conn.execute(
                    select(ViolationRow).where(ViolationRow.thread_id.in_(chunk))
                ):
                    stored[row.fingerprint] = _violation(row)
            # Found ones stored under a thread outside the scope (rare: threads merged).
            for chunk in chunks(sorted(found.keys() - stored.keys()), CHUNK):
                for row in conn.execute(
                    select(ViolationRow).where(ViolationRow.fingerprint.in_(chunk))
                ):
                    stored[row.fingerprint] = _violation(row)

            inserts: list[dict[str, Any]] = []
            updates: list[dict[str, Any]] = []
            for key, new in found.items():
                old = stored.get(key)
                if old is None:
                    inserts.append(
                        {"fingerprint": key, **_values(new), "first_seen_at": at, "updated_at": at}
                    )
                    written.append(Transition(key, "opened", new))
                    if new.status is Status.RESOLVED:
                        written.append(Transition(key, "resolved", new))
                    continue
                if old == new:
                    continue
                updates.append({"key": key, **_values(new), "updated_at": at})
                written.extend(Transition(key, e, new, d) for e, d in _changes(old, new))
            if inserts:
                conn.execute(insert(ViolationRow), inserts)
            if updates:
                columns: dict[str, Any] = {n: bindparam(n) for n in updates[0] if n != "key"}
                conn.execute(
                    update(ViolationRow)
                    .where(ViolationRow.fingerprint == bindparam("key"))
                    .values(columns),
                    updates,
                )

            gone = sorted(
                k
                for k, v in stored.items()
                if k not in found and v.thread_id in scope and (v.thread_id, v.rule) not in kept
            )
            for chunk in chunks(gone, CHUNK):
                conn.execute(delete(ViolationRow).where(ViolationRow.fingerprint.in_(chunk)))
            written.extend(
                Transition(k, "withdrawn", stored[k], "the rules no longer find it") for k in gone
            )

            if written:
                conn.execute(
                    insert(ViolationEventRow),
                    [
                        {
                            "fingerprint": t.fingerprint,
                            "at": at,
                            "event": t.event,
                            "severity": str(t.violation.severity),
                            "status": str(t.violation.status),
                            "thread_id": t.violation.thread_id,
                            "detail": t.detail,
                        }
                        for t in written
                    ],
                )
            self._write_checks(conn, list(checks), sorted(set(forget)), at)
            if consume is not None:
                for seqs in chunks(consume.entries, CHUNK):
                    conn.execute(delete(ThreadChangeRow).where(ThreadChangeRow.seq.in_(seqs)))
        return Transitions(tuple(written))

    def open_violations(self) -> list[Violation]:
        return self._select(ViolationRow.status == str(Status.OPEN))

    def all(self) -> list[Violation]:
        return self._select(None)

    def _select(self, where: Any) -> list[Violation]:
        stmt = select(ViolationRow)
        if where is not None:
            stmt = stmt.where(where)
        with self.engine.connect() as conn:
            found = [_violation(row) for row in conn.execute(stmt)]
        found.sort(key=sort_key)
        return found

    def open_count(self) -> int:
        with self.engine.connect() as conn:
            return (
                conn.scalar(
                    select(func.count())
                    .select_from(ViolationRow)
                    .where(ViolationRow.status == str(Status.OPEN))
                )
                or 0
            )

    def events(self, fingerprint: str) -> list[ViolationEvent]:
        """The audit log of one violation, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(ViolationEventRow)
                .where(ViolationEventRow.fingerprint == fingerprint)
                .order_by(ViolationEventRow.id)
            )
            return [
                ViolationEvent(
                    r.fingerprint, r.at, r.event, r.severity, r.status, r.thread_id, r.detail
                )
                for r in rows
            ]

    # -- thread checks -----------------------------------------------------------------------

    def pending_changes(self) -> PendingChanges:
        """The threads the message store logged as changed and no pass has consumed yet
        (merged-away threads included)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(ThreadChangeRow.seq, ThreadChangeRow.thread_id)).all()
        return PendingChanges(frozenset(tid for _seq, tid in rows), tuple(seq for seq, _ in rows))

    def due_threads(self, now: datetime) -> set[str]:
        """Threads whose next check time has come (an indexed range query)."""
        with self.engine.connect() as conn:
            return set(
                conn.scalars(
                    select(ThreadCheckRow.thread_id).where(
                        ThreadCheckRow.next_check_at.is_not(None),
                        ThreadCheckRow.next_check_at <= now,
                    )
                )
            )

    def mark_checked(self, thread_id: str, next_check_at: datetime | None, at: datetime) -> None:
        with self.engine.begin() as conn:
            self._write_checks(conn, [ThreadCheck(thread_id, next_check_at)], [], at)

    def checks(self) -> dict[str, ThreadCheck]:
        with self.engine.connect() as conn:
            return {
                r.thread_id: ThreadCheck(r.thread_id, r.next_check_at)
                for r in conn.execute(select(ThreadCheckRow))
            }

    @staticmethod
    def _write_checks(
        conn: Connection, checks: list[ThreadCheck], forget: list[str], at: datetime
    ) -> None:
        ids = sorted({c.thread_id for c in checks} | set(forget))
        for chunk in chunks(ids, CHUNK):
            conn.execute(delete(ThreadCheckRow).where(ThreadCheckRow.thread_id.in_(chunk)))
        rows: list[dict[str, Any]] = [
            {"thread_id": c.thread_id, "next_check_at": c.next_check_at, "evaluated_at": at}
            for c in {c.thread_id: c for c in checks}.values()
        ]
        for batch in chunks(rows, CHUNK):
            conn.execute(insert(ThreadCheckRow), batch)

    # -- what every thread's evaluation shares -----------------------------------------------

    def shared_digest(self, name: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.scalar(
                select(EvaluationStateRow.digest).where(EvaluationStateRow.name == name)
            )

    def set_shared_digest(self, name: str, digest: str, at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(EvaluationStateRow).where(EvaluationStateRow.name == name))
            conn.execute(insert(EvaluationStateRow).values(name=name, digest=digest, updated_at=at))
