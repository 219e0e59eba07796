"""Helpers shared by the test servers: free ports, binaries, process-session cleanup."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import time
from collections.abc import Iterable
from pathlib import Path

SYSTEM_PATHS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


class ServerUnavailable(RuntimeError):
    """A server binary (or the user it must run as) is missing on this machine."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"{problem} (install with scripts/install-system-deps)")
        self.problem = problem


def running_in_ci() -> bool:
    """True when $CI says so: missing servers must then fail tests instead of skipping them."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def find_binary(name: str, extra_dirs: Iterable[str] = ()) -> str:
    """Path of `name`, also looking in sbin directories a non-root PATH usually lacks."""
    search = os.pathsep.join([*extra_dirs, os.environ.get("PATH", ""), *SYSTEM_PATHS])
    found = shutil.which(name, path=search)
    if found is None:
        raise ServerUnavailable(f"{name} not found")
    return found


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports free right now (a server may still lose the race: retry)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def session_pids(sid: int) -> list[int]:
    """Live processes whose session id is `sid` (zombies excluded)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # comm (field 2) may contain spaces and parentheses: split after the last ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        state, session = fields[0], int(fields[3])
        if session == sid and state != "Z":
            pids.append(int(entry.name))
    return pids


def kill_session(sid: int, grace_s: float = 2.0) -> list[int]:
    """SIGTERM, then SIGKILL, every process left in session `sid`; return the pids found."""
    leftovers = session_pids(sid)
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while session_pids(sid) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in session_pids(sid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return leftovers
