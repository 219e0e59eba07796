"""An SMTP sink on loopback (aiosmtpd) that records what it receives."""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass
from email import policy
from email.parser import BytesParser
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.servers.common import free_ports
from tests.servers.tlsgen import TlsFiles, shared_tls_files


@dataclass(frozen=True)
class ReceivedMessage:
    """One message as the sink received it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    message_id: str | None
    auth_login: str | None


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        # Enforced here rather than with aiosmtpd's auth_required, which warns without TLS.
        if self._sink.credentials is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        headers = BytesParser(policy=policy.default).parsebytes(raw, headersonly=True)
        message_id = headers.get("Message-ID")
        self._sink._record(
            ReceivedMessage(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                raw=raw,
                message_id=str(message_id).strip() if message_id else None,
                auth_login=session.auth_data if session.authenticated else None,
            )
        )
        return "250 OK"


class SmtpSink:
    """aiosmtpd on a free loopback port; optional STARTTLS (private CA) and AUTH."""

    host = "127.0.0.1"

    def __init__(
        self,
        *,
        starttls: bool = False,
        require_starttls: bool = False,
        credentials: tuple[str, str] | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        self.credentials = credentials
        self._tls = tls
        self._starttls = starttls or require_starttls
        self._require_starttls = require_starttls
        self._controller: Controller | None = None
        self._messages: list[ReceivedMessage] = []
        self._changed = threading.Condition()
        self.port = 0

    @property
    def tls(self) -> TlsFiles:
        if self._tls is None:
            self._tls = shared_tls_files()
        return self._tls

    @property
    def ca_file(self) -> str:
        return str(self.tls.ca_file)

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._changed:
            return list(self._messages)

    def clear(self) -> None:
        with self._changed:
            self._messages.clear()

    def wait_for(self, count: int, timeout_s: float = 5.0) -> list[ReceivedMessage]:
        """The messages once at least `count` arrived; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while len(self._messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{len(self._messages)} of {count} messages arrived")
                self._changed.wait(remaining)
            return list(self._messages)

    def _record(self, message: ReceivedMessage) -> None:
        with self._changed:
            self._messages.append(message)
            self._changed.notify_all()

    def start(self) -> SmtpSink:
        if self._controller is not None:
            raise RuntimeError("SmtpSink already started")
        kwargs: dict[str, Any] = {
            "server_hostname": "localhost",  # else aiosmtpd calls getfqdn(), slow without DNS
            "ready_timeout": 10.0,
        }
        if self._starttls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.tls.cert_file, self.tls.key_file)
            kwargs |= {"tls_context": context, "require_starttls": self._require_starttls}
        if self.credentials is not None:
            kwargs |= {"authenticator": self._authenticate, "auth_require_tls": self._starttls}
        last_error: Exception | None = None
        for _ in range(5):
            (self.port,) = free_ports(1, self.host)
            controller = Controller(_Handler(self), hostname=self.host, port=self.port, **kwargs)
            try:
                controller.start()
            except Exception as exc:  # a lost port race surfaces as OSError or a timeout
                last_error = exc
                # a failed start leaves its loop open, which would warn when collected
                if not controller.loop.is_closed():
                    controller.loop.close()
                continue
            self._controller = controller
            return self
        raise RuntimeError(f"SMTP sink did not start: {last_error}") from last_error

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword) or self.credentials is None:
            return AuthResult(success=False, handled=False)
        login, password = self.credentials
        if auth_data.login.decode() == login and auth_data.password.decode() == password:
            return AuthResult(success=True, auth_data=login)
        return AuthResult(success=False, handled=False)
