"""pocwatch.toml: every key validated, every problem located by line and key path."""

from __future__ import annotations

import re
import shlex
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

from monitor.config import (
    Config,
    CronSchedule,
    OpenHours,
    default_config_path,
)
from monitor.errors import ConfigError, ConfigErrors, SecretError
from rules.base import RuleContext
from rules.conflicting_replies import ConflictingRepliesSettings
from rules.registry import load_config, parse_config
from rules.unacknowledged import UnacknowledgedSettings, sla

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "config.example.toml"

# Lines 1-8; what a test appends starts on line 9.
BASE = """\
[monitor]
internal_domains = ["example.com"]

[[mailboxes]]
name = "support"
host = "imap.example.com"
username = "support@example.com"
password = "hunter2"
"""

Problem = tuple[int | None, str, str]


def load(text: str, tmp_path: Path) -> Config:
    file = tmp_path / "pocwatch.toml"
    file.write_text(text, encoding="utf-8")
    return load_config(file)


def problems(text: str, tmp_path: Path) -> list[Problem]:
    """(line, key path, problem) of every error, after checking they print as FILE:LINE: ..."""
    file = tmp_path / "pocwatch.toml"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigErrors) as caught:
        load_config(file)
    for error in caught.value.errors:
        key = f" {error.key_path}:" if error.key_path else ""
        assert str(error) == f"{file}:{error.line}:{key} {error.problem}"
    return [(e.line, e.key_path, e.problem) for e in caught.value.errors]


def only_problem(text: str, tmp_path: Path) -> Problem:
    found = problems(text, tmp_path)
    assert len(found) == 1, found
    return found[0]


def assert_problem(text: str, tmp_path: Path, line: int, key: str, pattern: str) -> None:
    found_line, found_key, problem = only_problem(text, tmp_path)
    assert (found_line, found_key) == (line, key), problem
    assert re.search(pattern, problem), problem


# -- the example and the defaults ----------------------------------------------------------------


def test_the_example_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(EXAMPLE)
    assert config.path == EXAMPLE
    assert config.monitor.database == f"sqlite:///{REPO / 'pocwatch.db'}"
    assert config.monitor.internal_domains == ("example.com",)
    assert config.monitor.admins == ("ops@example.com",)
    assert config.monitor.tz == ZoneInfo("Europe/London")
    assert config.monitor.poll_interval == timedelta(minutes=2)
    assert config.monitor.backfill == timedelta(days=14)
    assert config.monitor.http_address == ("127.0.0.1", 9187)
    support = config.mailbox("support")
    assert (support.host, support.port, support.security) == ("imap.example.com", 993, "tls")
    assert support.folders == ("INBOX", "Sent")
    assert support.idle is True
    assert support.auth_method == "password"
    monkeypatch.setenv("SUPPORT_IMAP_PASSWORD", "from-env")
    assert support.secret() == "from-env"
    calendar = config.calendars["default"]
    assert calendar.weekdays == frozenset(range(5))
    assert calendar.hours == (OpenHours(timedelta(hours=9), timedelta(hours=17, minutes=30)),)
    assert calendar.holidays == (date(2026, 12, 25), date(2026, 12, 26))
    unacknowledged = config.rules.settings(UnacknowledgedSettings)
    assert (unacknowledged.sla, unacknowledged.warn_at) == (timedelta(hours=4), 0.75)
    conflicts = config.rules.settings(ConflictingRepliesSettings)
    assert (conflicts.window, conflicts.open_for) == (timedelta(hours=24), timedelta(days=3))
    assert (conflicts.absence_window, conflicts.allow) == (timedelta(days=7), ())
    acme = config.accounts[0]
    assert acme.name == "Acme"
    assert acme.subjects[0].search("re: [acme-42] login")  # case-insensitive
    assert (acme.owner, acme.backup, acme.escalate_to) == (
        "priya@example.com",
        "sam@example.com",
        "lead@example.com",
    )
    assert acme.sla == timedelta(hours=2)
    assert config.calendar_for(acme) is calendar
    absence = config.absences[0]
    assert (absence.who, absence.start, absence.until) == (
        "priya@example.com",
        date(2026, 12, 21),
        date(2027, 1, 4),
    )
    handoff = config.handoffs[0]
    assert (handoff.account, handoff.old_owner, handoff.new_owner) == (
        "Acme",
        "old@example.com",
        "priya@example.com",
    )
    assert (handoff.on, handoff.overlap) == (date(2026, 11, 2), timedelta(days=14))
    assert config.smtp is not None
    assert (config.smtp.port, config.smtp.security) == (587, "starttls")
    assert config.smtp.sender_address == "pocwatch@example.com"
    assert str(config.digests.schedule) == "0 9,14 * * mon-fri"
    assert config.digests.immediate == ("conflicting_replies",)
    assert config.digests.escalate_after == timedelta(hours=4)
    assert config.reports.weekly.to == ("ops@example.com",)


def test_defaults(tmp_path: Path) -> None:
    config = load(BASE, tmp_path)
    assert config.monitor.database == f"sqlite:///{tmp_path / 'pocwatch.db'}"
    assert config.monitor.timezone == "UTC"
    assert config.monitor.poll_interval == timedelta(minutes=2)
    assert config.monitor.backfill == timedelta(days=14)
    assert config.monitor.http_listen == "127.0.0.1:9187"
    assert config.monitor.fetch_batch == 500
    mailbox = config.mailboxes[0]
    assert (mailbox.port, mailbox.security, mailbox.folders) == (993, "tls", ("INBOX",))
    assert (mailbox.idle, mailbox.timeout, mailbox.ca_file) == (True, timedelta(seconds=30), None)
    assert config.calendars == {}
    assert config.default_calendar is None
    assert config.rules.settings(UnacknowledgedSettings).sla == timedelta(hours=4)
    conflicts = config.rules.settings(ConflictingRepliesSettings)
    assert (conflicts.open_for, conflicts.absence_window) == (timedelta(days=3), timedelta(days=7))
    assert (config.accounts, config.absences, config.handoffs, config.smtp) == ((), (), (), None)
    assert config.digests.immediate == ()
    assert config.digests.escalate_after is None
    assert sla(RuleContext.create(config, datetime(2026, 11, 2, tzinfo=UTC))) == timedelta(hours=4)
    assert config.calendar_for(None) is None


@pytest.mark.parametrize(("security", "port"), [("tls", 993), ("starttls", 143), ("none", 143)])
def test_mailbox_port_follows_security(tmp_path: Path, security: str, port: int) -> None:
    config = load(BASE + f'security = "{security}"\n', tmp_path)
    assert config.mailboxes[0].port == port


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load(BASE, tmp_path)
    with pytest.raises(ValueError, match="frozen"):
        config.mailboxes[0].host = "elsewhere"  # type: ignore[misc]


def test_unknown_mailbox_is_a_key_error(tmp_path: Path) -> None:
    config = load(BASE, tmp_path)
    with pytest.raises(KeyError):
        config.mailbox("sales")
    with pytest.raises(KeyError):
        config.account("Acme")


# -- where the file is -------------------------------------------------------------------------


def test_default_path_is_the_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "elsewhere.toml"
    file.write_text(BASE, encoding="utf-8")
    monkeypatch.setenv("POCWATCH_CONFIG", str(file))
    assert default_config_path() == file
    assert load_config().path == file


def test_default_path_is_then_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("POCWATCH_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pocwatch.toml").write_text(BASE, encoding="utf-8")
    assert default_config_path() == Path("pocwatch.toml")
    config = load_config()
    assert config.path == tmp_path / "pocwatch.toml"


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    file = tmp_path / "nope.toml"
    with pytest.raises(ConfigErrors) as caught:
        load_config(file)
    (error,) = caught.value.errors
    assert (error.file, error.line) == (str(file), None)
    assert "cannot read" in error.problem


def test_the_file_is_named_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("bad.toml").write_text("[monitor]\nbogus = 1\n", encoding="utf-8")
    with pytest.raises(ConfigErrors) as caught:
        load_config("bad.toml")
    assert [str(error) for error in caught.value.errors] == [
        "bad.toml:1: mailboxes: at least one [[mailboxes]] table is required",
        "bad.toml:2: monitor.bogus: unknown key 'bogus'",
    ]


@pytest.mark.parametrize(
    ("database", "expected"),
    [
        ("sqlite:///pocwatch.db", "sqlite:///{dir}/pocwatch.db"),
        ("sqlite:///data/p.db?timeout=5", "sqlite:///{dir}/data/p.db?timeout=5"),
        ("sqlite+pysqlite:///p.db", "sqlite+pysqlite:///{dir}/p.db"),
        ("sqlite:////var/lib/pocwatch/p.db", "sqlite:////var/lib/pocwatch/p.db"),
        ("sqlite://", "sqlite://"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("postgresql+psycopg://pw@db/pocwatch", "postgresql+psycopg://pw@db/pocwatch"),
    ],
)
def test_relative_sqlite_paths_are_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database: str, expected: str
) -> None:
    monkeypatch.chdir("/")
    (tmp_path / "conf").mkdir()
    config = load(
        BASE.replace("[monitor]\n", f'[monitor]\ndatabase = "{database}"\n'), tmp_path / "conf"
    )
    assert config.monitor.database == expected.format(dir=tmp_path / "conf")


def test_a_bad_database_url(tmp_path: Path) -> None:
    text = BASE.replace("[monitor]\n", '[monitor]\ndatabase = "pocwatch.db"\n')
    assert_problem(text, tmp_path, 2, "monitor.database", "invalid database URL")


@pytest.mark.parametrize(
    ("database", "pattern"),
    [
        (
            "mysql://u:s3kr1t@db/p",
            r"the driver for 'mysql' is not installed \(No module named 'MySQLdb'\)",
        ),
        ("nosuch://u:s3kr1t@db/p", r"unsupported database 'nosuch'.*postgresql\+psycopg://"),
        ("sqlite+nosuch:///p.db", r"unsupported database 'sqlite\+nosuch'"),
        ("u:s3kr1t@db/p", "invalid database URL"),
    ],
)
def test_a_database_pocwatch_cannot_use_is_refused(
    tmp_path: Path, database: str, pattern: str
) -> None:
    """check-config catches what would otherwise fail at the first command (a missing driver)."""
    # Any SQLAlchemy URL whose driver is installed is accepted (product.md).
    text = BASE.replace("[monitor]\n", f'[monitor]\ndatabase = "{database}"\n')
    assert_problem(text, tmp_path, 2, "monitor.database", pattern)
    assert "s3kr1t" not in str(problems(text, tmp_path))


# -- TOML itself ---------------------------------------------------------------------------------


def test_toml_syntax_error_names_its_line_and_key(tmp_path: Path) -> None:
    assert_problem(
        BASE + "port = 99x\n", tmp_path, 9, "mailboxes[0].port", r"invalid TOML: .*column"
    )


def test_toml_syntax_error_in_a_table_header(tmp_path: Path) -> None:
    assert_problem(BASE + "\n[smtp\n", tmp_path, 10, "smtp", "invalid TOML: expected ']'")
    assert_problem(BASE + "\n[[mailboxes]\n", tmp_path, 10, "mailboxes[1]", "invalid TOML")


def test_toml_syntax_error_outside_any_key(tmp_path: Path) -> None:
    assert_problem(BASE + "= 1\n", tmp_path, 9, "", "invalid TOML")


def test_duplicate_key_is_a_syntax_error(tmp_path: Path) -> None:
    assert_problem(BASE + 'host = "again"\n', tmp_path, 9, "mailboxes[0].host", "invalid TOML")


def test_not_utf8(tmp_path: Path) -> None:
    file = tmp_path / "pocwatch.toml"
    file.write_bytes(BASE.encode() + b'username = "caf\xe9"\n')
    with pytest.raises(ConfigErrors) as caught:
        load_config(file)
    assert [(e.line, e.problem) for e in caught.value.errors] == [(9, "not UTF-8 text")]


# -- unknown and missing keys ----------------------------------------------------------------------


def test_unknown_top_level_table_suggests(tmp_path: Path) -> None:
    assert_problem(
        BASE + "[digest]\nschedule = '0 9 * * *'\n",
        tmp_path,
        9,
        "digest",
        r"unknown key 'digest'; did you mean 'digests'\?",
    )


def test_unknown_key_in_second_mailbox(tmp_path: Path) -> None:
    text = (
        BASE + '[[mailboxes]]\nname = "b"\nhost = "h"\nusername = "u"\npassword = "p"\nprot = 1\n'
    )
    assert_problem(text, tmp_path, 14, "mailboxes[1].prot", r"did you mean 'port'\?")


def test_unknown_key_in_a_named_calendar(tmp_path: Path) -> None:
    text = BASE + '[calendars.uk]\ntimezone = "UTC"\nhours = "09:00-17:00"\nholiday = []\n'
    assert_problem(text, tmp_path, 12, "calendars.uk.holiday", r"did you mean 'holidays'\?")


def test_unknown_rule_suggests(tmp_path: Path) -> None:
    text = BASE + "[rules.unacknowleged]\nsla = '4h'\n"
    assert_problem(text, tmp_path, 9, "rules.unacknowleged", r"did you mean 'unacknowledged'\?")


def test_unknown_key_without_a_close_match(tmp_path: Path) -> None:
    assert_problem(BASE + "zzz = 1\n", tmp_path, 9, "mailboxes[0].zzz", r"^unknown key 'zzz'$")


def test_missing_key_points_at_its_table_header(tmp_path: Path) -> None:
    text = BASE.replace('host = "imap.example.com"\n', "")
    assert_problem(text, tmp_path, 4, "mailboxes[0].host", "required key is missing")


def test_missing_monitor_table(tmp_path: Path) -> None:
    text = BASE.replace('[monitor]\ninternal_domains = ["example.com"]\n', "")
    assert_problem(text, tmp_path, 1, "monitor", r"\[monitor\] table is required")


def test_missing_mailboxes(tmp_path: Path) -> None:
    text = '[monitor]\ninternal_domains = ["example.com"]\n'
    assert_problem(text, tmp_path, 1, "mailboxes", r"at least one \[\[mailboxes\]\]")


def test_a_table_where_a_value_belongs(tmp_path: Path) -> None:
    text = BASE + "[mailboxes.port]\nx = 1\n"
    assert_problem(text, tmp_path, 9, "mailboxes[0].port", "expected an integer, got a table")


def test_every_problem_is_reported_at_once_in_line_order(tmp_path: Path) -> None:
    text = BASE + 'port = "993"\nidle = "yes"\n[calendars.default]\ntimezone = "Mars/Base"\n'
    assert problems(text, tmp_path) == [
        (9, "mailboxes[0].port", "expected an integer, got a string ('993')"),
        (10, "mailboxes[0].idle", "expected true or false, got a string ('yes')"),
        (11, "calendars.default.hours", "required key is missing"),
        (
            12,
            "calendars.default.timezone",
            "unknown time zone 'Mars/Base' (use an IANA name such as 'Europe/London' or 'UTC')",
        ),
    ]


# -- [monitor] -------------------------------------------------------------------------------------


def monitor(extra: str) -> str:
    return BASE.replace('internal_domains = ["example.com"]\n', extra)


def test_monitor_needs_to_know_who_we_are(tmp_path: Path) -> None:
    assert_problem(
        monitor('admins = ["ops@example.com"]\n'),
        tmp_path,
        1,
        "monitor.internal_domains",
        "set internal_domains",
    )


def test_internal_addresses_alone_are_enough(tmp_path: Path) -> None:
    config = load(monitor('internal_addresses = ["Me@Gmail.com"]\n'), tmp_path)
    assert config.monitor.internal_addresses == ("me@gmail.com",)


def test_domains_and_addresses_are_lowercased(tmp_path: Path) -> None:
    text = monitor('internal_domains = ["Example.COM"]\nadmins = ["Ops@Example.com"]\n')
    config = load(text, tmp_path)
    assert config.monitor.internal_domains == ("example.com",)
    assert config.monitor.admins == ("ops@example.com",)


@pytest.mark.parametrize(
    ("line", "key", "pattern"),
    [
        ('internal_domains = ["@example.com"]', "monitor.internal_domains[0]", "without '@'"),
        ('internal_domains = ["not a domain"]', "monitor.internal_domains[0]", "not a domain"),
        ('internal_domains = "example.com"', "monitor.internal_domains", "expected an array"),
        ('admins = ["ops"]', "monitor.admins[0]", "not an email address"),
        ('timezone = "Europe/Londn"', "monitor.timezone", "unknown time zone"),
        ('timezone = "/etc/passwd"', "monitor.timezone", "unknown time zone"),
        ('poll_interval = "0s"', "monitor.poll_interval", "longer than 0s"),
        ("poll_interval = 120", "monitor.poll_interval", "expected a duration .* an integer"),
        ('backfill = "2 weeks"', "monitor.backfill", "invalid duration '2 weeks'"),
        ('http_listen = "9187"', "monitor.http_listen", "HOST:PORT"),
        ('http_listen = "localhost:99999"', "monitor.http_listen", "HOST:PORT"),
        ("fetch_batch = 0", "monitor.fetch_batch", "at least 1"),
    ],
)
def test_monitor_values(tmp_path: Path, line: str, key: str, pattern: str) -> None:
    if line.startswith("internal_domains"):
        text = BASE.replace('internal_domains = ["example.com"]', line)
    else:
        text = BASE.replace("[monitor]\n", f"[monitor]\n{line}\n")
    assert_problem(text, tmp_path, 2, key, pattern)


def test_ipv6_listen_address(tmp_path: Path) -> None:
    config = load(BASE.replace("[monitor]\n", '[monitor]\nhttp_listen = "[::1]:0"\n'), tmp_path)
    assert config.monitor.http_address == ("::1", 0)


# -- [[mailboxes]] ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "key", "pattern"),
    [
        ("port = 0", "mailboxes[0].port", "at least 1"),
        ("port = 70000", "mailboxes[0].port", "at most 65535"),
        ('port = "993"', "mailboxes[0].port", "expected an integer"),
        ('security = "ssl"', "mailboxes[0].security", "one of 'tls', 'starttls' or 'none'"),
        ('idle = "yes"', "mailboxes[0].idle", "expected true or false"),
        ("folders = []", "mailboxes[0].folders", "at least 1"),
        ('folders = ["INBOX", "INBOX"]', "mailboxes[0].folders", "listed twice"),
        ('folders = ["INBOX", ""]', "mailboxes[0].folders[1]", "must not be empty"),
        ('timeout = "soon"', "mailboxes[0].timeout", "invalid duration"),
        ('ca_file = "missing.pem"', "mailboxes[0].ca_file", "no such file: .*missing.pem"),
    ],
)
def test_mailbox_values(tmp_path: Path, line: str, key: str, pattern: str) -> None:
    assert_problem(BASE + line + "\n", tmp_path, 9, key, pattern)


def test_ca_file_is_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("pem", encoding="utf-8")
    config = load(BASE + 'ca_file = "ca.pem"\n', tmp_path)
    assert config.mailboxes[0].ca_file == tmp_path / "ca.pem"


def test_duplicate_mailbox_names(tmp_path: Path) -> None:
    text = BASE + '[[mailboxes]]\nname = "support"\nhost = "h"\nusername = "u"\npassword = "p"\n'
    assert_problem(text, tmp_path, 10, "mailboxes[1].name", r"already the name of mailboxes\[0\]")


def test_a_mailbox_needs_a_secret(tmp_path: Path) -> None:
    text = BASE.replace('password = "hunter2"\n', "")
    assert_problem(text, tmp_path, 4, "mailboxes[0]", "a secret is required")


def test_a_mailbox_takes_only_one_secret(tmp_path: Path) -> None:
    text = BASE + 'password_command = "pass show imap"\n'
    assert_problem(
        text, tmp_path, 9, "mailboxes[0].password_command", r"only one of .*also set: password\)"
    )


def test_secret_problems_are_reported_alongside_others(tmp_path: Path) -> None:
    text = BASE + 'password_env = "PW"\nport = "x"\n'
    assert [(line, key) for line, key, _ in problems(text, tmp_path)] == [
        (9, "mailboxes[0].password_env"),
        (10, "mailboxes[0].port"),
    ]


@pytest.mark.parametrize(
    ("line", "key", "pattern"),
    [
        ('password_env = "NOT A NAME"', "password_env", "not an environment variable name"),
        ('password_command = "pass \'unclosed"', "password_command", "cannot split"),
        ('oauth2_token_command = "  "', "oauth2_token_command", "must not be empty"),
        ("password = 1234", "password", "expected a string"),
    ],
)
def test_secret_values(tmp_path: Path, line: str, key: str, pattern: str) -> None:
    text = BASE.replace('password = "hunter2"\n', line + "\n")
    assert_problem(text, tmp_path, 8, f"mailboxes[0].{key}", pattern)


def test_secrets_never_show(tmp_path: Path) -> None:
    config = load(BASE, tmp_path)
    for text in (repr(config), str(config), repr(config.mailboxes[0]), str(config.mailboxes[0])):
        assert "hunter2" not in text
    assert "hunter2" not in str(config.model_dump())
    assert config.mailboxes[0].secret() == "hunter2"


def test_a_mistyped_secret_is_named_but_not_shown(tmp_path: Path) -> None:
    text = BASE.replace('password = "hunter2"', "password = 987654321")
    assert only_problem(text, tmp_path) == (
        8,
        "mailboxes[0].password",
        "expected a string, got an integer",
    )


# Each a bad value whose secret part is "s3kr1t" or 987654321 (a password in the wrong key).
BAD_SECRETS = [
    ("password", "987654321"),
    ("password", "9876.54321"),
    ("password", "1987-06-05T04:03:21"),
    ("password", '["s3kr1t"]'),
    ("password_env", '"s3kr1t!"'),
    ("password_env", "987654321"),
    ("password_command", '"echo \'s3kr1t"'),
    ("password_command", "987654321"),
    ("oauth2_token_command", '"token \'s3kr1t"'),
    ("oauth2_token_command", "{ token = 's3kr1t' }"),
]


@pytest.mark.parametrize("table", ["mailboxes", "smtp"])
@pytest.mark.parametrize(("key", "value"), BAD_SECRETS)
def test_config_errors_never_echo_a_secret(
    tmp_path: Path, table: str, key: str, value: str
) -> None:
    if table == "mailboxes":
        text, where = BASE.replace('password = "hunter2"', f"{key} = {value}"), "mailboxes[0]."
    else:
        text, where = SMTP + f'username = "u"\n{key} = {value}\n', "smtp."
    found = problems(text, tmp_path)
    assert [key_path for _, key_path, _ in found] == [where + key]
    for secret in ("s3kr1t", "987654321", "9876.54321", "1987"):
        assert secret not in str(found)


def test_secret_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load(BASE.replace('password = "hunter2"', 'password_env = "PW_X"'), tmp_path)
    monkeypatch.delenv("PW_X", raising=False)
    with pytest.raises(SecretError, match="PW_X is not set"):
        config.mailboxes[0].secret()
    monkeypatch.setenv("PW_X", "s3cret")
    assert config.mailboxes[0].secret() == "s3cret"


def test_oauth2_token_from_command(tmp_path: Path) -> None:
    command = f"{shlex.quote(sys.executable)} -c print(4242)"
    text = BASE.replace('password = "hunter2"', f"oauth2_token_command = '{command}'")
    mailbox = load(text, tmp_path).mailboxes[0]
    assert mailbox.auth_method == "xoauth2"
    assert mailbox.secret() == "4242"


# -- [calendars] -------------------------------------------------------------------------------


CALENDAR = BASE + '[calendars.default]\ntimezone = "Europe/London"\n'  # lines 9-10


def test_hours_as_a_list_and_to_midnight(tmp_path: Path) -> None:
    text = CALENDAR + 'hours = ["13:00-24:00", "00:00-12:00"]\ndays = ["Sat", "sun"]\n'
    calendar = load(text, tmp_path).calendars["default"]
    assert [str(hours) for hours in calendar.hours] == ["00:00-12:00", "13:00-24:00"]
    assert calendar.hours[1].end == timedelta(hours=24)
    assert calendar.days == ("sat", "sun")
    assert calendar.weekdays == frozenset({5, 6})


def test_native_toml_dates_are_holidays_too(tmp_path: Path) -> None:
    text = CALENDAR + 'hours = "09:00-17:00"\nholidays = [2026-12-25, "2026-12-26"]\n'
    calendar = load(text, tmp_path).calendars["default"]
    assert calendar.holidays == (date(2026, 12, 25), date(2026, 12, 26))


@pytest.mark.parametrize(
    ("line", "key", "pattern"),
    [
        ('hours = "9-17"', "calendars.default.hours", "HH:MM-HH:MM"),
        ('hours = "09:00-24:30"', "calendars.default.hours", "00:00 to 24:00"),
        ('hours = "24:00-24:00"', "calendars.default.hours", "00:00 to 24:00"),
        ('hours = "17:00-09:00"', "calendars.default.hours", "end before they start"),
        ("hours = []", "calendars.default.hours", "expected a range"),
        (
            'hours = ["09:00-12:00", "11:30-17:30"]',
            "calendars.default.hours",
            "09:00-12:00 and 11:30-17:30 overlap",
        ),
    ],
)
def test_hours(tmp_path: Path, line: str, key: str, pattern: str) -> None:
    assert_problem(CALENDAR + line + "\n", tmp_path, 11, key, pattern)


@pytest.mark.parametrize(
    ("line", "key", "pattern"),
    [
        ('days = ["mon", "tues"]', "calendars.default.days", r"unknown day 'tues'.*'tue'\?"),
        ('days = ["mon", "mon"]', "calendars.default.days", "listed twice"),
        ("days = []", "calendars.default.days", "at least one open day"),
        ('holidays = ["25/12/2026"]', "calendars.default.holidays[0]", "YYYY-MM-DD"),
        ('holidays = ["2026-02-30"]', "calendars.default.holidays[0]", "invalid date"),
        ("holidays = [2026-12-25T00:00:00]", "calendars.default.holidays[0]", "a date-time"),
        ('timezone = "Europe/Paris"', "calendars.default.timezone", "invalid TOML"),
    ],
)
def test_calendar_values(tmp_path: Path, line: str, key: str, pattern: str) -> None:
    assert_problem(CALENDAR + 'hours = "09:00-17:00"\n' + line + "\n", tmp_path, 12, key, pattern)


def test_an_overlap_in_a_multiline_list_points_at_the_key(tmp_path: Path) -> None:
    text = CALENDAR + 'hours = [\n  "09:00-12:00",\n  "10:00-17:30",\n]\n'
    assert_problem(text, tmp_path, 11, "calendars.default.hours", "overlap")


def test_calendar_needs_a_timezone(tmp_path: Path) -> None:
    text = BASE + '[calendars.uk]\nhours = "09:00-17:00"\n'
    assert_problem(text, tmp_path, 9, "calendars.uk.timezone", "required key is missing")


# -- [rules] -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "line", "pattern"),
    [
        ("unacknowledged", 'sla = "1d"', "days are not allowed"),
        ("unacknowledged", 'sla = "0s"', "longer than 0s"),
        ("unacknowledged", "warn_at = 0", "greater than 0"),
        ("unacknowledged", "warn_at = 1", "less than 1"),
        ("unacknowledged", 'warn_at = "0.5"', "expected a number"),
        ("conflicting_replies", 'window = "0s"', "longer than 0s"),
        ("conflicting_replies", 'open_for = "three days"', "invalid duration"),
        ("conflicting_replies", "absence_window = 7", "expected a duration"),
    ],
)
def test_rule_values(tmp_path: Path, table: str, line: str, pattern: str) -> None:
    key = f"rules.{table}.{line.split(' =')[0]}"
    assert_problem(BASE + f"[rules.{table}]\n{line}\n", tmp_path, 10, key, pattern)


def test_allow_addresses(tmp_path: Path) -> None:
    text = BASE + '[rules.conflicting_replies]\nallow = ["Robot@Example.com", "bad"]\n'
    assert_problem(text, tmp_path, 10, "rules.conflicting_replies.allow[1]", "not an email")
    text = BASE + '[rules.conflicting_replies]\nallow = ["Robot@Example.com"]\n'
    allow = load(text, tmp_path).rules.settings(ConflictingRepliesSettings).allow
    assert allow == ("robot@example.com",)


def test_dotted_and_inline_rule_keys_are_located(tmp_path: Path) -> None:
    text = BASE.replace("[monitor]\n", 'rules.unacknowledged.sla = "2d"\n[monitor]\n')
    assert_problem(text, tmp_path, 1, "rules.unacknowledged.sla", "days are not allowed")
    text = BASE + "[rules]\nconflicting_replies = { window = '1h', allow = [1] }\n"
    assert_problem(
        text, tmp_path, 10, "rules.conflicting_replies.allow[0]", "expected an email address"
    )


def test_an_empty_unowned_table_is_fine(tmp_path: Path) -> None:
    load(BASE + "[rules.unowned]\n", tmp_path)


# -- [[accounts]] ----------------------------------------------------------------------------------


ACCOUNT = BASE + '[[accounts]]\nname = "Acme"\ndomains = ["Acme.com"]\n'  # lines 9-11


def test_account_defaults_follow_the_rule_and_default_calendar(tmp_path: Path) -> None:
    text = (
        ACCOUNT
        + '[rules.unacknowledged]\nsla = "3h"\n'
        + '[calendars.default]\ntimezone = "UTC"\nhours = "09:00-17:00"\n'
    )
    config = load(text, tmp_path)
    account = config.accounts[0]
    assert account.domains == ("acme.com",)
    assert (account.sla, account.calendar) == (None, "default")  # None: the rule's default
    assert (account.owner, account.backup, account.escalate_to) == (None, None, None)
    ctx = RuleContext.create(config, datetime(2026, 11, 2, tzinfo=UTC)).with_account(account)
    assert sla(ctx) == timedelta(hours=3)
    assert config.calendar_for(account) is config.calendars["default"]


def test_without_calendars_every_hour_is_open(tmp_path: Path) -> None:
    config = load(ACCOUNT + 'calendar = "default"\n', tmp_path)
    assert config.accounts[0].calendar is None
    assert config.calendar_for(config.accounts[0]) is None


def test_calendars_without_a_default(tmp_path: Path) -> None:
    text = ACCOUNT + '[calendars.uk]\ntimezone = "UTC"\nhours = "09:00-17:00"\n'
    assert_problem(text, tmp_path, 9, "accounts[0]", r"no \[calendars.default\]")


def test_unknown_calendar(tmp_path: Path) -> None:
    text = ACCOUNT + 'calendar = "us"\n[calendars.uk]\ntimezone = "UTC"\nhours = "09:00-17:00"\n'
    assert_problem(text, tmp_path, 12, "accounts[0].calendar", r"no calendar named 'us'.*uk")


def test_unknown_mailbox_suggests(tmp_path: Path) -> None:
    text = ACCOUNT + 'mailboxes = [\n  "support",\n  "suport",\n]\n'
    assert_problem(
        text,
        tmp_path,
        12,
        "accounts[0].mailboxes[1]",
        r"no mailbox named 'suport'; did you mean 'support'\? \(defined: support\)",
    )


def test_a_bad_regex_is_an_error_at_its_line(tmp_path: Path) -> None:
    text = ACCOUNT + 'subjects = ["ok", "[unclosed"]\n'
    assert_problem(
        text, tmp_path, 12, "accounts[0].subjects[1]", r"invalid regular expression '\[unclosed'"
    )


def test_duplicate_account_names(tmp_path: Path) -> None:
    text = ACCOUNT + '[[accounts]]\nname = "Acme"\ndomains = ["b.com"]\n'
    assert_problem(text, tmp_path, 13, "accounts[1].name", r"already the name of accounts\[0\]")


def test_an_account_must_match_something(tmp_path: Path) -> None:
    text = BASE + '[[accounts]]\nname = "Nobody"\nowner = "a@example.com"\n'
    assert_problem(text, tmp_path, 9, "accounts[0]", "matches no mail")


@pytest.mark.parametrize(
    ("line", "key", "pattern"),
    [
        ('owner = "Priya <priya@example.com>"', "owner", "without a display name"),
        ('backup = "sam"', "backup", "not an email address"),
        ('escalate_to = ["a@example.com"]', "escalate_to", "expected an email address"),
        ('sla = "1d"', "sla", "days are not allowed"),
        ('addresses = ["ceo"]', "addresses[0]", "not an email address"),
        ("calendar = 3", "calendar", "expected a string"),
    ],
)
def test_account_values(tmp_path: Path, line: str, key: str, pattern: str) -> None:
    assert_problem(ACCOUNT + line + "\n", tmp_path, 12, f"accounts[0].{key}", pattern)


def test_account_name_must_not_be_empty(tmp_path: Path) -> None:
    text = ACCOUNT.replace('name = "Acme"', 'name = " "')
    assert_problem(text, tmp_path, 10, "accounts[0].name", "must not be empty")


def test_account_addresses_are_lowercased(tmp_path: Path) -> None:
    text = ACCOUNT + 'owner = "Priya@Example.com"\naddresses = ["CEO@Acme-Holdings.com"]\n'
    account = load(text, tmp_path).accounts[0]
    assert (account.owner, account.addresses) == ("priya@example.com", ("ceo@acme-holdings.com",))


# -- [[absences]] and [[handoffs]] -------------------------------------------------------------


def test_absence_until_before_from(tmp_path: Path) -> None:
    text = BASE + '[[absences]]\nwho = "p@example.com"\nfrom = "2026-12-21"\nuntil = "2026-12-01"\n'
    assert_problem(text, tmp_path, 12, "absences[0].until", "before from")


def test_absence_of_one_day(tmp_path: Path) -> None:
    text = BASE + '[[absences]]\nwho = "P@example.com"\nfrom = 2026-12-21\nuntil = 2026-12-21\n'
    absence = load(text, tmp_path).absences[0]
    assert (absence.who, absence.start, absence.until) == (
        "p@example.com",
        date(2026, 12, 21),
        date(2026, 12, 21),
    )


def test_absence_bad_date(tmp_path: Path) -> None:
    text = BASE + '[[absences]]\nwho = "p@example.com"\nfrom = "next monday"\nuntil = 2026-12-21\n'
    assert_problem(text, tmp_path, 11, "absences[0].from", "invalid date 'next monday'")


HANDOFF = ACCOUNT + '[[handoffs]]\naccount = "Acme"\nfrom = "old@example.com"\non = 2026-11-02\n'


def test_handoff_defaults(tmp_path: Path) -> None:
    handoff = load(HANDOFF + 'to = "new@example.com"\n', tmp_path).handoffs[0]
    assert (handoff.old_owner, handoff.new_owner) == ("old@example.com", "new@example.com")
    assert handoff.overlap == timedelta(days=7)


def test_handoff_unknown_account(tmp_path: Path) -> None:
    text = HANDOFF.replace('account = "Acme"', 'account = "acme"') + 'to = "new@example.com"\n'
    assert_problem(text, tmp_path, 13, "handoffs[0].account", r"no account named 'acme'")


def test_handoff_to_the_same_person(tmp_path: Path) -> None:
    text = HANDOFF + 'to = "Old@example.com"\n'
    assert_problem(text, tmp_path, 16, "handoffs[0].to", "same person")


def test_handoff_missing_to(tmp_path: Path) -> None:
    assert_problem(HANDOFF, tmp_path, 12, "handoffs[0].to", "required key is missing")


# -- [smtp] ----------------------------------------------------------------------------------------


SMTP = BASE + '[smtp]\nhost = "smtp.example.com"\nfrom = "pocwatch <Pocwatch@Example.com>"\n'


def test_smtp_without_login(tmp_path: Path) -> None:
    smtp = load(SMTP, tmp_path).smtp
    assert smtp is not None
    assert (smtp.port, smtp.security, smtp.username) == (587, "starttls", None)
    assert smtp.secret() is None
    assert smtp.sender_address == "pocwatch@example.com"


@pytest.mark.parametrize(("security", "port"), [("tls", 465), ("starttls", 587), ("none", 25)])
def test_smtp_port_follows_security(tmp_path: Path, security: str, port: int) -> None:
    smtp = load(SMTP + f'security = "{security}"\n', tmp_path).smtp
    assert smtp is not None
    assert smtp.port == port


def test_smtp_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PW", "pw")
    smtp = load(SMTP + 'username = "u"\npassword_env = "SMTP_PW"\n', tmp_path).smtp
    assert smtp is not None
    assert smtp.secret() == "pw"


def test_smtp_username_without_secret(tmp_path: Path) -> None:
    assert_problem(SMTP + 'username = "u"\n', tmp_path, 9, "smtp", "a secret is required")


def test_smtp_secret_without_username(tmp_path: Path) -> None:
    assert_problem(SMTP + 'password = "p"\n', tmp_path, 9, "smtp.username", "without a username")


@pytest.mark.parametrize(
    ("line", "key", "pattern"),
    [
        ('security = "ssl"', "smtp.security", "one of"),
        ("port = 99999", "smtp.port", "at most 65535"),
        ('ca_file = "nope.pem"', "smtp.ca_file", "no such file"),
        ('password = "a"\npassword_env = "B"', "smtp.password_env", "only one of"),
    ],
)
def test_smtp_values(tmp_path: Path, line: str, key: str, pattern: str) -> None:
    assert_problem(SMTP + line + "\n", tmp_path, 12 + line.count("\n"), key, pattern)


def test_smtp_from_must_hold_an_address(tmp_path: Path) -> None:
    text = SMTP.replace('from = "pocwatch <Pocwatch@Example.com>"', 'from = "pocwatch"')
    assert_problem(text, tmp_path, 11, "smtp.from", "not an address")


# -- [digests] and [reports.weekly] ----------------------------------------------------------


def test_digests(tmp_path: Path) -> None:
    text = (
        BASE
        + '[digests]\nschedule = "30 8 * * 1-5"\nimmediate = ["unacknowledged", "unowned"]\n'
        + 'escalate_after = "1d"\n'
    )
    digests = load(text, tmp_path).digests
    assert digests.schedule.weekdays == frozenset(range(5))
    assert digests.immediate == ("unacknowledged", "unowned")
    assert digests.escalate_after == timedelta(days=1)


@pytest.mark.parametrize(
    ("line", "key", "pattern"),
    [
        ('schedule = "0 9 * *"', "digests.schedule", "5 fields"),
        ('schedule = "0 9 * * 8"', "digests.schedule", "day of week 8 out of range 0-7"),
        ('schedule = "61 9 * * *"', "digests.schedule", "minute 61 out of range"),
        ('schedule = "0 9 * * mon-fry"', "digests.schedule", "invalid day of week 'fry'"),
        ('schedule = "0 9 * * fri-mon"', "digests.schedule", "goes backwards"),
        ('schedule = "5/10 * * * *"', "digests.schedule", "a step needs a range"),
        ('schedule = "*/0 * * * *"', "digests.schedule", "invalid step"),
        ('schedule = "@reboot"', "digests.schedule", "unknown schedule"),
        (
            'immediate = ["conflicts"]',
            "digests.immediate[0]",
            r"did you mean 'conflicting_replies'",
        ),
        ('escalate_after = "soon"', "digests.escalate_after", "invalid duration"),
    ],
)
def test_digest_values(tmp_path: Path, line: str, key: str, pattern: str) -> None:
    assert_problem(BASE + f"[digests]\n{line}\n", tmp_path, 10, key, pattern)


def test_weekly_report(tmp_path: Path) -> None:
    text = BASE + '[reports.weekly]\nschedule = "@weekly"\nto = ["Boss@Example.com"]\n'
    weekly = load(text, tmp_path).reports.weekly
    assert weekly.to == ("boss@example.com",)
    assert weekly.schedule.weekdays == frozenset({6})
    text = BASE + '[reports.weekly]\nto = "boss@example.com"\n'
    assert_problem(text, tmp_path, 10, "reports.weekly.to", "expected an array")


# -- cron schedules ------------------------------------------------------------------------------


def fires(schedule: CronSchedule, start: datetime, count: int) -> list[datetime]:
    """The next `count` fire times, per APScheduler 3 built from apscheduler_fields()."""
    fields = schedule.apscheduler_fields()
    tz = ZoneInfo("Europe/London")
    triggers = [CronTrigger(**f, timezone=tz) for f in fields]
    trigger = triggers[0] if len(triggers) == 1 else OrTrigger(triggers)
    out: list[datetime] = []
    previous = None
    now = start.replace(tzinfo=tz)
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, now)
        assert fire is not None
        out.append(fire)
        previous, now = fire, fire + timedelta(seconds=1)
    return out


@pytest.mark.parametrize("text", ["0 9 * * 0", "0 9 * * 7", "0 9 * * sun", "0 9 * * SUN"])
def test_zero_and_seven_are_sunday(text: str) -> None:
    schedule = CronSchedule.parse(text)
    assert schedule.weekdays == frozenset({6})
    for fire in fires(schedule, datetime(2026, 11, 23), 3):  # a Monday
        assert fire.weekday() == 6
        assert (fire.hour, fire.minute) == (9, 0)


def test_mon_fri_and_two_hours() -> None:
    schedule = CronSchedule.parse("0 9,14 * * mon-fri")
    fired = fires(schedule, datetime(2026, 11, 20, 10), 4)  # Friday 10:00
    assert [(f.weekday(), f.hour) for f in fired] == [(4, 14), (0, 9), (0, 14), (1, 9)]


def test_month_names_and_steps() -> None:
    schedule = CronSchedule.parse("*/15 8-10/2 1 jan,JUL *")
    assert schedule.minutes == frozenset({0, 15, 30, 45})
    assert schedule.hours == frozenset({8, 10})
    assert schedule.months == frozenset({1, 7})
    fired = fires(schedule, datetime(2026, 2, 1), 2)
    assert [(f.month, f.day, f.hour, f.minute) for f in fired] == [(7, 1, 8, 0), (7, 1, 8, 15)]


def test_both_day_fields_restricted_means_either() -> None:
    schedule = CronSchedule.parse("0 12 13 * fri")
    assert schedule.matches(datetime(2026, 11, 13, 12))  # Friday the 13th
    assert schedule.matches(datetime(2026, 11, 20, 12))  # a Friday
    assert schedule.matches(datetime(2026, 10, 13, 12))  # a Tuesday the 13th
    assert not schedule.matches(datetime(2026, 11, 14, 12))
    fired = fires(schedule, datetime(2026, 11, 1), 3)
    assert [f.day for f in fired] == [6, 13, 20]
    assert len(schedule.apscheduler_fields()) == 2


def test_a_star_day_field_means_both() -> None:
    schedule = CronSchedule.parse("0 0 */2 * mon")
    assert not schedule.either_day
    assert schedule.matches(datetime(2026, 11, 9))  # Monday the 9th
    assert not schedule.matches(datetime(2026, 11, 16))  # Monday the 16th
    assert not schedule.matches(datetime(2026, 11, 11))  # Wednesday the 11th


def test_sunday_wrapping_range() -> None:
    schedule = CronSchedule.parse("0 9 * * 5-7")
    assert schedule.weekdays == frozenset({4, 5, 6})
    assert schedule.apscheduler_fields()[0]["day_of_week"] == "fri,sat,sun"


def test_macros() -> None:
    assert CronSchedule.parse("@daily").apscheduler_fields() == (
        {"minute": "0", "hour": "0", "month": "*", "day": "*", "day_of_week": "*"},
    )
    assert str(CronSchedule.parse("@hourly")) == "@hourly"


def test_config_error_type() -> None:
    error = ConfigError("f.toml", 3, "a.b", "bad")
    assert str(error) == "f.toml:3: a.b: bad"


def test_parse_config_works_without_a_file(tmp_path: Path) -> None:
    config = parse_config(BASE, tmp_path / "virtual.toml")
    assert config.path == tmp_path / "virtual.toml"
    assert config.monitor.database == f"sqlite:///{tmp_path / 'pocwatch.db'}"
