"""monitor.parsing over small literal messages: fields, defects, snippets, splitting."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest

from monitor.parsing import (
    SNIPPET_CHARS,
    decode_rfc2047,
    extract_message_ids,
    message_time,
    parse_headers,
    parse_message_bytes,
    split_message,
    synthetic_message_id,
)
from monitor.records import MessageRecord

INTERNAL = datetime(2026, 11, 20, 14, 5, tzinfo=UTC)
DATE = "Fri, 20 Nov 2026 13:00:00 +0000"


def head(*lines: str, date: str | None = DATE, mid: str | None = "<m1@example.net>") -> bytes:
    """A header block as IMAP BODY[HEADER] returns it (CRLF, ending with an empty line)."""
    fields = list(lines)
    if date is not None:
        fields.append(f"Date: {date}")
    if mid is not None:
        fields.append(f"Message-ID: {mid}")
    return ("\r\n".join(fields) + "\r\n\r\n").encode("utf-8")


def parse(
    *lines: str,
    date: str | None = DATE,
    mid: str | None = "<m1@example.net>",
    size: int = 0,
    gm_thrid: int | None = None,
) -> MessageRecord:
    return parse_headers(
        head(*lines, date=date, mid=mid), internal_date=INTERNAL, size=size, gm_thrid=gm_thrid
    )


# ---------------------------------------------------------------- basic fields


def test_basic_fields() -> None:
    record = parse(
        'From: "Doe, Jane" <Jane.Doe@Acme.COM>',
        "To: support@example.com, Sam <SAM@example.com>",
        "Cc: boss@acme.com",
        "Subject: Cannot log in",
        size=1234,
        gm_thrid=99,
    )
    assert record.from_addr == "jane.doe@acme.com"
    assert record.from_name == "Doe, Jane"
    assert record.to_addrs == ("support@example.com", "sam@example.com")
    assert record.cc_addrs == ("boss@acme.com",)
    assert record.subject == "Cannot log in"
    assert record.message_id == "<m1@example.net>"
    assert record.date_header == datetime(2026, 11, 20, 13, 0, tzinfo=UTC)
    assert record.time == record.date_header
    assert record.internal_date == INTERNAL
    assert record.size == 1234
    assert record.gm_thrid == 99
    assert record.automatic is None
    assert record.synthetic_id is False
    assert record.defects == ()


def test_header_names_are_case_insensitive_and_folded_values_unfold() -> None:
    record = parse("FROM: a@x.com", "sUbJeCt: a long\r\n\tfolded\r\n subject")
    assert record.from_addr == "a@x.com"
    assert record.subject == "a long folded subject"


def test_date_converted_to_utc() -> None:
    record = parse("From: a@x.com", date="Fri, 20 Nov 2026 15:30:00 +0200")
    assert record.date_header == datetime(2026, 11, 20, 13, 30, tzinfo=UTC)
    assert record.date_header is not None and record.date_header.tzinfo == UTC


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Fri, 20 Nov 2026 13:00:00 GMT", datetime(2026, 11, 20, 13, 0, tzinfo=UTC)),
        ("20 Nov 2026 13:00 -0000", datetime(2026, 11, 20, 13, 0, tzinfo=UTC)),
        ("Fri, 20 Nov 2026 08:00:00 EST", datetime(2026, 11, 20, 13, 0, tzinfo=UTC)),
        ("Fri, 20 Nov 2026 14:00:00 +0100 (CET)", datetime(2026, 11, 20, 13, 0, tzinfo=UTC)),
        ("Fri, 20 Nov 2026 13(x):   00  :  00 +0000", datetime(2026, 11, 20, 13, 0, tzinfo=UTC)),
        ("2026-11-20T13:00:00Z", datetime(2026, 11, 20, 13, 0, tzinfo=UTC)),
    ],
)
def test_date_formats(value: str, expected: datetime) -> None:
    assert parse("From: a@x.com", date=value).date_header == expected


def test_internal_date_naive_is_utc() -> None:
    record = parse_headers(head("From: a@x.com"), internal_date=datetime(2026, 11, 20, 14, 5))
    assert record.internal_date == INTERNAL


# ---------------------------------------------------------------- message time


def test_message_time_missing_date_uses_internaldate() -> None:
    record = parse("From: a@x.com", date=None)
    assert record.date_header is None
    assert record.time == INTERNAL
    assert "missing-date" in record.defects


def test_message_time_garbage_date_uses_internaldate() -> None:
    record = parse("From: a@x.com", date="next tuesday-ish")
    assert record.date_header is None
    assert record.time == INTERNAL
    assert "unparseable-date" in record.defects


def test_message_time_far_date_uses_internaldate() -> None:
    record = parse("From: a@x.com", date="Wed, 18 Nov 2026 13:00:00 +0000")
    assert record.date_header == datetime(2026, 11, 18, 13, 0, tzinfo=UTC)
    assert record.time == INTERNAL
    assert "date-far-from-internaldate" in record.defects


def test_message_time_near_date_kept() -> None:
    record = parse("From: a@x.com", date="Thu, 19 Nov 2026 15:06:00 +0000")  # 22h59 before
    assert record.time == datetime(2026, 11, 19, 15, 6, tzinfo=UTC)


def test_message_time_boundaries() -> None:
    exactly = INTERNAL - timedelta(hours=24)
    assert message_time(exactly, INTERNAL) == exactly
    assert message_time(exactly - timedelta(seconds=1), INTERNAL) == INTERNAL
    assert message_time(INTERNAL + timedelta(hours=24, seconds=1), INTERNAL) == INTERNAL
    assert message_time(None, INTERNAL) == INTERNAL
    plus_two = timezone(timedelta(hours=2))
    assert message_time(datetime(2026, 11, 20, 15, 0, tzinfo=plus_two), INTERNAL).tzinfo == UTC


# ---------------------------------------------------------------- RFC 2047, 8-bit


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("=?utf-8?Q?Caf=C3=A9_cr=C3=A8me?=", "Café crème"),
        ("=?UTF-8?B?w6nDqMOg?=", "éèà"),
        ("=?iso-8859-1?q?Gr=FC=DFe?= aus Berlin", "Grüße aus Berlin"),
        ("=?utf-8?q?a?= =?utf-8?q?b?=", "ab"),  # whitespace between encoded words drops
        ("x =?utf-8?q?a?= y", "x a y"),
        ("=?UTF-8?Q?AutoRespons?= :Nyaan?", "AutoRespons :Nyaan?"),
        # a multi-byte character split across two encoded words
        ("=?utf-8?B?44Gr?= =?utf-8?B?44KD?=", "にゃ"),
        ("=?utf-8?B?4oI=?= =?utf-8?B?rA==?=", "€"),
        ("=?ISO-2022-JP?B?GyRCJUYlOSVIGyhC?=", "テスト"),
        ("=?utf-8*en?Q?hello?=", "hello"),
        ("no encoding here", "no encoding here"),
    ],
)
def test_decode_rfc2047(raw: str, expected: str) -> None:
    assert decode_rfc2047(raw) == expected


def test_decode_rfc2047_unknown_charset_records_defect() -> None:
    defects: list[str] = []
    assert decode_rfc2047("=?x-klingon?Q?abc?=", defects) == "abc"
    assert defects == []  # ASCII reads the same in any charset
    assert decode_rfc2047("=?x-klingon?Q?ab=C3=A9?=", defects) == "abé"
    assert defects == ["unknown-charset:x-klingon"]


def test_broken_encoded_words_do_not_raise() -> None:
    for raw in ("=?NONE?B?VEVTVA=?=", "=?utf-8?B?!!!?=", "=?utf-8?Q?=ZZ?=", "=?utf-8?X?a?=", "=?"):
        assert isinstance(decode_rfc2047(raw, []), str)


def test_encoded_subject_and_display_name() -> None:
    record = parse(
        "From: =?utf-8?Q?J=C3=BCrgen_M=C3=BCller?= <jm@x.de>",
        "Subject: =?utf-8?B?UmU6IFJlY2hudW5n?=",
    )
    assert record.from_name == "Jürgen Müller"
    assert record.subject == "Re: Rechnung"


def test_raw_latin1_header_decoded_with_defect() -> None:
    header = b"From: Andr\xe9 <andre@x.fr>\r\nSubject: Caf\xe9\r\nMessage-ID: <a@b>\r\n\r\n"
    record = parse_headers(header, internal_date=INTERNAL)
    assert record.subject == "Café"
    assert record.from_name == "André"
    assert "raw-8bit-header:subject" in record.defects
    assert "raw-8bit-header:from" in record.defects


def test_stray_byte_in_utf8_header_becomes_replacement_character() -> None:
    header = "From: Юникод".encode() + b"\xf1 <headers@gmail.com>\r\n\r\n"
    record = parse_headers(header, internal_date=INTERNAL)
    assert record.from_name == "Юникод\ufffd"
    assert "raw-8bit-header:from" in record.defects


def test_raw_utf8_header_is_fine() -> None:
    header = "Subject: Säying Hello\r\nFrom: jdöe@mächine.example\r\n\r\n".encode()
    record = parse_headers(header, internal_date=INTERNAL)
    assert record.subject == "Säying Hello"
    assert record.from_addr == "jdöe@mächine.example"
    assert not any(d.startswith("raw-8bit") for d in record.defects)


def test_nul_and_control_characters_removed() -> None:
    record = parse_headers(b"Subject: a\x00b\x07c\r\nFrom: a@x.com\r\n\r\n", internal_date=INTERNAL)
    assert record.subject == "abc"
    assert "nul-in-header" in record.defects


def test_long_subject_truncated() -> None:
    record = parse("From: a@x.com", "Subject: " + "word " * 2000)
    assert len(record.subject) == 1000
    assert "long-subject" in record.defects


# ---------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    ("value", "addr", "name"),
    [
        ("jane@acme.com", "jane@acme.com", ""),
        ("<jane@acme.com>", "jane@acme.com", ""),
        ("Jane Doe <Jane@Acme.com>", "jane@acme.com", "Jane Doe"),
        ('"Doe, Jane" <jane@acme.com>', "jane@acme.com", "Doe, Jane"),
        ("jane@acme.com (Jane Doe)", "jane@acme.com", "Jane Doe"),
        ("Big Bug bb@bug.com", "bb@bug.com", "Big Bug"),
        ("alice@example.com <bob@example.com>", "bob@example.com", "alice@example.com"),
        ("Pete(A chap) <pete(his account)@silly.test(his host)>", "pete@silly.test", "Pete"),
        ("<@relay.net:u@x.com>", "u@x.com", ""),
        ("MAILER-DAEMON", "mailer-daemon", ""),
    ],
)
def test_from_shapes(value: str, addr: str, name: str) -> None:
    record = parse(f"From: {value}")
    assert record.from_addr == addr
    assert record.from_name == name


def test_from_without_address() -> None:
    record = parse("From: MAILER-DAEMON <>")
    assert record.from_addr is None
    assert record.from_name == "MAILER-DAEMON"
    assert "unparseable-from" in record.defects


def test_missing_from() -> None:
    record = parse("Subject: x")
    assert record.from_addr is None
    assert "missing-from" in record.defects


def test_multiple_from_takes_first() -> None:
    record = parse("From: first@x.com", "From: second@x.com")
    assert record.from_addr == "first@x.com"
    assert "multiple-from" in record.defects
    two = parse("From: tim@x.com concierge@x.com")
    assert two.from_addr == "tim@x.com"
    assert "multiple-from" in two.defects


def test_recipient_lists() -> None:
    record = parse(
        "From: a@x.com",
        'To: "Brown, C" <c@x.com>, dave@x.com,, eve@x.com <frank@x.com>, Undisclosed:;',
        "Cc: Team: g@x.com, H <h@x.com>;",
        "Cc: c@x.com",
    )
    assert record.to_addrs == ("c@x.com", "dave@x.com", "frank@x.com")
    assert record.cc_addrs == ("g@x.com", "h@x.com", "c@x.com")


def test_sender() -> None:
    record = parse("From: support@example.com", "Sender: Priya <Priya@Example.com>")
    assert record.sender_addr == "priya@example.com"
    assert parse("From: a@x.com").sender_addr is None
    assert parse("From: a@x.com", "Sender: ").sender_addr is None


# ---------------------------------------------------------------- message ids


def test_message_id_kept_case_sensitive_with_brackets() -> None:
    assert parse("From: a@x.com", mid=" <AbC.123@Host.Example> ").message_id == (
        "<AbC.123@Host.Example>"
    )


def test_message_id_without_brackets_gets_them() -> None:
    record = parse("From: a@x.com", mid="abc@host.example")
    assert record.message_id == "<abc@host.example>"
    assert record.synthetic_id is False
    assert "id-without-brackets:message-id" in record.defects


def test_message_id_folded_whitespace_removed() -> None:
    assert parse("From: a@x.com", mid="<1234   @   local.machine .example>").message_id == (
        "<1234@local.machine.example>"
    )


def test_message_id_comment_ignored() -> None:
    assert parse("From: a@x.com", mid="<a@b> (generated)").message_id == "<a@b>"


def test_message_id_without_at_is_kept() -> None:
    assert parse("From: a@x.com", mid="<xxxx>").message_id == "<xxxx>"


def test_missing_message_id_gets_stable_synthetic_one() -> None:
    one = parse("From: a@x.com", "Subject: hi", mid=None, size=10)
    two = parse("From: a@x.com", "Subject: hi", mid=None, size=10)
    assert one.synthetic_id is True
    assert one.message_id == two.message_id
    assert one.message_id.startswith("<") and one.message_id.endswith("@pocwatch.invalid>")
    assert "missing-message-id" in one.defects
    assert synthetic_message_id(one) == one.message_id
    other = parse("From: a@x.com", "Subject: hi!", mid=None, size=10)
    assert other.message_id != one.message_id
    bigger = parse("From: a@x.com", "Subject: hi", mid=None, size=11)
    assert bigger.message_id != one.message_id


@pytest.mark.parametrize("mid", ["", "<>", "   ", "no-at-no-brackets", "<" + "x" * 600 + "@y>"])
def test_unusable_message_id(mid: str) -> None:
    record = parse("From: a@x.com", mid=mid)
    assert record.synthetic_id is True
    assert record.message_id.endswith("@pocwatch.invalid>")
    assert "unusable-message-id" in record.defects


def test_synthetic_id_uses_internaldate_without_date() -> None:
    one = parse_headers(head("From: a@x.com", date=None, mid=None), internal_date=INTERNAL)
    two = parse_headers(
        head("From: a@x.com", date=None, mid=None), internal_date=INTERNAL + timedelta(days=1)
    )
    assert one.message_id != two.message_id
    with_date = parse_headers(head("From: a@x.com", mid=None), internal_date=INTERNAL)
    later = parse_headers(
        head("From: a@x.com", mid=None), internal_date=INTERNAL + timedelta(hours=1)
    )
    assert with_date.message_id == later.message_id  # the Date header wins: same message


def test_multiple_message_ids_take_first() -> None:
    record = parse_headers(
        b"Message-ID: <one@x>\r\nMessage-ID: <two@x>\r\n\r\n", internal_date=INTERNAL
    )
    assert record.message_id == "<one@x>"
    assert "multiple-message-id" in record.defects


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<a@x>", ("<a@x>",)),
        ('<a@x> (Jane\'s message of "Fri, 1 Jan 2010")', ("<a@x>",)),
        ('Your message of "Fri, 1 Jan 2010 10:00" <a@x>', ("<a@x>",)),
        ("(from <not-an-id@x>) <a@x>", ("<a@x>",)),
        ("<a@x> <b@x>", ("<a@x>", "<b@x>")),
        ("", ()),
        ("someone@yahoo.com", ()),
    ],
)
def test_in_reply_to(value: str, expected: tuple[str, ...]) -> None:
    assert parse("From: a@x.com", f"In-Reply-To: {value}").in_reply_to == expected


def test_in_reply_to_bare_address_recorded() -> None:
    record = parse("From: a@x.com", "In-Reply-To: someone@yahoo.com")
    assert "unusable-id:in-reply-to" in record.defects


def test_references_twice_one_truncated() -> None:
    record = parse(
        "From: a@x.com",
        "References: <foo@bar.net>",
        "References: <baz@bar.net>, <invalid.",
    )
    assert record.references == ("<foo@bar.net>", "<baz@bar.net>")
    assert "truncated-id:references" in record.defects


def test_references_folded_ids_dedupe_and_order() -> None:
    record = parse(
        "From: a@x.com",
        "References: <r1@x>\r\n <r2@x> <r1@x>\r\n\t<long.\r\n id@x>",
    )
    assert record.references == ("<r1@x>", "<r2@x>", "<long.id@x>")
    assert record.has_reference_headers


def test_too_many_references_keep_root_and_latest() -> None:
    ids = [f"<r{i}@x>" for i in range(150)]
    record = parse("From: a@x.com", "References: " + " ".join(ids))
    assert len(record.references) == 100
    assert record.references[0] == "<r0@x>"
    assert record.references[-1] == "<r149@x>"
    assert "too-many-ids:references" in record.defects


def test_extract_message_ids_direct() -> None:
    assert extract_message_ids("<a@b>,<c@d>") == ["<a@b>", "<c@d>"]
    assert extract_message_ids("a@b", wrap_bare=True) == ["<a@b>"]
    assert extract_message_ids("a@b") == []


# ---------------------------------------------------------------- thread-index


def test_thread_index_root() -> None:
    raw = bytes(range(22)) + b"\x01\x02\x03\x04\x05"
    record = parse("From: a@x.com", "Thread-Index: " + base64.b64encode(raw).decode())
    assert record.thread_index_root == bytes(range(22)).hex()


def test_thread_index_unpadded_and_folded() -> None:
    encoded = base64.b64encode(bytes(range(30))).decode().rstrip("=")
    record = parse("From: a@x.com", f"Thread-Index: {encoded[:20]}\r\n {encoded[20:]}")
    assert record.thread_index_root == bytes(range(22)).hex()


@pytest.mark.parametrize("value", ["not base64 at all!", "AQID", ""])
def test_thread_index_invalid(value: str) -> None:
    record = parse("From: a@x.com", f"Thread-Index: {value}")
    assert record.thread_index_root is None
    assert "invalid-thread-index" in record.defects


# ---------------------------------------------------------------- splitting whole messages


def test_split_line_endings_agree() -> None:
    lf = b"From: a@x.com\nSubject: hi\nMessage-ID: <a@b>\n\nbody text\n"
    for raw in (lf, lf.replace(b"\n", b"\r\n"), lf.replace(b"\n", b"\r")):
        record = parse_message_bytes(raw, internal_date=INTERNAL)
        assert (record.from_addr, record.subject, record.message_id) == (
            "a@x.com",
            "hi",
            "<a@b>",
        )
        assert record.snippet == "body text"
        assert record.size == len(raw)


def test_split_mbox_from_line() -> None:
    raw = b"From MAILER-DAEMON  Mon Sep 20 19:29:27 2021\nFrom: <foo@bar.net>\nSubject: x\n\nhi\n"
    record = parse_message_bytes(raw, internal_date=INTERNAL)
    assert record.from_addr == "foo@bar.net"
    assert record.snippet == "hi"


def test_split_obsolete_spaced_field_name_is_no_mbox_line() -> None:
    record = parse_message_bytes(b"From  : a@x.com\nSubject  : hi\n\n", internal_date=INTERNAL)
    assert (record.from_addr, record.subject) == ("a@x.com", "hi")


def test_split_whitespace_before_headers() -> None:
    raw = b"     \nFrom: a@x.com\r\nSubject: hi\r\n\r\nbody\r\n"
    record = parse_message_bytes(raw, internal_date=INTERNAL)
    assert record.from_addr == "a@x.com"
    assert "whitespace-before-headers" in record.defects


def test_split_no_separator() -> None:
    raw = b"From: a@x.com\nSubject: hi\ncounter to RFC 2822, no separating newline here\n"
    _header, body = split_message(raw)
    assert body == b"counter to RFC 2822, no separating newline here\n"
    record = parse_message_bytes(raw, internal_date=INTERNAL)
    assert record.subject == "hi"
    assert record.snippet == "counter to RFC 2822, no separating newline here"
    assert "missing-header-body-separator" in record.defects


def test_split_junk_line_among_fields() -> None:
    raw = b"Received: x\nquite Delivered-To: y\nFrom: a@x.com\nSubject: hi\n\nbody\n"
    record = parse_message_bytes(raw, internal_date=INTERNAL)
    assert (record.from_addr, record.subject, record.snippet) == ("a@x.com", "hi", "body")
    assert "junk-line-in-header" in record.defects


def test_split_headerless_and_empty() -> None:
    for raw in (b"", b" ", b"22\n", b"Just a body, no headers at all.\n\nMore."):
        record = parse_message_bytes(raw, internal_date=INTERNAL)
        assert record.synthetic_id is True
        assert record.from_addr is None


def test_only_top_level_headers_count() -> None:
    raw = (
        b"From: a@x.com\nIn-Reply-To: <top@x>\nContent-Type: multipart/mixed; boundary=b\n\n"
        b"--b\nContent-Type: text/plain\nIn-Reply-To: <inner@x>\nMessage-ID: <inner-id@x>\n\n"
        b"hello\n--b--\n"
    )
    record = parse_message_bytes(raw, internal_date=INTERNAL)
    assert record.in_reply_to == ("<top@x>",)
    assert record.synthetic_id is True
    assert record.snippet == "hello"


def test_parse_headers_stops_at_blank_line() -> None:
    raw = b"From: a@x.com\r\n\r\nFrom: b@x.com\r\nSubject: body\r\n"
    record = parse_headers(raw, internal_date=INTERNAL)
    assert record.from_addr == "a@x.com"
    assert record.subject == ""


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe\x00\x01",
        b":\r\n:\r\n",
        b"From:\r\nTo:\r\nDate:\r\nMessage-ID:\r\nReferences:\r\nSubject:\r\n\r\n",
        b" continuation first\r\nSubject: x\r\n\r\n",
        b"Content-Type: multipart/mixed\r\n\r\n",
        b"Date: Fri, 31 Dec 9999 23:59:59 -2359\r\n\r\n",
        b"Date: Mon, 1 Jan 0001 00:00:00 +2359\r\n\r\n",
        b"Date: Fri, 20 Nov 2026 13:00:00 +9999\r\n\r\n",
        b"Subject: =?utf-8?B?" + b"A" * 5000 + b"?=\r\n\r\n",
        b"Thread-Index: ====\r\n\r\n",
    ],
)
def test_never_raises_on_odd_headers(raw: bytes) -> None:
    record = parse_headers(raw, internal_date=INTERNAL, snippet_bytes=raw)
    assert not any(d.startswith("parser-error") for d in record.defects)
    assert record.message_id.startswith("<")


# ---------------------------------------------------------------- snippets


def snippet(content_type: str, body: bytes, cte: str | None = None) -> str:
    lines = [f"Content-Type: {content_type}", "From: a@x.com"]
    if cte:
        lines.append(f"Content-Transfer-Encoding: {cte}")
    return parse_headers(head(*lines), internal_date=INTERNAL, snippet_bytes=body).snippet


def test_snippet_plain_whitespace_folded() -> None:
    assert snippet("text/plain", b"Hello   there,\r\n\r\nthe app\tcrashes.\r\n") == (
        "Hello there, the app crashes."
    )


def test_snippet_without_content_type_is_plain() -> None:
    record = parse_headers(head("From: a@x.com"), internal_date=INTERNAL, snippet_bytes=b"Hi!")
    assert record.snippet == "Hi!"


def test_snippet_quoted_printable_and_charset() -> None:
    body = b"Gr=FC=DFe, das Ger=E4t ist kaputt=\r\n.\r\n"
    assert snippet("text/plain; charset=iso-8859-1", body, "quoted-printable") == (
        "Grüße, das Gerät ist kaputt."
    )


def test_snippet_base64_truncated_mid_way() -> None:
    encoded = base64.encodebytes("Bonjour, ça ne marche pas. ".encode() * 20)
    text = snippet('text/plain; charset="utf-8"', encoded[:203], "base64")
    assert text.startswith("Bonjour, ça ne marche pas. Bonjour")


def test_snippet_windows_1252() -> None:
    assert snippet("text/plain; charset=windows-1252", b"\x93quoted\x94 \x80 5") == (
        "\u201cquoted\u201d € 5"
    )


def test_snippet_unknown_charset() -> None:
    record = parse_headers(
        head("Content-Type: text/plain; charset=x-unknown"),
        internal_date=INTERNAL,
        snippet_bytes=b"plain words",
    )
    assert record.snippet == "plain words"


def test_snippet_drops_quotes_and_attribution() -> None:
    body = (
        b"Thanks, that fixed it.\r\n\r\n"
        b"On Fri, 20 Nov 2026 at 10:00, Support <support@example.com> wrote:\r\n"
        b"> Please try again.\r\n"
    )
    assert snippet("text/plain", body) == "Thanks, that fixed it."
    inline = b"> earlier text\r\nmy answer\r\n> more earlier text\r\nand more\r\n"
    assert snippet("text/plain", inline) == "my answer and more"
    outlook = b"See below.\r\n\r\n-----Original Message-----\r\nFrom: x\r\n"
    assert snippet("text/plain", outlook) == "See below."


def test_snippet_capped() -> None:
    text = snippet("text/plain", b"word " * 500)
    assert len(text) <= SNIPPET_CHARS
    assert text.startswith("word word")


def test_snippet_multipart_alternative_prefers_plain() -> None:
    body = (
        b"--XYZ\r\nContent-Type: text/html\r\n\r\n<p>html version</p>\r\n"
        b"--XYZ\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\nplain =C3=A9\r\n--XYZ--\r\n"
    )
    assert snippet('multipart/alternative; boundary="XYZ"', body) == "plain é"


def test_snippet_nested_multipart() -> None:
    body = (
        b"preamble\r\n--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n"
        b"--inner\r\nContent-Type: text/plain\r\n\r\ninner text\r\n--inner--\r\n"
        b"--outer\r\nContent-Type: application/pdf\r\n\r\n%PDF\r\n--outer--\r\n"
    )
    assert snippet("multipart/mixed; boundary=outer", body) == "inner text"


def test_snippet_similar_boundaries() -> None:
    body = (
        b"--abc\r\nContent-Type: multipart/alternative; boundary=abcd\r\n\r\n"
        b"--abcd\r\nContent-Type: text/plain\r\n\r\nright\r\n--abcd--\r\n--abc--\r\n"
    )
    assert snippet("multipart/mixed; boundary=abc", body) == "right"


def test_snippet_html_only() -> None:
    body = b"<html><head><style>p{color:red}</style></head><body><p>Hello&nbsp;<b>you</b></p>"
    assert snippet("text/html", body) == "Hello you"


def test_snippet_multipart_truncated_inside_part() -> None:
    body = b"--b\r\nContent-Type: text/plain\r\n\r\nThe first part is cut here"
    assert snippet("multipart/mixed; boundary=b", body) == "The first part is cut here"


def test_snippet_boundary_lost_by_bad_fold_is_guessed() -> None:
    body = b'boundary="xx"\r\n\r\n--xx\r\nContent-Type: text/plain\r\n\r\nfound it\r\n--xx--\r\n'
    assert snippet("multipart/mixed;", body) == "found it"


def test_snippet_rfc2231_charset() -> None:
    assert snippet("text/plain; charset*=utf-8''utf-8", "é".encode()) == "é"


def test_snippet_none_for_attachment_only() -> None:
    assert snippet("application/pdf", b"%PDF-1.4 binary") == ""
    assert snippet("multipart/mixed; boundary=b", b"no delimiter at all") == ""


def test_parse_message_bytes_uses_body_for_snippet_and_size() -> None:
    raw = b"From: a@x.com\r\nContent-Type: text/plain\r\n\r\n" + b"x" * 5000
    record = parse_message_bytes(raw, internal_date=INTERNAL)
    assert record.size == len(raw)
    assert parse_message_bytes(raw, internal_date=INTERNAL, size=7).size == 7
    assert record.snippet == "x" * SNIPPET_CHARS
