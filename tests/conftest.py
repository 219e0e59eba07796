"""Fixtures that start real servers: a private Dovecot, PostgreSQL and an SMTP sink."""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import pytest

from tests.servers import (
    DovecotServer,
    MailUser,
    PostgresServer,
    ServerUnavailable,
    SmtpSink,
    TlsFiles,
    running_in_ci,
    shared_tls_files,
)

# Tests using these get the `servers` marker, so `-m "not servers"` runs without them.
SERVER_FIXTURES = frozenset({"dovecot", "dovecot_factory", "imap_user", "postgres"})

_user_numbers = itertools.count(1)


def _unavailable(exc: ServerUnavailable) -> NoReturn:
    if running_in_ci():
        pytest.fail(f"CI=true but {exc}", pytrace=False)
    pytest.skip(str(exc))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.servers)


@pytest.fixture(scope="session")
def tls_files() -> TlsFiles:
    """The private CA, the loopback server certificate signed by it, and an unrelated CA."""
    try:
        return shared_tls_files()
    except ServerUnavailable as exc:
        _unavailable(exc)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    """One private Dovecot for the whole session; tests isolate themselves by user."""
    try:
        server = DovecotServer().start()
    except ServerUnavailable as exc:
        _unavailable(exc)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def dovecot_factory() -> Iterator[Callable[..., DovecotServer]]:
    """Start extra, private Dovecots (DovecotServer keyword arguments); stopped after the test."""
    started: list[DovecotServer] = []

    def start(**kwargs: Any) -> DovecotServer:
        try:
            server = DovecotServer(**kwargs)
        except ServerUnavailable as exc:
            _unavailable(exc)
        started.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def imap_user(dovecot: DovecotServer, request: pytest.FixtureRequest) -> MailUser:
    """A fresh login (random password) on the session's Dovecot, named after the test."""
    test_name = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")[:40]
    return dovecot.add_user(f"u{next(_user_numbers)}-{test_name}-{secrets.token_hex(3)}")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A private PostgreSQL cluster, started the first time a test asks for it."""
    try:
        server = PostgresServer().start()
    except ServerUnavailable as exc:
        _unavailable(exc)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.servers)])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An SQLAlchemy URL of an empty database: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'pocwatch.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database(f"test_{secrets.token_hex(8)}")


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A plain SMTP sink on loopback; build SmtpSink(...) directly for STARTTLS or AUTH."""
    try:
        sink = SmtpSink().start()
    except ServerUnavailable as exc:
        _unavailable(exc)
    try:
        yield sink
    finally:
        sink.stop()
