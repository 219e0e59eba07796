"""`unowned`: customer mail that no account claims, or whose account has no owner."""

from __future__ import annotations

from typing import ClassVar

from monitor.classify import direction
from monitor.config import UnownedConfig
from monitor.records import Direction
from rules.base import Answer, RuleContext, Severity, Status, ThreadView, Violation

__all__ = ["RULE", "Unowned"]


class Unowned:
    name: ClassVar[str] = "unowned"
    description: ClassVar[str] = "Customer mail that no account or no owner answers for."
    Config: ClassVar[type[UnownedConfig]] = UnownedConfig

    def assess(self, thread: ThreadView, ctx: RuleContext) -> Answer:
        # Only new mail or a new config changes it: no deadline.
        return Answer(self._violations(thread, ctx))

    def _violations(self, thread: ThreadView, ctx: RuleContext) -> list[Violation]:
        if ctx.owner is not None:
            return []
        inbound = [
            m
            for m in thread.messages
            if m.automatic is None and direction(m, ctx.policy) is Direction.INBOUND
        ]
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
