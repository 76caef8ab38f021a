"""Stream the raw JSON values of a data file, each with its line number: JSON Lines or one JSON array.

The format is read from the content, not the extension: a file whose first non-blank character is ``[``
is one array of records (``.json`` as Geo-R and LLaMA-Factory write them); anything else is JSON Lines.
Both are streamed (a JSON array is decoded element by element from a growing buffer), so memory stays
at one record plus a read chunk, not the whole file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20  # characters read at a time from a JSON array
_WHITESPACE = " \t\n\r"
_AFTER_VALUE = frozenset(_WHITESPACE + ",]")


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One decoded value, or the reason it could not be decoded (``error`` set, ``value`` None)."""

    line: int  # 1-based line where the record starts
    element: int | None  # index in a JSON array; None for JSON Lines
    value: Any = None
    error: str | None = None
    fatal: bool = False  # True when nothing after this point of the file can be read
    end: int = 0  # bytes of the file read up to the end of this record (characters in a JSON array): progress


def detect_format(path: str | Path) -> str:
    """``"json-array"`` when the first non-blank character of the file is ``[``, else ``"jsonl"``."""
    with open(path, "rb") as f:
        while True:
            chunk = f.read(4096)
            if not chunk:
                return "jsonl"
            stripped = chunk.lstrip(b" \t\r\n\xef\xbb\xbf")  # whitespace and a UTF-8 BOM
            if stripped:
                return "json-array" if stripped[:1] == b"[" else "jsonl"


def iter_raw_records(path: str | Path, fmt: str | None = None) -> Iterator[RawRecord]:
    """Yield every record of ``path`` (JSON Lines or JSON array, see :func:`detect_format`)."""
    fmt = fmt or detect_format(path)
    if fmt == "json-array":
        yield from _iter_json_array(path)
    else:
        yield from _iter_jsonl(path)


def _iter_jsonl(path: str | Path) -> Iterator[RawRecord]:
    """One record per non-blank line; a line that is not valid JSON (or not UTF-8) is an error record."""
    end = 0
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            end += len(raw)
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if not raw.strip():
                continue
            try:
                value = json.loads(raw.decode("utf-8"))  # decoding first skips json's encoding sniffing
            except UnicodeDecodeError as exc:
                yield RawRecord(lineno, None, error=f"malformed JSON line: not valid UTF-8 ({exc.reason})", end=end)
            except ValueError as exc:
                yield RawRecord(lineno, None, error=f"malformed JSON line: {_short(exc)}", end=end)
            else:
                yield RawRecord(lineno, None, value=value, end=end)


def _short(exc: Exception) -> str:
    """The JSON error message without the ``line 1 column 5 (char 4)`` tail, which says nothing on one line."""
    msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
    if isinstance(exc, json.JSONDecodeError):
        msg = f"{msg} at column {exc.colno}"
    return msg


class _ArrayStream:
    """A text buffer over a file that grows on demand and tracks the line number of its read position."""

    def __init__(self, f: Any) -> None:
        self.f = f
        self.buf = ""
        self.pos = 0
        self.line = 1
        self.eof = False
        self.chunk = _CHUNK
        self.read_total = 0  # characters read from the file so far

    @property
    def consumed(self) -> int:
        """Characters of the file before the read position."""
        return self.read_total - len(self.buf) + self.pos

    def fill(self) -> bool:
        """Append the next chunk (dropping what was consumed); False at end of file. Chunks grow so that a
        record larger than a chunk costs O(size log size), not O(size^2)."""
        if self.eof:
            return False
        data = self.f.read(self.chunk)
        if not data:
            self.eof = True
            return False
        self.read_total += len(data)
        self.buf = self.buf[self.pos :] + data
        self.pos = 0
        return True

    def grow(self) -> bool:
        """Read a bigger chunk because the current record does not fit yet."""
        self.chunk = min(self.chunk * 2, 1 << 28)
        return self.fill()

    def advance(self, new_pos: int) -> None:
        """Move the read position, counting the newlines passed."""
        self.line += self.buf.count("\n", self.pos, new_pos)
        self.pos = new_pos

    def skip_whitespace(self) -> str:
        """Skip blanks; the next character, or "" at end of file."""
        while True:
            n = len(self.buf)
            p = self.pos
            while p < n and self.buf[p] in _WHITESPACE:
                p += 1
            self.advance(p)
            if p < n:
                return self.buf[p]
            if not self.fill():
                return ""


def _iter_json_array(path: str | Path) -> Iterator[RawRecord]:
    """Decode ``[v0, v1, ...]`` element by element. A syntax error stops the file (a JSON array cannot be
    resynchronised); it is reported at its line with the records decoded before it kept."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        s = _ArrayStream(f)
        try:
            yield from _decode_array(s)
        except UnicodeDecodeError as exc:
            yield RawRecord(s.line, None, error=f"malformed JSON: not valid UTF-8 ({exc.reason})", fatal=True)


def _decode_array(s: _ArrayStream) -> Iterator[RawRecord]:
    """The element loop of :func:`_iter_json_array`."""
    decoder = json.JSONDecoder()
    s.fill()
    if s.skip_whitespace() != "[":  # detect_format saw "[", so this only fails if the file changed
        yield RawRecord(s.line, None, error="malformed JSON: expected '[' at the start", fatal=True)
        return
    s.advance(s.pos + 1)
    index = 0
    if s.skip_whitespace() == "]":
        s.advance(s.pos + 1)
        yield from _trailing(s)
        return
    while True:
        if s.skip_whitespace() == "":
            yield RawRecord(s.line, index, error="malformed JSON array: file ends before ']'", fatal=True)
            return
        start_line = s.line
        while True:
            try:
                value, end = decoder.raw_decode(s.buf, s.pos)
            except json.JSONDecodeError as exc:
                if s.grow():
                    continue
                line = s.line + s.buf.count("\n", s.pos, exc.pos)
                yield RawRecord(line, index, error=f"malformed JSON in array element: {exc.msg}", fatal=True)
                return
            # A value must end at a separator: "12" or "0." at the buffer's end may be a cut "123" or "0.5".
            if (end == len(s.buf) or s.buf[end] not in _AFTER_VALUE) and s.grow():
                continue
            break
        s.advance(end)
        yield RawRecord(start_line, index, value=value, end=s.consumed)
        index += 1
        sep = s.skip_whitespace()
        if sep == ",":
            s.advance(s.pos + 1)
        elif sep == "]":
            s.advance(s.pos + 1)
            yield from _trailing(s)
            return
        else:
            error = f"expected ',' or ']', found {sep!r}" if sep else "file ends before ']'"
            yield RawRecord(s.line, index, error=f"malformed JSON array: {error}", fatal=True)
            return


def _trailing(s: _ArrayStream) -> Iterator[RawRecord]:
    """Anything but blanks after the closing ``]`` is an error."""
    nxt = s.skip_whitespace()
    if nxt:
        yield RawRecord(
            s.line, None, error=f"malformed JSON: unexpected {nxt!r} after the closing ']'", fatal=True
        )
