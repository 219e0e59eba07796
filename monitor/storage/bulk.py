"""Bulk inserts for the ingest path: rows as plain tuples, by executemany or PostgreSQL COPY."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from json.encoder import encode_basestring_ascii
from typing import Any

from sqlalchemy import JSON, Connection, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import TypeEngine

from monitor.storage.models import Base, UTCDateTime

_Processor = Callable[[Any], Any]


class BulkInsert:
    """An INSERT of many rows into one table, each row a tuple in `columns` order.

    SQLAlchemy's Core insert builds a parameter dict per row and walks it through its
    compiler: per message that cost more than parsing it (benchmarks/ingest.py). Here every
    value still goes through the bind processor SQLAlchemy would apply for its column type
    (JSON text, naive UTC datetimes, ...), so rows read back exactly as if the ORM had written
    them; only the per-row machinery is skipped.
    """

    def __init__(self, model: type[Base], columns: Sequence[str]) -> None:
        table = model.__table__
        if not isinstance(table, Table):
            raise TypeError(f"{model.__name__} is not mapped to a table")
        self.table = table
        self.columns = tuple(columns)
        self._processors_for: dict[tuple[str, str], list[tuple[int, _Processor]]] = {}

    def execute(self, conn: Connection, rows: Iterable[Sequence[Any]]) -> None:
        dialect = conn.dialect
        key = (dialect.name, dialect.driver)
        processors = self._processors_for.get(key)
        if processors is None:  # built once per backend, not per batch
            processors = self._processors_for[key] = self._processors(dialect)
        params = [_processed(row, processors) for row in rows]
        if not params:
            return
        if _copies(dialect):
            self._copy(conn, params)
        else:
            conn.exec_driver_sql(self._sql(dialect, "INSERT"), params)

    def _copy(self, conn: Connection, params: list[tuple[Any, ...]]) -> None:
        """PostgreSQL: COPY FROM STDIN on the Connection's own psycopg connection (so in its
        transaction). An executemany is one INSERT statement per row for the server to parse,
        plan and run, several times the cost of a COPY row; the values are the same, already
        processed, and psycopg writes them in COPY's text format as it would bind them."""
        driver_connection = conn.connection.driver_connection
        if driver_connection is None:
            raise RuntimeError("the connection has no driver connection")
        sql = self._sql(conn.dialect, "COPY")
        try:
            with driver_connection.cursor() as cursor, cursor.copy(sql) as copy:
                for row in params:
                    copy.write_row(row)
        except conn.dialect.loaded_dbapi.Error as exc:
            # Past SQLAlchemy here: wrap the driver's error as SQLAlchemy would, so callers
            # (the CLI's one-line report) meet one kind of database error.
            raise DBAPIError.instance(
                sql, None, exc, conn.dialect.loaded_dbapi.Error, dialect=conn.dialect
            ) from exc

    def _sql(self, dialect: Dialect, verb: str) -> str:
        quote = dialect.identifier_preparer.quote
        names = ", ".join(quote(name) for name in self.columns)
        table = dialect.identifier_preparer.format_table(self.table)
        if verb == "COPY":
            return f"COPY {table} ({names}) FROM STDIN"
        mark = "?" if dialect.paramstyle == "qmark" else "%s"  # sqlite3 / psycopg
        marks = ", ".join(mark for _ in self.columns)
        return f"INSERT INTO {table} ({names}) VALUES ({marks})"

    def _processors(self, dialect: Dialect) -> list[tuple[int, _Processor]]:
        found = []
        for index, name in enumerate(self.columns):
            column_type = self.table.c[name].type
            process = column_type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                found.append((index, _quicker(column_type, dialect, process)))
        return found


def _processed(row: Sequence[Any], processors: list[tuple[int, _Processor]]) -> tuple[Any, ...]:
    values = list(row)
    for index, process in processors:
        values[index] = process(values[index])
    return tuple(values)


def _quicker(column_type: TypeEngine[Any], dialect: Dialect, process: _Processor) -> _Processor:
    """The same values as `process`, sooner, for the two types of most values in a message row
    (tests/test_storage_bulk.py compares what both paths store)."""
    if isinstance(column_type, JSON):
        if _copies(dialect):
            process = _json_text(column_type, dialect)
        return _with_empty_shortcut(process)
    if isinstance(column_type, UTCDateTime) and dialect.name == "sqlite":
        return _sqlite_utc_text(column_type, dialect)
    return process


def _copies(dialect: Dialect) -> bool:
    """Whether rows go by COPY (psycopg) rather than executemany."""
    return dialect.driver == "psycopg"


def _json_text(column_type: JSON, dialect: Dialect) -> _Processor:
    """JSON as the text COPY writes into a json column. psycopg's processor wraps each value in
    a Json for psycopg to serialise as it writes the row (a fifth of the COPY's client time);
    this serialises it at once, with the serialiser SQLAlchemy hands psycopg (the engine's
    json_serializer, else json.dumps), so the stored text is the same."""
    serialize: _Processor = getattr(dialect, "_json_serializer", None) or json.dumps
    none_text = None if column_type.none_as_null else serialize(None)

    def process(value: Any) -> Any:
        return none_text if value is None else serialize(value)

    return process


def _sqlite_utc_text(column_type: UTCDateTime, dialect: Dialect) -> _Processor:
    """SQLAlchemy's SQLite DATETIME text ("2024-03-05 09:30:15.123456") of UTCDateTime's naive
    UTC value, by isoformat instead of its %-format of a dict (twice as fast)."""
    to_naive_utc = column_type.process_bind_param

    def process(value: Any) -> str | None:
        naive = to_naive_utc(value, dialect)
        return None if naive is None else naive.isoformat(" ", "microseconds")

    return process


def _with_empty_shortcut(process: _Processor) -> _Processor:
    """Most list columns are empty (no Cc, no references, no defects): serialise [] once.
    The rest are lists of strings (addresses, Message-IDs), written as json.dumps would,
    where the dialect's processor is json.dumps (checked here, once)."""
    empty = process([])
    probe = ['a "quoted" \u00e9\\', "<b@c>"]
    strings_quickly = process(probe) == _string_list_json(probe)

    def shortcut(value: Any) -> Any:
        if value == () or value == []:
            return empty
        if strings_quickly and all(type(item) is str for item in value):
            return _string_list_json(value)
        return process(value)

    return shortcut


def _string_list_json(items: Sequence[str]) -> str:
    """json.dumps of a list of strings (its default separators and ASCII escapes)."""
    return "[" + ", ".join(map(encode_basestring_ascii, items)) + "]"
