"""`violations`, `explain` and `backtest` end to end: Dovecot -> `pocwatch sync` -> the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from monitor.display import format_time
from monitor.evaluation import LAST_NOW
from monitor.storage.db import open_database
from monitor.storage.models import ViolationEventRow
from monitor.storage.violations import ViolationStore
from tests.servers import MailUser
from tests.test_cli import pocwatch
from tests.test_sync import customer_mail, write_config
from tests.traffic import render

H = timedelta(hours=1)
M = timedelta(minutes=1)
D = timedelta(days=1)
# Five days back at 09:00 UTC: inside the 14-day backfill, in the past at every instant used.
B = (datetime.now(UTC) - 5 * D).replace(hour=9, minute=0, second=0, microsecond=0)
UTC_ZONE = ZoneInfo("UTC")

ACCOUNTS = """
[rules.unacknowledged]
sla = "4h"
warn_at = 0.75

[[accounts]]
name = "Acme"
domains = ["acme.com"]
owner = "priya@example.com"
backup = "sam@example.com"

[[accounts]]
name = "Globex"
domains = ["globex.example"]
owner = "lee@example.com"
"""


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Seed = tuple[str, bytes, datetime]  # folder, message, INTERNALDATE


def question(n: int, frm: str, when: datetime) -> Seed:
    return "INBOX", customer_mail(n, when, frm=frm), when


def reply(frm: str, to: str, n: int, tag: str, when: datetime) -> Seed:
    parent = f"<q{n}@client.example>"
    raw = render(
        frm=frm,
        to=to,
        subject=f"Re: Question {n}",
        date=when,
        message_id=f"<{tag}@example.com>",
        in_reply_to=parent,
        references=parent,
        body="Answer.",
    )
    return "Sent", raw, when


def seed_and_sync(imap_user: MailUser, tmp_path: Path, database_url: str) -> Path:
    """Three conversations, no calendar (business time is wall time), then a real sync.

    q1 (Acme): Priya and Sam both answer within minutes -> a conflict from B+30m, 3 days.
    q2 (Acme): answered 5 h after it arrived -> warning at +3h, breach at +4h, resolved at +5h.
    q3 (nobody's): never answered -> unowned from B+2d, unacknowledged from B+2d+3h.
    """
    priya, sam = "priya@example.com", "sam@example.com"
    mails = [
        question(1, "Bob <bob@acme.com>", B),
        reply(priya, "bob@acme.com", 1, "p1", B + 20 * M),
        reply(sam, "bob@acme.com", 1, "s1", B + 30 * M),
        question(2, "Carol <carol@acme.com>", B + D),
        reply(priya, "carol@acme.com", 2, "p2", B + D + 5 * H),
        question(3, "Eve <eve@nowhere.example>", B + 2 * D),
    ]
    for folder, raw, when in mails:
        imap_user.append(folder, raw, internal_date=when)
    path = write_config(tmp_path, database_url, [imap_user], extra='admins = ["ops@example.com"]')
    path.write_text(path.read_text() + ACCOUNTS)
    done = pocwatch("sync", config=path)
    assert done.returncode == 0, done.stderr
    assert "6 new" in done.stdout
    assert "violation(s) open" in done.stdout  # sync evaluates incrementally into the store
    return path


def violations(path: Path, *args: str) -> list[dict[str, Any]]:
    done = pocwatch("violations", "--format", "json", *args, config=path)
    assert done.returncode == 0, done.stderr
    found: list[dict[str, Any]] = json.loads(done.stdout)
    return found


def brief(found: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    return [(v["rule"], v["thread_id"], v["severity"], v["status"]) for v in found]


Q1, Q2, Q3 = "<q1@client.example>", "<q2@client.example>", "<q3@client.example>"


def test_violations_as_of_several_instants(
    imap_user: MailUser, tmp_path: Path, database_url: str
) -> None:
    path = seed_and_sync(imap_user, tmp_path, database_url)

    # A conflict: two of us answered Bob within ten minutes.
    [conflict] = violations(path, "--now", iso(B + H))
    assert conflict == {
        "rule": "conflicting_replies",
        "severity": "breach",
        "status": "open",
        "account": "Acme",
        "thread_id": Q1,
        "subject": "Question 1",
        "owner": "priya@example.com",
        "backup": "sam@example.com",
        "notify": ["priya@example.com", "sam@example.com"],
        "opened_at": iso(B + 30 * M),
        "due_at": None,
        "resolved_at": None,
        "senders": ["priya@example.com", "sam@example.com"],
        "chasers": 0,
        "message_ids": ["<p1@example.com>", "<s1@example.com>"],
    }
    # Before the answers were sent, nothing (later messages are not taken into account).
    assert violations(path, "--now", iso(B + 10 * M)) == []

    # A warning on q2, 3h30m in; the reply that comes later is not known yet.
    found = violations(path, "--now", iso(B + D + 3 * H + 30 * M))
    assert brief(found) == [
        ("conflicting_replies", Q1, "breach", "open"),
        ("unacknowledged", Q2, "warning", "open"),
    ]
    assert found[1]["opened_at"] == iso(B + D + 3 * H)
    assert found[1]["due_at"] == iso(B + D + 4 * H)
    assert found[1]["resolved_at"] is None and found[1]["senders"] == []

    # A breach, 4h30m in; --now with an offset or without a zone means the same instant.
    when = B + D + 4 * H + 30 * M
    breach = violations(path, "--now", iso(when))
    assert brief(breach)[1] == ("unacknowledged", Q2, "breach", "open")
    assert violations(path, "--now", when.astimezone(ZoneInfo("Asia/Kolkata")).isoformat()) == (
        breach
    )
    assert violations(path, "--now", when.strftime("%Y-%m-%dT%H:%M:%S")) == breach

    # Answered at +5h: no longer open; --all shows it resolved, as a breach, with its cause.
    later = B + D + 6 * H
    assert brief(violations(path, "--now", iso(later))) == [
        ("conflicting_replies", Q1, "breach", "open")
    ]
    everything = violations(path, "--now", iso(later), "--all")
    assert brief(everything) == [
        ("conflicting_replies", Q1, "breach", "open"),
        ("unacknowledged", Q2, "breach", "resolved"),
    ]
    assert everything[1]["resolved_at"] == iso(B + D + 5 * H)
    assert everything[1]["senders"] == ["priya@example.com"]

    # q3 matches no account: unowned from its arrival, then a warning; the conflict is open.
    end = B + 2 * D + 3 * H + 30 * M
    everything = violations(path, "--now", iso(end), "--all")
    assert brief(everything) == [
        ("conflicting_replies", Q1, "breach", "open"),
        ("unacknowledged", Q2, "breach", "resolved"),
        ("unowned", Q3, "warning", "open"),
        ("unacknowledged", Q3, "warning", "open"),
    ]
    assert [v["opened_at"] for v in everything] == sorted(v["opened_at"] for v in everything)
    unowned = everything[2]
    assert (unowned["account"], unowned["owner"], unowned["notify"]) == (
        None,
        None,
        ["ops@example.com"],
    )

    # Three days (open_for) after it opened, the conflict resolves by itself.
    [conflict] = violations(
        path, "--now", iso(B + 3 * D + H), "--all", "--rule", "conflicting_replies"
    )
    assert conflict["status"] == "resolved"
    assert conflict["resolved_at"] == iso(B + 3 * D + 30 * M)


def test_filters_table_and_bad_arguments(imap_user: MailUser, tmp_path: Path) -> None:
    path = seed_and_sync(imap_user, tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    end = iso(B + 2 * D + 3 * H + 30 * M)
    only = violations(path, "--now", end, "--all", "--rule", "unacknowledged")
    assert brief(only) == [
        ("unacknowledged", Q2, "breach", "resolved"),
        ("unacknowledged", Q3, "warning", "open"),
    ]
    acme = violations(path, "--now", end, "--all", "--account", "Acme")
    assert {v["thread_id"] for v in acme} == {Q1, Q2}
    assert violations(path, "--now", end, "--account", "Globex") == []
    assert violations(path, "--now", end, "--rule", "unowned", "--account", "Acme") == []

    table = pocwatch("violations", "--now", end, "--all", config=path)
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split() == [
        "rule",
        "severity",
        "status",
        "account",
        "owner",
        "subject",
        "opened",
        "due",
        "waited",
    ]
    q2_row = next(r for r in rows if r.startswith("unacknowledged") and "Acme" in r)
    assert "resolved" in q2_row and "5h, 1h over" in q2_row  # waited 5h, 1h past the SLA

    for args, expected in (
        (("--rule", "nope"), "unknown rule 'nope' (rules: conflicting_replies, unacknowledged"),
        (("--account", "Nope"), "unknown account 'Nope' (accounts: Acme, Globex)"),
        (("--now", "yesterday"), "--now: 'yesterday' is not an ISO 8601 time"),
        (("--now", "2026-13-01T00:00Z"), "--now: '2026-13-01T00:00Z' is not an ISO 8601 time"),
    ):
        done = pocwatch("violations", *args, config=path)
        assert done.returncode == 2, (args, done.stderr)
        [line] = done.stderr.strip().splitlines()
        assert line.startswith("pocwatch: ") and expected in line, line


def test_explain_shows_the_clock_and_each_rule(imap_user: MailUser, tmp_path: Path) -> None:
    path = seed_and_sync(imap_user, tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    when = B + D + 4 * H + 30 * M
    done = pocwatch("explain", Q2, "--now", iso(when), config=path)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert text.startswith(f"Thread {Q2}: Question 2\n")
    assert f"due at {format_time(B + D + 4 * H, UTC_ZONE)}" in text
    assert "Acme (owner priya@example.com, backup sam@example.com)" in text
    assert "none: every hour is open" in text
    assert "waiting for 4h30m of business time so far: 30m past due" in text
    assert "(1 later message after --now not taken into account)" in text
    assert "unacknowledged: FIRED (breach open)" in text
    assert "#1 has waited 4h30m of business time, 30m past the deadline" in text
    assert "conflicting_replies: not fired" in text
    assert "unowned: not fired\n    account Acme is owned by priya@example.com" in text

    conflict = pocwatch("explain", Q1, "--now", iso(B + H), config=path).stdout
    assert "acknowledges #1" in conflict and "outbound  sam@example.com" in conflict
    assert "conflicting_replies: FIRED (breach open)" in conflict
    assert (
        "priya@example.com (#2) and sam@example.com (#3) answered in the same turn: "
        f"opened {format_time(B + 30 * M, UTC_ZONE)}"
    ) in conflict
    assert "unacknowledged: not fired\n    #1 was answered after 20m" in conflict

    # The id without its angle brackets, or a message of the thread, finds it too.
    bare = pocwatch("explain", Q1.strip("<>"), "--now", iso(B + H), config=path)
    assert bare.stdout == conflict
    by_message = pocwatch("explain", "<s1@example.com>", "--now", iso(B + H), config=path)
    assert by_message.stdout == conflict

    unknown = pocwatch("explain", "<nope@example.com>", config=path)
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "pocwatch: no thread '<nope@example.com>' in the store"
    assert pocwatch("explain", Q1, "--now", "soon", config=path).returncode == 2


def test_backtest_counts_what_would_have_opened(imap_user: MailUser, tmp_path: Path) -> None:
    path = seed_and_sync(imap_user, tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    first, third = B.date().isoformat(), (B + 2 * D).date().isoformat()
    done = pocwatch("backtest", "--from", first, "--to", third, "--format", "json", config=path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["counts"] == [
        {"rule": "conflicting_replies", "account": "Acme", "count": 1},
        {"rule": "unacknowledged", "account": "Acme", "count": 1},
        {"rule": "unacknowledged", "account": None, "count": 1},
        {"rule": "unowned", "account": None, "count": 1},
    ]
    # As of the end of the last day: resolutions are included.
    assert brief(result["violations"]) == [
        ("conflicting_replies", Q1, "breach", "open"),  # open_for (3d) not over by then
        ("unacknowledged", Q2, "breach", "resolved"),
        ("unowned", Q3, "warning", "open"),
        ("unacknowledged", Q3, "breach", "open"),
    ]

    # --to is inclusive and days select by opened_at: the second day holds only q2.
    second = (B + D).date().isoformat()
    one_day = pocwatch(
        "backtest", "--from", second, "--to", second, "--format", "json", config=path
    )
    assert json.loads(one_day.stdout)["counts"] == [
        {"rule": "unacknowledged", "account": "Acme", "count": 1}
    ]
    table = pocwatch("backtest", "--from", first, "--to", third, config=path)
    assert table.returncode == 0, table.stderr
    assert "rule                 account  count" in table.stdout
    assert "unowned              -        1" in table.stdout
    backwards = pocwatch("backtest", "--from", third, "--to", first, config=path)
    assert backwards.returncode == 2 and "is before --from" in backwards.stderr
    assert pocwatch("backtest", "--from", "May 1", "--to", third, config=path).returncode == 2


def audit_events(database_url: str) -> int:
    engine = open_database(database_url)
    try:
        with engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(ViolationEventRow)) or 0
    finally:
        engine.dispose()


def last_pass(database_url: str) -> datetime:
    engine = open_database(database_url)
    try:
        last = ViolationStore(engine).shared_digest(LAST_NOW)
        assert last is not None
        return datetime.fromisoformat(last)
    finally:
        engine.dispose()


def test_violations_now_comes_from_the_store_and_a_trial_config_records_nothing(
    imap_user: MailUser, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    path = seed_and_sync(imap_user, tmp_path, url)
    synced_at = last_pass(url)
    now = datetime.now(UTC)
    # No --now: the store answers, brought up to now by an incremental pass.
    stored = violations(path, "--all")
    assert last_pass(url) > synced_at
    assert stored == violations(path, "--all", "--now", iso(now))
    assert brief(stored) == [
        ("conflicting_replies", Q1, "breach", "resolved"),
        ("unacknowledged", Q2, "breach", "resolved"),
        ("unowned", Q3, "warning", "open"),
        ("unacknowledged", Q3, "breach", "open"),
    ]
    table = pocwatch("violations", config=path)
    assert table.returncode == 0, table.stderr
    assert "1h over" not in table.stdout  # q2 is resolved: not listed without --all
    assert ", " in next(r for r in table.stdout.splitlines() if r.startswith("unacknowledged"))

    # A trial config (a longer SLA) is evaluated in memory: the store's audit log is the
    # daemon's, and a trial must not rewrite it.
    before = audit_events(url)
    trial = path.with_name("trial.toml")
    trial.write_text(path.read_text().replace('sla = "4h"', 'sla = "400h"'))
    relaxed = violations(trial, "--all")
    assert brief(relaxed) == [
        ("conflicting_replies", Q1, "breach", "resolved"),
        ("unowned", Q3, "warning", "open"),
    ]
    assert audit_events(url) == before
    assert violations(path, "--all") == stored
