"""The message store: folders, messages and threads, mapped between rows and records."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy import Engine, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from monitor.records import Automatic, FetchedMessage, FolderState, MessageRecord, Thread
from monitor.storage.models import (
    FolderRow,
    LocationRow,
    MessageRefRow,
    MessageRow,
    ParticipantRow,
    ThreadRow,
)
from monitor.threads import base_subject, thread_messages

SAME_MESSAGE_SLACK = timedelta(
    hours=24
)  # product.md: a Date more than 24 h apart is another message
SUBJECT_REACH = timedelta(days=31)  # subject fallback joins threads at most 30 days older
MAX_ID_LENGTH = 900  # keeps Message-IDs indexable on every backend
ANSWERED = "\\answered"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """What storing one fetched batch did."""

    new_messages: int
    duplicates: int  # already stored (the same message in another folder, or seen before)
    renamed: int  # a reused Message-ID on a different message, kept under a synthetic id
    defects: int


@dataclass(frozen=True, slots=True)
class StoredThread:
    """A thread with its messages and, per message, whether a watched copy is \\Answered."""

    thread_id: str
    subject: str
    messages: tuple[MessageRecord, ...]
    answered: frozenset[str]  # message_ids flagged \\Answered in some watched folder
    arrived_in: dict[str, frozenset[str]]  # message_id -> mailboxes holding it


def fingerprint(record: MessageRecord) -> str:
    """What makes two copies the same message: sender, subject and Date."""
    stamp = record.date_header or record.internal_date
    key = f"{record.from_addr}\x00{record.subject}\x00{stamp.isoformat()}"
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _same_message(
    row_from: str | None, row_subject: str, row_time: datetime, record: MessageRecord
) -> bool:
    return (
        row_from == record.from_addr
        and row_subject == record.subject
        and abs(row_time - record.time) <= SAME_MESSAGE_SLACK
    )


def _renamed_id(original: str, digest: str) -> str:
    """A stable synthetic id for a different message that reused `original`'s Message-ID."""
    tag = hashlib.sha256(f"{original}\x00{digest}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"<dup.{tag[:32]}@pocwatch.invalid>"


def _row_values(record: MessageRecord, digest: str) -> dict[str, object]:
    return {
        "message_id": record.message_id,
        "synthetic_id": record.synthetic_id,
        "fingerprint": digest,
        "subject": record.subject,
        "base_subject": base_subject(record.subject)[:500],
        "from_addr": record.from_addr,
        "from_name": record.from_name,
        "sender_addr": record.sender_addr,
        "to_addrs": list(record.to_addrs),
        "cc_addrs": list(record.cc_addrs),
        "date_header": record.date_header,
        "internal_date": record.internal_date,
        "time": record.time,
        "in_reply_to": list(record.in_reply_to),
        "references": list(record.references),
        "thread_index_root": record.thread_index_root,
        "gm_thrid": record.gm_thrid,
        "automatic": record.automatic.value if record.automatic else None,
        "snippet": record.snippet,
        "size": record.size,
        "defects": list(record.defects),
    }


def record_from_row(row: MessageRow) -> MessageRecord:
    return MessageRecord(
        message_id=row.message_id,
        subject=row.subject,
        from_addr=row.from_addr,
        internal_date=row.internal_date,
        time=row.time,
        date_header=row.date_header,
        from_name=row.from_name,
        sender_addr=row.sender_addr,
        to_addrs=tuple(row.to_addrs),
        cc_addrs=tuple(row.cc_addrs),
        in_reply_to=tuple(row.in_reply_to),
        references=tuple(row.references),
        thread_index_root=row.thread_index_root,
        gm_thrid=row.gm_thrid,
        automatic=Automatic(row.automatic) if row.automatic else None,
        synthetic_id=row.synthetic_id,
        snippet=row.snippet,
        size=row.size,
        defects=tuple(row.defects),
    )


def _capped(record: MessageRecord) -> MessageRecord:
    """Over-long ids would not fit the unique index: keep them out of the way, with a defect."""
    changes: dict[str, object] = {}
    if len(record.message_id) > MAX_ID_LENGTH:
        digest = hashlib.sha256(record.message_id.encode("utf-8", "surrogatepass")).hexdigest()
        changes["message_id"] = f"<long.{digest[:32]}@pocwatch.invalid>"
        changes["synthetic_id"] = True
        changes["defects"] = (*record.defects, "Message-ID too long")
    refs = tuple(r for r in record.references if len(r) <= MAX_ID_LENGTH)
    irt = tuple(r for r in record.in_reply_to if len(r) <= MAX_ID_LENGTH)
    if refs != record.references or irt != record.in_reply_to:
        changes["references"] = refs
        changes["in_reply_to"] = irt
    return replace(record, **changes) if changes else record  # type: ignore[arg-type]


class MessageStore:
    """Reads and writes folders, messages and threads; the rest of the code sees records only."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def close(self) -> None:
        """Release pooled connections (PostgreSQL ones would otherwise linger until GC)."""
        self.engine.dispose()

    def __enter__(self) -> MessageStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- folders -----------------------------------------------------------------------------

    def folder_state(self, mailbox: str, folder: str) -> FolderState:
        with Session(self.engine) as session:
            row = self._folder_row(session, mailbox, folder)
            session.commit()
            return FolderState(
                mailbox=mailbox,
                folder=folder,
                uidvalidity=row.uidvalidity,
                uidnext=row.uidnext,
                highestmodseq=row.highestmodseq,
                last_seen_uid=row.last_seen_uid,
            )

    def folder_window_start(self, mailbox: str, folder: str) -> datetime | None:
        with Session(self.engine) as session:
            return session.scalar(
                select(FolderRow.window_start).where(
                    FolderRow.mailbox == mailbox, FolderRow.name == folder
                )
            )

    def folder_exists_count(self, mailbox: str, folder: str) -> int | None:
        with Session(self.engine) as session:
            return session.scalar(
                select(FolderRow.exists_count).where(
                    FolderRow.mailbox == mailbox, FolderRow.name == folder
                )
            )

    def _folder_row(self, session: Session, mailbox: str, folder: str) -> FolderRow:
        row = session.scalar(
            select(FolderRow).where(FolderRow.mailbox == mailbox, FolderRow.name == folder)
        )
        if row is None:
            row = FolderRow(mailbox=mailbox, name=folder, last_seen_uid=0)
            session.add(row)
            session.flush()
        return row

    def reset_folder(
        self, mailbox: str, folder: str, uidvalidity: int, window_start: datetime
    ) -> None:
        """Forget where messages sat in a folder whose UIDs changed meaning (new UIDVALIDITY).

        The messages themselves stay: they are keyed by Message-ID, so the resync finds them
        again instead of storing them twice.
        """
        with Session(self.engine) as session, session.begin():
            row = self._folder_row(session, mailbox, folder)
            session.execute(delete(LocationRow).where(LocationRow.folder_pk == row.id))
            row.uidvalidity = uidvalidity
            row.uidnext = None
            row.highestmodseq = None
            row.exists_count = None
            row.last_seen_uid = 0
            row.window_start = window_start

    def mark_folder_synced(
        self,
        mailbox: str,
        folder: str,
        *,
        uidnext: int | None,
        highestmodseq: int | None,
        exists_count: int | None,
        at: datetime,
    ) -> None:
        with Session(self.engine) as session, session.begin():
            row = self._folder_row(session, mailbox, folder)
            row.uidnext = uidnext
            row.highestmodseq = highestmodseq
            row.exists_count = exists_count
            row.last_synced_at = at

    def folder_uids(self, mailbox: str, folder: str) -> set[int]:
        with Session(self.engine) as session:
            return set(
                session.scalars(
                    select(LocationRow.uid)
                    .join(FolderRow, FolderRow.id == LocationRow.folder_pk)
                    .where(FolderRow.mailbox == mailbox, FolderRow.name == folder)
                )
            )

    def last_synced(self) -> dict[str, datetime | None]:
        """Per mailbox, the oldest last-sync time among its folders."""
        with Session(self.engine) as session:
            rows = session.execute(
                select(FolderRow.mailbox, func.min(FolderRow.last_synced_at)).group_by(
                    FolderRow.mailbox
                )
            )
            return {mailbox: at for mailbox, at in rows}

    # -- messages ----------------------------------------------------------------------------

    def store_batch(
        self, mailbox: str, folder: str, fetched: Sequence[FetchedMessage], *, last_seen_uid: int
    ) -> StoredBatch:
        """Store one fetched batch and advance the folder's UID mark, in one transaction.

        Re-running it after a crash is harmless: messages are keyed by Message-ID (with a
        content check), locations by folder + UID.
        """
        with Session(self.engine) as session, session.begin():
            folder_row = self._folder_row(session, mailbox, folder)
            new, dup, renamed, defects, pk_by_uid = self._store_messages(session, fetched)
            known = set(
                session.scalars(
                    select(LocationRow.uid).where(
                        LocationRow.folder_pk == folder_row.id,
                        LocationRow.uid.in_([f.uid for f in fetched]),
                    )
                )
            )
            locations = [
                {
                    "folder_pk": folder_row.id,
                    "uid": f.uid,
                    "message_pk": pk_by_uid[f.uid],
                    "flags": list(f.flags),
                    "answered": any(flag.lower() == ANSWERED for flag in f.flags),
                }
                for f in fetched
                if f.uid not in known
            ]
            if locations:
                session.execute(insert(LocationRow), locations)
            folder_row.last_seen_uid = max(folder_row.last_seen_uid, last_seen_uid)
            if folder_row.window_start is None:
                folder_row.window_start = min(
                    (f.record.internal_date for f in fetched), default=None
                )
        return StoredBatch(new, dup, renamed, defects)

    def _store_messages(
        self, session: Session, fetched: Sequence[FetchedMessage]
    ) -> tuple[int, int, int, int, dict[int, int]]:
        records = [_capped(f.record) for f in fetched]
        wanted = {r.message_id for r in records}
        existing: dict[str, tuple[int, str | None, str, datetime]] = {}
        for chunk in _chunks(sorted(wanted), 500):
            for pk, mid, frm, subj, when in session.execute(
                select(
                    MessageRow.id,
                    MessageRow.message_id,
                    MessageRow.from_addr,
                    MessageRow.subject,
                    MessageRow.time,
                ).where(MessageRow.message_id.in_(chunk))
            ):
                existing[mid] = (pk, frm, subj, when)

        pending: dict[str, MessageRecord] = {}
        target_of: list[str] = []
        dup = renamed = 0
        for record in records:
            digest = fingerprint(record)
            mid = record.message_id
            holder = existing.get(mid)
            queued = pending.get(mid)
            clash = (holder is not None and not _same_message(*holder[1:], record)) or (
                queued is not None
                and not _same_message(queued.from_addr, queued.subject, queued.time, record)
            )
            if clash:
                mid = _renamed_id(mid, digest)
                renamed += 1
                record = _as_renamed(record, mid)
                if mid not in existing:
                    row = session.execute(
                        select(
                            MessageRow.id, MessageRow.from_addr, MessageRow.subject, MessageRow.time
                        ).where(MessageRow.message_id == mid)
                    ).first()
                    if row is not None:
                        existing[mid] = (row[0], row[1], row[2], row[3])
            if mid in existing or mid in pending:
                dup += 1
            else:
                pending[mid] = record
            target_of.append(mid)

        defects = 0
        if pending:
            values = [_row_values(r, fingerprint(r)) for r in pending.values()]
            inserted = session.execute(
                insert(MessageRow).returning(
                    MessageRow.id, MessageRow.message_id, sort_by_parameter_order=True
                ),
                values,
            ).all()
            refs: list[dict[str, object]] = []
            people: list[dict[str, object]] = []
            for pk, mid in inserted:
                record = pending[mid]
                existing[mid] = (pk, record.from_addr, record.subject, record.time)
                defects += bool(record.defects)
                for ref in dict.fromkeys((*record.references, *record.in_reply_to)):
                    refs.append({"message_pk": pk, "ref_id": ref})
                for role, addrs in (
                    ("from", (record.from_addr,)),
                    ("sender", (record.sender_addr,)),
                    ("to", record.to_addrs),
                    ("cc", record.cc_addrs),
                ):
                    for addr in dict.fromkeys(a for a in addrs if a):
                        people.append({"message_pk": pk, "address": addr[:320], "role": role})
            if refs:
                session.execute(insert(MessageRefRow), refs)
            if people:
                session.execute(insert(ParticipantRow), people)
        pk_by_uid = {f.uid: existing[mid][0] for f, mid in zip(fetched, target_of, strict=True)}
        return len(pending), dup, renamed, defects, pk_by_uid

    def update_flags(
        self, mailbox: str, folder: str, flags_by_uid: dict[int, tuple[str, ...]]
    ) -> int:
        """Record new flags for known UIDs (\\Answered matters); returns how many changed."""
        if not flags_by_uid:
            return 0
        changed = 0
        with Session(self.engine) as session, session.begin():
            folder_row = self._folder_row(session, mailbox, folder)
            rows = session.scalars(
                select(LocationRow).where(
                    LocationRow.folder_pk == folder_row.id,
                    LocationRow.uid.in_(list(flags_by_uid)),
                )
            )
            for row in rows:
                flags = list(flags_by_uid[row.uid])
                if sorted(flags) != sorted(row.flags):
                    row.flags = flags
                    row.answered = any(f.lower() == ANSWERED for f in flags)
                    changed += 1
        return changed

    def message_count(self) -> int:
        with Session(self.engine) as session:
            return session.scalar(select(func.count()).select_from(MessageRow)) or 0

    # -- threads -----------------------------------------------------------------------------

    def assign_threads(self, is_external: Callable[[str], bool]) -> int:
        """Thread every message not yet in a thread, merging with stored threads as needed.

        Only the threads the new messages can touch are loaded and rebuilt. Returns the number
        of messages newly threaded.
        """
        with Session(self.engine) as session, session.begin():
            fresh = list(session.scalars(select(MessageRow).where(MessageRow.thread_id.is_(None))))
            if not fresh:
                return 0
            related = self._related_thread_ids(session, fresh)
            members = list(fresh)
            for chunk in _chunks(sorted(related), 500):
                members.extend(
                    session.scalars(select(MessageRow).where(MessageRow.thread_id.in_(chunk)))
                )
            by_id = {row.message_id: row for row in members}
            threads = thread_messages((record_from_row(r) for r in by_id.values()), is_external)
            for chunk in _chunks(sorted(related), 500):
                session.execute(delete(ThreadRow).where(ThreadRow.thread_id.in_(chunk)))
            thread_rows = []
            for thread in threads:
                rows = [by_id[mid] for mid in thread.message_ids]
                for row in rows:
                    if row.thread_id != thread.thread_id:
                        row.thread_id = thread.thread_id
                thread_rows.append(
                    {
                        "thread_id": thread.thread_id,
                        "subject": rows[0].subject,
                        "first_at": rows[0].time,
                        "last_at": rows[-1].time,
                        "message_count": len(rows),
                    }
                )
            session.flush()
            # A thread id can also name a thread we did not load (a root shared by coincidence
            # is impossible, but stay safe): replace rather than collide.
            ids = [t["thread_id"] for t in thread_rows]
            for chunk in _chunks(ids, 500):
                session.execute(delete(ThreadRow).where(ThreadRow.thread_id.in_(chunk)))
            session.execute(insert(ThreadRow), thread_rows)
            return len(fresh)

    def _related_thread_ids(self, session: Session, fresh: list[MessageRow]) -> set[str]:
        """Thread ids of stored messages that a fresh message may link to."""
        ids = {r.message_id for r in fresh}
        refs = {ref for r in fresh for ref in (*r.references, *r.in_reply_to)}
        links = ids | refs
        index_roots = {r.thread_index_root for r in fresh if r.thread_index_root}
        thrids = {r.gm_thrid for r in fresh if r.gm_thrid is not None}
        subjects = {r.base_subject for r in fresh if r.base_subject}
        related: set[str] = set()

        def collect(stmt: object) -> None:
            related.update(t for t in session.scalars(stmt) if t)  # type: ignore[call-overload]

        for chunk in _chunks(sorted(links), 400):
            collect(select(MessageRow.thread_id).where(MessageRow.message_id.in_(chunk)))
            collect(
                select(MessageRow.thread_id)
                .join(MessageRefRow, MessageRefRow.message_pk == MessageRow.id)
                .where(MessageRefRow.ref_id.in_(chunk))
            )
        for chunk in _chunks(sorted(index_roots), 400):
            collect(select(MessageRow.thread_id).where(MessageRow.thread_index_root.in_(chunk)))
        for chunk in _chunks(sorted(thrids), 400):
            collect(select(MessageRow.thread_id).where(MessageRow.gm_thrid.in_(chunk)))
        if subjects:
            low = min(r.time for r in fresh) - SUBJECT_REACH
            high = max(r.time for r in fresh) + SUBJECT_REACH
            for chunk in _chunks(sorted(subjects), 400):
                collect(
                    select(MessageRow.thread_id).where(
                        MessageRow.base_subject.in_(chunk),
                        MessageRow.time >= low,
                        MessageRow.time <= high,
                    )
                )
        return related

    def threads(self, *, thread_ids: Iterable[str] | None = None) -> list[StoredThread]:
        """Stored threads with their messages, oldest activity first."""
        with Session(self.engine) as session:
            stmt = select(MessageRow).where(MessageRow.thread_id.is_not(None))
            if thread_ids is not None:
                wanted = list(thread_ids)
                stmt = stmt.where(MessageRow.thread_id.in_(wanted))
            stmt = stmt.order_by(MessageRow.thread_id, MessageRow.time, MessageRow.message_id)
            rows = list(session.scalars(stmt))
            answered_pks: set[int] = set()
            mailboxes_of: dict[int, set[str]] = {}
            for pk, mailbox, answered in session.execute(
                select(LocationRow.message_pk, FolderRow.mailbox, LocationRow.answered).join(
                    FolderRow, FolderRow.id == LocationRow.folder_pk
                )
            ):
                mailboxes_of.setdefault(pk, set()).add(mailbox)
                if answered:
                    answered_pks.add(pk)
        grouped: dict[str, list[MessageRow]] = {}
        for row in rows:
            grouped.setdefault(row.thread_id or "", []).append(row)
        result = [
            StoredThread(
                thread_id=tid,
                subject=members[0].subject,
                messages=tuple(record_from_row(r) for r in members),
                answered=frozenset(r.message_id for r in members if r.id in answered_pks),
                arrived_in={r.message_id: frozenset(mailboxes_of.get(r.id, ())) for r in members},
            )
            for tid, members in grouped.items()
        ]
        result.sort(key=lambda t: (t.messages[-1].time, t.thread_id))
        return result

    def thread_of(self, message_id: str) -> str | None:
        with Session(self.engine) as session:
            return session.scalar(
                select(MessageRow.thread_id).where(MessageRow.message_id == message_id)
            )

    def thread_rows(self) -> list[Thread]:
        """Thread ids with their message ids (a light view for tests and summaries)."""
        with Session(self.engine) as session:
            rows = session.execute(
                select(MessageRow.thread_id, MessageRow.message_id)
                .where(MessageRow.thread_id.is_not(None))
                .order_by(MessageRow.thread_id, MessageRow.time, MessageRow.message_id)
            )
            grouped: dict[str, list[str]] = {}
            for tid, mid in rows:
                grouped.setdefault(tid, []).append(mid)
        return [Thread(tid, tuple(mids)) for tid, mids in grouped.items()]

    def thread_count(self) -> int:
        with Session(self.engine) as session:
            return session.scalar(select(func.count()).select_from(ThreadRow)) or 0

    def unthreaded_count(self) -> int:
        with Session(self.engine) as session:
            return (
                session.scalar(
                    select(func.count())
                    .select_from(MessageRow)
                    .where(MessageRow.thread_id.is_(None))
                )
                or 0
            )

    def clear_threads(self) -> None:
        """Forget every thread assignment (threading is rebuilt on the next pass)."""
        with Session(self.engine) as session, session.begin():
            session.execute(update(MessageRow).values(thread_id=None))
            session.execute(delete(ThreadRow))


def _as_renamed(record: MessageRecord, new_id: str) -> MessageRecord:
    return replace(
        record,
        message_id=new_id,
        synthetic_id=True,
        defects=(*record.defects, f"duplicate Message-ID {record.message_id}"),
    )


def _chunks(items: Iterable[T], size: int) -> Iterable[list[T]]:
    seq = list(items)
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


def utcnow() -> datetime:
    """The clock, for the I/O edge only (the pure core is handed `now`)."""
    return datetime.now(UTC)
