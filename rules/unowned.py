"""`unowned`: customer mail that no account claims, or whose account has no owner."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from monitor.config import RuleSettings
from rules.accounts import customer_messages, first_customer_message
from rules.base import Answer, RuleContext, Severity, Status, ThreadView, Violation

__all__ = ["RULE", "Unowned", "UnownedSettings"]


class UnownedSettings(RuleSettings):
    """[rules.unowned] has no settings yet; the table may exist, empty."""


class Unowned:
    name: ClassVar[str] = "unowned"
    description: ClassVar[str] = "Customer mail that no account or no owner answers for."
    Settings: ClassVar[type[UnownedSettings]] = UnownedSettings

    def assess(self, thread: ThreadView, ctx: RuleContext) -> Answer:
        # Only new mail or a new config changes it: no deadline.
        return Answer(self._violations(thread, ctx))

    def explain(
        self, thread: ThreadView, ctx: RuleContext, violations: Sequence[Violation]
    ) -> list[str]:
        """Who owns the account, or why nobody needs to, or whom the rule warned."""
        account = ctx.account
        if account is not None and account.owner:
            return [f"account {account.name} is owned by {account.owner}"]
        first = first_customer_message(thread.messages, ctx.policy)
        if first is None:
            return ["no customer mail (inbound, not automatic): nobody needs to own it"]
        admins = ctx.config.monitor.admins
        warned = f"; monitor.admins warned: {', '.join(admins)}" if admins else ""
        if account is not None:
            return [f"account {account.name} has no owner{warned}"]
        return [f"no account matches the customer ({first.from_addr or 'unknown'}){warned}"]

    def _violations(self, thread: ThreadView, ctx: RuleContext) -> list[Violation]:
        if ctx.owner is not None:
            return []
        inbound = list(customer_messages(thread.messages, ctx.policy))
        if not inbound:
            return []
        return [
            Violation(
                rule=self.name,
                severity=Severity.WARNING,
                status=Status.OPEN,
                account=ctx.account_name,
                thread_id=thread.thread_id,
                subject=thread.subject,
                owner=None,
                backup=ctx.backup,
                notify=tuple(dict.fromkeys(a.lower() for a in ctx.config.monitor.admins)),
                opened_at=inbound[0].time,
                due_at=None,
                resolved_at=None,
                senders=(),
                chasers=0,
                message_ids=tuple(m.message_id for m in inbound),
                about=thread.thread_id,
            )
        ]


RULE = Unowned()
