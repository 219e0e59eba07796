"""Turn raw header bytes (and a short body prefix) into a MessageRecord: lenient, fast, pure."""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import unquote

from monitor.records import Automatic, MessageRecord

__all__ = [
    "MAX_DATE_SKEW",
    "SNIPPET_BYTES",
    "SNIPPET_CHARS",
    "SYNTHETIC_DOMAIN",
    "decode_rfc2047",
    "detect_automatic",
    "extract_message_ids",
    "is_out_of_office_subject",
    "message_time",
    "parse_headers",
    "parse_message_bytes",
    "split_message",
    "synthetic_message_id",
]

SNIPPET_BYTES = 2048  # what the IMAP fetch reads of the body: BODY.PEEK[TEXT]<0.2048>
SNIPPET_CHARS = 300
MAX_DATE_SKEW = timedelta(hours=24)  # product.md "Message time"
SYNTHETIC_DOMAIN = "pocwatch.invalid"

_MAX_ID_CHARS = 500  # longer ids are garbage, and would not fit a PostgreSQL btree index
_MAX_REFERENCES = 100
_MAX_SUBJECT_CHARS = 1000
_MAX_BODY_SCAN = 65536  # bound snippet work whatever the caller passes
_MAX_MIME_DEPTH = 5

# Only these fields are read; every other line is skipped without building anything.
_WANTED = frozenset(
    {
        "from",
        "sender",
        "to",
        "cc",
        "subject",
        "date",
        "message-id",
        "in-reply-to",
        "references",
        "thread-index",
        "content-type",
        "content-transfer-encoding",
        "auto-submitted",
        "x-autoreply",
        "x-autorespond",
        "precedence",
        "x-auto-response-suppress",
        "list-id",
        "x-apple-action",
        "x-failed-recipients",
    }
)

Headers = Mapping[str, Sequence[str]]


# ---------------------------------------------------------------- header fields


_ESCAPED_BYTE = re.compile(r"[\udc80-\udcff]")


def _fix_8bit(value: str, name: str, defects: list[str]) -> str:
    """Re-read a value holding raw bytes that are no UTF-8 (surrogate-escaped by the decode).

    Where the rest is UTF-8 the stray bytes become U+FFFD (a truncated character); where there
    is no UTF-8 at all the value is legacy 8-bit text, read as Windows-1252 (Latin-1 fallback).
    """
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        pass
    _add(defects, f"raw-8bit-header:{name}")
    if _ESCAPED_BYTE.sub("", value).isascii():
        raw = value.encode("utf-8", "surrogateescape")
        try:
            return raw.decode("cp1252")
        except UnicodeDecodeError:
            return raw.decode("latin-1")
    return _ESCAPED_BYTE.sub("\ufffd", value)


def _add(defects: list[str], defect: str) -> None:
    if defect not in defects:
        defects.append(defect)


# One C-level scan finds the fields we use; every other line costs nothing in Python. The
# leading literal "\n" lets the regex engine jump from line to line; matching runs on the
# lowercased text (same offsets for ASCII), values are sliced from the original.
_NAMES = "|".join(sorted(_WANTED, key=len, reverse=True))
_FIELD = re.compile(r"\n(" + _NAMES + r")[ \t]*:([^\n]*(?:\n[ \t][^\n]*)*)")
_FIELD_ANY_CASE = re.compile(r"\n(?i:(" + _NAMES + r"))[ \t]*:([^\n]*(?:\n[ \t][^\n]*)*)")
_LEADING_WS_LINES = re.compile(r"(?:[ \t]*\n)+")


def _header_fields(header_bytes: bytes, defects: list[str]) -> dict[str, list[str]]:
    """Unfold the top-level header block into {lowercase name: [values]} for the fields we use.

    A hand split rather than email.parser: several times faster, no Header objects for 8-bit
    values, and the block ends at the first empty line, so MIME part headers never leak in
    (cpython msg_48).
    """
    if header_bytes.isascii():
        text = header_bytes.decode("ascii")
        eight_bit = False
    else:
        text = header_bytes.decode("utf-8", "surrogateescape")
        eight_bit = True
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\x00" in text:
        text = text.replace("\x00", "")
        _add(defects, "nul-in-header")
    if text[:1] in (" ", "\t", "\n"):
        leading = _LEADING_WS_LINES.match(text)
        if leading:
            text = text[leading.end() :]
            _add(defects, "whitespace-before-headers")
        if text[:1] in (" ", "\t"):
            _add(defects, "header-starts-with-continuation")
    end = text.find("\n\n")
    text = "\n" + (text[: end + 1] if end >= 0 else text)
    lowered = text.lower()
    if len(lowered) == len(text):
        matches = _FIELD.finditer(lowered)
    else:  # a few non-ASCII characters change length when lowercased
        matches = _FIELD_ANY_CASE.finditer(text)
    fields: dict[str, list[str]] = {}
    for match in matches:
        start, stop = match.span(2)
        value = text[start:stop]
        if "\n" in value:
            value = value.replace("\n", "")
        value = value.strip()
        name = match[1].lower()
        if eight_bit and not value.isascii():
            value = _fix_8bit(value, name, defects)
        fields.setdefault(name, []).append(value)
    return fields


def _first(fields: Headers, name: str) -> str | None:
    values = fields.get(name)
    return values[0] if values else None


_WS = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _fold(text: str) -> str:
    """Collapse whitespace runs and drop control characters (NUL would break PostgreSQL)."""
    folded = " ".join(text.split())
    if not folded.isprintable():
        folded = _CONTROL.sub("", folded)
    return folded


# ---------------------------------------------------------------- RFC 2047

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([qQbB])\?([^?]*)\?=")


# Labels whose bytes are, in practice, a superset encoding (as browsers treat them).
_CHARSET_ALIASES = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "iso-latin-1": "cp1252",
    "us-ascii": "utf-8",
    "ascii": "utf-8",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "euc-kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "big5": "big5hkscs",
}


_SEVEN_BIT_CHARSET = re.compile(r"iso-?2022|utf-?7|hz|unicode-1-1-utf-7|csiso2022", re.IGNORECASE)


def _charset_decode(data: bytes, charset: str, defects: list[str] | None) -> str:
    if data.isascii() and not _SEVEN_BIT_CHARSET.match(charset):
        return data.decode("ascii")  # same text in any ASCII-compatible charset, and faster
    charset = charset.strip().strip('"').lower()
    try:
        return data.decode(_CHARSET_ALIASES.get(charset, charset) or "utf-8", "replace")
    except LookupError:
        if defects is not None:
            _add(defects, f"unknown-charset:{charset[:40]}")
        return data.decode("utf-8", "replace")


def _b64_lenient(text: str | bytes) -> bytes:
    """Decode base64 that may be truncated, unpadded or littered with junk."""
    data = text.encode("ascii", "ignore") if isinstance(text, str) else text
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:
        pass
    cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
    if len(cleaned) % 4 == 1:
        cleaned = cleaned[:-1]  # a lone trailing character carries no whole byte
    try:
        return binascii.a2b_base64(cleaned + b"=" * (-len(cleaned) % 4))
    except binascii.Error:
        return b""


def decode_rfc2047(value: str, defects: list[str] | None = None) -> str:
    """Decode RFC 2047 encoded words; adjacent words of one charset are joined before decoding,
    so a multi-byte character split across two words survives."""
    if "=?" not in value:
        return value
    pieces: list[str] = []
    pending = bytearray()
    pending_charset = ""
    last_end = 0

    def flush() -> None:
        nonlocal pending_charset
        if pending:
            pieces.append(_charset_decode(bytes(pending), pending_charset, defects))
            pending.clear()
        pending_charset = ""

    for match in _ENCODED_WORD.finditer(value):
        gap = value[last_end : match.start()]
        charset = match.group(1).split("*", 1)[0].lower()
        if gap and (gap.strip() or not (pending or last_end)):
            flush()
            pieces.append(gap)
        elif charset != pending_charset:
            flush()
        encoded = match.group(3)
        if match.group(2) in "bB":
            pending.extend(_b64_lenient(encoded))
        else:
            pending.extend(binascii.a2b_qp(encoded.encode("utf-8", "replace"), header=True))
        pending_charset = charset
        last_end = match.end()
    flush()
    pieces.append(value[last_end:])
    return "".join(pieces)


# ---------------------------------------------------------------- addresses


_ADDR_TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*(?:"|$)|\((?:[^()\\]|\\.)*(?:\)|$)|<[^<>]*(?:>|$)|,|[^",(<]+', re.DOTALL
)
_SIMPLE_ADDR = re.compile(r"[^\s\"(),:;<>@]+@[^\s\"(),:;<>@]+")
_NAME_ANGLE = re.compile(r"([^<>@]*?)\s*<([^\s<>@]*@[^\s<>@]*)>")
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
_SPACED_DOT = re.compile(r"\s*\.\s*")
_NEEDS_TOKENIZER = re.compile(r'["(:;\\]')


def _entry(tokens: list[str], out: list[tuple[str, str]]) -> None:
    """One comma-separated entry of an address list: `name <addr>`, `addr (name)`, or junk."""
    words: list[str] = []
    comments: list[str] = []
    angle: str | None = None
    quoted_before = False
    for token in tokens:
        first = token[0]
        if first == '"':
            inner = token[1:-1] if token.endswith('"') and len(token) > 1 else token[1:]
            words.append(_QUOTED_PAIR.sub(r"\1", inner) if "\\" in inner else inner)
            quoted_before = True
            continue
        if first == "(":
            comments.append(token[1:-1] if token.endswith(")") else token[1:])
            continue
        if first == "<":
            inner = token[1:].rstrip(">")
            if "(" in inner:
                inner = _strip_comments(inner)
            angle = _WS.sub("", inner).rpartition(":")[2]  # drop a source route
        else:
            text = token
            if ":" in text:  # "Group name: a@x, b@y;" - the group name is no display name
                text = text.rpartition(":")[2]
                words.clear()
            if ";" in text:
                text = text.replace(";", " ")
            parts = text.split()
            if parts and text[:1] == "@" and words and "@" not in words[-1]:
                local = words.pop()  # a local part split off by a comment, or quoted
                parts[0] = (f'"{local}"' if quoted_before else local) + parts[0]
            words.extend(parts)
        quoted_before = False
    if angle is not None:
        name = " ".join(words) or " ".join(comments)
        if angle:
            out.append((name, angle))
        elif name:
            out.append((name, ""))
        return
    if "." in words:  # obsolete "jdoe@test   . example"
        words = _SPACED_DOT.sub(".", " ".join(words)).split()
    at_words = [w for w in words if "@" in w]
    if at_words:
        rest = [w for w in words if "@" not in w]
        name = " ".join(rest) or " ".join(comments)
        out.append((name, at_words[0]))
        out.extend(("", extra) for extra in at_words[1:])
    elif len(words) == 1:
        out.append((" ".join(comments), words[0]))  # a bare local part such as MAILER-DAEMON


def _addresses(values: Sequence[str]) -> list[tuple[str, str]]:
    """(display name, lowercased addr-spec) pairs from address headers, leniently.

    Hand-rolled because email.utils.getaddresses (with the CVE-2023-27043 fix) returns nothing
    for a whole header when one entry is malformed ("a@x <b@y>", two bare addresses).
    """
    out: list[tuple[str, str]] = []
    for value in values:
        if not _NEEDS_TOKENIZER.search(value):
            # The common shapes, "a@b" and "Name <a@b>", comma-separated: no tokenizer needed.
            for entry in value.split(","):
                entry = entry.strip()
                if not entry:
                    continue
                if _SIMPLE_ADDR.fullmatch(entry):
                    out.append(("", entry))
                    continue
                match = _NAME_ANGLE.fullmatch(entry)
                if match:
                    out.append((match.group(1), match.group(2)))
                else:
                    _entry([m.group() for m in _ADDR_TOKEN.finditer(entry)], out)
            continue
        tokens: list[str] = []
        for match in _ADDR_TOKEN.finditer(value):
            token = match.group()
            if token == ",":
                if tokens:
                    _entry(tokens, out)
                tokens = []
            else:
                tokens.append(token)
        if tokens:
            _entry(tokens, out)
    result: list[tuple[str, str]] = []
    for name, addr in out:
        addr = addr.strip().rstrip(";").lower()
        if addr[:1] == "@":
            addr = ""  # "<Undisclosed-Recipient:@host;>": a group remnant, nobody
        if addr[:1] == addr[-1:] == "'" and "@" in addr[2:-2]:
            addr = addr[1:-1]  # 'jane@acme.com', as a few mailers write it
        if addr or name:
            result.append((name, addr))
    return result


def _addr_tuple(values: Sequence[str] | None) -> tuple[str, ...]:
    if not values:
        return ()
    seen: dict[str, None] = {}
    for _name, addr in _addresses(values):
        if addr:
            seen.setdefault(addr, None)
    return tuple(seen)


# ---------------------------------------------------------------- message ids

_COMMENT_OR_QUOTE = re.compile(r'\((?:[^()\\]|\\.)*\)|"(?:[^"\\]|\\.)*"')
_ANGLE_TOKEN = re.compile(r"<([^<>]*)>")


def _strip_comments(value: str) -> str:
    # Comments nest; a few passes undo realistic nesting without a parser.
    for _ in range(3):
        stripped = _COMMENT_OR_QUOTE.sub(" ", value)
        if stripped == value:
            break
        value = stripped
    return value


def extract_message_ids(
    value: str, defects: list[str] | None = None, field: str = "", *, wrap_bare: bool = False
) -> list[str]:
    """Every msg-id in a Message-ID / In-Reply-To / References value, with <>, in order.

    Whitespace inside an id (folding) is removed; comments and quoted phrases are ignored; a
    truncated "<invalid." is dropped. A bare "x@y" becomes "<x@y>" only with `wrap_bare`
    (Message-ID): in In-Reply-To it is usually an address, and a made-up parent would merge
    unrelated conversations.
    """
    ids: list[str] = []
    text = _strip_comments(value) if ("(" in value or '"' in value) else value
    tokens = _ANGLE_TOKEN.findall(text)
    for token in tokens:
        if " " in token or "\t" in token:
            token = "".join(token.split())
        if not token:
            if defects is not None:
                _add(defects, f"empty-id:{field}")
        elif len(token) > _MAX_ID_CHARS:
            if defects is not None:
                _add(defects, f"long-id:{field}")
        else:
            ids.append(f"<{token}>")
    rest = _ANGLE_TOKEN.sub(" ", text) if tokens else text
    if "<" in rest and defects is not None:
        _add(defects, f"truncated-id:{field}")
    if tokens or not rest.strip():
        return ids
    words = [w.strip("<>") for w in rest.replace(",", " ").split()]
    bare = [w for w in words if "@" in w and len(w) <= _MAX_ID_CHARS]
    if wrap_bare and bare:
        ids.append(f"<{bare[0]}>")
        if defects is not None:
            _add(defects, f"id-without-brackets:{field}")
    elif defects is not None:
        _add(defects, f"unusable-id:{field}")
    return ids


def _dedupe(ids: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(ids))


def synthetic_message_id(record: MessageRecord) -> str:
    """A stable made-up Message-ID from what identifies the message (From, Subject, Date or else
    INTERNALDATE, size), so the same message seen in two folders gets the same one."""
    when = record.date_header if record.date_header is not None else record.internal_date
    return _synthetic_id(record.from_addr, record.subject, when, record.size)


def _synthetic_id(from_addr: str | None, subject: str, when: datetime, size: int) -> str:
    key = "\x1f".join((from_addr or "", subject, _utc(when).isoformat(), str(size)))
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"<{digest}@{SYNTHETIC_DOMAIN}>"


# ---------------------------------------------------------------- dates


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)  # "-0000" and naive INTERNALDATEs mean UTC
    return value.astimezone(UTC)


_OBS_TIME = re.compile(r"\s*:\s*")


_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
    )
}
# The shape nearly every mailer writes: "[Thu, ]29 Apr 2005 23:34:45 +0900[ (JST)]".
_COMMON_DATE = re.compile(
    r"(?:[A-Za-z]{3},\s*)?(\d{1,2})\s+([A-Za-z]{3})\s+(\d{4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?"
    r"\s+([+-]\d{4}|GMT|UTC?|Z)(?:\s*\([^()]*\))?\s*"
)
_ZONES: dict[str, timezone] = {"GMT": UTC, "UT": UTC, "UTC": UTC, "Z": UTC}


def _zone(offset: str) -> timezone:
    zone = _ZONES.get(offset)
    if zone is None:
        minutes = int(offset[1:3]) * 60 + int(offset[3:5])
        zone = timezone(timedelta(minutes=-minutes if offset[0] == "-" else minutes))
        if len(_ZONES) < 2000:  # offsets come from a small set; bound it against junk anyway
            _ZONES[offset] = zone
    return zone


def _parse_date(value: str) -> datetime | None:
    match = _COMMON_DATE.fullmatch(value)
    if match is None and "(" in value:
        # "00:19:00 (EDT) -0400": the stdlib would take the comment for the zone.
        value = _strip_comments(value)
        match = _COMMON_DATE.fullmatch(value)
    if match:
        day, month, year, hour, minute, second, offset = match.groups()
        month_number = _MONTHS.get(month.lower())
        if month_number is not None:
            try:
                local = datetime(
                    int(year),
                    month_number,
                    int(day),
                    int(hour),
                    int(minute),
                    int(second or 0),
                    tzinfo=_zone(offset),
                )
                return local.astimezone(UTC)
            except (ValueError, OverflowError):
                pass
    try:
        return _utc(parsedate_to_datetime(value))
    except (TypeError, ValueError, OverflowError, IndexError):
        pass
    try:  # a few robots write ISO 8601
        return _utc(datetime.fromisoformat(value.strip()))
    except (TypeError, ValueError, OverflowError):
        pass
    if "(" in value or " :" in value or ": " in value:  # obsolete syntax: comments, spaced colons
        cleaned = _OBS_TIME.sub(":", _strip_comments(value))
        if cleaned != value:
            return _parse_date(cleaned)
    return None


def message_time(date_header: datetime | None, internal_date: datetime) -> datetime:
    """The Date header, unless missing or more than 24 hours from the server's INTERNALDATE."""
    internal = _utc(internal_date)
    if date_header is None:
        return internal
    try:
        date = _utc(date_header)
        if abs(date - internal) > MAX_DATE_SKEW:
            return internal
    except OverflowError:
        return internal
    return date


# ---------------------------------------------------------------- content type, snippet

_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"?|[^;]*)')


def _mime_type(value: str | None) -> str:
    """Lowercase type/subtype; text/plain when missing or broken (RFC 2045's default)."""
    if not value:
        return "text/plain"
    ctype = "".join(value.partition(";")[0].split()).lower()
    return ctype if "/" in ctype else "text/plain"


def _content_type(value: str | None) -> tuple[str, dict[str, str]]:
    """(lowercase type/subtype, {lowercase param: value}); text/plain when missing or broken."""
    ctype = _mime_type(value)
    if not value:
        return ctype, {}
    head = value.partition(";")[0]
    params: dict[str, str] = {}
    continued: dict[str, list[tuple[int, str]]] = {}
    for key, raw in _PARAM.findall(value[len(head) :]):
        raw = raw.strip()
        if raw.startswith('"'):
            raw = raw[1:-1] if raw.endswith('"') and len(raw) > 1 else raw[1:]
            raw = raw.replace('\\"', '"').replace("\\\\", "\\")
        key = key.lower()
        if "*" in key:  # RFC 2231: name*=charset'lang'value, name*0=..., name*1*=...
            name, _, rest = key.partition("*")
            if rest.endswith("*") or not rest:
                raw = unquote(raw.split("'", 2)[-1], errors="replace")
            index = rest.rstrip("*")
            continued.setdefault(name, []).append((int(index) if index.isdigit() else 0, raw))
            continue
        params.setdefault(key, raw)
    for name, pieces in continued.items():
        params.setdefault(name, "".join(piece for _, piece in sorted(pieces)))
    return ctype, params


_LINE_END = re.compile(rb"\r\n|\n|\r")
_EOL = rb"(?:\r\n|\n|\r|\Z)"
# Field lines, each followed by its continuation lines; it always matches (maybe empty).
_HEADER_BLOCK = re.compile(
    rb"(?:[\x21-\x39\x3b-\x7e]+[ \t]*:[^\r\n]*" + _EOL + rb"(?:[ \t][^\r\n]*" + _EOL + rb")*)*"
)
_LEADING_BLANK = re.compile(rb"(?:[ \t]*(?:\r\n|\n|\r))+")
_MBOX_FROM = re.compile(rb"From (?![ \t]*:)[^\r\n]*(?:\r\n|\n|\r|\Z)")


_BLANK_LINE = re.compile(rb"\r\n\r\n|\n\r?\n|\r\r")
_LATER_FIELD = re.compile(rb"(?:\r\n|\n|\r)[\x21-\x39\x3b-\x7e]+[ \t]*:")


def _header_end(raw: bytes, start: int, stop: int) -> int:
    match = _HEADER_BLOCK.match(raw, start, stop)
    return match.end() if match else start


def _split_offsets(raw: bytes, defects: list[str] | None) -> tuple[int, int, int]:
    """(header start, header end, body start) offsets, so no caller copies a big body."""
    start = 0
    match = _MBOX_FROM.match(raw)
    if match:
        start = match.end()
    match = _LEADING_BLANK.match(raw, start)
    if match and _header_end(raw, match.end(), len(raw)) > match.end():
        start = match.end()
        if defects is not None:
            _add(defects, "whitespace-before-headers")
    blank = _BLANK_LINE.search(raw, start)
    stop = blank.start() if blank else len(raw)
    body = blank.end() if blank else len(raw)
    end = _header_end(raw, start, stop)
    if end >= stop:
        return start, stop, body
    if end > start and _LATER_FIELD.search(raw, end, stop):
        # A junk line among the fields: the server ends the header at the empty line, so do we.
        if defects is not None:
            _add(defects, "junk-line-in-header")
        return start, stop, body
    if defects is not None and end > start:
        _add(defects, "missing-header-body-separator")
    return start, end, end


def split_message(raw: bytes, defects: list[str] | None = None) -> tuple[bytes, bytes]:
    """(header block, body) of a whole message, leniently: CRLF, LF or bare CR, an mbox "From "
    first line, blank lines before the first field, a junk line among the fields, or no empty
    separator line at all (the body then starts at the first line that is not a field)."""
    start, end, body = _split_offsets(raw, defects)
    return raw[start:end], raw[body:]


_PART_FIELD = re.compile(
    r"\n(content-type|content-transfer-encoding)[ \t]*:([^\n]*(?:\n[ \t][^\n]*)*)"
)


def _part_fields(part: bytes) -> tuple[str | None, str, bytes]:
    """(Content-Type value, transfer encoding, body) of one MIME part; only those two fields
    matter here, so a part's header gets a cheaper scan than the message's."""
    blank = _BLANK_LINE.search(part)
    if blank is None:
        return None, "", part
    header = part[: blank.start()].decode("latin-1")
    if "\r" in header:
        header = header.replace("\r\n", "\n").replace("\r", "\n")
    header = "\n" + header
    lowered = header.lower()
    ctype: str | None = None
    cte = ""
    for match in _PART_FIELD.finditer(lowered):
        value = header[match.start(2) : match.end(2)].replace("\n", "").strip()
        if match.group(1) == "content-type":
            ctype = ctype or value
        else:
            cte = cte or value
    return ctype, cte, part[blank.end() :]


def _next_delimiter(body: bytes, delim: bytes, pos: int) -> tuple[int, int, bool] | None:
    """(start, end, is_close) of the next delimiter line of this boundary at or after pos."""
    while True:
        i = body.find(delim, pos)
        if i < 0:
            return None
        pos = i + len(delim)
        if i and body[i - 1] not in b"\r\n":
            continue
        line_end = _LINE_END.search(body, pos)
        stop = line_end.start() if line_end else len(body)
        rest = body[pos:stop]
        closing = rest.startswith(b"--")
        if rest[2 if closing else 0 :].strip():
            continue  # a longer boundary that merely starts with ours
        return i, (line_end.end() if line_end else stop), closing


_GUESS_BOUNDARY = re.compile(rb"(?m)^--([^\s]{1,200}?)(?:--)?[ \t]*\r?$")


def _decode_text(body: bytes, cte: str, charset: str, defects: list[str]) -> str:
    cte = cte.strip().lower()
    if cte == "quoted-printable":
        data = binascii.a2b_qp(body)
    elif cte == "base64":
        data = _b64_lenient(body)
    else:
        if cte not in ("", "7bit", "8bit", "binary"):
            _add(defects, f"unknown-transfer-encoding:{cte[:40]}")
        data = body
    return _charset_decode(data, charset, defects)


_HTML_DROP = re.compile(r"(?is)<(script|style|head)\b.*?(?:</\1\s*>|\Z)")
_HTML_TAG = re.compile(r"(?s)<[^>]*>?")


def _html_text(text: str) -> str:
    text = _HTML_DROP.sub(" ", text)
    text = _HTML_TAG.sub(" ", text)
    return html.unescape(text)


def _find_text(
    body: bytes, ctype: str, params: Mapping[str, str], cte: str, defects: list[str], depth: int
) -> tuple[str, bool] | None:
    """(text, is_html) of the first readable part: text/plain preferred over text/html."""
    if ctype == "text/plain" or ctype == "text/html":
        text = _decode_text(body, cte, params.get("charset", ""), defects)
        return text, ctype == "text/html"
    if not ctype.startswith("multipart/") or depth >= _MAX_MIME_DEPTH:
        return None
    boundary_text = params.get("boundary", "")
    if boundary_text:
        boundary = boundary_text.encode("utf-8", "replace")
    else:
        # A broken Content-Type fold loses the parameter; the first delimiter line still shows it.
        _add(defects, "multipart-without-boundary")
        guess = _GUESS_BOUNDARY.search(body)
        if guess is None:
            return None
        boundary = guess.group(1)
    delim = b"--" + boundary
    mark = _next_delimiter(body, delim, 0)
    if mark is None:
        _add(defects, "multipart-boundary-not-found")
        return None
    html_fallback: tuple[str, bool] | None = None
    while mark is not None and not mark[2]:
        following = _next_delimiter(body, delim, mark[1])
        part = body[mark[1] : following[0] if following else len(body)]
        ctype_value, sub_cte, sub_body = _part_fields(part)
        sub_type, sub_params = _content_type(ctype_value)
        found = _find_text(sub_body, sub_type, sub_params, sub_cte, defects, depth + 1)
        if found is not None:
            if not found[1]:
                return found
            if html_fallback is None:
                html_fallback = found
        mark = following
    return html_fallback


# Where the quoted original starts (matched on "\n" + the lowercased text).
_QUOTE_CUT = re.compile(
    r"\n(?:-{2,}\s*original message|_{10,}\s*\n|on\b[^\n]{0,200}\bwrote:\s*\n"
    r"|le\b[^\n]{0,200}\ba écrit\s*:\s*\n|am\b[^\n]{0,200}\bschrieb\b[^\n]{0,100}:\s*\n)"
)
_QUOTED_LINE = re.compile(r"\n[ \t]*>[^\n]*")


def _snippet(
    body: bytes, ctype: str, params: Mapping[str, str], cte: str, defects: list[str]
) -> str:
    found = _find_text(body[:_MAX_BODY_SCAN], ctype, params, cte, defects, 0)
    if found is None:
        return ""
    text, is_html = found
    if is_html:
        text = _html_text(text)
    # Enough to fill the snippet after quotes are dropped; the rest is never looked at.
    text = "\n" + text[: SNIPPET_CHARS * 8]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    cut = _QUOTE_CUT.search(text.lower())
    if cut and cut.start() > 0:
        text = text[: cut.start()]
    if ">" in text:
        text = _QUOTED_LINE.sub("", text)
    snippet = _fold(text[: SNIPPET_CHARS * 2])
    if len(snippet) < SNIPPET_CHARS and len(text) > SNIPPET_CHARS * 2:
        snippet = _fold(text)  # mostly whitespace so far
    return snippet[:SNIPPET_CHARS].rstrip()


# ---------------------------------------------------------------- automatic mail

_SUBJECT_TAGS = re.compile(r"(?:\s*\[[^\]]{0,60}\])+\s*")
# After a phrase: the end, punctuation, or a word that carries an absence notice on.
_TAIL = (
    r"(?=\s*$|\s*[:\-–—(\[|/,;!.*]|\s+(?:until|till|til|through|thru|from|on|re\b|bis|ab|vom|"
    r"jusqu|du|hasta|desde|fino|dal|tot|t/m|van|från|fra|do|od|\d|auto-?reply|autoreply|"
    r"auto reply|automatic reply))"
)
# Phrases that are out-of-office notices on their own (Exchange's localised "Automatic reply"
# prefixes among them).
_OOO_PHRASES = (
    r"out of (?:the )?office(?!\s+hours)|automatic reply|auto[- ]?reply|"
    r"away from (?:the |my )?(?:office|desk|e-?mail|work|keyboard)|"
    r"(?:i am|i'm|currently) (?:currently )?"
    r"(?:away|out of (?:the )?office|on (?:vacation|holiday|leave))|"
    r"on (?:vacation|holidays?|leave|annual leave|parental leave|maternity leave|sick leave)|"
    r"vacation (?:reply|notice|response|auto-?reply)|"
    r"abwesenheitsnotiz|automatische antwort|nicht im b(?:ü|ue)ro|au(?:ß|ss)er haus|"
    r"r[ée]ponse automatique|absente? du bureau|absence du bureau|message d'absence|"
    r"risposta automatica|fuori (?:ufficio|sede)|"
    r"respuesta autom[aá]tica|fuera de(?: la)? oficina|"
    r"resposta autom[aá]tica|fora do escrit[oó]rio|"
    r"automatisch antwoord|afwezigheidsmelding|niet op kantoor|"
    r"fr[aå]nvaro|autosvar|automatiskt? svar|"
    r"automaattinen vastaus|"
    r"automatyczna odpowied(?:ź|z)|poza biurem|"
    r"automatick(?:á|a) odpov(?:ěď|ed)|mimo kancel(?:ář|ar)|"
    r"automatikus v(?:á|a)lasz|h(?:á|a)zon k(?:í|i)v(?:ü|u)l|"
    r"otomatik (?:yan(?:ı|i)t|cevap)|ofis d(?:ı|i)(?:ş|s)(?:ı|i)nda|"
    r"r(?:ă|a)spuns automat|"
    r"автоматический ответ|вне офиса|нет на месте|в отпуске|"
    r"αυτόματη απάντηση|εκτός γραφείου"
)
# Scripts without spaces between words: the phrase itself is specific enough.
_OOO_CJK = r"自动回复|自動回覆|自動回复|自動応答|自動返信|不在通知|休暇中|부재중|자동 응답"
# Single words that are also ordinary subjects ("Absence", "Away match tickets"): an absence
# notice only with a date-like continuation, or in mail a robot sent anyway.
_OOO_WORDS = (
    r"away|absent|absence|vacation|ooo|oof|abwesend|abwesenheit|urlaub|absente?|en cong[ée]s?|"
    r"assente|ausente|afwezig|afwezigheid|frånvarande|frav(?:æ|ae)r(?:ende)?|poissa|"
    r"nieobecno(?:ść|sc)"
)
_OOO_WORDS_DATED = (
    r"\s*[:\-–—(,]?\s*(?:until|till|til|through|thru|bis|jusqu|hasta|fino|tot|t/m|returning|"
    r"back on|zurück am)\b"
)
_AUTO_REPLY_PHRASES = (
    r"auto[- ]?respon(?:se|der|s)?|automatic response|automated (?:response|reply)|autoresponder"
)
_BOUNCE_PHRASES = (
    r"undelivered mail returned to sender|undeliverable(?: mail| message)?\s*(?::|$)|"
    r"delivery status notification|mail delivery (?:failed|failure|system)|"
    r"delivery (?:failure|failed)\b|returned mail\s*:|failure notice\b|"
    r"mail system error - returned mail|message delivery has failed|"
    r"non remis\s*:|unzustellbar\s*:|non recapitabile\s*:|onbestelbaar\s*:|"
    r"no se puede entregar\s*:|olevererbart\s*:|"
    r"(?:warning|delayed mail|delivery delayed)\s*:?\s*(?:could not send|\(still being retried\))|"
    r"delivery notification:\s*delivery has failed|undeliverable mail|"
    r"メールエラー通知|メッセージを配信できません|配信エラー|配送エラー|"
    r"недоставленное сообщение|ваше сообщение не доставлено"
)
# One anchored match classifies a subject; the group that matched names the signal.
_SUBJECT_SIGNAL = re.compile(
    rf"(?P<ooo>(?:{_OOO_PHRASES}){_TAIL}|{_OOO_CJK})"
    rf"|(?P<auto>(?:{_AUTO_REPLY_PHRASES}){_TAIL})"
    rf"|(?P<bounce>{_BOUNCE_PHRASES})"
    rf"|(?P<word>(?:{_OOO_WORDS})(?:(?P<dated>{_OOO_WORDS_DATED})|{_TAIL}|\b))"
    r"|(?P<vacation>auto\s*:)",  # RFC 5230's default vacation subject, "Auto: <subject>"
)  # matched against the lowercased subject: faster than re.IGNORECASE
_BOUNCE_LOCALPARTS = frozenset(
    {"mailer-daemon", "mailer_daemon", "mailerdaemon", "postmaster", "post_master"}
)
_BOUNCE_DISPLAY = re.compile(r'\s*"?\s*(?:mailer[- _]?daemon|postmaster)\b', re.IGNORECASE)
_SUPPRESS_TOKENS = frozenset({"all", "oof", "autoreply"})
_AUTO_SUBMITTED_BOUNCE = re.compile(r"failure|delay|warning|postmaster|delivery", re.IGNORECASE)
_REPORT_TYPES = frozenset({"multipart/report", "message/delivery-status"})


def _subject_signal(subject: str) -> str | None:
    """ "ooo", "auto", "bounce", "vacation" ("Auto:", weak alone), "word" (an absence word,
    weak alone) or "dated" (an absence word with a date-like continuation), from how the
    subject opens ([tags] skipped)."""
    if subject[:1] == "[" or subject[:1].isspace():
        subject = _SUBJECT_TAGS.sub("", subject, count=1)
    match = _SUBJECT_SIGNAL.match(subject.lower())
    if match is None:
        return None
    if match.lastgroup == "word" and match.group("dated"):
        return "dated"
    return match.lastgroup


def is_out_of_office_subject(subject: str) -> bool:
    """A subject that opens like an out-of-office notice, in one of several languages."""
    return _subject_signal(subject) in ("ooo", "dated")


def _token(value: str) -> str:
    return value.split(";", 1)[0].split("(", 1)[0].strip().lower()


_AUTOMATIC_FIELDS = frozenset(
    {
        "auto-submitted",
        "x-autoreply",
        "x-autorespond",
        "precedence",
        "x-auto-response-suppress",
        "list-id",
        "x-apple-action",
    }
)


def _header_signals(headers: Headers, bounce: bool) -> tuple[bool, bool, bool, bool, bool, bool]:
    """(bounce, ooo, strong_auto, weak_auto, is_list, bulk) from the robot header fields."""
    ooo = strong_auto = weak_auto = is_list = bulk = False
    for value in headers.get("auto-submitted", ()):
        keyword = _token(value)
        if keyword and keyword != "no":
            if _AUTO_SUBMITTED_BOUNCE.search(value):
                bounce = True
            elif keyword == "auto-replied":
                strong_auto = True
                # Sieve vacation (Dovecot's Pigeonhole): "auto-replied (vacation)".
                ooo = ooo or "vacation" in value.lower()
            else:
                weak_auto = True
    for name in ("x-autoreply", "x-autorespond"):
        for value in headers.get(name, ()):
            if _token(value) not in ("no", "false", "0"):
                strong_auto = True
    for value in headers.get("precedence", ()):
        keyword = _token(value)
        if keyword in ("auto_reply", "auto-reply"):
            strong_auto = True
        elif keyword == "list":
            is_list = True
        elif keyword in ("bulk", "junk"):
            bulk = True
    for value in headers.get("x-auto-response-suppress", ()):
        tokens = {t.strip().lower() for t in re.split(r"[,\s]+", value)}
        if tokens & _SUPPRESS_TOKENS:
            weak_auto = True
    if any(v.strip() for v in headers.get("list-id", ())):  # an empty List-Id is no list
        is_list = True
    if any(_token(v) == "vacation" for v in headers.get("x-apple-action", ())):
        ooo = True

    return bounce, ooo, strong_auto, weak_auto, is_list, bulk


def detect_automatic(
    headers: Headers, *, subject: str, from_addr: str | None, content_type: str
) -> Automatic | None:
    """Which kind of automatic mail this is (product.md's list), or None for human mail.

    `headers` maps lowercase field names to unfolded values. Kinds are ranked: a bounce beats an
    out-of-office notice, which beats a plain auto-reply, then list, then bulk; weak robot
    markers (Auto-Submitted: auto-generated, X-Auto-Response-Suppress) rank below list and bulk.
    """
    bounce = ooo = strong_auto = weak_auto = is_list = bulk = False

    if content_type.lower() in _REPORT_TYPES or headers.get("x-failed-recipients"):
        bounce = True
    if from_addr:
        if (from_addr.rpartition("@")[0] or from_addr).lower() in _BOUNCE_LOCALPARTS:
            bounce = True
    elif any(_BOUNCE_DISPLAY.match(v) for v in headers.get("from", ())):
        bounce = True  # "MAILER-DAEMON <>": the name is all there is
    if headers.keys() & _AUTOMATIC_FIELDS:
        bounce, ooo, strong_auto, weak_auto, is_list, bulk = _header_signals(headers, bounce)

    signal = _subject_signal(subject) if subject else None
    if signal == "ooo" or signal == "dated":
        ooo = True
    elif signal == "word" and (strong_auto or weak_auto):
        ooo = True  # "Away" from a robot is a vacation notice
    elif signal == "vacation" and strong_auto:
        ooo = True  # a Sieve vacation reply; from a human, "Auto:" is just a subject
    elif signal == "auto":
        strong_auto = True
    elif signal == "bounce":
        bounce = True

    if bounce:
        return Automatic.BOUNCE
    if ooo:
        return Automatic.OUT_OF_OFFICE
    if strong_auto:
        return Automatic.AUTO_REPLY
    if is_list:
        return Automatic.LIST
    if bulk:
        return Automatic.BULK
    if weak_auto:
        return Automatic.AUTO_REPLY
    return None


# ---------------------------------------------------------------- records


def _ids_field(fields: Headers, name: str, label: str, defects: list[str]) -> tuple[str, ...]:
    ids: list[str] = []
    for value in fields.get(name, ()):
        ids.extend(extract_message_ids(value, defects, label))
    unique = _dedupe(ids)
    if len(unique) > _MAX_REFERENCES:
        _add(defects, f"too-many-ids:{label}")
        unique = (unique[0], *unique[-(_MAX_REFERENCES - 1) :])
    return unique


def _thread_index_root(value: str | None, defects: list[str]) -> str | None:
    if value is None:
        return None
    compact = _WS.sub("", value)
    try:
        data = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        _add(defects, "invalid-thread-index")
        return None
    if len(data) < 22:
        _add(defects, "invalid-thread-index")
        return None
    return data[:22].hex()


def _build(
    header_bytes: bytes,
    *,
    internal_date: datetime,
    size: int,
    snippet_bytes: bytes,
    gm_thrid: int | None,
    defects: list[str],
) -> MessageRecord:
    internal = _utc(internal_date)
    fields = _header_fields(header_bytes, defects)
    if not fields and not header_bytes.strip():
        _add(defects, "no-headers")

    subject_raw = _first(fields, "subject")
    if subject_raw and len(subject_raw) > _MAX_SUBJECT_CHARS * 4:
        subject_raw = subject_raw[: _MAX_SUBJECT_CHARS * 4]  # encoded words take ~3x the text
    subject = _fold(decode_rfc2047(subject_raw, defects)) if subject_raw else ""
    if len(subject) > _MAX_SUBJECT_CHARS:
        subject = subject[:_MAX_SUBJECT_CHARS]
        _add(defects, "long-subject")

    from_values = fields.get("from", [])
    from_pairs = _addresses(from_values)
    with_addr = [pair for pair in from_pairs if pair[1]]
    from_addr = with_addr[0][1] if with_addr else None
    name = (with_addr or from_pairs)[0][0] if from_pairs else ""
    from_name = _fold(decode_rfc2047(name, defects)) if name else ""
    if not from_values:
        _add(defects, "missing-from")
    elif from_addr is None:
        _add(defects, "unparseable-from")
    if len(from_values) > 1 or len(with_addr) > 1:
        _add(defects, "multiple-from")
    sender_addr = next((a for _n, a in _addresses(fields.get("sender", ()))), None) or None

    date_header: datetime | None = None
    date_raw = _first(fields, "date")
    if date_raw is None:
        _add(defects, "missing-date")
    else:
        date_header = _parse_date(date_raw)
        if date_header is None:
            _add(defects, "unparseable-date")
    time = message_time(date_header, internal)
    if date_header is not None and time is internal:
        _add(defects, "date-far-from-internaldate")

    message_ids: list[str] = []
    mid_values = fields.get("message-id", [])
    for value in mid_values:
        message_ids.extend(extract_message_ids(value, defects, "message-id", wrap_bare=True))
    if len(mid_values) > 1:
        _add(defects, "multiple-message-id")

    ctype_raw = _first(fields, "content-type")
    ctype = _mime_type(ctype_raw)

    automatic = detect_automatic(fields, subject=subject, from_addr=from_addr, content_type=ctype)
    to_addrs = _addr_tuple(fields.get("to"))
    cc_addrs = _addr_tuple(fields.get("cc"))
    in_reply_to = _ids_field(fields, "in-reply-to", "in-reply-to", defects)
    references = _ids_field(fields, "references", "references", defects)
    thread_index_root = _thread_index_root(_first(fields, "thread-index"), defects)
    snippet = ""
    if snippet_bytes:
        _, params = _content_type(ctype_raw)
        cte = _first(fields, "content-transfer-encoding") or ""
        snippet = _snippet(snippet_bytes, ctype, params, cte, defects)
    message_id = message_ids[0] if message_ids else ""
    if not message_id:
        _add(defects, "missing-message-id" if not mid_values else "unusable-message-id")
        message_id = _synthetic_id(from_addr, subject, date_header or internal, size)
    return MessageRecord(
        message_id=message_id,
        subject=subject,
        from_addr=from_addr,
        internal_date=internal,
        time=time,
        date_header=date_header,
        from_name=from_name,
        sender_addr=sender_addr,
        to_addrs=to_addrs,
        cc_addrs=cc_addrs,
        in_reply_to=in_reply_to,
        references=references,
        thread_index_root=thread_index_root,
        gm_thrid=gm_thrid,
        automatic=automatic,
        synthetic_id=not message_ids,
        snippet=snippet,
        size=size,
        defects=tuple(defects),
    )


def _fallback(
    internal_date: datetime, size: int, gm_thrid: int | None, error: BaseException
) -> MessageRecord:
    """The least we can say about a message our parser choked on: it still gets stored."""
    try:
        internal = _utc(internal_date)
    except (TypeError, ValueError, OverflowError, AttributeError):
        internal = datetime(1970, 1, 1, tzinfo=UTC)
    record = MessageRecord(
        message_id="",
        subject="",
        from_addr=None,
        internal_date=internal,
        time=internal,
        gm_thrid=gm_thrid,
        size=size if isinstance(size, int) else 0,
    )
    return replace(
        record,
        message_id=synthetic_message_id(record),
        synthetic_id=True,
        defects=(f"parser-error:{type(error).__name__}", "missing-message-id"),
    )


def parse_headers(
    header_bytes: bytes,
    *,
    internal_date: datetime,
    size: int = 0,
    snippet_bytes: bytes = b"",
    gm_thrid: int | None = None,
) -> MessageRecord:
    """Parse what IMAP BODY.PEEK[HEADER] (and BODY.PEEK[TEXT]<0.2048>) returned.

    Never raises on any bytes: a malformed message yields what could be read, and `defects`
    names the problems, so one bad message never stops a sync pass.
    """
    try:
        return _build(
            bytes(header_bytes),
            internal_date=internal_date,
            size=size,
            snippet_bytes=bytes(snippet_bytes),
            gm_thrid=gm_thrid,
            defects=[],
        )
    except Exception as error:  # the pass must go on (product.md "Bad input")
        return _fallback(internal_date, size, gm_thrid, error)


def parse_message_bytes(
    raw: bytes, *, internal_date: datetime, size: int | None = None
) -> MessageRecord:
    """Parse a whole RFC 822 message (a corpus file, an mbox entry) the same way as a fetch."""
    defects: list[str] = []
    total = len(raw) if size is None else size
    try:
        raw = bytes(raw)
        start, end, body = _split_offsets(raw, defects)
        return _build(
            raw[start:end],
            internal_date=internal_date,
            size=total,
            snippet_bytes=raw[body : body + SNIPPET_BYTES],
            gm_thrid=None,
            defects=defects,
        )
    except Exception as error:  # see parse_headers
        return _fallback(internal_date, total, None, error)
