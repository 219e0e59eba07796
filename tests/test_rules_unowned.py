"""`unowned`: customer mail nobody owns, for the admins; gone once the config names an owner."""

from __future__ import annotations

from datetime import timedelta as td

from monitor.records import Automatic
from rules.base import Severity, Status, Violation
from rules.unowned import RULE
from tests.builders import T0, make_message, make_reply
from tests.rule_scenarios import ADMIN, PRIYA, SAM, evaluate, make_config, view

H = td(hours=1)
ORPHAN = '[[accounts]]\nname = "Orphan"\ndomains = ["orphan.example"]\n'
o1 = make_message("o1", T0, frm="carol@orphan.example")


def rules_of(found: list[Violation]) -> list[str]:
    return [v.rule for v in found]


def test_an_account_without_owner_is_unowned_until_the_config_names_one() -> None:
    thread = view([o1, make_reply(o1, "r1", T0 + H, frm=SAM)])
    (violation,) = [
        v for v in evaluate(make_config(ORPHAN), thread, T0 + 3 * H) if v.rule == "unowned"
    ]
    assert (violation.severity, violation.status, violation.account) == (
        Severity.WARNING,
        Status.OPEN,
        "Orphan",
    )
    assert violation.about == violation.thread_id == "<o1>"
    assert violation.opened_at == T0 and violation.due_at is None
    assert violation.message_ids == ("<o1>",)  # our reply is not customer mail
    owned = make_config(ORPHAN + 'owner = "priya@example.com"\n')
    assert "unowned" not in rules_of(evaluate(owned, thread, T0 + 3 * H))
    assert evaluate(owned, view([o1]), T0 + 3 * H)[0].owner == PRIYA


def test_every_inbound_message_is_behind_it() -> None:
    thread = view([o1, make_message("o2", T0 + H, frm="dave@orphan.example", refs="o1")])
    (violation,) = [
        v for v in evaluate(make_config(ORPHAN), thread, T0 + 2 * H) if v.rule == "unowned"
    ]
    assert violation.message_ids == ("<o1>", "<o2>")
    assert violation.notify == (ADMIN,)


def test_automatic_or_internal_mail_alone_is_nobodys_business() -> None:
    robot = make_message("a1", T0, frm="noreply@unknown.example", automatic=Automatic.BULK)
    memo = make_message("i1", T0, frm=PRIYA, to=SAM)
    assert evaluate(make_config(), view([robot]), T0 + 5 * H) == []
    assert evaluate(make_config(), view([memo]), T0 + 5 * H) == []


def test_the_rule_is_named_after_its_table() -> None:
    assert RULE.name == "unowned"
    assert type(getattr(make_config().rules, RULE.name)) is RULE.Settings
