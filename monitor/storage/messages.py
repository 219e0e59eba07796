"""The message store: folders, messages and threads, mapped between rows and records."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Connection,
    Engine,
    Executable,
    Select,
    any_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from monitor.records import (
    Automatic,
    FetchedMessage,
    FolderState,
    MessageRecord,
    Thread,
    ThreadView,
)
from monitor.storage.bulk import BulkInsert
from monitor.storage.db import chunks
from monitor.storage.models import (
    OUT_OF_OFFICE_ROWS,
    FolderRow,
    LocationRow,
    MessageRefRow,
    MessageRow,
    ThreadChangeRow,
    ThreadRow,
)
from monitor.threads import (
    base_subject,
    has_reply_prefix,
    subject_fallback_key,
    thread_messages,
)

SAME_MESSAGE_SLACK = timedelta(
    hours=24
)  # product.md: a Date more than 24 h apart is another message
SUBJECT_REACH = timedelta(days=31)  # subject fallback joins threads at most 30 days older
MAX_ID_LENGTH = 900  # keeps Message-IDs indexable on every backend
ANSWERED = "\\answered"
# Ids looked up at once in the threading lookups: a whole batch's, so each lookup runs once
# per batch (a planner that scans a small table does so once, not twice); one array parameter
# on PostgreSQL, well under SQLite's 32766 variables.
LOOKUP_CHUNK = 2000
ANALYZE_FROM = 2000  # new messages before the first statistics refresh (PostgreSQL)


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """What storing one fetched batch did."""

    new_messages: int
    duplicates: int  # already stored (the same message in another folder, or seen before)
    renamed: int  # a reused Message-ID on a different message, kept under a synthetic id
    defects: int


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


_MESSAGE_INSERT = BulkInsert(
    MessageRow,
    (
        "message_id",
        "synthetic_id",
        "fingerprint",
        "subject",
        "base_subject",
        "from_addr",
        "from_name",
        "sender_addr",
        "to_addrs",
        "cc_addrs",
        "date_header",
        "internal_date",
        "time",
        "in_reply_to",
        "references",
        "thread_index_root",
        "gm_thrid",
        "automatic",
        "snippet",
        "size",
        "defects",
        "thread_id",
    ),
)
_MESSAGE_INSERT_WITH_ID = BulkInsert(MessageRow, ("id", *_MESSAGE_INSERT.columns))
_NEXT_MESSAGE_IDS = text(
    "SELECT nextval(pg_get_serial_sequence('messages', 'id')) FROM generate_series(1, :n)"
)
_REF_INSERT = BulkInsert(MessageRefRow, ("message_pk", "ref_id"))
_LOCATION_INSERT = BulkInsert(LocationRow, ("folder_pk", "uid", "message_pk", "flags", "answered"))
_THREAD_INSERT = BulkInsert(
    ThreadRow, ("thread_id", "subject", "first_at", "last_at", "message_count")
)
_CHANGE_INSERT = BulkInsert(ThreadChangeRow, ("thread_id",))


def _row_values(
    record: MessageRecord, digest: str, base: str, thread_id: str | None
) -> tuple[object, ...]:
    """A messages row in _MESSAGE_INSERT's column order."""
    return (
        record.message_id,
        record.synthetic_id,
        digest,
        record.subject,
        base,
        record.from_addr,
        record.from_name,
        record.sender_addr,
        record.to_addrs,
        record.cc_addrs,
        record.date_header,
        record.internal_date,
        record.time,
        record.in_reply_to,
        record.references,
        record.thread_index_root,
        record.gm_thrid,
        record.automatic.value if record.automatic else None,
        record.snippet,
        record.size,
        record.defects,
        thread_id,
    )


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
        self._rows_analyzed: int | None = None  # messages rows when the planner last counted
        self._rows_added = 0  # messages rows this store added since

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
                exists_count=row.exists_count,
                window_start=row.window_start,
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
            conn = session.connection()
            _log_changes(conn, _threads_of(conn, LocationRow.folder_pk == row.id))
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

    def store_batch(
        self,
        mailbox: str,
        folder: str,
        fetched: Sequence[FetchedMessage],
        *,
        last_seen_uid: int,
        is_external: Callable[[str], bool] | None = None,
    ) -> StoredBatch:
        """Store one fetched batch and advance the folder's UID mark, in one transaction.

        With `is_external`, the batch is also threaded in that transaction, exactly as
        assign_threads would thread it right after: new messages go in with their thread id.

        Re-running it after a crash is harmless: messages are keyed by Message-ID (with a
        content check), locations by folder + UID.
        """
        with self.engine.begin() as conn:
            _plan_for_key_lookups(conn)
            folder_pk, seen_uid, window_start = _folder(conn, mailbox, folder)
            batch = _dedupe(conn, fetched)
            plan = None
            if is_external is not None:
                new = [
                    _Member(None, record, batch.bases[mid], None)
                    for mid, record in batch.pending.items()
                ]
                plan = _plan_threads(conn, new, is_external)
            defects = _insert_new(conn, batch, plan.thread_of if plan else {})
            pk_by_uid = {
                f.uid: batch.existing[mid][0]
                for f, mid in zip(fetched, batch.target_of, strict=True)
            }
            known = set(
                conn.scalars(
                    select(LocationRow.uid).where(
                        LocationRow.folder_pk == folder_pk,
                        _in(conn, LocationRow.uid, [f.uid for f in fetched]),
                    )
                )
            )
            locations = [
                (
                    folder_pk,
                    f.uid,
                    pk_by_uid[f.uid],
                    f.flags,
                    ANSWERED in map(str.lower, f.flags),
                )
                for f in fetched
                if f.uid not in known
            ]
            if locations:
                _LOCATION_INSERT.execute(conn, locations)
                # A known message seen in one more place may change its thread's answer
                # (\\Answered, the mailbox it arrived in); new messages are logged by threading.
                _log_changes(
                    conn,
                    (
                        tid
                        for f in fetched
                        if f.uid not in known
                        and (tid := batch.stored_thread.get(pk_by_uid[f.uid])) is not None
                    ),
                )
            if plan is not None:
                plan.write(conn)
            changes: dict[str, object] = {}
            if last_seen_uid > seen_uid:
                changes["last_seen_uid"] = last_seen_uid
            if window_start is None and fetched:
                changes["window_start"] = min(f.record.internal_date for f in fetched)
            if changes:
                conn.execute(update(FolderRow).where(FolderRow.id == folder_pk).values(changes))
        self._keep_statistics(len(batch.pending))
        return StoredBatch(len(batch.pending), batch.dup, batch.renamed, defects)

    def _keep_statistics(self, added: int) -> None:
        """On PostgreSQL, refresh the planner's statistics of the ingest tables each time this
        store has doubled them.

        Autovacuum refreshes them about once a minute; a backfill doubles the tables many times
        in that minute, and the planner, still seeing small tables, scans them whole for every
        batch's lookups: a cost that grows with the store, per batch. ANALYZE samples a bounded
        number of rows, and doubling keeps the count of runs logarithmic.
        """
        if self.engine.dialect.name != "postgresql" or not added:
            return
        if self._rows_analyzed is None:
            with self.engine.connect() as conn:
                counted = conn.scalar(
                    text("SELECT reltuples FROM pg_class WHERE oid = 'messages'::regclass")
                )
            self._rows_analyzed = max(int(counted or 0), 0)  # -1: never analyzed
        self._rows_added += added
        if self._rows_added < max(ANALYZE_FROM, self._rows_analyzed):
            return
        with self.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE messages, message_refs, locations, threads")
        self._rows_analyzed += self._rows_added
        self._rows_added = 0

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
            answered_changed: set[int] = set()
            for row in rows:
                flags = list(flags_by_uid[row.uid])
                if sorted(flags) != sorted(row.flags):
                    row.flags = flags
                    answered = any(f.lower() == ANSWERED for f in flags)
                    if answered != row.answered:
                        answered_changed.add(row.message_pk)
                    row.answered = answered
                    changed += 1
            conn = session.connection()
            _log_changes(conn, _threads_of_messages(conn, answered_changed))
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
        with self.engine.begin() as conn:
            plan = _plan_threads(conn, [], is_external)
            if plan is None:
                return 0
            plan.write(conn)
            return plan.fresh

    def threads(self, *, thread_ids: Iterable[str] | None = None) -> list[ThreadView]:
        """Stored threads with their messages, oldest activity first."""
        with Session(self.engine) as session:
            stmt = select(MessageRow).where(MessageRow.thread_id.is_not(None))
            locations = select(
                LocationRow.message_pk, FolderRow.mailbox, LocationRow.answered
            ).join(FolderRow, FolderRow.id == LocationRow.folder_pk)
            if thread_ids is not None:
                wanted = list(thread_ids)
                stmt = stmt.where(MessageRow.thread_id.in_(wanted))
                # Only the locations of the wanted threads' messages, not every location.
                locations = locations.join(
                    MessageRow, MessageRow.id == LocationRow.message_pk
                ).where(MessageRow.thread_id.in_(wanted))
            stmt = stmt.order_by(MessageRow.thread_id, MessageRow.time, MessageRow.message_id)
            rows = list(session.scalars(stmt))
            answered_pks: set[int] = set()
            mailboxes_of: dict[int, set[str]] = {}
            for pk, mailbox, answered in session.execute(locations):
                mailboxes_of.setdefault(pk, set()).add(mailbox)
                if answered:
                    answered_pks.add(pk)
        grouped: dict[str, list[MessageRow]] = {}
        for row in rows:
            grouped.setdefault(row.thread_id or "", []).append(row)
        result = [
            ThreadView(
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

    def thread_ids(self) -> list[str]:
        with Session(self.engine) as session:
            return list(session.scalars(select(ThreadRow.thread_id)))

    def thread_of(self, message_id: str) -> str | None:
        with Session(self.engine) as session:
            return session.scalar(
                select(MessageRow.thread_id).where(MessageRow.message_id == message_id)
            )

    def thread_naming(self, message_id: str) -> str | None:
        """The thread of a stored message that names `message_id` in its references: how a
        conversation rooted at a message never stored is found."""
        with Session(self.engine) as session:
            return session.scalar(
                select(MessageRow.thread_id)
                .join(MessageRefRow, MessageRefRow.message_pk == MessageRow.id)
                .where(MessageRefRow.ref_id == message_id, MessageRow.thread_id.is_not(None))
                .limit(1)
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
                grouped.setdefault(tid or "", []).append(mid)
        return [Thread(tid, tuple(mids)) for tid, mids in grouped.items()]

    def out_of_office_messages(self, until: datetime) -> list[MessageRecord]:
        """Threaded out-of-office replies up to `until` (they mark our people absent in every
        thread), through a partial index that holds only them (its condition is spelled out
        literally: a bound parameter would keep SQLite from using it)."""
        with Session(self.engine) as session:
            rows = session.scalars(
                select(MessageRow)
                .where(
                    text(OUT_OF_OFFICE_ROWS),
                    MessageRow.thread_id.is_not(None),
                    MessageRow.time <= until,
                )
                .order_by(MessageRow.time, MessageRow.message_id)
            )
            return [record_from_row(row) for row in rows]

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


# What threading reads of a message: the rest (snippet, defects, ...) stays in the table.
_THREADING_COLUMNS = (
    MessageRow.id,
    MessageRow.message_id,
    MessageRow.subject,
    MessageRow.base_subject,
    MessageRow.from_addr,
    MessageRow.to_addrs,
    MessageRow.cc_addrs,
    MessageRow.time,
    MessageRow.in_reply_to,
    MessageRow.references,
    MessageRow.thread_index_root,
    MessageRow.gm_thrid,
    MessageRow.thread_id,
)


@dataclass(frozen=True, slots=True)
class _Member:
    """A message as threading sees it, with its row id (None: not inserted yet) and thread."""

    pk: int | None
    record: MessageRecord
    base_subject: str
    thread_id: str | None


def _members(conn: Connection, stmt: Executable) -> list[_Member]:
    return [
        _Member(
            pk=pk,
            record=MessageRecord(
                message_id=mid,
                subject=subject,
                from_addr=from_addr,
                internal_date=when,
                time=when,
                to_addrs=tuple(to_addrs),
                cc_addrs=tuple(cc_addrs),
                in_reply_to=tuple(in_reply_to),
                references=tuple(references),
                thread_index_root=thread_index_root,
                gm_thrid=gm_thrid,
            ),
            base_subject=base,
            thread_id=tid,
        )
        for (
            pk,
            mid,
            subject,
            base,
            from_addr,
            to_addrs,
            cc_addrs,
            when,
            in_reply_to,
            references,
            thread_index_root,
            gm_thrid,
            tid,
        ) in conn.execute(stmt)
    ]


def _load_threads(
    conn: Connection, thread_ids: Iterable[str], loaded: dict[str, _Member], done: set[str]
) -> list[_Member]:
    """Add the members of the given threads not loaded yet to `loaded`; return them."""
    wanted = sorted(set(thread_ids) - done)
    done.update(wanted)
    added = []
    for chunk in chunks(wanted, 500):
        stmt = select(*_THREADING_COLUMNS).where(_in(conn, MessageRow.thread_id, chunk))
        for member in _members(conn, stmt):
            if member.record.message_id not in loaded:
                loaded[member.record.message_id] = member
                added.append(member)
    return added


def _linked_thread_ids(conn: Connection, fresh: list[_Member]) -> set[str]:
    """Thread ids of stored messages that share an id, a reference, a Thread-Index or a
    X-GM-THRID with a fresh message."""
    ids = {m.record.message_id for m in fresh}
    refs = {ref for m in fresh for ref in (*m.record.references, *m.record.in_reply_to)}
    index_roots = {m.record.thread_index_root for m in fresh if m.record.thread_index_root}
    thrids = {m.record.gm_thrid for m in fresh if m.record.gm_thrid is not None}
    related: set[str] = set()

    def collect(stmt: Select[str | None]) -> None:
        related.update(t for t in conn.scalars(stmt) if t)

    # A fresh message's own id names no threaded row (it is new, or stored unthreaded).
    stored: set[str] = set()
    for chunk in chunks(sorted(refs - ids), LOOKUP_CHUNK):
        for message_id, thread_id in conn.execute(
            select(MessageRow.message_id, MessageRow.thread_id).where(
                _in(conn, MessageRow.message_id, chunk)
            )
        ):
            stored.add(message_id)
            if thread_id:
                related.add(thread_id)
    # Stored messages that name a fresh message, or share a reference with one. A stored
    # message that names a stored one is in its thread, found above: only the references
    # to messages not stored need this (slower) lookup. In a backfill in date order that is
    # the batch's own ids and the few roots never stored.
    # Two lookups, not a join: PostgreSQL plans that join as a scan of every message, while
    # each of these is an index lookup, and the second usually has nothing to look up.
    links = ids | (refs - stored)
    naming: set[int] = set()
    for chunk in chunks(sorted(links), LOOKUP_CHUNK):
        naming.update(
            conn.scalars(
                select(MessageRefRow.message_pk).where(_in(conn, MessageRefRow.ref_id, chunk))
            )
        )
    for pk_chunk in chunks(sorted(naming), LOOKUP_CHUNK):
        collect(select(MessageRow.thread_id).where(_in(conn, MessageRow.id, pk_chunk)))
    for chunk in chunks(sorted(index_roots), 400):
        collect(select(MessageRow.thread_id).where(_in(conn, MessageRow.thread_index_root, chunk)))
    for thrid_chunk in chunks(sorted(thrids), 400):
        collect(select(MessageRow.thread_id).where(_in(conn, MessageRow.gm_thrid, thrid_chunk)))
    return related


def _load_subject_threads(
    conn: Connection,
    fresh: list[_Member],
    loaded: dict[str, _Member],
    done: set[str],
) -> None:
    """Load the stored threads whose subject-rule placement the fresh messages may change,
    and the threads those placements weigh.

    Threading walks messages in time order, so up to the earliest fresh message every
    decision stands as stored. From there on, a candidate (a message with a reply or forward
    prefix and no usable references) may decide otherwise when a thread it may join (one
    holding its base subject) has changed, and only loaded threads change. So two steps, until
    nothing more is loaded: every stored candidate from the earliest fresh message on, up to
    reach past the newest loaded message, whose base subject a loaded message holds; and, for
    every loaded candidate from that time on, the threads holding its base subject and active
    within reach of it. When mail comes in date order few stored messages are that recent,
    and a subject no such candidate uses loads nothing, however common it is.
    """
    earliest = min(m.record.time for m in fresh)
    later: list[tuple[str, str]] = []  # (thread id, base subject) of those stored candidates
    scanned: datetime | None = None  # they are read up to this time
    searched: dict[str, tuple[datetime, datetime]] = {}  # base subject -> window loaded
    while True:
        count = len(loaded)
        high = max(m.record.time for m in loaded.values()) + SUBJECT_REACH
        if scanned is None or high > scanned:
            # SQL keeps the rows that can hold a prefix (a colon, or "(fw" at the end) and no
            # usable reference; has_reply_prefix decides. By time only, not base subject: a
            # common subject ("invoice") would visit every message that ever had it, while
            # the time range is narrow when mail comes in date order.
            rows = conn.execute(
                select(MessageRow.thread_id, MessageRow.subject, MessageRow.base_subject).where(
                    MessageRow.time >= earliest if scanned is None else MessageRow.time > scanned,
                    MessageRow.time <= high,
                    MessageRow.thread_id.is_not(None),
                    or_(
                        MessageRow.subject.contains(":"),
                        MessageRow.subject.contains("\uff1a"),
                        MessageRow.subject.ilike("%(fw%"),
                    ),
                    ~exists().where(
                        MessageRefRow.message_pk == MessageRow.id,
                        MessageRefRow.ref_id != MessageRow.message_id,
                        MessageRefRow.ref_id != "",
                    ),
                )
            )
            later.extend(
                (tid, base) for tid, subject, base in rows if tid and has_reply_prefix(subject)
            )
            scanned = high
        if later:
            held = {m.base_subject for m in loaded.values()}
            _load_threads(conn, (tid for tid, base in later if base in held), loaded, done)
        windows: dict[str, tuple[datetime, datetime]] = {}
        for m in loaded.values():
            when = m.record.time
            if when >= earliest and subject_fallback_key(m.record) is not None:
                low, top = windows.get(m.base_subject, (when, when))
                windows[m.base_subject] = (min(low, when), max(top, when))
        for key, (low, top) in windows.items():
            seen = searched.get(key)
            if seen is not None:
                windows[key] = (min(low, seen[0]), max(top, seen[1]))
        wanted = sorted(key for key, window in windows.items() if searched.get(key) != window)
        for chunk in chunks(wanted, 400):
            low = min(windows[key][0] for key in chunk) - SUBJECT_REACH
            top = max(windows[key][1] for key in chunk)
            searched.update((key, windows[key]) for key in chunk)
            thread_ids = conn.scalars(
                select(ThreadRow.thread_id)
                .join(MessageRow, MessageRow.thread_id == ThreadRow.thread_id)
                .where(
                    _in(conn, MessageRow.base_subject, chunk),
                    MessageRow.time <= top,
                    ThreadRow.last_at >= low,
                )
            )
            _load_threads(conn, set(thread_ids), loaded, done)
        if len(loaded) == count:
            return


@dataclass(slots=True)
class _ThreadPlan:
    """What threading a batch decided: written by write(), new messages carry thread_of."""

    loaded: dict[str, _Member]
    loaded_threads: set[str]
    threads: list[Thread]
    fresh: int
    thread_of: dict[str, str]  # Message-ID -> thread id, for messages not inserted yet

    def write(self, conn: Connection) -> None:
        # The loaded threads are rewritten; a new thread id naming a thread we did not load
        # cannot happen (its messages would have linked it), but replace rather than collide.
        replaced = self.loaded_threads | {thread.thread_id for thread in self.threads}
        for chunk in chunks(sorted(replaced), 500):
            conn.execute(delete(ThreadRow).where(_in(conn, ThreadRow.thread_id, chunk)))
        moved: list[dict[str, object]] = []
        thread_rows = []
        changed: set[str] = set()
        for thread in self.threads:
            members = [self.loaded[mid] for mid in thread.message_ids]
            for member in members:
                if member.thread_id == thread.thread_id:
                    continue
                changed.add(thread.thread_id)
                if member.thread_id is not None:
                    changed.add(member.thread_id)  # it lost a message, or was merged
                if member.pk is not None:
                    moved.append({"pk": member.pk, "tid": thread.thread_id})
            first, last = members[0].record, members[-1].record
            thread_rows.append(
                (thread.thread_id, first.subject, first.time, last.time, len(members))
            )
        if moved:
            conn.execute(
                update(MessageRow)
                .where(MessageRow.id == bindparam("pk"))
                .values(thread_id=bindparam("tid")),
                moved,
            )
        _THREAD_INSERT.execute(conn, thread_rows)
        _log_changes(conn, changed)


def _plan_threads(
    conn: Connection, new: list[_Member], is_external: Callable[[str], bool]
) -> _ThreadPlan | None:
    """Thread `new` (not inserted yet) and every stored message without a thread, with the
    stored threads they can touch; None when there is nothing to thread."""
    fresh = new + _members(conn, select(*_THREADING_COLUMNS).where(MessageRow.thread_id.is_(None)))
    if not fresh:
        return None
    loaded = {m.record.message_id: m for m in fresh}
    loaded_threads: set[str] = set()
    _load_threads(conn, _linked_thread_ids(conn, fresh), loaded, loaded_threads)
    _load_subject_threads(conn, fresh, loaded, loaded_threads)
    threads = thread_messages((m.record for m in loaded.values()), is_external)
    thread_of = {
        mid: thread.thread_id
        for thread in threads
        for mid in thread.message_ids
        if loaded[mid].pk is None
    }
    return _ThreadPlan(loaded, loaded_threads, threads, len(fresh), thread_of)


def _log_changes(conn: Connection, thread_ids: Iterable[str]) -> None:
    """Log threads whose evaluation may now differ, for incremental evaluation."""
    _CHANGE_INSERT.execute(conn, [(tid,) for tid in sorted(set(thread_ids))])


def _threads_of(conn: Connection, where_location: ColumnElement[bool]) -> set[str]:
    """The threads of the messages whose locations match `where_location`."""
    return {
        tid
        for tid in conn.scalars(
            select(MessageRow.thread_id)
            .join(LocationRow, LocationRow.message_pk == MessageRow.id)
            .where(where_location)
        )
        if tid
    }


def _threads_of_messages(conn: Connection, pks: Iterable[int]) -> set[str]:
    found: set[str] = set()
    for chunk in chunks(sorted(set(pks)), 500):
        found.update(
            tid
            for tid in conn.scalars(
                select(MessageRow.thread_id).where(_in(conn, MessageRow.id, chunk))
            )
            if tid
        )
    return found


def _folder(conn: Connection, mailbox: str, folder: str) -> tuple[int, int, datetime | None]:
    """The folder's row id, UID mark and window start; the row is made when missing."""
    row = conn.execute(
        select(FolderRow.id, FolderRow.last_seen_uid, FolderRow.window_start).where(
            FolderRow.mailbox == mailbox, FolderRow.name == folder
        )
    ).first()
    if row is not None:
        return row[0], row[1], row[2]
    pk = conn.execute(
        insert(FolderRow)
        .values(mailbox=mailbox, name=folder, last_seen_uid=0)
        .returning(FolderRow.id)
    ).scalar_one()
    return pk, 0, None


@dataclass(slots=True)
class _Batch:
    """A fetched batch sorted out against the store: which messages are new, and where each
    fetched one goes."""

    existing: dict[str, tuple[int, str | None, str, datetime]]  # mid -> pk, from, subj, time
    pending: dict[str, MessageRecord]  # new messages by (possibly renamed) Message-ID
    digests: dict[str, str]
    bases: dict[str, str]  # their base subjects, as stored
    target_of: list[str]  # per fetched message, the Message-ID it is stored under
    dup: int
    renamed: int
    stored_thread: dict[int, str | None]  # row id -> thread id, of messages stored before


# What dedup compares a fetched message with, and the thread a known one is in.
_DEDUPE_COLUMNS = (
    MessageRow.id,
    MessageRow.message_id,
    MessageRow.from_addr,
    MessageRow.subject,
    MessageRow.time,
    MessageRow.thread_id,
)


def _dedupe(conn: Connection, fetched: Sequence[FetchedMessage]) -> _Batch:
    records = [_capped(f.record) for f in fetched]
    wanted = {r.message_id for r in records}
    existing: dict[str, tuple[int, str | None, str, datetime]] = {}
    stored_thread: dict[int, str | None] = {}
    for chunk in chunks(sorted(wanted), 500):
        for pk, mid, frm, subj, when, tid in conn.execute(
            select(*_DEDUPE_COLUMNS).where(_in(conn, MessageRow.message_id, chunk))
        ):
            existing[mid] = (pk, frm, subj, when)
            stored_thread[pk] = tid

    pending: dict[str, MessageRecord] = {}
    digests: dict[str, str] = {}
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
                row = conn.execute(
                    select(*_DEDUPE_COLUMNS).where(MessageRow.message_id == mid)
                ).first()
                if row is not None:
                    pk, _mid, frm, subj, when, tid = row
                    existing[mid] = (pk, frm, subj, when)
                    stored_thread[pk] = tid
        if mid in existing or mid in pending:
            dup += 1
        else:
            pending[mid] = record
            digests[mid] = digest  # a renamed copy keeps From, Subject and Date
        target_of.append(mid)
    bases = {mid: base_subject(record.subject)[:500] for mid, record in pending.items()}
    return _Batch(existing, pending, digests, bases, target_of, dup, renamed, stored_thread)


def _plan_for_key_lookups(conn: Connection) -> None:
    """On PostgreSQL, price index reads as the cached reads they are, for this transaction.

    Every lookup of a batch is a batch's worth of keys against an index. With the default
    random_page_cost (4, for spinning disks) the planner prefers to scan a table of up to
    some 100k rows whole, about ten times slower here, and more so as the store grows.
    1.1 is the usual value for SSD storage; it holds for this transaction only, and the
    server's own setting applies everywhere else.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL random_page_cost = 1.1")


def _insert_new(conn: Connection, batch: _Batch, thread_of: dict[str, str]) -> int:
    """Insert the batch's new messages (with their thread when known) and their references;
    record their row ids in batch.existing. Returns how many have defects."""
    if not batch.pending:
        return 0
    rows = (
        _row_values(record, batch.digests[mid], batch.bases[mid], thread_of.get(mid))
        for mid, record in batch.pending.items()
    )
    pk_of: dict[str, int] = {}
    if conn.dialect.name == "postgresql":
        # COPY returns no ids: take them from the table's sequence first, in one call, rather
        # than read them back by Message-ID (a lookup the planner scans for while a backfill
        # grows the table faster than its statistics follow).
        pks = conn.scalars(_NEXT_MESSAGE_IDS, {"n": len(batch.pending)})
        pk_of.update(zip(batch.pending, pks, strict=True))
        _MESSAGE_INSERT_WITH_ID.execute(
            conn, ((pk_of[mid], *row) for mid, row in zip(batch.pending, rows, strict=True))
        )
    else:
        # An executemany returns no ids; one indexed SELECT per 500 reads them back.
        _MESSAGE_INSERT.execute(conn, rows)
        for chunk in chunks(list(batch.pending), 500):
            pk_of.update(
                (mid, pk)
                for pk, mid in conn.execute(
                    select(MessageRow.id, MessageRow.message_id).where(
                        _in(conn, MessageRow.message_id, chunk)
                    )
                )
            )
    refs: list[tuple[int, str]] = []
    defects = 0
    for mid, record in batch.pending.items():
        pk = pk_of[mid]
        batch.existing[mid] = (pk, record.from_addr, record.subject, record.time)
        defects += bool(record.defects)
        refs.extend((pk, ref) for ref in dict.fromkeys((*record.references, *record.in_reply_to)))
    _REF_INSERT.execute(conn, refs)
    return defects


def _as_renamed(record: MessageRecord, new_id: str) -> MessageRecord:
    return replace(
        record,
        message_id=new_id,
        synthetic_id=True,
        defects=(*record.defects, f"duplicate Message-ID {record.message_id}"),
    )


def _in(
    conn: Connection, column: InstrumentedAttribute[Any], values: Iterable[Any]
) -> ColumnElement[bool]:
    """`column IN (values)`, as `column = ANY(array)` on PostgreSQL: one parameter instead of
    hundreds, each of which SQLAlchemy and psycopg handle on their own (a quarter of the
    store's client time there). The same rows either way."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(values)
