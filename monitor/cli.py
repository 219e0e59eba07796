"""The `pocwatch` command line: argument parsing, output formats and exit codes."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TextIO

from sqlalchemy.exc import SQLAlchemyError

from monitor.config import Config
from monitor.display import format_short_time, human_duration
from monitor.errors import ConfigErrors, PocwatchError
from monitor.evaluation import (
    evaluate_incremental,
    evaluate_store,
    find_thread,
    store_context,
    stored_violations,
)
from monitor.explain import explain
from monitor.records import iso_utc
from monitor.storage.db import one_line, open_database
from monitor.storage.messages import MessageStore
from monitor.storage.violations import ViolationStore
from monitor.sync import MailboxResult, sync_all
from rules.base import RuleContext, Violation
from rules.registry import load_config, rule_names
from rules.summary import ThreadSummary, summarize
from rules.unacknowledged import waited

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

log = logging.getLogger("pocwatch")


class UsageError(PocwatchError):
    """A bad argument (exit 2), e.g. an unknown --mailbox or --account."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pocwatch",
        description="Make sure every customer email conversation has one owner who answers "
        "in time.",
    )
    parser.add_argument(
        "-c", "--config", help="config file (default: $POCWATCH_CONFIG, then ./pocwatch.toml)"
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more log output on stderr (-vv for debug)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("check-config", help="validate the config file and exit")
    sync = commands.add_parser("sync", help="one incremental pass over every mailbox")
    sync.add_argument(
        "--mailbox", action="append", metavar="NAME", help="only this mailbox (repeatable)"
    )
    threads = commands.add_parser("threads", help="list the stored conversations")
    threads.add_argument("--account", metavar="NAME")
    threads.add_argument("--format", choices=("table", "json"), default="table")
    violations = commands.add_parser(
        "violations", help="the violations open as of a moment (default: now)"
    )
    violations.add_argument("--now", metavar="ISO8601", help=NOW_HELP)
    violations.add_argument("--rule", metavar="RULE", help="only this rule")
    violations.add_argument("--account", metavar="NAME", help="only this account")
    violations.add_argument("--all", action="store_true", help="resolved ones too")
    violations.add_argument("--format", choices=("table", "json"), default="table")
    explained = commands.add_parser(
        "explain", help="a thread's timeline, its SLA clock, and why each rule fired or not"
    )
    explained.add_argument("thread_id", metavar="THREAD_ID")
    explained.add_argument("--now", metavar="ISO8601", help=NOW_HELP)
    backtest = commands.add_parser(
        "backtest", help="the violations the current rules would have opened over past days"
    )
    backtest.add_argument("--from", dest="start", metavar="DATE", required=True)
    backtest.add_argument("--to", dest="end", metavar="DATE", required=True, help="inclusive")
    backtest.add_argument("--format", choices=("table", "json"), default="table")
    return parser


NOW_HELP = (
    "evaluate as of this instant (ISO 8601; Z or an offset, UTC without either); "
    "later messages are not taken into account"
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=(logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)],
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("imapclient").setLevel(logging.WARNING)  # it logs protocol traffic
    logging.getLogger("mailparser").setLevel(logging.CRITICAL)
    try:
        now = parse_now(getattr(args, "now", None))
        config = load_config(args.config)
        if args.command == "check-config":
            return check_config(config, sys.stdout)
        if args.command == "sync":
            return run_sync(config, args.mailbox, sys.stdout)
        if args.command == "threads":
            return list_threads(config, args.account, args.format, sys.stdout)
        if args.command == "violations":
            return list_violations(
                config,
                now,
                from_store=args.now is None,
                rule=args.rule,
                account=args.account,
                include_resolved=args.all,
                fmt=args.format,
                out=sys.stdout,
            )
        if args.command == "explain":
            return explain_thread(config, args.thread_id, now, sys.stdout)
        if args.command == "backtest":
            start, end = parse_day(args.start, "--from"), parse_day(args.end, "--to")
            return run_backtest(config, start, end, now, args.format, sys.stdout)
    except ConfigErrors as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"pocwatch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except PocwatchError as exc:
        print(f"pocwatch: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except SQLAlchemyError as exc:  # the database failed mid-command (opening it is checked)
        print(f"pocwatch: database error: {one_line(exc)}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover - argparse checks
    return EXIT_USAGE  # pragma: no cover


def check_config(config: Config, out: TextIO) -> int:
    print(
        f"{config.path}: OK ({len(config.mailboxes)} mailbox(es), "
        f"{len(config.accounts)} account(s), {len(config.calendars)} calendar(s))",
        file=out,
    )
    return EXIT_OK


def run_sync(config: Config, mailboxes: list[str] | None, out: TextIO) -> int:
    known = {m.name for m in config.mailboxes}
    for name in mailboxes or ():
        if name not in known:
            raise UsageError(f"unknown mailbox {name!r} (known: {', '.join(sorted(known))})")
    progress = _ProgressBar(sys.stderr) if out.isatty() else None
    now = datetime.now(UTC)
    with MessageStore(open_database(config.monitor.database)) as store:
        results = sync_all(config, store, now=now, mailboxes=mailboxes, progress=progress)
        if progress:
            progress.finish()
        violations = ViolationStore(store.engine)
        evaluate_incremental(config, store, violations, now)
        summary = _summary_line(results, store) + f"; {violations.open_count()} violation(s) open"
    for result in results:
        for problem in result.problems:
            print(f"pocwatch: {problem}", file=sys.stderr)
        for folder in result.folders:
            if folder.gap:
                print(
                    f"pocwatch: {result.mailbox}/{folder.folder}: {folder.gap} message(s) "
                    "missing from the store were found and fetched",
                    file=sys.stderr,
                )
    print(summary, file=out)
    return EXIT_FAILURE if any(r.problems for r in results) else EXIT_OK


def _summary_line(results: list[MailboxResult], store: MessageStore) -> str:
    ok = [r for r in results if not r.error]

    def total(name: str) -> int:
        return sum(r.total(name) for r in ok)

    parts = [
        f"synced {len(ok)}/{len(results)} mailbox(es)",
        f"{total('fetched')} fetched",
        f"{total('new_messages')} new",
        f"{total('duplicates')} duplicate(s)",
        f"{total('defects')} with defects",
        f"{total('flag_changes')} flag change(s)",
        f"{total('gap')} gap(s)",
        f"{store.thread_count()} thread(s) stored",
    ]
    failed = [r.mailbox for r in results if r.error] + [
        f"{r.mailbox}/{f.folder}" for r in results if not r.error for f in r.folders if f.error
    ]
    if failed:
        parts.append(f"failed: {', '.join(failed)}")
    return "; ".join(parts)


class _ProgressBar:
    """A one-line progress bar on a terminal, for the long first sync."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.shown = False

    def __call__(self, mailbox: str, folder: str, done: int, total: int) -> None:
        if total < 500 and not self.shown:
            return
        width = 30
        filled = width * done // max(total, 1)
        self.stream.write(
            f"\r{mailbox}/{folder} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
        )
        self.stream.flush()
        self.shown = True

    def finish(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


def thread_summaries(config: Config, store: MessageStore) -> list[ThreadSummary]:
    policy = config.monitor.policy
    return [summarize(t, policy=policy, accounts=config.accounts) for t in store.threads()]


def list_threads(config: Config, account: str | None, fmt: str, out: TextIO) -> int:
    _check_filters(config, None, account)
    with MessageStore(open_database(config.monitor.database)) as store:
        summaries = [
            s for s in thread_summaries(config, store) if account is None or s.account == account
        ]
    if fmt == "json":
        json.dump([_thread_json(s) for s in summaries], out, indent=2)
        out.write("\n")
    else:
        _print_table(
            ["thread", "subject", "account", "owner", "msgs", "last inbound", "waiting"],
            [
                [
                    s.thread_id,
                    s.subject,
                    s.account or "-",
                    s.owner or "-",
                    str(len(s.message_ids)),
                    format_short_time(s.last_inbound_at, config.monitor.tz),
                    "yes" if s.awaiting_reply else "no",
                ]
                for s in summaries
            ],
            out,
            widths={0: 36, 1: 40},
        )
        print(f"(times in {config.monitor.tz.key})", file=out)
    return EXIT_OK


# The instants --now may name. Mail is younger than 1970; beyond 2200 business-time clocks
# would walk tens of thousands of days per thread, and near year 9999 dates overflow.
EARLIEST_NOW = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_NOW = datetime(2200, 1, 1, tzinfo=UTC) - timedelta(seconds=1)


def parse_now(text: str | None) -> datetime:
    """--now: ISO 8601 with Z or an offset; without either it means UTC. Default: the clock."""
    if text is None:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--now: {text!r} is not an ISO 8601 time (such as 2026-11-20T14:05:00Z)"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        value = value.astimezone(UTC)
    except OverflowError:  # before year 1 or after 9999 in UTC
        raise _now_out_of_range(text) from None
    if not EARLIEST_NOW <= value <= LATEST_NOW:
        raise _now_out_of_range(text)
    return value


def _now_out_of_range(text: str) -> UsageError:
    return UsageError(
        f"--now: {text!r} is out of range: give an instant from "
        f"{iso_utc(EARLIEST_NOW)} to {iso_utc(LATEST_NOW)}"
    )


def parse_day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{option}: {text!r} is not a date (such as 2026-11-20)") from None


def _check_filters(config: Config, rule: str | None, account: str | None) -> None:
    if rule is not None and rule not in rule_names():
        raise UsageError(f"unknown rule {rule!r} (rules: {', '.join(rule_names())})")
    if account is not None and account not in {a.name for a in config.accounts}:
        known = ", ".join(a.name for a in config.accounts) or "none configured"
        raise UsageError(f"unknown account {account!r} (accounts: {known})")


def list_violations(
    config: Config,
    now: datetime,
    *,
    from_store: bool = False,
    rule: str | None,
    account: str | None,
    include_resolved: bool,
    fmt: str,
    out: TextIO,
) -> int:
    """Violations as of `now`: open ones, or every one with `include_resolved`.

    With `from_store` (no --now given), the violation store answers, brought up to `now` by
    an incremental pass, where its last pass ran under this config; otherwise every thread
    is evaluated as of `now`. Both give the same answer; the store is just faster.
    """
    _check_filters(config, rule, account)
    with MessageStore(open_database(config.monitor.database)) as store:
        stored = (
            stored_violations(config, store, ViolationStore(store.engine), now)
            if from_store
            else None
        )
        evaluation = stored or evaluate_store(config, store, now)
        every, ctx = evaluation.violations, evaluation.ctx
    found = [
        v
        for v in every
        if (include_resolved or v.is_open)
        and (rule is None or v.rule == rule)
        and (account is None or v.account == account)
    ]
    if fmt == "json":
        json.dump([v.as_json() for v in found], out, indent=2)
        out.write("\n")
    else:
        _print_violations(found, ctx, out)
    return EXIT_OK


def _print_violations(found: list[Violation], ctx: RuleContext, out: TextIO) -> None:
    """The violations as a table, with the business time each customer waited."""
    zone = ctx.config.monitor.tz
    rows = []
    for v in found:
        clock = waited(v, ctx)
        if clock is None:
            spent = "-"
        else:
            spent = human_duration(clock[0])
            if clock[1]:
                spent += f", {human_duration(clock[1])} over"
        rows.append(
            [
                v.rule,
                str(v.severity),
                str(v.status),
                v.account or "-",
                v.owner or "-",
                v.subject,
                format_short_time(v.opened_at, zone),
                format_short_time(v.due_at, zone),
                spent,
            ]
        )
    _print_table(
        ["rule", "severity", "status", "account", "owner", "subject", "opened", "due", "waited"],
        rows,
        out,
        widths={5: 34},
    )
    print(f"(times in {zone.key}; waited = business time, and how far past the SLA)", file=out)


def explain_thread(config: Config, thread_id: str, now: datetime, out: TextIO) -> int:
    with MessageStore(open_database(config.monitor.database)) as store:
        thread = find_thread(store, thread_id)
        ctx = store_context(config, store, now)
    out.write(explain(thread, ctx, focus=thread_id))
    return EXIT_OK


def run_backtest(
    config: Config, start: date, end: date, now: datetime, fmt: str, out: TextIO
) -> int:
    """What the current rules would have opened from `start` to `end` (inclusive days in
    monitor.timezone), evaluated as of the end of `end` (or now): resolutions included."""
    if end < start:
        raise UsageError(f"--to {end} is before --from {start}")
    zone = config.monitor.tz
    try:
        lo = datetime.combine(start, time(), tzinfo=zone).astimezone(UTC)
        hi = datetime.combine(end + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC)
    except OverflowError:
        raise UsageError(f"--from {start} --to {end}: dates out of range") from None
    with MessageStore(open_database(config.monitor.database)) as store:
        evaluation = evaluate_store(config, store, min(hi, now))
    found = [v for v in evaluation.violations if lo <= v.opened_at < hi]
    tally = Counter((v.rule, v.account) for v in found)
    counts = sorted(tally.items(), key=lambda item: (item[0][0], item[0][1] is None, item[0][1]))
    if fmt == "json":
        json.dump(
            {
                "violations": [v.as_json() for v in found],
                "counts": [
                    {"rule": rule, "account": account, "count": count}
                    for (rule, account), count in counts
                ],
            },
            out,
            indent=2,
        )
        out.write("\n")
        return EXIT_OK
    _print_violations(found, evaluation.ctx, out)
    print(file=out)
    _print_table(
        ["rule", "account", "count"],
        [[rule, account or "-", str(count)] for (rule, account), count in counts],
        out,
    )
    return EXIT_OK


def _thread_json(s: ThreadSummary) -> dict[str, Any]:
    return {
        "thread_id": s.thread_id,
        "subject": s.subject,
        "account": s.account,
        "owner": s.owner,
        "backup": s.backup,
        "message_ids": list(s.message_ids),
        "last_inbound_at": iso_utc(s.last_inbound_at),
        "last_outbound_at": iso_utc(s.last_outbound_at),
        "awaiting_reply": s.awaiting_reply,
    }


def _print_table(
    header: list[str], rows: list[list[str]], out: TextIO, widths: dict[int, int] | None = None
) -> None:
    widths = widths or {}
    clipped = [[_clip(cell, widths.get(i)) for i, cell in enumerate(row)] for row in rows]
    cols = [max([len(header[i])] + [len(r[i]) for r in clipped]) for i in range(len(header))]
    print("  ".join(h.ljust(cols[i]) for i, h in enumerate(header)).rstrip(), file=out)
    for row in clipped:
        print("  ".join(c.ljust(cols[i]) for i, c in enumerate(row)).rstrip(), file=out)
    if not rows:
        print("(none)", file=out)


def _clip(text: str, width: int | None) -> str:
    text = " ".join(text.split())
    if width is None or len(text) <= width:
        return text
    return text[: width - 1] + "…"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
