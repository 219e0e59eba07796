"""IMAP access, read-only: EXAMINE and BODY.PEEK only, never a flag, move or delete."""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from imapclient import IMAPClient
from imapclient.datetime_util import parse_to_datetime
from imapclient.exceptions import IMAPClientError, LoginError
from imapclient.response_parser import parse_fetch_response
from imapclient.util import to_unicode

from monitor.errors import AuthError, FolderError, SecretError, TransientMailboxError

if TYPE_CHECKING:
    from monitor.config import MailboxConfig

log = logging.getLogger(__name__)
_TRAFFIC_LOG = logging.getLogger("imapclient.imaplib")  # where IMAPClient traces imaplib

HEADER_ITEM = "BODY.PEEK[HEADER]"
SNIPPET_BYTES = 2048
SNIPPET_ITEM = f"BODY.PEEK[TEXT]<0.{SNIPPET_BYTES}>"
FETCH_ITEMS = ("UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", HEADER_ITEM, SNIPPET_ITEM)
HEADER_KEY = b"BODY[HEADER]"
SNIPPET_KEY = b"BODY[TEXT]<0>"


@dataclass(frozen=True, slots=True)
class FolderStatus:
    """What EXAMINE told us about a folder."""

    uidvalidity: int
    uidnext: int | None
    exists: int
    highestmodseq: int | None


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One FETCH response, untouched: parsing happens elsewhere."""

    uid: int
    flags: tuple[str, ...]
    internal_date: datetime
    size: int
    header: bytes
    snippet: bytes
    gm_thrid: int | None
    modseq: int | None


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Certificate checks on, with the system CAs plus `ca_file` when given."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=str(ca_file))
    return context


def connect(mailbox: MailboxConfig) -> IMAPClient:
    """The one seam to the server: a logged-in client for `mailbox`.

    Errors come back as AuthError (credentials refused: retrying will not help) or
    TransientMailboxError (network, TLS, server trouble).
    """
    ca_file = str(mailbox.ca_file) if mailbox.ca_file else None
    timeout_s = mailbox.timeout.total_seconds()
    try:
        if mailbox.security == "tls":
            client = IMAPClient(
                mailbox.host,
                port=mailbox.port,
                ssl=True,
                ssl_context=tls_context(ca_file),
                timeout=timeout_s,
            )
        else:
            client = IMAPClient(mailbox.host, port=mailbox.port, ssl=False, timeout=timeout_s)
            if mailbox.security == "starttls":
                client.starttls(tls_context(ca_file))
    except ssl.SSLError as exc:
        raise TransientMailboxError(mailbox.name, f"TLS failed: {_reason(exc)}") from exc
    except (OSError, IMAPClientError) as exc:
        raise TransientMailboxError(
            mailbox.name, f"cannot connect to {mailbox.host}:{mailbox.port}: {_reason(exc)}"
        ) from exc
    client.normalise_times = False  # keep INTERNALDATE's zone: we store aware UTC
    if not _TRAFFIC_LOG.isEnabledFor(logging.DEBUG):
        # IMAPClient sets imaplib's debug level to 5 and sends its trace to a logger; imaplib
        # formats every line, and the repr() of every literal and of whole responses, for it
        # whether or not anything listens. Nobody listening: skip the formatting.
        client._imap.debug = 0
    try:
        secret = mailbox.secret()
        if mailbox.auth_method == "xoauth2":
            client.oauth2_login(mailbox.username, secret)
        else:
            client.login(mailbox.username, secret)
    except SecretError as exc:
        _close(client)
        raise AuthError(mailbox.name, str(exc)) from exc
    except LoginError as exc:
        _close(client)
        raise AuthError(mailbox.name, f"login refused for {mailbox.username}") from exc
    except (OSError, IMAPClientError) as exc:
        _close(client)
        raise TransientMailboxError(mailbox.name, f"login failed: {_reason(exc)}") from exc
    return client


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed ({exc.verify_message})"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]


# NO codes that mean "not now" rather than "no" (RFC 5530).
_TRANSIENT_CODES = re.compile(r"\[(UNAVAILABLE|INUSE|SERVERBUG)\b", re.IGNORECASE)
_DOVECOT_TIMING = re.compile(r"\s*\(\d+\.\d+(?: \+ \d+\.\d+)* secs\)\.?$")


def _is_refusal(exc: IMAPClientError) -> bool:
    """Whether the server answered the command NO or BAD, for good: not a dropped
    connection, a client in the wrong state, nor a temporary condition."""
    return (
        type(exc) is IMAPClientError  # imapclient's and imaplib's subclasses are other trouble
        and str(exc).startswith("select failed:")
        and not _TRANSIENT_CODES.search(str(exc))
    )


def _server_said(exc: IMAPClientError) -> str:
    """The server's answer without imapclient's "select failed: " or Dovecot's timings."""
    text = re.sub(r"^\w+ failed: ", "", _reason(exc))
    return "the server says: " + _DOVECOT_TIMING.sub("", text)


def _close(client: IMAPClient) -> None:
    try:
        client.logout()
    except (OSError, IMAPClientError):
        with contextlib.suppress(OSError, IMAPClientError):
            client.shutdown()


class MailboxReader:
    """A read-only view of one logged-in mailbox."""

    def __init__(self, name: str, client: IMAPClient) -> None:
        self.name = name
        self.client = client
        capabilities = {c.upper() for c in client.capabilities()}
        self.condstore = b"CONDSTORE" in capabilities
        self.gmail = b"X-GM-EXT-1" in capabilities
        if self.condstore:
            try:
                client.enable("CONDSTORE")
            except IMAPClientError:
                self.condstore = False
        self.fetch_items = (*FETCH_ITEMS, "X-GM-THRID") if self.gmail else FETCH_ITEMS

    def close(self) -> None:
        _close(self.client)

    def __enter__(self) -> MailboxReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def examine(self, folder: str) -> FolderStatus:
        """Open `folder` read-only (EXAMINE): nothing we do afterwards can change it."""
        try:
            info = self.client.select_folder(folder, readonly=True)
        except (OSError, IMAPClientError) as exc:  # a dropped connection, a timeout: retry
            if isinstance(exc, IMAPClientError) and _is_refusal(exc):
                raise FolderError(self.name, folder, _server_said(exc)) from exc
            raise TransientMailboxError(
                self.name, f"cannot open folder {folder!r}: {_reason(exc)}"
            ) from exc
        return FolderStatus(
            uidvalidity=int(info[b"UIDVALIDITY"]),
            uidnext=_int_or_none(info.get(b"UIDNEXT")),
            exists=int(info.get(b"EXISTS", 0)),
            highestmodseq=_int_or_none(info.get(b"HIGHESTMODSEQ")) if self.condstore else None,
        )

    def uids_since(self, day: date) -> list[int]:
        """UIDs whose INTERNALDATE falls on or after `day` (IMAP SEARCH SINCE)."""
        return sorted(int(u) for u in self._search(["SINCE", day]))

    def uids_after(self, uid: int) -> list[int]:
        # "n:*" always matches the last message, even when its UID is below n: filter.
        return sorted(int(u) for u in self._search(["UID", f"{uid + 1}:*"]) if int(u) > uid)

    def uids_changed_since(self, modseq: int) -> list[int]:
        return sorted(int(u) for u in self._search(["MODSEQ", str(modseq + 1)]))

    def answered_uids(self) -> list[int]:
        return sorted(int(u) for u in self._search(["ANSWERED"]))

    def _search(self, criteria: list[Any]) -> list[int]:
        try:
            return list(self.client.search(criteria))
        except (OSError, IMAPClientError) as exc:
            raise TransientMailboxError(self.name, f"search failed: {_reason(exc)}") from exc

    def fetch(self, uids: Sequence[int]) -> Iterator[RawMessage]:
        """Headers, a bounded snippet, INTERNALDATE, FLAGS and size for `uids` (BODY.PEEK)."""
        try:
            response = self._fetch(uids)
        except (OSError, IMAPClientError) as exc:
            raise TransientMailboxError(self.name, f"fetch failed: {_reason(exc)}") from exc
        for uid in sorted(response):
            data = response[uid]
            when = data.get(b"INTERNALDATE")
            if not isinstance(when, datetime):
                when = datetime.now(UTC)  # a server that omits it: better late than lost
            elif when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            yield RawMessage(
                uid=int(uid),
                flags=tuple(_text(f) for f in data.get(b"FLAGS", ())),
                internal_date=when.astimezone(UTC),
                size=int(data.get(b"RFC822.SIZE", 0) or 0),
                header=bytes(data.get(HEADER_KEY) or b""),
                snippet=bytes(data.get(SNIPPET_KEY) or b""),
                gm_thrid=_int_or_none(data.get(b"X-GM-THRID")),
                modseq=_first_int(data.get(b"MODSEQ")),
            )

    def _fetch(self, uids: Sequence[int]) -> dict[int, dict[bytes, Any]]:
        """IMAPClient.fetch(uids, fetch_items), the same dicts, with a faster parse.

        imapclient's generic response parser costs about as much per message as everything
        else in a backfill. Responses of the usual shape are split here; anything else goes
        to imapclient's parser, so the result is the same either way.
        """
        if not uids:
            return {}
        client = self.client
        items = "(" + " ".join(item.upper() for item in self.fetch_items) + ")"
        message_set = ",".join(str(int(uid)) for uid in uids)
        # The raw imaplib object behind IMAPClient: UID FETCH, untagged FETCH responses back.
        typ, data = client._imap.uid("FETCH", message_set, items)
        if typ != "OK":
            raise IMAPClientError(f"fetch failed: {to_unicode(data[0])}")  # as IMAPClient says
        if data == [None]:
            return {}
        response = _split_fetch(data, client.normalise_times)
        if response is None:
            response = parse_fetch_response(data, client.normalise_times, True)
        # Drop unsolicited responses for other messages, as IMAPClient.fetch does.
        return {uid: response[uid] for uid in map(int, uids) if uid in response}

    def flags(self, uids: Sequence[int]) -> dict[int, tuple[str, ...]]:
        if not uids:
            return {}
        try:
            response = self.client.fetch(list(uids), ["UID", "FLAGS"])
        except (OSError, IMAPClientError) as exc:
            raise TransientMailboxError(self.name, f"fetch failed: {_reason(exc)}") from exc
        return {
            int(uid): tuple(_text(f) for f in data.get(b"FLAGS", ()))
            for uid, data in response.items()
        }


# -- FETCH responses ------------------------------------------------------------------------

_START = re.compile(rb"(\d+) \(")
# One attribute and its value: a number, a quoted string without escapes, a flat list, NIL,
# or a literal (which imaplib has already read: the "{size}" ends its line).
_ATTRIBUTE = re.compile(
    rb" ?([A-Za-z][A-Za-z0-9.\-]*(?:\[[^\]\r\n]*\](?:<\d+>)?)?)"
    rb' (\d+|"[^"\\\r\n]*"|\([^()"{}\r\n]*\)|NIL|\{\d+\}\Z)',
)


def _split_fetch(data: list[Any], normalise_times: bool) -> dict[int, dict[bytes, Any]] | None:
    """imaplib's FETCH responses as imapclient's parse_fetch_response gives them, or None.

    None means a shape this fast path does not handle (nested lists, escaped strings, ...):
    the caller then uses imapclient's parser on the same data.
    """
    parsed: dict[int, dict[bytes, Any]] = {}
    count, at = len(data), 0
    while at < count:
        text, literal = _piece(data[at])
        at += 1
        start = _START.match(text)
        if start is None:
            return None
        msg_id = seq = int(start[1])
        values: dict[bytes, Any] = {b"SEQ": seq}
        pos = start.end()
        while True:
            match = _ATTRIBUTE.match(text, pos)
            if match is None:
                if text[pos:] != b")":
                    return None
                break
            key, raw = match[1].upper(), match[2]
            pos = match.end()
            first = raw[:1]
            value: Any
            if first == b"{":
                if literal is None or len(literal) != int(raw[1:-1]) or at >= count:
                    return None
                value = literal
                text, literal = _piece(data[at])
                at += 1
                pos = 0
            elif first == b'"':
                value = raw[1:-1]
            elif first == b"(":
                value = tuple(int(t) if t.isdigit() else t for t in raw[1:-1].split())
            elif raw == b"NIL":
                value = None
            else:
                value = int(raw)
            if key == b"UID":
                msg_id = value
            elif key == b"INTERNALDATE":
                values[key] = _internal_date(value, normalise_times)
            else:
                values[key] = value
        if not isinstance(msg_id, int):
            return None
        parsed.setdefault(msg_id, {}).update(values)
    return parsed


_INTERNALDATE = re.compile(
    rb" ?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"
)
_MONTHS = {
    name: number
    for number, name in enumerate(b"jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)
}
_ZONES: dict[bytes, timezone] = {}


def _internal_date(value: Any, normalise_times: bool) -> datetime | None:
    """What imapclient makes of an INTERNALDATE (RFC 3501 date-time), the usual form faster."""
    match = _INTERNALDATE.fullmatch(value) if isinstance(value, bytes) else None
    month = _MONTHS.get(match[2].lower()) if match else None
    # "-0000" (zone unknown) comes back naive from imapclient: leave such rare forms to it.
    if (
        match is None
        or month is None
        or normalise_times
        or match[7] + match[8] + match[9] == b"-0000"
    ):
        try:
            parsed: datetime = parse_to_datetime(value, normalise=normalise_times)
        except (TypeError, ValueError):
            return None
        return parsed
    zone_key = match[7] + match[8] + match[9]
    zone = _ZONES.get(zone_key)
    if zone is None:
        minutes = int(match[8]) * 60 + int(match[9])
        zone = _ZONES[zone_key] = timezone(
            timedelta(minutes=-minutes if match[7] == b"-" else minutes)
        )
    try:
        return datetime(
            int(match[3]), month, int(match[1]), int(match[4]), int(match[5]), int(match[6]),
            tzinfo=zone,
        )  # fmt: skip
    except ValueError:
        return None


def _piece(item: Any) -> tuple[bytes, bytes | None]:
    if isinstance(item, tuple) and len(item) == 2:
        return bytes(item[0]), bytes(item[1])
    return bytes(item), None


def _text(value: bytes | str) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else value


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _first_int(value: Any) -> int | None:
    if isinstance(value, tuple | list):
        return _int_or_none(value[0]) if value else None
    return _int_or_none(value)
