"""Incremental evaluation against a full re-evaluation after 100 new messages, in one run.

Run from the repository root (never in CI):

    .venv/bin/python benchmarks/evaluate.py [--threads 100000] [--postgres] [--json]

It fills a fresh store (an SQLite file in a temp dir; with --postgres, a database on a
private PostgreSQL) with N threads of support traffic over the last 30 days: a customer's
question, then none to a few replies from our people, the customer chasing, out-of-office and
auto-replies, some messages stored \\Answered. Messages go in through MessageStore.store_batch
(threaded in the batch, as sync does) in large batches, built with tests/builders; no IMAP.

One full evaluation settles the violation store ten minutes before `now`. Then 100 messages
arrive (replies to random existing threads and a few new threads). The store is copied (the
SQLite backup API; PostgreSQL: CREATE DATABASE ... TEMPLATE), and on the two identical copies
the script times, as of the same `now`:

- incremental: monitor.evaluation.evaluate_incremental (the changed and the due threads);
- full: monitor.evaluation.evaluate_full (every thread).

It prints both times, their ratio (target: incremental at least 100x faster), the threads the
incremental pass touched against the changed + due threads (target: only those), and checks
that both copies end with the same violations.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import platform
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from monitor.evaluation import evaluate_full, evaluate_incremental  # noqa: E402
from monitor.records import Automatic, FetchedMessage, MessageRecord  # noqa: E402
from monitor.storage.db import open_database  # noqa: E402
from monitor.storage.messages import MessageStore  # noqa: E402
from monitor.storage.violations import ViolationStore  # noqa: E402
from tests.builders import is_external, make_message, make_reply  # noqa: E402
from tests.rule_scenarios import PRIYA, SAM, SUPPORT, make_config  # noqa: E402

NOW = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)  # a Wednesday, in London business hours
SETTLED = NOW - timedelta(minutes=10)  # the last pass before the new messages
DAYS = 30
NEW_MESSAGES = 100
NEW_THREADS = 10  # of the new messages, fresh questions; the rest are replies
BATCH = 5000
TARGET_RATIO = 100.0
MAILBOX, FOLDER = "support", "INBOX"
CUSTOMERS = [f"user{i}@client.example" for i in range(50)] + [
    f"someone{i}@stranger.example" for i in range(20)
]
M = timedelta(minutes=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=100_000, help="threads to seed (100000)")
    parser.add_argument("--postgres", action="store_true", help="a PostgreSQL store, not SQLite")
    parser.add_argument("--seed", type=int, default=1, help="random seed (1)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--profile", metavar="PREFIX", help="write cProfile stats to PREFIX.{incremental,full}"
    )
    args = parser.parse_args(argv)
    if args.threads < NEW_MESSAGES:
        parser.error(f"--threads must be at least {NEW_MESSAGES}")
    figures = run(args.threads, postgres=args.postgres, seed=args.seed, profile=args.profile)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        _print_report(figures)
    return 0 if figures["same_violations"] else 1


# -- traffic ----------------------------------------------------------------------------------


class Traffic:
    """Generated messages, and each thread's messages (for replies that arrive later)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.threads: list[list[MessageRecord]] = []
        self.answered: set[str] = set()
        self.n = 0

    def question(self, when: datetime) -> MessageRecord:
        self.n += 1
        frm = self.rng.choice(CUSTOMERS)
        message = make_message(f"q{self.n}.bench", when, subject=f"Question {self.n}", frm=frm)
        self.threads.append([message])
        return message

    def thread(self, when: datetime) -> list[MessageRecord]:
        """One conversation starting at `when`: its messages up to SETTLED."""
        rng = self.rng
        question = self.question(when)
        out = [question]
        fate = rng.random()
        if fate < 0.2:
            return out  # never answered (yet)
        t = when + rng.randint(5, 60 * 20) * M
        if fate < 0.3:
            self.answered.add(question.message_id)  # answered from elsewhere: only the flag
            return out
        if fate < 0.35:
            out.append(
                make_reply(question, f"h{self.n}.bench", when + M, automatic=Automatic.AUTO_REPLY)
            )
        if fate < 0.4:
            out.append(
                make_reply(
                    question,
                    f"c{self.n}.bench",
                    when + rng.randint(60, 60 * 30) * M,
                    frm=question.from_addr,
                    to=SUPPORT,
                )
            )
        if 0.398 < fate < 0.4:  # an owner's out-of-office: about 1 thread in 500
            out.append(
                make_reply(
                    question,
                    f"o{self.n}.bench",
                    when + 2 * M,
                    frm=PRIYA,
                    to=question.from_addr or SUPPORT,
                    automatic=Automatic.OUT_OF_OFFICE,
                )
            )
        first = make_reply(question, f"r{self.n}.bench", t, frm=rng.choice([PRIYA, SAM]))
        out.append(first)
        if fate < 0.5:
            other = SAM if first.from_addr == PRIYA else PRIYA
            out.append(
                make_reply(question, f"s{self.n}.bench", t + rng.randint(5, 90) * M, frm=other)
            )
        elif fate < 0.8:
            back = make_reply(
                first,
                f"b{self.n}.bench",
                t + rng.randint(30, 60 * 24) * M,
                frm=question.from_addr,
                to=SUPPORT,
            )
            out.append(back)
            if fate < 0.7:
                out.append(
                    make_reply(back, f"e{self.n}.bench", back.time + rng.randint(10, 600) * M)
                )
        kept = [m for m in out if m.time <= SETTLED]
        self.threads[-1] = kept
        return kept

    def reply_to_random(self, when: datetime) -> MessageRecord:
        thread = self.rng.choice(self.threads)
        parent = thread[-1]
        self.n += 1
        frm = parent.to_addrs[0] if parent.to_addrs else SUPPORT
        if not is_external(frm):
            frm = self.rng.choice([PRIYA, SAM])
        reply = make_reply(parent, f"n{self.n}.bench", when, frm=frm)
        thread.append(reply)
        return reply


def seed_messages(traffic: Traffic, threads: int) -> list[MessageRecord]:
    start = SETTLED - DAYS * timedelta(days=1)
    span = int((SETTLED - start).total_seconds()) - 60
    messages: list[MessageRecord] = []
    for _ in range(threads):
        when = start + timedelta(seconds=traffic.rng.randint(0, span))
        messages.extend(traffic.thread(when))
    messages.sort(key=lambda m: (m.time, m.message_id))
    return messages


def new_messages(traffic: Traffic) -> list[MessageRecord]:
    out: list[MessageRecord] = []
    for i in range(NEW_MESSAGES):
        when = SETTLED + timedelta(seconds=5 * (i + 1))
        if i % (NEW_MESSAGES // NEW_THREADS) == 0:
            out.append(traffic.question(when))
        else:
            out.append(traffic.reply_to_random(when))
    return out


class Mailbox:
    """Puts records into the store as sync would: threaded in the batch."""

    def __init__(self, store: MessageStore, answered: set[str]) -> None:
        self.store = store
        self.answered = answered
        self.uid = 0

    def put(self, records: list[MessageRecord]) -> None:
        for chunk in _chunks(records, BATCH):
            fetched = []
            for record in chunk:
                self.uid += 1
                flags = ("\\Answered",) if record.message_id in self.answered else ()
                fetched.append(FetchedMessage(MAILBOX, FOLDER, self.uid, flags, record))
            self.store.store_batch(
                MAILBOX, FOLDER, fetched, last_seen_uid=self.uid, is_external=is_external
            )


def _chunks(items: list[MessageRecord], size: int) -> Iterator[list[MessageRecord]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# -- the run ----------------------------------------------------------------------------------


def run(threads: int, *, postgres: bool, seed: int, profile: str | None) -> dict[str, Any]:
    config = make_config()
    traffic = Traffic(seed)
    with tempfile.TemporaryDirectory(prefix="pocwatch-evaluate-") as tmp:
        pg = None
        try:
            if postgres:
                from tests.servers import PostgresServer

                pg = PostgresServer().start()
                base_url = pg.create_database("evaluate_base")
            else:
                base_url = f"sqlite:///{tmp}/base.db"
            started = time.perf_counter()
            messages = seed_messages(traffic, threads)
            engine = open_database(base_url)
            store, violations = MessageStore(engine), ViolationStore(engine)
            Mailbox(store, traffic.answered).put(messages)
            seed_s = time.perf_counter() - started
            thread_count = store.thread_count()
            _log(f"seeded {len(messages)} messages in {thread_count} threads in {seed_s:.1f} s")
            started = time.perf_counter()
            evaluate_full(config, store, violations, SETTLED)
            settle_s = time.perf_counter() - started
            _log(f"settled: {settle_s:.1f} s, {len(violations.all())} violations")
            arriving = new_messages(traffic)
            Mailbox(store, set()).put(arriving)
            # The same question "which threads should a pass look at" answered independently:
            # threads holding a new message, and threads due by NOW.
            arrived_in = {store.thread_of(m.message_id) for m in arriving}
            due = violations.due_threads(NOW)
            expected = len(arrived_in | due)
            engine.dispose()

            urls = {"incremental": "", "full": ""}
            for name in urls:
                urls[name] = _copy(base_url, name, tmp, pg)
            results: dict[str, Any] = {}
            finals: dict[str, set[str]] = {}
            for name, evaluate in (("incremental", evaluate_incremental), ("full", evaluate_full)):
                engine = open_database(urls[name])
                store, violations = MessageStore(engine), ViolationStore(engine)
                profiler = cProfile.Profile() if profile else None
                started = time.perf_counter()
                if profiler:
                    profiler.enable()
                result = evaluate(config, store, violations, NOW)
                if profiler:
                    profiler.disable()
                    profiler.dump_stats(f"{profile}.{name}")
                elapsed = time.perf_counter() - started
                results[name] = {
                    "seconds": round(elapsed, 4),
                    "touched_threads": result.touched_threads,
                    "full": result.full,
                    "transitions": len(result.transitions),
                }
                finals[name] = {json.dumps(v.as_json(), sort_keys=True) for v in violations.all()}
                engine.dispose()
                _log(f"{name}: {elapsed:.3f} s, {result.touched_threads} threads")
        finally:
            if pg is not None:
                pg.stop()
    ratio = results["full"]["seconds"] / max(results["incremental"]["seconds"], 1e-9)
    touched = results["incremental"]["touched_threads"]
    return {
        "backend": "postgresql" if postgres else "sqlite",
        "threads": thread_count,
        "messages": len(messages),
        "new_messages": len(arriving),
        "seed_seconds": round(seed_s, 1),
        "settle_seconds": round(settle_s, 2),
        "incremental": results["incremental"],
        "full": results["full"],
        "ratio": round(ratio, 1),
        "target_ratio": TARGET_RATIO,
        "changed_and_due_threads": expected,
        "changed_threads": len(arrived_in),
        "due_threads": len(due),
        "touched_only_changed_and_due": touched <= expected and not results["incremental"]["full"],
        "same_violations": finals["incremental"] == finals["full"],
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def _copy(base_url: str, name: str, tmp: str, pg: Any) -> str:
    if pg is not None:
        import psycopg

        with psycopg.connect(pg.conninfo(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "evaluate_{name}" TEMPLATE "evaluate_base"')
        return str(pg.url_for(f"evaluate_{name}"))
    target = f"{tmp}/{name}.db"
    with sqlite3.connect(f"{tmp}/base.db") as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()
    return f"sqlite:///{target}"


def _print_report(f: dict[str, Any]) -> None:
    inc, full = f["incremental"], f["full"]
    print(f"store: {f['backend']}, {f['threads']} threads, {f['messages']} messages")
    print(f"then {f['new_messages']} new messages; both passes as of {NOW.isoformat()}")
    print(
        f"  full re-evaluation:     {full['seconds']:9.3f} s  ({full['touched_threads']} threads)"
    )
    print(f"  incremental evaluation: {inc['seconds']:9.3f} s  ({inc['touched_threads']} threads)")
    met = "met" if f["ratio"] >= TARGET_RATIO else "MISSED"
    print(f"  ratio full/incremental: {f['ratio']:9.1f}x  (target >= {TARGET_RATIO:.0f}x: {met})")
    print(
        f"  touched {inc['touched_threads']} threads; changed + due: "
        f"{f['changed_and_due_threads']} ({f['changed_threads']} changed, {f['due_threads']} due)"
    )
    print(f"  same violations after both passes: {f['same_violations']}")


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
