"""What a thread looks like from our side: its account, last inbound/outbound, whether it waits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from monitor.classify import InternalPolicy, direction
from monitor.records import Direction, ThreadView
from rules.accounts import AccountLike, match_account
from rules.unacknowledged import waits_in


@dataclass(frozen=True, slots=True)
class ThreadSummary:
    """The fields of `pocwatch threads` (product.md)."""

    thread_id: str
    subject: str
    account: str | None
    owner: str | None
    backup: str | None
    message_ids: tuple[str, ...]
    last_inbound_at: datetime | None
    last_outbound_at: datetime | None
    awaiting_reply: bool


def summarize(
    thread: ThreadView, *, policy: InternalPolicy, accounts: Sequence[AccountLike]
) -> ThreadSummary:
    """Summarise one thread (messages in message-time order) against the config in force.

    A thread awaits a reply while its last wait (as the unacknowledged rule counts waits) has
    not ended: no later outbound, non-automatic message and no \\Answered flag.
    """
    messages = thread.messages
    last_inbound = last_outbound = None
    for message in messages:
        if message.automatic is not None:
            continue
        way = direction(message, policy)
        if way is Direction.INBOUND:
            last_inbound = message.time
        elif way is Direction.OUTBOUND:
            last_outbound = message.time
    found = waits_in(messages, thread.answered, policy)
    waiting = bool(found) and found[-1].ended_at is None
    account = match_account(
        messages,
        accounts,
        policy=policy,
        arrived_in=thread.arrived_in,
    )
    return ThreadSummary(
        thread_id=thread.thread_id,
        subject=thread.subject,
        account=account.name if account else None,
        owner=getattr(account, "owner", None) if account else None,
        backup=getattr(account, "backup", None) if account else None,
        message_ids=tuple(m.message_id for m in messages),
        last_inbound_at=last_inbound,
        last_outbound_at=last_outbound,
        awaiting_reply=waiting,
    )
