"""Header parsing for a sync, in a child process when the backfill is big enough to pay for it."""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import IO

from monitor.parsing import parse_headers
from monitor.records import MessageRecord

log = logging.getLogger(__name__)

# header, INTERNALDATE, RFC822.SIZE, snippet, X-GM-THRID: what parse_headers reads of a fetch
ParseArgs = tuple[bytes, datetime, int, bytes, int | None]

_SOURCE_ROOT = Path(__file__).resolve().parent.parent  # the child imports this same code
_EXIT_WAIT_S = 5.0


def parse_batch(batch: Sequence[ParseArgs]) -> list[MessageRecord]:
    return [
        parse_headers(header, internal_date=when, size=size, snippet_bytes=snippet, gm_thrid=thrid)
        for header, when, size, snippet, thrid in batch
    ]


class BatchParser:
    """Parses fetched batches in order, one batch in flight: submit() it, collect() it.

    In a sync, parsing and storing both want the GIL; with `child`, parsing runs in a child
    Python process (about a third of a backfill's CPU moves off the storing thread). Batches
    and records cross stdin and stdout as pickles. The child exits when its stdin closes, so
    it never outlives the sync, even one killed outright. Should the child fail, parsing goes
    on here: a sync never stops for it.
    """

    def __init__(self, *, child: bool) -> None:
        self._pending: Sequence[ParseArgs] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        if child:
            try:
                self._proc = subprocess.Popen(
                    [sys.executable, "-m", __name__],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    cwd=_SOURCE_ROOT,
                )
            except OSError as exc:
                log.warning("parsing in this process: cannot start a parser process (%s)", exc)

    @property
    def child_pid(self) -> int | None:
        """The parser process's id; None when parsing happens in this process."""
        return self._proc.pid if self._proc is not None else None

    def submit(self, batch: Sequence[ParseArgs]) -> None:
        if self._pending is not None:
            raise RuntimeError("collect() the batch in flight before submitting another")
        self._pending = batch
        if self._proc is not None:
            try:
                _send(self._proc, batch)
            except (OSError, pickle.PickleError) as exc:
                self._give_up(exc)

    def collect(self) -> list[MessageRecord]:
        batch, self._pending = self._pending, None
        if batch is None:
            raise RuntimeError("no batch in flight")
        if self._proc is not None:
            try:
                records: list[MessageRecord] = pickle.load(_stream(self._proc.stdout))
                if len(records) == len(batch):
                    return records
                raise pickle.UnpicklingError(f"{len(records)} records for {len(batch)} messages")
            except (OSError, EOFError, pickle.PickleError) as exc:
                self._give_up(exc)
        return parse_batch(batch)

    def close(self) -> None:
        """Stop the child: closing its output first ends it even in the middle of a batch."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for stream in (proc.stdout, proc.stdin):
            # A child gone already: its pipe may refuse the final flush.
            with contextlib.suppress(OSError):
                _stream(stream).close()
        try:
            proc.wait(timeout=_EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> BatchParser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _give_up(self, exc: BaseException) -> None:
        log.warning("the parser process failed (%s): parsing in this process instead", exc)
        self.close()


def _send(proc: subprocess.Popen[bytes], batch: Sequence[ParseArgs]) -> None:
    stdin = _stream(proc.stdin)
    pickle.dump(list(batch), stdin, protocol=pickle.HIGHEST_PROTOCOL)
    stdin.flush()


def _stream(stream: IO[bytes] | None) -> IO[bytes]:
    if stream is None:  # pragma: no cover - both pipes are always requested
        raise OSError("pipe not open")
    return stream


def serve(requests: IO[bytes], replies: IO[bytes]) -> None:
    """The child's loop: parse each batch read from `requests` until it closes."""
    # Ctrl-C reaches the whole process group: the parent decides when the child stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            batch = pickle.load(requests)
        except EOFError:
            return
        try:
            pickle.dump(parse_batch(batch), replies, protocol=pickle.HIGHEST_PROTOCOL)
            replies.flush()
        except BrokenPipeError:
            return  # the parent stopped listening


def main() -> None:
    serve(sys.stdin.buffer, sys.stdout.buffer)
    # Python's advice for a closed stdout (signal docs, "Note on SIGPIPE"): point it at
    # /dev/null, or the flush at exit prints a BrokenPipeError.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


if __name__ == "__main__":
    main()
