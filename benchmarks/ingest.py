"""Backfill ingestion rate of pocwatch's sync against a bare imapclient fetch, in one run.

Run from the repository root:

    .venv/bin/python benchmarks/ingest.py [--messages 20000] [--rounds 2] [--postgres] [--json]

It starts a private Dovecot on loopback, writes N realistic messages (tests/traffic.py
bulk_messages: about 4 KB each, 1.7 KB of headers, threads of 1 to 6, dates spread over the
last 13 days) straight into one user's INBOX Maildir, then times, alternating round by round:

- baseline: a bare imapclient client logs in, EXAMINEs INBOX, SEARCHes SINCE the backfill
  start and FETCHes every UID with the same items as monitor/imap.py (FETCH_ITEMS), in batches
  of the same size as pocwatch's default fetch_batch (500), over the same connection security;
- pocwatch: monitor.sync.sync_all with a config pointing at that Dovecot, into a fresh SQLite
  database (and, with --postgres, a fresh database on a private PostgreSQL), in a child
  process that runs only the sync, so its peak RSS (VmHWM) is the sync's own; the parser
  process a big backfill starts (monitor/parse_worker.py) is reported beside it.

One untimed baseline pass first warms Dovecot's index cache, so neither side pays for it. The
figure kept for each side is the best (highest rate) of its rounds. The pocwatch/baseline ratio
target is >= 0.5 (product.md, "Fast"); the peak RSS target is < 300 MB at 100k messages.
Connection security defaults to "none" (plain IMAP on loopback) for both sides; --security tls
uses implicit TLS (IMAPS) for both.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BACKFILL = timedelta(days=14)
BATCH_SIZE = 500  # monitor.config MonitorConfig.fetch_batch and monitor.sync SyncOptions
TARGET_RATIO = 0.5
TARGET_RSS_MB = 300.0
USER = "bench"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000, help="messages to seed (20000)")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds per side (2)")
    parser.add_argument("--postgres", action="store_true", help="also sync into PostgreSQL")
    parser.add_argument("--security", choices=("none", "tls"), default="none")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--profile", metavar="PATH", help="write cProfile stats of the first SQLite sync to PATH"
    )
    parser.add_argument("--sync-child", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sync_child:
        return _sync_child(Path(args.sync_child), args.profile)
    if args.messages < 1 or args.rounds < 1:
        parser.error("--messages and --rounds must be at least 1")
    figures = run(
        args.messages,
        args.rounds,
        postgres=args.postgres,
        security=args.security,
        profile=args.profile,
    )
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        _print_report(figures)
    stores = [figures["sqlite"], *([figures["postgresql"]] if args.postgres else [])]
    return 0 if all(s["stored_ok"] for s in stores) else 1


# -- the parent: servers, seeding, alternating rounds ---------------------------------------


def run(
    count: int, rounds: int, *, postgres: bool, security: str, profile: str | None = None
) -> dict[str, Any]:
    from tests.servers import DovecotServer, PostgresServer
    from tests.traffic import bulk_messages

    now = datetime.now(UTC).replace(microsecond=0)
    results: dict[str, list[dict[str, Any]]] = {"baseline": [], "sqlite": []}
    if postgres:
        results["postgresql"] = []
    pg: PostgresServer | None = None
    with DovecotServer() as dovecot, tempfile.TemporaryDirectory(prefix="pocwatch-ingest-") as tmp:
        user = dovecot.add_user(USER)
        started = time.perf_counter()
        uids = user.write_maildir(
            "INBOX",
            (
                (raw, when, ("\\Seen",))
                for raw, when in bulk_messages(count, end=now - timedelta(minutes=5))
            ),
        )
        seed_s = time.perf_counter() - started
        if len(uids) != count:
            raise RuntimeError(f"seeded {len(uids)} messages, wanted {count}")
        _log(f"seeded {count} messages in {seed_s:.1f} s")
        port = user.imaps_port if security == "tls" else user.imap_port
        try:
            if postgres:
                pg = PostgresServer().start()
            _baseline(dovecot, security, now, count)  # untimed: warms Dovecot's caches
            for n in range(1, rounds + 1):
                figure = _baseline(dovecot, security, now, count)
                results["baseline"].append(figure)
                _log(f"round {n} baseline: {figure['msg_s']:.0f} msg/s")
                targets = [("sqlite", f"sqlite:///{tmp}/round{n}.db")]
                if pg is not None:
                    targets.append(("postgresql", pg.create_database(f"ingest_round{n}")))
                for name, url in targets:
                    config = _write_config(Path(tmp), n, name, url, dovecot, port, security)
                    profile_to = profile if (n, name) == (1, "sqlite") else None
                    figure = _pocwatch(config, profile_to)
                    results[name].append(figure)
                    _log(
                        f"round {n} pocwatch/{name}: {figure['msg_s']:.0f} msg/s, "
                        f"peak RSS {figure['peak_rss_mb']:.0f} MB"
                    )
        finally:
            if pg is not None:
                pg.stop()
    return _figures(results, count, rounds, security, seed_s)


def _baseline(dovecot: Any, security: str, now: datetime, count: int) -> dict[str, Any]:
    """A bare imapclient pass: login, EXAMINE, SEARCH SINCE, FETCH in batches; timed whole."""
    from monitor.imap import FETCH_ITEMS

    items = list(FETCH_ITEMS)
    started = time.perf_counter()
    client = dovecot.connect(USER, tls="implicit" if security == "tls" else "none")
    try:
        client.select_folder("INBOX", readonly=True)
        uids = sorted(client.search(["SINCE", (now - BACKFILL).date()]))
        fetched = 0
        for i in range(0, len(uids), BATCH_SIZE):
            fetched += len(client.fetch(uids[i : i + BATCH_SIZE], items))
    finally:
        client.logout()
    elapsed = time.perf_counter() - started
    if fetched != count:
        raise RuntimeError(f"baseline fetched {fetched} messages, wanted {count}")
    return {"seconds": elapsed, "msg_s": fetched / elapsed, "fetched": fetched}


def _write_config(
    tmp: Path, n: int, name: str, url: str, dovecot: Any, port: int, security: str
) -> Path:
    ca_line = f'ca_file = "{dovecot.ca_file}"\n' if security == "tls" else ""
    path = tmp / f"round{n}-{name}.toml"
    path.write_text(
        f"""
[monitor]
database = "{url}"
internal_domains = ["example.com"]
backfill = "{BACKFILL.days}d"
fetch_batch = {BATCH_SIZE}

[[mailboxes]]
name = "{USER}"
host = "127.0.0.1"
port = {port}
security = "{security}"
{ca_line}username = "{USER}"
password = "{dovecot.password(USER)}"
folders = ["INBOX"]
""",
        encoding="utf-8",
    )
    return path


def _pocwatch(config: Path, profile: str | None) -> dict[str, Any]:
    """Run the sync in a child process (only the sync): its figures come back as JSON."""
    extra = ["--profile", str(Path(profile).resolve())] if profile else []
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--sync-child", str(config), *extra],
        stdout=subprocess.PIPE,
        check=False,
        cwd=REPO,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the sync child failed with exit code {proc.returncode}")
    figure: dict[str, Any] = json.loads(proc.stdout)
    return figure


# -- the child: one sync, nothing else ------------------------------------------------------


def _sync_child(config_path: Path, profile: str | None) -> int:
    from monitor.storage.db import open_database
    from monitor.storage.messages import MessageStore
    from monitor.sync import SyncOptions, sync_all
    from rules.registry import load_config

    config = load_config(config_path)
    with MessageStore(open_database(config.monitor.database)) as store:
        rss_before_mb = _proc_status_mb("VmRSS")
        watcher = _ChildMemory()
        profiler = cProfile.Profile() if profile else None
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        [result] = sync_all(
            config,
            store,
            now=datetime.now(UTC),
            options=SyncOptions(batch_size=config.monitor.fetch_batch),
        )
        if profiler and profile:
            profiler.disable()
            profiler.dump_stats(profile)
        elapsed = time.perf_counter() - started
        peak_mb = _proc_status_mb("VmHWM")
        parser_peak_mb = watcher.stop()
        if result.error:
            print(f"sync failed: {result.error}", file=sys.stderr)
            return 1
        figure = {
            "seconds": elapsed,
            "msg_s": result.total("fetched") / elapsed,
            "fetched": result.total("fetched"),
            "new_messages": result.total("new_messages"),
            "stored": store.message_count(),
            "threads": store.thread_count(),
            "unthreaded": store.unthreaded_count(),
            "peak_rss_mb": peak_mb,
            "parser_peak_rss_mb": parser_peak_mb,
            "rss_before_sync_mb": rss_before_mb,
        }
    print(json.dumps(figure))
    return 0


class _ChildMemory(threading.Thread):
    """The peak RSS of this process's children (the parser process), sampled from /proc while
    they run: getrusage would count the parent's pages a child held between fork and exec."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_mb = 0.0
        self._stop_event = threading.Event()
        self.start()

    def run(self) -> None:
        while not self._stop_event.wait(0.5):  # VmHWM only grows: a sample late is fine
            # Only this process's own children, listed by each of its threads: scanning every
            # process on the machine would take the GIL from the sync being timed.
            for listing in Path("/proc/self/task").glob("*/children"):
                try:
                    children = listing.read_text().split()
                except OSError:
                    continue  # the thread ended meanwhile
                for pid in children:
                    try:
                        self.peak_mb = max(self.peak_mb, _proc_status_mb("VmHWM", pid))
                    except (OSError, RuntimeError):
                        continue  # gone meanwhile

    def stop(self) -> float:
        self._stop_event.set()
        self.join()
        return self.peak_mb


def _proc_status_mb(field: str, pid: str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"{field} not in /proc/self/status")


# -- figures --------------------------------------------------------------------------------


def _figures(
    results: dict[str, list[dict[str, Any]]], count: int, rounds: int, security: str, seed_s: float
) -> dict[str, Any]:
    baseline = max(r["msg_s"] for r in results["baseline"])
    out: dict[str, Any] = {
        "messages": count,
        "rounds": rounds,
        "aggregate": "best of rounds (highest msg/s); peak RSS is the highest of the rounds",
        "security": security,
        "batch_size": BATCH_SIZE,
        "seed_seconds": round(seed_s, 1),
        "baseline": {
            "msg_s": round(baseline, 1),
            "median_msg_s": round(statistics.median(r["msg_s"] for r in results["baseline"]), 1),
            "runs": results["baseline"],
        },
        "machine": _machine(),
    }
    for name in ("sqlite", "postgresql"):
        runs = results.get(name)
        if not runs:
            continue
        best = max(runs, key=lambda r: r["msg_s"])
        peak = max(r["peak_rss_mb"] for r in runs)
        out[name] = {
            "msg_s": round(best["msg_s"], 1),
            "median_msg_s": round(statistics.median(r["msg_s"] for r in runs), 1),
            "ratio": round(best["msg_s"] / baseline, 3),
            "ratio_ok": best["msg_s"] / baseline >= TARGET_RATIO,
            "peak_rss_mb": round(peak, 1),
            "parser_peak_rss_mb": round(max(r["parser_peak_rss_mb"] for r in runs), 1),
            "stored": best["stored"],
            "stored_ok": all(r["stored"] == count for r in runs),
            "threads": best["threads"],
            "unthreaded": best["unthreaded"],
            "runs": runs,
        }
    out["targets"] = {"ratio_min": TARGET_RATIO, "peak_rss_mb_max_at_100k": TARGET_RSS_MB}
    return out


def _machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        dovecot = subprocess.run(
            ["dovecot", "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        dovecot = ""
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "dovecot": dovecot,
        "platform": platform.platform(),
    }


def _print_report(f: dict[str, Any]) -> None:
    m = f["machine"]
    print(
        f"ingest benchmark: {f['messages']} messages, security={f['security']}, "
        f"batches of {f['batch_size']}, best of {f['rounds']} round(s)"
    )
    print(
        f"machine: {m['cpus']} CPU(s) {m['cpu']}, Python {m['python']}, "
        f"SQLite {m['sqlite']}, Dovecot {m['dovecot']}"
    )
    print(f"  baseline (bare imapclient fetch): {f['baseline']['msg_s']:9.0f} msg/s")
    for name in ("sqlite", "postgresql"):
        s = f.get(name)
        if s is None:
            continue
        ratio_note = "ok" if s["ratio_ok"] else f"below {TARGET_RATIO}"
        stored_note = "ok" if s["stored_ok"] else f"WRONG, expected {f['messages']}"
        print(
            f"  pocwatch sync -> {name + ':':11} {s['msg_s']:9.0f} msg/s   "
            f"ratio {s['ratio']:.2f} ({ratio_note})   peak RSS {s['peak_rss_mb']:.0f} MB "
            f"(+ parser process {s['parser_peak_rss_mb']:.0f} MB)   "
            f"stored {s['stored']} ({stored_note})   threads {s['threads']}"
        )


def _log(text: str) -> None:
    print(f"[ingest] {text}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
