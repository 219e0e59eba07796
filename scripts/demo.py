"""Demo: a private Dovecot with a week of shared-inbox traffic, then the real `pocwatch` CLI.

Everything printed under a `$ pocwatch ...` line is what that command wrote, unedited.
The thread to explain is chosen by asking the real CLI for `violations --all --format json`
(not shown): the first conflict, else the first violation.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.servers.dovecot import DovecotServer  # noqa: E402
from tests.traffic import demo_week  # noqa: E402

CONFIG = """\
# Demo configuration written by scripts/demo.py (a private Dovecot on loopback).
[monitor]
database = "sqlite:///pocwatch.db"
internal_domains = ["example.com"]
admins = ["ops@example.com"]
timezone = "Europe/London"
backfill = "14d"

[[mailboxes]]
name = "support"
host = "127.0.0.1"
port = {port}
security = "tls"
ca_file = "{ca_file}"
username = "support@example.com"
password_env = "DEMO_SUPPORT_PASSWORD"
folders = ["INBOX", "Sent"]

[[mailboxes]]
name = "sales"
host = "127.0.0.1"
port = {port}
security = "tls"
ca_file = "{ca_file}"
username = "sales@example.com"
password_env = "DEMO_SALES_PASSWORD"
folders = ["INBOX", "Sent"]

[calendars.default]
timezone = "Europe/London"
days = ["mon", "tue", "wed", "thu", "fri"]
hours = "09:00-17:30"

[rules.unacknowledged]
sla = "4h"
warn_at = 0.75

[[accounts]]
name = "Acme"
domains = ["acme.com"]
owner = "priya@example.com"
backup = "sam@example.com"
sla = "2h"

[[accounts]]
name = "Globex"
domains = ["globex.example.org"]
owner = "lee@example.com"
backup = "priya@example.com"

[[accounts]]
name = "Initech"
domains = ["initech.example"]
owner = "ana@example.com"
backup = "sam@example.com"
"""


def _command() -> list[str]:
    cli = REPO / ".venv" / "bin" / "pocwatch"
    return [str(cli)] if cli.exists() else [sys.executable, "-m", "monitor.cli"]


def run(workdir: Path, *args: str, env: dict[str, str]) -> int:
    """Run the real CLI and print exactly what it wrote."""
    print(f"\n$ {shlex.join(['pocwatch', *args])}", flush=True)
    done = subprocess.run([*_command(), *args], cwd=workdir, env=env, check=False)
    return done.returncode


def thread_to_explain(workdir: Path, env: dict[str, str]) -> str | None:
    """Ask the real CLI (output not shown) which threads have violations; pick a conflict."""
    done = subprocess.run(
        [*_command(), "violations", "--all", "--format", "json"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        return None
    found = json.loads(done.stdout)
    conflicts = [v for v in found if v["rule"] == "conflicting_replies"]
    chosen = (conflicts or found or [None])[0]
    return chosen["thread_id"] if chosen else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--keep", action="store_true", help="leave the work directory (config, database) in place"
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="pocwatch-demo-"))
    passwords = {"support@example.com": "support-demo-pw", "sales@example.com": "sales-demo-pw"}
    with DovecotServer() as dovecot:
        for user, password in passwords.items():
            dovecot.add_user(user, password)
        seeds = demo_week(datetime.now(UTC))
        for seed in seeds:
            dovecot.append(
                seed.user, seed.folder, seed.raw, flags=seed.flags, internal_date=seed.internal_date
            )
        print(
            f"Private Dovecot on 127.0.0.1:{dovecot.imaps_port} (TLS, its own CA), "
            f"seeded with {len(seeds)} messages in support@ and sales@ (INBOX and Sent)."
        )
        (workdir / "pocwatch.toml").write_text(
            CONFIG.format(port=dovecot.imaps_port, ca_file=dovecot.ca_file), encoding="utf-8"
        )
        env = dict(
            os.environ,
            POCWATCH_CONFIG=str(workdir / "pocwatch.toml"),
            DEMO_SUPPORT_PASSWORD=passwords["support@example.com"],
            DEMO_SALES_PASSWORD=passwords["sales@example.com"],
        )
        status = 0
        for command in (["check-config"], ["sync"], ["sync"], ["threads"], ["violations", "--all"]):
            status = run(workdir, *command, env=env) or status
        thread_id = thread_to_explain(workdir, env)
        if thread_id is None:
            print("\nNo violation found: nothing to explain.")
            status = status or 1
        else:
            status = run(workdir, "explain", thread_id, env=env) or status
    if args.keep:
        print(f"\nWork directory kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
