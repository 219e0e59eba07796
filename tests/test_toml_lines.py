"""The key-path -> line locator over TOML text."""

from __future__ import annotations

import json
import tomllib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.toml_lines import (
    KeyPath,
    format_key_path,
    key_path_at_line,
    scan_key_lines,
    syntax_error_position,
)

DOC = """\
# a comment [not] = "a table"
top = 1
[monitor]
internal_domains = ["example.com"]  # trailing [comment]
poll_interval = "2m"

[[mailboxes]]
name = "a"
folders = [
  "INBOX",   # a comment, with = and [brackets]
  "Sent",
]
[[mailboxes]]
name = "b"
note = \"\"\"
[fake.table]
fake = "key"
\"\"\"
port = 143
[mailboxes.extra]
inner = 'lit # not a comment'
[calendars.default]
hours = "09:00-17:30"
"quoted.key" = 1
dotted.key.path = 2
inline = { a = 1, b = { c = [1, 2] }, "d e" = "}" }
list = [{ x = 1 }, { y = [
  3,
] , z = 4 }]
[[accounts]]
name = "A"
[[accounts.contacts]]
who = "x"
[[accounts.contacts]]
who = "y"
[[accounts]]
name = "B"
"""


def test_the_document_is_valid_toml() -> None:
    tomllib.loads(DOC)


@pytest.mark.parametrize(
    ("path", "line"),
    [
        (("top",), 2),
        (("monitor",), 3),
        (("monitor", "internal_domains"), 4),
        (("monitor", "poll_interval"), 5),
        (("mailboxes",), 7),
        (("mailboxes", 0), 7),
        (("mailboxes", 0, "name"), 8),
        (("mailboxes", 0, "folders"), 9),
        (("mailboxes", 1), 13),
        (("mailboxes", 1, "name"), 14),
        (("mailboxes", 1, "note"), 15),
        (("mailboxes", 1, "port"), 19),
        (("mailboxes", 1, "extra"), 20),
        (("mailboxes", 1, "extra", "inner"), 21),
        (("calendars",), 22),
        (("calendars", "default"), 22),
        (("calendars", "default", "hours"), 23),
        (("calendars", "default", "quoted.key"), 24),
        (("calendars", "default", "dotted"), 25),
        (("calendars", "default", "dotted", "key", "path"), 25),
        (("calendars", "default", "inline", "b", "c"), 26),
        (("calendars", "default", "inline", "d e"), 26),
        (("calendars", "default", "list", 0, "x"), 27),
        (("calendars", "default", "list", 1), 27),
        (("calendars", "default", "list", 1, "y"), 27),
        (("calendars", "default", "list", 1, "z"), 29),
        (("accounts", 0, "name"), 31),
        (("accounts", 0, "contacts", 0), 32),
        (("accounts", 0, "contacts", 1, "who"), 35),
        (("accounts", 1), 36),
        (("accounts", 1, "name"), 37),
    ],
)
def test_each_key_is_found_at_its_line(path: KeyPath, line: int) -> None:
    assert scan_key_lines(DOC)[path] == line


def test_keys_inside_strings_are_not_keys() -> None:
    lines = scan_key_lines(DOC)
    assert ("fake",) not in lines
    assert ("fake", "table") not in lines
    assert ("mailboxes", 1, "fake") not in lines


def test_a_missing_key_points_at_its_table_header() -> None:
    lines = scan_key_lines(DOC)
    assert lines.locate(("mailboxes", 1, "host")) == 13
    assert lines.locate(("calendars", "default", "timezone")) == 22


def test_an_array_element_points_at_its_key() -> None:
    lines = scan_key_lines(DOC)
    assert lines.locate(("mailboxes", 0, "folders", 1)) == 9
    assert lines.locate(("monitor", "internal_domains", 0)) == 4


def test_nothing_written_points_at_line_1() -> None:
    lines = scan_key_lines(DOC)
    assert lines.locate(("smtp",)) == 1
    assert lines.locate(()) == 1


def test_multiline_strings_with_quotes_before_the_end() -> None:
    text = 'a = """x""""\nb = \'\'\'y\'\'\'\'\'\nc = "\\"" # "\nd = 1\n'
    assert tomllib.loads(text)["a"] == 'x"'
    lines = scan_key_lines(text)
    assert [lines[(k,)] for k in "abcd"] == [1, 2, 3, 4]


def test_line_continuation_in_multiline_string() -> None:
    text = 'a = """one \\\n   two"""\nb = 2\n'
    assert scan_key_lines(text)[("b",)] == 3


def test_crlf_line_endings() -> None:
    text = "[t]\r\na = 1\r\n\r\nb = [\r\n 1,\r\n]\r\nc = 3\r\n"
    tomllib.loads(text)
    lines = scan_key_lines(text)
    assert (lines[("t", "a")], lines[("t", "b")], lines[("t", "c")]) == (2, 4, 7)


def test_escaped_quoted_keys_are_decoded() -> None:
    lines = scan_key_lines("\"a\\u0062\" = 1\n'c.d' = 2\n")
    assert lines[("ab",)] == 1
    assert lines[("c.d",)] == 2


def test_broken_text_does_not_raise() -> None:
    for text in ["[", "[[a", "a = [1, 2", 'a = "x', 'a = """x', "a = {b = ", "= 1", "a.b."]:
        scan_key_lines(text)


def test_format_key_path() -> None:
    assert format_key_path(("mailboxes", 1, "port")) == "mailboxes[1].port"
    assert format_key_path(("accounts", 0, "domains", 2)) == "accounts[0].domains[2]"
    assert format_key_path(("calendars", "my cal", "hours")) == 'calendars."my cal".hours'
    assert format_key_path(()) == ""


def test_syntax_error_position() -> None:
    text = "a = 1\nb = 2x\n"
    with pytest.raises(tomllib.TOMLDecodeError) as caught:
        tomllib.loads(text)
    line, problem = syntax_error_position(caught.value, text)
    assert line == 2
    assert "(at line" not in problem
    assert "column" in problem


def test_syntax_error_at_end_of_document() -> None:
    text = "a = 1\nb = [1,\n"
    with pytest.raises(tomllib.TOMLDecodeError) as caught:
        tomllib.loads(text)
    assert syntax_error_position(caught.value, text)[0] == 2


def test_key_path_at_line() -> None:
    text = "[[mailboxes]]\nname = 'a'\n[[mailboxes]]\nport = 99x\n"
    assert key_path_at_line(text, 4) == ("mailboxes", 1, "port")
    assert key_path_at_line(text, 3) == ("mailboxes", 1)
    assert key_path_at_line("a = 1\n# broken\n", 2) == ()
    assert key_path_at_line(text, 99) == ()


# -- property: documents built from random tables, keys and values ------------------------------


class Writer:
    """Builds TOML text and records the line where each key path is written."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.line = 1
        self.expected: dict[KeyPath, int] = {}

    def emit(self, text: str) -> None:
        self.parts.append(text)
        self.line += text.count("\n")

    def expect(self, path: KeyPath) -> None:
        self.expected.setdefault(path, self.line)

    def text(self) -> str:
        return "".join(self.parts)


BARE = st.sampled_from(["a", "b", "c-d", "e_f", "g1", "port", "name", "1"])
TRICKY = "ab #=[]{}.,'\"\\\n"
# Keys need not be bare: quoted ones may hold any of TOML's special characters.
KEY = st.one_of(BARE, st.text(alphabet="xy .#=[]'\"", min_size=1, max_size=4))


def render_key(key: str) -> str:
    if key.isascii() and key.replace("-", "").replace("_", "").isalnum():
        return key
    return json.dumps(key)


@st.composite
def scalar(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["int", "bool", "date", "datetime", "basic", "literal", "ml"]))
    if kind == "int":
        return str(draw(st.integers(-(10**6), 10**6)))
    if kind == "bool":
        return draw(st.sampled_from(["true", "false"]))
    if kind == "date":
        return "1979-05-27"
    if kind == "datetime":
        return "1979-05-27 07:32:00Z"
    if kind == "basic":
        return json.dumps(draw(st.text(alphabet=TRICKY, max_size=8)))
    if kind == "literal":
        return "'" + draw(st.text(alphabet='ab #=[]{}"\\', max_size=8)) + "'"
    body = draw(st.text(alphabet='ab #=[]{}\n"', max_size=12)).replace('""', '"a"')
    quotes = '"' * draw(st.integers(0, 2)) if not body.endswith('"') else ""
    delimiter = draw(st.sampled_from(['"""', "'''"]))
    if delimiter == "'''":
        body = body.replace("'", "")
        quotes = quotes.replace('"', "'")
    return delimiter + body + quotes + delimiter


def write_value(w: Writer, path: KeyPath, draw: st.DrawFn, depth: int) -> None:
    kind = draw(st.sampled_from(["scalar", "array", "table"] if depth < 2 else ["scalar"]))
    if kind == "scalar":
        w.emit(draw(scalar()))
    elif kind == "array":
        multiline = draw(st.booleans())
        w.emit("[")
        for index in range(draw(st.integers(0, 3))):
            w.emit("\n  " if multiline else " ")
            if draw(st.booleans()):
                w.expect((*path, index))
                write_inline_table(w, (*path, index), draw, depth + 1)
            else:
                write_value(w, (*path, index), draw, depth + 1)
            w.emit(",")
            if multiline and draw(st.booleans()):
                w.emit(" # , ] } = [x]")
        w.emit("\n]" if multiline else " ]")
    else:
        write_inline_table(w, path, draw, depth + 1)


def write_inline_table(w: Writer, path: KeyPath, draw: st.DrawFn, depth: int) -> None:
    keys = draw(st.lists(KEY, unique=True, max_size=3))
    w.emit("{ ")
    for position, key in enumerate(keys):
        w.emit(", " if position else "")
        w.expect((*path, key))
        w.emit(f"{render_key(key)} = ")
        write_value(w, (*path, key), draw, depth)
    w.emit(" }")


def write_keys(w: Writer, table: KeyPath, draw: st.DrawFn) -> None:
    keys = draw(st.lists(KEY, unique=True, max_size=4))
    for key in keys:
        if draw(st.booleans()):
            # A dotted key: its first part must not clash with a sibling.
            w.expect((*table, key))
            w.expect((*table, key, "sub"))
            w.emit(f"{render_key(key)} . sub = ")
            write_value(w, (*table, key, "sub"), draw, 0)
        else:
            w.expect((*table, key))
            w.emit(f"{render_key(key)} = ")
            write_value(w, (*table, key), draw, 0)
        w.emit(draw(st.sampled_from(["\n", "  # note = [x]\n", "\n\n"])))


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, dict[KeyPath, int]]:
    w = Writer()
    write_keys(w, (), draw)
    used = {key for (key, *_) in w.expected}
    tables = draw(st.lists(st.sampled_from(["t", "u", "v w"]), unique=True, max_size=3))
    arrays = draw(st.lists(st.sampled_from(["m", "n"]), max_size=4))
    for name in tables:
        if name in used:
            continue
        w.expect((name,))
        w.emit(f"[{render_key(name)}]\n")
        write_keys(w, (name,), draw)
    counts: dict[str, int] = {}
    for name in arrays:
        if name in used:
            continue
        index = counts.get(name, 0)
        counts[name] = index + 1
        w.expect((name,))
        w.expect((name, index))
        w.emit(f"[[ {name} ]]\n")
        write_keys(w, (name, index), draw)
        if draw(st.booleans()):
            table = (name, index, "sub table")
            if table[2:] not in {k[2:3] for k in w.expected if k[:2] == (name, index)}:
                w.expect(table)
                w.emit(f'[{name}."sub table"]\n')
                write_keys(w, table, draw)
    return w.text(), w.expected


def leaf_paths(value: Any, path: KeyPath = ()) -> list[KeyPath]:
    """Every key path tomllib sees (array elements that are tables included)."""
    if isinstance(value, dict):
        found = [path] if path else []
        for key, item in value.items():
            found += leaf_paths(item, (*path, key))
        return found
    if isinstance(value, list):
        found = [path]
        for index, item in enumerate(value):
            if isinstance(item, dict):
                found += leaf_paths(item, (*path, index))
            elif isinstance(item, list):
                found += [p for p in leaf_paths(item, (*path, index)) if p != (*path, index)]
        return found
    return [path]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_every_generated_key_is_found_where_it_was_written(
    doc: tuple[str, dict[KeyPath, int]],
) -> None:
    text, expected = doc
    parsed = tomllib.loads(text)  # the generator writes valid TOML only
    lines = scan_key_lines(text)
    for path, line in expected.items():
        assert lines.get(path) == line, (path, text)
    for path in leaf_paths(parsed):
        assert path in lines, (path, text)
