"""Stream a CSV/TSV file row by row with ``csv`` (never pandas: Namibia's "NA" stays a string) and count bytes.

:class:`CsvFile` yields ``(line, fields)`` pairs for any delimited file; :func:`resolve_columns` maps the
contract's fields to the file's header names (case-insensitive, with aliases), so a format is declared as
data. Bytes read are counted below the text layer, which gives the progress bar a true total (the file
size) without a counting pass over millions of rows.
"""

from __future__ import annotations

import csv
import io
import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

# Fields of a source row that a CSV column can fill.
FIELDS: tuple[str, ...] = ("id", "image", "lat", "lon", "country", "country_code", "region", "city", "author")

# Text that means "no value" in exported tables, matched case-sensitively: "NA" is Namibia's ISO code and
# "Nan" a Thai city and province, so only the spellings tools write for a missing value are listed.
MISSING_TEXT = frozenset({"", "nan", "NaN", "None", "null", "NULL", "N/A", "n/a", "<NA>"})

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long YFCC descriptions exceed the 128 kB default

# Bytes that are not UTF-8 are decoded to lone surrogates (errors="surrogateescape"), which valid text never holds.
_NOT_UTF8 = re.compile("[\udc80-\udcff]")


class PrepareInputError(ValueError):
    """The input cannot be converted at all (missing file, no usable header); the message names the file."""


class _CountingRaw(io.RawIOBase):
    """A raw binary stream that counts the bytes read through it."""

    def __init__(self, raw: io.RawIOBase) -> None:
        self.raw = raw
        self.bytes_read = 0

    def readable(self) -> bool:
        """Always True: this is a reading stream."""
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        """Read into ``buffer`` from the wrapped stream, counting the bytes."""
        n = self.raw.readinto(buffer) or 0
        self.bytes_read += n
        return n

    def close(self) -> None:
        """Close the wrapped stream too."""
        self.raw.close()
        super().close()


class CsvFile:
    """A delimited text file read as ``(line, fields)``; ``bytes_read`` and ``size`` drive a progress bar.

    The delimiter is sniffed from the first line (tab when it has tabs and no commas) unless given. Lines
    are physical line numbers where the record ends (a quoted field can span lines).
    """

    def __init__(self, path: str | os.PathLike[str], delimiter: str | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise PrepareInputError(f"input file not found: {self.path}")
        self.size = self.path.stat().st_size
        self.delimiter = delimiter or sniff_delimiter(self.path)
        self._raw: _CountingRaw | None = None

    @property
    def bytes_read(self) -> int:
        """Bytes consumed so far (buffered ahead of the row being parsed, so a little ahead)."""
        return self._raw.bytes_read if self._raw is not None else 0

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """Every row as ``(line, fields)``; blank lines are skipped. Bytes that are not UTF-8 come through as
        lone surrogates, so the caller can reject that row alone (:func:`has_invalid_text`); a CSV syntax
        error that stops the parser raises :class:`PrepareInputError` naming the line."""
        raw = _CountingRaw(io.FileIO(self.path, "r"))
        self._raw = raw
        text = io.TextIOWrapper(
            io.BufferedReader(raw, 1 << 20), encoding="utf-8-sig", errors="surrogateescape", newline=""
        )
        reader = csv.reader(text, delimiter=self.delimiter)
        try:
            while True:
                try:
                    fields = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    raise PrepareInputError(f"{self.path}:{reader.line_num}: {exc}") from exc
                if fields and any(f.strip() for f in fields):
                    yield reader.line_num, fields
        finally:
            text.close()


def has_invalid_text(fields: Sequence[str]) -> bool:
    """True when a row read by :meth:`CsvFile.rows` held bytes that are not UTF-8."""
    return any(_NOT_UTF8.search(f) for f in fields)


def sniff_delimiter(path: Path) -> str:
    """``"\\t"`` when the first line has tabs and no commas, else ``","``."""
    with open(path, "rb") as f:
        first = f.readline(1 << 16)
    return "\t" if b"\t" in first and b"," not in first else ","


def resolve_columns(
    header: Sequence[str],
    spec: Mapping[str, Sequence[str]],
    required: Sequence[str],
    where: str,
    overrides: Mapping[str, str] | None = None,
) -> dict[str, list[int]]:
    """For each field of ``spec``, the indices of the header columns that fill it, in preference order.

    ``spec`` maps a field to header names (case-insensitive aliases); ``overrides`` (field -> exact column
    name, from ``--*_column`` flags) replace a field's aliases and must exist. A ``required`` field with no
    column raises :class:`PrepareInputError` naming the file and its header.
    """
    index: dict[str, int] = {}
    for i, name in enumerate(header):
        index.setdefault(name.strip().lower(), i)
    overrides = dict(overrides or {})
    found: dict[str, list[int]] = {}
    for field_name in list(spec) + [f for f in overrides if f not in spec]:
        if field_name in overrides:
            name = overrides[field_name]
            if name.strip().lower() not in index:
                raise PrepareInputError(
                    f"{where}:1: column {name!r} (--{field_name}_column) is not in the header {list(header)}"
                )
            found[field_name] = [index[name.strip().lower()]]
            continue
        hits = [index[a.lower()] for a in spec[field_name] if a.lower() in index]
        if hits:
            found[field_name] = list(dict.fromkeys(hits))
    missing = [f for f in required if f not in found]
    if missing:
        wanted = "; ".join(f"{f}: one of {', '.join(spec.get(f, ()))}" for f in missing)
        raise PrepareInputError(
            f"{where}:1: header {list(header)} has no column for {', '.join(missing)} ({wanted}); "
            "name the column with --<field>_column"
        )
    return found


def first_value(fields: Sequence[str], columns: Sequence[int]) -> str | None:
    """The first non-missing value among ``columns`` of a row (stripped), or None."""
    for i in columns:
        if i < len(fields):
            value = fields[i].strip()
            if value not in MISSING_TEXT:
                return value
    return None
