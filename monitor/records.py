"""Frozen domain types shared by parsing, threading, storage and the rules."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


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
