"""A private PostgreSQL cluster (initdb + pg_ctl) on a free loopback port."""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from tests.servers.common import ServerUnavailable, find_binary, free_ports

_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def find_postgres_bin_dir() -> Path:
    """Directory holding initdb and pg_ctl: $POCWATCH_PG_BIN, Debian's newest, else $PATH."""
    configured = os.environ.get("POCWATCH_PG_BIN")
    if configured:
        return Path(configured)
    candidates = glob.glob("/usr/lib/postgresql/*/bin/initdb")

    def version(path: str) -> tuple[int, ...]:
        name = Path(path).parent.parent.name
        return tuple(int(part) for part in name.split(".") if part.isdigit())

    if candidates:
        return Path(max(candidates, key=version)).parent
    return Path(find_binary("initdb")).parent


class PostgresServer:
    """A throwaway cluster; as root its processes run as `run_as` (initdb refuses root)."""

    host = "127.0.0.1"

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        bin_dir: Path | None = None,
        run_as: str = "postgres",
        start_timeout_s: float = 30.0,
    ) -> None:
        self.bin_dir = bin_dir or find_postgres_bin_dir()
        for tool in ("initdb", "pg_ctl"):
            if not (self.bin_dir / tool).exists():
                raise ServerUnavailable(f"{tool} not found in {self.bin_dir}")
        self._as_root = os.geteuid() == 0
        self._owner: pwd.struct_passwd | None = None
        if self._as_root:
            try:
                self._owner = pwd.getpwnam(run_as)
            except KeyError:
                raise ServerUnavailable(f"user {run_as!r} does not exist") from None
        self._given_workdir = workdir
        self._workdir: Path | None = None
        self._start_timeout_s = start_timeout_s
        self.port = 0
        self._running = False

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise RuntimeError("PostgresServer is not started")
        return self._workdir

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        return self.workdir / "postgres.log"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the `postgres` database."""
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{database}"

    def conninfo(self, database: str = "postgres") -> str:
        """libpq connection string, for psycopg.connect()."""
        return f"host={self.host} port={self.port} user=postgres dbname={database}"

    def start(self) -> PostgresServer:
        if self._running:
            raise RuntimeError("PostgresServer already started")
        if self._given_workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="pocwatch-postgres-"))
        else:
            self._workdir = self._given_workdir
            self._workdir.mkdir(parents=True, exist_ok=True)
        if self._owner is not None:
            os.chown(self._workdir, self._owner.pw_uid, self._owner.pw_gid)
        try:
            self._run(
                "initdb", "-D", str(self.data_dir), "-A", "trust", "-U", "postgres",
                "-E", "UTF8", "--locale=C", "--no-sync",
            )  # fmt: skip
            last_error = ""
            for _ in range(5):
                (self.port,) = free_ports(1, self.host)
                options = (
                    f"-p {self.port} -k {self.workdir} -c listen_addresses={self.host} "
                    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
                )
                result = self._run(
                    "pg_ctl", "-D", str(self.data_dir), "-o", options, "-l", str(self.log_path),
                    "-t", str(int(self._start_timeout_s)), "-w", "start",
                    check=False,
                )  # fmt: skip
                if result.returncode == 0:
                    self._running = True
                    return self
                last_error = f"{result.stdout}{result.stderr}{self._log_tail()}"
                if "already in use" not in last_error:
                    break
            raise RuntimeError(f"PostgreSQL did not start: {last_error.strip()}")
        except BaseException:
            self._cleanup_workdir()
            raise

    def stop(self) -> None:
        if self._running:
            self._running = False
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop", check=False)
        self._cleanup_workdir()

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def create_database(self, name: str) -> str:
        """CREATE DATABASE `name` and return its URL."""
        import psycopg  # only this helper needs the driver

        if not _DB_NAME.match(name):
            raise ValueError(f"database name {name!r} must match {_DB_NAME.pattern}")
        with psycopg.connect(self.conninfo(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / tool), *args]
        if self._owner is not None:
            command = ["runuser", "-u", self._owner.pw_name, "--", *command]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=False,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{tool} {' '.join(args)} failed ({result.returncode}): "
                f"{result.stdout}{result.stderr}{self._log_tail()}".strip()
            )
        return result

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def _cleanup_workdir(self) -> None:
        if self._workdir is not None and self._given_workdir is None:
            shutil.rmtree(self._workdir, ignore_errors=True)
        self._workdir = None
