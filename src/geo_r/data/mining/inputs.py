"""Read what mining needs: each training sample's id and true location, and each prediction's location.

Samples are read from the training files exactly as training reads them (any layout of
:mod:`geo_r.data.layouts`, jsonl or a JSON array), keeping only a 16-byte digest of the id, the coordinates and
where the record is: 44 bytes a sample in flat arrays (180 MB at MP16-Pro's 4.12M), not a dict or a string per
record. Predictions are the evaluation harness's jsonl: ``id`` and ``completion`` (re-parsed with
:func:`geo_r.geo.parse_prediction`, as ``geo-r eval`` scores it), or explicit ``pred_lat``/``pred_lon`` for lines
without a completion, matched to samples through the sorted digests. Bad prediction lines are counted, not fatal.
Both passes show a progress bar (rows/s, ETA).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from geo_r.data.layouts import RecordContext, parse_number, parse_record
from geo_r.data.progress import RowProgress
from geo_r.data.readers import detect_format, iter_raw_records
from geo_r.data.sources import DataSource

MAX_EXAMPLES = 5


def id_digest(sample_id: str) -> bytes:
    """The 16-byte BLAKE2b digest samples are matched by (a collision between 4M ids: odds about 1e-26)."""
    return hashlib.blake2b(sample_id.encode("utf-8"), digest_size=16).digest()


@dataclass
class Samples:
    """The located records of the data files, in file order, with where each one is."""

    id_digests: NDArray[np.bytes_]  # "S16": :func:`id_digest` of each sample's id
    lat: NDArray[np.float64]
    lon: NDArray[np.float64]
    file_index: NDArray[np.int32]
    line: NDArray[np.int64]  # 1-based line (jsonl) or element index (JSON array) of the record
    formats: list[str]  # per file: "jsonl" or "json-array"
    invalid: int = 0  # records that could not be located (not written out)
    invalid_examples: list[str] = field(default_factory=list)
    duplicate_ids: int = 0

    def __len__(self) -> int:
        return len(self.lat)


def read_samples(sources: Sequence[DataSource], progress: str = "auto") -> Samples:
    """Id digest and true coordinates of every usable record of ``sources`` (see the module docstring)."""
    digests = bytearray()
    lats, lons = array("d"), array("d")
    files, lines = array("i"), array("q")
    formats: list[str] = []
    invalid = 0
    examples: list[str] = []
    total = sum(os.path.getsize(s.path) for s in sources)
    done = 0
    bar = RowProgress("mine-hard: reading the data files", total_bytes=total, mode=progress)
    for file_index, source in enumerate(sources):
        fmt = detect_format(source.path)
        formats.append(fmt)
        name = os.path.basename(source.data_file)
        for raw in iter_raw_records(source.path, fmt):
            bar.update(1, done + raw.end)
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
            digests += id_digest(record.id)
            lats.append(record.lat)
            lons.append(record.lon)
            files.append(file_index)
            lines.append(position)
        done += os.path.getsize(source.path)
    bar.close()
    id_digests = np.frombuffer(bytes(digests), dtype="S16") if digests else np.empty(0, dtype="S16")
    duplicates = len(id_digests) - len(np.unique(id_digests))
    return Samples(
        id_digests=id_digests,
        lat=np.frombuffer(lats, dtype=np.float64).copy() if lats else np.empty(0),
        lon=np.frombuffer(lons, dtype=np.float64).copy() if lons else np.empty(0),
        file_index=np.frombuffer(files, dtype=np.int32).copy() if files else np.empty(0, dtype=np.int32),
        line=np.frombuffer(lines, dtype=np.int64).copy() if lines else np.empty(0, dtype=np.int64),
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


def read_predictions(path: str | os.PathLike[str], samples: Samples, progress: str = "auto") -> Predictions:
    """The predictions file matched to ``samples`` by id (a prediction of an id that several records share
    applies to each of them). Lines that are not JSON objects with an ``id``, ids not in the data, and
    completions without coordinates are counted with examples; none of them stops the run."""
    from geo_r.geo import parse_prediction

    order = np.argsort(samples.id_digests, kind="stable")
    sorted_digests = samples.id_digests[order]
    which, lats, lons = array("q"), array("d"), array("d")
    counts: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    preds = Predictions(np.empty(0, dtype=np.int64), np.empty(0), np.empty(0), counts, examples)
    bar = RowProgress("mine-hard: reading the predictions", total_bytes=os.path.getsize(path), mode=progress)
    done = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line_no, text in enumerate(f, start=1):
            done += len(text)
            bar.update(1, done)
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
            digest = np.array(id_digest(str(pid)), dtype="S16")
            first = int(np.searchsorted(sorted_digests, digest, side="left"))
            last = int(np.searchsorted(sorted_digests, digest, side="right"))
            if first == last:
                preds.note("unknown_id", f"{where}: id {pid!r} is not in the data files")
                continue
            targets = order[first:last].tolist()
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
    bar.close()
    preds.index = np.frombuffer(which, dtype=np.int64).copy() if which else np.empty(0, dtype=np.int64)
    preds.lat = np.frombuffer(lats, dtype=np.float64).copy() if lats else np.empty(0)
    preds.lon = np.frombuffer(lons, dtype=np.float64).copy() if lons else np.empty(0)
    return preds


def _number(value: object) -> float | None:
    """A finite float from a JSON number or numeric string; None otherwise."""
    number = parse_number(value)
    return number if number is not None and math.isfinite(number) else None
