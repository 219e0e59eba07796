"""Obtain passwords and tokens from the config, the environment or a command, never logging them."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Mapping
from datetime import timedelta

from monitor.errors import SecretError

DEFAULT_COMMAND_TIMEOUT = timedelta(seconds=30)


def secret_from_env(name: str, environ: Mapping[str, str] | None = None) -> str:
    """The value of environment variable `name`; a missing or empty one is an error, not ''."""
    value = (os.environ if environ is None else environ).get(name)
    if value is None:
        raise SecretError(f"environment variable {name} is not set")
    if not value:
        raise SecretError(f"environment variable {name} is empty")
    return value


def secret_from_command(command: str, *, timeout: timedelta = DEFAULT_COMMAND_TIMEOUT) -> str:
    """Run `command` without a shell and return the first line of its stdout.

    The command is split like a shell would (quotes), but `;`, `|`, `$VAR` mean nothing: no
    shell ever sees it. Errors name the command, never what it printed (it may be the secret).
    """
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise SecretError(f"cannot split secret command {command!r}: {exc}") from None
    if not argv:
        raise SecretError("secret command is empty")
    try:
        result = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout.total_seconds(),
            check=False,
        )
    except FileNotFoundError:
        raise SecretError(f"secret command {command!r}: {argv[0]!r} not found") from None
    except PermissionError:
        raise SecretError(f"secret command {command!r}: {argv[0]!r} is not executable") from None
    except subprocess.TimeoutExpired:
        raise SecretError(
            f"secret command {command!r} did not finish within {timeout.total_seconds():g}s"
        ) from None
    except OSError as exc:
        raise SecretError(f"secret command {command!r} could not run: {exc.strerror}") from None
    if result.returncode != 0:
        raise SecretError(f"secret command {command!r} exited with status {result.returncode}")
    try:
        stdout = result.stdout.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretError(f"secret command {command!r} printed something not UTF-8") from None
    first = stdout.split("\n", 1)[0].rstrip("\r")
    if not first:
        raise SecretError(f"secret command {command!r} printed an empty first line")
    return first


def resolve_secret(
    *,
    password: str | None = None,
    password_env: str | None = None,
    password_command: str | None = None,
    oauth2_token_command: str | None = None,
    timeout: timedelta = DEFAULT_COMMAND_TIMEOUT,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The secret from whichever single source is configured (the config checked it is one)."""
    if password is not None:
        return password
    if password_env is not None:
        return secret_from_env(password_env, environ)
    command = password_command if password_command is not None else oauth2_token_command
    if command is not None:
        return secret_from_command(command, timeout=timeout)
    raise SecretError(
        "no secret configured: set password, password_env, password_command or oauth2_token_command"
    )
