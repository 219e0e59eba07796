"""Automatic-mail detection (product.md "Automatic mail"): each signal, its kind, and negatives."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.parsing import detect_automatic, is_out_of_office_subject, parse_headers
from monitor.records import Automatic

INTERNAL = datetime(2026, 11, 20, 14, 5, tzinfo=UTC)


def kind(*lines: str, subject: str = "Question about my invoice") -> Automatic | None:
    fields = [
        "From: Customer <customer@acme.com>",
        "To: support@example.com",
        f"Subject: {subject}",
        "Date: Fri, 20 Nov 2026 13:00:00 +0000",
        "Message-ID: <q1@acme.com>",
        *lines,
    ]
    header = ("\r\n".join(fields) + "\r\n\r\n").encode()
    return parse_headers(header, internal_date=INTERNAL).automatic


def test_plain_customer_mail_is_not_automatic() -> None:
    assert kind() is None
    assert kind(subject="Re: invoice") is None


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Auto-Submitted: auto-replied", Automatic.AUTO_REPLY),
        ("Auto-Submitted: auto-generated", Automatic.AUTO_REPLY),
        ("Auto-Submitted: auto-notified", Automatic.AUTO_REPLY),
        ("Auto-Submitted: Auto-Replied; owner-email=x@y", Automatic.AUTO_REPLY),
        ("Auto-Submitted: auto-generated (failure)", Automatic.BOUNCE),
        ("Auto-Submitted: auto-generated (warning-timeout)", Automatic.BOUNCE),
        ("X-Autoreply: yes", Automatic.AUTO_REPLY),
        ("X-Autorespond: Thank you for your mail", Automatic.AUTO_REPLY),
        ("Precedence: auto_reply", Automatic.AUTO_REPLY),
        ("Precedence: bulk", Automatic.BULK),
        ("Precedence: junk", Automatic.BULK),
        ("Precedence: list", Automatic.LIST),
        ("Precedence: LIST", Automatic.LIST),
        ("X-Auto-Response-Suppress: All", Automatic.AUTO_REPLY),
        ("X-Auto-Response-Suppress: OOF", Automatic.AUTO_REPLY),
        ("X-Auto-Response-Suppress: DR, NDR, RN, NRN, OOF, AutoReply", Automatic.AUTO_REPLY),
        ("X-Auto-Response-Suppress: autoreply", Automatic.AUTO_REPLY),
        ("List-Id: Fedora developers <devel.lists.fedoraproject.org>", Automatic.LIST),
        ("X-Apple-Action: VACATION", Automatic.OUT_OF_OFFICE),
        (
            "Content-Type: multipart/report; report-type=delivery-status; boundary=x",
            Automatic.BOUNCE,
        ),
        ("Content-Type: multipart/report; report-type=feedback-report", Automatic.BOUNCE),
        ("Content-Type: multipart/report; report-type=disposition-notification", Automatic.BOUNCE),
        ("Content-Type: message/delivery-status", Automatic.BOUNCE),
        ("X-Failed-Recipients: gone@acme.com", Automatic.BOUNCE),
    ],
)
def test_header_signals(line: str, expected: Automatic) -> None:
    assert kind(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "Auto-Submitted: no",
        "Auto-Submitted: No (a human)",
        "Auto-Submitted:",
        "X-Autoreply: no",
        "Precedence: first-class",
        "Precedence: normal",
        "X-Auto-Response-Suppress: DR, NDR, RN, NRN",
        "List-Id:",
        "X-Apple-Action: something-else",
        "Content-Type: multipart/mixed; boundary=x",
        "List-Unsubscribe: <mailto:x@y>",
    ],
)
def test_header_non_signals(line: str) -> None:
    assert kind(line) is None


@pytest.mark.parametrize(
    "sender",
    [
        "MAILER-DAEMON@mx.acme.com",
        "Mail Delivery System <mailer-daemon@mx.acme.com>",
        "postmaster@acme.com",
        "PostMaster@acme.com",
        "MAILER-DAEMON",
        "MAILER-DAEMON <>",
        '"Mail Delivery Subsystem" <MAILER-DAEMON>',
        "post_master@vtext.example.com",
    ],
)
def test_mailer_daemon_and_postmaster_are_bounces(sender: str) -> None:
    header = f"From: {sender}\r\nSubject: whatever\r\n\r\n".encode()
    assert parse_headers(header, internal_date=INTERNAL).automatic == Automatic.BOUNCE


def test_postmaster_only_as_local_part() -> None:
    header = b"From: postmaster-fan@acme.com\r\nSubject: hi\r\n\r\n"
    assert parse_headers(header, internal_date=INTERNAL).automatic is None
    header = b"From: jane@postmaster.acme.com\r\nSubject: hi\r\n\r\n"
    assert parse_headers(header, internal_date=INTERNAL).automatic is None


def test_dsn_with_auto_replied_is_a_bounce() -> None:
    header = (
        b"From: postmaster@yyyyyy.de\r\nAuto-Submitted: auto-replied\r\n"
        b"Subject: email bounce notification\r\n\r\n"
    )
    assert parse_headers(header, internal_date=INTERNAL).automatic == Automatic.BOUNCE


@pytest.mark.parametrize(
    "subject",
    [
        "Out of office",
        "Out of Office: Re: your invoice",
        "Out of the office until Monday",
        "Out of Office AutoReply: test",
        "Automatic reply: Question about my invoice",
        "Auto reply: Nyaan",
        "Autoreply: hello",
        "Auto-Reply: hello",
        "[EXTERNAL] Automatic reply: hello",
        "I am out of the office",
        "Currently out of office",
        "On vacation",
        "On vacation until 5 January",
        "On holiday",
        "Away until May 5",
        "Away from the office",
        "Absence until Monday 3rd",
        "OOO until Jan 5",
        "Abwesenheitsnotiz: Rechnung",
        "Automatische Antwort: Rechnung",
        "Réponse automatique : facture",
        "Reponse automatique: facture",
        "Absent du bureau",
        "Risposta automatica: fattura",
        "Fuori ufficio",
        "Respuesta automática: factura",
        "Fuera de la oficina",
        "Resposta automática: fatura",
        "Automatisch antwoord: factuur",
        "Afwezig tot 5 januari",
        "Frånvaro",
        "Autosvar: faktura",
        "Automatiskt svar: faktura",
        "Automaattinen vastaus: lasku",
        "Automatyczna odpowiedź: faktura",
        "Automatická odpověď: faktura",
        "Automatikus válasz: számla",
        "Otomatik yanıt: fatura",
        "Автоматический ответ: счёт",
        "Αυτόματη απάντηση: τιμολόγιο",
        "自動返信: 請求書",
        "自动回复: 发票",
    ],
)
def test_out_of_office_subjects(subject: str) -> None:
    assert kind(subject=subject) == Automatic.OUT_OF_OFFICE
    assert is_out_of_office_subject(subject)


@pytest.mark.parametrize(
    "subject",
    [
        "Re: Away match tickets",
        "Away match tickets",
        "Re: Automatic reply: Question about my invoice",  # a human answering an OOO
        "RE: Out of office",
        "Fwd: Undelivered Mail Returned to Sender",
        "Out of office hours support request",
        "Automatic reply not working in our account",
        "Auto reply settings",
        "Absence",
        "Absence request for March",
        "Vacation - booking question",
        "Vacation",
        "Holiday opening hours",
        "Oooh, nice dashboard",
        "Awaydays planning",
        "Delivery date for order 1234",
        "Message not delivered?",
        "Undeliverable emails from your system",
        "Cannot log in",
        "",
    ],
)
def test_ordinary_subjects_are_not_automatic(subject: str) -> None:
    assert kind(subject=subject) is None


def test_absence_word_from_a_robot_is_out_of_office() -> None:
    assert kind("Auto-Submitted: auto-replied", subject="Away") == Automatic.OUT_OF_OFFICE
    assert kind("X-Autoreply: yes", subject="Absence") == Automatic.OUT_OF_OFFICE
    assert kind("Precedence: bulk", subject="Away match tickets") == Automatic.BULK


def test_sieve_vacation_replies_are_out_of_office() -> None:
    # Dovecot's Pigeonhole vacation: the comment, or RFC 5230's default "Auto:" subject.
    dovecot = ("Auto-Submitted: auto-replied (vacation)", "Precedence: bulk")
    assert kind(*dovecot, subject="Auto: Question") == Automatic.OUT_OF_OFFICE
    assert kind(*dovecot, subject="Back soon") == Automatic.OUT_OF_OFFICE
    assert kind("Auto-Submitted: auto-replied", subject="Auto: Question") == (
        Automatic.OUT_OF_OFFICE
    )
    assert kind("Auto-Submitted: auto-replied", subject="Ticket received") == (Automatic.AUTO_REPLY)
    assert kind(subject="Auto: Question") is None  # a human may write that
    tagged = kind("Auto-Submitted: auto-replied", subject="[Support] Auto: Question")
    assert tagged == Automatic.OUT_OF_OFFICE  # [tags] skipped, as for every subject signal
    assert kind(subject="Automobile insurance") is None


@pytest.mark.parametrize(
    "subject",
    [
        "Undelivered Mail Returned to Sender",
        "Delivery Status Notification (Failure)",
        "Mail delivery failed: returning message to sender",
        "Undeliverable: Question about my invoice",
        "failure notice",
        "Returned mail: see transcript for details",
        "Delivery Notification: Delivery has failed",
        "Unzustellbar: Rechnung",
        "Non remis : facture",
    ],
)
def test_bounce_subjects(subject: str) -> None:
    assert kind(subject=subject) == Automatic.BOUNCE


def test_auto_response_subject() -> None:
    assert kind(subject="=?UTF-8?Q?AutoRespons?= :Nyaan?") == Automatic.AUTO_REPLY
    assert kind(subject="Automated response: ticket #123 received") == Automatic.AUTO_REPLY


def test_kind_ranking() -> None:
    # An out-of-office notice sent to a list is still an out-of-office notice.
    assert kind("List-Id: <x.y>", subject="Out of office") == Automatic.OUT_OF_OFFICE
    # A bounce beats everything.
    assert (
        kind("Content-Type: multipart/report; report-type=delivery-status", subject="Out of office")
        == Automatic.BOUNCE
    )
    # An auto-reply flagged bulk (Mimecast) is an auto-reply.
    assert kind("Auto-Submitted: auto-replied", "Precedence: bulk") == Automatic.AUTO_REPLY
    # Robots' weak markers yield to list and bulk.
    assert kind("Auto-Submitted: auto-generated", "Precedence: bulk") == Automatic.BULK
    assert kind("X-Auto-Response-Suppress: All", "List-Id: <a.b>") == Automatic.LIST
    assert kind("List-Id: <a.b>", "Precedence: junk") == Automatic.LIST
    # Exchange's out-of-office: the subject decides the kind.
    assert (
        kind("X-Auto-Response-Suppress: All", subject="Automatic reply: x")
        == Automatic.OUT_OF_OFFICE
    )


def test_our_own_digests_are_automatic() -> None:
    assert kind("Auto-Submitted: auto-generated", "X-Auto-Response-Suppress: All") is not None


def test_detect_automatic_direct() -> None:
    assert (
        detect_automatic({}, subject="hello", from_addr="a@x.com", content_type="text/plain")
        is None
    )
    assert (
        detect_automatic(
            {"precedence": ["list"]}, subject="", from_addr=None, content_type="text/plain"
        )
        == Automatic.LIST
    )
    assert (
        detect_automatic({}, subject="", from_addr="mailer-daemon", content_type="text/plain")
        == Automatic.BOUNCE
    )
