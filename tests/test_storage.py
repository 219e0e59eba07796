"""The message store on SQLite and PostgreSQL: migrations, dedup, incremental threading."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from datetime import timedelta

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from monitor.records import FetchedMessage, MessageRecord
from monitor.storage.db import DatabaseError, alembic_config, migrate, open_database
from monitor.storage.messages import MessageStore
from monitor.storage.models import Base
from monitor.storage.violations import ViolationStore
from tests.builders import T0, is_external, make_message, make_reply
from tests.servers import PostgresServer


@pytest.fixture
def store(database_url: str) -> Iterator[MessageStore]:
    with MessageStore(open_database(database_url)) as opened:
        yield opened


def put(
    store: MessageStore,
    *records: MessageRecord,
    folder: str = "INBOX",
    first_uid: int | None = None,
) -> None:
    state = store.folder_state("box", folder)
    uid = first_uid or state.last_seen_uid + 1
    fetched = [
        FetchedMessage("box", folder, uid + i, (), record) for i, record in enumerate(records)
    ]
    store.store_batch("box", folder, fetched, last_seen_uid=uid + len(records) - 1)
    store.assign_threads(is_external)


def grouping(store: MessageStore) -> dict[str, tuple[str, ...]]:
    return {t.thread_id: t.message_ids for t in store.thread_rows()}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("url", "pattern"),
    [
        ("mysql://u:s3kr1t@db/p", r"^database mysql://u:\*\*\*@db/p: .*driver.*MySQLdb"),
        ("nosuchdb://u:s3kr1t@db/p", r"^database nosuchdb://u:\*\*\*@db/p: unsupported"),
        ("sqlite:////proc/nope/p.db", r"^database sqlite:////proc/nope/p.db: .*/proc/nope\b"),
        (
            "postgresql+psycopg://u:s3kr1t@127.0.0.1:{port}/p",
            r"^database postgresql\+psycopg://u:\*\*\*@127.0.0.1:\d+/p: connection failed",
        ),
    ],
)
def test_a_database_that_cannot_be_opened_is_one_line_without_the_password(
    url: str, pattern: str
) -> None:
    """No traceback, no SQLAlchemy hints and links: the CLI prints this as its one line."""
    with pytest.raises(DatabaseError) as caught:
        open_database(url.format(port=_closed_port()))
    message = str(caught.value)
    assert "\n" not in message and "s3kr1t" not in message
    assert re.search(pattern, message), message


def test_migrations_build_exactly_the_models(database_url: str) -> None:
    engine = open_database(database_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            assert diff == []
            assert {
                "folders",
                "messages",
                "message_refs",
                "locations",
                "threads",
                "violations",
                "violation_events",
                "thread_checks",
                "evaluation_state",
                "alembic_version",
            } <= set(inspect(conn).get_table_names())
        open_database(database_url).dispose()  # a second open is a no-op upgrade
    finally:
        engine.dispose()


def test_upgrading_a_0001_database_to_head_keeps_its_data(database_url: str) -> None:
    engine = open_database(database_url)
    try:
        store = MessageStore(engine)
        root = make_message("root", T0)
        put(store, root, make_reply(root, "reply", T0 + timedelta(hours=1)))
        put(store, make_message("other", T0 + timedelta(hours=2)))
        before = (store.message_count(), grouping(store), store.folder_state("box", "INBOX"))
        cfg = alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0001")  # the messages and threads tables are 0001's
        with engine.connect() as conn:
            assert "violations" not in inspect(conn).get_table_names()
        migrate(engine)
        with engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == "0004"
            assert "violations" in inspect(conn).get_table_names()
            assert "participants" not in inspect(conn).get_table_names()
        assert (
            store.message_count(),
            grouping(store),
            store.folder_state("box", "INBOX"),
        ) == before
        assert before[0] == 3
        # The first evaluation after the upgrade sees every stored thread as changed.
        assert pending(store) == {"<root>", "<other>"}
    finally:
        engine.dispose()


def test_downgrading_past_0004_rebuilds_participants_from_the_messages(
    database_url: str,
) -> None:
    engine = open_database(database_url)
    try:
        store = MessageStore(engine)
        root = make_message("root", T0, to=["support@example.com"], cc=["Bob@Client.example"])
        put(
            store,
            root,
            make_reply(root, "reply", T0 + timedelta(hours=1), sender="priya@example.com"),
        )
        cfg = alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0003")
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT m.message_id, p.role, p.address FROM participants p "
                    "JOIN messages m ON m.id = p.message_pk"
                )
            ).all()
        expected = {
            (record.message_id, role, address)
            for record in (
                root,
                make_reply(root, "reply", T0 + timedelta(hours=1), sender="priya@example.com"),
            )
            for role, addresses in (
                ("from", [record.from_addr]),
                ("sender", [record.sender_addr]),
                ("to", record.to_addrs),
                ("cc", record.cc_addrs),
            )
            for address in addresses
            if address
        }
        assert set(rows) == expected and len(rows) == len(expected)
        assert ("<root>", "cc", "bob@client.example") in expected  # lowercased when parsed
        migrate(engine)
        with engine.connect() as conn:
            assert "participants" not in inspect(conn).get_table_names()
    finally:
        engine.dispose()


def test_storing_a_batch_twice_changes_nothing(store: MessageStore) -> None:
    first = make_message("a", T0)
    put(store, first, first_uid=1)
    put(store, first, first_uid=1)
    assert store.message_count() == 1
    assert store.folder_uids("box", "INBOX") == {1}


def test_a_late_message_linking_two_threads_merges_them(store: MessageStore) -> None:
    root = make_message("root", T0)
    left = make_reply(root, "left", T0 + timedelta(hours=1))
    right = make_reply(left, "right", T0 + timedelta(hours=2))
    # `right` names root and left in References; store it and root first, left later.
    put(store, make_message("root", T0))
    put(store, make_message("right", T0 + timedelta(hours=2), refs="left", in_reply_to="left"))
    assert len(grouping(store)) == 2
    put(store, left)
    assert grouping(store) == {"<root>": ("<root>", "<left>", "<right>")}
    assert right.references  # the builder chained them as a client would


def test_a_reply_stored_before_its_parent_joins_it(store: MessageStore) -> None:
    parent = make_message("p", T0)
    child = make_reply(parent, "c", T0 + timedelta(minutes=5))
    put(store, child)
    assert grouping(store) == {"<p>": ("<c>",)}  # the root is named, though not stored yet
    put(store, parent)
    assert grouping(store) == {"<p>": ("<p>", "<c>")}


def test_outlook_reply_without_references_joins_by_subject_across_batches(
    store: MessageStore,
) -> None:
    put(store, make_message("q", T0, subject="Quote for 50 seats", frm="dan@globex.example"))
    reply = make_message(
        "r",
        T0 + timedelta(days=2),
        subject="RE: Quote for 50 seats",
        frm="lee@example.com",
        to="dan@globex.example",
    )
    put(store, reply)
    assert grouping(store) == {"<q>": ("<q>", "<r>")}


def test_thread_index_links_messages_stored_in_different_passes(store: MessageStore) -> None:
    put(store, make_message("x1", T0, subject="Budget", thread_index="ab" * 22))
    put(
        store,
        make_message(
            "x2",
            T0 + timedelta(hours=3),
            subject="Other words",
            frm="lee@example.com",
            to="dan@globex.example",
            thread_index="ab" * 22,
        ),
    )
    assert grouping(store) == {"<x1>": ("<x1>", "<x2>")}


def test_same_id_different_message_gets_a_stable_synthetic_id(store: MessageStore) -> None:
    put(store, make_message("dup", T0, subject="First"), first_uid=1)
    other = make_message("dup", T0 + timedelta(days=3), subject="Second", frm="bob@b.example")
    put(store, other, first_uid=2)
    put(store, other, folder="Archive", first_uid=1)  # the same second message elsewhere
    assert store.message_count() == 2
    ids = {m for mids in grouping(store).values() for m in mids}
    [renamed] = ids - {"<dup>"}
    assert "<dup>" in ids
    assert renamed.startswith("<dup.") and renamed.endswith("@pocwatch.invalid>")


def pending(store: MessageStore) -> frozenset[str]:
    return ViolationStore(store.engine).pending_changes().thread_ids


def consume(store: MessageStore) -> None:
    log = ViolationStore(store.engine)
    log.record([], thread_ids=[], at=T0, consume=log.pending_changes())


def test_the_change_log_names_new_threads_and_merged_ones(store: MessageStore) -> None:
    put(store, make_message("root", T0), make_message("other", T0 + timedelta(hours=1)))
    assert pending(store) == {"<root>", "<other>"}
    consume(store)
    assert pending(store) == set()
    put(store, make_message("right", T0 + timedelta(hours=2), refs="left", in_reply_to="left"))
    assert pending(store) == {"<left>"}  # rooted at the message it names
    consume(store)
    put(store, make_message("left", T0 + timedelta(hours=1), refs="root", in_reply_to="root"))
    assert pending(store) == {"<root>", "<left>"}  # <left> merged into <root>
    consume(store)
    put(store, make_message("root", T0), first_uid=1)  # nothing new: nothing logged
    assert pending(store) == set()


def test_the_change_log_names_threads_seen_in_a_new_place_or_answered(
    store: MessageStore,
) -> None:
    put(store, make_message("q", T0), first_uid=1)
    consume(store)
    put(store, make_message("q", T0), folder="Archive", first_uid=7)
    assert pending(store) == {"<q>"}
    consume(store)
    assert store.update_flags("box", "INBOX", {1: ("\\Seen",)}) == 1
    assert pending(store) == set()  # \\Seen changes no answer
    assert store.update_flags("box", "INBOX", {1: ("\\Seen", "\\Answered")}) == 1
    assert pending(store) == {"<q>"}
    consume(store)
    store.reset_folder("box", "Archive", 99, T0)
    assert pending(store) == {"<q>"}


def test_consuming_keeps_changes_logged_after_the_read(store: MessageStore) -> None:
    put(store, make_message("a", T0))
    log = ViolationStore(store.engine)
    read = log.pending_changes()
    put(store, make_message("b", T0 + timedelta(hours=1)))
    log.record([], thread_ids=[], at=T0, consume=read)
    assert pending(store) == {"<b>"}


def test_postgresql_statistics_follow_a_growing_store(postgres: PostgresServer) -> None:
    engine = open_database(postgres.create_database("statistics"))
    try:
        store = MessageStore(engine)
        last_analyze = text("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = :t")
        with engine.connect() as conn:
            assert conn.scalar(last_analyze, {"t": "messages"}) is None
            default = conn.exec_driver_sql("SHOW random_page_cost").scalar()
            assert default != "1.1"
        for batch in range(5):  # 2,500 messages: past the first refresh
            put(store, *(make_message(f"m{batch}.{i}", T0) for i in range(500)))
        with engine.connect() as conn:
            for table in ("messages", "message_refs", "locations", "threads"):
                assert conn.scalar(last_analyze, {"t": table}) is not None, table
            # The ingest's cheaper index reads were its own: the session default is back.
            assert conn.exec_driver_sql("SHOW random_page_cost").scalar() == default
    finally:
        engine.dispose()
