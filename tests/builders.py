"""Small builders for domain records, with defaults that read like a support inbox."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from monitor.records import Automatic, MessageRecord, Thread

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday, 09:00 UTC
INTERNAL_DOMAIN = "example.com"
SUPPORT = "support@example.com"
CUSTOMER = "alice@client.example"

TimeLike = datetime | timedelta | str


def at(when: TimeLike) -> datetime:
    """An aware UTC datetime: as given, T0 + an offset, or ISO 8601 ("Z" or offset; naive = UTC)."""
    if isinstance(when, timedelta):
        return T0 + when
    if isinstance(when, str):
        when = datetime.fromisoformat(when.replace("Z", "+00:00"))
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def msgid(value: str) -> str:
    """Wrap a bare id in angle brackets ("a" -> "<a>"); a bracketed id is kept."""
    return value if value.startswith("<") else f"<{value}>"


def _ids(values: str | Iterable[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        values = values.split()
    return tuple(msgid(v) for v in values)


def _addrs(values: str | Iterable[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        values = [values]
    return tuple(v.lower() for v in values)


def is_external(addr: str) -> bool:
    """Internal means @example.com or a subdomain of it, as in config.example.toml."""
    domain = addr.rpartition("@")[2].lower()
    return not (domain == INTERNAL_DOMAIN or domain.endswith("." + INTERNAL_DOMAIN))


def make_message(
    message_id: str,
    time: TimeLike = timedelta(0),
    *,
    subject: str = "Cannot log in",
    frm: str | None = CUSTOMER,
    to: str | Iterable[str] = (SUPPORT,),
    cc: str | Iterable[str] = (),
    sender: str | None = None,
    refs: str | Iterable[str] = (),
    in_reply_to: str | Iterable[str] = (),
    thread_index: str | None = None,
    gm_thrid: int | None = None,
    automatic: Automatic | None = None,
    internal_date: TimeLike | None = None,
    from_name: str = "",
    snippet: str = "",
    defects: Iterable[str] = (),
) -> MessageRecord:
    """A MessageRecord: ids gain <> when missing, refs may be one space-separated string.

    `time` is the message time (a datetime, an offset from T0, or ISO text); the Date header
    and INTERNALDATE default to it.
    """
    moment = at(time)
    return MessageRecord(
        message_id=msgid(message_id),
        subject=subject,
        from_addr=frm.lower() if frm else None,
        internal_date=at(internal_date) if internal_date is not None else moment,
        time=moment,
        date_header=moment,
        from_name=from_name,
        sender_addr=sender.lower() if sender else None,
        to_addrs=_addrs(to),
        cc_addrs=_addrs(cc),
        in_reply_to=_ids(in_reply_to),
        references=_ids(refs),
        thread_index_root=thread_index,
        gm_thrid=gm_thrid,
        automatic=automatic,
        snippet=snippet,
        defects=tuple(defects),
    )


def make_reply(
    parent: MessageRecord,
    message_id: str,
    time: TimeLike,
    *,
    frm: str | None = SUPPORT,
    to: str | Iterable[str] | None = None,
    cc: str | Iterable[str] = (),
    sender: str | None = None,
    subject: str | None = None,
    automatic: Automatic | None = None,
    thread_index: str | None = None,
) -> MessageRecord:
    """A reply as a well-behaved client writes it: References = parent's + parent, "Re:".

    By default our support address answers whoever wrote the parent.
    """
    if subject is None:
        replied = parent.subject.lower().startswith("re:")
        subject = parent.subject if replied else f"Re: {parent.subject}"
    if to is None:
        to = (parent.from_addr,) if parent.from_addr else ()
    return make_message(
        message_id,
        time,
        subject=subject,
        frm=frm,
        to=to,
        cc=cc,
        sender=sender,
        refs=(*parent.references, parent.message_id),
        in_reply_to=(parent.message_id,),
        automatic=automatic,
        thread_index=thread_index,
    )


def make_thread(messages: Iterable[MessageRecord], thread_id: str | None = None) -> Thread:
    """A Thread of these messages in message-time order; its id defaults to the earliest's."""
    ordered = sorted(messages, key=lambda m: (m.time, m.message_id))
    return Thread(
        thread_id=msgid(thread_id) if thread_id else ordered[0].message_id,
        message_ids=tuple(m.message_id for m in ordered),
    )
