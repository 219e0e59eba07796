"""The real-server fixtures themselves: Dovecot, PostgreSQL, the SMTP sink."""

from __future__ import annotations

import os
import smtplib
import socket
import ssl
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.message import EmailMessage
from typing import Literal

import psycopg
import pytest
import sqlalchemy
from imapclient import IMAPClient

from tests.servers import (
    DovecotServer,
    MailUser,
    PostgresServer,
    SmtpSink,
    TlsFiles,
    session_pids,
)

CEST = timezone(timedelta(hours=2))


def _message(subject: str, message_id: str | None = None) -> bytes:
    message = EmailMessage()
    message["From"] = "Customer <customer@example.org>"
    message["To"] = "support@example.com"
    message["Subject"] = subject
    message["Date"] = "Mon, 06 May 2024 09:00:00 +0200"
    if message_id:
        message["Message-ID"] = message_id
    message.set_content(f"Body of {subject}\n")
    return message.as_bytes(policy=policy.SMTP)


# -- Dovecot: connections and TLS -----------------------------------------------------------


def test_plain_greeting_and_starttls_offered(dovecot: DovecotServer) -> None:
    with (
        socket.create_connection((dovecot.host, dovecot.imap_port), timeout=5) as sock,
        sock.makefile("rb") as reader,
    ):
        greeting = reader.readline()
    assert greeting.startswith(b"* OK")
    with dovecot.connect() as client:
        assert b"STARTTLS" in client.capabilities()


def test_starttls_verified_against_private_ca(imap_user: MailUser) -> None:
    with imap_user.connect(tls="starttls") as client:
        sock = client.socket()
        assert isinstance(sock, ssl.SSLSocket)
        assert sock.getpeercert() is not None
        assert client.folder_exists("INBOX")


def test_implicit_tls_verified_against_private_ca(imap_user: MailUser) -> None:
    with imap_user.connect(tls="implicit") as client:
        assert isinstance(client.socket(), ssl.SSLSocket)
        assert client.welcome.startswith(b"* OK")


@pytest.mark.parametrize("port_name", ["imaps_port", "imap_port"])
def test_unknown_ca_is_refused(dovecot: DovecotServer, tls_files: TlsFiles, port_name: str) -> None:
    context = ssl.create_default_context(cafile=str(tls_files.other_ca_file))
    with socket.create_connection((dovecot.host, getattr(dovecot, port_name)), timeout=5) as sock:
        if port_name == "imap_port":
            reader = sock.makefile("rb")
            assert reader.readline().startswith(b"* OK")
            sock.sendall(b"a1 STARTTLS\r\n")
            assert reader.readline().startswith(b"a1 OK")
            reader.close()
        with pytest.raises(ssl.SSLCertVerificationError):
            context.wrap_socket(sock, server_hostname=dovecot.host)


def test_unknown_ca_is_refused_through_imapclient(imap_user: MailUser, tls_files: TlsFiles) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        imap_user.connect(tls="implicit", ca_file=tls_files.other_ca_file)


def test_certificate_names_localhost_too(dovecot: DovecotServer) -> None:
    context = dovecot.ssl_context()
    with (
        socket.create_connection((dovecot.host, dovecot.imaps_port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as sock,
    ):
        certificate = sock.getpeercert()
    assert certificate is not None
    assert set(certificate["subjectAltName"]) == {("DNS", "localhost"), ("IP Address", "127.0.0.1")}


# -- Dovecot: users, folders, messages ------------------------------------------------------


def test_users_added_at_runtime_log_in_without_restart(dovecot: DovecotServer) -> None:
    master = dovecot.pid
    first = dovecot.add_user(f"runtime-a-{os.getpid()}")
    with first.connect() as client:
        assert client.capabilities()
    # added right after a lookup, within the same second: passwd-file must still be re-read
    second = dovecot.add_user(f"runtime-b-{os.getpid()}", "pass-b")
    with second.connect() as client:
        assert b"CONDSTORE" in client.capabilities()
    assert dovecot.pid == master


def test_wrong_password_is_refused(imap_user: MailUser) -> None:
    client = IMAPClient(imap_user.host, imap_user.imap_port, ssl=False, timeout=5)
    with client, pytest.raises(IMAPClient.Error):
        client.login(imap_user.name, imap_user.password + "x")


def test_special_use_folders_subscribed(imap_user: MailUser) -> None:
    with imap_user.connect() as client:
        listed = {name: flags for flags, delimiter, name in client.list_sub_folders()}
        assert client.namespace().personal[0][1] == "/"
    for name in ("Sent", "Drafts", "Trash", "Junk", "Archive"):
        assert f"\\{name}".encode() in listed[name]
    assert "INBOX" in listed


def test_append_then_fetch(imap_user: MailUser) -> None:
    raw = _message("Hello", "<append-1@example.org>")
    when = datetime(2024, 5, 6, 9, 30, tzinfo=CEST)
    uid = imap_user.append("INBOX", raw, flags=[r"\Seen", "$Important"], internal_date=when)
    (stored,) = imap_user.messages("INBOX")
    assert stored.uid == uid
    assert stored.internal_date == when
    assert stored.flags == {r"\Seen", "$Important"}
    assert stored.raw == raw
    assert imap_user.flags("INBOX") == {uid: frozenset({r"\Seen", "$Important"})}


def test_non_ascii_folders(imap_user: MailUser) -> None:
    folder = "Clients/Société Générale/Ärger"
    imap_user.create_folder(folder)
    uid = imap_user.append(folder, _message("Bonjour"))
    assert folder in imap_user.list_folders()
    assert imap_user.flags(folder) == {uid: frozenset()}
    seeded = imap_user.write_maildir(
        "Clients/Übersicht", [(_message("Grüße"), datetime(2024, 1, 1, tzinfo=UTC), ())]
    )
    assert seeded == [1]
    assert [m.uid for m in imap_user.messages("Clients/Übersicht")] == [1]
    assert "Clients/Übersicht" in imap_user.list_folders()


def test_delete_and_recreate_changes_uidvalidity(imap_user: MailUser) -> None:
    imap_user.create_folder("Cases")
    imap_user.append("Cases", _message("one"))
    before = imap_user.folder_status("Cases")
    imap_user.delete_folder("Cases")
    imap_user.create_folder("Cases")
    imap_user.append("Cases", _message("two"))
    after = imap_user.folder_status("Cases")
    assert after["UIDVALIDITY"] != before["UIDVALIDITY"]
    assert after["MESSAGES"] == 1


def test_write_maildir_seeds_messages_with_internal_dates(imap_user: MailUser) -> None:
    start = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
    seeds = [
        (
            _message(f"seed {i}", f"<seed-{i}@example.org>"),
            start + timedelta(hours=i * 7, seconds=i),
            [r"\Seen", r"\Answered"] if i % 3 == 0 else [r"\Flagged"] if i % 3 == 1 else [],
        )
        for i in range(60)
    ]
    imap_user.append("Sent", _message("appended first"))
    uids = imap_user.write_maildir("Sent", seeds)
    assert uids == list(range(2, 62))

    with imap_user.connect() as client:
        client.select_folder("Sent", readonly=True)
        fetched = client.fetch(
            uids, ["INTERNALDATE", "FLAGS", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"]
        )
    for uid, (raw, when, flags) in zip(uids, seeds, strict=True):
        data = fetched[uid]
        assert data[b"INTERNALDATE"] == when
        assert {f.decode() for f in data[b"FLAGS"]} - {r"\Recent"} == set(flags)
        subject = data[b"BODY[HEADER.FIELDS (SUBJECT)]"].strip()
        assert subject == raw.split(b"\n")[2].strip()

    expected = {uid: frozenset(flags) for uid, (_, _, flags) in zip(uids, seeds, strict=True)}
    assert imap_user.flags("Sent") == {1: frozenset()} | expected
    assert imap_user.folder_status("Sent")["MESSAGES"] == 61


def test_write_maildir_seen_by_a_selected_session(imap_user: MailUser) -> None:
    with imap_user.connect() as client:
        client.select_folder("INBOX", readonly=True)
        imap_user.write_maildir("INBOX", [(_message("late"), datetime(2024, 6, 1, tzinfo=UTC), ())])
        client.noop()
        assert client.search("ALL") == [1]


def test_write_maildir_rejects_naive_dates_and_keywords(imap_user: MailUser) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        imap_user.write_maildir("INBOX", [(_message("x"), datetime(2024, 1, 1), ())])
    with pytest.raises(ValueError, match="system flags"):
        imap_user.write_maildir(
            "INBOX", [(_message("x"), datetime(2024, 1, 1, tzinfo=UTC), ["$Label1"])]
        )


# -- Dovecot: lifecycle ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "rootless"])
def test_stop_leaves_no_process_of_the_session(
    dovecot_factory: Callable[..., DovecotServer], mode: Literal["auto", "rootless"]
) -> None:
    server = dovecot_factory(mode=mode)
    workdir = server.workdir
    idler: IMAPClient | None = None
    try:
        user = server.add_user("idler")
        user.write_maildir("INBOX", [(_message("x"), datetime(2024, 1, 1, tzinfo=UTC), ())])
        user.append("INBOX", _message("y"))
        assert len(user.messages("INBOX")) == 2
        master = server.pid
        idler = user.connect()
        idler.select_folder("INBOX")
        idler.idle()
        processes = session_pids(master)
        assert len(processes) > 3
        if mode == "rootless" and os.geteuid() == 0:
            assert {os.stat(f"/proc/{pid}").st_uid for pid in processes} == {server.mail_uid}
    finally:
        server.stop()
        try:
            if idler is not None:
                # the server side is gone, so the idling connection ends
                sock = idler.socket()
                sock.settimeout(5)
                while sock.recv(4096):
                    pass
        finally:
            if idler is not None:
                idler.shutdown()
    assert session_pids(master) == []
    assert not workdir.exists()


# -- PostgreSQL -----------------------------------------------------------------------------


def test_postgres_url_connects(postgres: PostgresServer) -> None:
    assert postgres.url == f"postgresql+psycopg://postgres@127.0.0.1:{postgres.port}/postgres"
    with psycopg.connect(postgres.url.replace("+psycopg", "")) as connection:
        assert connection.execute("SELECT current_user").fetchone() == ("postgres",)
    url = postgres.create_database("servers_selftest")
    with psycopg.connect(url.replace("+psycopg", "")) as connection:
        connection.execute("CREATE TABLE t (id int)")
        assert connection.execute("SELECT current_database()").fetchone() == ("servers_selftest",)


def test_database_url_is_an_empty_database(database_url: str) -> None:
    engine = sqlalchemy.create_engine(database_url)
    try:
        with engine.begin() as connection:
            assert sqlalchemy.inspect(connection).get_table_names() == []
            connection.execute(sqlalchemy.text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
            connection.execute(sqlalchemy.text("INSERT INTO t (id) VALUES (1)"))
    finally:
        engine.dispose()


# -- SMTP sink ------------------------------------------------------------------------------


def test_smtp_sink_receives_a_message(smtp_sink: SmtpSink) -> None:
    raw = _message("Digest", "<digest-1@pocwatch.test>")
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=5) as client:
        client.sendmail("pocwatch@example.com", ["owner@example.com", "backup@example.com"], raw)
    (received,) = smtp_sink.wait_for(1)
    assert received.mail_from == "pocwatch@example.com"
    assert received.rcpt_tos == ("owner@example.com", "backup@example.com")
    assert received.message_id == "<digest-1@pocwatch.test>"
    assert received.raw == raw
    assert received.auth_login is None


def test_smtp_sink_starttls_and_auth(tls_files: TlsFiles) -> None:
    with SmtpSink(require_starttls=True, credentials=("notifier", "s3cret")) as sink:
        context = ssl.create_default_context(cafile=str(tls_files.ca_file))
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
            client.starttls(context=context)
            with pytest.raises(smtplib.SMTPSenderRefused):
                client.sendmail("a@example.com", ["b@example.com"], _message("no auth"))
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
            client.starttls(context=context)
            with pytest.raises(smtplib.SMTPAuthenticationError):
                client.login("notifier", "wrong")
            client.login("notifier", "s3cret")
            client.sendmail("a@example.com", ["b@example.com"], _message("authed"))
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
            bad = ssl.create_default_context(cafile=str(tls_files.other_ca_file))
            with pytest.raises(ssl.SSLCertVerificationError):
                client.starttls(context=bad)
        (received,) = sink.wait_for(1)
    assert received.auth_login == "notifier"
