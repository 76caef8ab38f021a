"""The neighbours file: one JSON line per query photo, its gallery neighbours best first (the one place that
defines the format; ``geo-r retrieve`` writes it, ``--candidates`` reads it).

::

    {"id": "<query id>",
     "neighbours": [{"id": "<gallery id>", "lat": 48.85, "lon": 2.35, "score": 0.912, "rank": 1,
                     "country": "France", "country_code": "FR", "region": "Ile-de-France", "city": "Paris",
                     "author": "35468159852@N01"}, ...],
     "dropped": {"self_id": 0, "self_content": 0, "same_author": 2, "near_duplicate": 1}}

A reader needs only ``id`` and, per neighbour, ``lat``, ``lon`` and ``score`` (:data:`REQUIRED_KEYS`; other
keys are ignored), so a file from another tool (G3's and GeoRanker's neighbour lists, converted) works.
``geo-r retrieve`` also writes ``rank`` (from 1), the gallery row's chain and ``author`` (null where the row
has none), and ``dropped`` (leakage-aware protocol: how many gallery rows each rule removed ahead of these
neighbours); with ``--protocol standard`` there is no ``dropped`` and each neighbour carries ``leak``, the
rule that would have dropped it, or null. ``score`` is the cosine similarity.

:func:`iter_neighbours` checks every line and, after the last, raises one :class:`NeighboursFileError` listing
every bad line with ``file:line``; :func:`read_neighbours` builds ``{query id: neighbours}`` from it, keeping
only the wanted ids and reducing each line as it is read, so a large file is never held whole.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geo_r.data.report import DataConfigError
from geo_r.data.schema import CHAIN_FIELDS
from geo_r.geo.candidates import Neighbour, check_point

REQUIRED_KEYS: tuple[str, ...] = ("lat", "lon", "score")
"""What a reader needs of each neighbour (``id`` is optional and read as text)."""
NEIGHBOUR_FIELDS: tuple[str, ...] = ("id", "lat", "lon", "score", "rank", *CHAIN_FIELDS, "author")
"""The keys ``geo-r retrieve`` writes for each neighbour (plus ``leak`` under the standard protocol)."""
LEAK_KEY = "leak"
DROPPED_KEY = "dropped"
MAX_LISTED_PROBLEMS = 20


class NeighboursFileError(DataConfigError):
    """A neighbours file that cannot be used; the message names the file and line(s)."""


@dataclass(frozen=True, slots=True)
class NeighboursLine:
    """One checked line: its number, the query id, the neighbours as :class:`Neighbour` s and the raw object
    (for the writer's extra keys: ``dropped``, ``leak``, chains)."""

    line_no: int
    id: str
    neighbours: list[Neighbour]
    raw: dict[str, Any]


def summary_path(path: str | os.PathLike[str]) -> Path:
    """The JSON summary ``geo-r retrieve`` writes beside a neighbours file: ``x.jsonl`` -> ``x.summary.json``."""
    p = Path(path)
    return p.with_name((p.name[: -len(".jsonl")] if p.name.endswith(".jsonl") else p.name) + ".summary.json")


def neighbour_entry(row: Mapping[str, Any], score: float, rank: int, leak: str | None = None,
                    standard: bool = False) -> dict[str, Any]:
    """One neighbour as ``geo-r retrieve`` writes it, from a gallery row (a mapping with :data:`NEIGHBOUR_FIELDS`
    other than score and rank); ``leak`` is written only under the standard protocol."""
    entry = {"id": row["id"], "lat": row["lat"], "lon": row["lon"], "score": round(float(score), 6), "rank": rank,
             **{name: row.get(name) for name in (*CHAIN_FIELDS, "author")}}
    if standard:
        entry[LEAK_KEY] = leak
    return entry


def neighbours_line(query_id: str, neighbours: list[dict[str, Any]],
                    dropped: Mapping[str, int] | None = None) -> dict[str, Any]:
    """One line of the file: the query id, its neighbours best first and (leakage-aware) the rules' counts."""
    line: dict[str, Any] = {"id": query_id, "neighbours": neighbours}
    if dropped is not None:
        line[DROPPED_KEY] = dict(dropped)
    return line


def _check(obj: object) -> tuple[str | None, list[Neighbour] | None, str | None]:
    """(query id, neighbours, None) of one decoded line, or (id or None, None, what is wrong)."""
    if not isinstance(obj, dict):
        return None, None, f"expected a JSON object, found {type(obj).__name__}"
    raw_id = obj.get("id")
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int) or raw_id == "":
        return None, None, f"'id' must be a non-empty string or an integer, found {raw_id!r}"
    qid = str(raw_id)
    items = obj.get("neighbours")
    if not isinstance(items, list):
        return qid, None, f"'neighbours' must be a list, found {type(items).__name__} (id {qid!r})"
    out = []
    for i, item in enumerate(items):
        where = f"neighbours[{i}] of id {qid!r}"
        if not isinstance(item, dict):
            return qid, None, f"{where} must be an object, found {type(item).__name__}"
        bad = check_point(item.get("lat"), item.get("lon"))
        if bad is not None:
            return qid, None, f"{where}: {bad}"
        score = item.get("score")
        if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
            return qid, None, f"{where}: score must be a finite number (cosine similarity), found {score!r}"
        nid = item.get("id")
        out.append(Neighbour("" if nid is None else str(nid), float(item["lat"]), float(item["lon"]), float(score)))
    return qid, out, None


class _Problems:
    """Bad lines of one file, the first :data:`MAX_LISTED_PROBLEMS` kept for the message."""

    def __init__(self, path: Path) -> None:
        self.path, self.listed, self.count = path, [], 0

    def add(self, line_no: int, message: str) -> None:
        self.count += 1
        if len(self.listed) < MAX_LISTED_PROBLEMS:
            self.listed.append(f"{self.path}:{line_no}: {message}")

    def raise_any(self) -> None:
        if self.count:
            more = f"\n  ... and {self.count - len(self.listed)} more" if self.count > len(self.listed) else ""
            raise NeighboursFileError(
                f"{self.count} bad line(s) in the neighbours file {self.path}:\n  " + "\n  ".join(self.listed) + more
            )


def _lines(path: Path, problems: _Problems) -> Iterator[NeighboursLine]:
    """The good lines of ``path``; bad ones go to ``problems``. Missing or unreadable: NeighboursFileError."""
    if not path.is_file():
        raise NeighboursFileError(f"the neighbours file {path}: no such file (write it with geo-r retrieve)")
    try:
        with open(path, "rb") as fh:
            for line_no, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    problems.add(line_no, f"not valid JSON ({getattr(exc, 'msg', exc)})")
                    continue
                qid, neighbours, bad = _check(obj)
                if bad is not None:
                    problems.add(line_no, bad)
                    continue
                assert qid is not None and neighbours is not None
                yield NeighboursLine(line_no, qid, neighbours, obj)
    except OSError as exc:
        raise NeighboursFileError(f"the neighbours file {path}: cannot read it ({exc})") from exc


def iter_neighbours(path: str | os.PathLike[str]) -> Iterator[NeighboursLine]:
    """Every good line of a neighbours file, in order; after the last line, one :class:`NeighboursFileError`
    listing every bad line (not JSON, no id, a neighbour without valid lat/lon or a finite score) with
    ``file:line``. A missing or unreadable file is a :class:`NeighboursFileError` naming it."""
    problems = _Problems(Path(path))
    yield from _lines(Path(path), problems)
    problems.raise_any()


def read_neighbours(
    path: str | os.PathLike[str],
    ids: Iterable[str] | None = None,
    reduce: Callable[[list[Neighbour]], Any] | None = None,
) -> tuple[dict[str, Any], int]:
    """``({id: neighbours}, lines read)`` of a neighbours file, keeping only ``ids`` (every id when None).

    ``reduce`` turns each kept line's neighbours into what is stored instead (e.g. its clustered candidates), so
    a large file is never held whole. Every line is checked; bad lines and a kept id on two lines raise one
    :class:`NeighboursFileError` that lists them with ``file:line``.
    """
    p = Path(path)
    wanted = None if ids is None else set(ids)
    found: dict[str, Any] = {}
    first_line: dict[str, int] = {}
    problems = _Problems(p)
    lines = 0
    for line in _lines(p, problems):
        lines += 1
        if wanted is not None and line.id not in wanted:
            continue
        if line.id in found:
            problems.add(line.line_no, f"id {line.id!r} is also on line {first_line[line.id]}; keep one line per photo")
            continue
        found[line.id] = line.neighbours if reduce is None else reduce(line.neighbours)
        first_line[line.id] = line.line_no
    problems.raise_any()
    return found, lines
