"""Realistic shared-inbox traffic: a curated demo week, and bulk mail for benchmarks."""

from __future__ import annotations

import base64
import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

INTERNAL = "example.com"


@dataclass(frozen=True)
class SeedMessage:
    """One message to put on the server: which login, which folder, its bytes and date."""

    user: str
    folder: str
    raw: bytes
    internal_date: datetime
    flags: tuple[str, ...] = ()


def render(
    *,
    frm: str,
    to: str,
    subject: str,
    date: datetime,
    message_id: str,
    body: str,
    cc: str | None = None,
    sender: str | None = None,
    in_reply_to: str | None = None,
    references: str | None = None,
    extra: dict[str, str] | None = None,
    received: int = 2,
) -> bytes:
    """An RFC 5322 message as a mail server would store it (Received lines and all)."""
    lines = []
    recipient = to.split("<")[-1].strip(">")
    for hop in range(received):
        relay_id = zlib.crc32(f"{message_id}{hop}".encode())
        lines.append(
            f"Received: from mx{hop}.relay.example.net (mx{hop}.relay.example.net "
            f"[192.0.2.{10 + hop}])\r\n\tby mail.{INTERNAL} (Postfix) with ESMTPS id "
            f"{relay_id:010d}\r\n\tfor <{recipient}>; "
            f"{format_datetime(date)}"
        )
    lines += [
        f"From: {frm}",
        f"To: {to}",
    ]
    if cc:
        lines.append(f"Cc: {cc}")
    if sender:
        lines.append(f"Sender: {sender}")
    lines += [
        f"Subject: {subject}",
        f"Date: {format_datetime(date)}",
        f"Message-ID: {message_id}",
    ]
    if in_reply_to:
        lines.append(f"In-Reply-To: {in_reply_to}")
    if references:
        lines.append(f"References: {references}")
    for key, value in (extra or {}).items():
        lines.append(f"{key}: {value}")
    lines += [
        "MIME-Version: 1.0",
        'Content-Type: text/plain; charset="utf-8"',
        "Content-Transfer-Encoding: 8bit",
    ]
    text = "\r\n".join(lines) + "\r\n\r\n" + body.replace("\n", "\r\n") + "\r\n"
    return text.encode("utf-8")


def _at(base: datetime, days: int, hour: int, minute: int = 0) -> datetime:
    return (base + timedelta(days=days)).replace(hour=hour, minute=minute, second=0, microsecond=0)


def demo_week(now: datetime) -> list[SeedMessage]:
    """A week of traffic for the shared inboxes support@ and sales@ ending just before `now`.

    Several accounts (Acme, Globex, Initech), agents replying from the shared address and from
    their own, a customer auto-reply, an owner out of office, a conflict, a late reply, a
    chaser, an Outlook reply without references, an internal forward, a bounce, a newsletter,
    and a customer who matches no account.
    """
    monday = (now - timedelta(days=7)).astimezone(UTC)
    monday = monday - timedelta(days=monday.weekday())
    out: list[SeedMessage] = []

    def put(
        user: str, folder: str, raw: bytes, when: datetime, flags: tuple[str, ...] = ("\\Seen",)
    ) -> None:
        if when < now:
            out.append(SeedMessage(user, folder, raw, when, flags))

    sup, sales = f"support@{INTERNAL}", f"sales@{INTERNAL}"
    priya, sam, lee, ana = (f"{n}@{INTERNAL}" for n in ("priya", "sam", "lee", "ana"))

    # 1. Acme: answered in time from the shared address, "sent as" support@ by Priya.
    t = _at(monday, 0, 10, 4)
    m1 = "<acme-export-1@mail.acme.com>"
    put(
        sup,
        "INBOX",
        render(
            frm="Bob Stone <bob@acme.com>",
            to=sup,
            subject="Cannot export invoices",
            date=t,
            message_id=m1,
            body="Hi,\nthe CSV export of invoices fails with error 500 since this morning.\nBob",
        ),
        t,
    )
    r1 = f"<r1.{t:%Y%m%d}@mail.{INTERNAL}>"
    put(
        sup,
        "Sent",
        render(
            frm=f"Support <{sup}>",
            sender=f"Priya Shah <{priya}>",
            to="bob@acme.com",
            subject="Re: Cannot export invoices",
            date=t + timedelta(minutes=66),
            message_id=r1,
            in_reply_to=m1,
            references=m1,
            body="Hi Bob,\nfixed: the export works again.\nPriya",
        ),
        t + timedelta(minutes=66),
    )

    # 2. Acme: two agents answer the same customer within minutes (a conflict).
    t = _at(monday, 1, 9, 20)
    m2 = "<login-reset@mail.acme.com>"
    put(
        sup,
        "INBOX",
        render(
            frm="Carol Diaz <carol@acme.com>",
            to=sup,
            subject="Login fails after password reset",
            date=t,
            message_id=m2,
            body="I reset my password and now cannot log in at all.",
        ),
        t,
        ("\\Seen", "\\Answered"),
    )
    put(
        sup,
        "Sent",
        render(
            frm=f"Priya Shah <{priya}>",
            to="carol@acme.com",
            cc=sup,
            subject="Re: Login fails after password reset",
            date=t + timedelta(minutes=25),
            message_id=f"<c1.{t:%Y%m%d}@{INTERNAL}>",
            in_reply_to=m2,
            references=m2,
            body="Hi Carol, please clear your browser cache and retry.",
        ),
        t + timedelta(minutes=25),
    )
    put(
        sup,
        "Sent",
        render(
            frm=f"Sam Okafor <{sam}>",
            to="carol@acme.com",
            cc=sup,
            subject="RE: Login fails after password reset",
            date=t + timedelta(minutes=32),
            message_id=f"<c2.{t:%Y%m%d}@{INTERNAL}>",
            in_reply_to=m2,
            references=m2,
            body="Hi Carol, I have unlocked your account, try again now.",
        ),
        t + timedelta(minutes=32),
    )
    # ... and Priya forwards it to Sam internally (internal-only: neither in nor out).
    put(
        sup,
        "Sent",
        render(
            frm=f"Priya Shah <{priya}>",
            to=sam,
            subject="FW: Login fails after password reset",
            date=t + timedelta(minutes=40),
            message_id=f"<fw.{t:%Y%m%d}@{INTERNAL}>",
            in_reply_to=m2,
            references=m2,
            body="Sam, did you answer her as well?",
        ),
        t + timedelta(minutes=40),
    )

    # 3. Globex: a quote request answered late, after a chaser; the reply comes from Outlook
    #    with no References, only a Thread-Index and an "RE:" subject.
    t = _at(monday, 2, 16, 0)
    m3 = "<quote-50@globex.example.org>"
    index = base64.b64encode(bytes(range(22))).decode()
    put(
        sales,
        "INBOX",
        render(
            frm="Dan Wu <dan@globex.example.org>",
            to=sales,
            subject="Quote for 50 seats",
            date=t,
            message_id=m3,
            extra={"Thread-Index": index},
            body="Could you send a quote for 50 seats, annual billing?",
        ),
        t,
    )
    put(
        sales,
        "INBOX",
        render(
            frm="Dan Wu <dan@globex.example.org>",
            to=sales,
            subject="Re: Quote for 50 seats",
            date=_at(monday, 3, 12, 0),
            message_id="<quote-50-chase@globex.example.org>",
            in_reply_to=m3,
            references=m3,
            body="Any news on this? We need it for Friday.",
        ),
        _at(monday, 3, 12, 0),
    )
    late = _at(monday, 4, 10, 15)
    put(
        sales,
        "Sent",
        render(
            frm=f"Lee Park <{lee}>",
            to="dan@globex.example.org",
            subject="RE: Quote for 50 seats",
            date=late,
            message_id=f"<q1.{late:%Y%m%d}@{INTERNAL}>",
            extra={
                "Thread-Index": base64.b64encode(
                    bytes(range(22)) + b"\x01\x02\x03\x04\x05"
                ).decode()
            },
            body="Dan, please find the quote attached. Sorry for the delay.",
        ),
        late,
    )

    # 4. Globex: the customer's out-of-office answers our follow-up (automatic: ignored).
    t = _at(monday, 1, 14, 0)
    m4 = f"<renewal.{t:%Y%m%d}@{INTERNAL}>"
    put(
        sales,
        "Sent",
        render(
            frm=f"Lee Park <{lee}>",
            to="erin@globex.example.org",
            subject="Your renewal",
            date=t,
            message_id=m4,
            body="Erin, your renewal is due next month.",
        ),
        t,
    )
    put(
        sales,
        "INBOX",
        render(
            frm="Erin Cole <erin@globex.example.org>",
            to=lee,
            subject="Automatic reply: Your renewal",
            date=t + timedelta(minutes=1),
            message_id="<ooo-erin@globex.example.org>",
            in_reply_to=m4,
            references=m4,
            extra={"Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All"},
            body="I am out of the office until Monday.",
        ),
        t + timedelta(minutes=1),
    )

    # 5. Initech: our owner Ana is away; her out-of-office answers the customer.
    t = _at(monday, 3, 9, 30)
    m5 = "<vpn-down@initech.example>"
    put(
        sup,
        "INBOX",
        render(
            frm="Frank Moss <frank@initech.example>",
            to=sup,
            cc=ana,
            subject="VPN down for the whole office",
            date=t,
            message_id=m5,
            body="Nobody here can connect to the VPN since 9:00.",
        ),
        t,
    )
    put(
        sup,
        "INBOX",
        render(
            frm=f"Ana Lima <{ana}>",
            to="frank@initech.example",
            subject="Out of office: VPN down for the whole office",
            date=t + timedelta(minutes=1),
            message_id=f"<ooo-ana.{t:%Y%m%d}@{INTERNAL}>",
            in_reply_to=m5,
            references=m5,
            extra={"Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All"},
            body="I am on leave until next week. For urgent matters write to support@.",
        ),
        t + timedelta(minutes=1),
    )

    # 6. Initech: a question from Friday lunchtime still waiting for an answer. Friday of the
    #    demo week is always past, and the 3h warning threshold of a 4h SLA (09:00-17:30
    #    London) falls that same afternoon, in summer time too: whenever the demo runs, it waits.
    t = _at(monday, 4, 13, 5)
    put(
        sup,
        "INBOX",
        render(
            frm="Grace Hall <grace@initech.example>",
            to=sup,
            subject="Invoice 2026-118 has the wrong VAT number",
            date=t,
            message_id="<vat-118@initech.example>",
            body="Please reissue the invoice with our new VAT number.",
        ),
        t,
        (),
    )

    # 7. Nobody's account: a prospect writing from a free-mail address.
    t = _at(monday, 2, 11, 5)
    put(
        sales,
        "INBOX",
        render(
            frm="Hugo Brandt <hugo.brandt@gmail.example>",
            to=sales,
            subject="Partnership question",
            date=t,
            message_id="<partner-1@gmail.example>",
            body="Do you run a reseller programme?",
        ),
        t,
    )

    # 8. A bounce and a newsletter: automatic mail, never customer conversations.
    t = _at(monday, 1, 14, 2)
    put(
        sales,
        "INBOX",
        render(
            frm="MAILER-DAEMON@mail.example.com (Mail Delivery System)",
            to=sales,
            subject="Undelivered Mail Returned to Sender",
            date=t,
            message_id=f"<bounce.{t:%Y%m%d}@mail.{INTERNAL}>",
            extra={"Auto-Submitted": "auto-replied"},
            body="This is the mail system at host mail.example.com.\n"
            "I'm sorry to have to inform you that your message could "
            "not be delivered.",
        ),
        t,
    )
    t = _at(monday, 0, 7, 0)
    put(
        sup,
        "INBOX",
        render(
            frm="SaaS Weekly <news@saasweekly.example>",
            to=sup,
            subject="This week in SaaS",
            date=t,
            message_id=f"<news.{t:%Y%m%d}@saasweekly.example>",
            extra={"List-Id": "<weekly.saasweekly.example>", "Precedence": "bulk"},
            body="Top stories of the week...",
        ),
        t,
    )
    out.sort(key=lambda m: m.internal_date)
    return out


CUSTOMER_DOMAINS = tuple(f"customer{i}.example" for i in range(400))
AGENTS = tuple(f"agent{i}@{INTERNAL}" for i in range(12))
TOPICS = (
    "Cannot log in",
    "Invoice question",
    "Export fails",
    "Feature request: dark mode",
    "Billing address change",
    "API rate limits",
    "Renewal quote",
    "Data deletion request",
    "SSO configuration",
    "Password reset link expired",
)
FILLER = (
    "Thanks for getting back to us so quickly. We looked into the issue on our side and "
    "can confirm it happens for every user in the finance team, on Chrome and on Firefox. "
)


def bulk_messages(
    count: int, *, end: datetime, seed: int = 7, span: timedelta = timedelta(days=13)
) -> Iterator[tuple[bytes, datetime]]:
    """`count` realistic messages (about 4 KB, 1.7 KB of headers) in threads of 1 to 6.

    Dates spread over `span` before `end`, in ascending order, so a first sync with a 14-day
    backfill reads them all. Deterministic for a given seed.
    """
    rng = random.Random(seed)
    start = end - span
    step = span / max(count, 1)
    produced = 0
    thread_no = 0
    while produced < count:
        thread_no += 1
        domain = rng.choice(CUSTOMER_DOMAINS)
        customer = f"user{rng.randrange(50)}@{domain}"
        agent = rng.choice(AGENTS)
        topic = rng.choice(TOPICS)
        root = f"<t{thread_no}.{seed}@{domain}>"
        refs: list[str] = []
        for turn in range(min(rng.randint(1, 6), count - produced)):
            when = start + step * produced
            inbound = turn % 2 == 0
            mid = (
                root
                if turn == 0
                else f"<t{thread_no}.{turn}.{seed}@{domain if inbound else INTERNAL}>"
            )
            raw = render(
                frm=f"Customer {thread_no} <{customer}>" if inbound else f"Agent <{agent}>",
                to=f"support@{INTERNAL}" if inbound else customer,
                subject=topic if turn == 0 else f"Re: {topic}",
                date=when,
                message_id=mid,
                in_reply_to=refs[-1] if refs else None,
                references=" ".join(refs[-8:]) if refs else None,
                extra={
                    "X-Mailer": "Example Mail 4.2",
                    "DKIM-Signature": "v=1; a=rsa-sha256; c=relaxed/relaxed; d="
                    + domain
                    + "; s=sel1; h=from:to:subject:date:message-id; bh="
                    + base64.b64encode(rng.randbytes(32)).decode()
                    + "; b="
                    + base64.b64encode(rng.randbytes(128)).decode(),
                    "X-Spam-Status": "No, score=-0.1 required=5.0 tests=DKIM_SIGNED,DKIM_VALID",
                },
                body=(FILLER * 8)[: 2200 + rng.randrange(400)],
                received=3,
            )
            refs.append(mid)
            produced += 1
            yield raw, when
