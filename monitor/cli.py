"""The `pocwatch` command line: argument parsing, output formats and exit codes."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from monitor.config import Config, load_config
from monitor.errors import ConfigErrors, PocwatchError
from monitor.storage.db import open_database
from monitor.storage.messages import MessageStore
from monitor.sync import MailboxResult, internal_policy, sync_all
from rules.summary import ThreadSummary, summarize

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
    return parser


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
        config = load_config(args.config)
        if args.command == "check-config":
            return check_config(config, sys.stdout)
        if args.command == "sync":
            return run_sync(config, args.mailbox, sys.stdout)
        if args.command == "threads":
            return list_threads(config, args.account, args.format, sys.stdout)
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
    with MessageStore(open_database(config.monitor.database)) as store:
        results = sync_all(
            config, store, now=datetime.now(UTC), mailboxes=mailboxes, progress=progress
        )
        if progress:
            progress.finish()
        summary = _summary_line(results, store)
    for result in results:
        if result.error:
            print(f"pocwatch: {result.error}", file=sys.stderr)
        for folder in result.folders:
            if folder.gap:
                print(
                    f"pocwatch: {result.mailbox}/{folder.folder}: {folder.gap} message(s) "
                    "missing from the store were found and fetched",
                    file=sys.stderr,
                )
    print(summary, file=out)
    return EXIT_FAILURE if any(r.error for r in results) else EXIT_OK


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
    failed = [r.mailbox for r in results if r.error]
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
    policy = internal_policy(config)
    return [
        summarize(
            t.thread_id,
            t.subject,
            t.messages,
            policy=policy,
            accounts=config.accounts,
            answered=t.answered,
            arrived_in=t.arrived_in,
        )
        for t in store.threads()
    ]


def list_threads(config: Config, account: str | None, fmt: str, out: TextIO) -> int:
    if account is not None and account not in {a.name for a in config.accounts}:
        raise UsageError(f"unknown account {account!r}")
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
                    _short_time(s.last_inbound_at),
                    "yes" if s.awaiting_reply else "no",
                ]
                for s in summaries
            ],
            out,
            widths={0: 36, 1: 40},
        )
    return EXIT_OK


def iso_utc(value: datetime | None) -> str | None:
    """ISO 8601 UTC with a Z, as the JSON contract wants."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _short_time(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if value else "-"


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
