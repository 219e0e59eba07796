"""One sync pass: fetch new mail from every folder, parse, store, thread, reconcile."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from monitor.classify import InternalPolicy
from monitor.config import Config, MailboxConfig
from monitor.errors import AuthError, FolderError, MailboxError, TransientMailboxError
from monitor.imap import FolderStatus, MailboxReader, RawMessage, connect
from monitor.parse_worker import BatchParser, ParseArgs
from monitor.records import FetchedMessage, MessageRecord
from monitor.storage.messages import MessageStore

log = logging.getLogger(__name__)

Connector = Callable[[MailboxConfig], object]
Progress = Callable[[str, str, int, int], None]  # mailbox, folder, done, total


@dataclass
class FolderResult:
    """What a pass did in one folder."""

    folder: str
    fetched: int = 0
    new_messages: int = 0
    duplicates: int = 0
    renamed: int = 0
    defects: int = 0
    flag_changes: int = 0
    gap: int = 0  # messages the server has in the window that the store lacked
    error: str | None = None  # set when the server would not open the folder


@dataclass
class MailboxResult:
    """What a pass did in one mailbox; `error` is set when it could not be read."""

    mailbox: str
    folders: list[FolderResult] = field(default_factory=list)
    error: str | None = None
    auth_failed: bool = False

    def total(self, name: str) -> int:
        return sum(getattr(f, name) for f in self.folders)

    @property
    def problems(self) -> list[str]:
        """What went wrong, one line each: the mailbox, or each folder it could not open."""
        if self.error:
            return [self.error]
        return [f.error for f in self.folders if f.error]


@dataclass(frozen=True)
class SyncOptions:
    batch_size: int = 500
    attempts: int = 3
    backoff_s: float = 0.5
    # From this many messages to fetch, parsing runs in a child process (parse_worker.py).
    # Starting one costs about 0.1 s of CPU, what parsing some 1,500 messages costs here.
    parse_process_min: int = 2000


def sync_all(
    config: Config,
    store: MessageStore,
    *,
    now: datetime,
    mailboxes: Sequence[str] | None = None,
    connector: Connector = connect,
    progress: Progress | None = None,
    options: SyncOptions | None = None,
) -> list[MailboxResult]:
    """One incremental pass over every mailbox (or the named ones); failures are isolated."""
    policy = config.monitor.policy
    chosen = [m for m in config.mailboxes if mailboxes is None or m.name in mailboxes]
    results = []
    for mailbox in chosen:
        result = sync_mailbox(
            mailbox,
            store,
            policy=policy,
            backfill=config.monitor.backfill,
            now=now,
            connector=connector,
            progress=progress,
            options=options or SyncOptions(),
        )
        results.append(result)
    return results


def sync_mailbox(
    mailbox: MailboxConfig,
    store: MessageStore,
    *,
    policy: InternalPolicy,
    backfill: timedelta,
    now: datetime,
    connector: Connector = connect,
    progress: Progress | None = None,
    options: SyncOptions | None = None,
) -> MailboxResult:
    """Sync one mailbox, reconnecting with backoff on transient errors.

    Each attempt resumes from what the store already holds, so a retry (or a pass killed and
    run again) fetches only what is missing. Failures are returned, not logged as errors: the
    caller reports them (the CLI on stderr), once.
    """
    options = options or SyncOptions()
    result = MailboxResult(mailbox.name)
    for attempt in range(1, options.attempts + 1):
        try:
            client = connector(mailbox)
            with MailboxReader(mailbox.name, client) as reader:
                result.folders = [
                    _sync_folder(
                        reader,
                        folder,
                        store,
                        policy=policy,
                        backfill=backfill,
                        now=now,
                        progress=progress,
                        options=options,
                    )
                    for folder in mailbox.folders
                ]
            result.error = None
            return result
        except AuthError as exc:
            result.error, result.auth_failed = str(exc), True
            break
        except TransientMailboxError as exc:
            result.error = str(exc)
            log.info("%s (attempt %d of %d)", exc, attempt, options.attempts)
        except MailboxError as exc:  # pragma: no cover - a folder's own error is caught inside
            result.error = str(exc)
            break
        if attempt < options.attempts:
            time.sleep(options.backoff_s * 2 ** (attempt - 1))
    return result


def _sync_folder(
    reader: MailboxReader,
    folder: str,
    store: MessageStore,
    *,
    policy: InternalPolicy,
    backfill: timedelta,
    now: datetime,
    progress: Progress | None,
    options: SyncOptions,
) -> FolderResult:
    result = FolderResult(folder)
    try:
        status = reader.examine(folder)
    except FolderError as exc:  # the other folders are still read; a retry would be refused too
        result.error = str(exc)
        return result
    state = store.folder_state(reader.name, folder)
    window_start = now - backfill
    if state.uidvalidity != status.uidvalidity:
        if state.uidvalidity is not None:
            log.warning(
                "%s/%s: UIDVALIDITY changed (%s -> %s): resyncing the folder",
                reader.name,
                folder,
                state.uidvalidity,
                status.uidvalidity,
            )
        store.reset_folder(reader.name, folder, status.uidvalidity, window_start)
        state = store.folder_state(reader.name, folder)
    window_start = state.window_start or window_start
    first_pass = state.uidnext is None  # the backfill has not completed yet
    unchanged = (
        not first_pass and status.uidnext == state.uidnext and status.exists == state.exists_count
    )
    in_window: list[int] | None = None  # the server's UIDs in the window, when already asked
    if not unchanged:
        if first_pass:
            in_window = reader.uids_since(window_start.date())
            uids = [u for u in in_window if u > state.last_seen_uid]
        else:
            uids = reader.uids_after(state.last_seen_uid)
        _ingest(reader, folder, uids, store, policy, result, progress, options)
    result.flag_changes = _refresh_flags(reader, folder, store, state.highestmodseq, status)
    if not unchanged:
        on_server = in_window if in_window is not None else reader.uids_since(window_start.date())
        result.gap = _reconcile(reader, folder, store, on_server, policy, result, options)
    store.mark_folder_synced(
        reader.name,
        folder,
        uidnext=status.uidnext,
        highestmodseq=status.highestmodseq,
        exists_count=status.exists,
        at=now,
    )
    return result


def _ingest(
    reader: MailboxReader,
    folder: str,
    uids: Sequence[int],
    store: MessageStore,
    policy: InternalPolicy,
    result: FolderResult,
    progress: Progress | None,
    options: SyncOptions,
) -> None:
    """Fetch and parse in batches on a worker thread while the previous batch is stored.

    Parsing sits with the fetch, off the storing thread, so it can run while the store waits
    on the database or the network (neither holds the GIL); a big backfill parses in a child
    process, off the GIL altogether.
    """
    total, done = len(uids), 0

    def is_external(addr: str) -> bool:
        return not policy.is_internal(addr)

    parse_in_child = total >= options.parse_process_min
    for batch in _prefetched(reader, folder, uids, options.batch_size, parse_in_child):
        stored = store.store_batch(
            reader.name,
            folder,
            batch,
            last_seen_uid=max(f.uid for f in batch),
            is_external=is_external,  # threaded in the same transaction
        )
        result.fetched += len(batch)
        result.new_messages += stored.new_messages
        result.duplicates += stored.duplicates
        result.renamed += stored.renamed
        result.defects += stored.defects
        done += len(batch)
        if progress:
            progress(reader.name, folder, done, total)


def _parse_args(raw: RawMessage) -> ParseArgs:
    return (raw.header, raw.internal_date, raw.size, raw.snippet, raw.gm_thrid)


def _fetched(
    mailbox: str, folder: str, raws: Sequence[RawMessage], records: Sequence[MessageRecord]
) -> list[FetchedMessage]:
    return [
        FetchedMessage(
            mailbox=mailbox,
            folder=folder,
            uid=raw.uid,
            flags=raw.flags,
            record=record,
            modseq=raw.modseq,
        )
        for raw, record in zip(raws, records, strict=True)
    ]


def _prefetched(
    reader: MailboxReader,
    folder: str,
    uids: Sequence[int],
    batch_size: int,
    parse_in_child: bool,
) -> Iterator[list[FetchedMessage]]:
    """Yield fetched and parsed batches; the next batches are fetched and parsed on a worker
    thread meanwhile (with `parse_in_child`, batch n is parsed by a child process while the
    worker fetches batch n + 1).

    The IMAP connection is used by that one thread only while this generator runs.
    """
    starts = range(0, len(uids), batch_size)  # batches are sliced as they go: no second copy
    if not starts:
        return
    slots: queue.Queue[list[FetchedMessage] | BaseException | None] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def worker() -> None:
        try:
            with BatchParser(child=parse_in_child) as parser:
                in_flight: list[RawMessage] | None = None
                for start in starts:
                    if stop.is_set():
                        return
                    raws = list(reader.fetch(uids[start : start + batch_size]))
                    if in_flight is not None:
                        slots.put(_fetched(reader.name, folder, in_flight, parser.collect()))
                        in_flight = None
                    parser.submit([_parse_args(raw) for raw in raws])
                    if parser.child_pid is None:  # parsed here: nothing to overlap, hand it on
                        slots.put(_fetched(reader.name, folder, raws, parser.collect()))
                    else:
                        in_flight = raws
                if in_flight is not None:
                    slots.put(_fetched(reader.name, folder, in_flight, parser.collect()))
            slots.put(None)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            slots.put(exc)

    thread = threading.Thread(target=worker, name=f"fetch-{reader.name}", daemon=True)
    thread.start()
    try:
        while True:
            item = slots.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            if item:
                yield item
    finally:
        stop.set()
        while thread.is_alive():
            with contextlib.suppress(queue.Empty):
                slots.get(timeout=0.05)
        thread.join()


def _refresh_flags(
    reader: MailboxReader,
    folder: str,
    store: MessageStore,
    known_modseq: int | None,
    status: FolderStatus,
) -> int:
    """Catch \\Answered set by a client we cannot see (CONDSTORE when the server has it)."""
    if reader.condstore and status.highestmodseq is not None:
        if known_modseq is None or status.highestmodseq == known_modseq:
            return 0
        changed = reader.uids_changed_since(known_modseq)
        return store.update_flags(reader.name, folder, reader.flags(changed))
    return store.update_flags(reader.name, folder, reader.flags(reader.answered_uids()))


def _reconcile(
    reader: MailboxReader,
    folder: str,
    store: MessageStore,
    on_server: Sequence[int],
    policy: InternalPolicy,
    result: FolderResult,
    options: SyncOptions,
) -> int:
    """Compare the server's messages in the window with what is stored; fetch any gap."""
    missing = sorted(set(on_server) - store.folder_uids(reader.name, folder))
    if missing:
        log.warning(
            "%s/%s: %d message(s) on the server were not stored; fetching them",
            reader.name,
            folder,
            len(missing),
        )
        _ingest(reader, folder, missing, store, policy, result, None, options)
    return len(missing)
