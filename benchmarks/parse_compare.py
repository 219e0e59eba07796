"""Parse rates of pocwatch's header parser against mail-parser 4.8 and stdlib email, on the corpus.

Run from the repository root:  .venv/bin/python benchmarks/parse_compare.py [--repeat N]

It reads every message of ../shared/corpus (mbox files split into their messages), parses each
one as sync does (header block + the first 2,048 body bytes), as a whole message, and the same
inputs with mail-parser and with the stdlib compat32 parser (bare, and reading the same fields
the stdlib way), and prints messages per second (best of three rounds) and how many raised.
It then compares the fields sync needs (Message-ID, From, Subject, Date, To) between pocwatch
and mail-parser, and lists where mail-parser fails or returns unusable text.
"""

from __future__ import annotations

import argparse
import contextlib
import email
import email.parser
import email.policy
import gzip
import logging
import mailbox
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from monitor.parsing import (  # noqa: E402 - needs the path above
    SNIPPET_BYTES,
    parse_headers,
    parse_message_bytes,
    split_message,
)

INTERNAL_DATE = datetime(2024, 1, 1, tzinfo=UTC)
ADDRESS_FIELDS = ("from", "sender", "to", "cc")
ID_FIELDS = ("message-id", "in-reply-to", "references")
ROBOT_FIELDS = ("auto-submitted", "precedence", "list-id", "x-auto-response-suppress")
ID_TOKEN = re.compile(r"<[^<>]*>")
SKIP_SUFFIXES = (".md", ".json", ".html.gz")
HEADERLESS_SOURCES = ("github-email_reply_parser", "zapier-email-reply-parser")


def corpus_messages(root: Path) -> Iterator[tuple[str, bytes]]:
    """(name, raw bytes) of every message in the corpus, mbox files split."""
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if not path.is_file() or rel.endswith(SKIP_SUFFIXES) or rel.startswith("."):
            continue
        if rel.startswith(HEADERLESS_SOURCES) or path.name == "sparrow_reply_text":
            continue
        if path.name.endswith(".gz"):
            data = gzip.decompress(path.read_bytes())
            for i, raw in enumerate(_mbox_split(data)):
                yield f"{rel}#{i}", raw
        elif path.suffix == ".mbox" or path.name.startswith("mbox-"):
            for i, raw in enumerate(_mbox_split(path.read_bytes())):
                yield f"{rel}#{i}", raw
        else:
            yield rel, path.read_bytes()


def _mbox_split(data: bytes) -> list[bytes]:
    with tempfile.TemporaryDirectory() as tmp:  # mailbox.mbox reads files only
        path = Path(tmp) / "box.mbox"
        path.write_bytes(data)
        box = mailbox.mbox(str(path), create=False)
        try:
            return [box.get_bytes(key) for key in box.iterkeys()]
        finally:
            box.close()


def rate(func: Callable[[bytes], Any], inputs: list[bytes], repeat: int) -> tuple[float, int]:
    """Best-of-three messages per second, and how many inputs raised."""
    failures = 0
    for item in inputs:
        try:
            func(item)
        except Exception:
            failures += 1
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeat):
            for item in inputs:
                with contextlib.suppress(Exception):
                    func(item)
        best = min(best, time.perf_counter() - start)
    return len(inputs) * repeat / best, failures


def _fold(text: Any) -> str:
    return re.sub(r"\s+", " ", str(text or "")).strip()


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def compare(messages: list[tuple[str, bytes]]) -> dict[str, list[str]]:
    """Files where mail-parser (whole message) fails, returns unstorable text, or misses or
    differs from what pocwatch reads, by kind of problem."""
    import mailparser

    problems: dict[str, list[str]] = {}

    def note(kind: str, name: str) -> None:
        problems.setdefault(kind, []).append(name)

    for name, raw in messages:
        ours = parse_message_bytes(raw, internal_date=INTERNAL_DATE)
        try:
            theirs = mailparser.parse_from_bytes(raw)
        except Exception as error:
            note(f"raises {type(error).__name__}", name)
            continue
        texts = list(_strings([theirs.subject, theirs.from_, theirs.to, theirs.message_id]))
        if any(_has_surrogates(text) for text in texts):
            note("returns lone surrogates (no UTF-8 column can store them)", name)
        if any("\x00" in text for text in texts):
            note("returns NUL characters (PostgreSQL text rejects them)", name)
        their_from = [a.lower() for _n, a in theirs.from_ if a]
        if ours.from_addr and not their_from:
            note("no From address where pocwatch reads one", name)
        elif ours.from_addr and their_from[0] != ours.from_addr:
            note("a different From address", name)
        their_to = {a.lower() for _n, a in theirs.to if a}
        if set(ours.to_addrs) - their_to:
            note("To addresses missing", name)
        their_id = _fold(theirs.message_id)
        if not ours.synthetic_id and their_id != ours.message_id:
            note("Message-ID empty or without <>", name)
        if ours.subject and _fold(theirs.subject) != ours.subject:
            note(
                "Subject differs (8-bit bytes dropped, GB2312 garbled, two Subjects as a list)",
                name,
            )
        their_date = theirs.date
        if ours.date_header is not None and their_date is None:
            note("no Date where pocwatch reads one", name)
        elif ours.date_header is not None and their_date is not None:
            if their_date.tzinfo is None:
                their_date = their_date.replace(tzinfo=UTC)
            if their_date != ours.date_header:
                note("a different Date", name)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_root = Path(os.environ.get("POCWATCH_SHARED", REPO.parent / "shared")) / "corpus"
    parser.add_argument("--corpus", type=Path, default=default_root)
    parser.add_argument("--repeat", type=int, default=5, help="passes over the corpus per round")
    parser.add_argument("--examples", type=int, default=4, help="file names shown per problem")
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)  # mail-parser logs every part it does not handle

    import mailparser

    messages = list(corpus_messages(args.corpus))
    splits = [split_message(raw) for _name, raw in messages]
    headers = [header + b"\r\n\r\n" for header, _body in splits]
    fetched = [(header, body[:SNIPPET_BYTES]) for header, body in splits]
    whole = [raw for _name, raw in messages]
    header_bytes = sum(len(h) for h in headers) / len(headers)
    print(f"{len(messages)} messages, mean header {header_bytes:.0f} bytes, x{args.repeat}")

    compat32 = email.parser.BytesHeaderParser(policy=email.policy.compat32)

    def ours_fetch(item: tuple[bytes, bytes]) -> Any:
        return parse_headers(item[0], internal_date=INTERNAL_DATE, snippet_bytes=item[1])

    def ours_headers(item: bytes) -> Any:
        return parse_headers(item, internal_date=INTERNAL_DATE)

    def ours_whole(item: bytes) -> Any:
        return parse_message_bytes(item, internal_date=INTERNAL_DATE)

    def stdlib_headers(item: bytes) -> Any:
        return compat32.parsebytes(item)

    def stdlib_whole(item: bytes) -> Any:
        return email.message_from_bytes(item)

    def stdlib_fields(item: bytes) -> Any:
        """compat32 plus the fields sync needs, read the stdlib way: what a hand split saves."""
        msg = compat32.parsebytes(item)
        addresses = getaddresses([str(v) for n in ADDRESS_FIELDS for v in msg.get_all(n, [])])
        subject = str(make_header(decode_header(str(msg["subject"] or ""))))
        date = parsedate_to_datetime(str(msg["date"])) if msg["date"] else None
        ids = [ID_TOKEN.findall(str(msg[n] or "")) for n in ID_FIELDS]
        robots = [msg.get(n) for n in ROBOT_FIELDS]
        return addresses, subject, date, ids, robots, msg.get_content_type()

    rows: list[tuple[str, Callable[[Any], Any], list[Any]]] = [
        ("pocwatch parse_headers, headers only", ours_headers, headers),
        ("pocwatch parse_headers, headers + 2 KB body (sync)", ours_fetch, fetched),
        ("pocwatch parse_message_bytes, whole message", ours_whole, whole),
        ("mail-parser parse_from_bytes, headers only", mailparser.parse_from_bytes, headers),
        ("mail-parser parse_from_bytes, whole message", mailparser.parse_from_bytes, whole),
        ("stdlib compat32 BytesHeaderParser (no fields read)", stdlib_headers, headers),
        ("stdlib compat32 + the same fields read", stdlib_fields, headers),
        ("stdlib message_from_bytes, whole (no fields read)", stdlib_whole, whole),
    ]
    print(f"{'parser':55} {'msg/s':>10} {'raised':>7}")
    for label, func, inputs in rows:
        per_second, failures = rate(func, inputs, args.repeat)
        print(f"{label:55} {per_second:10,.0f} {failures:7d}")

    print("\nWhere mail-parser (whole message) fails or disagrees with pocwatch:")
    for kind, names in sorted(compare(messages).items()):
        shown = ", ".join(names[: args.examples])
        more = f" (+{len(names) - args.examples} more)" if len(names) > args.examples else ""
        print(f"  {kind}: {len(names)}: {shown}{more}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
