"""A private Dovecot IMAP server on loopback, configured and owned by a temp directory."""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Literal, TypedDict

from imapclient import IMAPClient

from tests.servers.common import ServerUnavailable, find_binary, free_ports, kill_session
from tests.servers.tlsgen import TlsFiles, shared_tls_files

Mode = Literal["auto", "root", "rootless"]
TlsMode = Literal["none", "starttls", "implicit"]

SPECIAL_USE = {
    "Sent": r"\Sent",
    "Drafts": r"\Drafts",
    "Trash": r"\Trash",
    "Junk": r"\Junk",
    "Archive": r"\Archive",
}
_MAILDIR_FLAGS = {
    r"\draft": "D",
    r"\flagged": "F",
    r"\answered": "R",
    r"\seen": "S",
    r"\deleted": "T",
}
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_@+-][A-Za-z0-9._@+-]{0,99}$")
_APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]")
_SERVICES_WITH_CHROOT = (
    "imap-login",
    "pop3-login",
    "submission-login",
    "imap-urlauth-login",
    "anvil",
    "ipc",
    "old-stats",
    "aggregator",
    "director",
)


class _Privileges(TypedDict):
    user: int | None
    group: int | None
    extra_groups: list[int] | None


@dataclass(frozen=True)
class StoredMessage:
    """One message as the server returns it."""

    uid: int
    flags: frozenset[str]
    internal_date: datetime
    raw: bytes


@dataclass(frozen=True)
class MailUser:
    """A login on a DovecotServer, with the server's helpers bound to it."""

    name: str
    password: str
    server: DovecotServer

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def imap_port(self) -> int:
        return self.server.imap_port

    @property
    def imaps_port(self) -> int:
        return self.server.imaps_port

    @property
    def ca_file(self) -> Path:
        return self.server.ca_file

    def connect(self, *, tls: TlsMode = "none", ca_file: Path | None = None) -> IMAPClient:
        return self.server.connect(self.name, tls=tls, ca_file=ca_file)

    def append(
        self,
        folder: str,
        raw: bytes,
        flags: Iterable[str] = (),
        internal_date: datetime | None = None,
    ) -> int:
        return self.server.append(self.name, folder, raw, flags, internal_date)

    def create_folder(self, folder: str) -> None:
        self.server.create_folder(self.name, folder)

    def delete_folder(self, folder: str) -> None:
        self.server.delete_folder(self.name, folder)

    def folder_status(self, folder: str) -> dict[str, int]:
        return self.server.folder_status(self.name, folder)

    def list_folders(self) -> list[str]:
        return self.server.list_folders(self.name)

    def write_maildir(
        self, folder: str, messages: Iterable[tuple[bytes, datetime, Iterable[str]]]
    ) -> list[int]:
        return self.server.write_maildir(self.name, folder, messages)

    def flags(self, folder: str, *, include_recent: bool = False) -> dict[int, frozenset[str]]:
        return self.server.flags(self.name, folder, include_recent=include_recent)

    def messages(self, folder: str) -> list[StoredMessage]:
        return self.server.messages(self.name, folder)


class DovecotError(RuntimeError):
    """Dovecot failed to start, or a helper command failed; the message quotes its log."""


class DovecotServer:
    """Dovecot 2.3 with IMAP (STARTTLS) and IMAPS on free loopback ports.

    Root layout when run as root (mail owned by `mail_user`), rootless otherwise; `mode="rootless"`
    as root runs every Dovecot process as `run_as`. Without `workdir`, a fresh temp dir is made
    and removed by stop(); a given one is kept, and as root its parents must be world-searchable
    (pytest's tmp_path is not). Usable as a context manager.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        mode: Mode = "auto",
        mail_user: str = "nobody",
        run_as: str = "nobody",
        tls: TlsFiles | None = None,
        start_timeout_s: float = 20.0,
    ) -> None:
        is_root = os.geteuid() == 0
        if mode == "auto":
            mode = "root" if is_root else "rootless"
        if mode == "root" and not is_root:
            raise ValueError("mode='root' needs euid 0")
        self.mode: Literal["root", "rootless"] = mode
        self._given_workdir = workdir
        self._run_as = run_as if is_root else pwd.getpwuid(os.geteuid()).pw_name
        self._tls_source = tls
        self._start_timeout_s = start_timeout_s
        self._workdir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._users: dict[str, str] = {}
        self._maildir_seq = 0
        self.imap_port = 0
        self.imaps_port = 0
        self.instance_name = f"pocwatch-{os.getpid()}-{secrets.token_hex(4)}"
        self._dovecot = find_binary("dovecot")
        self._doveadm = find_binary("doveadm")
        self._tls: TlsFiles | None = None
        # uid/gid owning the mail, and the ids Dovecot itself runs as (None: as we are)
        if self.mode == "root":
            mail = _passwd_entry(mail_user)
            if mail.pw_uid == 0:
                raise ValueError("Dovecot refuses mail uid 0: pick a non-root mail_user")
            self.mail_uid, self.mail_gid = mail.pw_uid, mail.pw_gid
            self._proc_uid: int | None = None
        else:
            owner = _passwd_entry(self._run_as)
            self.mail_uid, self.mail_gid = owner.pw_uid, owner.pw_gid
            self._proc_uid = owner.pw_uid if is_root else None
            if is_root and owner.pw_uid == 0:
                raise ValueError("rootless mode as root needs a non-root run_as")

    # -- paths and properties -------------------------------------------------------------

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise RuntimeError("DovecotServer is not started")
        return self._workdir

    @property
    def config_path(self) -> Path:
        return self.workdir / "dovecot.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "dovecot.log"

    @property
    def passwd_dir(self) -> Path:
        return self.workdir / "passwd.d"

    @property
    def tls(self) -> TlsFiles:
        if self._tls is None:
            raise RuntimeError("DovecotServer is not started")
        return self._tls

    @property
    def ca_file(self) -> Path:
        return self.tls.ca_file

    @property
    def other_ca_file(self) -> Path:
        return self.tls.other_ca_file

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("DovecotServer is not started")
        return self._process.pid

    @property
    def users(self) -> dict[str, str]:
        """user name -> password, for every user added."""
        return dict(self._users)

    def ssl_context(self, ca_file: Path | None = None) -> ssl.SSLContext:
        """A verifying client context trusting `ca_file` (default: this server's CA)."""
        return ssl.create_default_context(cafile=str(ca_file or self.ca_file))

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> DovecotServer:
        if self._process is not None:
            raise RuntimeError("DovecotServer already started")
        try:
            self._prepare_workdir()
            last_error = ""
            for _ in range(5):
                self.imap_port, self.imaps_port = free_ports(2, self.host)
                self._write_config()
                self._spawn()
                error = self._wait_ready()
                if error is None:
                    return self
                self._halt()
                last_error = error
                if "Address already in use" not in error:
                    break
            raise DovecotError(f"Dovecot did not start: {last_error}")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> list[int]:
        """Stop the master, then kill any process left in its session; return those pids."""
        leftovers = self._halt()
        self._cleanup_workdir()
        return leftovers

    def __enter__(self) -> DovecotServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _prepare_workdir(self) -> None:
        if self._given_workdir is None:
            workdir = Path(tempfile.mkdtemp(prefix="pocwatch-dovecot-"))
        else:
            workdir = self._given_workdir
            workdir.mkdir(parents=True, exist_ok=True)
        self._workdir = workdir
        # mkdtemp gives 0700; Dovecot's users (dovecot, dovenull, mail) must traverse it.
        os.chmod(workdir, 0o755)
        if os.geteuid() == 0:
            _require_traversable(workdir)
        for sub in ("run", "state", "mail", "passwd.d"):
            (workdir / sub).mkdir(exist_ok=True)
        self._tls = (self._tls_source or shared_tls_files()).copy_to(workdir / "tls")
        if self.mode == "root":
            self._chown(workdir / "mail")
        elif self._proc_uid is not None:
            for path in [workdir, *workdir.rglob("*")]:
                self._chown(path)

    def _cleanup_workdir(self) -> None:
        if self._workdir is not None and self._given_workdir is None:
            shutil.rmtree(self._workdir, ignore_errors=True)
        self._workdir = None

    def _spawn(self) -> None:
        stderr_path = self.workdir / "dovecot.stderr"
        self._stderr = open(stderr_path, "ab")  # noqa: SIM115 -- closed in _halt
        self._process = subprocess.Popen(
            [self._dovecot, "-F", "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._stderr,
            stderr=self._stderr,
            start_new_session=True,
            cwd=self.workdir,
            **self._privileges(),
        )

    def _privileges(self) -> _Privileges:
        """subprocess arguments that run a child as `run_as` in rootless mode as root."""
        if self._proc_uid is None:
            return {"user": None, "group": None, "extra_groups": None}
        return {"user": self._proc_uid, "group": self.mail_gid, "extra_groups": []}

    def _wait_ready(self) -> str | None:
        """None once the `* OK` greeting arrives, else why not."""
        assert self._process is not None
        deadline = time.monotonic() + self._start_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return f"exited with {self._process.returncode}: {self._diagnostics()}"
            try:
                with (
                    socket.create_connection((self.host, self.imap_port), timeout=2) as sock,
                    sock.makefile("rb") as reader,
                ):
                    greeting = reader.readline()
                if greeting.startswith(b"* OK"):
                    return None
            except OSError:
                pass
            time.sleep(0.05)
        return f"no greeting within {self._start_timeout_s} s: {self._diagnostics()}"

    def _diagnostics(self) -> str:
        parts = []
        for path in (self.workdir / "dovecot.stderr", self.log_path):
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace").strip()
                if text:
                    parts.append(f"{path.name}: {text[-2000:]}")
        return "\n".join(parts) or "(no output)"

    def _halt(self) -> list[int]:
        process, self._process = self._process, None
        leftovers: list[int] = []
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            leftovers = kill_session(process.pid)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        return leftovers

    # -- configuration --------------------------------------------------------------------

    def _write_config(self) -> None:
        w = self.workdir
        mailboxes = "  mailbox INBOX {\n    auto = subscribe\n  }\n" + "\n".join(
            f"  mailbox {name} {{\n    special_use = {flag}\n    auto = subscribe\n  }}"
            for name, flag in SPECIAL_USE.items()
        )
        config = f"""\
base_dir = {w}/run
state_dir = {w}/state
instance_name = {self.instance_name}
listen = {self.host}
protocols = imap
log_path = {self.log_path}
info_log_path = {self.log_path}
debug_log_path = {self.log_path}
ssl = yes
ssl_cert = <{self.tls.cert_file}
ssl_key = <{self.tls.key_file}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:~/Maildir
mail_fsync = never
mail_max_userip_connections = 1000
mailbox_idle_check_interval = 1 secs
shutdown_clients = yes
first_valid_uid = 1
first_valid_gid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.passwd_dir}/%u
}}
userdb {{
  driver = static
  args = uid={self.mail_uid} gid={self.mail_gid} home={w}/mail/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
  prefix =
{mailboxes}
}}
# No auth penalty: after a failed login anvil would delay every later login from
# 127.0.0.1 by 2 to 15 s. An unreachable penalty socket disables it.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = {self.host}
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    address = {self.host}
    port = {self.imaps_port}
    ssl = yes
  }}
}}
"""
        if self.mode == "rootless":
            group = grp.getgrgid(_passwd_entry(self._run_as).pw_gid).gr_name
            config += (
                f"default_internal_user = {self._run_as}\n"
                f"default_internal_group = {group}\n"
                f"default_login_user = {self._run_as}\n"
            )
            # Without root, chroot() fails and the service dies on its first connection.
            config += "".join(
                f"service {name} {{\n  chroot =\n}}\n" for name in _SERVICES_WITH_CHROOT
            )
        self.config_path.write_text(config)
        self._chown_if_rootless(self.config_path)

    # -- users ----------------------------------------------------------------------------

    def add_user(self, name: str, password: str | None = None) -> MailUser:
        """Add a login (random password by default), usable at once without a restart.

        One passwd-file per user: Dovecot checks a passwd-file for changes at most once a
        second, so a user appended to a shared file right after a login stays unknown for up
        to a second; a file it has never opened is read on first lookup.
        """
        if password is None:
            password = secrets.token_urlsafe(12)
        if not _SAFE_NAME.match(name):
            raise ValueError(f"user name {name!r} must match {_SAFE_NAME.pattern}")
        if any(c in password for c in ":\r\n") or not password:
            raise ValueError("password must be non-empty without ':' or newlines")
        if name in self._users:
            raise ValueError(f"user {name!r} already exists")
        if ".." in name:
            raise ValueError(f"user name {name!r} must not contain '..'")
        path = self.passwd_dir / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(f"{name}:{{PLAIN}}{password}::::::\n")
        os.chmod(tmp, 0o644)
        self._chown_if_rootless(tmp)
        tmp.rename(path)
        self._users[name] = password
        return MailUser(name, password, self)

    def password(self, user: str) -> str:
        try:
            return self._users[user]
        except KeyError:
            raise KeyError(f"unknown user {user!r}: add it with add_user() first") from None

    # -- IMAP helpers ---------------------------------------------------------------------

    def connect(
        self,
        user: str | None = None,
        *,
        tls: TlsMode = "none",
        ca_file: Path | None = None,
        timeout_s: float = 10.0,
    ) -> IMAPClient:
        """An IMAPClient (logged in as `user` if given); close it with logout() or `with`."""
        context = self.ssl_context(ca_file)
        if tls == "implicit":
            client = IMAPClient(
                self.host, self.imaps_port, ssl=True, ssl_context=context, timeout=timeout_s
            )
        else:
            client = IMAPClient(self.host, self.imap_port, ssl=False, timeout=timeout_s)
        try:
            if tls == "starttls":
                client.starttls(context)
            if user is not None:
                client.login(user, self.password(user))
        except BaseException:
            with contextlib.suppress(Exception):
                client.shutdown()
            raise
        # aware datetimes for INTERNALDATE, as the product wants
        client.normalise_times = False
        return client

    def append(
        self,
        user: str,
        folder: str,
        raw: bytes,
        flags: Iterable[str] = (),
        internal_date: datetime | None = None,
    ) -> int:
        """APPEND one message; return its UID."""
        if internal_date is not None:
            _require_aware(internal_date)
        with self.connect(user) as client:
            response = client.append(folder, raw, flags=tuple(flags), msg_time=internal_date)
        match = _APPENDUID.search(response)
        if match is None:
            raise DovecotError(f"APPEND gave no APPENDUID: {response!r}")
        return int(match.group(1))

    def create_folder(self, user: str, folder: str) -> None:
        with self.connect(user) as client:
            client.create_folder(folder)

    def delete_folder(self, user: str, folder: str) -> None:
        with self.connect(user) as client:
            client.delete_folder(folder)

    def folder_status(self, user: str, folder: str) -> dict[str, int]:
        """MESSAGES, UIDNEXT and UIDVALIDITY of a folder."""
        with self.connect(user) as client:
            status = client.folder_status(folder, ["MESSAGES", "UIDNEXT", "UIDVALIDITY"])
        return {key.decode(): int(value) for key, value in status.items()}

    def list_folders(self, user: str) -> list[str]:
        with self.connect(user) as client:
            return [name for _, _, name in client.list_folders()]

    def flags(
        self, user: str, folder: str, *, include_recent: bool = False
    ) -> dict[int, frozenset[str]]:
        r"""UID -> flags, read with EXAMINE so reading changes nothing.

        \Recent is left out by default: it is per-session state, not a stored flag.
        """
        with self.connect(user) as client:
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            if not uids:
                return {}
            fetched = client.fetch(uids, ["FLAGS"])
        result = {}
        for uid, data in fetched.items():
            flags = frozenset(_text(flag) for flag in data[b"FLAGS"])
            result[uid] = flags if include_recent else flags - {r"\Recent"}
        return result

    def messages(self, user: str, folder: str) -> list[StoredMessage]:
        """Every message of a folder in UID order (read-only, BODY.PEEK)."""
        with self.connect(user) as client:
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            if not uids:
                return []
            fetched = client.fetch(uids, ["FLAGS", "INTERNALDATE", "BODY.PEEK[]"])
        return [
            StoredMessage(
                uid=uid,
                flags=frozenset(_text(flag) for flag in data[b"FLAGS"]) - {r"\Recent"},
                internal_date=data[b"INTERNALDATE"],
                raw=data[b"BODY[]"],
            )
            for uid, data in sorted(fetched.items())
        ]

    # -- Maildir seeding ------------------------------------------------------------------

    def doveadm(self, *args: str) -> str:
        """Run `doveadm -c <private config> ARGS...` and return its stdout."""
        result = subprocess.run(
            [self._doveadm, "-c", str(self.config_path), *args],
            capture_output=True,
            text=True,
            check=False,
            cwd=self.workdir,
            **self._privileges(),
        )
        if result.returncode != 0:
            raise DovecotError(
                f"doveadm {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}"
            )
        return result.stdout

    def write_maildir(
        self,
        user: str,
        folder: str,
        messages: Iterable[tuple[bytes, datetime, Iterable[str]]],
    ) -> list[int]:
        r"""Write messages straight into the folder's Maildir cur/, then sync the index.

        Much faster than APPEND for many messages. Each item is (raw, internal_date, flags),
        flags being system flags such as "\Seen". Returns the new UIDs, in the given order.
        """
        self.password(user)  # fail early on unknown users
        before = self._status(user, folder, create=True)
        maildir = Path(self.doveadm("mailbox", "path", "-u", user, folder).strip())
        tmp, cur = maildir / "tmp", maildir / "cur"
        base = int(time.time())
        written = 0
        for raw, internal_date, flags in messages:
            _require_aware(internal_date)
            self._maildir_seq += 1
            # Dovecot numbers new files by the "<secs>.M<usecs>" prefix, so it encodes the order.
            name = (
                f"{base}.M{self._maildir_seq}P{os.getpid()}.pocwatch,S={len(raw)}"
                f":2,{_maildir_flags(flags)}"
            )
            path = tmp / name
            path.write_bytes(raw)
            self._chown_mail(path)
            stamp = internal_date.timestamp()
            os.utime(path, (stamp, stamp))
            path.rename(cur / name)
            written += 1
        after = self._status(user, folder)
        if after["messages"] - before["messages"] != written:
            raise DovecotError(
                f"wrote {written} files into {cur} but Dovecot sees "
                f"{after['messages'] - before['messages']} new messages"
            )
        return list(range(before["uidnext"], after["uidnext"]))

    def _status(self, user: str, folder: str, *, create: bool = False) -> dict[str, int]:
        if create:
            try:
                return self._status(user, folder)
            except DovecotError:
                self.doveadm("mailbox", "create", "-u", user, folder)
        output = self.doveadm("mailbox", "status", "-u", user, "messages uidnext", folder)
        return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", output)}

    # -- ownership ------------------------------------------------------------------------

    def _chown(self, path: Path) -> None:
        os.chown(path, self.mail_uid, self.mail_gid)

    def _chown_mail(self, path: Path) -> None:
        if os.geteuid() == 0:
            self._chown(path)

    def _chown_if_rootless(self, path: Path) -> None:
        if self._proc_uid is not None:
            self._chown(path)


def _passwd_entry(user: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(user)
    except KeyError:
        raise ServerUnavailable(f"user {user!r} does not exist") from None


def _require_traversable(workdir: Path) -> None:
    for parent in workdir.resolve().parents:
        if not parent.stat().st_mode & 0o001:
            raise ValueError(
                f"{parent} is not searchable by other users, so Dovecot's unprivileged "
                f"processes cannot reach {workdir}; pass a workdir under /tmp, or none"
            )


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"internal_date must be timezone-aware, got {moment!r}")


def _maildir_flags(flags: Iterable[str]) -> str:
    letters = set()
    for flag in flags:
        try:
            letters.add(_MAILDIR_FLAGS[flag.lower()])
        except KeyError:
            raise ValueError(
                f"write_maildir supports only system flags {sorted(_MAILDIR_FLAGS)}, got {flag!r}"
            ) from None
    return "".join(sorted(letters))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
