"""The neighbours file ``geo-r retrieve`` writes: one JSON line per query photo, its gallery neighbours best first.

::

    {"id": "<query id>",
     "neighbours": [{"id": "<gallery id>", "lat": 48.85, "lon": 2.35, "score": 0.912, "rank": 1,
                     "country": "France", "country_code": "FR", "region": "Ile-de-France", "city": "Paris",
                     "author": "35468159852@N01"}, ...],
     "dropped": {"self_id": 0, "self_content": 0, "same_author": 2, "near_duplicate": 1}}

``score`` is the cosine similarity (inner product of L2-normalised embeddings; the gallery's are stored in
float16, so about 1e-3 of rounding), ``rank`` counts from 1; chain fields and ``author`` are null where the
gallery row has none. ``dropped`` (leakage-aware protocol) counts the gallery rows each rule removed before
these neighbours; with ``--protocol standard`` it is absent and each neighbour carries ``leak``: the rule that
would have dropped it, or null. A query has fewer than k neighbours only when the gallery ran out.

Writing is append-only and durable (flush + fsync per batch); a rerun skips the ids already written and cuts
a half-written last line left by a kill.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from geo_r.retrieval.layout import RetrievalInputError

NEIGHBOUR_FIELDS = ("id", "lat", "lon", "score", "rank", "country", "country_code", "region", "city", "author")


def summary_path(out: str | os.PathLike) -> Path:
    """The JSON summary written beside a neighbours file: ``x.jsonl`` -> ``x.summary.json``."""
    p = Path(out)
    return p.with_name((p.name[: -len(".jsonl")] if p.name.endswith(".jsonl") else p.name) + ".summary.json")


def cut_partial_tail(path: str | os.PathLike) -> int:
    """Remove a last line without a newline (a write cut short by a kill); returns the bytes removed."""
    p = Path(path)
    if not p.is_file() or p.stat().st_size == 0:
        return 0
    data = p.read_bytes()
    if data.endswith(b"\n"):
        return 0
    keep = data.rfind(b"\n") + 1
    with open(p, "rb+") as fh:
        fh.truncate(keep)
    return len(data) - keep


def iter_neighbour_lines(path: str | os.PathLike) -> Iterable[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` of each line; :class:`RetrievalInputError` naming ``file:line`` for a line that
    is not ``{"id": str, "neighbours": [{"id", "lat", "lon", "score"}, ...]}``."""
    p = Path(path)
    with open(p, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{p}:{line_no}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RetrievalInputError(f"{where}: invalid JSON ({exc.msg})") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or not isinstance(
                    obj.get("neighbours"), list):
                raise RetrievalInputError(f"{where}: expected {{\"id\": <query id>, \"neighbours\": [...]}}")
            for i, n in enumerate(obj["neighbours"]):
                if not isinstance(n, dict) or not all(key in n for key in ("id", "lat", "lon", "score")):
                    raise RetrievalInputError(f"{where}: neighbours[{i}] lacks id, lat, lon or score")
            yield line_no, obj


def read_neighbours(path: str | os.PathLike) -> dict[str, list[dict[str, Any]]]:
    """``query id -> neighbours`` of a neighbours file; a repeated query id is an error naming both lines."""
    out: dict[str, list[dict[str, Any]]] = {}
    first: dict[str, int] = {}
    for line_no, obj in iter_neighbour_lines(path):
        if obj["id"] in out:
            raise RetrievalInputError(f"{path}:{line_no}: query id {obj['id']!r} already on line {first[obj['id']]}")
        out[obj["id"]] = obj["neighbours"]
        first[obj["id"]] = line_no
    return out


class NeighboursWriter:
    """Append lines to a neighbours file durably, one batch at a time (a context manager)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        cut_partial_tail(self.path)
        self._fh = open(self.path, "a", encoding="utf-8")

    def append(self, lines: Iterable[Mapping[str, Any]]) -> int:
        """Write the lines, then flush and fsync; returns how many were written."""
        text = "".join(json.dumps(dict(line), ensure_ascii=False, allow_nan=False) + "\n" for line in lines)
        if text:
            self._fh.write(text)
            self._fh.flush()
            os.fsync(self._fh.fileno())
        return text.count("\n")

    def close(self) -> None:
        """Close the file."""
        self._fh.close()

    def __enter__(self) -> NeighboursWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
