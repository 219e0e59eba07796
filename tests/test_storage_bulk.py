"""The bulk insert path writes exactly what SQLAlchemy's own insert writes, on both backends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.exc import IntegrityError

from monitor.storage.bulk import BulkInsert, _string_list_json
from monitor.storage.db import open_database
from monitor.storage.models import Base, FolderRow, LocationRow, MessageRow

WHEN = datetime(2024, 3, 5, 9, 30, 15, 123456, tzinfo=UTC)

MESSAGE: dict[str, Any] = {
    "synthetic_id": True,
    "fingerprint": "f" * 64,
    "subject": "Re: Façture n° 42 \u2014 \U0001f4e7",
    "base_subject": "façture n° 42 \u2014 \U0001f4e7",
    "from_addr": "jörg@example.com",
    "from_name": 'Jörg "J" Müller',
    "sender_addr": None,
    "to_addrs": ("a@example.com", "zoë@example.org"),
    "cc_addrs": (),
    "date_header": None,
    "internal_date": WHEN.astimezone(timezone(timedelta(hours=-5))),  # aware, not UTC
    "time": WHEN,
    "in_reply_to": ("<x@y>",),
    "references": ("<a@b>", '<q"uote\\@c>'),
    "thread_index_root": None,
    "gm_thrid": 2**62,
    "automatic": "out_of_office",
    "snippet": "line\nnext\ttab\r\\N \\.\n\\.",  # COPY's NULL and end markers, as text
    "size": 4096,
    "defects": ("missing-date",),
    "thread_id": "<root@example.com>",
}


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    opened = open_database(database_url)
    yield opened
    opened.dispose()


def _as_text(engine: Engine, model: type[Base], key: str, value: object) -> dict[str, Any]:
    """Every column of one row as the database holds it, cast to text (no type processing)."""
    columns = [c.name for c in model.__table__.c]
    with engine.connect() as conn:
        quote = conn.dialect.identifier_preparer.quote
        listed = ", ".join(f"CAST({quote(c)} AS TEXT)" for c in columns)
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        row = conn.exec_driver_sql(
            f"SELECT {listed} FROM {model.__tablename__} WHERE {quote(key)} = {mark}", (value,)
        ).one()
    return dict(zip(columns, row, strict=True))


def test_a_bulk_inserted_message_row_is_stored_exactly_as_the_orm_stores_it(
    engine: Engine,
) -> None:
    names = ("message_id", *MESSAGE)
    with engine.begin() as conn:
        conn.execute(insert(MessageRow), [{"message_id": "<orm@x>", **_orm(MESSAGE)}])
        BulkInsert(MessageRow, names).execute(conn, [("<bulk@x>", *MESSAGE.values())])
    by_orm = _as_text(engine, MessageRow, "message_id", "<orm@x>")
    by_bulk = _as_text(engine, MessageRow, "message_id", "<bulk@x>")
    for row in (by_orm, by_bulk):
        del row["id"], row["message_id"]
    assert by_bulk == by_orm


def test_bulk_inserted_locations_match_the_orm_ones(engine: Engine) -> None:
    with engine.begin() as conn:
        folder = conn.execute(
            insert(FolderRow).values(mailbox="box", name="INBOX").returning(FolderRow.id)
        ).scalar_one()
        message = conn.execute(
            insert(MessageRow).values(message_id="<m@x>", **_orm(MESSAGE)).returning(MessageRow.id)
        ).scalar_one()
        conn.execute(
            insert(LocationRow),
            [{"folder_pk": folder, "uid": 1, "message_pk": message, "flags": ["\\Seen"]}],
        )
        BulkInsert(LocationRow, ("folder_pk", "uid", "message_pk", "flags", "answered")).execute(
            conn, [(folder, 2, message, ("\\Seen",), False), (folder, 3, message, (), True)]
        )
    orm = _as_text(engine, LocationRow, "uid", 1)
    bulk = _as_text(engine, LocationRow, "uid", 2)
    assert {**bulk, "uid": orm["uid"]} == orm
    empty = _as_text(engine, LocationRow, "uid", 3)
    assert empty["flags"] == "[]"
    assert empty["answered"] in ("1", "true")


def test_a_bulk_insert_is_part_of_the_callers_transaction(engine: Engine) -> None:
    with pytest.raises(RuntimeError, match="rolled back"), engine.begin() as conn:
        BulkInsert(FolderRow, ("mailbox", "name", "last_seen_uid")).execute(
            conn, [("box", "INBOX", 0)]
        )
        assert conn.scalar(select(func.count()).select_from(FolderRow)) == 1
        raise RuntimeError("rolled back")
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(FolderRow)) == 0


def test_a_refused_bulk_insert_is_a_sqlalchemy_error_on_every_backend(engine: Engine) -> None:
    # COPY goes past SQLAlchemy on PostgreSQL; its errors still arrive as SQLAlchemy's, which
    # is what the CLI reports in one line.
    folder = BulkInsert(FolderRow, ("mailbox", "name", "last_seen_uid"))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        folder.execute(conn, [("box", "INBOX", 0), ("box", "INBOX", 0)])  # the same folder


def test_bulk_insert_of_no_rows_does_nothing(engine: Engine) -> None:
    with engine.begin() as conn:
        BulkInsert(LocationRow, ("folder_pk", "uid", "message_pk")).execute(conn, [])


def _orm(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _orm_value(v) for k, v in values.items()}


def _orm_value(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


@given(st.lists(st.text()))
def test_string_lists_are_written_as_json_dumps_writes_them(items: list[str]) -> None:
    assert _string_list_json(items) == json.dumps(items)
    assert _string_list_json(tuple(items)) == json.dumps(items)
