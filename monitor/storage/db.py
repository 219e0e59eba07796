"""Opening the database: engine options per backend, and migrations to the latest schema."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from monitor.errors import PocwatchError
from monitor.storage.urls import url_problem

T = TypeVar("T")


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """`items` in lists of at most `size`: bound-parameter lists stay within every backend's
    limits and statements stay small enough to plan well."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class DatabaseError(PocwatchError):
    """The database could not be opened or migrated."""

    def __init__(self, url: str, problem: str) -> None:
        self.url = url
        super().__init__(f"database {url}: {problem}")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets `pocwatch violations` read while the daemon writes; the busy timeout covers the
    # short moments when both want to write.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def one_line(exc: BaseException) -> str:
    """The driver's own words, first line only: SQLAlchemy adds the exception class, hints and
    a link on further lines, and a user error must read as one line."""
    cause = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return lines[0] if lines else type(cause).__name__


def create_db_engine(url: str) -> Engine:
    """An engine with the options each backend needs (no schema changes)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseError(url, f"not a database URL ({exc})") from exc
    shown = parsed.render_as_string(hide_password=True)
    problem = url_problem(url)
    if problem is not None:
        raise DatabaseError(shown, problem)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, shown)
    return _server_engine(parsed)


def _sqlite_engine(parsed: URL, shown: str) -> Engine:
    database = parsed.database
    if database and database != ":memory:":
        directory = Path(database).parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            problem = f"cannot create the directory {directory}: {exc.strerror or exc}"
            raise DatabaseError(shown, problem) from exc
    engine = create_engine(parsed, connect_args={"timeout": 30})
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _server_engine(parsed: URL) -> Engine:
    connect_args: dict[str, Any] = {}
    if parsed.get_dialect().driver == "psycopg":
        # No server-side prepared statements: psycopg prepares a statement run 5 times, and
        # PostgreSQL may then keep a generic plan made while the tables were small (a backfill
        # starts empty): by 20k messages the threading lookups (a batch's ids) still ran
        # early sequential scans, 4-8x slower than fresh plans. Bulk writes go by COPY.
        connect_args["prepare_threshold"] = None
    return create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)


def alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the latest revision (a no-op when it is there already)."""
    cfg = alembic_config()
    head = ScriptDirectory.from_config(cfg).get_current_head()
    try:
        with engine.connect() as conn:
            if MigrationContext.configure(conn).get_current_revision() == head:
                return
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except SQLAlchemyError as exc:
        raise DatabaseError(engine.url.render_as_string(hide_password=True), one_line(exc)) from exc


def open_database(url: str) -> Engine:
    """The engine for `url`, migrated to the latest schema."""
    engine = create_db_engine(url)
    migrate(engine)
    return engine
