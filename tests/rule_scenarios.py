"""Table helpers for rule tests: a config, a thread, and the violations expected at each now."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from monitor.config import Config
from monitor.records import MessageRecord
from rules.base import RuleContext, ThreadView, Violation
from rules.engine import evaluate_thread
from rules.registry import parse_config
from tests.builders import TimeLike, at, msgid

PRIYA = "priya@example.com"  # the owner
SAM = "sam@example.com"  # the backup
LEAD = "lead@example.com"  # escalate_to
ADMIN = "ops@example.com"
SUPPORT = "support@example.com"
CUSTOMER = "alice@client.example"

# The account table comes last, so `account` lines extend it; `extra` tables follow it.
BASE = """\
[monitor]
internal_domains = ["example.com"]
admins = ["ops@example.com"]
timezone = "Europe/London"

[[mailboxes]]
name = "support"
host = "imap.example.com"
username = "support@example.com"
password = "secret"

[calendars.default]
timezone = "Europe/London"
days = ["mon", "tue", "wed", "thu", "fri"]
hours = "09:00-17:30"
holidays = ["2026-12-25", "2026-12-26"]

[calendars.new_york]
timezone = "America/New_York"
hours = "09:00-17:00"

[calendars.sundays]
timezone = "Europe/London"
days = ["sun"]
hours = "00:00-24:00"

[rules.unacknowledged]
sla = "4h"
warn_at = 0.75

[[accounts]]
name = "Client"
domains = ["client.example"]
owner = "priya@example.com"
backup = "sam@example.com"
escalate_to = "lead@example.com"
"""


def make_config(extra: str = "", *, account: str = "") -> Config:
    """The real config model over BASE: `account` lines join the Client account."""
    text = BASE + account + ("\n" + extra if extra else "")
    return parse_config(text, "/etc/pocwatch/pocwatch.toml")


def view(
    messages: Iterable[MessageRecord],
    *,
    answered: Iterable[str] = (),
    arrived_in: Mapping[str, Iterable[str]] | None = None,
    thread_id: str | None = None,
) -> ThreadView:
    ordered = tuple(sorted(messages, key=lambda m: m.time))
    return ThreadView(
        thread_id=msgid(thread_id) if thread_id else ordered[0].message_id,
        subject=ordered[0].subject,
        messages=ordered,
        answered=frozenset(msgid(a) for a in answered),
        arrived_in={msgid(k): frozenset(v) for k, v in (arrived_in or {}).items()},
    )


def evaluate(
    config: Config,
    thread: ThreadView,
    now: TimeLike,
    out_of_office: Mapping[str, Sequence[TimeLike]] | None = None,
) -> list[Violation]:
    seen = {who: tuple(at(t) for t in times) for who, times in (out_of_office or {}).items()}
    return evaluate_thread(thread, RuleContext.create(config, at(now), out_of_office=seen))


def _iso(when: TimeLike) -> str:
    return at(when).isoformat().replace("+00:00", "Z")


def expect(
    rule: str, about: str, severity: str, status: str = "open", **fields: Any
) -> dict[str, Any]:
    """An expected violation: only the fields given are compared (times as TimeLike, ids bare)."""
    wanted: dict[str, Any] = {
        "rule": rule,
        "about": msgid(about),
        "severity": severity,
        "status": status,
    }
    for key, value in fields.items():
        if key in ("opened_at", "due_at", "resolved_at"):
            wanted[key] = None if value is None else _iso(value)
        elif key == "message_ids":
            wanted[key] = [msgid(m) for m in value.split()]
        elif key in ("senders", "notify"):
            wanted[key] = list(value)
        else:
            wanted[key] = value
    return wanted


def project(violation: Violation, keys: Iterable[str]) -> dict[str, Any]:
    data = {**violation.as_json(), "about": violation.about}
    return {key: data[key] for key in keys}


def check(got: Sequence[Violation], wanted: Sequence[dict[str, Any]], where: str = "") -> None:
    actual = [project(v, w) for v, w in zip(got, wanted, strict=False)]
    assert len(got) == len(wanted) and actual == list(wanted), (
        f"{where}\n got: {[project(v, [*v.as_json(), 'about']) for v in got]}\nwant: {wanted}"
    )


@dataclass(frozen=True)
class Scenario:
    """A few days of one thread's traffic and the violations expected at several nows."""

    name: str
    messages: tuple[MessageRecord, ...]
    at: tuple[tuple[TimeLike, tuple[dict[str, Any], ...]], ...]
    config: str = ""
    account: str = ""
    answered: tuple[str, ...] = ()
    out_of_office: Mapping[str, tuple[TimeLike, ...]] = field(default_factory=dict)

    def run(self) -> None:
        config = make_config(self.config, account=self.account)
        thread = view(self.messages, answered=self.answered)
        for now, wanted in self.at:
            got = evaluate(config, thread, now, self.out_of_office)
            check(got, wanted, f"{self.name} at {now}")


def times(*values: TimeLike) -> tuple[datetime, ...]:
    return tuple(at(v) for v in values)
