"""Secrets from the environment and from commands run without a shell."""

from __future__ import annotations

import shlex
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.errors import SecretError
from monitor.secrets import resolve_secret, secret_from_command, secret_from_env

PY = shlex.quote(sys.executable)


def python(code: str) -> str:
    return f"{PY} -c {shlex.quote(code)}"


def test_env_variable() -> None:
    assert secret_from_env("IMAP_PW", {"IMAP_PW": "s3cret"}) == "s3cret"


def test_missing_env_variable_names_it() -> None:
    with pytest.raises(SecretError, match="environment variable IMAP_PW is not set"):
        secret_from_env("IMAP_PW", {})


def test_empty_env_variable_is_an_error() -> None:
    with pytest.raises(SecretError, match="IMAP_PW is empty"):
        secret_from_env("IMAP_PW", {"IMAP_PW": ""})


def test_env_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POCWATCH_TEST_SECRET", "from-env")
    assert secret_from_env("POCWATCH_TEST_SECRET") == "from-env"


def test_command_gives_the_first_line_of_stdout() -> None:
    assert secret_from_command(python("print('tok3n'); print('second line')")) == "tok3n"


def test_command_strips_a_crlf_ending() -> None:
    code = "import sys; sys.stdout.buffer.write(b'tok3n\\r\\nmore')"
    assert secret_from_command(python(code)) == "tok3n"


def test_command_keeps_spaces_inside_the_line() -> None:
    assert secret_from_command(python("print(' a b ')")) == " a b "


def test_command_runs_without_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    # With a shell, `;` would start a second command that creates the marker.
    secret = secret_from_command(f"echo safe ; touch {shlex.quote(str(marker))}")
    assert secret == f"safe ; touch {marker}"
    assert not marker.exists()


def test_shell_variables_are_not_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POCWATCH_TEST_SECRET", "expanded")
    assert secret_from_command("echo $POCWATCH_TEST_SECRET") == "$POCWATCH_TEST_SECRET"


def test_failing_command_names_the_command_but_not_its_output() -> None:
    # The output is assembled at run time, so the command text itself does not contain it.
    code = (
        "import sys; print('leaked-' + 'secret'); sys.stderr.write('dia' + 'gnostic'); sys.exit(3)"
    )
    with pytest.raises(SecretError) as caught:
        secret_from_command(python(code))
    message = str(caught.value)
    assert "exited with status 3" in message
    assert "import sys" in message
    assert "leaked-secret" not in message
    assert "diagnostic" not in message


def test_missing_program() -> None:
    with pytest.raises(SecretError, match="'no-such-program-pocwatch' not found"):
        secret_from_command("no-such-program-pocwatch --get")


def test_empty_output_is_an_error() -> None:
    with pytest.raises(SecretError, match="empty first line"):
        secret_from_command(python("print(); print('x')"))


def test_timeout() -> None:
    with pytest.raises(SecretError, match=r"did not finish within 0\.5s"):
        secret_from_command(
            python("import time; time.sleep(10)"), timeout=timedelta(milliseconds=500)
        )


def test_unsplittable_command() -> None:
    with pytest.raises(SecretError, match="cannot split"):
        secret_from_command('echo "unterminated')


def test_empty_command() -> None:
    with pytest.raises(SecretError, match="empty"):
        secret_from_command("   ")


def test_resolve_picks_the_configured_source() -> None:
    assert resolve_secret(password="pw") == "pw"
    assert resolve_secret(password_env="V", environ={"V": "env"}) == "env"
    assert resolve_secret(password_command=python("print('cmd')")) == "cmd"
    assert resolve_secret(oauth2_token_command=python("print('tok')")) == "tok"


def test_resolve_without_any_source() -> None:
    with pytest.raises(SecretError, match="no secret configured"):
        resolve_secret()
