"""Real servers for tests, demos and benchmarks: Dovecot, PostgreSQL, an SMTP sink (no pytest)."""

from __future__ import annotations

from tests.servers.common import ServerUnavailable, running_in_ci, session_pids
from tests.servers.dovecot import DovecotError, DovecotServer, MailUser, StoredMessage
from tests.servers.postgres import PostgresServer
from tests.servers.smtp import ReceivedMessage, SmtpSink
from tests.servers.tlsgen import TlsFiles, generate_tls_files, shared_tls_files

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
