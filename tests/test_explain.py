"""`explain` rendering: pure text from a thread and a context, checked on small scenarios."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta as td
from typing import ClassVar
from zoneinfo import ZoneInfo

from monitor.display import format_time, human_duration
from monitor.explain import explain, explanation, render
from monitor.records import Automatic
from rules.base import (
    Answer,
    Rule,
    RuleContext,
    Severity,
    Status,
    ThreadView,
    Violation,
    numbered,
)
from rules.engine import evaluate_thread
from rules.registry import registered_rules
from rules.unowned import RULE as UNOWNED
from tests.builders import T0, at, make_message, make_reply
from tests.rule_scenarios import ADMIN, CUSTOMER, PRIYA, SAM, SUPPORT, make_config, view

H = td(hours=1)
M = td(minutes=1)
LONDON = ZoneInfo("Europe/London")
CONFIG = make_config()


def ctx_at(now: object, config: object = CONFIG) -> RuleContext:
    return RuleContext.create(config, at(now))  # type: ignore[arg-type]


def section(text: str, title: str) -> str:
    """The lines of one section of the output ("Timeline:", "Rules:" ...)."""
    after = text.split(f"\n{title}\n", 1)[1]
    return after.split("\n\n", 1)[0]


def line_of(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.strip().startswith(start))


# -- scenarios --------------------------------------------------------------------------------

friday = make_message("fri", "2026-11-06T16:30:00Z", subject="Export broken")  # 1h before close


def conflict_thread() -> ThreadView:
    c1 = make_message("c1", T0)
    return view(
        [
            c1,
            make_reply(c1, "r1", T0 + 25 * M, frm=SUPPORT, sender=PRIYA),  # sent as support@
            make_reply(c1, "r2", T0 + 32 * M, frm=SAM),
            make_reply(c1, "fw", T0 + 40 * M, frm=PRIYA, to=SAM),  # internal only
            make_message("c2", T0 + 2 * td(days=1), subject="Re: Cannot log in", refs="c1"),
            make_reply(c1, "r3", T0 + 2 * td(days=1) + H, frm=PRIYA),
        ]
    )


def test_friday_evening_message_is_due_monday_and_the_clock_says_so() -> None:
    text = explain(view([friday]), ctx_at("2026-11-09T12:30:00Z"))
    clock = section(text, "SLA clock (business time):")
    assert "Client (owner priya@example.com, backup sam@example.com" in clock
    assert "default: Europe/London, mon tue wed thu fri 09:00-17:30, 2 holidays" in clock
    assert "4h of business time (warning at 75%: 3h)" in clock
    assert "started by #1 at Fri 2026-11-06 16:30 GMT" in clock
    assert "warning at Mon 2026-11-09 11:00 GMT, due at Mon 2026-11-09 12:00 GMT" in clock
    assert "waiting for 4h30m of business time so far: 30m past due" in clock
    rules = section(text, "Rules:")
    assert "unacknowledged: FIRED (breach open); notify priya@example.com, sam@example.com" in rules
    assert "#1 has waited 4h30m of business time, 30m past the deadline Mon 2026-11-09" in rules
    assert "unowned: not fired" in rules and "account Client is owned by priya@example.com" in rules


def test_before_the_warning_the_rule_did_not_fire_and_says_when_it_will() -> None:
    text = explain(view([friday]), ctx_at("2026-11-09T09:30:00Z"))
    assert "waiting for 1h30m of business time so far: 2h30m left" in text
    assert "unacknowledged: not fired" in text
    assert "#1 has waited 1h30m of business time; warning at Mon 2026-11-09 11:00 GMT" in text


def test_timeline_shows_direction_author_acknowledgement_and_internal_mail() -> None:
    text = explain(conflict_thread(), ctx_at(T0 + 3 * td(days=1)))
    timeline = section(text, "Timeline:")
    one, two, three, four, five, six = timeline.splitlines()
    assert one.split()[:6] == ["#1", "Mon", "2026-11-02", "09:00", "GMT", "inbound"]
    assert CUSTOMER in one and "human" in one and "<c1>" in one
    assert "outbound" in two and PRIYA in two and f"as {SUPPORT}" in two
    assert "acknowledges #1" in two
    assert "outbound" in three and SAM in three and "acknowledges" not in three
    assert "internal" in four and "internal only: never acknowledges" in four
    assert "inbound" in five and "#5" in five
    assert "acknowledges #5" in six


def test_a_conflict_names_who_answered_and_how_it_was_resolved() -> None:
    rules = section(explain(conflict_thread(), ctx_at(T0 + 3 * td(days=1))), "Rules:")
    assert "conflicting_replies: FIRED (breach resolved)" in rules
    assert (
        "priya@example.com (#2) and sam@example.com (#3) answered in the same turn: "
        "opened Mon 2026-11-02 09:32 GMT"
    ) in rules
    assert "resolved at Wed 2026-11-04 10:00 GMT: #6 answered a later turn alone" in rules
    assert "#1 was answered after 25m of business time, before the warning threshold" in rules


def test_an_open_conflict_says_until_when_it_stays_open() -> None:
    rules = section(explain(conflict_thread(), ctx_at(T0 + H)), "Rules:")
    assert "conflicting_replies: FIRED (breach open); notify priya@example.com" in rules
    assert "or until Thu 2026-11-05 09:32 GMT (open_for) at the latest" in rules


def test_messages_after_now_are_cut_and_counted() -> None:
    text = explain(conflict_thread(), ctx_at(T0 + 30 * M))
    assert len(section(text, "Timeline:").splitlines()) == 3  # two messages and the note
    assert "(4 later messages after --now not taken into account)" in text
    assert "conflicting_replies: not fired" in text
    assert "only one of us wrote to the customer: priya@example.com (#2)" in text


def test_nothing_known_yet() -> None:
    text = explain(conflict_thread(), ctx_at(T0 - H))
    assert "(no message of this thread is known as of then)" in text
    assert "Waits:     none" in text
    assert "no customer mail (inbound, not automatic): nobody needs to own it" in text


def test_unowned_thread_names_the_customer_and_the_admins() -> None:
    stranger = make_message("s1", T0, frm="bob@unknown.example")
    text = explain(view([stranger]), ctx_at(T0 + H))
    assert "none (no account matches); the default SLA and calendar apply" in text
    assert "unowned: FIRED (warning open); notify ops@example.com" in text
    assert (
        f"no account matches the customer (bob@unknown.example); monitor.admins warned: {ADMIN}"
    ) in text
    assert "no reply from us to the customer (outbound, not automatic)" in text


def test_absent_owner_and_allowed_sender_do_not_count() -> None:
    config = make_config('[rules.conflicting_replies]\nallow = ["bot@example.com"]\n')
    c1 = make_message("c1", T0)
    thread = view(
        [
            c1,
            make_reply(c1, "ooo", T0 + M, frm=PRIYA, automatic=Automatic.OUT_OF_OFFICE),
            make_reply(c1, "b1", T0 + 5 * M, frm="bot@example.com"),
            make_reply(c1, "s1", T0 + 30 * M, frm=SAM),
            make_reply(c1, "p1", T0 + 40 * M, frm=PRIYA),
        ]
    )
    text = explain(thread, ctx_at(T0 + H, config))
    assert "automatic (out_of_office)" in text and f"marks {PRIYA} absent" in text
    rules = section(text, "Rules:")
    assert "conflicting_replies: not fired" in rules
    assert "bot@example.com (#3) never counts: in rules.conflicting_replies.allow" in rules
    assert "priya@example.com (#5) does not count: the owner was absent then" in rules
    assert "only one of us wrote to the customer: sam@example.com (#4)" in rules


def test_replies_days_apart_are_no_conflict_and_it_says_why() -> None:
    c1 = make_message("c1", T0)
    c2 = make_message("c2", T0 + 2 * td(days=1), subject="Re: Cannot log in", refs="c1")
    thread = view(
        [
            c1,
            make_reply(c1, "p1", T0 + H, frm=PRIYA),
            c2,
            make_reply(c2, "s1", c2.time + H, frm=SAM),
        ]
    )
    text = explain(thread, ctx_at(T0 + 3 * td(days=1)))
    assert (
        "priya@example.com (#2) and sam@example.com (#4) answered, but not in the same turn "
        "nor within 1d of each other"
    ) in text


def test_late_answer_after_a_chaser_and_answered_flag() -> None:
    c1 = make_message("c1", T0)
    chaser = make_message("c2", T0 + 5 * H, subject="Re: Cannot log in", refs="c1")
    reply = make_reply(c1, "r1", T0 + 6 * H, frm=PRIYA)
    text = explain(view([c1, chaser, reply]), ctx_at(T0 + td(days=1)))
    assert "chaser of #1" in line_of(text, "#2")
    assert "started by #1 at Mon 2026-11-02 09:00 GMT (1 chaser: #2)" in text
    assert "acknowledged by #3 at Mon 2026-11-02 15:00 GMT after 6h of business time: 2h late" in (
        text
    )
    assert "unacknowledged: FIRED (breach resolved)" in text
    assert "#1 waited 6h of business time before an answer, 2h past the SLA" in text
    flagged = explain(view([c1], answered=["c1"]), ctx_at(T0 + td(days=1)))
    assert "\\Answered" in line_of(flagged, "#1")
    assert "#1 is \\Answered (a reply we cannot see): it never breaches" in flagged
    assert "unacknowledged: not fired" in flagged


def test_the_explanation_agrees_with_the_engine_and_rendering_is_pure() -> None:
    for thread, now in ((conflict_thread(), T0 + H), (view([friday]), at("2026-11-09T12:30Z"))):
        ctx = ctx_at(now)
        ex = explanation(thread, ctx)
        assert list(ex.violations) == evaluate_thread(thread, ctx)
        assert {v.account for v in ex.violations} <= {ex.account.name if ex.account else None}
        assert render(ex) == render(ex) == explain(thread, ctx)


class Shouting:
    """A rule only this test knows: customer mail whose subject is all capitals."""

    name: ClassVar[str] = "shouting"
    description: ClassVar[str] = "A customer wrote in capitals."

    def assess(self, thread: ThreadView, ctx: RuleContext) -> Answer:
        return Answer(
            [
                Violation(
                    rule=self.name,
                    severity=Severity.WARNING,
                    status=Status.OPEN,
                    account=ctx.account_name,
                    thread_id=thread.thread_id,
                    subject=thread.subject,
                    owner=ctx.owner,
                    backup=ctx.backup,
                    notify=(ADMIN,),
                    opened_at=m.time,
                    due_at=None,
                    resolved_at=None,
                    senders=(),
                    chasers=0,
                    message_ids=(m.message_id,),
                    about=m.message_id,
                )
                for m in thread.messages
                if m.subject.isupper()
            ]
        )

    def explain(
        self, thread: ThreadView, ctx: RuleContext, violations: Sequence[Violation]
    ) -> list[str]:
        number = numbered(thread)
        loud = ", ".join(f"#{number[v.about]}" for v in violations) or "nobody"
        return [f"{loud} shouted, of {len(thread.messages)} messages", f"as of {ctx.now:%H:%M}"]


def test_each_rule_explains_itself_with_the_thread_as_of_now_and_its_violations() -> None:
    c1 = make_message("c1", T0, subject="Cannot log in")
    c2 = make_message("c2", T0 + 10 * M, subject="STILL BROKEN", refs="c1")
    c3 = make_message("c3", T0 + 2 * H, subject="HELLO?", refs="c1")  # after now
    rules: list[Rule] = [Shouting(), UNOWNED]
    ex = explanation(view([c1, c2, c3]), ctx_at(T0 + H), rules=rules)
    assert [r.name for r in ex.rules] == ["shouting", "unowned"]
    assert section(render(ex), "Rules:").splitlines() == [
        f"  shouting: FIRED (warning open); notify {ADMIN}",
        "    #2 shouted, of 2 messages",
        "    as of 10:00",
        "  unowned: not fired",
        f"    account Client is owned by {PRIYA}",
    ]
    quiet = explain(view([c1]), ctx_at(T0 + H))
    assert "shouting" not in quiet  # not a registered rule
    calm = render(explanation(view([c1]), ctx_at(T0 + H), rules=[Shouting()]))
    assert calm.endswith(
        "\nRules:\n  shouting: not fired\n    nobody shouted, of 1 messages\n    as of 10:00\n"
    )


class Broken(Shouting):
    """Fails to assess on threads with capitals, and always fails to explain."""

    name: ClassVar[str] = "broken"

    def assess(self, thread: ThreadView, ctx: RuleContext) -> Answer:
        if any(m.subject.isupper() for m in thread.messages):
            raise RuntimeError("rule broke")
        return Answer([])

    def explain(
        self, thread: ThreadView, ctx: RuleContext, violations: Sequence[Violation]
    ) -> list[str]:
        raise RuntimeError("explain broke")


def test_a_failing_rule_is_named_and_the_others_still_explain() -> None:
    c1 = make_message("c1", T0, subject="Cannot log in")
    c2 = make_message("c2", T0 + 10 * M, subject="STILL BROKEN", refs="c1")
    rules: list[Rule] = [Broken(), UNOWNED]
    lines = section(render(explanation(view([c1, c2]), ctx_at(T0 + H), rules=rules)), "Rules:")
    assert lines.splitlines() == [
        "  broken: FAILED on this thread",
        "    it raised an error (logged); its violations are unknown",
        "  unowned: not fired",
        f"    account Client is owned by {PRIYA}",
    ]
    lines = section(render(explanation(view([c1]), ctx_at(T0 + H), rules=rules)), "Rules:")
    assert lines.splitlines()[:2] == [
        "  broken: FAILED on this thread",
        "    it raised an error while explaining (logged)",
    ]


def test_every_registered_rule_explains_itself() -> None:
    ex = explanation(conflict_thread(), ctx_at(T0 + H))
    assert [r.name for r in ex.rules] == [rule.name for rule in registered_rules()]
    assert all(r.why and all(line and line == line.strip() for line in r.why) for r in ex.rules)


def test_times_are_shown_in_monitor_timezone_across_dst() -> None:
    assert format_time(at("2026-07-01T08:00Z"), LONDON) == "Wed 2026-07-01 09:00 BST"
    assert format_time(at("2026-11-02T09:00Z"), LONDON) == "Mon 2026-11-02 09:00 GMT"
    assert format_time(None, LONDON) == "-"


def test_durations() -> None:
    assert human_duration(td(0)) == "0m"
    assert human_duration(td(seconds=30)) == "30s"
    assert human_duration(45 * M) == "45m"
    assert human_duration(3 * H + 10 * M) == "3h10m"
    assert human_duration(td(days=2, hours=3)) == "51h"  # business time stays in hours
    assert human_duration(td(days=3), days=True) == "3d"
    assert human_duration(td(days=1, hours=2), days=True) == "1d2h"
    assert human_duration(-H) == "0m"


def test_a_thread_merged_later_is_explained_as_the_conversation_it_was() -> None:
    invoice = make_message("q", T0, subject="Invoice")
    payment = make_message("p", T0 + H, subject="Payment")
    link = make_message("l", T0 + 30 * H, subject="Re: both", refs="q p")
    merged = ThreadView("<q>", "Invoice", (invoice, payment, link))
    text = explain(merged, ctx_at(T0 + 5 * H), focus="p")
    assert text.startswith("Thread <p>: Payment\n")
    assert "  (1 later message after --now not taken into account)" in text
    assert "  (a later message joined this conversation with: <q> (1 message))" in text
    assert "#1 has waited" in text and "#2" not in section(text, "Timeline:")
    whole = explain(merged, ctx_at(T0 + 31 * H), focus="p")
    assert whole.startswith("Thread <q>: Invoice\n") and "joined" not in whole
