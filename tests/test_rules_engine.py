"""The engine: rule discovery, the as-of cut, account choice, isolation, purity."""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from datetime import timedelta as td
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rules.engine as engine
from monitor import config as config_module
from monitor.errors import ConfigErrors
from monitor.records import Automatic, MessageRecord
from rules.base import (
    Answer,
    RuleContext,
    Severity,
    Status,
    ThreadView,
    Violation,
    fingerprint,
)
from rules.engine import as_of, assess, evaluate_thread, evaluate_threads
from rules.registry import discover, get_rule, registered_rules, rule_names, rule_tables
from tests.builders import T0, make_message, make_reply
from tests.rule_scenarios import (
    ADMIN,
    BASE,
    CUSTOMER,
    PRIYA,
    SAM,
    evaluate,
    make_config,
    view,
)

H = td(hours=1)
M = td(minutes=1)
CONFIG = make_config()
c1 = make_message("c1", T0)

# -- discovery ------------------------------------------------------------------------------------


def test_the_rules_package_holds_exactly_the_three_rules() -> None:
    assert rule_names() == ("conflicting_replies", "unacknowledged", "unowned")
    tables = rule_tables()
    for name in rule_names():
        rule = get_rule(name)
        assert rule.name == name and rule.description
        assert tables[name] is rule.Settings  # its [rules.NAME] table is its own model
    assert tuple(type(CONFIG.rules).model_fields) == rule_names()


def test_unknown_rule() -> None:
    with pytest.raises(LookupError, match="no rule named 'nope'"):
        get_rule("nope")


RULE_MODULE = """\
from datetime import timedelta
from typing import ClassVar

from monitor.config import PositiveDuration, RuleSettings


class {cls}Settings(RuleSettings):
    limit: PositiveDuration = timedelta(hours=1)


class {cls}:
    name: ClassVar[str] = "{name}"
    description: ClassVar[str] = "A test rule."
    Settings: ClassVar[type[RuleSettings]] = {cls}Settings

    def assess(self, thread, ctx):
        return None

RULE = {cls}()
"""


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    name = f"fake_rules_{id(tmp_path)}"
    root = tmp_path / name
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "helpers.py").write_text("VALUE = 1\n")  # no RULE: not a rule
    monkeypatch.syspath_prepend(str(tmp_path))
    yield root
    for module in [m for m in sys.modules if m.startswith(name)]:
        del sys.modules[module]


def test_adding_a_module_adds_a_rule(package: Path) -> None:
    (package / "first.py").write_text(RULE_MODULE.format(cls="First", name="first"))
    assert [r.name for r in discover(package.name)] == ["first"]
    (package / "second.py").write_text(RULE_MODULE.format(cls="Second", name="a_second"))
    assert [r.name for r in discover(package.name)] == ["a_second", "first"]


def test_a_new_rule_module_brings_its_config_table(package: Path, tmp_path: Path) -> None:
    # Its [rules.NAME] table is validated with line numbers, and digests.immediate knows it,
    # with nothing else edited.
    (package / "late.py").write_text(RULE_MODULE.format(cls="Late", name="late"))
    tables = rule_tables((*registered_rules(), *discover(package.name)))
    base = BASE + '[rules.late]\nlimit = "{}"\n[digests]\nimmediate = ["late"]\n'
    path = tmp_path / "pocwatch.toml"
    config = config_module.parse_config(base.format("2h"), path, rules=tables)
    settings = config.rules.settings(tables["late"])
    assert settings.limit == td(hours=2)  # type: ignore[attr-defined]
    assert config.digests.immediate == ("late",)
    line = BASE.count("\n") + 2
    with pytest.raises(ConfigErrors) as caught:
        config_module.parse_config(base.format("soon"), path, rules=tables)
    [error] = caught.value.errors
    assert (error.line, error.key_path) == (line, "rules.late.limit")
    assert "invalid duration 'soon'" in error.problem


def test_a_config_names_only_the_rules_it_is_given(package: Path, tmp_path: Path) -> None:
    (package / "late.py").write_text(RULE_MODULE.format(cls="Late", name="late"))
    tables = rule_tables(discover(package.name))
    path = tmp_path / "pocwatch.toml"
    text = BASE + '[digests]\nimmediate = ["unowned"]\n'  # BASE sets [rules.unacknowledged]
    with pytest.raises(ConfigErrors) as caught:
        config_module.parse_config(text, path, rules=tables)
    problems = {(e.key_path, e.problem) for e in caught.value.errors}
    assert problems == {
        ("rules.unacknowledged", "unknown key 'unacknowledged'"),
        ("digests.immediate[0]", "unknown rule 'unowned' (rules: late)"),
    }


def test_two_rules_with_one_name_are_refused(package: Path) -> None:
    (package / "one.py").write_text(RULE_MODULE.format(cls="One", name="same"))
    (package / "two.py").write_text(RULE_MODULE.format(cls="Two", name="same"))
    with pytest.raises(RuntimeError, match="two rules are named 'same'"):
        discover(package.name)


# -- evaluation -----------------------------------------------------------------------------------


class Broken:
    name: ClassVar[str] = "broken"
    description: ClassVar[str] = "Always fails."

    def assess(self, thread: ThreadView, ctx: RuleContext) -> Answer:
        raise ZeroDivisionError("bad rule")


def test_a_failing_rule_is_logged_and_the_others_still_run(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = registered_rules()
    monkeypatch.setattr(engine, "registered_rules", lambda: (Broken(), *real))
    with caplog.at_level(logging.ERROR, logger="rules.engine"):
        found = evaluate(CONFIG, view([c1]), T0 + 4 * H)
    assert [v.rule for v in found] == ["unacknowledged"]
    assert "rule broken failed on thread <c1>" in caplog.text


def test_messages_after_now_are_not_known_yet() -> None:
    messages = [c1, make_reply(c1, "r1", T0 + 5 * H, frm=PRIYA)]
    (violation,) = evaluate(CONFIG, view(messages), T0 + 4 * H)
    assert violation.status is Status.OPEN
    assert violation.message_ids == ("<c1>",)


def test_the_account_is_decided_as_of_now() -> None:
    stranger = make_message("x1", T0, frm="bob@unknown.example")
    later = make_message("c2", T0 + 2 * H, frm=CUSTOMER, refs="x1")
    found = evaluate(CONFIG, view([stranger, later]), T0 + H)
    assert [(v.rule, v.account) for v in found] == [("unowned", None)]


def test_an_account_may_match_by_the_mailbox_the_mail_arrived_in() -> None:
    config = make_config(
        '[[accounts]]\nname = "Inbox"\nmailboxes = ["support"]\nowner = "kim@example.com"\n'
    )
    stranger = make_message("x1", T0, frm="bob@unknown.example")
    thread = view([stranger], arrived_in={"x1": ["support"]})
    (violation,) = evaluate(config, thread, T0 + 3 * H)
    assert (violation.rule, violation.account, violation.notify) == (
        "unacknowledged",
        "Inbox",
        ("kim@example.com",),
    )
    assert [v.rule for v in evaluate(config, view([stranger]), T0 + 3 * H)] == [
        "unowned",
        "unacknowledged",
    ]


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="aware"):
        RuleContext.create(CONFIG, datetime(2026, 11, 2, 9))


def test_violations_are_in_product_order_across_threads() -> None:
    threads = [
        view([make_message("b", T0)]),
        view([make_message("a", T0)]),
        view([make_message("early", T0 - H, frm="x@unknown.example")]),
    ]
    found = evaluate_threads(threads, RuleContext.create(CONFIG, T0 + 4 * H))
    # The early message came before opening: all three clocks reach 3h at 12:00 together.
    assert [(v.thread_id, v.rule) for v in found] == [
        ("<early>", "unowned"),
        ("<a>", "unacknowledged"),
        ("<b>", "unacknowledged"),
        ("<early>", "unacknowledged"),
    ]


def test_json_has_exactly_the_product_fields() -> None:
    (violation,) = evaluate(CONFIG, view([c1]), T0 + 4 * H)
    data = violation.as_json()
    assert list(data) == [
        "rule", "severity", "status", "account", "thread_id", "subject", "owner", "backup",
        "notify", "opened_at", "due_at", "resolved_at", "senders", "chasers", "message_ids",
    ]  # fmt: skip
    assert data["opened_at"] == "2026-11-02T12:00:00Z"
    assert data["due_at"] == "2026-11-02T13:00:00Z"
    assert data["resolved_at"] is None
    assert data["notify"] == [PRIYA, SAM]


def test_identity_survives_a_thread_merge() -> None:
    messages = [
        c1,
        make_reply(c1, "p1", T0 + H, frm=PRIYA),
        make_reply(c1, "s1", T0 + H + M, frm=SAM),
    ]
    now = T0 + 2 * H
    alone = evaluate(CONFIG, view(messages), now)
    merged = evaluate(CONFIG, view(messages, thread_id="older-root"), now)
    assert [v.fingerprint for v in alone] == [v.fingerprint for v in merged]
    assert {v.thread_id for v in merged} == {"<older-root>"}
    assert alone[0].fingerprint == fingerprint("conflicting_replies", "<p1>")


# -- purity over generated traffic ----------------------------------------------------------------

PEOPLE = {
    "customer": CUSTOMER,
    "other-customer": "bob@client.example",
    "priya": PRIYA,
    "sam": SAM,
    "kim": "kim@example.com",
    "support-as-priya": "support@example.com",
}
KINDS = [*PEOPLE, "forward", "our-auto-reply", "priya-ooo", "customer-ooo"]


def _message(index: int, kind: str, minutes: int) -> MessageRecord:
    when = T0 + td(minutes=minutes)
    mid = f"m{index}"
    refs = "m0" if index else ()
    if kind in ("customer", "other-customer"):
        return make_message(mid, when, frm=PEOPLE[kind], refs=refs)
    if kind == "customer-ooo":
        return make_message(mid, when, refs=refs, automatic=Automatic.OUT_OF_OFFICE)
    if kind == "forward":
        return make_message(mid, when, frm=PRIYA, to=SAM, refs=refs)
    if kind == "our-auto-reply":
        return make_message(mid, when, frm="support@example.com", to=CUSTOMER, refs=refs,
                            automatic=Automatic.AUTO_REPLY)  # fmt: skip
    if kind == "priya-ooo":
        return make_message(mid, when, frm=PRIYA, to=CUSTOMER, refs=refs,
                            automatic=Automatic.OUT_OF_OFFICE)  # fmt: skip
    sender = PRIYA if kind == "support-as-priya" else None
    return make_message(mid, when, frm=PEOPLE[kind], to=CUSTOMER, sender=sender, refs=refs)


# The customer writes first: the account (decided by the earliest inbound message) then
# stays the same as messages arrive, so what held at one now holds at every later one.
traffic = st.lists(st.tuples(st.sampled_from(KINDS), st.integers(1, 6 * 24 * 60)), max_size=14).map(
    lambda events: [
        _message(i, kind, minutes)
        for i, (kind, minutes) in enumerate([("customer", 0), *sorted(events, key=lambda e: e[1])])
    ]
)
nows = st.lists(st.integers(0, 9 * 24 * 60), min_size=2, max_size=5, unique=True).map(
    lambda xs: [T0 + td(minutes=x) for x in sorted(xs)]
)
PROPERTY_CONFIG = make_config(
    '[digests]\nescalate_after = "2h"\n'
    '[[absences]]\nwho = "priya@example.com"\nfrom = "2026-11-04"\nuntil = "2026-11-04"\n'
)


def _fixed(violation: Violation) -> dict[str, object]:
    """What may not change once a violation is resolved (notify follows `now`)."""
    data = dataclasses.asdict(violation)
    del data["notify"]
    return data


@settings(max_examples=120, deadline=None)
@given(messages=traffic, instants=nows, flag=st.booleans())
def test_answers_depend_only_on_messages_up_to_now(
    messages: list[MessageRecord], instants: list[datetime], flag: bool
) -> None:
    answered = ["m0"] if flag else []
    thread = view(messages, answered=answered)
    earlier: list[Violation] = []
    for now in instants:
        ctx = RuleContext.create(PROPERTY_CONFIG, now)
        found = evaluate_thread(thread, ctx)
        # The same answer whether computed fresh, after other nows, or from the cut thread.
        assert found == evaluate_thread(thread, RuleContext.create(PROPERTY_CONFIG, now))
        known = [m for m in messages if m.time <= now]
        if known:
            assert found == evaluate_thread(view(known, answered=answered, thread_id="m0"), ctx)
        _check_well_formed(found, now, messages)
        _check_monotone(earlier, found)
        earlier = found


def _check_well_formed(
    found: list[Violation], now: datetime, messages: list[MessageRecord]
) -> None:
    assert found == sorted(found, key=engine.sort_key)
    assert len({v.fingerprint for v in found}) == len(found)
    order = {m.message_id: i for i, m in enumerate(messages)}
    for v in found:
        assert v.opened_at <= now
        assert (v.status is Status.RESOLVED) == (v.resolved_at is not None)
        if v.resolved_at is not None:
            assert v.opened_at <= v.resolved_at <= now
        assert [order[m] for m in v.message_ids] == sorted(order[m] for m in v.message_ids)
        for addr in (*v.senders, *v.notify, v.owner or "", v.backup or ""):
            assert addr == addr.lower()
        if v.rule == "conflicting_replies":
            assert len(v.senders) >= 2 and v.severity is Severity.BREACH and v.due_at is None
        if v.rule == "unacknowledged" and v.due_at is not None and v.status is Status.OPEN:
            assert (v.severity is Severity.BREACH) == (now >= v.due_at)


def _check_monotone(before: list[Violation], after: list[Violation]) -> None:
    later = {v.fingerprint: v for v in after}
    for v in before:
        assert v.fingerprint in later, v
        now_v = later[v.fingerprint]
        assert now_v.opened_at == v.opened_at and now_v.due_at == v.due_at
        if v.status is Status.RESOLVED:
            assert _fixed(now_v) == _fixed(v)
        elif v.severity is Severity.BREACH:
            assert now_v.severity is Severity.BREACH


def test_admins_hear_of_conflicts_in_threads_nobody_owns() -> None:
    stranger = make_message("x1", T0, frm="bob@unknown.example")
    messages = [
        stranger,
        make_reply(stranger, "p1", T0 + H, frm=PRIYA),
        make_reply(stranger, "s1", T0 + H + M, frm=SAM),
    ]
    found = evaluate(CONFIG, view(messages), T0 + 2 * H)
    assert [(v.rule, v.notify) for v in found] == [
        ("unowned", (ADMIN,)),
        ("conflicting_replies", (ADMIN,)),
    ]


def test_out_of_office_times_are_normalised() -> None:
    ctx = RuleContext.create(CONFIG, T0, out_of_office={"Priya@Example.com": [T0.astimezone(UTC)]})
    assert ctx.out_of_office == {PRIYA: (T0,)}


# -- next deadline --------------------------------------------------------------------------------


@settings(max_examples=120, deadline=None)
@given(
    messages=traffic,
    now_minutes=st.integers(0, 7 * 24 * 60),
    fractions=st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=4),
)
def test_nothing_changes_before_the_next_deadline(
    messages: list[MessageRecord], now_minutes: int, fractions: list[float]
) -> None:
    now = T0 + td(minutes=now_minutes)
    known = view([m for m in messages if m.time <= now], thread_id="m0")
    result = assess(known, RuleContext.create(PROPERTY_CONFIG, now))
    assert result.violations == evaluate_thread(known, RuleContext.create(PROPERTY_CONFIG, now))
    deadline = result.next_deadline
    assert deadline is None or deadline > now
    horizon = deadline or now + td(days=30)
    for fraction in fractions:
        span_us = (horizon - now) // td(microseconds=1)
        later = now + td(microseconds=min(int(span_us * fraction), span_us - 1))
        assert (
            evaluate_thread(known, RuleContext.create(PROPERTY_CONFIG, later)) == result.violations
        )


def _deadline(
    messages: list[MessageRecord], now: datetime, config_extra: str = ""
) -> datetime | None:
    config = make_config(config_extra) if config_extra else CONFIG
    return assess(view(messages), RuleContext.create(config, now)).next_deadline


def test_a_waiting_customer_wakes_the_thread_at_warning_then_deadline() -> None:
    assert _deadline([c1], T0) == T0 + 3 * H
    assert _deadline([c1], T0 + 3 * H) == T0 + 4 * H
    assert _deadline([c1], T0 + 4 * H) is None
    assert _deadline([c1], T0 + 4 * H, '[digests]\nescalate_after = "1h"\n') == T0 + 5 * H
    assert _deadline([c1, make_reply(c1, "r", T0 + H, frm=PRIYA)], T0 + 2 * H) is None


def test_an_open_conflict_wakes_the_thread_when_it_expires() -> None:
    messages = [
        c1,
        make_reply(c1, "p1", T0 + H, frm=PRIYA),
        make_reply(c1, "s1", T0 + H + M, frm=SAM),
    ]
    assert _deadline(messages, T0 + 2 * H) == T0 + H + M + td(days=3)


def test_an_absence_ending_wakes_a_thread_with_violations() -> None:
    extra = '[[absences]]\nwho = "priya@example.com"\nfrom = "2026-11-02"\nuntil = "2026-11-02"\n'
    assert _deadline([c1], T0 + 5 * H, extra) == datetime(2026, 11, 3, tzinfo=UTC)


def test_a_thread_a_later_message_merged_is_assessed_as_it_stood() -> None:
    invoice = make_message("q", T0, subject="Invoice")
    payment = make_message("p", T0 + H, subject="Payment")
    link = make_message("l", T0 + 30 * H, subject="Re: both", refs="q p")
    merged = ThreadView("<q>", "Invoice", (invoice, payment, link), answered=frozenset({"<p>"}))
    ctx = RuleContext.create(CONFIG, T0 + 5 * H)
    pieces = as_of(merged, ctx)
    assert [(p.thread_id, p.subject, [m.message_id for m in p.messages]) for p in pieces] == [
        ("<q>", "Invoice", ["<q>"]),
        ("<p>", "Payment", ["<p>"]),
    ]
    assert [p.answered for p in pieces] == [frozenset(), frozenset({"<p>"})]
    answer = assess(merged, ctx)
    assert answer.thread_ids == ("<q>", "<p>")
    assert [(v.rule, v.thread_id) for v in answer.violations] == [("unacknowledged", "<q>")]
    later = RuleContext.create(CONFIG, T0 + 31 * H)
    assert as_of(merged, later) == [merged]  # nothing later: the thread as stored
    assert assess(merged, later).thread_ids == ("<q>",)


def test_mail_a_colleague_sent_as_a_customer_does_not_decide_the_account() -> None:
    # From an Acme address but written by Priya (internal Sender): ours, so the account is
    # decided by the customer who answered it.
    config = make_config(
        '[[accounts]]\nname = "Acme"\ndomains = ["acme.com"]\nowner = "sam@example.com"\n'
    )
    ours = make_message("m0", T0, frm="bob@acme.com", sender=PRIYA, to=CUSTOMER)
    answer = make_reply(ours, "m1", T0 + H, frm=CUSTOMER, to="bob@acme.com")
    found = evaluate(config, view([ours, answer]), T0 + 6 * H)
    assert {(v.rule, v.account) for v in found} == {("unacknowledged", "Client")}
