"""Internal or external, who wrote a message, and which way it goes (product.md's definitions)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from monitor.records import Direction, MessageRecord

__all__ = ["InternalPolicy", "author", "direction"]


def _domain_key(domain: str) -> str:
    return domain.strip().lower().lstrip("@").rstrip(".")


@dataclass(frozen=True)
class InternalPolicy:
    """`monitor.internal_domains` and `monitor.internal_addresses`, normalised once."""

    domains: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    _domain_set: frozenset[str] = field(init=False, repr=False, compare=False)
    _address_set: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Accept lists and any case from the config; compare lowercased, as product.md says.
        domains = tuple(_domain_key(d) for d in self.domains if _domain_key(d))
        addresses = tuple(a.strip().lower() for a in self.addresses if a.strip())
        object.__setattr__(self, "domains", domains)
        object.__setattr__(self, "addresses", addresses)
        object.__setattr__(self, "_domain_set", frozenset(domains))
        object.__setattr__(self, "_address_set", frozenset(addresses))

    @classmethod
    def of(cls, domains: Iterable[str] = (), addresses: Iterable[str] = ()) -> InternalPolicy:
        return cls(tuple(domains), tuple(addresses))

    def is_internal(self, addr: str | None) -> bool:
        """True when the address is listed, or its domain or a parent domain is ours."""
        if not addr:
            return False
        addr = addr.strip().lower()
        if addr in self._address_set:
            return True
        local, at, domain = addr.rpartition("@")
        if not at or not local:
            return False
        domain = domain.rstrip(".")
        domains = self._domain_set
        while domain:
            if domain in domains:
                return True
            _, dot, domain = domain.partition(".")
            if not dot:
                return False
        return False


def author(record: MessageRecord, policy: InternalPolicy) -> str | None:
    """The human who wrote it: an internal Sender other than From (mail sent "as" support@),
    else From."""
    sender = record.sender_addr
    if sender and sender != record.from_addr and policy.is_internal(sender):
        return sender
    return record.from_addr


def direction(record: MessageRecord, policy: InternalPolicy) -> Direction:
    """INBOUND from an external author (or one we cannot tell); OUTBOUND from an internal author
    to at least one external To/Cc address; INTERNAL otherwise (a forward to a colleague)."""
    if not policy.is_internal(author(record, policy)):
        return Direction.INBOUND
    for addr in (*record.to_addrs, *record.cc_addrs):
        # A bare word ("undisclosed-recipients", "Array") is nobody outside.
        if "@" in addr and not policy.is_internal(addr):
            return Direction.OUTBOUND
    return Direction.INTERNAL
