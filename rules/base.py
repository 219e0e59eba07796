"""What every rule shares: the violation record, the thread as rules see it, the context."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, ClassVar, NamedTuple, Protocol
from zoneinfo import ZoneInfo

from monitor.classify import InternalPolicy
from monitor.config import AccountConfig, Config, RuleSettings, SettingsT
from monitor.records import ThreadView, iso_utc
from rules.calendar import BusinessCalendar

__all__ = [
    "Answer",
    "Rule",
    "RuleContext",
    "Severity",
    "Status",
    "ThreadView",
    "Violation",
    "fingerprint",
    "numbered",
    "sort_key",
]


class Severity(enum.StrEnum):
    WARNING = "warning"
    BREACH = "breach"


class Status(enum.StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


def fingerprint(rule: str, about: str) -> str:
    """A violation's stable identity, fixed-length for an index: rule + what it is about.

    The thread id is left out on purpose: when threads merge, violations move to the new
    thread id and must stay the same violations.
    """
    return hashlib.sha256(f"{rule}\n{about}".encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Violation:
    """One trouble in one thread as of the evaluation's `now` (the fields of product.md).

    `about` is what it is about: the inbound message that started the wait
    (`unacknowledged`), the first outbound message of the turn (`conflicting_replies`), the
    thread id (`unowned`). Addresses are lowercased; `senders`, `message_ids` are in
    message-time order, `notify` in warning order.
    """

    rule: str
    severity: Severity
    status: Status
    account: str | None
    thread_id: str
    subject: str
    owner: str | None
    backup: str | None
    notify: tuple[str, ...]
    opened_at: datetime
    due_at: datetime | None
    resolved_at: datetime | None
    senders: tuple[str, ...]
    chasers: int
    message_ids: tuple[str, ...]
    about: str

    @property
    def fingerprint(self) -> str:
        """Stable identity: the same trouble is one violation across evaluations and merges."""
        return fingerprint(self.rule, self.about)

    @property
    def is_open(self) -> bool:
        return self.status is Status.OPEN

    def as_json(self) -> dict[str, Any]:
        """product.md's JSON object: ISO 8601 UTC times with `Z`, null where missing."""
        return {
            "rule": self.rule,
            "severity": str(self.severity),
            "status": str(self.status),
            "account": self.account,
            "thread_id": self.thread_id,
            "subject": self.subject,
            "owner": self.owner,
            "backup": self.backup,
            "notify": list(self.notify),
            "opened_at": iso_utc(self.opened_at),
            "due_at": iso_utc(self.due_at),
            "resolved_at": iso_utc(self.resolved_at),
            "senders": list(self.senders),
            "chasers": self.chasers,
            "message_ids": list(self.message_ids),
        }


def sort_key(violation: Violation) -> tuple[datetime, str, str, str]:
    """product.md's order, (opened_at, thread_id), then rule and identity for stability."""
    return violation.opened_at, violation.thread_id, violation.rule, violation.about


def _utc(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be an aware datetime, got {moment!r}")
    return moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class RuleContext:
    """Everything a rule may consult besides the thread. `now` is given, never read.

    Build one per evaluation pass with `RuleContext.create`; the engine narrows it to each
    thread's account with `with_account` (account, calendar and SLA then agree).
    `out_of_office` maps an internal address to the times its out-of-office replies were
    seen, anywhere in the store.
    """

    now: datetime
    config: Config
    policy: InternalPolicy
    calendars: Mapping[str, BusinessCalendar]
    out_of_office: Mapping[str, tuple[datetime, ...]] = field(default_factory=dict)
    account: AccountConfig | None = None

    @classmethod
    def create(
        cls,
        config: Config,
        now: datetime,
        *,
        out_of_office: Mapping[str, tuple[datetime, ...] | list[datetime]] | None = None,
    ) -> RuleContext:
        policy = config.monitor.policy
        calendars = {
            name: BusinessCalendar.from_config(calendar)
            for name, calendar in config.calendars.items()
        }
        seen = {
            addr.lower(): tuple(sorted(_utc(t, "an out-of-office time") for t in times))
            for addr, times in (out_of_office or {}).items()
        }
        return cls(_utc(now, "now"), config, policy, calendars, seen)

    def with_account(self, account: AccountConfig | None) -> RuleContext:
        return replace(self, account=account)

    def with_out_of_office(self, seen: Mapping[str, tuple[datetime, ...]]) -> RuleContext:
        return replace(self, out_of_office=seen)

    @property
    def calendar(self) -> BusinessCalendar:
        """The account's business calendar (the default one without an account)."""
        name = self.account.calendar if self.account is not None else None
        calendar = self.calendars.get(name or "default")
        return calendar if calendar is not None else _ALWAYS_OPEN

    def settings(self, kind: type[SettingsT]) -> SettingsT:
        """A rule's own [rules.NAME] table, typed: `ctx.settings(UnacknowledgedSettings)`."""
        return self.config.rules.settings(kind)

    @property
    def zone(self) -> ZoneInfo:
        """The account's calendar zone (dates of absences and handoffs); monitor's without."""
        calendar = self.config.calendar_for(self.account)
        return calendar.tz if calendar is not None else self.config.monitor.tz

    @property
    def owner(self) -> str | None:
        return self.account.owner if self.account is not None else None

    @property
    def backup(self) -> str | None:
        return self.account.backup if self.account is not None else None

    @property
    def account_name(self) -> str | None:
        return self.account.name if self.account is not None else None


_ALWAYS_OPEN = BusinessCalendar.always_open()


class Answer(NamedTuple):
    """A rule's answer on one thread: its violations ([] when all is well), and the earliest
    instant after `now` at which they may change with the same messages (a threshold passing
    with no new mail; None when only new mail can change them), so the store can wake the
    thread. One call gives both: the work behind them is the same."""

    violations: list[Violation]
    next_deadline: datetime | None = None


class Rule(Protocol):
    """A rule: a name (also its [rules.NAME] table), a one-line description, the model of
    its [rules.NAME] table, one pure assessment of a thread, and why it fired there or not
    (each rule explains itself, so adding a rule stays adding one module)."""

    name: ClassVar[str]
    description: ClassVar[str]
    Settings: ClassVar[type[RuleSettings]]

    def assess(self, thread: ThreadView, ctx: RuleContext) -> Answer: ...

    def explain(
        self, thread: ThreadView, ctx: RuleContext, violations: Sequence[Violation]
    ) -> list[str]:
        """Why the rule fired on the thread or did not: lines of text, not indented.

        `thread` and `ctx` are as `rules.engine.prepare` gave them (cut at `now`, narrowed to
        the account), `violations` are this rule's on the thread. Messages are named `#N`
        (`numbered`), times shown in `ctx.config.monitor.tz` (`monitor.display`).
        """
        ...


def numbered(thread: ThreadView) -> dict[str, int]:
    """Each message's `#N` in explanations: N is its 1-based place in `thread.messages`."""
    return {m.message_id: n for n, m in enumerate(thread.messages, 1)}
