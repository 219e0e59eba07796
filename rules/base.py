"""What every rule shares: the context, the protocol, and (from monitor.records, where storage
reads them too) the violation record and the thread as rules see it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import ClassVar, NamedTuple, Protocol
from zoneinfo import ZoneInfo

from monitor.classify import InternalPolicy
from monitor.config import AccountConfig, Config, RuleSettings, SettingsT
from monitor.records import Severity, Status, ThreadView, Violation, fingerprint, sort_key
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


def _utc(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be an aware datetime, got {moment!r}")
    return moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class RuleContext:
    """Everything a rule may consult besides the thread. `now` is given, never read.

    Build one per evaluation pass with `RuleContext.create`; the engine narrows it to each
    thread's account with `with_account` (the calendar and SLA then follow `terms`).
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
    def terms(self) -> AccountConfig | None:
        """The account whose SLA and calendar apply: None for a thread with no account or
        whose account nobody owns (product.md: those are checked with the defaults)."""
        account = self.account
        return account if account is not None and account.owner is not None else None

    @property
    def calendar_name(self) -> str | None:
        """The [calendars.NAME] the SLA counts in; None when every hour is open."""
        name = (self.terms.calendar if self.terms is not None else None) or "default"
        return name if name in self.calendars else None

    @property
    def calendar(self) -> BusinessCalendar:
        """The business calendar the SLA counts in (see `terms`)."""
        name = self.calendar_name
        return self.calendars[name] if name is not None else _ALWAYS_OPEN

    def settings(self, kind: type[SettingsT]) -> SettingsT:
        """A rule's own [rules.NAME] table, typed: `ctx.settings(UnacknowledgedSettings)`."""
        return self.config.rules.settings(kind)

    @property
    def zone(self) -> ZoneInfo:
        """The account's calendar zone (dates of absences and handoffs); monitor's without.
        Those dates belong to the account's people, so this follows the account even where
        the SLA terms fall back to the defaults (`terms`)."""
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

        `thread` is one conversation as of `now` (`rules.engine.as_of`: cut at `now`), `ctx`
        as `rules.engine.prepare` narrowed it to the account, `violations` are this rule's on
        the thread. Messages are named `#N`
        (`numbered`), times shown in `ctx.config.monitor.tz` (`monitor.display`).
        """
        ...


def numbered(thread: ThreadView) -> dict[str, int]:
    """Each message's `#N` in explanations: N is its 1-based place in `thread.messages`."""
    return {m.message_id: n for n, m in enumerate(thread.messages, 1)}
