"""`unacknowledged`: thresholds to the instant, what acknowledges and what does not."""

from __future__ import annotations

from datetime import timedelta as td

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.records import Automatic, MessageRecord
from rules.base import RuleContext, Severity, Status, Violation
from rules.registry import parse_config
from rules.unacknowledged import RULE, clock, waited, waits
from tests.builders import T0, TimeLike, make_message, make_reply
from tests.rule_scenarios import BASE, PRIYA, SAM, evaluate, make_config, view

H = td(hours=1)
M = td(minutes=1)
CONFIG = make_config()
c1 = make_message("c1", T0)


def unack(messages: list[MessageRecord], now: TimeLike) -> list[Violation]:
    found = evaluate(CONFIG, view(messages), now)
    return [v for v in found if v.rule == "unacknowledged"]


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (3 * H - td(seconds=1), None),
        (3 * H, Severity.WARNING),
        (4 * H - td(seconds=1), Severity.WARNING),
        (4 * H, Severity.BREACH),
    ],
)
def test_thresholds_hold_from_the_instant(offset: td, expected: Severity | None) -> None:
    found = unack([c1], T0 + offset)
    assert [v.severity for v in found] == ([expected] if expected else [])


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (3 * H, None),  # at the warning threshold: nothing was raised
        (3 * H + M, (Severity.WARNING, Status.RESOLVED)),
        (4 * H, (Severity.WARNING, Status.RESOLVED)),  # at the deadline: in time
        (4 * H + M, (Severity.BREACH, Status.RESOLVED)),
    ],
)
def test_an_answer_ends_the_wait(answer: td, expected: tuple[Severity, Status] | None) -> None:
    found = unack([c1, make_reply(c1, "r1", T0 + answer, frm=PRIYA)], T0 + 10 * H)
    assert [(v.severity, v.status) for v in found] == ([expected] if expected else [])
    for violation in found:
        assert violation.resolved_at == T0 + answer
        assert violation.opened_at == T0 + 3 * H
        assert violation.due_at == T0 + 4 * H


def test_a_message_on_saturday_starts_its_clock_on_monday() -> None:
    sat = make_message("sat", "2026-11-07T10:00Z")
    (violation,) = unack([sat], "2026-11-09T12:00Z")
    assert violation.opened_at.isoformat() == "2026-11-09T12:00:00+00:00"
    assert violation.due_at is not None
    assert violation.due_at.isoformat() == "2026-11-09T13:00:00+00:00"


def test_our_own_auto_reply_does_not_acknowledge() -> None:
    ack = make_reply(c1, "auto", T0 + M, automatic=Automatic.AUTO_REPLY)
    assert [v.severity for v in unack([c1, ack], T0 + 4 * H)] == [Severity.BREACH]


def test_a_new_message_after_an_answer_starts_a_new_wait() -> None:
    messages = [
        c1,
        make_reply(c1, "r1", T0 + H, frm=PRIYA),
        make_message("c2", T0 + 2 * H, refs="c1 r1"),
    ]
    assert unack(messages, T0 + 5 * H - M) == []
    (violation,) = unack(messages, T0 + 6 * H)
    assert violation.about == "<c2>"
    assert violation.message_ids == ("<c2>",)
    assert violation.chasers == 0
    assert violation.severity is Severity.BREACH


def test_a_conversation_we_started_waits_from_the_customers_first_answer() -> None:
    ours = make_message("ours", T0 - 3 * H, frm=SAM, to="alice@client.example")
    answer = make_reply(ours, "c1", T0, frm="alice@client.example")
    (violation,) = unack([ours, answer], T0 + 3 * H)
    assert violation.about == "<c1>"


def test_an_automatic_customer_message_starts_no_clock() -> None:
    bounce = make_message("b1", T0, frm="mailer-daemon@client.example", automatic=Automatic.BOUNCE)
    assert unack([bounce], T0 + 9 * H) == []


def test_a_late_answer_with_chasers_keeps_the_chaser_count() -> None:
    messages = [
        c1,
        make_message("c2", T0 + 5 * H, refs="c1"),
        make_reply(c1, "r1", T0 + 6 * H, frm=PRIYA),
    ]
    (violation,) = unack(messages, T0 + 7 * H)
    assert (violation.status, violation.chasers, violation.senders) == (
        Status.RESOLVED,
        1,
        (PRIYA,),
    )


def test_waits_lists_each_wait_with_its_end() -> None:
    messages = [
        c1,
        make_message("c2", T0 + H, refs="c1"),
        make_reply(c1, "r1", T0 + 2 * H, frm=PRIYA),
        make_message("c3", T0 + 3 * H, refs="c1"),
    ]
    ctx = RuleContext.create(CONFIG, T0 + 9 * H)
    found = waits(view(messages), ctx)
    assert [(w.start.message_id, len(w.chasers), w.ended_at) for w in found] == [
        ("<c1>", 1, T0 + 2 * H),
        ("<c3>", 0, None),
    ]


def test_the_rule_is_named_after_its_table() -> None:
    assert RULE.name == "unacknowledged"
    assert RULE.description
    assert type(getattr(CONFIG.rules, RULE.name)) is RULE.Settings


def test_the_accounts_own_sla_applies() -> None:
    config = make_config(account='sla = "1h"\n')
    found = evaluate(config, view([c1]), T0 + 45 * M)
    assert [(v.severity, v.opened_at, v.due_at) for v in found] == [
        (Severity.WARNING, T0 + 45 * M, T0 + H)
    ]


def test_warn_at_comes_from_the_config() -> None:
    text = BASE.replace("warn_at = 0.75", "warn_at = 0.5")
    config = parse_config(text, "/etc/pocwatch/pocwatch.toml")
    (violation,) = evaluate(config, view([c1]), T0 + 2 * H)
    assert violation.opened_at == T0 + 2 * H


@settings(max_examples=150, deadline=None)
@given(
    start=st.integers(min_value=0, max_value=14 * 24 * 60),
    answer=st.one_of(st.none(), st.integers(min_value=1, max_value=21 * 24 * 60)),
    now=st.integers(min_value=0, max_value=28 * 24 * 60),
    sla_hours=st.sampled_from(["1h", "4h", "9h30m", "40h"]),
    calendar=st.sampled_from([None, "default", "new_york", "sundays"]),
    owned=st.booleans(),
)
def test_waited_from_the_deadline_equals_the_time_measured_from_the_message(
    start: int, answer: int | None, now: int, sla_hours: str, calendar: str | None, owned: bool
) -> None:
    # The violations table reads waited time from due_at alone; it must be what the clock
    # measures from the customer's message, across nights, weekends, holidays and DST, for
    # an owned account (its own terms) and one nobody owns (the defaults).
    account = f'sla = "{sla_hours}"\n' + (f'calendar = "{calendar}"\n' if calendar else "")
    text = BASE + account
    if not owned:
        text = text.replace('owner = "priya@example.com"\n', "")
    config = parse_config(text, "/etc/pocwatch/pocwatch.toml")
    assert (config.accounts[0].owner is not None) is owned
    asked = make_message("q", T0 + start * M)
    thread = [asked]
    if answer is not None:
        thread.append(make_reply(asked, "r", asked.time + answer * M))
    at = asked.time + now * M
    for violation in [v for v in evaluate(config, view(thread), at) if v.rule == RULE.name]:
        ctx = RuleContext.create(config, at)
        got = waited(violation, ctx)
        [wait] = waits(view([m for m in thread if m.time <= at]), ctx)  # as of `at`
        expected = clock(wait, ctx.with_account(config.accounts[0]))
        assert got == (expected.waited, expected.overdue)


def test_waited_is_none_for_other_rules() -> None:
    conflict = make_message("x", T0)
    found = evaluate(
        CONFIG,
        view(
            [
                conflict,
                make_reply(conflict, "a", T0 + M),
                make_reply(conflict, "b", T0 + 2 * M, frm=SAM),
            ]
        ),
        T0 + H,
    )
    assert found and all(waited(v, RuleContext.create(CONFIG, T0 + H)) is None for v in found)


def test_thresholds_fall_on_whole_seconds_as_json_shows_them() -> None:
    text = BASE.replace("warn_at = 0.75", "warn_at = 0.333").replace('sla = "4h"', 'sla = "1h"')
    config = parse_config(text, "/etc/pocwatch/pocwatch.toml")  # warns at 19m58.8s
    [warning] = [v for v in evaluate(config, view([c1]), T0 + H - M) if v.rule == RULE.name]
    assert warning.opened_at == T0 + 19 * M + td(seconds=59)  # 19m58.8s, rounded up
    # It holds at the instant shown, and not a second before.
    [shown] = [v for v in evaluate(config, view([c1]), warning.opened_at) if v.rule == RULE.name]
    assert (shown.severity, shown.opened_at) == (Severity.WARNING, warning.opened_at)
    earlier = evaluate(config, view([c1]), warning.opened_at - td(seconds=1))
    assert [v for v in earlier if v.rule == RULE.name] == []
