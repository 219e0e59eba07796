"""Account matching: which customer account a thread belongs to (product.md, "Account")."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Protocol

from monitor.classify import InternalPolicy, direction
from monitor.records import Direction, MessageRecord


class AccountLike(Protocol):
    """The account fields matching reads (the config's AccountConfig has them)."""

    @property
    def name(self) -> str: ...
    @property
    def domains(self) -> Sequence[str]: ...
    @property
    def addresses(self) -> Sequence[str]: ...
    @property
    def subjects(self) -> Sequence[re.Pattern[str] | str]: ...
    @property
    def mailboxes(self) -> Sequence[str]: ...


@lru_cache(maxsize=1024)
def _compiled(source: str) -> re.Pattern[str]:
    return re.compile(source, re.IGNORECASE)


def _subject_matches(pattern: re.Pattern[str] | str, subject: str) -> bool:
    """`re.search`, case-insensitive; the config hands over compiled patterns."""
    compiled = _compiled(pattern) if isinstance(pattern, str) else pattern
    return compiled.search(subject) is not None


def _domain_matches(domain: str, listed: str) -> bool:
    listed = listed.lower().lstrip(".")
    return domain == listed or domain.endswith("." + listed)


def _levels(
    address: str, subject: str, mailboxes: frozenset[str]
) -> tuple[Callable[[AccountLike], bool], ...]:
    """The matching levels of product.md, most specific first."""
    domain = address.rpartition("@")[2]
    return (
        lambda a: address in (x.lower() for x in a.addresses),
        lambda a: bool(domain) and any(_domain_matches(domain, d) for d in a.domains),
        lambda a: any(_subject_matches(p, subject) for p in a.subjects),
        lambda a: bool(mailboxes) and any(m in mailboxes for m in a.mailboxes),
    )


def customer_messages(
    messages: Iterable[MessageRecord], policy: InternalPolicy
) -> Iterator[MessageRecord]:
    """The inbound, non-automatic messages, in order: what somebody has to answer. Inbound as
    the rules see it: a colleague's mail sent as a customer address (an internal Sender) is
    ours, not the customer's."""
    return (
        m for m in messages if m.automatic is None and direction(m, policy) is Direction.INBOUND
    )


def first_customer_message(
    messages: Iterable[MessageRecord], policy: InternalPolicy
) -> MessageRecord | None:
    """The earliest customer message: the one that decides the account."""
    return next(customer_messages(messages, policy), None)


def match_account(
    messages: Sequence[MessageRecord],
    accounts: Sequence[AccountLike],
    *,
    policy: InternalPolicy,
    arrived_in: Mapping[str, frozenset[str]] | None = None,
) -> AccountLike | None:
    """The account of a thread, decided by its earliest inbound non-automatic message.

    At the first level where some account matches, the first account in file order wins.
    When that sender matches nothing, the thread's other external participants are tried.
    """
    first = first_customer_message(messages, policy)
    if first is None or not accounts:
        return None
    mailboxes = (arrived_in or {}).get(first.message_id, frozenset())
    candidates = [first.from_addr or ""]
    for message in messages:
        for addr in (message.from_addr, *message.to_addrs, *message.cc_addrs):
            if addr and not policy.is_internal(addr) and addr not in candidates:
                candidates.append(addr)
    for address in candidates:
        for level in _levels(address.lower(), first.subject, mailboxes):
            for account in accounts:
                if level(account):
                    return account
    return None
