"""Real servers for tests, demos and benchmarks: Dovecot, PostgreSQL, an SMTP sink (no pytest)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.servers.common import ServerUnavailable, running_in_ci, session_pids
from tests.servers.dovecot import DovecotError, DovecotServer, MailUser, StoredMessage
from tests.servers.postgres import PostgresServer
from tests.servers.tlsgen import TlsFiles, generate_tls_files, shared_tls_files

if TYPE_CHECKING:
    from tests.servers.smtp import ReceivedMessage, SmtpSink


def __getattr__(name: str) -> Any:
    # The SMTP sink needs aiosmtpd, a test-only dependency: the demo imports this package
    # without it, so load that module only when asked for.
    if name in {"ReceivedMessage", "SmtpSink"}:
        from tests.servers import smtp

        return getattr(smtp, name)
    raise AttributeError(name)


__all__ = [
    "DovecotError",
    "DovecotServer",
    "MailUser",
    "PostgresServer",
    "ReceivedMessage",
    "ServerUnavailable",
    "SmtpSink",
    "StoredMessage",
    "TlsFiles",
    "generate_tls_files",
    "running_in_ci",
    "session_pids",
    "shared_tls_files",
]
