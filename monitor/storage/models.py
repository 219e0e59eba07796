"""SQLAlchemy models: the only place that knows the shape of the tables."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from monitor.records import Automatic

OUT_OF_OFFICE_ROWS = f"automatic = '{Automatic.OUT_OF_OFFICE.value}'"  # a partial index's condition
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend.

    SQLite has no time zone type: values are stored as naive UTC and given their zone back on
    the way out, so the rest of the code only ever sees aware UTC.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        when: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class FolderRow(Base):
    """Sync state of one watched folder of one mailbox."""

    __tablename__ = "folders"
    __table_args__ = (UniqueConstraint("mailbox", "name", name="uq_folders_mailbox_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(500))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    uidnext: Mapped[int | None] = mapped_column(BigInteger)
    highestmodseq: Mapped[int | None] = mapped_column(BigInteger)
    exists_count: Mapped[int | None] = mapped_column(Integer)
    last_seen_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MessageRow(Base):
    """One email, however many folders hold it (keyed by Message-ID)."""

    __tablename__ = "messages"
    __table_args__ = (
        # Our people's out-of-office replies, read on every evaluation pass: a partial index
        # holds only them, so the read stays small however much mail the store holds.
        Index(
            "ix_messages_out_of_office",
            "time",
            sqlite_where=text(OUT_OF_OFFICE_ROWS),
            postgresql_where=text(OUT_OF_OFFICE_ROWS),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[str] = mapped_column(String(1000), unique=True)
    synthetic_id: Mapped[bool] = mapped_column(Boolean, default=False)
    fingerprint: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(Text, default="")
    base_subject: Mapped[str] = mapped_column(String(500), default="", index=True)
    from_addr: Mapped[str | None] = mapped_column(String(320))
    from_name: Mapped[str] = mapped_column(Text, default="")
    sender_addr: Mapped[str | None] = mapped_column(String(320))
    to_addrs: Mapped[list[str]] = mapped_column(JSON, default=list)
    cc_addrs: Mapped[list[str]] = mapped_column(JSON, default=list)
    date_header: Mapped[datetime | None] = mapped_column(UTCDateTime)
    internal_date: Mapped[datetime] = mapped_column(UTCDateTime)
    time: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    in_reply_to: Mapped[list[str]] = mapped_column(JSON, default=list)
    references: Mapped[list[str]] = mapped_column(JSON, default=list)
    thread_index_root: Mapped[str | None] = mapped_column(String(64), index=True)
    gm_thrid: Mapped[int | None] = mapped_column(BigInteger, index=True)
    automatic: Mapped[str | None] = mapped_column(String(20))
    snippet: Mapped[str] = mapped_column(Text, default="")
    size: Mapped[int] = mapped_column(Integer, default=0)
    defects: Mapped[list[str]] = mapped_column(JSON, default=list)
    thread_id: Mapped[str | None] = mapped_column(String(1000), index=True)


class MessageRefRow(Base):
    """A Message-ID named by a message's References / In-Reply-To (for reverse lookups)."""

    __tablename__ = "message_refs"

    message_pk: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    ref_id: Mapped[str] = mapped_column(String(1000), primary_key=True, index=True)


class LocationRow(Base):
    """Where a message sits on the server: folder + UID, with its flags."""

    __tablename__ = "locations"

    folder_pk: Mapped[int] = mapped_column(
        ForeignKey("folders.id", ondelete="CASCADE"), primary_key=True
    )
    uid: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    message_pk: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    answered: Mapped[bool] = mapped_column(Boolean, default=False)


class ThreadRow(Base):
    """A conversation, as last computed by threading (rebuilt when its messages change)."""

    __tablename__ = "threads"

    thread_id: Mapped[str] = mapped_column(String(1000), primary_key=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    first_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    message_count: Mapped[int] = mapped_column(Integer, default=0)


class ViolationRow(Base):
    """One violation, keyed by its fingerprint (rule + what it is about), as last evaluated."""

    __tablename__ = "violations"

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    rule: Mapped[str] = mapped_column(String(100))
    about: Mapped[str] = mapped_column(String(1000))
    thread_id: Mapped[str] = mapped_column(String(1000), index=True)
    severity: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), index=True)
    account: Mapped[str | None] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(Text, default="")
    owner: Mapped[str | None] = mapped_column(String(320))
    backup: Mapped[str | None] = mapped_column(String(320))
    notify: Mapped[list[str]] = mapped_column(JSON, default=list)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    senders: Mapped[list[str]] = mapped_column(JSON, default=list)
    chasers: Mapped[int] = mapped_column(Integer, default=0)
    message_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ViolationEventRow(Base):
    """The audit log: one row per transition of a violation, at the evaluation instant."""

    __tablename__ = "violation_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    event: Mapped[str] = mapped_column(String(20))
    severity: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    thread_id: Mapped[str] = mapped_column(String(1000))
    detail: Mapped[str] = mapped_column(Text, default="")


class ThreadChangeRow(Base):
    """A thread whose messages, locations or \\Answered flags changed since incremental
    evaluation last read it: evaluation reads and consumes these rows instead of comparing
    every thread with what it last saw. A thread merged away is logged too."""

    __tablename__ = "thread_changes"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    thread_id: Mapped[str] = mapped_column(String(1000))


class ThreadCheckRow(Base):
    """When a thread was last evaluated, and when its violations next change with no new
    mail (the indexed wake-up time)."""

    __tablename__ = "thread_checks"

    thread_id: Mapped[str] = mapped_column(String(1000), primary_key=True)
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    evaluated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class EvaluationStateRow(Base):
    """What every thread's evaluation shares (the config, the absences seen), by name, so a
    change of it re-evaluates every thread."""

    __tablename__ = "evaluation_state"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
