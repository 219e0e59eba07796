"""`pocwatch threads` summaries: awaiting_reply agrees with the unacknowledged rule's waits."""

from __future__ import annotations

from datetime import timedelta

from monitor.classify import InternalPolicy
from monitor.records import ThreadView
from rules.summary import summarize
from tests.builders import T0, make_message, make_reply

POLICY = InternalPolicy(domains=("example.com",))


def summary(*messages, answered=frozenset()):  # type: ignore[no-untyped-def]
    thread = ThreadView("<t>", "s", tuple(messages), answered=answered)
    return summarize(thread, policy=POLICY, accounts=())


def test_a_customer_message_without_reply_awaits_one() -> None:
    first = make_message("a", T0)
    assert summary(first).awaiting_reply is True
    assert summary(first, make_reply(first, "r", T0 + timedelta(hours=1))).awaiting_reply is False


def test_answered_on_a_chaser_ends_the_wait_as_the_rule_counts_it() -> None:
    first = make_message("a", T0)
    chaser = make_message("b", T0 + timedelta(hours=1), refs="a", in_reply_to="a")
    assert summary(first, chaser).awaiting_reply is True
    assert summary(first, chaser, answered=frozenset({"<b>"})).awaiting_reply is False


def test_automatic_mail_never_waits() -> None:
    from monitor.records import Automatic

    assert summary(make_message("a", T0, automatic=Automatic.BOUNCE)).awaiting_reply is False
