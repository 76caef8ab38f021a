"""Read what mining needs: each training sample's id and true location, and each prediction's location.

Samples are read from the training files exactly as training reads them (any layout of
:mod:`geo_r.data.layouts`, jsonl or a JSON array), keeping only id, coordinates and where the record is, so
500k samples cost a few arrays, not 500k dicts. Predictions are the evaluation harness's jsonl: ``id`` and
``completion`` (re-parsed with :func:`geo_r.geo.parse_prediction`, as ``geo-r eval`` scores it), or explicit
``pred_lat``/``pred_lon`` for lines without a completion. Bad prediction lines are counted, not fatal.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from geo_r.data.layouts import RecordContext, parse_number, parse_record
from geo_r.data.readers import detect_format, iter_raw_records
from geo_r.data.sources import DataSource

MAX_EXAMPLES = 5


@dataclass
class Samples:
    """The located records of the data files, in file order, with where each one is."""

    ids: list[str]
    lat: NDArray[np.float64]
    lon: NDArray[np.float64]
    file_index: NDArray[np.int32]
    line: NDArray[np.int64]  # 1-based line (jsonl) or element index (JSON array) of the record
    formats: list[str]  # per file: "jsonl" or "json-array"
    invalid: int = 0  # records that could not be located (not written out)
    invalid_examples: list[str] = field(default_factory=list)
    duplicate_ids: int = 0

    def __len__(self) -> int:
        return len(self.ids)


def read_samples(sources: Sequence[DataSource]) -> Samples:
    """Id and true coordinates of every usable record of ``sources`` (see the module docstring)."""
    ids: list[str] = []
    lats: list[float] = []
    lons: list[float] = []
    files: list[int] = []
    lines: list[int] = []
    formats: list[str] = []
    invalid = 0
    examples: list[str] = []
    for file_index, source in enumerate(sources):
        fmt = detect_format(source.path)
        formats.append(fmt)
        name = os.path.basename(source.data_file)
        for raw in iter_raw_records(source.path, fmt):
            position = raw.line if raw.element is None else raw.element
            where = f"{source.data_file}:{raw.line}"
            if raw.error is not None:
                invalid += 1
                if len(examples) < MAX_EXAMPLES:
                    examples.append(f"{where}: {raw.error}")
                continue
            default_id = f"{name}:{raw.line}" if raw.element is None else f"{name}[{raw.element}]"
            record, problems, _ = parse_record(
                raw.value, RecordContext(source.image_folder, default_id, where)
            )
            if record is None:
                invalid += 1
                if len(examples) < MAX_EXAMPLES:
                    examples.append(f"{where}: {problems[0][1] if problems else 'unusable record'}")
                continue
            ids.append(record.id)
            lats.append(record.lat)
            lons.append(record.lon)
            files.append(file_index)
            lines.append(position)
    duplicates = len(ids) - len(set(ids))
    return Samples(
        ids=ids,
        lat=np.asarray(lats, dtype=np.float64),
        lon=np.asarray(lons, dtype=np.float64),
        file_index=np.asarray(files, dtype=np.int32),
        line=np.asarray(lines, dtype=np.int64),
        formats=formats,
        invalid=invalid,
        invalid_examples=examples,
        duplicate_ids=duplicates,
    )


@dataclass
class Predictions:
    """The predictions matched to samples: prediction ``j`` is ``(lat[j], lon[j])`` for sample ``index[j]``."""

    index: NDArray[np.int64]
    lat: NDArray[np.float64]
    lon: NDArray[np.float64]
    counts: Counter[str] = field(default_factory=Counter)  # lines, matched, unknown_id, unparsed, bad_line
    examples: dict[str, list[str]] = field(default_factory=dict)

    def note(self, kind: str, where: str) -> None:
        """Count one line of ``kind`` and keep a few examples."""
        self.counts[kind] += 1
        bucket = self.examples.setdefault(kind, [])
        if len(bucket) < MAX_EXAMPLES:
            bucket.append(where)

    @property
    def samples_predicted(self) -> int:
        """How many distinct samples got at least one usable prediction."""
        return int(np.unique(self.index).size)


def read_predictions(path: str | os.PathLike[str], samples: Samples) -> Predictions:
    """The predictions file matched to ``samples`` by id (a prediction of an id that several records share
    applies to each of them). Lines that are not JSON objects with an ``id``, ids not in the data, and
    completions without coordinates are counted with examples; none of them stops the run."""
    from geo_r.geo import parse_prediction

    index: dict[str, list[int]] = {}
    for i, sample_id in enumerate(samples.ids):
        index.setdefault(sample_id, []).append(i)
    which: list[int] = []
    lats: list[float] = []
    lons: list[float] = []
    counts: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    preds = Predictions(np.empty(0, dtype=np.int64), np.empty(0), np.empty(0), counts, examples)
    with open(path, encoding="utf-8", errors="replace") as f:
        for line_no, text in enumerate(f, start=1):
            if not text.strip():
                continue
            where = f"{path}:{line_no}"
            counts["lines"] += 1
            try:
                obj = json.loads(text)
            except ValueError:
                preds.note("bad_line", f"{where}: not valid JSON")
                continue
            pid = obj.get("id") if isinstance(obj, dict) else None
            if isinstance(pid, bool) or not isinstance(pid, str | int):
                preds.note("bad_line", f"{where}: expected a JSON object with an 'id'")
                continue
            targets = index.get(str(pid))
            if targets is None:
                preds.note("unknown_id", f"{where}: id {pid!r} is not in the data files")
                continue
            counts["matched"] += 1
            completion = obj.get("completion")
            if isinstance(completion, str):
                pred = parse_prediction(completion)
                lat, lon = pred.lat, pred.lon
            else:
                lat, lon = _number(obj.get("pred_lat")), _number(obj.get("pred_lon"))
            if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
                preds.note("unparsed", f"{where}: no coordinates in the prediction (not a hotspot)")
                continue
            for i in targets:
                which.append(i)
                lats.append(lat)
                lons.append(lon)
    preds.index = np.asarray(which, dtype=np.int64)
    preds.lat = np.asarray(lats, dtype=np.float64)
    preds.lon = np.asarray(lons, dtype=np.float64)
    return preds


def _number(value: object) -> float | None:
    """A finite float from a JSON number or numeric string; None otherwise."""
    number = parse_number(value)
    return number if number is not None and math.isfinite(number) else None
