"""Threading: JWZ references, Thread-Index, X-GM-THRID, the subject rule, roots, merges."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.records import MessageRecord, Thread
from monitor.threads import base_subject, has_reply_prefix, subject_fallback_key, thread_messages
from tests.builders import CUSTOMER, SUPPORT, T0, is_external, make_message, make_reply

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
BOB = "bob@other.example"
DAN = "dan@else.example"
CAROL = "carol@client.example"


def run(*messages: MessageRecord, window: timedelta = 30 * DAY) -> list[Thread]:
    return thread_messages(messages, is_external, subject_window=window)


def groups(threads: Iterable[Thread]) -> set[frozenset[str]]:
    return {frozenset(t.message_ids) for t in threads}


def ids(*names: str) -> tuple[str, ...]:
    return tuple(f"<{n}>" for n in names)


# --- base_subject / has_reply_prefix ---------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Hello", "hello"),
        ("Re: Hello", "hello"),
        ("RE: Re: re: Hello", "hello"),
        ("Re:Hello", "hello"),
        ("RE : Hello", "hello"),
        ("RE[2]: Hello", "hello"),
        ("Re(3): Hello", "hello"),
        ("Re^2: Hello", "hello"),
        ("Fwd: Hello", "hello"),
        ("FW: Hello", "hello"),
        ("Fw: Hello", "hello"),
        ("Re: Fwd: [ACME-12] RE[2]: Invoice  overdue", "invoice overdue"),
        ("AW: WG: Angebot", "angebot"),
        ("SV: VS: Tilbud", "tilbud"),
        ("Odp: Zamówienie", "zamówienie"),
        ("Antw: Doorst: Offerte", "offerte"),
        ("TR: Réf: Facture", "facture"),
        ("RV: RES: ENC: Pedido", "pedido"),
        ("回复：你好", "你好"),
        ("[fedora-devel] Re: [ACME-12] Hello   World", "hello world"),
        ("[ACME-12] Invoice", "invoice"),
        ("Invoice [ACME-12]", "invoice"),
        ("Error in [core] module", "error in [core] module"),
        ("Re: [ACME-12]", "[acme-12]"),
        ("[Fwd: Invoice]", "invoice"),
        ("Invoice (fwd)", "invoice"),
        ("  Cannot\tlog \n IN ", "cannot log in"),
        ("STRASSE", "strasse"),
        ("Straße", "strasse"),
        ("Report: status", "report: status"),
        ("Regarding: status", "regarding: status"),
        ("R: plotting fails", "r: plotting fails"),
        ("Re:", ""),
        ("", ""),
    ],
)
def test_base_subject(subject: str, expected: str) -> None:
    assert base_subject(subject) == expected


@pytest.mark.parametrize(
    "subject",
    [
        "Re: Hello",
        "RE : Hello",
        "RE[2]: Hello",
        "re:hello",
        "Fwd: Hello",
        "AW: Hello",
        "WG: Hello",
        "SV: Hello",
        "VS: Hello",
        "Odp: Hello",
        "Antw: Hello",
        "TR: Hello",
        "Réf: Hello",
        "[ACME-12] RE: Hello",
        "[Fwd: Hello]",
        "Hello (fwd)",
        "回复：你好",
    ],
)
def test_has_reply_prefix(subject: str) -> None:
    assert has_reply_prefix(subject)


@pytest.mark.parametrize(
    "subject",
    [
        "Hello",
        "Report: status",
        "Remote: access",
        "Re",
        "Re Hello",
        "R: plotting fails",
        "[X] Hi",
        "",
    ],
)
def test_has_no_reply_prefix(subject: str) -> None:
    assert not has_reply_prefix(subject)


@pytest.mark.parametrize(
    "subject",
    [
        " " * 300_000 + "x",
        "Re:" + "\t " * 150_000 + "[",
        "[Fwd: " + "] " * 100_000,
        "[x]" * 100_000,
    ],
)
def test_huge_subjects_fold_in_linear_time(subject: str) -> None:
    # The corpus has a 210 KB Subject; a backtracking regex would take minutes on these.
    assert base_subject(subject) == base_subject(base_subject(subject))
    has_reply_prefix(subject)


SUBJECT_PIECES = [
    "Re:",
    "RE :",
    "Fwd:",
    "AW:",
    "[T-1]",
    "(fwd)",
    "[Fwd:",
    "]",
    " ",
    "\t",
    "x",
    "Hé",
]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(SUBJECT_PIECES), max_size=10).map("".join))
def test_base_subject_is_stable(subject: str) -> None:
    base = base_subject(subject)
    assert base_subject(base) == base
    assert base == base.strip()
    assert "  " not in base


def test_subject_fallback_key() -> None:
    assert subject_fallback_key(make_message("a", subject="Re: Hello")) == "hello"
    assert subject_fallback_key(make_message("a", subject="Hello")) is None
    assert subject_fallback_key(make_message("a", subject="Re: Hello", refs="x")) is None
    assert subject_fallback_key(make_message("a", subject="Re: Hello", in_reply_to="x")) is None
    assert subject_fallback_key(make_message("a", subject="Re: Hello", refs="a")) == "hello"
    assert subject_fallback_key(make_message("a", subject="Re:")) is None


# --- references ------------------------------------------------------------------------------


def test_empty_input() -> None:
    assert run() == []


def test_rfc2822_appendix_a_thread() -> None:
    root = make_message(
        "1234@local.machine.example", T0, subject="Saying Hello", frm="jdoe@machine.example"
    )
    reply = make_message(
        "3456@example.net",
        T0 + HOUR,
        subject="Re: Saying Hello",
        frm="mary@example.net",
        in_reply_to="1234@local.machine.example",
        refs="1234@local.machine.example",
    )
    reply2 = make_message(
        "abcd.1234@local.machine.tld",
        T0 + 2 * HOUR,
        subject="Re: Saying Hello",
        frm="jdoe@machine.example",
        in_reply_to="3456@example.net",
        refs="1234@local.machine.example 3456@example.net",
    )
    assert run(reply2, root, reply) == [
        Thread(
            "<1234@local.machine.example>",
            ids("1234@local.machine.example", "3456@example.net", "abcd.1234@local.machine.tld"),
        )
    ]


def test_siblings_under_a_missing_parent_are_one_thread_named_after_it() -> None:
    daemon = "mailer-daemon@gmail.example"
    delay = make_message("dsn1", T0, subject="Delayed", frm=daemon, refs="orig", in_reply_to="orig")
    failure = make_message("dsn2", T0 + DAY, subject="Failure", frm=daemon, refs="orig")
    assert run(failure, delay) == [Thread("<orig>", ids("dsn1", "dsn2"))]


def test_in_reply_to_alone_links() -> None:
    root = make_message("a", T0)
    reply = make_message("b", T0 + HOUR, subject="Re: x", in_reply_to="a")
    assert run(root, reply) == [Thread("<a>", ids("a", "b"))]


def test_references_name_the_parent_before_in_reply_to() -> None:
    only = make_message("c", T0, refs="a b", in_reply_to="x")
    assert run(only) == [Thread("<a>", ids("c"))]


def test_in_reply_to_outside_the_references_still_links() -> None:
    other = make_message("x", T0)
    c = make_message("c", T0 + HOUR, refs="a b", in_reply_to="x")
    [thread] = run(other, c)
    assert thread.message_ids == ids("x", "c")
    # The References chain, not In-Reply-To, says where c hangs; x is the earliest message
    # and a root of its own, so its tree names the thread.
    assert thread.thread_id == "<x>"


def test_first_in_reply_to_is_the_parent_without_references() -> None:
    c = make_message("c", T0, in_reply_to="p q")
    assert run(c) == [Thread("<p>", ids("c"))]


def test_references_chain_gives_ancestry_to_missing_messages() -> None:
    leaf = make_message("d", T0, refs="a b c")
    assert run(leaf) == [Thread("<a>", ids("d"))]


def test_root_is_found_when_reply_is_older_than_parent() -> None:
    root = make_message("a", T0 + DAY)
    early_reply = make_message("b", T0, refs="a")  # sender's clock was wrong
    assert run(root, early_reply) == [Thread("<a>", ids("b", "a"))]


def test_own_headers_beat_other_messages_references() -> None:
    a = make_message("a", T0)
    b = make_message("b", T0 + HOUR, in_reply_to="a")
    # c claims b hangs under x; b's own header says a.
    c = make_message("c", T0 + 2 * HOUR, refs="x b")
    [thread] = run(c, b, a)
    assert thread.thread_id == "<a>"
    assert thread.message_ids == ids("a", "b", "c")


def test_conflicting_chains_are_settled_by_message_time() -> None:
    first = make_message("c", T0, refs="a b")
    second = make_message("d", T0 + HOUR, refs="x b")
    assert run(second, first) == [Thread("<a>", ids("c", "d"))]
    earlier = make_message("d", T0 - HOUR, refs="x b")
    assert run(first, earlier) == [Thread("<x>", ids("d", "c"))]


def test_self_reference_is_ignored() -> None:
    a = make_message("a", T0, refs="a", in_reply_to="a")
    b = make_message("b", T0 + HOUR)
    assert run(a, b) == [Thread("<a>", ids("a")), Thread("<b>", ids("b"))]


def test_self_reference_inside_references_is_skipped() -> None:
    c = make_message("c", T0, refs="a c b")
    assert run(c) == [Thread("<a>", ids("c"))]


def test_two_messages_naming_each_other_as_parent() -> None:
    a = make_message("a", T0, in_reply_to="b")
    b = make_message("b", T0 + HOUR, in_reply_to="a")
    assert run(b, a) == [Thread("<a>", ids("a", "b"))]


def test_loop_of_three_messages() -> None:
    a = make_message("a", T0 + HOUR, refs="c")
    b = make_message("b", T0, refs="a")
    c = make_message("c", T0 + 2 * HOUR, refs="b")
    assert run(a, b, c) == [Thread("<b>", ids("b", "a", "c"))]


def test_references_that_contradict_each_other_do_not_loop() -> None:
    a = make_message("a", T0)
    c = make_message("c", T0 + HOUR, refs="a b")
    d = make_message("d", T0 + 2 * HOUR, refs="b a")  # would make a a child of b
    e = make_message("e", T0 + 3 * HOUR, refs="b b")
    assert run(e, d, c, a) == [Thread("<a>", ids("a", "c", "d", "e"))]


def test_missing_parent_loop_keeps_the_named_root() -> None:
    b = make_message("b", T0, refs="x")
    c = make_message("c", T0 + HOUR, refs="x b")
    d = make_message("d", T0 + 2 * HOUR, refs="b x")  # x under b would close a loop
    assert run(d, c, b) == [Thread("<x>", ids("b", "c", "d"))]


def test_blank_references_are_ignored() -> None:
    a = make_message("a", T0, subject="Hello")
    b = MessageRecord(
        message_id="<b>",
        subject="Other",
        from_addr=CUSTOMER,
        internal_date=T0,
        time=T0 + HOUR,
        references=("",),
        in_reply_to=("",),
    )
    assert groups(run(a, b)) == {frozenset(ids("a")), frozenset(ids("b"))}


def test_unrelated_messages_stay_apart() -> None:
    threads = run(make_message("a", T0), make_message("b", T0 + HOUR, frm=BOB))
    assert threads == [Thread("<a>", ids("a")), Thread("<b>", ids("b"))]


def test_duplicate_message_id_first_wins() -> None:
    a = make_message("a", T0)
    b = make_message("b", T0 + HOUR, refs="a")
    b_again = make_message("b", T0 + 2 * HOUR, refs="z", subject="Other")
    assert run(a, b, b_again) == [Thread("<a>", ids("a", "b"))]
    assert run(a, b_again, b) == [Thread("<a>", ids("a")), Thread("<z>", ids("b"))]


def test_message_ids_are_in_time_then_id_order() -> None:
    a = make_message("a", T0)
    c = make_message("c", T0 + HOUR, refs="a")
    b = make_message("b", T0 + HOUR, refs="a")
    early = make_message("0", T0 - HOUR, refs="a")
    assert run(c, b, a, early) == [Thread("<a>", ids("0", "a", "b", "c"))]


def test_threads_come_in_order_of_their_earliest_message() -> None:
    late = make_message("late", T0 + DAY, subject="Second")
    early = make_message("early", T0, subject="First")
    reply = make_message("z", T0 + 2 * DAY, refs="late")
    assert [t.thread_id for t in run(reply, late, early)] == ["<early>", "<late>"]


# --- merging ---------------------------------------------------------------------------------


def test_late_message_merges_two_threads_under_the_common_root() -> None:
    a = make_message("a", T0)
    a1 = make_reply(a, "a1", T0 + HOUR)
    # An orphan thread whose parent p we never saw:
    b1 = make_message("b1", T0 + 2 * HOUR, subject="Re: Cannot log in", refs="p")
    b2 = make_message("b2", T0 + 3 * HOUR, subject="Re: Cannot log in", refs="p b1")
    assert groups(run(a, a1, b1, b2)) == {frozenset(ids("a", "a1")), frozenset(ids("b1", "b2"))}
    late = make_message("late", T0 + DAY, subject="Re: Cannot log in", refs="a p")
    assert run(b2, late, a1, b1, a) == [Thread("<a>", ids("a", "a1", "b1", "b2", "late"))]


def test_late_message_adopts_a_stored_root_under_another() -> None:
    b = make_message("b", T0, subject="Part two")
    a = make_message("a", T0 + HOUR, subject="Part one")
    late = make_message("late", T0 + DAY, refs="a b")
    assert run(late, a, b) == [Thread("<a>", ids("b", "a", "late"))]


def test_merged_trees_are_named_after_the_tree_holding_the_earliest_message() -> None:
    a = make_message("a", T0, refs="x", in_reply_to="x")
    b = make_message("b", T0 + HOUR, refs="y")
    bridge = make_message("c", T0 + 2 * HOUR, refs="y", in_reply_to="a")
    assert run(bridge, b, a) == [Thread("<x>", ids("a", "b", "c"))]


# --- Thread-Index and X-GM-THRID -------------------------------------------------------------


def test_outlook_thread_index_joins_replies_without_references() -> None:
    ti = "01d3c5a2b4e6" + "0" * 32
    root = make_message("a", T0, subject="Quote", thread_index=ti)
    reply = make_message("b", T0 + HOUR, subject="RE: Quote", frm=SUPPORT, thread_index=ti)
    other = make_message("c", T0 + 2 * HOUR, subject="Quote", thread_index="ff" * 22)
    assert run(other, reply, root) == [Thread("<a>", ids("a", "b")), Thread("<c>", ids("c"))]


def test_thread_index_root_is_the_earliest_message() -> None:
    ti = "aa" * 22
    first = make_message("z", T0, subject="RE: Quote", thread_index=ti)
    second = make_message("a", T0 + HOUR, subject="Quote", thread_index=ti)
    assert run(second, first) == [Thread("<z>", ids("z", "a"))]


def test_gmail_thread_id_joins() -> None:
    a = make_message("a", T0, gm_thrid=1_600_000_000_000_000_001)
    b = make_message("b", T0 + DAY, subject="Re: anything", gm_thrid=1_600_000_000_000_000_001)
    c = make_message("c", T0 + DAY, gm_thrid=1_600_000_000_000_000_002)
    assert run(a, b, c) == [Thread("<a>", ids("a", "b")), Thread("<c>", ids("c"))]


def test_thread_index_and_gm_thrid_do_not_collide_with_message_ids() -> None:
    a = make_message("a", T0, thread_index="7", gm_thrid=7)
    b = make_message("b", T0 + HOUR, subject="Other", frm=BOB, refs="7")
    assert groups(run(a, b)) == {frozenset(ids("a")), frozenset(ids("b"))}


# --- the subject rule ------------------------------------------------------------------------


def test_reply_prefix_joins_by_subject_with_a_shared_customer() -> None:
    root = make_message("a", T0, subject="Cannot log in")
    answer = make_reply(root, "b", T0 + HOUR)
    chaser = make_message("c", T0 + 2 * DAY, subject="RE: Cannot log in")  # no headers
    assert run(chaser, answer, root) == [Thread("<a>", ids("a", "b", "c"))]


def test_subject_without_prefix_starts_a_new_thread() -> None:
    first = make_message("a", T0, subject="Cannot log in")
    again = make_message("b", T0 + 30 * DAY, subject="Cannot log in")
    soon = make_message("c", T0 + HOUR, subject="Cannot log in")
    assert len(run(first, again, soon)) == 3


def test_subject_join_needs_a_shared_external_participant() -> None:
    root = make_message("a", T0, subject="Cannot log in")
    stranger = make_message("b", T0 + DAY, subject="Re: Cannot log in", frm=BOB)
    assert len(run(root, stranger)) == 2


def test_our_own_addresses_do_not_count_as_shared() -> None:
    root = make_message("a", T0, subject="Cannot log in", to=SUPPORT, cc="ops@example.com")
    colleague = make_message(
        "b", T0 + DAY, subject="Re: Cannot log in", frm="sam@example.com", to=SUPPORT
    )
    assert len(run(root, colleague)) == 2


def test_shared_participant_may_be_in_to_or_cc_of_any_message() -> None:
    root = make_message("a", T0, subject="Offer", cc="carol@client.example")
    later = make_message("a2", T0 + HOUR, subject="Another topic", refs="a", to=BOB)
    by_cc = make_message("b", T0 + DAY, subject="Re: Offer", frm=SUPPORT, cc="carol@client.example")
    by_to = make_message("c", T0 + DAY, subject="Re: Offer", frm="dan@client.example", to=BOB)
    assert groups(run(root, later, by_cc, by_to)) == {frozenset(ids("a", "a2", "b", "c"))}


def test_sender_does_not_count_as_a_participant() -> None:
    # Lists and bounce handlers put one Sender on everything; it would join strangers.
    root = make_message("a", T0, subject="Hello", sender="list-bounces@lists.example")
    other = make_message(
        "b", T0 + DAY, subject="Re: Hello", frm=BOB, sender="list-bounces@lists.example"
    )
    assert len(run(root, other)) == 2


@pytest.mark.parametrize(
    ("gap", "joined"),
    [(30 * DAY, True), (30 * DAY + timedelta(seconds=1), False), (45 * DAY, False)],
)
def test_subject_join_window_counts_from_the_threads_last_message(
    gap: timedelta, joined: bool
) -> None:
    root = make_message("a", T0, subject="Cannot log in")
    last = make_reply(root, "b", T0 + 10 * DAY)
    chaser = make_message("c", T0 + 10 * DAY + gap, subject="Re: Cannot log in")
    assert (len(run(root, last, chaser)) == 1) is joined


def test_subject_window_can_be_set() -> None:
    root = make_message("a", T0, subject="Cannot log in")
    chaser = make_message("b", T0 + 3 * DAY, subject="Re: Cannot log in")
    assert len(run(root, chaser, window=2 * DAY)) == 2
    assert len(run(root, chaser, window=3 * DAY)) == 1


def test_subject_join_picks_the_most_recent_eligible_thread() -> None:
    old = make_message("a", T0, subject="Invoice")
    old_answer = make_reply(old, "a1", T0 + 9 * DAY)  # the older thread was active last
    new = make_message("b", T0 + 5 * DAY, subject="Invoice")
    stranger = make_message("s", T0 + 9 * DAY + HOUR, subject="Invoice", frm=BOB)
    chaser = make_message("c", T0 + 10 * DAY, subject="Re: Invoice")
    threads = run(old, old_answer, new, stranger, chaser)
    assert groups(threads) == {
        frozenset(ids("a", "a1", "c")),
        frozenset(ids("b")),
        frozenset(ids("s")),
    }


def test_subject_join_only_looks_at_earlier_messages() -> None:
    chaser = make_message("a", T0, subject="Re: Cannot log in")
    later = make_message("b", T0 + HOUR, subject="Cannot log in")
    assert len(run(chaser, later)) == 2


def test_message_with_references_never_joins_by_subject() -> None:
    root = make_message("a", T0, subject="Common Lisp apps")
    orphan = make_message("b", T0 + DAY, subject="Re: Common Lisp apps", refs="gone")
    assert groups(run(root, orphan)) == {frozenset(ids("a")), frozenset(ids("b"))}


def test_message_already_in_a_thread_does_not_also_join_by_subject() -> None:
    ti = "ab" * 22
    first = make_message("a", T0, subject="Quote", thread_index=ti)
    other = make_message("o", T0 + DAY, subject="Fwd: Price list")
    reply = make_message("r", T0 + 2 * DAY, subject="RE: Price list", thread_index=ti)
    assert groups(run(first, other, reply)) == {frozenset(ids("a", "r")), frozenset(ids("o"))}


def test_empty_base_subject_never_joins() -> None:
    a = make_message("a", T0, subject="Re:")
    b = make_message("b", T0 + HOUR, subject="Re:")
    assert len(run(a, b)) == 2


def test_subject_join_uses_base_subject_folding() -> None:
    root = make_message("a", T0, subject="[ACME-12] Invoice  overdue")
    chaser = make_message("b", T0 + DAY, subject="AW: WG: RE[2]: invoice OVERDUE")
    assert len(run(root, chaser)) == 1


def test_subject_join_chains_through_earlier_subject_joins() -> None:
    root = make_message("a", T0, subject="Invoice")
    first = make_message("b", T0 + 20 * DAY, subject="Re: Invoice")
    second = make_message("c", T0 + 40 * DAY, subject="Re: Invoice")
    assert run(second, first, root) == [Thread("<a>", ids("a", "b", "c"))]


def test_thread_revived_under_another_subject_is_found_again() -> None:
    root = make_message("a", T0, subject="Invoice", frm=CAROL)
    # Too late to join a: opens a thread of its own (and a is set aside as quiet).
    late = make_message("s", T0 + 40 * DAY, subject="Re: Invoice", frm=CAROL)
    # a wakes up under another subject, then carol answers the old one without headers:
    # a is now the most recent thread holding "invoice" and CAROL.
    revived = make_message(
        "r", T0 + 50 * DAY, subject="Updated figures", refs="a", frm=SUPPORT, to=CAROL
    )
    chaser = make_message("c", T0 + 55 * DAY, subject="Re: Invoice", frm=CAROL)
    assert groups(run(root, late, revived, chaser)) == {
        frozenset(ids("a", "r", "c")),
        frozenset(ids("s")),
    }


@pytest.mark.parametrize(
    ("chaser_from", "chaser_subject", "other_wanted"),
    [
        (BOB, "Re: Invoice", None),
        (BOB, "Re: Invoice", "Re: Delivery"),
        (CAROL, "Re: Delivery", None),
        (CAROL, "Re: Delivery", "Re: Invoice"),
    ],
)
def test_subject_join_through_a_merged_thread(
    chaser_from: str, chaser_subject: str, other_wanted: str | None
) -> None:
    a = make_message("a", T0, subject="Invoice", frm=CAROL)
    b = make_message("b", T0 + HOUR, subject="Delivery", frm=BOB)
    bridge = make_message("m", T0 + 2 * HOUR, subject="Both", frm=SUPPORT, refs="a b")
    # The merged thread holds both subjects and both customers: either may join by either.
    chaser = make_message("c", T0 + DAY, subject=chaser_subject, frm=chaser_from)
    messages = [a, b, bridge, chaser]
    expected = {frozenset(ids("a", "b", "m", "c"))}
    if other_wanted:  # someone else may join by the other subject: both threads are tracked
        messages.append(make_message("d", T0 + 2 * DAY, subject=other_wanted, frm=DAN))
        expected.add(frozenset(ids("d")))
    assert groups(run(*messages)) == expected


# --- properties ------------------------------------------------------------------------------

POOL = [f"m{n}" for n in range(14)]
MISSING = ["x1", "x2", "x3"]
SUBJECTS = ["Hello", "Re: Hello", "RE: hello", "Fwd: Hello", "Other", "Re: Other", "Re:"]
ADDRESSES = ["a@x.example", "b@y.example", "c@z.example", "s@example.com", "t@example.com"]


@st.composite
def mailboxes(draw: st.DrawFn) -> list[MessageRecord]:
    """Small mailboxes dense in what threading decides: links, loops, prefixes, 30-day gaps."""
    names = draw(st.lists(st.sampled_from(POOL), min_size=1, max_size=len(POOL), unique=True))
    ids_ = st.sampled_from(POOL + MISSING)
    messages = []
    for name in names:
        when = timedelta(days=draw(st.integers(0, 70)), seconds=draw(st.sampled_from([0, 1, 7])))
        messages.append(
            make_message(
                name,
                T0 + when,
                subject=draw(st.sampled_from(SUBJECTS)),
                frm=draw(st.sampled_from(ADDRESSES)),
                to=draw(st.lists(st.sampled_from(ADDRESSES), max_size=2)),
                cc=draw(st.lists(st.sampled_from(ADDRESSES), max_size=1)),
                refs=draw(st.one_of(st.just([]), st.lists(ids_, max_size=3))),
                in_reply_to=draw(st.one_of(st.just([]), st.just([]), st.lists(ids_, max_size=2))),
                thread_index=draw(st.sampled_from([None] * 5 + ["t1"])),
                gm_thrid=draw(st.sampled_from([None] * 5 + [1])),
            )
        )
    return messages


@st.composite
def subject_mailboxes(draw: st.DrawFn) -> list[MessageRecord]:
    """Mostly header-less mail on two subjects: the subject rule's merges and windows."""
    names = draw(st.lists(st.sampled_from(POOL), min_size=2, max_size=len(POOL), unique=True))
    customers = ["a@x.example", "b@y.example", "c@z.example"]
    messages = []
    for name in names:
        messages.append(
            make_message(
                name,
                T0 + timedelta(days=draw(st.sampled_from([0, 10, 20, 30, 40, 50, 60]))),
                subject=draw(st.sampled_from(["Hello", "Re: Hello", "Other", "Re: Other"])),
                frm=draw(st.sampled_from([*customers, SUPPORT])),
                to=draw(st.lists(st.sampled_from(customers), max_size=1)),
                refs=draw(
                    st.one_of(*[st.just([])] * 4, st.lists(st.sampled_from(POOL), max_size=2))
                ),
            )
        )
    return messages


def reference_threads(
    messages: list[MessageRecord],
    external: Callable[[str], bool],
    window: timedelta = 30 * DAY,
) -> list[Thread]:
    """What product.md describes, computed the slow, obvious way (distinct Message-IDs)."""
    ordered = sorted(messages, key=lambda m: (m.time, m.message_id))
    link: dict[str, str] = {}

    def find(key: str) -> str:
        while link.get(key, key) != key:
            key = link[key]
        return key

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            link[max(ra, rb)] = min(ra, rb)

    def externals(m: MessageRecord) -> set[str]:
        return {a for a in (m.from_addr, *m.to_addrs, *m.cc_addrs) if a and external(a)}

    def usable(m: MessageRecord, refs: tuple[str, ...]) -> list[str]:
        return [r for r in refs if r and r != m.message_id]

    seen: list[MessageRecord] = []
    for m in ordered:
        refs = usable(m, (*m.references, *m.in_reply_to))
        for ref in refs:
            union("id " + m.message_id, "id " + ref)
        if m.thread_index_root:
            union("id " + m.message_id, "ti " + m.thread_index_root)
        if m.gm_thrid is not None:
            union("id " + m.message_id, f"gm {m.gm_thrid}")
        mine = find("id " + m.message_id)
        base = base_subject(m.subject)
        alone = all(find("id " + x.message_id) != mine for x in seen)
        if not refs and has_reply_prefix(m.subject) and base and alone:
            best: tuple[datetime, str, str] | None = None
            for root in {find("id " + x.message_id) for x in seen}:
                members = [x for x in seen if find("id " + x.message_id) == root]
                last = members[-1]
                if last.time < m.time - window:
                    continue
                if base not in {base_subject(x.subject) for x in members}:
                    continue
                if not externals(m) & set().union(*(externals(x) for x in members)):
                    continue
                if best is None or (last.time, last.message_id) > best[:2]:
                    best = (last.time, last.message_id, root)
            if best is not None:
                union("id " + m.message_id, best[2])
        seen.append(m)

    # JWZ parents: a message's own headers first, then References chains in message-time order.
    up: dict[str, str] = {}
    for m in ordered:
        refs = usable(m, m.references) or usable(m, m.in_reply_to)[:1]
        if refs:
            up[m.message_id] = refs[-1]

    def above(candidate: str, start: str) -> bool:
        x: str | None = start
        visited: set[str] = set()
        while x is not None and x not in visited:
            if x == candidate:
                return True
            visited.add(x)
            x = up.get(x)
        return False

    for m in ordered:
        chain = usable(m, m.references)
        for parent, child in pairwise(chain):
            if child not in up and not above(child, parent):
                up[child] = parent

    rank = {m.message_id: n for n, m in enumerate(ordered)}
    result: dict[str, list[str]] = {}
    for m in ordered:
        result.setdefault(find("id " + m.message_id), []).append(m.message_id)
    threads = []
    for names in result.values():
        path = [names[0]]
        while path[-1] in up and up[path[-1]] not in path:
            path.append(up[path[-1]])
        if path[-1] in up:  # a loop: its earliest message stands as the root
            loop = path[path.index(up[path[-1]]) :]
            root = min((n for n in loop if n in rank), key=rank.__getitem__)
        else:
            root = path[-1]
        threads.append(Thread(root, tuple(names)))
    return threads


@settings(max_examples=300, deadline=None)
@given(mailboxes(), st.randoms(use_true_random=False))
def test_same_messages_in_any_order_give_the_same_threads(
    messages: list[MessageRecord], rnd: random.Random
) -> None:
    shuffled = list(messages)
    rnd.shuffle(shuffled)
    assert run(*shuffled) == run(*messages)


@settings(max_examples=400, deadline=None)
@given(mailboxes())
def test_threads_match_the_obvious_reference(messages: list[MessageRecord]) -> None:
    assert run(*messages) == reference_threads(messages, is_external)


@settings(max_examples=400, deadline=None)
@given(subject_mailboxes())
def test_subject_rule_matches_the_obvious_reference(messages: list[MessageRecord]) -> None:
    assert run(*messages) == reference_threads(messages, is_external)


@settings(max_examples=200, deadline=None)
@given(mailboxes())
def test_threads_partition_the_messages_in_time_order(messages: list[MessageRecord]) -> None:
    threads = run(*messages)
    by_id = {m.message_id: m for m in messages}
    listed = [i for t in threads for i in t.message_ids]
    assert sorted(listed) == sorted(by_id)
    for thread in threads:
        times = [(by_id[i].time, i) for i in thread.message_ids]
        assert times == sorted(times)
        named = {
            r for i in thread.message_ids for r in (*by_id[i].references, *by_id[i].in_reply_to)
        }
        assert thread.thread_id in set(thread.message_ids) | named
    firsts = [(by_id[t.message_ids[0]].time, t.message_ids[0]) for t in threads]
    assert firsts == sorted(firsts)


@settings(max_examples=200, deadline=None)
@given(mailboxes(), st.data())
def test_any_set_of_whole_threads_threads_the_same_on_its_own(
    messages: list[MessageRecord], data: st.DataObject
) -> None:
    threads = run(*messages)
    chosen = data.draw(st.lists(st.sampled_from(threads), unique=True))
    wanted = {i for t in chosen for i in t.message_ids}
    subset = [m for m in messages if m.message_id in wanted]
    assert run(*subset) == [t for t in threads if t in chosen]


@settings(max_examples=100, deadline=None)
@given(mailboxes())
def test_duplicates_are_one_message(messages: list[MessageRecord]) -> None:
    assert run(*messages, *messages) == run(*messages)


def test_a_long_thread_is_fast() -> None:
    # 20,000 replies in one chain (References capped as clients do) and 20,000 lone "Re:"
    # messages on one subject: anything quadratic would take minutes here.
    root = make_message("m0", T0, subject="Long")
    messages = [root]
    for n in range(1, 20_000):
        chain = [f"m{k}" for k in range(max(0, n - 10), n)]
        messages.append(
            make_message(f"m{n}", T0 + n * timedelta(minutes=1), subject="Re: Long", refs=chain)
        )
    # And many unanswered "Re:" messages on one subject from different customers.
    messages += [
        make_message(
            f"s{n}", T0 + n * timedelta(minutes=1), subject="Re: Hi", frm=f"c{n}@x.example"
        )
        for n in range(20_000)
    ]
    threads = run(*messages)
    assert len(threads) == 20_001
    assert threads[0] == Thread("<m0>", tuple(f"<m{n}>" for n in range(20_000)))


def test_base_subject_of_a_subject_made_of_prefixes_in_tags_is_stable() -> None:
    folded = base_subject("Re:[Fwd:]")
    assert base_subject(folded) == folded
