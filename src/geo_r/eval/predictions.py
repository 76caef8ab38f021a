"""The resumable, append-only predictions file of an evaluation run, and reading any predictions file.

Layout: one JSON object per line, ``id`` and ``completion`` (the raw model text) first, then what the harness
derived when it wrote the line (``pred_country``, ``pred_region``, ``pred_city``, ``pred_lat``, ``pred_lon``,
``true_lat``, ``true_lon``, ``distance_km`` under the run's distance), and with ``--num_samples K`` the K
sampled completions in ``samples`` (``completion`` stays the greedy answer). Only ``id``, ``completion`` and
``samples`` are read back: scoring always re-parses the completion, so ``geo-r eval --predictions FILE``
accepts any file with ``id`` and ``completion``, including one written by another tool.

Resuming: :class:`PredictionWriter` appends each batch, then flushes and fsyncs, so a killed run loses at most
the batch in flight. A kill in the middle of a write can leave half a line at the end of the file; opening the
writer again cuts that partial line off (with a warning) before appending, so no line is ever glued to a
broken one. With torchrun each rank appends to its own ``predictions.rank<R>.jsonl``; rank 0 merges them into
``predictions.jsonl`` (ids deduplicated, first occurrence wins) once every rank is done.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from geo_r.atomic_io import JsonlAppender, atomic_write, cut_partial_line
from geo_r.data.schema import GeoRecord
from geo_r.geo import parse_prediction

logger = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.jsonl"
SHARD_PATTERN = "predictions.rank*.jsonl"


class PredictionsFileError(ValueError):
    """A predictions file line that cannot be used; the message names the file and line."""


def shard_path(output_dir: str | os.PathLike, rank: int) -> Path:
    """The file rank ``rank`` appends to under torchrun: ``predictions.rank<R>.jsonl``."""
    return Path(output_dir) / f"predictions.rank{rank}.jsonl"


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def prediction_line(
    record: GeoRecord, completion: str, distance: str = "haversine", samples: Sequence[str] | None = None
) -> dict[str, Any]:
    """The JSON object written for one image: raw completion, parsed fields, truth and error in km, and with
    ``geo-r eval --num_samples K`` the K sampled completions (``samples``)."""
    from geo_r.eval.scoring import distance_km

    pred = parse_prediction(completion)
    d = (
        distance_km(record.lat, record.lon, pred.lat, pred.lon, distance)  # type: ignore[arg-type]
        if pred.has_coordinates
        else None
    )
    return {
        "id": record.id,
        "completion": completion,
        "pred_country": pred.country,
        "pred_region": pred.region,
        "pred_city": pred.city,
        "pred_lat": pred.lat,
        "pred_lon": pred.lon,
        "true_lat": record.lat,
        "true_lon": record.lon,
        "distance_km": _finite(d),
        "distance": distance,
    } | ({} if samples is None else {"samples": list(samples)})


def repair_tail(path: str | os.PathLike) -> int:
    """Cut a partial last line (no trailing newline: a write interrupted by a kill) off ``path``, with a warning;
    returns the number of bytes removed (0 when the file is missing, empty or ends with a newline)."""
    removed = cut_partial_line(path)
    if removed:
        logger.warning("%s: removed an incomplete last line (%d bytes) left by an interrupted run", path, removed)
    return removed


class PredictionWriter(JsonlAppender):
    """Append prediction lines to a jsonl file, durably, one batch at a time (use as a context manager); opening
    it cuts a partial last line, with a warning."""

    def __init__(self, path: str | os.PathLike) -> None:
        repair_tail(path)
        super().__init__(path)


def _parse_line(line: str, where: str) -> dict[str, Any] | None:
    """One line as a checked object (``id`` turned into a string); None for a blank line."""
    if not line.strip():
        return None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise PredictionsFileError(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise PredictionsFileError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    pid = obj.get("id")
    if isinstance(pid, bool) or not isinstance(pid, str | int) or (isinstance(pid, str) and not pid):
        raise PredictionsFileError(f"{where}: 'id' must be a non-empty string or an integer")
    if not isinstance(obj.get("completion"), str):
        raise PredictionsFileError(
            f"{where}: 'completion' must be the model's text (a string), got {type(obj.get('completion')).__name__}"
        )
    obj["id"] = str(pid)
    return obj


def iter_prediction_lines(
    path: str | os.PathLike, *, skip_partial_tail: bool = False
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; :class:`PredictionsFileError` naming ``file:line`` for a
    line that is not a JSON object with a string or integer ``id`` and a string ``completion``.

    ``skip_partial_tail`` ignores a last line that has no newline and is not valid JSON (a write cut short by a
    kill), as the harness does with its own files before it appends to them."""
    p = Path(path)
    with open(p, encoding="utf-8", errors="replace", newline="") as fh:
        for line_no, line in enumerate(fh, start=1):
            try:
                obj = _parse_line(line, f"{p}:{line_no}")
            except PredictionsFileError:
                if skip_partial_tail and not line.endswith("\n"):
                    logger.warning("%s:%d: ignoring an incomplete last line (interrupted write)", p, line_no)
                    return
                raise
            if obj is not None:
                yield line_no, obj


def read_prediction_file(
    path: str | os.PathLike, *, duplicates: str = "error", skip_partial_tail: bool = False
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """``(id -> completion, id -> sampled completions)`` of a predictions file, in one pass.

    A repeated id is an error naming both lines (``duplicates="error"``) or keeps its first line (``"first"``, used
    for the harness's own files); the samples of an id are those of its first line that has a ``samples`` list,
    which must be a non-empty list of strings (:class:`PredictionsFileError` naming ``file:line``).
    ``skip_partial_tail`` as in :func:`iter_prediction_lines`."""
    if duplicates not in ("error", "first"):
        raise ValueError("duplicates must be 'error' or 'first'")
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: predictions file not found")
    out: dict[str, str] = {}
    samples: dict[str, list[str]] = {}
    first_line: dict[str, int] = {}
    repeated = 0
    for line_no, obj in iter_prediction_lines(p, skip_partial_tail=skip_partial_tail):
        pid = obj["id"]
        found = obj.get("samples")
        if found is not None and pid not in samples:
            if not isinstance(found, list) or not found or not all(isinstance(t, str) for t in found):
                raise PredictionsFileError(f"{p}:{line_no}: 'samples' must be a non-empty list of completion strings")
            samples[pid] = found
        if pid in out:
            if duplicates == "error":
                raise PredictionsFileError(
                    f"{p}:{line_no}: id {pid!r} already appeared on line {first_line[pid]}; "
                    "keep one prediction per image"
                )
            repeated += 1
            continue
        out[pid] = obj["completion"]
        first_line[pid] = line_no
    if repeated:
        logger.warning("%s: %d repeated id(s) ignored (first prediction kept)", p, repeated)
    return out, samples


def read_predictions(
    path: str | os.PathLike, *, duplicates: str = "error", skip_partial_tail: bool = False
) -> dict[str, str]:
    """``id -> completion`` of a predictions file (:func:`read_prediction_file` without the samples)."""
    return read_prediction_file(path, duplicates=duplicates, skip_partial_tail=skip_partial_tail)[0]


def read_samples(path: str | os.PathLike, *, skip_partial_tail: bool = False) -> dict[str, list[str]]:
    """``id -> sampled completions`` of the lines that have a ``samples`` list (first line of an id wins);
    :class:`PredictionsFileError` naming ``file:line`` when ``samples`` is not a list of strings."""
    return read_prediction_file(path, duplicates="first", skip_partial_tail=skip_partial_tail)[1]


def prediction_files(output_dir: str | os.PathLike) -> list[Path]:
    """The run's predictions files that exist: ``predictions.jsonl`` first, then rank shards by name."""
    out_dir = Path(output_dir)
    main = out_dir / PREDICTIONS_FILE
    shards = sorted(out_dir.glob(SHARD_PATTERN))
    return ([main] if main.is_file() else []) + shards


def done_ids(output_dir: str | os.PathLike) -> set[str]:
    """Ids that already have a prediction in the run's files (a partial last line does not count)."""
    done: set[str] = set()
    for path in prediction_files(output_dir):
        for _, obj in iter_prediction_lines(path, skip_partial_tail=True):
            done.add(obj["id"])
    return done


def merge_shards(output_dir: str | os.PathLike, order: Sequence[str] = ()) -> int:
    """Merge ``predictions.jsonl`` and every rank shard into ``predictions.jsonl`` (atomically), one line per id
    (the first seen wins), ordered like ``order`` (ids not in it keep their order, at the end); then delete the
    shards. Returns the number of lines written; does nothing (returns -1) when there are no shards."""
    out_dir = Path(output_dir)
    shards = sorted(out_dir.glob(SHARD_PATTERN))
    if not shards:
        return -1
    lines: dict[str, dict[str, Any]] = {}
    for path in prediction_files(out_dir):
        for _, obj in iter_prediction_lines(path, skip_partial_tail=True):
            lines.setdefault(obj["id"], obj)
    rank = {pid: i for i, pid in enumerate(order)}
    ordered = sorted(lines.values(), key=lambda o: rank.get(o["id"], len(rank)))
    target = out_dir / PREDICTIONS_FILE
    with atomic_write(target, fsync=True) as fh:
        for obj in ordered:
            fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
    for path in shards:
        path.unlink(missing_ok=True)
    return len(ordered)
