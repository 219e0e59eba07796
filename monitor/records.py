"""Frozen domain types shared by parsing, threading, storage and the rules."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime


def iso_utc(value: datetime | None) -> str | None:
    """ISO 8601 UTC with a Z, to the second: how every JSON output writes a time (product.md)."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Automatic(enum.StrEnum):
    """Why a message is automatic mail: it never acknowledges, conflicts or starts a clock."""

    AUTO_REPLY = "auto_reply"  # RFC 3834 auto-replies and other robots answering
    OUT_OF_OFFICE = "out_of_office"  # vacation / OOO notices (marks an internal owner absent)
    BOUNCE = "bounce"  # delivery status notifications, multipart/report, MAILER-DAEMON
    LIST = "list"  # mailing-list traffic (List-Id, Precedence: list)
    BULK = "bulk"  # Precedence: bulk / junk and other bulk senders


class Direction(enum.StrEnum):
    """Where a message goes, relative to us (product.md: inbound / outbound / internal-only)."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """One email as read from its headers (and a short text snippet).

    Addresses are lowercased bare addr-specs. Times are aware UTC datetimes. Message-IDs keep
    their angle brackets. Nothing here depends on the configuration: direction and internal /
    external are decided later, against the config in force.
    """

    message_id: str
    subject: str
    from_addr: str | None
    internal_date: datetime
    time: datetime  # message time: Date header, or INTERNALDATE when Date is unusable
    date_header: datetime | None = None
    from_name: str = ""
    sender_addr: str | None = None
    to_addrs: tuple[str, ...] = ()
    cc_addrs: tuple[str, ...] = ()
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    thread_index_root: str | None = None  # hex of the first 22 bytes of Thread-Index
    gm_thrid: int | None = None
    automatic: Automatic | None = None
    synthetic_id: bool = False  # message_id was made up by us (missing or duplicate)
    snippet: str = ""
    size: int = 0
    defects: tuple[str, ...] = ()

    @property
    def participants(self) -> tuple[str, ...]:
        """Every address in From, Sender, To and Cc, once each, in that order."""
        seen: dict[str, None] = {}
        for addr in (self.from_addr, self.sender_addr, *self.to_addrs, *self.cc_addrs):
            if addr:
                seen.setdefault(addr, None)
        return tuple(seen)

    @property
    def has_reference_headers(self) -> bool:
        return bool(self.in_reply_to or self.references)


@dataclass(frozen=True, slots=True)
class Thread:
    """A conversation: its root Message-ID and its stored messages in message-time order."""

    thread_id: str
    message_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ThreadView:
    """A thread with its stored messages in message-time order, as the store gives it and the
    rules read it.

    `answered` holds the Message-IDs flagged \\Answered in a watched folder; `arrived_in`
    maps a Message-ID to the mailboxes it was seen in (account matching by mailbox).
    """

    thread_id: str
    subject: str
    messages: tuple[MessageRecord, ...]
    answered: frozenset[str] = frozenset()
    arrived_in: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FolderState:
    """What we remember of one watched folder between passes."""

    mailbox: str
    folder: str
    uidvalidity: int | None = None
    uidnext: int | None = None
    highestmodseq: int | None = None
    last_seen_uid: int = 0
    exists_count: int | None = None  # EXISTS when the last pass ended
    window_start: datetime | None = None  # the SINCE instant of the first backfill


@dataclass(frozen=True, slots=True)
class FetchedMessage:
    """A message as one folder holds it: where it is, its flags, and what was parsed."""

    mailbox: str
    folder: str
    uid: int
    flags: tuple[str, ...]
    record: MessageRecord
    modseq: int | None = None
