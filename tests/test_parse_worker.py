"""Parsing in a child process: the same records, a fallback when it dies, no orphan."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.parse_worker import BatchParser, ParseArgs, parse_batch
from monitor.parsing import SNIPPET_BYTES, split_message
from monitor.storage.db import open_database
from monitor.storage.messages import MessageStore
from monitor.sync import SyncOptions, sync_all
from rules.registry import load_config
from tests.servers import MailUser
from tests.test_sync import write_config
from tests.traffic import bulk_messages

NOW = datetime.now(UTC).replace(microsecond=0)
MALFORMED = [
    b"Subject: no id, no from, no date\r\n\r\nbody\r\n",
    b"From: =?utf-8?q?broken\xff\xfe?= <x@\xffbad>\r\nSubject: \xe9t\xe9\r\n"
    b'Content-Type: multipart/mixed; boundary="nope"\r\n\r\n--other\r\nbroken\r\n',
    b"\x00\x00garbage",
    b"",
]


def _args(count: int) -> list[ParseArgs]:
    raws = [raw for raw, _when in bulk_messages(count, end=NOW)] + MALFORMED
    out: list[ParseArgs] = []
    for n, raw in enumerate(raws):
        header, body = split_message(raw)
        out.append((header, NOW - timedelta(minutes=n), len(raw), body[:SNIPPET_BYTES], None))
    return out


def test_a_parser_process_gives_the_records_this_process_gives() -> None:
    batches = [_args(120)[i : i + 31] for i in range(0, 124, 31)]
    with BatchParser(child=True) as parser:
        assert parser.child_pid is not None
        got = []
        for batch in batches:
            parser.submit(batch)
            got.append(parser.collect())
        assert parser.child_pid is not None  # it never fell back
    assert got == [parse_batch(batch) for batch in batches]


def test_a_parser_process_that_dies_leaves_the_parsing_to_this_process(
    caplog: pytest.LogCaptureFixture,
) -> None:
    batch = _args(40)
    with BatchParser(child=True) as parser:
        assert parser.child_pid is not None
        parser.submit(batch[:20])
        assert parser.collect() == parse_batch(batch[:20])
        os.kill(parser.child_pid, signal.SIGKILL)
        with caplog.at_level(logging.WARNING, logger="monitor.parse_worker"):
            parser.submit(batch[20:])
            assert parser.collect() == parse_batch(batch[20:])
        assert parser.child_pid is None
        assert "parsing in this process instead" in caplog.text
        parser.submit(batch)
        assert parser.collect() == parse_batch(batch)


def test_without_child_it_parses_here() -> None:
    batch = _args(5)
    with BatchParser(child=False) as parser:
        assert parser.child_pid is None
        parser.submit(batch)
        assert parser.collect() == parse_batch(batch)


def test_the_parser_process_ends_with_a_parent_killed_outright(tmp_path: Path) -> None:
    script = (
        "import time\n"
        "from monitor.parse_worker import BatchParser\n"
        "parser = BatchParser(child=True)\n"
        "print(parser.child_pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        assert _running(child_pid)
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
    deadline = time.monotonic() + 20
    while _running(child_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(child_pid), "the parser process outlived its parent"


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for whoever reaps it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_a_sync_parsing_in_a_child_stores_what_a_sync_parsing_here_stores(
    imap_user: MailUser, tmp_path: Path, database_url: str
) -> None:
    imap_user.write_maildir(
        "INBOX", ((raw, when, ("\\Seen",)) for raw, when in bulk_messages(150, end=NOW))
    )
    malformed = [raw for raw in MALFORMED if raw]  # Dovecot refuses an empty message
    for raw in malformed:
        imap_user.append("INBOX", raw, internal_date=NOW - timedelta(hours=1))
    stores = []
    for name, url, options in (
        ("child", database_url, SyncOptions(batch_size=40, parse_process_min=1)),
        ("here", f"sqlite:///{tmp_path / 'here.db'}", SyncOptions(batch_size=40)),
    ):
        folder = tmp_path / name
        folder.mkdir()
        config = load_config(write_config(folder, url, [imap_user], folders=("INBOX",)))
        store = MessageStore(open_database(url))
        stores.append(store)
        [result] = sync_all(config, store, now=NOW, options=options)
        assert result.error is None
        assert result.total("new_messages") == 150 + len(malformed)
    try:
        child, here = (store.threads() for store in stores)
        assert child == here
    finally:
        for store in stores:
            store.close()
