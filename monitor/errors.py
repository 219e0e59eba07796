"""The exceptions pocwatch raises: each builds its own message."""

from __future__ import annotations


class PocwatchError(Exception):
    """Base of every error pocwatch reports to a user."""


class ConfigError(PocwatchError):
    """A configuration problem, located at a file, line and key path."""

    def __init__(self, file: str, line: int | None, key_path: str, problem: str) -> None:
        self.file = file
        self.line = line
        self.key_path = key_path
        self.problem = problem
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {key_path}: {problem}" if key_path else f"{where}: {problem}")


class ConfigErrors(PocwatchError):
    """Every problem found in one configuration file, reported together."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


class MailboxError(PocwatchError):
    """A mailbox could not be read."""

    def __init__(self, mailbox: str, problem: str) -> None:
        self.mailbox = mailbox
        self.problem = problem
        super().__init__(f"mailbox {mailbox!r}: {problem}")


class AuthError(MailboxError):
    """The server refused our credentials (retrying will not help)."""


class TransientMailboxError(MailboxError):
    """The server was unreachable or dropped us (retrying may help)."""


class FolderError(MailboxError):
    """The server refused to open a folder (no such folder, no right to read it): retrying
    will not help, and the mailbox's other folders can still be read."""

    def __init__(self, mailbox: str, folder: str, problem: str) -> None:
        self.folder = folder
        super().__init__(mailbox, f"cannot open folder {folder!r}: {problem}")


class SecretError(PocwatchError):
    """A secret could not be obtained (missing variable, failing command)."""


class ThreadNotFound(PocwatchError, LookupError):
    """No stored thread has this id."""

    def __init__(self, thread_id: str) -> None:
        self.thread_id = thread_id
        super().__init__(f"no thread {thread_id!r} in the store")
