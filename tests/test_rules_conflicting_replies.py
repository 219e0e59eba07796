"""`conflicting_replies`: turns, window, allow, absences in zone, handoffs, open_for."""

from __future__ import annotations

from datetime import timedelta as td

from monitor.config import Config
from monitor.records import Automatic, MessageRecord
from rules.base import Status, Violation
from rules.conflicting_replies import RULE
from tests.builders import T0, TimeLike, make_message, make_reply
from tests.rule_scenarios import CUSTOMER, PRIYA, SAM, evaluate, make_config, view

H = td(hours=1)
M = td(minutes=1)
D = td(days=1)
CONFIG = make_config()
KIM = "kim@example.com"
c1 = make_message("c1", T0)


def conflicts(
    messages: list[MessageRecord], now: TimeLike, config: Config = CONFIG
) -> list[Violation]:
    found = evaluate(config, view(messages), now)
    return [v for v in found if v.rule == "conflicting_replies"]


def reply(
    mid: str, when: td, frm: str, *, to: str | None = None, automatic: Automatic | None = None
) -> MessageRecord:
    return make_reply(c1, mid, T0 + when, frm=frm, to=to, automatic=automatic)


def test_allowed_addresses_never_count() -> None:
    config = make_config('[rules.conflicting_replies]\nallow = ["Robot@Example.com"]\n')
    messages = [c1, reply("bot", M, "robot@example.com"), reply("p1", H, PRIYA)]
    assert conflicts(messages, T0 + 2 * H, config) == []
    assert len(conflicts(messages, T0 + 2 * H)) == 1


def test_internal_only_and_automatic_mail_never_conflict() -> None:
    messages = [
        c1,
        reply("p1", H, PRIYA),
        reply("fw", H + M, SAM, to=PRIYA),  # internal-only
        reply("auto", H + 2 * M, SAM, automatic=Automatic.AUTO_REPLY),
    ]
    assert conflicts(messages, T0 + 2 * H) == []


def test_a_third_sender_joins_the_open_conflict() -> None:
    messages = [c1, reply("p1", H, PRIYA), reply("s1", H + M, SAM), reply("k1", H + 2 * M, KIM)]
    (violation,) = conflicts(messages, T0 + 2 * H)
    assert violation.senders == (PRIYA, SAM, KIM)
    assert violation.message_ids == ("<p1>", "<s1>", "<k1>")
    assert violation.opened_at == T0 + H + M
    assert violation.about == "<p1>"


def test_a_turn_answered_again_by_two_keeps_the_conflict_open() -> None:
    messages = [
        c1,
        reply("p1", H, PRIYA),
        reply("s1", H + M, SAM),
        make_message("c2", T0 + 2 * H, refs="c1"),
        make_message("p2", T0 + 3 * H, frm=PRIYA, to=CUSTOMER),
        make_message("s2", T0 + 3 * H + M, frm=SAM, to=CUSTOMER),
    ]
    found = conflicts(messages, T0 + 4 * H)
    # p2 alone answered turn 2 at first, which resolved the conflict; s2 opens a new one.
    assert [(v.about, v.status, v.resolved_at) for v in found] == [
        ("<p1>", Status.RESOLVED, T0 + 3 * H),
        ("<p2>", Status.OPEN, None),
    ]
    assert found[1].senders == (PRIYA, SAM)


def test_open_for_ends_a_conflict_and_a_new_one_in_the_same_turn_gets_its_own_identity() -> None:
    messages = [c1, reply("p1", H, PRIYA), reply("s1", H + M, SAM)]
    (violation,) = conflicts(messages, T0 + H + M + 3 * D - td(seconds=1))
    assert violation.status is Status.OPEN
    (violation,) = conflicts(messages, T0 + H + M + 3 * D)
    assert (violation.status, violation.resolved_at) == (Status.RESOLVED, T0 + H + M + 3 * D)
    later = [*messages, reply("p2", 4 * D, PRIYA), reply("s2", 4 * D + M, SAM)]
    found = conflicts(later, T0 + 5 * D)
    assert [(v.about, v.status) for v in found] == [
        ("<p1>", Status.RESOLVED),
        ("<s2>", Status.OPEN),
    ]
    assert found[1].message_ids == ("<p2>", "<s2>")
    assert len({v.fingerprint for v in found}) == 2


def test_window_and_open_for_come_from_the_config() -> None:
    config = make_config('[rules.conflicting_replies]\nwindow = "30m"\nopen_for = "1h"\n')
    messages = [
        c1,
        reply("p1", H, PRIYA),
        make_message("c2", T0 + H + 10 * M, refs="c1"),
        make_message("s1", T0 + H + 40 * M, frm=SAM, to=CUSTOMER),
    ]
    assert conflicts(messages, T0 + 5 * H, config) == []
    messages[-1] = make_message("s1", T0 + H + 20 * M, frm=SAM, to=CUSTOMER)
    (violation,) = conflicts(messages, T0 + 5 * H, config)
    assert violation.resolved_at == T0 + 2 * H + 20 * M


def test_absence_dates_are_local_to_the_accounts_calendar() -> None:
    config = make_config(
        '[[absences]]\nwho = "priya@example.com"\nfrom = "2026-11-02"\nuntil = "2026-11-03"\n',
        account='calendar = "new_york"\n',
    )
    late = [
        c1,
        make_message("p1", "2026-11-04T03:00Z", frm=PRIYA, to=CUSTOMER),  # 22:00 on the 3rd in NY
        make_message("s1", "2026-11-04T03:05Z", frm=SAM, to=CUSTOMER),
    ]
    assert conflicts(late, "2026-11-04T04:00Z", config) == []
    after = [
        c1,
        make_message("p1", "2026-11-04T06:00Z", frm=PRIYA, to=CUSTOMER),  # 01:00 on the 4th
        make_message("s1", "2026-11-04T06:05Z", frm=SAM, to=CUSTOMER),
    ]
    assert len(conflicts(after, "2026-11-04T07:00Z", config)) == 1


def test_an_out_of_office_after_the_reply_does_not_excuse_it() -> None:
    messages = [
        c1,
        reply("p1", H, PRIYA),
        reply("s1", H + M, SAM),
        reply("ooo", 2 * H, PRIYA, automatic=Automatic.OUT_OF_OFFICE),
    ]
    assert len(conflicts(messages, T0 + 3 * H)) == 1


def test_only_the_owner_is_excused_by_absence() -> None:
    messages = [
        c1,
        reply("ooo", M, SAM, automatic=Automatic.OUT_OF_OFFICE),
        reply("s1", H, SAM),
        reply("p1", H + M, PRIYA),
    ]
    assert len(conflicts(messages, T0 + 3 * H)) == 1


def test_handoffs_only_apply_to_their_account() -> None:
    config = make_config(
        '[[accounts]]\nname = "Other"\ndomains = ["other.example"]\nowner = "priya@example.com"\n'
        '[[handoffs]]\naccount = "Other"\nfrom = "old@example.com"\n'
        'to = "priya@example.com"\non = "2026-11-02"\noverlap = "14d"\n'
    )
    messages = [c1, reply("o1", H, "old@example.com"), reply("p1", H + M, PRIYA)]
    assert len(conflicts(messages, T0 + 2 * H, config)) == 1


def test_the_rule_is_named_after_its_table() -> None:
    assert RULE.name == "conflicting_replies"
    assert type(getattr(CONFIG.rules, RULE.name)) is RULE.Settings
