"""The `pocwatch` command as users run it: a real process against a real Dovecot."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, func, select

from monitor.storage.models import MessageRow
from tests.servers import MailUser
from tests.test_sync import customer_mail, write_config
from tests.traffic import bulk_messages, render

NOW = datetime.now(UTC).replace(microsecond=0)
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def pocwatch(
    *args: str,
    config: Path | None = None,
    timeout_s: float = 120,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "monitor.cli"]
    if config is not None:
        command += ["-c", str(config)]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=timeout_s, check=False, env=env
    )


def count_messages(url: str) -> tuple[int, int]:
    """(rows, distinct Message-IDs) in the store behind `url`."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.scalar(select(func.count()).select_from(MessageRow)) or 0
            distinct = conn.scalar(select(func.count(func.distinct(MessageRow.message_id)))) or 0
            return rows, distinct
    finally:
        engine.dispose()


def test_check_config_accepts_the_example(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parent.parent / "config.example.toml"
    done = pocwatch("check-config", config=example)
    assert done.returncode == 0, done.stderr
    assert "OK" in done.stdout


def test_check_config_names_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        '[monitor]\ninternal_domains = ["example.com"]\npoll_intervall = "2m"\n\n'
        '[[mailboxes]]\nname = "support"\nhost = "imap.example.com"\n'
        'port = "993"\nusername = "u"\npassword = "p"\n'
    )
    done = pocwatch("check-config", config=path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert any(
        line.startswith(f"{path}:3: monitor.poll_intervall: ") and "poll_interval" in line
        for line in lines
    ), lines
    assert any(line.startswith(f"{path}:8: mailboxes[0].port: ") for line in lines), lines
    assert "Traceback" not in done.stderr


def test_config_defaults_to_pocwatch_config_then_cwd(tmp_path: Path) -> None:
    (tmp_path / "pocwatch.toml").write_text("[monitor]\nnot_valid = 1\n")
    env = {k: v for k, v in os.environ.items() if k != "POCWATCH_CONFIG"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    done = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "check-config"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 2 and "pocwatch.toml:2: monitor.not_valid" in done.stderr


# -- errors a user can make, without a server -----------------------------------------------------


def offline_config(tmp_path: Path, database: str, *, timezone: str = "UTC") -> Path:
    """A valid config whose one mailbox is never reached by the commands these tests run."""
    path = tmp_path / "cur.toml"
    path.write_text(
        f'[monitor]\ndatabase = "{database}"\ninternal_domains = ["example.com"]\n'
        f'timezone = "{timezone}"\n\n[[mailboxes]]\nname = "support"\nhost = "127.0.0.1"\n'
        'port = 1\nsecurity = "none"\nusername = "u"\npassword = "p"\n'
    )
    return path


def one_error_line(done: subprocess.CompletedProcess[str], exit_code: int) -> str:
    """The one line a failing command prints on stderr (no traceback, no log records)."""
    assert done.returncode == exit_code, done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    return done.stderr.rstrip("\n")


def test_check_config_refuses_a_database_pocwatch_cannot_open(tmp_path: Path) -> None:
    path = offline_config(tmp_path, "mysql://x/y")
    line = one_error_line(pocwatch("check-config", config=path), 2)
    assert line.startswith(f"{path}:2: monitor.database: the driver for 'mysql' is not"), line


def test_a_database_directory_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    path = offline_config(tmp_path, "sqlite:////proc/nope/x.db")
    line = one_error_line(pocwatch("threads", config=path), 1)
    assert line.startswith(
        "pocwatch: database sqlite:////proc/nope/x.db: cannot create the directory /proc/nope: "
    ), line


def test_an_unreachable_database_is_one_line_without_its_password(tmp_path: Path) -> None:
    port = _closed_port()
    url = f"postgresql+psycopg://nobody:s3kr1t@127.0.0.1:{port}/x"
    line = one_error_line(pocwatch("threads", config=offline_config(tmp_path, url)), 1)
    masked = f"postgresql+psycopg://nobody:***@127.0.0.1:{port}/x"
    assert line.startswith(f"pocwatch: database {masked}: connection failed"), line
    assert "s3kr1t" not in line


def test_now_outside_the_range_pocwatch_evaluates_is_refused(tmp_path: Path) -> None:
    path = offline_config(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", timezone="Europe/London")
    for now in ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        line = one_error_line(pocwatch("explain", "some-thread", "--now", now, config=path), 2)
        assert line.startswith(f"pocwatch: --now: {now!r} is out of range"), line
    line = one_error_line(pocwatch("violations", "--now", "yesterday", config=path), 2)
    assert "is not an ISO 8601 time" in line


def test_sync_then_threads_json(imap_user: MailUser, tmp_path: Path, database_url: str) -> None:
    t = NOW - timedelta(days=1)
    imap_user.append("INBOX", customer_mail(1, t, frm="Bob <Bob@Acme.com>"), internal_date=t)
    imap_user.append(
        "Sent",
        render(
            frm="Priya <priya@example.com>",
            to="bob@acme.com",
            subject="Re: Question 1",
            date=t + timedelta(hours=1),
            message_id="<a1@example.com>",
            in_reply_to="<q1@client.example>",
            references="<q1@client.example>",
            body="Done.",
        ),
        internal_date=t + timedelta(hours=1),
    )
    imap_user.append(
        "INBOX",
        customer_mail(2, t + timedelta(hours=2), frm="Eve <eve@nowhere.example>"),
        internal_date=t + timedelta(hours=2),
    )
    path = write_config(tmp_path, database_url, [imap_user], extra='timezone = "Asia/Kolkata"')
    path.write_text(
        path.read_text() + '\n[[accounts]]\nname = "Acme"\ndomains = ["acme.com"]\n'
        'owner = "priya@example.com"\nbackup = "sam@example.com"\n'
    )
    done = pocwatch("sync", config=path)
    assert done.returncode == 0, done.stderr
    assert "3 new" in done.stdout
    listed = pocwatch("threads", "--format", "json", config=path)
    assert listed.returncode == 0, listed.stderr
    threads = {t["thread_id"]: t for t in json.loads(listed.stdout)}
    assert set(threads) == {"<q1@client.example>", "<q2@client.example>"}
    acme = threads["<q1@client.example>"]
    assert acme["account"] == "Acme" and acme["owner"] == "priya@example.com"
    assert acme["backup"] == "sam@example.com"
    assert acme["message_ids"] == ["<q1@client.example>", "<a1@example.com>"]
    assert ISO_Z.match(acme["last_inbound_at"]) and ISO_Z.match(acme["last_outbound_at"])
    assert acme["awaiting_reply"] is False
    other = threads["<q2@client.example>"]
    assert (other["account"], other["owner"], other["backup"]) == (None, None, None)
    assert other["last_outbound_at"] is None and other["awaiting_reply"] is True
    only = pocwatch("threads", "--account", "Acme", "--format", "json", config=path)
    assert [t["thread_id"] for t in json.loads(only.stdout)] == ["<q1@client.example>"]
    table = pocwatch("threads", config=path)
    assert table.returncode == 0 and "Acme" in table.stdout
    # Times in monitor.timezone, as in the other tables.
    arrived = (t + timedelta(hours=2)).astimezone(ZoneInfo("Asia/Kolkata"))
    row = next(r for r in table.stdout.splitlines() if "q2@client" in r)
    assert arrived.strftime("%Y-%m-%d %H:%M") in row
    assert table.stdout.endswith("(times in Asia/Kolkata)\n")


def test_unknown_mailbox_or_account_exits_2(imap_user: MailUser, tmp_path: Path) -> None:
    path = write_config(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", [imap_user])
    assert pocwatch("sync", "--mailbox", "nope", config=path).returncode == 2
    done = pocwatch("threads", "--account", "nope", config=path)
    assert done.returncode == 2 and "unknown account 'nope'" in done.stderr


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_failing_mailbox_is_one_clear_line_and_the_others_still_sync(
    dovecot: object, imap_user: MailUser, tmp_path: Path
) -> None:
    server = imap_user.server
    good = imap_user
    wrong = server.add_user(f"wrong-{os.getpid()}-{time.monotonic_ns()}")
    good.append("INBOX", customer_mail(1, NOW - timedelta(hours=1)))
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    path = write_config(tmp_path, url, [wrong, good], passwords={wrong.name: "not-the-password"})
    text = (
        path.read_text()
        + f"""
[[mailboxes]]
name = "down"
host = "127.0.0.1"
port = {_closed_port()}
security = "none"
username = "x"
password = "y"
"""
    )
    path.write_text(text)
    done = pocwatch("sync", config=path)
    assert done.returncode == 1
    errors = done.stderr.splitlines()  # one line each: no log records, no retry notices
    assert len(errors) == 2, done.stderr
    assert errors[0].startswith(f"pocwatch: mailbox '{wrong.name}': login refused"), errors
    assert errors[1].startswith("pocwatch: mailbox 'down': cannot connect"), errors
    assert "not-the-password" not in done.stderr + done.stdout
    assert "synced 1/3 mailbox(es)" in done.stdout
    assert count_messages(url) == (1, 1)
    verbose = pocwatch("-v", "sync", "--mailbox", "down", config=path)
    assert "mailbox 'down': cannot connect" in verbose.stderr
    assert "(attempt 1 of 3)" in verbose.stderr  # retries show with -v


def test_a_missing_folder_fails_the_sync_and_the_others_still_sync(
    imap_user: MailUser, tmp_path: Path
) -> None:
    imap_user.append("INBOX", customer_mail(1, NOW - timedelta(hours=1)))
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    path = write_config(tmp_path, url, [imap_user], folders=("INBOX", "Nope"))
    done = pocwatch("sync", config=path)
    line = one_error_line(done, 1)
    assert line.startswith(f"pocwatch: mailbox '{imap_user.name}': cannot open folder 'Nope': ")
    assert "1 new" in done.stdout and f"failed: {imap_user.name}/Nope" in done.stdout
    assert count_messages(url) == (1, 1)


def test_a_sync_killed_mid_way_and_run_again_stores_every_message_once(
    imap_user: MailUser, tmp_path: Path, database_url: str
) -> None:
    total = 3000
    imap_user.write_maildir(
        "INBOX", ((raw, when, ("\\Seen",)) for raw, when in bulk_messages(total, end=NOW))
    )
    path = write_config(tmp_path, database_url, [imap_user], folders=("INBOX",), fetch_batch=25)
    command = [sys.executable, "-m", "monitor.cli", "-c", str(path), "sync"]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    stored = 0
    try:
        while time.monotonic() < deadline and child.poll() is None:
            try:
                stored = count_messages(database_url)[0]
            except Exception:  # the schema may not exist yet
                stored = 0
            if stored >= 200:
                break
            time.sleep(0.05)
        assert child.poll() is None, "sync finished before it could be killed"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
        assert child.stderr is not None
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    partial = count_messages(database_url)[0]
    assert 0 < partial < total
    again = pocwatch("sync", config=path, timeout_s=300)
    assert again.returncode == 0, again.stderr
    assert count_messages(database_url) == (total, total)
    listed = json.loads(pocwatch("threads", "--format", "json", config=path).stdout)
    assert sum(len(t["message_ids"]) for t in listed) == total


def test_a_long_first_sync_on_a_terminal_shows_progress(
    imap_user: MailUser, tmp_path: Path
) -> None:
    import pty

    imap_user.write_maildir("INBOX", ((raw, when, ()) for raw, when in bulk_messages(600, end=NOW)))
    path = write_config(
        tmp_path,
        f"sqlite:///{tmp_path / 'db.sqlite'}",
        [imap_user],
        folders=("INBOX",),
        fetch_batch=100,
    )
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "monitor.cli", "-c", str(path), "sync"],
            stdout=follower,
            stderr=subprocess.PIPE,
            timeout=120,
            check=False,
        )
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
    assert done.returncode == 0
    progress = done.stderr.decode()
    assert f"{imap_user.name}/INBOX [" in progress and "600/600" in progress
    assert "600 new" in shown.decode()


def test_piped_output_has_no_progress_bar(imap_user: MailUser, tmp_path: Path) -> None:
    imap_user.write_maildir("INBOX", ((raw, when, ()) for raw, when in bulk_messages(600, end=NOW)))
    path = write_config(
        tmp_path,
        f"sqlite:///{tmp_path / 'db.sqlite'}",
        [imap_user],
        folders=("INBOX",),
        fetch_batch=100,
    )
    done = pocwatch("sync", config=path)
    assert done.returncode == 0 and "600 new" in done.stdout
    assert "[#" not in done.stderr
