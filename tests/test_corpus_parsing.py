"""monitor.parsing over the real messages in ../shared/corpus (read in place, never copied)."""

from __future__ import annotations

import gzip
import mailbox
import re
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import cache
from pathlib import Path

import pytest

from monitor.parsing import parse_message_bytes, split_message
from monitor.records import Automatic, MessageRecord
from tests.corpus import corpus_dir

pytestmark = pytest.mark.corpus

INTERNAL = datetime(2026, 11, 20, 14, 5, tzinfo=UTC)
NOT_MESSAGES = {
    "SOURCE.md",
    "README.md",
    "manifest.json",
    "expected_threads.json",
    ".gitattributes",
}
# Reply bodies without any header: fed to the parser, but no header assertions.
HEADERLESS = ("github-email_reply_parser/", "zapier-email-reply-parser/")
SISIMAI = "sisimai-set-of-emails/maildir"


def _mbox_messages(path: Path) -> list[bytes]:
    if path.name.endswith(".gz"):  # mailbox.mbox reads plain files only
        with tempfile.TemporaryDirectory() as tmp:
            unpacked = Path(tmp) / "unpacked.mbox"
            unpacked.write_bytes(gzip.decompress(path.read_bytes()))
            return _mbox_messages(unpacked)
    box = mailbox.mbox(str(path), create=False)
    try:
        return [box.get_bytes(key) for key in box.iterkeys()]
    finally:
        box.close()


@cache
def corpus_messages() -> tuple[tuple[str, bytes], ...]:
    """(name, raw bytes) of every message file; mbox files split, the gzipped one unpacked."""
    root = corpus_dir()
    found: list[tuple[str, bytes]] = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if not path.is_file() or path.name in NOT_MESSAGES or rel.endswith(".html.gz"):
            continue
        if path.name.endswith((".txt.gz", ".mbox")) or path.name in ("mbox-0", "mbox-1"):
            found += [(f"{rel}#{i}", raw) for i, raw in enumerate(_mbox_messages(path))]
        else:
            found.append((rel, path.read_bytes()))
    return tuple(found)


@cache
def parsed() -> dict[str, MessageRecord]:
    return {
        name: parse_message_bytes(raw, internal_date=INTERNAL) for name, raw in corpus_messages()
    }


def record(name: str) -> MessageRecord:
    return parsed()[name]


def records_like(prefix: str) -> Iterator[tuple[str, MessageRecord]]:
    for name, rec in parsed().items():
        if name.startswith(prefix):
            yield name, rec


def test_corpus_is_complete() -> None:
    names = [name for name, _raw in corpus_messages()]
    assert len(names) > 700  # 440-odd files, 292 fedora and 40 sisimai mbox messages
    assert sum(1 for n in names if n.startswith("jwzthreading-fedora-devel/")) == 292


def test_every_message_parses_into_a_storable_record() -> None:
    problems = []
    for name, rec in parsed().items():
        texts = [rec.message_id, rec.subject, rec.from_name, rec.snippet, *rec.participants]
        texts += [*rec.in_reply_to, *rec.references]
        try:
            for text in texts:
                text.encode("utf-8")
                assert "\x00" not in text
            assert rec.message_id.startswith("<") and rec.message_id.endswith(">")
            assert rec.time.tzinfo == UTC
            assert not any(d.startswith("parser-error") for d in rec.defects)
        except (AssertionError, UnicodeEncodeError) as error:
            problems.append(f"{name}: {error!r} {rec.defects}")
    assert problems == []


def test_messages_with_headers_have_a_sender_or_a_defect() -> None:
    for name, rec in parsed().items():
        if name.startswith(HEADERLESS) or "sparrow_reply_text" in name:
            continue
        assert rec.from_addr or any("from" in d or d == "no-headers" for d in rec.defects), name


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("01", Automatic.OUT_OF_OFFICE),  # Auto-Submitted + "Away until May 5"
        ("02", Automatic.OUT_OF_OFFICE),  # Exchange "Automatic reply:" + X-Auto-Response-Suppress
        ("03", Automatic.OUT_OF_OFFICE),  # iCloud X-Apple-Action: VACATION
        ("04", Automatic.OUT_OF_OFFICE),  # Exchange "Automatic reply:"
        ("05", Automatic.AUTO_REPLY),  # Auto-Submitted: auto-replied, meaningless subject
        ("06", Automatic.AUTO_REPLY),  # Mimecast "AutoRespons": inbox no longer in use
    ],
)
def test_rfc3834_auto_replies(number: str, expected: Automatic) -> None:
    assert record(f"{SISIMAI}/bsd/rfc3834-{number}.eml").automatic == expected


def test_rfc3834_line_ending_copies_agree() -> None:
    for folder in ("dos", "mac"):
        assert record(f"{SISIMAI}/{folder}/rfc3834-01.eml").automatic == Automatic.OUT_OF_OFFICE


def test_sisimai_bounces_are_bounces() -> None:
    names = [
        name
        for name, _rec in records_like(SISIMAI)
        if Path(name).name.startswith(("lhost-", "rfc3464-", "rhost-"))
    ]
    assert len(names) > 100
    wrong = {name: record(name).automatic for name in names}
    assert {n: k for n, k in wrong.items() if k != Automatic.BOUNCE} == {}


def test_sisimai_mbox_bounces() -> None:
    kinds = [rec.automatic for _n, rec in records_like("sisimai-set-of-emails/mailbox/mbox-")]
    assert len(kinds) == 38
    # mbox-0 #35 is a person forwarding a bounce ("Fwd: Returned mail"): human mail.
    assert kinds.count(Automatic.BOUNCE) == 37
    assert record("sisimai-set-of-emails/mailbox/mbox-0#35").automatic is None


def test_other_bounces_and_reports() -> None:
    bounces = [
        "mailgun-flanker/bounce/gmail-invalid-address.eml",
        "mailgun-flanker/bounce/office365.eml",
        "mailgun-flanker/bounce/zed.eml",
        "mailgun-flanker/complaints/aol.eml",
        "mailgun-flanker/disposition-notification.eml",
        "mikel-mail/multipart_report_emails/report_422.eml",
        "mikel-mail/mime_emails/raw_email_with_mimepart_without_content_type.eml",
        "cpython-test_email/msg_16.txt",
        "cpython-test_email/msg_43.txt",
        "spamscope-mail-parser/mail_malformed_2",
        f"{SISIMAI}/not/rb-issue-368-bug.eml",  # Auto-Submitted: auto-replied, from postmaster
    ]
    assert {
        n: record(n).automatic for n in bounces if record(n).automatic != Automatic.BOUNCE
    } == {}


def test_not_bounces() -> None:
    for name in ("is-not-bounce-01.eml", "is-not-bounce-02.eml"):
        assert record(f"{SISIMAI}/not/{name}").automatic is None


def test_apple_unsubscribe_is_automatic_but_no_out_of_office() -> None:
    assert record(f"{SISIMAI}/bsd/arf-26.eml").automatic == Automatic.AUTO_REPLY


def test_fedora_list_messages_are_automatic() -> None:
    kinds = [rec.automatic for _n, rec in records_like("jwzthreading-fedora-devel/")]
    assert len(kinds) == 292
    assert None not in kinds
    assert set(kinds) <= {Automatic.LIST, Automatic.OUT_OF_OFFICE}


def test_fedora_in_reply_to_with_comment() -> None:
    with_comment = [
        rec
        for _n, rec in records_like("jwzthreading-fedora-devel/")
        if rec.in_reply_to and any("(" in d for d in rec.in_reply_to)
    ]
    assert with_comment == []
    count = sum(1 for _n, rec in records_like("jwzthreading-fedora-devel/") if rec.in_reply_to)
    assert count > 150


def test_rfc2822_example_thread() -> None:
    root = record("mikel-mail/rfc2822/example08.eml")
    reply = record("mikel-mail/rfc2822/example06.eml")
    second = record("mikel-mail/rfc2822/example07.eml")
    assert root.message_id == "<1234@local.machine.example>"
    assert reply.message_id == "<3456@example.net>"
    assert reply.in_reply_to == (root.message_id,)
    assert second.message_id == "<abcd.1234@local.machine.tld>"
    assert second.in_reply_to == (reply.message_id,)
    assert second.references == (root.message_id, reply.message_id)
    for again in ("01", "02", "05", "09", "12", "13"):
        assert record(f"mikel-mail/rfc2822/example{again}.eml").message_id == root.message_id


def test_only_top_level_in_reply_to_counts() -> None:
    assert record("cpython-test_email/msg_48.txt").in_reply_to == (
        "<somelonglonglonglonglongunwrappablemessageidtoreplyto@mail.foo.bar>",
    )


def test_malformed_threading_headers() -> None:
    refs = record("mikel-mail/error_emails/multiple_references_with_one_invalid.eml")
    assert refs.references == ("<foo@bar.net>", "<baz@bar.net>")
    assert "truncated-id:references" in refs.defects
    assert record("mikel-mail/error_emails/empty_in_reply_to.eml").in_reply_to == ()
    bare = record("mikel-mail/error_emails/bad_date_header.eml")
    assert bare.in_reply_to == ()  # "someone@yahoo.com": an address, not a message
    no_brackets = record("mikel-mail/plain_emails/mix_caps_content_type.eml")
    assert no_brackets.message_id.startswith("<") and not no_brackets.synthetic_id
    assert record("cpython-test_email/msg_15.txt").message_id == "<xxxx>"


def test_gmail_dsns_reference_the_bounced_message() -> None:
    delay = record(f"{SISIMAI}/bsd/rfc3464-55.eml")
    failure = record(f"{SISIMAI}/bsd/rfc3464-56.eml")
    assert delay.in_reply_to == failure.in_reply_to != ()
    assert delay.references == failure.references != ()


def test_missing_message_ids_get_synthetic_ones() -> None:
    for name in ("mailgun-talon/outlook.eml", f"{SISIMAI}/bsd/lhost-qmail-01.eml"):
        rec = record(name)
        assert rec.synthetic_id and rec.message_id.endswith("@pocwatch.invalid>")
        assert "missing-message-id" in rec.defects


def test_eight_bit_headers_read_as_text() -> None:
    rec = record("mailgun-flanker/mailformed-headers.eml")
    assert rec.from_addr == "headers@gmail.com"
    assert rec.from_name.startswith("Юникод")
    assert "raw-8bit-header:subject" in rec.defects
    assert record("mikel-mail/rfc6532/utf8_headers.eml").subject == "Säying Hello"
    assert record("spamscope-mail-parser/mail_test_9").subject.endswith("内射")  # GB2312 as GBK


def test_line_ending_twins_agree() -> None:
    for name, rec in records_like(f"{SISIMAI}/dos/"):
        for twin_dir in ("bsd", "mac"):
            twin = record(name.replace("/dos/", f"/{twin_dir}/"))
            fields = ("subject", "from_addr", "date_header", "automatic", "references", "to_addrs")
            for field in fields:
                assert getattr(twin, field) == getattr(rec, field), (name, field)
            if not rec.synthetic_id:  # a synthetic id counts the bytes, and CRLF adds some
                assert twin.message_id == rec.message_id, name


def test_whitespace_before_headers() -> None:
    rec = record("mailgun-flanker/iphone.eml")
    assert rec.from_addr == "someone@somewhere.com"
    assert "whitespace-before-headers" in rec.defects


def test_out_of_office_snippet_is_readable() -> None:
    snippet = record(f"{SISIMAI}/bsd/rfc3834-04.eml").snippet  # Windows-1252 QP body
    assert snippet.startswith("***Please stop and read this message.*** I will be traveling")


def test_date_fast_path_agrees_with_the_stdlib() -> None:
    for name, raw in corpus_messages():
        header, _body = split_message(raw)
        for line in header.replace(b"\r\n", b"\n").split(b"\n"):
            if not line.lower().startswith(b"date:"):
                continue
            value = line[5:].decode("latin-1").strip()
            # "00:19:00 (EDT) -0400": the stdlib takes the comment for the zone; we drop it.
            value = re.sub(r"\([^()]*\)", " ", value)
            try:
                expected = parsedate_to_datetime(value)
            except (TypeError, ValueError, OverflowError, IndexError):
                continue
            if expected.tzinfo is None:
                expected = expected.replace(tzinfo=UTC)
            rec = parse_message_bytes(header + b"\n\n", internal_date=INTERNAL)
            if rec.date_header is not None:
                assert rec.date_header == expected, (name, value)
            break
