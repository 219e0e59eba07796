"""Issue 3's scenarios: a few days of traffic each, the violations expected at several nows.

T0 is Monday 2026-11-02 09:00 UTC; London is on GMT then, so its 09:00-17:30 is UTC's.
The Client account: owner priya, backup sam, escalate_to lead, SLA 4h (warning at 3h).
"""

from __future__ import annotations

from datetime import timedelta as td

import pytest

from monitor.records import Automatic
from tests.builders import T0, make_message, make_reply
from tests.rule_scenarios import (
    ADMIN,
    CUSTOMER,
    LEAD,
    PRIYA,
    SAM,
    SUPPORT,
    Scenario,
    expect,
)

H = td(hours=1)
S = td(seconds=1)
M = td(minutes=1)
D = td(days=1)
OWNERS = (PRIYA, SAM)


def unack(about: str, severity: str, status: str = "open", **fields: object) -> dict[str, object]:
    return expect("unacknowledged", about, severity, status, **fields)


def conflict(about: str, status: str = "open", **fields: object) -> dict[str, object]:
    return expect("conflicting_replies", about, "breach", status, due_at=None, **fields)


# -- business time ------------------------------------------------------------------------------

fri = make_message("fri", "2026-11-06T18:00Z")
dst_spring = make_message("spring", "2026-03-27T16:00Z")  # Friday, London still on GMT
dst_autumn = make_message("autumn", "2026-10-23T15:00Z")  # Friday 16:00 BST
sat_spring = make_message("sat-spring", "2026-03-28T12:00Z")
sat_autumn = make_message("sat-autumn", "2026-10-24T12:00Z")
xmas = make_message("xmas", "2026-12-24T16:00Z")

BUSINESS_TIME = [
    Scenario(
        "friday evening message is due monday",
        (fri, make_reply(fri, "fri-r", "2026-11-09T14:00Z", frm=PRIYA)),
        at=(
            ("2026-11-07T12:00Z", ()),
            ("2026-11-09T11:59Z", ()),
            (
                "2026-11-09T12:00Z",
                (
                    unack(
                        "fri",
                        "warning",
                        opened_at="2026-11-09T12:00Z",
                        due_at="2026-11-09T13:00Z",
                        resolved_at=None,
                        notify=OWNERS,
                        senders=(),
                        chasers=0,
                        message_ids="fri",
                        owner=PRIYA,
                        backup=SAM,
                        account="Client",
                        thread_id="<fri>",
                        subject="Cannot log in",
                    ),
                ),
            ),
            ("2026-11-09T13:00Z", (unack("fri", "breach", due_at="2026-11-09T13:00Z"),)),
            (
                "2026-11-09T15:00Z",
                (
                    unack(
                        "fri",
                        "breach",
                        "resolved",
                        opened_at="2026-11-09T12:00Z",
                        resolved_at="2026-11-09T14:00Z",
                        senders=(PRIYA,),
                    ),
                ),
            ),
        ),
    ),
    Scenario(
        "london spring forward: monday opens at 08:00 UTC",
        (dst_spring,),
        at=(
            ("2026-03-30T09:29Z", ()),
            (
                "2026-03-30T09:30Z",
                (
                    unack(
                        "spring",
                        "warning",
                        opened_at="2026-03-30T09:30Z",
                        due_at="2026-03-30T10:30Z",
                    ),
                ),
            ),
            ("2026-03-30T10:30Z", (unack("spring", "breach"),)),
        ),
    ),
    Scenario(
        "london fall back: friday closes at 16:30 UTC, monday opens at 09:00 UTC",
        (dst_autumn,),
        at=(
            ("2026-10-26T10:29Z", ()),
            (
                "2026-10-26T10:30Z",
                (unack("autumn", "warning", due_at="2026-10-26T11:30Z"),),
            ),
        ),
    ),
    Scenario(
        "a 00:00-24:00 sunday has 23 open hours in spring",
        (sat_spring,),
        account='calendar = "sundays"\nsla = "23h"\n',
        at=(
            (
                "2026-03-29T22:59Z",
                (
                    unack(
                        "sat-spring",
                        "warning",
                        opened_at="2026-03-29T17:15Z",
                        due_at="2026-03-29T23:00Z",
                    ),
                ),
            ),
            ("2026-03-29T23:00Z", (unack("sat-spring", "breach"),)),
        ),
    ),
    Scenario(
        "a 00:00-24:00 sunday has 25 open hours in autumn",
        (sat_autumn,),
        account='calendar = "sundays"\nsla = "25h"\n',
        at=(
            (
                "2026-10-25T23:59Z",
                (
                    unack(
                        "sat-autumn",
                        "warning",
                        opened_at="2026-10-25T17:45Z",
                        due_at="2026-10-26T00:00Z",
                    ),
                ),
            ),
            ("2026-10-26T00:00Z", (unack("sat-autumn", "breach"),)),
        ),
    ),
    Scenario(
        "christmas day and the weekend do not count",
        (xmas,),
        at=(
            ("2026-12-25T12:00Z", ()),
            ("2026-12-28T10:29Z", ()),
            (
                "2026-12-28T10:30Z",
                (unack("xmas", "warning", due_at="2026-12-28T11:30Z"),),
            ),
        ),
    ),
]

# -- who answered ---------------------------------------------------------------------------------

c1 = make_message("c1", T0)

WHO_ANSWERED = [
    Scenario(
        "a reply from the shared address with Sender is the sender's acknowledgement",
        (c1, make_reply(c1, "r1", T0 + 5 * H, sender=PRIYA)),
        at=(
            ("2026-11-02T13:00Z", (unack("c1", "breach", senders=()),)),
            (
                "2026-11-02T15:00Z",
                (unack("c1", "breach", "resolved", resolved_at=T0 + 5 * H, senders=(PRIYA,)),),
            ),
        ),
    ),
    Scenario(
        "two people answering as support@ (Sender tells them apart) conflict",
        (
            c1,
            make_reply(c1, "r1", T0 + H, sender=PRIYA),
            make_reply(c1, "r2", T0 + H + 5 * M, sender=SAM),
        ),
        at=(
            (
                T0 + 2 * H,
                (
                    conflict(
                        "r1",
                        opened_at=T0 + H + 5 * M,
                        senders=(PRIYA, SAM),
                        message_ids="r1 r2",
                    ),
                ),
            ),
        ),
    ),
    Scenario(
        "one person answering as support@ and as herself is one sender",
        (
            c1,
            make_reply(c1, "r1", T0 + H, sender=PRIYA),
            make_reply(c1, "r2", T0 + H + 5 * M, frm=PRIYA),
        ),
        at=((T0 + 2 * H, ()),),
    ),
    Scenario(
        "a forward to a colleague is no acknowledgement",
        (c1, make_reply(c1, "fw", T0 + H, frm=PRIYA, to=SAM)),
        at=(
            (T0 + 3 * H - M, ()),
            (T0 + 3 * H, (unack("c1", "warning", senders=()),)),
            (T0 + 4 * H, (unack("c1", "breach", senders=(), chasers=0),)),
        ),
    ),
    Scenario(
        "subject-only Outlook replies (no references) acknowledge and start waits",
        (
            c1,
            make_message("r1", T0 + 5 * H, subject="RE: Cannot log in", frm=PRIYA, to=CUSTOMER),
            make_message("c2", T0 + 6 * H, subject="RE: Cannot log in"),
        ),
        at=(
            (
                T0 + 7 * H,
                (unack("c1", "breach", "resolved", resolved_at=T0 + 5 * H, senders=(PRIYA,)),),
            ),
            (
                "2026-11-03T09:30Z",
                (
                    unack("c1", "breach", "resolved"),
                    unack(
                        "c2",
                        "warning",
                        opened_at="2026-11-03T09:30Z",
                        due_at="2026-11-03T10:30Z",
                        message_ids="c2",
                    ),
                ),
            ),
        ),
    ),
    Scenario(
        "a customer chasing twice is one violation with two chasers",
        (
            c1,
            make_message("c2", T0 + H, refs="c1"),
            make_message("c3", T0 + 2 * H + 30 * M, refs="c1 c2"),
            make_reply(c1, "r1", T0 + 5 * H, frm=PRIYA),
        ),
        at=(
            (T0 + 2 * H + 59 * M, ()),
            (T0 + 3 * H, (unack("c1", "warning", chasers=2, message_ids="c1 c2 c3"),)),
            (T0 + 4 * H, (unack("c1", "breach", chasers=2),)),
            (
                T0 + 6 * H,
                (
                    unack(
                        "c1",
                        "breach",
                        "resolved",
                        chasers=2,
                        message_ids="c1 c2 c3",
                        resolved_at=T0 + 5 * H,
                    ),
                ),
            ),
        ),
    ),
    Scenario(
        "\\Answered on the customer's message: never breaches",
        (c1,),
        answered=("c1",),
        at=((T0 + 4 * H, ()), (T0 + 30 * D, ())),
    ),
    Scenario(
        "\\Answered on a chaser ends the wait no earlier than the chaser",
        (c1, make_message("c2", T0 + 5 * H, refs="c1")),
        answered=("c2",),
        at=(
            (T0 + 4 * H + 30 * M, (unack("c1", "breach", chasers=0),)),
            (
                T0 + 6 * H,
                (
                    unack(
                        "c1",
                        "breach",
                        "resolved",
                        resolved_at=T0 + 5 * H,
                        chasers=1,
                        senders=(),
                        message_ids="c1 c2",
                    ),
                ),
            ),
        ),
    ),
    Scenario(
        "a thread of automatic mail only raises nothing",
        (
            make_message("auto", T0, automatic=Automatic.AUTO_REPLY),
            make_message("list", T0 + H, frm="news@list.example", automatic=Automatic.LIST),
            make_message(
                "dsn", T0 + 2 * H, frm="mailer-daemon@client.example", automatic=Automatic.BOUNCE
            ),
        ),
        at=((T0 + 3 * D, ()),),
    ),
]


def absent_until(until: str) -> str:
    """An [[absences]] entry: priya away from Monday 2026-11-02 to `until`, inclusive."""
    return f'[[absences]]\nwho = "{PRIYA}"\nfrom = "2026-11-02"\nuntil = "{until}"\n'


# -- out of office and absences ----------------------------------------------------------------

OUT_OF_OFFICE = [
    Scenario(
        "the customer's out-of-office is no new wait",
        (
            c1,
            make_reply(c1, "r1", T0 + H, frm=PRIYA),
            make_message(
                "ooo", T0 + H + M, frm=CUSTOMER, to=PRIYA, automatic=Automatic.OUT_OF_OFFICE
            ),
        ),
        at=((T0 + 2 * D, ()),),
    ),
    Scenario(
        "owner's out-of-office: the backup answering alongside her is no conflict",
        (
            c1,
            make_reply(c1, "ooo", T0 + M, frm=PRIYA, automatic=Automatic.OUT_OF_OFFICE),
            make_reply(c1, "s1", T0 + H, frm=SAM),
            make_reply(c1, "p1", T0 + H + 10 * M, frm=PRIYA),
        ),
        at=((T0 + 2 * H, ()),),
    ),
    Scenario(
        "owner's out-of-office: the backup is warned first",
        (c1, make_reply(c1, "ooo", T0 + M, frm=PRIYA, automatic=Automatic.OUT_OF_OFFICE)),
        at=((T0 + 4 * H, (unack("c1", "breach", notify=(SAM, PRIYA), owner=PRIYA),)),),
    ),
    Scenario(
        "an out-of-office seen in another thread marks the owner absent too",
        (
            c1,
            make_reply(c1, "s1", T0 + H, frm=SAM),
            make_reply(c1, "p1", T0 + H + 10 * M, frm=PRIYA),
        ),
        out_of_office={PRIYA: ("2026-10-30T10:00Z",)},
        at=((T0 + 2 * H, ()),),
    ),
    Scenario(
        "an out-of-office older than absence_window no longer excuses the owner",
        (
            c1,
            make_reply(c1, "s1", T0 + H, frm=SAM),
            make_reply(c1, "p1", T0 + H + 10 * M, frm=PRIYA),
        ),
        out_of_office={PRIYA: ("2026-10-26T09:00Z",)},
        at=((T0 + 2 * H, (conflict("s1", senders=(SAM, PRIYA), opened_at=T0 + 70 * M),)),),
    ),
    Scenario(
        "backup during an [[absences]] entry; both count again afterwards",
        (
            c1,
            make_reply(c1, "p1", T0 + H, frm=PRIYA),
            make_reply(c1, "s1", T0 + H + 5 * M, frm=SAM),
            make_message("c2", "2026-11-04T09:00Z", refs="c1"),
            make_message("p2", "2026-11-04T10:00Z", frm=PRIYA, to=CUSTOMER, refs="c1 c2"),
            make_message("s2", "2026-11-04T10:05Z", frm=SAM, to=CUSTOMER, refs="c1 c2"),
        ),
        config=absent_until("2026-11-03"),
        at=(
            ("2026-11-03T23:00Z", ()),
            (
                "2026-11-04T10:05Z",
                (
                    conflict(
                        "p2",
                        opened_at="2026-11-04T10:05Z",
                        senders=(PRIYA, SAM),
                        message_ids="p2 s2",
                        notify=(PRIYA, SAM),
                    ),
                ),
            ),
        ),
    ),
    Scenario(
        "during an [[absences]] entry the backup is warned first",
        (c1,),
        config=absent_until("2026-11-02"),
        at=(
            (T0 + 4 * H, (unack("c1", "breach", notify=(SAM, PRIYA)),)),
            ("2026-11-03T00:00Z", (unack("c1", "breach", notify=(PRIYA, SAM)),)),
        ),
    ),
]

# -- conflicting replies ------------------------------------------------------------------------

CONFLICTS = [
    Scenario(
        "two agents answer within minutes; a later turn answered by one resolves it",
        (
            c1,
            make_reply(c1, "p1", T0 + H, frm=PRIYA),
            make_reply(c1, "s1", T0 + H + 5 * M, frm=SAM),
            make_message("c2", T0 + 2 * H, refs="c1 s1"),
            make_message("p2", T0 + 3 * H, frm=PRIYA, to=CUSTOMER, refs="c1 s1 c2"),
        ),
        at=(
            (T0 + H + 4 * M, ()),
            (
                T0 + H + 5 * M,
                (
                    conflict(
                        "p1",
                        opened_at=T0 + H + 5 * M,
                        resolved_at=None,
                        senders=(PRIYA, SAM),
                        message_ids="p1 s1",
                        notify=OWNERS,
                        chasers=0,
                    ),
                ),
            ),
            (T0 + 2 * H + 30 * M, (conflict("p1"),)),
            (T0 + 4 * H, (conflict("p1", "resolved", resolved_at=T0 + 3 * H),)),
        ),
    ),
    Scenario(
        "owner then backup days apart, customer wrote between: outside the window",
        (
            c1,
            make_reply(c1, "p1", "2026-11-02T10:00Z", frm=PRIYA),
            make_message("c2", "2026-11-03T09:00Z", refs="c1 p1"),
            make_message("s1", "2026-11-04T11:00Z", frm=SAM, to=CUSTOMER, refs="c1 p1 c2"),
        ),
        at=(
            (
                "2026-11-04T12:00Z",
                (
                    unack(
                        "c2",
                        "breach",
                        "resolved",
                        opened_at="2026-11-03T12:00Z",
                        resolved_at="2026-11-04T11:00Z",
                        senders=(SAM,),
                    ),
                ),
            ),
        ),
    ),
    Scenario(
        "owner then backup in the next turn within the window",
        (
            c1,
            make_reply(c1, "p1", "2026-11-02T10:00Z", frm=PRIYA),
            make_message("c2", "2026-11-02T15:00Z", refs="c1 p1"),
            make_message("s1", "2026-11-02T16:00Z", frm=SAM, to=CUSTOMER, refs="c1 p1 c2"),
        ),
        at=(
            (
                "2026-11-02T17:00Z",
                (
                    conflict(
                        "s1",
                        opened_at="2026-11-02T16:00Z",
                        senders=(PRIYA, SAM),
                        message_ids="p1 s1",
                    ),
                ),
            ),
        ),
    ),
    Scenario(
        "owner then backup days apart in the same turn",
        (
            c1,
            make_reply(c1, "p1", "2026-11-02T10:00Z", frm=PRIYA),
            make_reply(c1, "s1", "2026-11-05T10:00Z", frm=SAM),
        ),
        at=(
            ("2026-11-05T09:00Z", ()),
            ("2026-11-05T11:00Z", (conflict("p1", opened_at="2026-11-05T10:00Z"),)),
            (
                "2026-11-08T10:00Z",
                (conflict("p1", "resolved", resolved_at="2026-11-08T10:00Z"),),
            ),
        ),
    ),
    Scenario(
        "handoff overlap: old and new owner count as one; afterwards they conflict",
        (
            c1,
            make_reply(c1, "o1", T0 + H, frm="old@example.com"),
            make_reply(c1, "p1", T0 + H + 10 * M, frm=PRIYA),
            make_message("c2", "2026-11-23T09:00Z", refs="c1 p1"),
            make_message("o2", "2026-11-23T10:00Z", frm="old@example.com", to=CUSTOMER),
            make_message("p2", "2026-11-23T10:10Z", frm=PRIYA, to=CUSTOMER),
        ),
        config=(
            '[[handoffs]]\naccount = "Client"\nfrom = "old@example.com"\n'
            'to = "priya@example.com"\non = "2026-11-02"\noverlap = "14d"\n'
        ),
        at=(
            (T0 + 2 * H, ()),
            (
                "2026-11-23T11:00Z",
                (
                    conflict(
                        "o2",
                        opened_at="2026-11-23T10:10Z",
                        senders=("old@example.com", PRIYA),
                        message_ids="o2 p2",
                    ),
                ),
            ),
        ),
    ),
    Scenario(
        "handoff overlap does not excuse a third person",
        (
            c1,
            make_reply(c1, "o1", T0 + H, frm="old@example.com"),
            make_reply(c1, "s1", T0 + H + 10 * M, frm=SAM),
        ),
        config=(
            '[[handoffs]]\naccount = "Client"\nfrom = "old@example.com"\n'
            'to = "priya@example.com"\non = "2026-11-02"\noverlap = "14d"\n'
        ),
        at=((T0 + 2 * H, (conflict("o1", senders=("old@example.com", SAM)),)),),
    ),
]

# -- escalation ---------------------------------------------------------------------------------

ESCALATION = [
    Scenario(
        "an unanswered breach reaches escalate_to escalate_after past its deadline",
        (c1,),
        config='[digests]\nescalate_after = "4h"\n',
        at=(
            (T0 + 4 * H, (unack("c1", "breach", notify=OWNERS),)),
            (T0 + 8 * H - M, (unack("c1", "breach", notify=OWNERS),)),
            (T0 + 8 * H, (unack("c1", "breach", notify=(PRIYA, SAM, LEAD)),)),
        ),
    ),
    Scenario(
        "a conflict escalates escalate_after past opening; resolved ones do not",
        (
            c1,
            make_reply(c1, "p1", T0 + H, frm=PRIYA),
            make_reply(c1, "s1", T0 + H + 5 * M, frm=SAM),
        ),
        config='[digests]\nescalate_after = "4h"\n',
        at=(
            (T0 + 5 * H + 4 * M, (conflict("p1", notify=OWNERS),)),
            (T0 + 5 * H + 5 * M, (conflict("p1", notify=(PRIYA, SAM, LEAD)),)),
            (T0 + H + 5 * M + 3 * D, (conflict("p1", "resolved", notify=OWNERS),)),
        ),
    ),
    Scenario(
        "no escalate_after: never escalated",
        (c1,),
        at=((T0 + 10 * D, (unack("c1", "breach", notify=OWNERS),)),),
    ),
]

# -- ownership ----------------------------------------------------------------------------------

stranger = make_message("x1", T0, frm="Bob@Unknown.example")
orphan = make_message("o1", T0, frm="carol@orphan.example")

OWNERSHIP = [
    Scenario(
        "no account: unowned for the admins, still checked with the default SLA",
        (stranger,),
        at=(
            (
                T0 + H,
                (
                    expect(
                        "unowned",
                        "x1",
                        "warning",
                        account=None,
                        owner=None,
                        backup=None,
                        notify=(ADMIN,),
                        opened_at=T0,
                        due_at=None,
                        message_ids="x1",
                    ),
                ),
            ),
            (
                T0 + 3 * H,
                (
                    expect("unowned", "x1", "warning"),
                    unack("x1", "warning", notify=(ADMIN,), owner=None, account=None),
                ),
            ),
        ),
    ),
    Scenario(
        "an account without an owner: unowned; its backup and the admins hear of breaches",
        (orphan,),
        config=(
            '[[accounts]]\nname = "Orphan"\ndomains = ["orphan.example"]\n'
            'backup = "sam@example.com"\n'
        ),
        at=(
            (
                T0 + 4 * H,
                (
                    expect(
                        "unowned", "o1", "warning", account="Orphan", backup=SAM, notify=(ADMIN,)
                    ),
                    unack("o1", "breach", account="Orphan", notify=(SAM, ADMIN)),
                ),
            ),
        ),
    ),
    Scenario(
        "an account nobody owns is checked with the default SLA and calendar, not its own",
        (orphan,),  # Monday 09:00 London: due 13:00 by the default 4h, not 2h in New York
        config=(
            '[[accounts]]\nname = "Orphan"\ndomains = ["orphan.example"]\n'
            'sla = "2h"\ncalendar = "new_york"\n'
        ),
        at=(
            (T0 + 3 * H - S, (expect("unowned", "o1", "warning", account="Orphan"),)),
            (
                T0 + 4 * H,
                (
                    expect("unowned", "o1", "warning", account="Orphan"),
                    unack(
                        "o1",
                        "breach",
                        account="Orphan",
                        owner=None,
                        opened_at=T0 + 3 * H,
                        due_at=T0 + 4 * H,
                        notify=(ADMIN,),
                    ),
                ),
            ),
        ),
    ),
    Scenario(
        "mail we started: no inbound, nothing to own or acknowledge",
        (make_message("out", T0, frm=PRIYA, to="prospect@elsewhere.example"),),
        at=((T0 + 5 * D, ()),),
    ),
]

ALL = BUSINESS_TIME + WHO_ANSWERED + OUT_OF_OFFICE + CONFLICTS + ESCALATION + OWNERSHIP


@pytest.mark.parametrize("scenario", ALL, ids=[s.name for s in ALL])
def test_scenario(scenario: Scenario) -> None:
    scenario.run()


def test_scenario_names_are_unique() -> None:
    assert len({s.name for s in ALL}) == len(ALL)


def test_support_is_the_default_replier() -> None:
    # make_reply answers from support@ unless told otherwise: a shared address without Sender
    # is one sender of its own.
    assert make_reply(c1, "r", T0).from_addr == SUPPORT
