"""Sync against a real Dovecot: incremental, read-only, deduplicated, resilient."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from imapclient import IMAPClient
from sqlalchemy import delete, select

from monitor.config import Config, MailboxConfig
from monitor.imap import connect
from monitor.storage.db import open_database
from monitor.storage.messages import MessageStore
from monitor.storage.models import FolderRow, LocationRow
from monitor.sync import sync_all
from rules.registry import load_config
from tests.servers import MailUser
from tests.traffic import render

NOW = datetime.now(UTC).replace(microsecond=0)


def write_config(
    tmp_path: Path,
    database_url: str,
    users: list[MailUser],
    *,
    folders: tuple[str, ...] = ("INBOX", "Sent"),
    security: str = "tls",
    extra: str = "",
    passwords: dict[str, str] | None = None,
    fetch_batch: int = 500,
) -> Path:
    blocks = []
    for user in users:
        port = user.imaps_port if security == "tls" else user.imap_port
        password = (passwords or {}).get(user.name, user.password)
        folder_list = ", ".join(f'"{f}"' for f in folders)
        blocks.append(f"""
[[mailboxes]]
name = "{user.name}"
host = "127.0.0.1"
port = {port}
security = "{security}"
ca_file = "{user.ca_file}"
username = "{user.name}"
password = "{password}"
folders = [{folder_list}]
""")
    path = tmp_path / "pocwatch.toml"
    path.write_text(
        f"""
[monitor]
database = "{database_url}"
internal_domains = ["example.com"]
backfill = "14d"
fetch_batch = {fetch_batch}
{extra}
{"".join(blocks)}
""",
        encoding="utf-8",
    )
    return path


def customer_mail(
    n: int,
    when: datetime,
    *,
    subject: str | None = None,
    refs: str | None = None,
    frm: str = "Alice <alice@client.example>",
    to: str = "support@example.com",
    message_id: str | None = None,
) -> bytes:
    return render(
        frm=frm,
        to=to,
        subject=subject or f"Question {n}",
        date=when,
        message_id=message_id or f"<q{n}@client.example>",
        in_reply_to=refs,
        references=refs,
        body=f"Question number {n}.",
    )


_open: list[MessageStore] = []


def stored(config: Config) -> MessageStore:
    """The store behind `config` (closed after each test: no connection outlives it)."""
    store = MessageStore(open_database(config.monitor.database))
    _open.append(store)
    return store


@pytest.fixture(autouse=True)
def _close_stores() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()


def test_first_sync_reads_the_backfill_window_and_threads(
    imap_user: MailUser, tmp_path: Path, database_url: str
) -> None:
    old = NOW - timedelta(days=20)  # before the 14-day backfill: not read
    imap_user.append("INBOX", customer_mail(0, old), internal_date=old)
    t = NOW - timedelta(days=2)
    imap_user.append("INBOX", customer_mail(1, t), internal_date=t)
    reply = render(
        frm="Priya <priya@example.com>",
        to="alice@client.example",
        subject="Re: Question 1",
        date=t + timedelta(hours=1),
        message_id="<r1@example.com>",
        in_reply_to="<q1@client.example>",
        references="<q1@client.example>",
        body="Answer.",
    )
    imap_user.append("Sent", reply, internal_date=t + timedelta(hours=1))
    config = load_config(write_config(tmp_path, database_url, [imap_user]))
    [result] = sync_all(config, stored(config), now=NOW)
    assert result.error is None
    assert result.total("new_messages") == 2
    threads = stored(config).thread_rows()
    assert [(t.thread_id, t.message_ids) for t in threads] == [
        ("<q1@client.example>", ("<q1@client.example>", "<r1@example.com>"))
    ]


def test_incremental_sync_fetches_only_new_mail(
    imap_user: MailUser, tmp_path: Path, database_url: str
) -> None:
    for n in range(3):
        imap_user.append("INBOX", customer_mail(n, NOW - timedelta(hours=n + 1)))
    config = load_config(write_config(tmp_path, database_url, [imap_user]))
    store = stored(config)
    [first] = sync_all(config, store, now=NOW)
    assert first.total("fetched") == 3
    [idle] = sync_all(config, store, now=NOW)
    assert idle.total("fetched") == 0
    imap_user.append("INBOX", customer_mail(9, NOW - timedelta(minutes=5)))
    [second] = sync_all(config, store, now=NOW)
    assert (second.total("fetched"), second.total("new_messages")) == (1, 1)
    assert store.message_count() == 4


def test_the_same_message_in_inbox_and_sent_is_one_message(
    imap_user: MailUser, tmp_path: Path, database_url: str
) -> None:
    raw = render(
        frm="Priya <priya@example.com>",
        to="alice@client.example",
        cc="support@example.com",
        subject="Your order",
        date=NOW - timedelta(hours=2),
        message_id="<order@example.com>",
        body="Shipped.",
    )
    imap_user.append("INBOX", raw)
    imap_user.append("Sent", raw)
    config = load_config(write_config(tmp_path, database_url, [imap_user]))
    [result] = sync_all(config, stored(config), now=NOW)
    assert (result.total("fetched"), result.total("new_messages")) == (2, 1)
    assert result.total("duplicates") == 1
    assert stored(config).message_count() == 1


def test_a_reused_message_id_on_another_message_is_kept_with_a_synthetic_id(
    imap_user: MailUser, tmp_path: Path, database_url: str
) -> None:
    imap_user.append("INBOX", customer_mail(1, NOW - timedelta(hours=3), message_id="<same@x>"))
    imap_user.append(
        "INBOX",
        customer_mail(
            2, NOW - timedelta(hours=2), message_id="<same@x>", frm="Bob <bob@other.example>"
        ),
    )
    config = load_config(write_config(tmp_path, database_url, [imap_user]))
    store = stored(config)
    [result] = sync_all(config, store, now=NOW)
    assert result.total("new_messages") == 2
    assert result.total("renamed") == 1
    [renamed] = [t for t in store.threads() if t.messages[0].synthetic_id]
    assert renamed.messages[0].defects[-1] == "duplicate Message-ID <same@x>"
    # A second pass over the same folder renames it to the same id: still two messages.
    sync_all(config, store, now=NOW)
    assert store.message_count() == 2


def test_new_uidvalidity_resyncs_the_folder_without_duplicates(
    imap_user: MailUser, tmp_path: Path, database_url: str
) -> None:
    raws = [customer_mail(n, NOW - timedelta(hours=n + 1)) for n in range(4)]
    imap_user.create_folder("Shared")
    for raw in raws:
        imap_user.append("Shared", raw)
    config = load_config(write_config(tmp_path, database_url, [imap_user], folders=("Shared",)))
    store = stored(config)
    sync_all(config, store, now=NOW)
    before = imap_user.folder_status("Shared")["UIDVALIDITY"]
    imap_user.delete_folder("Shared")
    imap_user.create_folder("Shared")
    for raw in raws:
        imap_user.append("Shared", raw)
    assert imap_user.folder_status("Shared")["UIDVALIDITY"] != before
    [result] = sync_all(config, store, now=NOW)
    assert result.total("fetched") == 4
    assert result.total("new_messages") == 0
    assert store.message_count() == 4
    assert len(store.folder_uids(imap_user.name, "Shared")) == 4


def test_sync_never_changes_the_mailbox(
    imap_user: MailUser, tmp_path: Path, database_url: str
) -> None:
    imap_user.append("INBOX", customer_mail(1, NOW - timedelta(hours=1)))  # unseen
    imap_user.append("INBOX", customer_mail(2, NOW - timedelta(hours=2)), flags=("\\Seen",))
    imap_user.append("Sent", customer_mail(3, NOW - timedelta(hours=3)), flags=("\\Answered",))
    before = {f: imap_user.flags(f) for f in ("INBOX", "Sent")}
    messages_before = {f: imap_user.messages(f) for f in ("INBOX", "Sent")}
    config = load_config(write_config(tmp_path, database_url, [imap_user]))
    sync_all(config, stored(config), now=NOW)
    sync_all(config, stored(config), now=NOW)
    assert {f: imap_user.flags(f) for f in ("INBOX", "Sent")} == before
    assert {f: imap_user.messages(f) for f in ("INBOX", "Sent")} == messages_before
    assert any("\\Seen" not in flags for flags in before["INBOX"].values())


def test_answered_set_by_another_client_is_seen(
    imap_user: MailUser, tmp_path: Path, database_url: str
) -> None:
    uid = imap_user.append("INBOX", customer_mail(1, NOW - timedelta(hours=1)))
    config = load_config(write_config(tmp_path, database_url, [imap_user]))
    store = stored(config)
    sync_all(config, store, now=NOW)
    assert store.threads()[0].answered == frozenset()
    with imap_user.connect() as client:  # a mail client replying elsewhere sets \Answered
        client.select_folder("INBOX")
        client.add_flags([uid], [b"\\Answered"])
    [result] = sync_all(config, store, now=NOW)
    assert result.total("flag_changes") == 1
    assert store.threads()[0].answered == frozenset({"<q1@client.example>"})


def test_malformed_messages_are_stored_with_defects_and_block_nothing(
    imap_user: MailUser, tmp_path: Path, database_url: str
) -> None:
    t = NOW - timedelta(hours=5)
    bad = [
        b"Subject: no id, no from, no date\r\n\r\nbody\r\n",
        b"From: =?utf-8?q?broken\xff\xfe?= <x@\xffbad>\r\nSubject: \xe9t\xe9\r\n"
        b'Content-Type: multipart/mixed; boundary="nope"\r\n\r\n--other\r\nbroken\r\n',
        b"Message-ID: <huge@x>\r\nSubject: " + b"A" * 100_000 + b"\r\n\r\nbig header\r\n",
    ]
    imap_user.append("INBOX", customer_mail(1, t))
    for raw in bad:
        imap_user.append("INBOX", raw, internal_date=t)
    imap_user.append("INBOX", customer_mail(2, t))
    config = load_config(write_config(tmp_path, database_url, [imap_user], folders=("INBOX",)))
    store = stored(config)
    [result] = sync_all(config, store, now=NOW)
    assert result.error is None
    assert result.total("new_messages") == 5
    assert result.total("defects") >= 2
    ids = {m.message_id for t in store.threads() for m in t.messages}
    assert {"<q1@client.example>", "<q2@client.example>", "<huge@x>"} <= ids


def test_a_gap_between_server_and_store_is_reported_and_filled(
    imap_user: MailUser, tmp_path: Path, database_url: str
) -> None:
    for n in range(3):
        imap_user.append("INBOX", customer_mail(n, NOW - timedelta(hours=n + 1)))
    config = load_config(write_config(tmp_path, database_url, [imap_user], folders=("INBOX",)))
    store = stored(config)
    sync_all(config, store, now=NOW)
    from sqlalchemy.orm import Session

    with Session(store.engine) as session, session.begin():  # lose one location
        folder_pk = session.scalar(select(FolderRow.id).where(FolderRow.name == "INBOX"))
        lost = min(store.folder_uids(imap_user.name, "INBOX"))
        session.execute(
            delete(LocationRow).where(LocationRow.folder_pk == folder_pk, LocationRow.uid == lost)
        )
    imap_user.append("INBOX", customer_mail(7, NOW - timedelta(minutes=1)))
    [result] = sync_all(config, store, now=NOW)
    assert result.total("gap") == 1
    assert lost in store.folder_uids(imap_user.name, "INBOX")
    assert store.message_count() == 4


def test_non_ascii_folder_names(imap_user: MailUser, tmp_path: Path, database_url: str) -> None:
    folder = "Envoyés/Überprüft"
    imap_user.create_folder(folder)
    imap_user.append(folder, customer_mail(1, NOW - timedelta(hours=1)))
    config = load_config(write_config(tmp_path, database_url, [imap_user], folders=(folder,)))
    [result] = sync_all(config, stored(config), now=NOW)
    assert result.error is None
    assert result.total("new_messages") == 1


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_tls_and_starttls_verify_against_the_configured_ca(
    imap_user: MailUser, tmp_path: Path, security: str
) -> None:
    imap_user.append("INBOX", customer_mail(1, NOW - timedelta(hours=1)))
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    config = load_config(
        write_config(tmp_path, url, [imap_user], folders=("INBOX",), security=security)
    )
    [result] = sync_all(config, stored(config), now=NOW)
    assert result.error is None and result.total("new_messages") == 1


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_a_server_certificate_from_an_unknown_ca_is_refused(
    imap_user: MailUser, tmp_path: Path, security: str
) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    path = write_config(tmp_path, url, [imap_user], folders=("INBOX",), security=security)
    text = path.read_text().replace(str(imap_user.ca_file), str(imap_user.server.other_ca_file))
    path.write_text(text)
    config = load_config(path)
    [result] = sync_all(config, stored(config), now=NOW)
    assert result.error is not None
    assert "certificate verify failed" in result.error


def test_an_expired_oauth_token_command_is_reported_and_others_still_sync(
    imap_user: MailUser, tmp_path: Path
) -> None:
    imap_user.append("INBOX", customer_mail(1, NOW - timedelta(hours=1)))
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    path = write_config(tmp_path, url, [imap_user], folders=("INBOX",))
    script = tmp_path / "token.sh"
    script.write_text("#!/bin/sh\necho half-a-token-s3cr3t\necho token expired >&2\nexit 3\n")
    script.chmod(0o755)
    token_box = f"""
[[mailboxes]]
name = "oauth"
host = "127.0.0.1"
port = {imap_user.imaps_port}
ca_file = "{imap_user.ca_file}"
username = "someone@example.com"
oauth2_token_command = "{script}"
"""
    path.write_text(path.read_text() + token_box)
    config = load_config(path)
    results = {r.mailbox: r for r in sync_all(config, stored(config), now=NOW)}
    assert results["oauth"].auth_failed
    error = results["oauth"].error or ""
    assert "exited with status 3" in error and str(script) in error
    assert "s3cr3t" not in error and "token expired" not in error  # its output stays secret
    assert results[imap_user.name].error is None
    assert results[imap_user.name].total("new_messages") == 1


def test_a_missing_folder_is_reported_at_once_and_the_others_still_sync(
    imap_user: MailUser, tmp_path: Path
) -> None:
    imap_user.append("INBOX", customer_mail(1, NOW - timedelta(hours=1)))
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    config = load_config(write_config(tmp_path, url, [imap_user], folders=("Nope", "INBOX")))
    logins: list[str] = []

    def counting_connect(mailbox: MailboxConfig) -> IMAPClient:
        logins.append(mailbox.name)
        return connect(mailbox)

    [result] = sync_all(config, stored(config), now=NOW, connector=counting_connect)
    assert logins == [imap_user.name]  # the server said no, not "later": no retry
    assert result.error is None
    [nope, inbox] = result.folders
    assert (nope.folder, inbox.folder) == ("Nope", "INBOX")
    assert inbox.error is None and inbox.new_messages == 1
    assert result.problems == [nope.error]
    assert (nope.error or "").startswith(f"mailbox '{imap_user.name}': cannot open folder 'Nope'")


def test_an_idle_poll_costs_one_command_per_folder(imap_user: MailUser, tmp_path: Path) -> None:
    imap_user.append("INBOX", customer_mail(1, NOW - timedelta(hours=1)))
    imap_user.append("Sent", customer_mail(2, NOW - timedelta(hours=1)))
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    config = load_config(write_config(tmp_path, url, [imap_user]))
    store = stored(config)
    sync_all(config, store, now=NOW)
    sent: list[str] = []

    def counting_connect(mailbox: MailboxConfig) -> IMAPClient:
        client = connect(mailbox)
        original = client._imap._command

        def command(name: str, *args: object) -> object:
            sent.append(name.upper())
            return original(name, *args)

        client._imap._command = command
        return client

    [result] = sync_all(config, store, now=NOW, connector=counting_connect)
    assert result.total("fetched") == 0
    session = [c for c in sent if c not in {"CAPABILITY", "ENABLE", "LOGOUT"}]
    assert session == ["EXAMINE", "EXAMINE"], sent
