"""Threading real mail: 292 fedora-devel list messages against the archive's thread index."""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.parsing import parse_message_bytes
from monitor.records import MessageRecord, Thread
from monitor.threads import thread_messages
from tests.corpus import corpus_dir

pytestmark = pytest.mark.corpus

# expected_threads.json, index_note: messages start at lines matching this.
FROM_LINE = re.compile(rb"^From .*\d\d \d\d\d\d$")

ABRT_ROOT = "<20091229195657.4000ce26@gmail.com>"  # before January: not in the archive
MAILMAN_GATEWAY_ID = "<mailman.16219.1263007411.8260.fedora-devel-list@redhat.com>"
LISP_ROOT_IDX = 55
LISP_SUBJECT_JOINED = 153  # no reply headers at all: joined by subject
LISP_REPLY_TO_SUBJECT_JOINED = 248
LISP_ORPHAN = 285  # replies to a message outside the archive


@dataclass(frozen=True)
class Fedora:
    records: list[MessageRecord]  # by mbox position (idx)
    expected: dict[str, Any]
    threads: list[Thread]

    def ids(self, indexes: list[int]) -> frozenset[str]:
        return frozenset(self.records[i].message_id for i in indexes)

    def thread_of(self, idx: int) -> Thread:
        wanted = self.records[idx].message_id
        return next(t for t in self.threads if wanted in t.message_ids)


def split_mbox(data: bytes) -> list[tuple[bytes, bytes]]:
    """(From_ line, message) pairs, split the way the expected index counts messages."""
    messages: list[tuple[bytes, list[bytes]]] = []
    for line in data.split(b"\n"):
        if FROM_LINE.match(line):
            messages.append((line, []))
        elif messages:
            messages[-1][1].append(line)
    return [(from_line, b"\n".join(lines)) for from_line, lines in messages]


def from_line_time(from_line: bytes) -> datetime:
    # "From rakesh.pandit@gmail.com Thu Dec 31 22:50:51 2009": the archive's delivery time.
    stamp = " ".join(from_line.decode("ascii").split()[-5:])
    return datetime.strptime(stamp, "%a %b %d %H:%M:%S %Y").replace(tzinfo=UTC)


@pytest.fixture(scope="module")
def fedora() -> Fedora:
    folder: Path = corpus_dir() / "jwzthreading-fedora-devel"
    expected = json.loads((folder / "expected_threads.json").read_text(encoding="utf-8"))
    data = gzip.decompress((folder / "2010-January.txt.gz").read_bytes())
    records = [
        parse_message_bytes(raw, internal_date=from_line_time(from_line))
        for from_line, raw in split_mbox(data)
    ]
    # List mail: every address is someone outside the company.
    threads = thread_messages(records, lambda addr: True)
    return Fedora(records, expected, threads)


def test_parsed_every_message_with_its_message_id(fedora: Fedora) -> None:
    assert len(fedora.records) == fedora.expected["n_messages"] == 292
    for record, message in zip(fedora.records, fedora.expected["messages"], strict=True):
        assert record.message_id == message["message_id"]


def test_thread_count(fedora: Fedora) -> None:
    # The archive's 60, plus idx 285 on its own (see the divergence below).
    assert fedora.expected["n_threads"] == 60
    assert len(fedora.threads) == 61


def test_threads_are_the_archives_threads(fedora: Fedora) -> None:
    produced = {frozenset(t.message_ids): t for t in fedora.threads}
    compared = 0
    for expected in fedora.expected["threads"]:
        if expected["root_idx"] == LISP_ROOT_IDX:
            continue  # the known divergence, asserted below
        members = fedora.ids(expected["members"])
        assert members in produced, f"thread of idx {expected['root_idx']} differs"
        root = fedora.records[expected["root_idx"]]
        # Mailman names a thread after its first archived message; product.md names it after
        # the oldest ancestor the references name, which for orphans is outside the archive.
        named_ancestors = (*root.references, *root.in_reply_to)
        assert produced[members].thread_id == (
            named_ancestors[0] if named_ancestors else root.message_id
        )
        compared += 1
    assert compared == 59


def test_divergence_idx_3_thread_is_named_after_its_missing_root(fedora: Fedora) -> None:
    expected = next(t for t in fedora.expected["threads"] if t["root_idx"] == 3)
    thread = fedora.thread_of(3)
    assert frozenset(thread.message_ids) == fedora.ids(expected["members"])
    assert len(thread.message_ids) == 19
    # Mailman: rooted at idx 3. Here: at the December message idx 3 and its siblings reply to.
    assert thread.thread_id == ABRT_ROOT != fedora.records[3].message_id
    assert ABRT_ROOT not in {r.message_id for r in fedora.records}


def test_divergence_idx_153_joins_by_subject_and_idx_285_stays_apart(fedora: Fedora) -> None:
    expected = next(t for t in fedora.expected["threads"] if t["root_idx"] == LISP_ROOT_IDX)
    lisp = fedora.thread_of(LISP_ROOT_IDX)
    assert lisp.thread_id == fedora.records[LISP_ROOT_IDX].message_id
    # Same as the archive except idx 285.
    assert frozenset(lisp.message_ids) == fedora.ids(
        [i for i in expected["members"] if i != LISP_ORPHAN]
    )
    orphan = fedora.thread_of(LISP_ORPHAN)
    assert orphan == Thread(MAILMAN_GATEWAY_ID, (fedora.records[LISP_ORPHAN].message_id,))

    # idx 153 has no reference headers and a "Re:" subject: only the subject rule places it.
    assert not fedora.records[LISP_SUBJECT_JOINED].has_reference_headers
    without_subject_rule = thread_messages(
        fedora.records, lambda addr: True, subject_window=timedelta(0)
    )
    assert len(without_subject_rule) == 62
    split = next(
        t
        for t in without_subject_rule
        if fedora.records[LISP_SUBJECT_JOINED].message_id in t.message_ids
    )
    assert frozenset(split.message_ids) == fedora.ids(
        [LISP_SUBJECT_JOINED, LISP_REPLY_TO_SUBJECT_JOINED]
    )


def _parse(relative: str, internal_date: datetime) -> MessageRecord:
    raw = (corpus_dir() / relative).read_bytes()
    return parse_message_bytes(raw, internal_date=internal_date)


def test_rfc2822_appendix_a_files_make_one_thread_of_depth_three() -> None:
    start = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    files = ["example08.eml", "example06.eml", "example07.eml"]
    thread = [
        _parse(f"mikel-mail/rfc2822/{name}", start + timedelta(hours=n))
        for n, name in enumerate(files)
    ]
    # The same root message again, as other files of the set carry it.
    copies = [
        _parse(f"mikel-mail/rfc2822/example{n}.eml", start + timedelta(days=1))
        for n in ("01", "02", "05", "09", "12")
    ]
    assert {c.message_id for c in copies} == {"<1234@local.machine.example>"}
    assert thread_messages([*thread, *copies], lambda addr: True) == [
        Thread(
            "<1234@local.machine.example>",
            ("<1234@local.machine.example>", "<3456@example.net>", "<abcd.1234@local.machine.tld>"),
        )
    ]


def test_two_dsns_for_one_missing_original_are_one_thread() -> None:
    start = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    delay = _parse("sisimai-set-of-emails/maildir/bsd/rfc3464-55.eml", start)
    failure = _parse("sisimai-set-of-emails/maildir/bsd/rfc3464-56.eml", start + timedelta(days=1))
    original = "<CAByYQsFyrGN=Aa73R9b-3-tiR7uFpUan+9CAWRmKP4z_GriF5Q@mail.gmail.example.com>"
    assert thread_messages([failure, delay], lambda addr: True) == [
        Thread(original, (delay.message_id, failure.message_id))
    ]
