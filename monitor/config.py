"""pocwatch.toml: read, validate, and report every problem by file, line and key path."""

from __future__ import annotations

import difflib
import functools
import itertools
import os
import re
import shlex
import tomllib
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from monitor.classify import InternalPolicy
from monitor.durations import parse_duration
from monitor.errors import ConfigError, ConfigErrors
from monitor.secrets import resolve_secret
from monitor.storage.urls import url_problem
from monitor.toml_lines import (
    KeyPath,
    format_key_path,
    key_path_at_line,
    scan_key_lines,
    syntax_error_position,
)

CONFIG_ENV = "POCWATCH_CONFIG"
DEFAULT_CONFIG_FILE = "pocwatch.toml"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = date.weekday()
SECRET_KEYS = ("password", "password_env", "password_command", "oauth2_token_command")

Security = Literal["tls", "starttls", "none"]
AuthMethod = Literal["password", "xoauth2"]


def default_config_path() -> Path:
    """$POCWATCH_CONFIG, else ./pocwatch.toml (relative, so messages name it as the user does)."""
    configured = os.environ.get(CONFIG_ENV)
    return Path(configured) if configured else Path(DEFAULT_CONFIG_FILE)


# -- value checks (each raises ValueError with the problem as the user should read it) ---------


def _describe(value: object, *, reveal: bool = True) -> str:
    """Name a TOML value's type for "expected X, got Y" messages; the value too, unless it may
    be a secret (`reveal` false): a password typed unquoted is still a password."""
    kind, shown = _kind_and_text(value)
    return f"{kind} ({shown})" if reveal and shown is not None else kind


def _kind_and_text(value: object) -> tuple[str, str | None]:
    if isinstance(value, bool):
        return "a boolean", str(value).lower()
    if isinstance(value, int):
        return "an integer", str(value)
    if isinstance(value, float):
        return "a number", str(value)
    if isinstance(value, str):
        return "a string", repr(value)
    if isinstance(value, datetime):
        return "a date-time", value.isoformat()
    if isinstance(value, date):
        return "a date", value.isoformat()
    if isinstance(value, time):
        return "a time", value.isoformat()
    if isinstance(value, list | tuple):
        return "an array", None
    if isinstance(value, dict):
        return "a table", None
    return type(value).__name__, None


def _string(value: object, what: str, *, reveal: bool = True) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected {what}, got {_describe(value, reveal=reveal)}")
    return value


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _non_empty(value: object) -> str:
    text = _string(value, "a string").strip()
    if not text:
        raise ValueError("must not be empty")
    return text


def _duration(value: object) -> timedelta:
    return parse_duration(_string(value, "a duration such as '4h' or '1h30m'"))


def _positive_duration(value: object) -> timedelta:
    parsed = _duration(value)
    if not parsed:
        raise ValueError("must be longer than 0s")
    return parsed


def _business_duration(value: object) -> timedelta:
    text = _string(value, "a duration such as '4h' or '1h30m'")
    parsed = parse_duration(text, allow_days=False)
    if not parsed:
        raise ValueError("must be longer than 0s")
    return parsed


_DOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*")
_EMAIL = re.compile(r"[^\s@<>(),;:\"\[\]\\]+@" + _DOMAIN.pattern)


def _email(value: object) -> str:
    text = _string(value, "an email address").strip().lower()
    if _EMAIL.fullmatch(text):
        return text
    hint = " without a display name" if "<" in text else ""
    raise ValueError(
        f"{value!r} is not an email address "
        f"(write a bare address{hint}, such as 'priya@example.com')"
    )


def _domain(value: object) -> str:
    text = _string(value, "a domain name").strip().lower().rstrip(".")
    if text.startswith("@"):
        raise ValueError(f"write the domain without '@' ({text[1:]!r})")
    if not _DOMAIN.fullmatch(text):
        raise ValueError(f"{value!r} is not a domain name (such as 'example.com')")
    return text


def _timezone(value: object) -> str:
    name = _string(value, "an IANA time zone name such as 'Europe/London'")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name such as 'Europe/London' or 'UTC')"
        ) from None
    return name


def _date(value: object) -> date:
    if isinstance(value, datetime):
        raise ValueError(f"expected a date, got {_describe(value)}")
    if isinstance(value, date):
        return value
    text = _string(value, "a date such as '2026-12-25'")
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"invalid date {text!r} (write YYYY-MM-DD, such as '2026-12-25')"
        ) from None


def _regex(value: object) -> re.Pattern[str]:
    text = _string(value, "a regular expression")
    try:
        return re.compile(text, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {text!r}: {exc}") from None


# The secret keys' checks never quote the value: it may be the password, in the wrong key.


def _env_name(value: object) -> str:
    text = _string(value, "an environment variable name", reveal=False)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text):
        raise ValueError(
            "not an environment variable name (letters, digits and '_', not starting with a digit)"
        )
    return text


def _command(value: object) -> str:
    text = _string(value, "a command line", reveal=False)
    try:
        argv = shlex.split(text)
    except ValueError as exc:
        raise ValueError(f"cannot split the command: {exc}") from None
    if not argv:
        raise ValueError("must not be empty")
    return text


def _listen(value: object) -> str:
    text = _string(value, "an address such as '127.0.0.1:9187'")
    match = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[^:\[\]\s]+):(\d{1,5})", text)
    if match is None or int(match[2]) > 65535:
        raise ValueError(
            f"invalid listen address {text!r} (write HOST:PORT, such as '127.0.0.1:9187')"
        )
    return text


def _rule_name(value: object, info: ValidationInfo) -> str:
    text = _string(value, "a rule name")
    names: Sequence[str] = (info.context or {}).get("rule_names", ())
    if text not in names:
        raise ValueError(
            f"unknown rule {text!r} (rules: {', '.join(names)}){_suggest(text, names)}"
        )
    return text


def _sender(value: object) -> str:
    text = _non_empty(value)
    _, address = parseaddr(text)
    if not address or not _EMAIL.fullmatch(address.lower()):
        raise ValueError(f"{text!r} is not an address such as 'pocwatch <pocwatch@example.com>'")
    return text


Duration = Annotated[timedelta, PlainValidator(_duration)]
PositiveDuration = Annotated[timedelta, PlainValidator(_positive_duration)]
BusinessDuration = Annotated[timedelta, PlainValidator(_business_duration)]
Email = Annotated[str, PlainValidator(_email)]
Domain = Annotated[str, PlainValidator(_domain)]
TimeZoneName = Annotated[str, PlainValidator(_timezone)]
IsoDate = Annotated[date, PlainValidator(_date)]
Regex = Annotated[re.Pattern[str], PlainValidator(_regex), PlainSerializer(lambda p: p.pattern)]
NonEmpty = Annotated[str, PlainValidator(_non_empty)]
EnvName = Annotated[str, PlainValidator(_env_name)]
Command = Annotated[str, PlainValidator(_command)]
Listen = Annotated[str, PlainValidator(_listen)]
RuleName = Annotated[str, PlainValidator(_rule_name)]
Port = Annotated[int, Field(strict=True, ge=1, le=65535)]


# -- calendars: open hours and cron schedules --------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenHours:
    """One open range of a day, as offsets from local midnight (`end` may be 24h)."""

    start: timedelta
    end: timedelta

    def __str__(self) -> str:
        return f"{_clock(self.start)}-{_clock(self.end)}"


def _clock(offset: timedelta) -> str:
    minutes = offset // timedelta(minutes=1)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


_HOURS = re.compile(r"(\d{2}):(\d{2})\s*-\s*(\d{2}):(\d{2})")


def _open_hours(value: object) -> tuple[OpenHours, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise ValueError(
            f"expected a range such as '09:00-17:30' or a list of them, got {_describe(value)}"
        )
    ranges: list[OpenHours] = []
    for item in items:
        text = _string(item, "a range such as '09:00-17:30'")
        match = _HOURS.fullmatch(text.strip())
        if match is None:
            raise ValueError(f"invalid hours {text!r} (write HH:MM-HH:MM, such as '09:00-17:30')")
        sh, sm, eh, em = (int(part) for part in match.groups())
        if sh > 23 or sm > 59 or em > 59 or eh > 24 or (eh == 24 and em):
            raise ValueError(f"invalid time in {text!r} (00:00 to 24:00)")
        start, end = timedelta(hours=sh, minutes=sm), timedelta(hours=eh, minutes=em)
        if start >= end:
            raise ValueError(f"hours {text!r} end before they start")
        ranges.append(OpenHours(start, end))
    ranges.sort(key=lambda r: r.start)
    for earlier, later in itertools.pairwise(ranges):
        if later.start < earlier.end:
            raise ValueError(f"hours {earlier} and {later} overlap")
    return tuple(ranges)


def _weekdays(value: object) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise ValueError(
            f"expected an array of days such as ['mon', 'tue'], got {_describe(value)}"
        )
    days: list[str] = []
    for item in value:
        day = _string(item, "a day such as 'mon'").strip().lower()
        if day not in WEEKDAYS:
            raise ValueError(
                f"unknown day {item!r} (days: {', '.join(WEEKDAYS)}){_suggest(day[:3], WEEKDAYS)}"
            )
        if day in days:
            raise ValueError(f"day {day!r} is listed twice")
        days.append(day)
    if not days:
        raise ValueError("a calendar needs at least one open day")
    return tuple(days)


_CRON_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab(5): 0 and 7 are Sunday
_CRON_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# name, lowest, highest, names (index 0 = the lowest value)
_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _CRON_MONTHS),
    ("day of week", 0, 7, _CRON_DAYS),
)


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A crontab(5) schedule: five fields, names allowed, 0 and 7 both Sunday.

    When both day fields are restricted (neither starts with `*`), a day matching either one
    fires, as cron does; APScheduler 3 would require both, so `apscheduler_fields()` gives one
    field set per alternative (combine them with an OrTrigger).
    """

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Monday, as date.weekday()
    either_day: bool

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"CronSchedule({self.text!r})"

    @classmethod
    def parse(cls, text: str) -> CronSchedule:
        expanded = _CRON_MACROS.get(text.strip().lower(), text)
        if expanded.strip().startswith("@"):
            raise ValueError(f"unknown schedule {text!r} (@reboot and other macros do not apply)")
        fields = expanded.split()
        if len(fields) != 5:
            raise ValueError(
                f"invalid schedule {text!r}: crontab(5) has 5 fields (minute hour "
                f"day-of-month month day-of-week), got {len(fields)}"
            )
        sets = [_cron_field(field, *spec) for field, spec in zip(fields, _CRON_FIELDS, strict=True)]
        cron_days = {0 if day == 7 else day for day in sets[4]}
        return cls(
            text=text,
            minutes=frozenset(sets[0]),
            hours=frozenset(sets[1]),
            days=frozenset(sets[2]),
            months=frozenset(sets[3]),
            weekdays=frozenset((day - 1) % 7 for day in cron_days),
            either_day=not fields[2].startswith("*") and not fields[4].startswith("*"),
        )

    def matches(self, moment: datetime) -> bool:
        """Whether the schedule fires at this minute of local wall time."""
        on_day = moment.day in self.days
        on_weekday = moment.weekday() in self.weekdays
        day_ok = (on_day or on_weekday) if self.either_day else (on_day and on_weekday)
        return (
            day_ok
            and moment.minute in self.minutes
            and moment.hour in self.hours
            and moment.month in self.months
        )

    def apscheduler_fields(self) -> tuple[dict[str, str], ...]:
        """Keyword arguments for APScheduler 3's CronTrigger (weekday names: no 0/7 mix-up)."""
        base = {
            "minute": _number_list(self.minutes, 0, 59),
            "hour": _number_list(self.hours, 0, 23),
            "month": _number_list(self.months, 1, 12),
        }
        day = _number_list(self.days, 1, 31)
        weekday = (
            "*" if len(self.weekdays) == 7 else ",".join(WEEKDAYS[d] for d in sorted(self.weekdays))
        )
        if self.either_day:
            return (
                {**base, "day": day, "day_of_week": "*"},
                {**base, "day": "*", "day_of_week": weekday},
            )
        return ({**base, "day": day, "day_of_week": weekday},)


def _number_list(values: frozenset[int], low: int, high: int) -> str:
    if values == frozenset(range(low, high + 1)):
        return "*"
    return ",".join(str(value) for value in sorted(values))


def _cron_field(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> set[int]:
    def number(token: str) -> int:
        if token.isdigit():
            value = int(token)
        elif token.lower() in names:
            value = names.index(token.lower()) + low
        else:
            raise ValueError(f"invalid {name} {token!r} in {text!r}")
        if not low <= value <= high:
            raise ValueError(f"{name} {value} out of range {low}-{high} in {text!r}")
        return value

    values: set[int] = set()
    for item in text.split(","):
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise ValueError(f"invalid step {step_text!r} in {name} {text!r}")
            if base != "*" and "-" not in base:
                raise ValueError(f"a step needs a range or '*' in {name} {item!r}")
            step = int(step_text)
        if base == "*":
            first, last = low, high
        elif "-" in base:
            left, _, right = base.partition("-")
            first, last = number(left), number(right)
            if first > last:
                raise ValueError(f"{name} range {base!r} goes backwards")
        else:
            first = last = number(base)
        values.update(range(first, last + 1, step))
    return values


def _cron(value: object) -> CronSchedule:
    return CronSchedule.parse(_string(value, "a crontab(5) schedule such as '0 9 * * mon-fri'"))


Cron = Annotated[CronSchedule, PlainValidator(_cron), PlainSerializer(str)]


# -- models --------------------------------------------------------------------------------------


def _fail(problem: str, key: str | None = None) -> PydanticCustomError:
    """A model-level problem, optionally pinned to one of the model's keys for its line."""
    return PydanticCustomError("pocwatch", "{problem}", {"problem": problem, "key": key})


def _config_dir(info: ValidationInfo) -> Path:
    context = info.context if isinstance(info.context, Mapping) else {}
    directory = context.get("config_dir")
    return Path(directory) if directory is not None else Path.cwd()


def _existing_file(value: object, info: ValidationInfo) -> Path | None:
    if value is None:
        return None
    path = Path(_string(value, "a file path")).expanduser()
    if not path.is_absolute():
        path = _config_dir(info) / path
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    return path


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _SecretSource(_Model):
    """The four ways to give a secret; at most one may be set."""

    password: SecretStr | None = None
    password_env: EnvName | None = None
    password_command: Command | None = None
    oauth2_token_command: Command | None = None

    def _check_secret(self, *, has_username: bool) -> None:
        keys = [key for key in SECRET_KEYS if getattr(self, key) is not None]
        problem = _secret_problem(keys, has_username=has_username)
        if problem is not None:
            raise _fail(problem[1], problem[0])

    @property
    def auth_method(self) -> AuthMethod:
        return "xoauth2" if self.oauth2_token_command is not None else "password"

    def _resolve(self, timeout: timedelta) -> str:
        return resolve_secret(
            password=self.password.get_secret_value() if self.password is not None else None,
            password_env=self.password_env,
            password_command=self.password_command,
            oauth2_token_command=self.oauth2_token_command,
            timeout=timeout,
        )


def _secret_problem(keys: Sequence[str], *, has_username: bool) -> tuple[str | None, str] | None:
    """(key to blame, problem) when the secret keys set are not exactly one per login."""
    if len(keys) > 1:
        return keys[-1], (
            "set only one of password, password_env, password_command or "
            f"oauth2_token_command (also set: {', '.join(keys[:-1])})"
        )
    if has_username and not keys:
        return None, (
            "a secret is required: set password, password_env, password_command "
            "or oauth2_token_command"
        )
    if keys and not has_username:
        return "username", "a secret without a username: set username too"
    return None


def _default_port(data: Any, ports: Mapping[str, int], default_security: str) -> Any:
    if isinstance(data, dict) and "port" not in data:
        security = data.get("security", default_security)
        return {**data, "port": ports.get(security, ports[default_security])}
    return data


class MailboxConfig(_SecretSource):
    """One IMAP login and the folders to watch."""

    name: NonEmpty
    host: NonEmpty
    port: Port
    security: Security = "tls"
    username: NonEmpty
    folders: Annotated[tuple[NonEmpty, ...], Field(min_length=1)] = ("INBOX",)
    idle: Annotated[bool, Field(strict=True)] = True
    ca_file: Path | None = None
    timeout: PositiveDuration = timedelta(seconds=30)

    @model_validator(mode="before")
    @classmethod
    def _port_from_security(cls, data: Any) -> Any:
        return _default_port(data, {"tls": 993, "starttls": 143, "none": 143}, "tls")

    @field_validator("ca_file", mode="plain")
    @classmethod
    def _ca_file(cls, value: object, info: ValidationInfo) -> Path | None:
        return _existing_file(value, info)

    @field_validator("folders")
    @classmethod
    def _unique_folders(cls, folders: tuple[str, ...]) -> tuple[str, ...]:
        for folder in folders:
            if folders.count(folder) > 1:
                raise ValueError(f"folder {folder!r} is listed twice")
        return folders

    @model_validator(mode="after")
    def _one_secret(self) -> MailboxConfig:
        self._check_secret(has_username=True)
        return self

    def secret(self) -> str:
        """The password or OAuth2 token, fetched now (commands run each time: tokens expire)."""
        return self._resolve(self.timeout)


class CalendarConfig(_Model):
    """Business hours in one time zone; SLAs count only open time."""

    timezone: TimeZoneName
    days: Annotated[tuple[str, ...], PlainValidator(_weekdays)] = WEEKDAYS[:5]
    hours: Annotated[
        tuple[OpenHours, ...],
        PlainValidator(_open_hours),
        PlainSerializer(lambda hours: [str(h) for h in hours]),
    ]
    holidays: tuple[IsoDate, ...] = ()

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def weekdays(self) -> frozenset[int]:
        """Open days as date.weekday() numbers (Monday = 0)."""
        return frozenset(WEEKDAYS.index(day) for day in self.days)


class RuleSettings(_Model):
    """One rule's [rules.NAME] table. Each rule module defines its own subclass next to the
    rule; every key has a default, because the table may be absent."""


SettingsT = TypeVar("SettingsT", bound=RuleSettings)
RuleTables = Mapping[str, type[RuleSettings]]
"""Rule name -> its settings model: the tables a [rules] section may hold."""


class RulesConfig(_Model):
    """[rules]: one table per rule, named as the rule.

    This base has no tables: `config_model` makes a subclass with one field per rule it is
    given, so the rules are listed once, by the rules package, and never here.
    """

    def settings(self, kind: type[SettingsT]) -> SettingsT:
        """The table whose model is `kind`: a rule reads its own settings, typed."""
        table = self.by_model.get(kind)
        if table is None:
            raise LookupError(f"no [rules] table is a {kind.__name__}")
        assert isinstance(table, kind)
        return table

    @functools.cached_property
    def by_model(self) -> dict[type[RuleSettings], RuleSettings]:
        """Each table by its model (one per rule: config_model sees to it), found once: rules
        read their settings on every thread."""
        return {type(value): value for value in (getattr(self, n) for n in type(self).model_fields)}


class AccountConfig(_Model):
    """A customer account: how its mail is recognised, who owns it, its SLA.

    After load_config, `calendar` is the effective one: the account's own, else "default"
    (None: every hour is open). `sla` None means the `unacknowledged` rule's default.
    """

    name: NonEmpty
    domains: tuple[Domain, ...] = ()
    addresses: tuple[Email, ...] = ()
    subjects: tuple[Regex, ...] = ()
    mailboxes: tuple[NonEmpty, ...] = ()
    calendar: NonEmpty | None = None
    owner: Email | None = None
    backup: Email | None = None
    escalate_to: Email | None = None
    sla: BusinessDuration | None = None

    @model_validator(mode="after")
    def _matches_something(self) -> AccountConfig:
        if not (self.domains or self.addresses or self.subjects or self.mailboxes):
            raise _fail(
                f"account {self.name!r} matches no mail: set domains, addresses, subjects "
                "or mailboxes"
            )
        return self


class AbsenceConfig(_Model):
    """Someone away on known dates, inclusive, in the account's calendar zone."""

    who: Email
    start: IsoDate = Field(alias="from")
    until: IsoDate

    @model_validator(mode="after")
    def _in_order(self) -> AbsenceConfig:
        if self.until < self.start:
            raise _fail(f"until ({self.until}) is before from ({self.start})", "until")
        return self


class HandoffConfig(_Model):
    """An account changing owner on a date; during `overlap` both count as one sender."""

    account: NonEmpty
    old_owner: Email = Field(alias="from")
    new_owner: Email = Field(alias="to")
    on: IsoDate
    overlap: Duration = timedelta(days=7)

    @model_validator(mode="after")
    def _two_people(self) -> HandoffConfig:
        if self.old_owner == self.new_owner:
            raise _fail("from and to are the same person", "to")
        return self


class SmtpConfig(_SecretSource):
    """Where digests and reports are sent from; no username means no authentication."""

    host: NonEmpty
    port: Port
    security: Security = "starttls"
    username: NonEmpty | None = None
    sender: Annotated[str, PlainValidator(_sender)] = Field(alias="from")
    ca_file: Path | None = None
    timeout: PositiveDuration = timedelta(seconds=30)

    @model_validator(mode="before")
    @classmethod
    def _port_from_security(cls, data: Any) -> Any:
        return _default_port(data, {"tls": 465, "starttls": 587, "none": 25}, "starttls")

    @field_validator("ca_file", mode="plain")
    @classmethod
    def _ca_file(cls, value: object, info: ValidationInfo) -> Path | None:
        return _existing_file(value, info)

    @model_validator(mode="after")
    def _login(self) -> SmtpConfig:
        self._check_secret(has_username=self.username is not None)
        return self

    @property
    def sender_address(self) -> str:
        """The bare, lowercased address of `from` (for the envelope)."""
        return parseaddr(self.sender)[1].lower()

    def secret(self) -> str | None:
        """The password or token, or None when the server takes mail without logging in."""
        return None if self.username is None else self._resolve(self.timeout)


class DigestsConfig(_Model):
    """[digests]: when owners hear about open violations."""

    schedule: Cron = CronSchedule.parse("0 9 * * mon-fri")
    immediate: tuple[RuleName, ...] = ()
    escalate_after: Duration | None = None


class WeeklyReportConfig(_Model):
    """[reports.weekly]: the managers' compliance report."""

    schedule: Cron = CronSchedule.parse("0 8 * * mon")
    to: tuple[Email, ...] = ()


class ReportsConfig(_Model):
    weekly: WeeklyReportConfig = WeeklyReportConfig()


class MonitorConfig(_Model):
    """[monitor]: storage, who "we" are, the clock and the polling cadence."""

    database: str = Field(default="sqlite:///pocwatch.db", validate_default=True)
    internal_domains: tuple[Domain, ...] = ()
    internal_addresses: tuple[Email, ...] = ()
    admins: tuple[Email, ...] = ()
    timezone: TimeZoneName = "UTC"
    poll_interval: PositiveDuration = timedelta(minutes=2)
    backfill: Duration = timedelta(days=14)
    http_listen: Listen = "127.0.0.1:9187"
    fetch_batch: Annotated[int, Field(strict=True, ge=1)] = 500

    @field_validator("database", mode="plain")
    @classmethod
    def _database(cls, value: object, info: ValidationInfo) -> str:
        return _database_url(_string(value, "an SQLAlchemy URL"), _config_dir(info))

    @model_validator(mode="after")
    def _knows_us(self) -> MonitorConfig:
        if not (self.internal_domains or self.internal_addresses):
            raise _fail(
                "set internal_domains (or internal_addresses): without them no reply is ours",
                "internal_domains",
            )
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def policy(self) -> InternalPolicy:
        """Who is one of us: internal_domains (and their subdomains), internal_addresses."""
        return InternalPolicy.of(self.internal_domains, self.internal_addresses)

    @property
    def http_address(self) -> tuple[str, int]:
        host, _, port = self.http_listen.rpartition(":")
        return host.strip("[]"), int(port)


_DATABASE_EXAMPLES = "sqlite:///FILE or postgresql+psycopg://USER@HOST/DB"


def _database_url(url: str, config_dir: Path) -> str:
    """Any SQLAlchemy URL whose driver is installed (product.md), a relative SQLite path made
    relative to the config file, not to the working directory. The URL is never quoted: it
    may hold a password."""
    match = re.fullmatch(r"([A-Za-z][A-Za-z0-9+.-]*)://(.*)", url, flags=re.DOTALL)
    if match is None:
        raise ValueError(f"invalid database URL (write {_DATABASE_EXAMPLES})")
    scheme, rest = match.groups()
    _check_database_driver(url)
    if scheme.split("+")[0].lower() != "sqlite" or not rest.startswith("/"):
        return url
    path, query = rest[1:], ""
    if "?" in path:
        path, query = path.split("?", 1)
        query = "?" + query
    if not path or path == ":memory:" or path.startswith(("/", "file:")):
        return url
    return f"{scheme}:///{(config_dir / path).as_posix()}{query}"


def _check_database_driver(url: str) -> None:
    """Refuse, at check-config, a URL whose database or driver SQLAlchemy cannot load: the
    first command would otherwise fail on it. pocwatch is tested on SQLite and PostgreSQL."""
    problem = url_problem(url)
    if problem is not None:
        raise ValueError(f"{problem} (pocwatch installs the drivers of {_DATABASE_EXAMPLES})")


class Config(_Model):
    """The whole of pocwatch.toml, validated; `path` is the file it came from."""

    monitor: MonitorConfig
    mailboxes: Annotated[tuple[MailboxConfig, ...], Field(min_length=1)]
    calendars: dict[str, CalendarConfig] = {}
    rules: RulesConfig = RulesConfig()  # made per set of rules by config_model
    accounts: tuple[AccountConfig, ...] = ()
    absences: tuple[AbsenceConfig, ...] = ()
    handoffs: tuple[HandoffConfig, ...] = ()
    smtp: SmtpConfig | None = None
    digests: DigestsConfig = DigestsConfig()
    reports: ReportsConfig = ReportsConfig()

    _path: Path = PrivateAttr(default_factory=lambda: Path(DEFAULT_CONFIG_FILE).absolute())

    def model_post_init(self, context: Any, /) -> None:
        if isinstance(context, Mapping) and context.get("path") is not None:
            self._path = Path(context["path"]).absolute()

    @model_validator(mode="after")
    def _effective_account_settings(self) -> Config:
        # Readers then see what an unset key means without knowing the default.
        accounts = tuple(
            account.model_copy(
                update={"calendar": (account.calendar or "default") if self.calendars else None}
            )
            for account in self.accounts
        )
        object.__setattr__(self, "accounts", accounts)
        return self

    @property
    def path(self) -> Path:
        return self._path

    def mailbox(self, name: str) -> MailboxConfig:
        for mailbox in self.mailboxes:
            if mailbox.name == name:
                return mailbox
        raise KeyError(name)

    def account(self, name: str) -> AccountConfig:
        for account in self.accounts:
            if account.name == name:
                return account
        raise KeyError(name)

    @property
    def default_calendar(self) -> CalendarConfig | None:
        """The calendar of threads without an account; None when every hour is open."""
        return self.calendars.get("default")

    def calendar_for(self, account: AccountConfig | None) -> CalendarConfig | None:
        """The account's calendar (None: every hour is open)."""
        if account is None or account.calendar is None:
            return self.default_calendar
        return self.calendars.get(account.calendar)


# -- loading -----------------------------------------------------------------------------------


@functools.cache
def _config_model(tables: tuple[tuple[str, type[RuleSettings]], ...]) -> type[Config]:
    kinds = [kind for _name, kind in tables]
    if len(set(kinds)) != len(kinds):  # RulesConfig.settings finds a table by its model
        raise TypeError("each rule needs a RuleSettings subclass of its own")
    rules = create_model(  # type: ignore[call-overload]
        "RulesConfig",
        __base__=RulesConfig,
        **{name: (kind, Field(default_factory=kind)) for name, kind in tables},
    )
    model: type[Config] = create_model(
        "Config", __base__=Config, rules=(rules, Field(default_factory=rules))
    )
    return model


def config_model(rules: RuleTables) -> type[Config]:
    """The Config model whose [rules] holds exactly these tables (one model per set)."""
    return _config_model(tuple(sorted(rules.items())))


def load_config(path: str | os.PathLike[str] | None, *, rules: RuleTables) -> Config:
    """Read and validate a config file; raise ConfigErrors naming every problem found.

    `rules` are the rules' settings models, by rule name: the rules package passes its own
    (rules.registry.load_config), so this module never lists them.
    """
    file = Path(path) if path is not None else default_config_path()
    name = os.fspath(file)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ConfigErrors([ConfigError(name, None, "", f"cannot read: {exc.strerror}")]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigErrors([ConfigError(name, line, "", "not UTF-8 text")]) from None
    return parse_config(text, file, rules=rules)


def parse_config(text: str, path: str | os.PathLike[str], *, rules: RuleTables) -> Config:
    """Validate TOML text as if read from `path` (relative paths in it are relative to that)."""
    name = os.fspath(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line, problem = syntax_error_position(exc, text)
        key = format_key_path(key_path_at_line(text, line))
        problem = problem[:1].lower() + problem[1:]
        raise ConfigErrors([ConfigError(name, line, key, f"invalid TOML: {problem}")]) from None
    lines = scan_key_lines(text)
    problems: list[tuple[KeyPath, str]] = []
    absolute = Path(path).absolute()
    model = config_model(rules)
    context = {"path": absolute, "config_dir": absolute.parent, "rule_names": sorted(rules)}
    try:
        config = model.model_validate(raw, context=context)
    except ValidationError as exc:
        details = exc.errors()
        failed = {tuple(error["loc"]) for error in details}
        problems.extend(
            _problem(model, error)
            for error in details
            # pydantic counts only the valid items of an array against its minimum length.
            if not (error["type"] == "too_short" and _has_descendant(failed, tuple(error["loc"])))
        )
        config = None
    problems.extend(_cross_references(raw))
    if problems:
        errors = [
            ConfigError(name, lines.locate(loc), format_key_path(loc), problem)
            for loc, problem in _unique(problems)
        ]
        errors.sort(key=lambda e: e.line or 0)
        raise ConfigErrors(errors)
    assert config is not None
    return config


def _has_descendant(paths: set[KeyPath], prefix: KeyPath) -> bool:
    return any(len(path) > len(prefix) and path[: len(prefix)] == prefix for path in paths)


def _unique(problems: list[tuple[KeyPath, str]]) -> list[tuple[KeyPath, str]]:
    return list(dict.fromkeys(problems))


_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "tuple_type": "an array",
    "list_type": "an array",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
}
_BOUNDS = {
    "greater_than": ("gt", "greater than"),
    "greater_than_equal": ("ge", "at least"),
    "less_than": ("lt", "less than"),
    "less_than_equal": ("le", "at most"),
}
_TABLES: dict[KeyPath, str] = {
    ("monitor",): "the [monitor] table is required",
    ("mailboxes",): "at least one [[mailboxes]] table is required",
}


def _problem(model: type[Config], error: ErrorDetails) -> tuple[KeyPath, str]:
    """Turn one pydantic error into (key path, the problem in the user's words)."""
    loc: KeyPath = tuple(error["loc"])
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    value = error.get("input")
    if kind == "pocwatch":
        key = ctx.get("key")
        return ((*loc, key) if key else loc), str(ctx["problem"])
    if kind == "missing":
        return loc, _TABLES.get(loc, "required key is missing")
    if kind == "extra_forbidden":
        word = str(loc[-1])
        return loc, f"unknown key {word!r}{_suggest(word, _allowed_keys(model, loc[:-1]))}"
    if kind == "value_error":
        return loc, str(ctx.get("error", error["msg"]))
    reveal = not _is_secret(loc)
    if kind in _EXPECTED:
        return loc, f"expected {_EXPECTED[kind]}, got {_describe(value, reveal=reveal)}"
    if kind in _BOUNDS:
        bound, words = _BOUNDS[kind]
        return loc, f"must be {words} {ctx[bound]}" + (f", got {value!r}" if reveal else "")
    if kind == "literal_error":
        return loc, f"must be one of {ctx['expected']}" + (f", got {value!r}" if reveal else "")
    if kind == "too_short":
        return loc, f"needs at least {ctx['min_length']} item(s)"
    return loc, error["msg"]


def _is_secret(loc: KeyPath) -> bool:
    """Whether the value at `loc` may be a secret, so no message may quote it."""
    return bool(loc) and loc[-1] in SECRET_KEYS


def _allowed_keys(model: type[Config], loc: Sequence[str | int]) -> list[str]:
    """The keys the table at `loc` accepts, for "did you mean" (walks the model types)."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        origin = get_origin(current)
        if isinstance(current, type) and issubclass(current, BaseModel) and isinstance(part, str):
            field = next(
                (f for n, f in current.model_fields.items() if (f.alias or n) == part), None
            )
            if field is None:
                return []
            current = field.annotation
        elif origin is tuple and isinstance(part, int):
            current = get_args(current)[0]
        elif origin is dict:
            current = get_args(current)[1]
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [field.alias or name for name, field in current.model_fields.items()]
    return []


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            options = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation


def _cross_references(raw: dict[str, Any]) -> list[tuple[KeyPath, str]]:
    """Checks across tables (names defined once, references to defined names).

    Run on the raw TOML, whatever else is wrong, so that one pass reports everything.
    """
    problems: list[tuple[KeyPath, str]] = []

    def tables(key: str) -> list[tuple[int, dict[str, Any]]]:
        items = raw.get(key)
        if not isinstance(items, list):
            return []
        return [(i, item) for i, item in enumerate(items) if isinstance(item, dict)]

    def names(key: str) -> list[str]:
        found: dict[str, int] = {}
        for index, item in tables(key):
            name = item.get("name")
            if not isinstance(name, str):
                continue
            name = name.strip()
            if name in found:
                problems.append(
                    ((key, index, "name"), f"{name!r} is already the name of {key}[{found[name]}]")
                )
            else:
                found[name] = index
        return list(found)

    def unknown(kind: str, name: str, defined: Sequence[str]) -> str:
        known = f" (defined: {', '.join(defined)})" if defined else f" (no {kind} is defined)"
        return f"no {kind} named {name!r}{_suggest(name, defined)}{known}"

    # Also checked by the models, but only once the rest of the table is valid.
    logins: list[tuple[KeyPath, dict[str, Any], bool]] = [
        (("mailboxes", i), item, True) for i, item in tables("mailboxes")
    ]
    if isinstance(raw.get("smtp"), dict):
        logins.append((("smtp",), raw["smtp"], "username" in raw["smtp"]))
    for loc, item, has_username in logins:
        keys = [key for key in SECRET_KEYS if key in item]
        problem = _secret_problem(keys, has_username=has_username)
        if problem is not None:
            key, text = problem
            problems.append(((*loc, key) if key else loc, text))

    mailboxes = names("mailboxes")
    accounts = names("accounts")
    calendars_raw = raw.get("calendars")
    calendars = list(calendars_raw) if isinstance(calendars_raw, dict) else []

    for index, account in tables("accounts"):
        listed = account.get("mailboxes")
        if isinstance(listed, list):
            for position, mailbox in enumerate(listed):
                if isinstance(mailbox, str) and mailbox.strip() not in mailboxes:
                    problems.append(
                        (
                            ("accounts", index, "mailboxes", position),
                            unknown("mailbox", mailbox, mailboxes),
                        )
                    )
        calendar = account.get("calendar")
        if isinstance(calendar, str):
            # "default" without any calendar at all is the always-open default.
            if calendar.strip() not in calendars and (calendars or calendar.strip() != "default"):
                problems.append(
                    (("accounts", index, "calendar"), unknown("calendar", calendar, calendars))
                )
        elif calendar is None and calendars and "default" not in calendars:
            problems.append(
                (
                    ("accounts", index),
                    "no calendar set and there is no [calendars.default]: set calendar",
                )
            )

    for index, handoff in tables("handoffs"):
        target = handoff.get("account")
        if isinstance(target, str) and target.strip() not in accounts:
            problems.append((("handoffs", index, "account"), unknown("account", target, accounts)))
    return problems
