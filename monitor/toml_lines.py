"""Find the line where each key of a TOML document is written (tomllib gives no positions)."""

from __future__ import annotations

import bisect
import json
import re
import tomllib
from collections.abc import Iterator, Mapping, Sequence

KeyPath = tuple[str | int, ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SYNTAX_POSITION = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)\s*$")
_SCALAR_END = frozenset(",]}#\r\n")
_SPACE = frozenset(" \t")


def format_key_path(path: Sequence[str | int]) -> str:
    """Write a key path as users read it: `mailboxes[1].port`, `calendars."my cal".hours`."""
    out: list[str] = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
            continue
        text = part if _BARE_KEY.fullmatch(part) else json.dumps(part, ensure_ascii=False)
        out.append(f".{text}" if out else text)
    return "".join(out)


class KeyLines(Mapping[KeyPath, int]):
    """Key path -> 1-based line of its first appearance (tables map to their header line)."""

    def __init__(self, lines: dict[KeyPath, int]) -> None:
        self._lines = lines

    def __getitem__(self, path: KeyPath) -> int:
        return self._lines[path]

    def __iter__(self) -> Iterator[KeyPath]:
        return iter(self._lines)

    def __len__(self) -> int:
        return len(self._lines)

    def locate(self, path: Sequence[str | int]) -> int:
        """The line of `path`, else of its nearest written ancestor (a missing key's table).

        An element of an array (`accounts[0].domains[2]`) points at its key's line; the root
        (nothing written at all) is line 1.
        """
        key = tuple(path)
        while key:
            line = self._lines.get(key)
            if line is not None:
                return line
            key = key[:-1]
        return 1


def scan_key_lines(text: str) -> KeyLines:
    """Map every key path written in `text` (assumed valid TOML) to its line.

    Tolerant: on text tomllib would refuse it still returns what it could read, never raises.
    """
    scanner = _Scanner(text)
    scanner.document()
    return KeyLines(scanner.lines)


def syntax_error_position(exc: tomllib.TOMLDecodeError, text: str) -> tuple[int, str]:
    """The line tomllib's message names, and the message without its position suffix."""
    message = str(exc)
    match = _SYNTAX_POSITION.search(message)
    if match is None:
        return 1, message
    problem = message[: match.start()]
    if match[1] is None:  # "at end of document"
        return text.count("\n") + (0 if text.endswith("\n") else 1) or 1, problem
    return int(match[1]), f"{problem} (column {match[2]})"


def key_path_at_line(text: str, line: int) -> KeyPath:
    """The key (or table header) a possibly broken line writes, resolved as in force there.

    Used to name the key of a TOML syntax error, where tomllib only gives the line; () if the
    line names none.
    """
    lines = text.split("\n")
    if not 1 <= line <= len(lines):
        return ()
    before = _Scanner("\n".join(lines[: line - 1]))
    before.document()
    row = _Scanner(lines[line - 1])
    row.skip_space()
    if row.peek() == "[":
        row.table, row._array_tables = before.table, dict(before._array_tables)
        row.header(array=row.peek(2) == "[[")
        return row.table if row.table != before.table else ()
    if row.at_end() or row.peek() == "#":
        return ()
    segments = row.key()
    row.skip_space()
    if not segments or row.peek() != "=":
        return ()
    return before.table + tuple(segments)


class _Scanner:
    """A recursive-descent walk of TOML that records where keys are, skipping values."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.lines: dict[KeyPath, int] = {}
        self.table: KeyPath = ()
        self._array_tables: dict[KeyPath, int] = {}
        self._newlines = [i for i, char in enumerate(text) if char == "\n"]

    # -- low level -------------------------------------------------------------------------

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self, size: int = 1) -> str:
        return self.text[self.pos : self.pos + size]

    def line(self) -> int:
        return bisect.bisect_left(self._newlines, self.pos) + 1

    def record(self, path: KeyPath, line: int) -> None:
        self.lines.setdefault(path, line)

    def skip_space(self) -> None:
        while not self.at_end() and self.text[self.pos] in _SPACE:
            self.pos += 1

    def skip_blank(self) -> None:
        """Spaces, newlines and comments: what may separate array and inline-table items."""
        while not self.at_end():
            char = self.text[self.pos]
            if char in " \t\r\n":
                self.pos += 1
            elif char == "#":
                self.skip_line()
            else:
                return

    def skip_line(self) -> None:
        end = self.text.find("\n", self.pos)
        self.pos = len(self.text) if end < 0 else end + 1

    # -- structure -------------------------------------------------------------------------

    def document(self) -> None:
        while True:
            self.skip_blank()
            if self.at_end():
                return
            start = self.pos
            if self.peek(2) == "[[":
                self.header(array=True)
            elif self.peek() == "[":
                self.header(array=False)
            else:
                self.keyval(self.table)
            self.skip_space()
            # Whatever is left on the line is a comment (or junk in broken text).
            if not self.at_end() and self.peek() != "\n":
                self.skip_line()
            if self.pos == start:
                self.skip_line()

    def header(self, *, array: bool) -> None:
        line = self.line()
        self.pos += 2 if array else 1
        segments = self.key()
        self.skip_space()
        self.pos += len("]]" if array else "]")
        path: KeyPath = ()
        for index, segment in enumerate(segments):
            path += (segment,)
            if array and index == len(segments) - 1:
                count = self._array_tables.get(path, 0)
                self._array_tables[path] = count + 1
                self.record(path, line)
                path += (count,)
            elif path in self._array_tables:
                # `[a.b]` after `[[a]]` extends the latest element of a.
                path += (self._array_tables[path] - 1,)
            self.record(path, line)
        self.table = path

    def keyval(self, base: KeyPath) -> None:
        line = self.line()
        segments = self.key()
        if not segments:
            return
        path = base
        for segment in segments:
            path += (segment,)
            self.record(path, line)
        self.skip_space()
        if self.peek() != "=":
            return
        self.pos += 1
        self.skip_space()
        self.value(path)

    def key(self) -> list[str]:
        segments: list[str] = []
        while True:
            self.skip_space()
            char = self.peek()
            if char == '"':
                segments.append(self.basic_key())
            elif char == "'":
                end = self.text.find("'", self.pos + 1)
                end = len(self.text) if end < 0 else end
                segments.append(self.text[self.pos + 1 : end])
                self.pos = end + 1
            else:
                match = _BARE_KEY.match(self.text, self.pos)
                if match is None:
                    return segments
                segments.append(match[0])
                self.pos = match.end()
            self.skip_space()
            if self.peek() != ".":
                return segments
            self.pos += 1

    def basic_key(self) -> str:
        start = self.pos
        self.pos += 1
        while not self.at_end() and self.text[self.pos] not in '"\n':
            self.pos += 2 if self.text[self.pos] == "\\" else 1
        self.pos = min(self.pos + 1, len(self.text))
        raw = self.text[start : self.pos]
        try:
            # tomllib knows every escape (\u, \U, \e ...) better than we would.
            decoded = tomllib.loads(f"k = {raw}")["k"]
        except tomllib.TOMLDecodeError:
            return raw.strip('"')
        return decoded if isinstance(decoded, str) else raw.strip('"')

    # -- values ----------------------------------------------------------------------------

    def value(self, path: KeyPath) -> None:
        char = self.peek()
        if self.peek(3) in ('"""', "'''"):
            self.multiline_string(self.peek(3))
        elif char == '"':
            self.single_line_string(escapes=True)
        elif char == "'":
            self.single_line_string(escapes=False)
        elif char == "[":
            self.array(path)
        elif char == "{":
            self.inline_table(path)
        else:
            while not self.at_end() and self.text[self.pos] not in _SCALAR_END:
                self.pos += 1

    def single_line_string(self, *, escapes: bool) -> None:
        quote = self.text[self.pos]
        self.pos += 1
        while not self.at_end():
            char = self.text[self.pos]
            if char == "\\" and escapes:
                self.pos += 2
            elif char == quote:
                self.pos += 1
                return
            elif char == "\n":
                return
            else:
                self.pos += 1

    def multiline_string(self, delimiter: str) -> None:
        self.pos += 3
        escapes = delimiter == '"""'
        while not self.at_end():
            if escapes and self.text[self.pos] == "\\":
                self.pos += 2
            elif self.peek(3) == delimiter:
                self.pos += 3
                # Up to two quotes right before the closing ones belong to the content.
                extra = 0
                while extra < 2 and self.peek() == delimiter[0]:
                    self.pos += 1
                    extra += 1
                return
            else:
                self.pos += 1

    def array(self, path: KeyPath) -> None:
        self.pos += 1
        index = 0
        while True:
            self.skip_blank()
            if self.at_end():
                return
            if self.peek() == "]":
                self.pos += 1
                return
            start = self.pos
            if self.peek() == "{":
                self.record((*path, index), self.line())
            self.value((*path, index))
            index += 1
            self.skip_blank()
            if self.peek() == ",":
                self.pos += 1
            elif self.pos == start:
                self.pos += 1  # junk in broken text: make progress

    def inline_table(self, path: KeyPath) -> None:
        self.pos += 1
        while True:
            self.skip_blank()
            if self.at_end():
                return
            if self.peek() == "}":
                self.pos += 1
                return
            start = self.pos
            self.keyval(path)
            self.skip_blank()
            # A comma, or junk in broken text: either way, make progress.
            if self.peek() == "," or self.pos == start:
                self.pos += 1
