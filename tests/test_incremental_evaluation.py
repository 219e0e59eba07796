"""Incremental evaluation equals a full re-evaluation, touching only changed and due threads."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from monitor.config import Config
from monitor.evaluation import (
    evaluate_full,
    evaluate_incremental,
    evaluate_store,
    find_thread,
    store_context,
    stored_violations,
)
from monitor.explain import explain
from monitor.records import Automatic, FetchedMessage, MessageRecord
from monitor.storage.db import open_database
from monitor.storage.messages import MessageStore
from monitor.storage.violations import ViolationStore
from rules import engine
from rules.base import Answer, Rule, RuleContext, ThreadView, Violation
from rules.registry import registered_rules
from tests.builders import is_external, make_message, make_reply
from tests.rule_scenarios import PRIYA, SAM, SUPPORT, make_config

H = timedelta(hours=1)
M = timedelta(minutes=1)
D = timedelta(days=1)
START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
QUIET_DAYS = {12, 19}  # nothing arrives


@pytest.fixture
def stores(database_url: str) -> Iterator[tuple[MessageStore, ViolationStore]]:
    engine = open_database(database_url)
    try:
        yield MessageStore(engine), ViolationStore(engine)
    finally:
        engine.dispose()


class Mailbox:
    """Puts records into the store a day at a time, as sync would (threaded in the batch)."""

    def __init__(self, store: MessageStore) -> None:
        self.store = store
        self.uid = 0

    def put(self, records: list[MessageRecord], answered: frozenset[str] = frozenset()) -> None:
        fetched = []
        for record in records:
            self.uid += 1
            flags = ("\\Answered",) if record.message_id in answered else ()
            fetched.append(FetchedMessage("support", "INBOX", self.uid, flags, record))
        self.store.store_batch(
            "support", "INBOX", fetched, last_seen_uid=self.uid, is_external=is_external
        )


def month_of_traffic(seed: int = 7) -> dict[int, tuple[list[MessageRecord], frozenset[str]]]:
    """Day -> (messages of that day, Message-IDs stored \\Answered): questions from the
    account's customers and from nobody's, answered late or not at all, chased, answered
    twice (conflicts), an owner's out-of-office, and replies that arrive before their parent
    (threads that merge later)."""
    rng = random.Random(seed)
    days: dict[int, tuple[list[MessageRecord], set[str]]] = {d: ([], set()) for d in range(30)}

    def add(message: MessageRecord) -> None:
        day = (message.time - START) // D
        if 0 <= day < 30 and day not in QUIET_DAYS:
            days[day][0].append(message)

    n = 0
    for day in range(30):
        for _ in range(rng.randint(2, 5)):
            n += 1
            when = START + day * D + rng.randint(7 * 60, 20 * 60) * M
            frm = rng.choice(["alice@client.example", "bob@client.example", "eve@stranger.example"])
            question = make_message(f"q{n}", when, subject=f"Question {n}", frm=frm)
            add(question)
            fate = rng.random()
            if fate < 0.15:
                continue  # never answered
            if fate < 0.25:
                add(
                    make_message(
                        f"c{n}",
                        when + rng.randint(1, 30) * H,
                        subject=f"Re: Question {n}",
                        frm=frm,
                        refs=question.message_id,
                        in_reply_to=question.message_id,
                    )
                )
            delay = rng.randint(10, 60 * 30) * M
            first = make_reply(question, f"r{n}", when + delay, frm=rng.choice([PRIYA, SAM]))
            if fate < 0.35:
                # The answer is not in the store; the \\Answered flag says so.
                days_of = (when - START) // D
                if days_of not in QUIET_DAYS:
                    days[days_of][1].add(question.message_id)
                continue
            if fate < 0.45:
                # The reply to the reply arrives before the reply itself: two threads merge.
                follow = make_message(
                    f"f{n}",
                    first.time + 2 * H,
                    subject=f"Re: Question {n}",
                    frm=frm,
                    refs=first.message_id,
                    in_reply_to=first.message_id,
                )
                add(follow)
                add(make_reply(question, f"r{n}", when + delay + D, frm=PRIYA))
                continue
            add(first)
            if fate < 0.6:
                other = SAM if first.from_addr == PRIYA else PRIYA
                add(make_reply(question, f"s{n}", first.time + rng.randint(5, 120) * M, frm=other))
            elif fate < 0.65:
                add(
                    make_reply(
                        question,
                        f"o{n}",
                        when + 5 * M,
                        frm=PRIYA,
                        to=frm,
                        automatic=Automatic.OUT_OF_OFFICE,
                    )
                )
            elif fate < 0.7:
                add(
                    make_reply(
                        question, f"h{n}", when + 2 * M, frm=SUPPORT, automatic=Automatic.AUTO_REPLY
                    )
                )
    return {d: (msgs, frozenset(answered)) for d, (msgs, answered) in days.items()}


def put_days(mailbox: Mailbox, *, seed: int, days: int) -> None:
    """The first `days` days of a generated month, a day per batch."""
    for _day, (messages, answered) in sorted(month_of_traffic(seed).items())[:days]:
        if messages:
            mailbox.put(messages, answered)


def as_json(violations: list[Violation]) -> set[str]:
    return {json.dumps(v.as_json(), sort_keys=True) for v in violations}


def full_answer(config: Config, store: MessageStore, now: datetime) -> set[str]:
    return as_json(evaluate_store(config, store, now).violations)


def test_a_month_incrementally_equals_full_re_evaluation(
    stores: tuple[MessageStore, ViolationStore],
) -> None:
    store, violations = stores
    config = make_config()
    mailbox = Mailbox(store)
    quiet_touched: list[tuple[int, int]] = []
    compared = 0
    for day, (messages, answered) in sorted(month_of_traffic().items()):
        if messages:
            mailbox.put(messages, answered)
        for hour in (8, 13, 18, 23):
            now = START + day * D + hour * H
            result = evaluate_incremental(config, store, violations, now)
            assert as_json(violations.all()) == full_answer(config, store, now), (day, hour)
            compared += 1
            if day in QUIET_DAYS and not result.full:
                quiet_touched.append((result.touched_threads, store.thread_count()))
    assert compared == 120
    assert any(v.rule == "conflicting_replies" for v in violations.all())
    assert any(v.rule == "unowned" for v in violations.all())
    assert any(v.severity == "breach" for v in violations.all())
    assert quiet_touched, "every pass of the quiet days was a full one"
    for touched, total in quiet_touched:
        assert touched < total


def test_a_quiet_pass_touches_only_due_threads(
    stores: tuple[MessageStore, ViolationStore],
) -> None:
    store, violations = stores
    config = make_config()
    mailbox = Mailbox(store)
    t = START + 9 * H  # Monday 09:00 UTC (London business hours)
    answered_q = make_message("a1", t, subject="Answered", frm="alice@client.example")
    mailbox.put(
        [
            answered_q,
            make_reply(answered_q, "a2", t + 10 * M, frm=PRIYA),
            make_message("w1", t, subject="Waiting", frm="bob@client.example"),
        ]
    )
    first = evaluate_incremental(config, store, violations, t + H)
    assert first.full and first.touched_threads == 2
    quiet = evaluate_incremental(config, store, violations, t + 2 * H)
    assert (quiet.full, quiet.touched_threads, len(quiet.transitions)) == (False, 0, 0)
    # The waiting thread's warning instant (3 h of business time) comes: it alone wakes.
    due = evaluate_incremental(config, store, violations, t + 3 * H)
    assert due.touched_threads == 1
    assert [(x.event, x.violation.about) for x in due.transitions] == [("opened", "<w1>")]
    assert as_json(violations.all()) == full_answer(config, store, t + 3 * H)
    again = evaluate_incremental(config, store, violations, t + 3 * H)
    assert (again.touched_threads, len(again.transitions)) == (0, 0)


def test_a_merge_moves_the_violation_to_the_new_thread(
    stores: tuple[MessageStore, ViolationStore],
) -> None:
    store, violations = stores
    config = make_config()
    mailbox = Mailbox(store)
    t = START + 9 * H
    q = make_message("q", t, subject="Merge me", frm="alice@client.example")
    r = make_reply(q, "r", t + 10 * M, frm=PRIYA)
    follow = make_message(
        "f", t + H, subject="Re: Merge me", frm="alice@client.example", refs="r", in_reply_to="r"
    )
    mailbox.put([q, follow])  # r not stored yet: f sits in a thread of its own
    evaluate_incremental(config, store, violations, t + 5 * H)
    [waiting] = [v for v in violations.open_violations() if v.about == "<f>"]
    assert waiting.thread_id == "<r>"
    mailbox.put([r])
    result = evaluate_incremental(config, store, violations, t + 6 * H)
    assert ("moved", "<r> -> <q>") in {(x.event, x.detail) for x in result.transitions}
    [moved] = [v for v in violations.all() if v.about == "<f>"]
    assert moved.thread_id == "<q>"
    assert [e.event for e in violations.events(moved.fingerprint)][-1] == "moved"
    assert as_json(violations.all()) == full_answer(config, store, t + 6 * H)


def test_a_past_now_sees_apart_the_threads_a_later_message_merged(
    stores: tuple[MessageStore, ViolationStore],
) -> None:
    store, violations = stores
    config = make_config()
    t = START + 9 * H
    invoice = make_message("q", t, subject="Invoice", frm="alice@client.example")
    payment = make_message("p", t + H, subject="Payment", frm="alice@client.example")
    link = make_message("l", t + 30 * H, subject="Re: both", frm="alice@client.example", refs="q p")
    mailbox = Mailbox(store)
    mailbox.put([invoice, payment])
    before = t + 5 * H  # the link was not written yet: two conversations, two waits
    as_it_stood = full_answer(config, store, before)
    mailbox.put([link])
    assert store.thread_count() == 1  # stored as one thread, <q>
    assert full_answer(config, store, before) == as_it_stood  # the past stays the past
    apart = evaluate_incremental(config, store, violations, before)
    assert sorted((v.thread_id, v.about, v.chasers) for v in violations.all()) == [
        ("<p>", "<p>", 0),
        ("<q>", "<q>", 0),
    ]
    assert apart.touched_threads == 1  # one stored thread, two conversations
    assert as_json(violations.all()) == full_answer(config, store, before)
    # Once the link is known, <p> is a chaser of <q>: its own wait is withdrawn.
    after = t + 31 * H
    joined = evaluate_incremental(config, store, violations, after)
    assert ("withdrawn", "<p>") in {(x.event, x.violation.about) for x in joined.transitions}
    assert [(v.thread_id, v.about, v.chasers) for v in violations.all()] == [("<q>", "<q>", 2)]
    assert as_json(violations.all()) == full_answer(config, store, after)


def test_evaluate_full_equals_the_pure_evaluation(
    stores: tuple[MessageStore, ViolationStore],
) -> None:
    store, violations = stores
    config = make_config()
    mailbox = Mailbox(store)
    put_days(mailbox, seed=3, days=7)
    now = START + 7 * D
    result = evaluate_full(config, store, violations, now)
    assert result.full and result.touched_threads == store.thread_count()
    assert as_json(violations.all()) == full_answer(config, store, now)
    assert len(evaluate_full(config, store, violations, now).transitions) == 0


def test_an_answered_flag_set_later_wakes_the_thread(
    stores: tuple[MessageStore, ViolationStore],
) -> None:
    store, violations = stores
    config = make_config()
    mailbox = Mailbox(store)
    t = START + 9 * H
    mailbox.put([make_message("w1", t, subject="Waiting", frm="bob@client.example")])
    evaluate_incremental(config, store, violations, t + 5 * H)
    assert [v.about for v in violations.open_violations()] == ["<w1>"]
    store.update_flags("support", "INBOX", {mailbox.uid: ("\\Answered",)})
    result = evaluate_incremental(config, store, violations, t + 6 * H)
    assert (result.full, result.touched_threads) == (False, 1)
    assert violations.open_violations() == []
    assert as_json(violations.all()) == full_answer(config, store, t + 6 * H)


class FailingOnce:
    """Wraps a real rule; raises while `failing` is set."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.name = rule.name
        self.description = rule.description
        self.failing = False

    def assess(self, thread: ThreadView, ctx: RuleContext) -> Answer:
        if self.failing:
            raise RuntimeError("rule broke")
        return self.rule.assess(thread, ctx)


def test_a_rule_that_fails_keeps_its_violations_and_is_retried(
    stores: tuple[MessageStore, ViolationStore],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, violations = stores
    config = make_config()
    wrapped = {rule.name: FailingOnce(rule) for rule in registered_rules()}
    monkeypatch.setattr(engine, "registered_rules", lambda: tuple(wrapped.values()))
    mailbox = Mailbox(store)
    t = START + 9 * H
    q = make_message("w1", t, subject="Waiting", frm="bob@client.example")
    mailbox.put([q])
    evaluate_incremental(config, store, violations, t + 5 * H)
    [waiting] = violations.open_violations()
    wrapped["unacknowledged"].failing = True
    mailbox.put(
        [
            make_message(
                "w2",
                t + 6 * H,
                subject="Re: Waiting",
                frm="bob@client.example",
                refs="w1",
                in_reply_to="w1",
            )
        ]
    )
    with caplog.at_level(logging.ERROR, logger="rules.engine"):
        broken = evaluate_incremental(config, store, violations, t + 7 * H)
    assert "rule unacknowledged failed on thread <w1>" in caplog.text
    assert (broken.touched_threads, len(broken.transitions)) == (1, 0)
    assert violations.open_violations() == [waiting]
    wrapped["unacknowledged"].failing = False
    mended = evaluate_incremental(config, store, violations, t + 8 * H)
    assert mended.touched_threads == 1  # tried again though nothing changed
    assert as_json(violations.all()) == full_answer(config, store, t + 8 * H)


def test_stored_violations_answer_as_a_full_evaluation_would(
    stores: tuple[MessageStore, ViolationStore],
) -> None:
    store, violations = stores
    config = make_config()
    mailbox = Mailbox(store)
    t = START + 9 * H
    assert stored_violations(config, store, violations, t) is None  # never evaluated
    put_days(mailbox, seed=5, days=6)
    evaluate_incremental(config, store, violations, START + 6 * D)
    for now in (START + 6 * D + 5 * H, START + 7 * D, START + 9 * D):
        found = stored_violations(config, store, violations, now)
        assert found is not None
        assert found.violations == evaluate_store(config, store, now).violations  # same order
    # Another config, or an instant before the last pass: the store cannot answer.
    trial = make_config('[rules.conflicting_replies]\nwindow = "1h"')
    assert stored_violations(trial, store, violations, START + 10 * D) is None
    assert stored_violations(config, store, violations, START + 8 * D) is None


def test_only_config_the_rules_read_forces_a_full_pass(
    stores: tuple[MessageStore, ViolationStore],
) -> None:
    store, violations = stores
    config = make_config()
    put_days(Mailbox(store), seed=6, days=3)
    assert evaluate_incremental(config, store, violations, START + 3 * D).full
    # Mail transport, schedules and storage settings: every stored answer still holds.
    transport = make_config(
        '[smtp]\nhost = "smtp.example.com"\nfrom = "pocwatch@example.com"\n'
        '[digests]\nschedule = "0 7 * * *"\nimmediate = ["unowned"]\n'
        '[reports.weekly]\nto = ["boss@example.com"]\n'
    )
    transport = transport.model_copy(
        update={"monitor": transport.monitor.model_copy(update={"poll_interval": 7 * M})}
    )
    result = evaluate_incremental(transport, store, violations, START + 3 * D + H)
    assert not result.full
    # What a rule reads: the next pass is a full one, and agrees with a full evaluation.
    for edited in (
        make_config('[rules.conflicting_replies]\nwindow = "1h"'),
        make_config(account='sla = "1h"\n'),
        make_config('[digests]\nescalate_after = "1h"'),
        make_config(
            '[[absences]]\nwho = "priya@example.com"\nfrom = "2026-11-01"\nuntil = "2026-11-30"\n'
        ),
    ):
        now = START + 3 * D + 2 * H
        assert evaluate_incremental(edited, store, violations, now).full
        assert as_json(violations.all()) == full_answer(edited, store, now)


def test_a_conversation_rooted_at_a_message_never_stored_can_be_explained(
    stores: tuple[MessageStore, ViolationStore],
) -> None:
    store, _violations = stores
    config = make_config()
    t = START + 9 * H
    invoice = make_message("q", t, subject="Invoice", frm="alice@client.example")
    payment = make_message(
        "p", t + H, subject="Re: Payment", frm="alice@client.example", refs="old"
    )
    link = make_message("l", t + 30 * H, subject="Re: both", frm="alice@client.example", refs="q p")
    Mailbox(store).put([invoice, payment, link])
    before = t + 5 * H
    found = evaluate_store(config, store, before).violations
    assert sorted(v.thread_id for v in found) == ["<old>", "<q>"]  # <old> was never stored
    thread = find_thread(store, "old")
    assert explain(thread, store_context(config, store, before), focus="old").startswith(
        "Thread <old>: Re: Payment\n"
    )
