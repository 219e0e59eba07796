"""The violation store on SQLite and PostgreSQL: transitions, idempotency, the audit log."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest

from monitor.storage.db import open_database
from monitor.storage.violations import ViolationStore
from rules.base import Severity, Status, Violation
from tests.builders import T0

H = timedelta(hours=1)


@pytest.fixture
def store(database_url: str) -> Iterator[ViolationStore]:
    engine = open_database(database_url)
    try:
        yield ViolationStore(engine)
    finally:
        engine.dispose()


def violation(about: str = "<q1>", thread_id: str = "<q1>", **changes: object) -> Violation:
    base = Violation(
        rule="unacknowledged",
        severity=Severity.WARNING,
        status=Status.OPEN,
        account="Client",
        thread_id=thread_id,
        subject="Cannot log in",
        owner="priya@example.com",
        backup="sam@example.com",
        notify=("priya@example.com", "sam@example.com"),
        opened_at=T0 + 3 * H,
        due_at=T0 + 4 * H,
        resolved_at=None,
        senders=(),
        chasers=0,
        message_ids=("<q1>",),
        about=about,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def events(store: ViolationStore, v: Violation) -> list[str]:
    return [e.event for e in store.events(v.fingerprint)]


def test_a_violation_opens_rises_resolves_with_one_event_each(store: ViolationStore) -> None:
    warn = violation()
    assert [t.event for t in store.record([warn], thread_ids=["<q1>"], at=T0 + 3 * H)] == ["opened"]
    breach = replace(warn, severity=Severity.BREACH)
    assert [t.event for t in store.record([breach], thread_ids=["<q1>"], at=T0 + 4 * H)] == [
        "severity"
    ]
    done = replace(breach, status=Status.RESOLVED, resolved_at=T0 + 5 * H)
    assert [t.event for t in store.record([done], thread_ids=["<q1>"], at=T0 + 6 * H)] == [
        "resolved"
    ]
    assert store.open_violations() == []
    assert store.all() == [done]
    log = store.events(warn.fingerprint)
    assert [(e.event, e.at, e.severity, e.status) for e in log] == [
        ("opened", T0 + 3 * H, "warning", "open"),
        ("severity", T0 + 4 * H, "breach", "open"),
        ("resolved", T0 + 6 * H, "breach", "resolved"),
    ]
    assert log[1].detail == "warning -> breach"


def test_recording_the_same_evaluation_twice_writes_nothing(store: ViolationStore) -> None:
    found = [violation(), violation("<q2>", "<q2>", rule="unowned")]
    assert len(store.record(found, thread_ids=["<q1>", "<q2>"], at=T0)) == 2
    assert len(store.record(found, thread_ids=["<q1>", "<q2>"], at=T0 + H)) == 0
    assert [len(store.events(v.fingerprint)) for v in found] == [1, 1]
    assert {v.fingerprint for v in store.open_violations()} == {v.fingerprint for v in found}


def test_other_field_changes_update_the_row_without_an_event(store: ViolationStore) -> None:
    first = violation()
    store.record([first], thread_ids=["<q1>"], at=T0)
    chased = replace(first, chasers=2, message_ids=("<q1>", "<c1>", "<c2>"))
    assert len(store.record([chased], thread_ids=["<q1>"], at=T0 + H)) == 0
    assert store.all() == [chased]


def test_resolved_on_first_sight_logs_opened_then_resolved(store: ViolationStore) -> None:
    done = violation(status=Status.RESOLVED, resolved_at=T0 + 2 * H)
    store.record([done], thread_ids=["<q1>"], at=T0 + 5 * H)
    assert events(store, done) == ["opened", "resolved"]


def test_a_resolved_violation_can_reopen(store: ViolationStore) -> None:
    done = violation(status=Status.RESOLVED, resolved_at=T0 + 2 * H)
    store.record([done], thread_ids=["<q1>"], at=T0 + 5 * H)
    store.record([violation()], thread_ids=["<q1>"], at=T0 + 6 * H)
    assert events(store, done) == ["opened", "resolved", "reopened"]


def test_thread_merge_moves_the_violation(store: ViolationStore) -> None:
    before = violation("<right>", "<left>")
    store.record([before], thread_ids=["<left>"], at=T0)
    after = replace(before, thread_id="<root>")
    moved = store.record([after], thread_ids=["<root>", "<left>"], at=T0 + H)
    assert [(t.event, t.detail) for t in moved] == [("moved", "<left> -> <root>")]
    assert store.all() == [after]
    assert store.events(before.fingerprint)[-1].thread_id == "<root>"


def test_a_violation_no_longer_found_is_withdrawn(store: ViolationStore) -> None:
    kept, dropped = violation(), violation("<q1-unowned>", rule="unowned")
    store.record([kept, dropped], thread_ids=["<q1>"], at=T0)
    changes = store.record([kept], thread_ids=["<q1>"], at=T0 + H)
    assert [(t.event, t.fingerprint) for t in changes] == [("withdrawn", dropped.fingerprint)]
    assert store.all() == [kept]
    assert events(store, dropped) == ["opened", "withdrawn"]
    # Threads outside the evaluated ones keep their violations.
    other = violation("<q9>", "<q9>")
    store.record([other], thread_ids=["<q9>"], at=T0)
    assert len(store.record([kept], thread_ids=["<q1>"], at=T0 + 2 * H)) == 0
    assert {v.about for v in store.all()} == {"<q1>", "<q9>"}


def test_thread_checks_find_due_threads(store: ViolationStore) -> None:
    store.mark_checked("<a>", T0 + 4 * H, T0)
    store.mark_checked("<b>", None, T0)
    store.mark_checked("<gone>", T0 + H, T0)
    assert store.due_threads(T0 + 3 * H) == {"<gone>"}
    assert store.due_threads(T0 + 4 * H) == {"<a>", "<gone>"}
    store.mark_checked("<a>", None, T0 + 5 * H)  # replaces the earlier check
    assert store.due_threads(T0 + 10 * H) == {"<gone>"}
    store.record([], thread_ids=["<gone>"], at=T0 + 10 * H, forget=["<gone>"])
    assert store.due_threads(T0 + 10 * H) == set()
    assert set(store.checks()) == {"<a>", "<b>"}


def test_a_rule_that_failed_keeps_its_stored_violations(store: ViolationStore) -> None:
    waiting = violation()
    store.record([waiting], thread_ids=["<q1>"], at=T0 + 3 * H)
    kept = store.record([], thread_ids=["<q1>"], at=T0 + 4 * H, keep=[("<q1>", waiting.rule)])
    assert len(kept) == 0
    assert store.open_violations() == [waiting]
    # Another rule failing does not shield it.
    gone = store.record([], thread_ids=["<q1>"], at=T0 + 5 * H, keep=[("<q1>", "unowned")])
    assert [t.event for t in gone] == ["withdrawn"]
