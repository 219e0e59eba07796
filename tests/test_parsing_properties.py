"""Properties of monitor.parsing: it never raises, and what it returns is always storable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.header import Header
from email.utils import formataddr

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.parsing import (
    MAX_DATE_SKEW,
    decode_rfc2047,
    message_time,
    parse_headers,
    parse_message_bytes,
)
from monitor.records import MessageRecord

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

internal_dates = st.datetimes(
    min_value=datetime(1980, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
field_names = st.sampled_from(
    [
        "From",
        "To",
        "Cc",
        "Sender",
        "Subject",
        "Date",
        "Message-ID",
        "In-Reply-To",
        "References",
        "Thread-Index",
        "Content-Type",
        "Content-Transfer-Encoding",
        "Auto-Submitted",
        "Precedence",
        "List-Id",
        "X-Auto-Response-Suppress",
        "X-Apple-Action",
        "X-Other",
    ]
)
value_bytes = st.one_of(
    st.binary(max_size=60),
    st.text(max_size=60).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from(
        [
            b"=?utf-8?B?w6k=?=",
            b"=?iso-2022-jp?B?GyRCJUYlOSVIGyhC?=",
            b"=?x?Q?=FF?=",
            b"<a@b> (c) <d@e",
            b"multipart/mixed; boundary=b",
            b"multipart/report; report-type=delivery-status",
            b"Fri, 20 Nov 2026 13:00:00 +0000",
            b"Mon, 1 Jan 0001 00:00:00 +2359",
            b'"a, b" <c@d>, e@f (g), h:i@j;',
            b"AQHT" * 10,
            b"quoted-printable",
            b"base64",
        ]
    ),
)
separators = st.sampled_from([b"\r\n", b"\n", b"\r", b"\r\n ", b"\n\t", b""])


@st.composite
def header_blocks(draw: st.DrawFn) -> bytes:
    """Header-like bytes: real field names with hostile values, odd folding and line ends."""
    parts = []
    for _ in range(draw(st.integers(0, 8))):
        parts.append(draw(field_names).encode() + b":" + draw(value_bytes) + draw(separators))
    return b"".join(parts) + draw(st.sampled_from([b"\r\n", b"", b"\n\n"]))


def assert_storable(record: MessageRecord, internal: datetime) -> None:
    """What storage relies on: no parser crash, UTC times, text that encodes, ids with <>."""
    assert not any(d.startswith("parser-error") for d in record.defects), record.defects
    assert record.message_id.startswith("<") and record.message_id.endswith(">")
    assert record.internal_date == internal
    assert record.time.tzinfo == UTC
    assert abs(record.time - internal) <= MAX_DATE_SKEW
    texts = [record.message_id, record.subject, record.from_name, record.snippet]
    texts += [a for a in record.participants]
    texts += [*record.in_reply_to, *record.references, *record.defects]
    for text in texts:
        assert "\x00" not in text
        text.encode("utf-8")  # no lone surrogates
    for msg_id in (*record.in_reply_to, *record.references):
        assert msg_id.startswith("<") and msg_id.endswith(">")


@FAST
@given(raw=st.binary(max_size=400), internal=internal_dates)
def test_parse_headers_never_raises_on_any_bytes(raw: bytes, internal: datetime) -> None:
    record = parse_headers(raw, internal_date=internal, snippet_bytes=raw)
    assert_storable(record, internal)


@FAST
@given(header=header_blocks(), body=st.binary(max_size=200), internal=internal_dates)
def test_parse_headers_never_raises_on_hostile_fields(
    header: bytes, body: bytes, internal: datetime
) -> None:
    record = parse_headers(header, internal_date=internal, size=len(body), snippet_bytes=body)
    assert_storable(record, internal)


@FAST
@given(header=header_blocks(), sep=separators, body=st.binary(max_size=200))
def test_parse_message_bytes_never_raises(header: bytes, sep: bytes, body: bytes) -> None:
    internal = datetime(2026, 11, 20, tzinfo=UTC)
    raw = header + sep + body
    record = parse_message_bytes(raw, internal_date=internal)
    assert_storable(record, internal)
    assert record.size == len(raw)


@FAST
@given(
    date=st.one_of(st.none(), st.datetimes(timezones=st.just(UTC))),
    internal=st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
)
def test_message_time_within_a_day_of_internaldate(
    date: datetime | None, internal: datetime
) -> None:
    result = message_time(date, internal)
    assert abs(result - internal) <= MAX_DATE_SKEW
    assert result == (
        date if date is not None and abs(date - internal) <= MAX_DATE_SKEW else internal
    )


@FAST
@given(offset_s=st.integers(-3 * 86400, 3 * 86400))
def test_date_header_round_trip_and_fallback(offset_s: int) -> None:
    internal = datetime(2026, 11, 20, 14, 5, tzinfo=UTC)
    date = internal + timedelta(seconds=offset_s)
    header = f"Date: {date.strftime('%a, %d %b %Y %H:%M:%S +0000')}\r\n\r\n".encode()
    record = parse_headers(header, internal_date=internal)
    assert record.date_header == date
    assert record.time == (date if abs(offset_s) <= 86400 else internal)


id_part = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~.",
    min_size=1,
    max_size=20,
)
message_ids = st.builds(lambda left, right: f"<{left}@{right}>", id_part, id_part)


@FAST
@given(
    ids=st.lists(message_ids, min_size=1, max_size=12),
    joiners=st.lists(st.sampled_from([" ", "\r\n ", "\r\n\t", ", ", ""]), min_size=12, max_size=12),
)
def test_references_round_trip(ids: list[str], joiners: list[str]) -> None:
    value = "".join(msg_id + joiner for msg_id, joiner in zip(ids, joiners, strict=False))
    header = f"References: {value}\r\nIn-Reply-To: {ids[-1]}\r\n\r\n".encode()
    record = parse_headers(header, internal_date=datetime(2026, 1, 1, tzinfo=UTC))
    assert record.references == tuple(dict.fromkeys(ids))
    assert record.in_reply_to == (ids[-1],)


readable = (
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")),
        min_size=1,
        max_size=80,
    )
    .map(lambda t: " ".join(t.split()))
    .filter(bool)
)


@FAST
@given(text=readable, charset=st.sampled_from(["utf-8", "iso-8859-1", "shift_jis", "gb2312"]))
def test_rfc2047_round_trip(text: str, charset: str) -> None:
    try:
        text.encode(charset)
    except UnicodeEncodeError:
        charset = "utf-8"
    encoded = Header(text, charset, maxlinelen=76).encode()
    unfolded = encoded.replace("\n", "")
    assert " ".join(decode_rfc2047(unfolded).split()) == text


@FAST
@given(name=readable, local=id_part.filter(lambda s: "." not in s[:1] + s[-1:]), domain=id_part)
def test_address_round_trip(name: str, local: str, domain: str) -> None:
    addr = f"{local}@{domain}"
    header = f"From: {formataddr((name, addr))}\r\n\r\n".encode()
    record = parse_headers(header, internal_date=datetime(2026, 1, 1, tzinfo=UTC))
    if not any(c in local for c in '()<>[]:;@\\,."'):
        assert record.from_addr == addr.lower()
        assert record.from_name == name
