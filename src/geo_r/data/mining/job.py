"""``geo-r mine-hard`` as a function: data files + predictions -> the hard subset, written file by file.

Two streaming passes over each data file: the first reads ids and coordinates (:mod:`.inputs`), the
second copies the kept records. A jsonl record is copied as its original line, byte for byte; a record of
a JSON array is written as one jsonl line. Each output keeps its input's image paths, so it pairs with the
same image folder.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from geo_r.data.readers import iter_raw_records
from geo_r.data.sources import DataSource, pair_sources, split_paths

from .hotspots import MiningResult, mine_hard
from .inputs import Predictions, Samples, read_predictions, read_samples

PREDICTION_COUNTS = ("lines", "matched", "unknown_id", "unparsed", "bad_line")


class MiningInputError(ValueError):
    """The inputs cannot be mined (missing files, outputs not paired with inputs, bad settings)."""


@dataclass
class MiningReport:
    """What a mining run found and wrote."""

    hotspot_km: float
    radius_km: float
    samples: int = 0
    invalid: int = 0
    invalid_examples: list[str] = field(default_factory=list)
    duplicate_ids: int = 0
    predictions: Counter[str] = field(default_factory=Counter)
    prediction_examples: dict[str, list[str]] = field(default_factory=dict)
    predicted_samples: int = 0
    hotspots: int = 0
    dropped: int = 0
    hard: int = 0
    written: int = 0
    outputs: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def format_text(self) -> str:
        """The summary printed by ``geo-r mine-hard``."""
        pct = (lambda n: f"{100.0 * n / self.samples:.1f} %") if self.samples else (lambda n: "-")
        c = self.predictions
        lines = [
            f"Samples: {self.samples} located in the data files"
            + (f"; {self.invalid} unusable record(s) left out" if self.invalid else "")
            + (f"; {self.duplicate_ids} duplicate id(s)" if self.duplicate_ids else ""),
        ]
        lines += [f"  unusable: {e}" for e in self.invalid_examples]
        lines.append(
            f"Predictions: {c['lines']} line(s), {c['matched']} matched by id, {c['unknown_id']} unknown id(s), "
            f"{c['unparsed']} without coordinates, {c['bad_line']} malformed; "
            f"{self.predicted_samples} sample(s) predicted, {self.samples - self.predicted_samples} not"
        )
        for kind in ("unknown_id", "unparsed", "bad_line"):
            lines += [f"  {kind}: {e}" for e in self.prediction_examples.get(kind, [])[:3]]
        lines.append(
            f"Hotspots (answered within {self.hotspot_km:g} km): {self.hotspots} ({pct(self.hotspots)})"
        )
        lines.append(
            f"Dropped (within {self.radius_km:g} km of a hotspot, hotspots included): {self.dropped} "
            f"({pct(self.dropped)}); hard: {self.hard} ({pct(self.hard)})"
        )
        lines.append(f"Wrote {self.written} record(s) to {', '.join(self.outputs)}")
        lines.append("Time: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items()))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy."""
        out = dict(vars(self))
        out["predictions"] = {k: self.predictions.get(k, 0) for k in PREDICTION_COUNTS}
        return out


def mine_hard_files(
    data_file_paths: str | Sequence[str],
    predictions: str | os.PathLike[str],
    out: str | Sequence[str],
    *,
    hotspot_km: float = 200.0,
    radius_km: float = 200.0,
    max_samples: int | None = None,
    seed: int = 0,
    progress: str = "auto",
) -> MiningReport:
    """Mine the hard subset of the data files (colon-separated, as ``--data_file_paths``) into ``out`` (one
    output per data file, colon-separated). ``max_samples`` keeps a seeded random subset of the hard samples."""
    sources = pair_sources(data_file_paths, None)
    outputs = split_paths(out)
    if len(outputs) != len(sources):
        raise MiningInputError(
            f"{len(sources)} data file(s) but {len(outputs)} output(s): give one --out per data file, colon-separated"
        )
    inputs = {source.path for source in sources} | {os.path.abspath(predictions)}
    for target in outputs:
        if os.path.abspath(target) in inputs:
            raise MiningInputError(f"--out {target} is one of the inputs; write the hard subset elsewhere")
    if not Path(predictions).is_file():
        raise MiningInputError(f"predictions file not found: {predictions}")
    if max_samples is not None and max_samples < 0:
        raise MiningInputError(f"max_samples must be >= 0, not {max_samples}")
    report = MiningReport(hotspot_km=hotspot_km, radius_km=radius_km, outputs=list(outputs))

    t0 = time.perf_counter()
    samples = read_samples(sources, progress)
    t1 = time.perf_counter()
    preds = read_predictions(predictions, samples, progress)
    t2 = time.perf_counter()
    try:
        result = mine_hard(samples.lat, samples.lon, preds.index, preds.lat, preds.lon, hotspot_km, radius_km)
    except ValueError as exc:
        raise MiningInputError(str(exc)) from exc
    keep = _subsample(result.keep, max_samples, seed)
    t3 = time.perf_counter()
    report.written = _write(sources, outputs, samples, keep)
    t4 = time.perf_counter()

    _fill(report, samples, preds, result)
    report.seconds = {
        "read data": t1 - t0,
        "read predictions": t2 - t1,
        "mine": t3 - t2,
        "write": t4 - t3,
        "total": t4 - t0,
    }
    return report


def _subsample(keep: NDArray[np.bool_], max_samples: int | None, seed: int) -> NDArray[np.bool_]:
    """``keep`` reduced to ``max_samples`` samples chosen uniformly with ``seed`` (file order is kept)."""
    kept = np.flatnonzero(keep)
    if max_samples is None or kept.size <= max_samples:
        return keep
    chosen = np.random.default_rng(seed).choice(kept, size=max_samples, replace=False)
    out = np.zeros_like(keep)
    out[chosen] = True
    return out


def _write(
    sources: Sequence[DataSource], outputs: Sequence[str], samples: Samples, keep: NDArray[np.bool_]
) -> int:
    """Copy the kept records of each source to its output; returns the records written."""
    written = 0
    for file_index, (source, target) in enumerate(zip(sources, outputs, strict=True)):
        positions = samples.line[(samples.file_index == file_index) & keep]
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        partial = Path(f"{target}.partial")
        with open(partial, "wb") as f:
            if samples.formats[file_index] == "jsonl":
                written += _copy_lines(source.path, positions, f)
            else:
                wanted = set(positions.tolist())
                for raw in iter_raw_records(source.path, "json-array"):
                    if raw.error is None and raw.element in wanted:
                        f.write(json.dumps(raw.value, ensure_ascii=False).encode("utf-8") + b"\n")
                        written += 1
        os.replace(partial, target)
    return written


def _copy_lines(path: str, lines: NDArray[np.int64], f: Any) -> int:
    """Write the given 1-based lines of ``path`` (sorted) to ``f`` as they are."""
    if lines.size == 0:
        return 0
    wanted = np.zeros(int(lines.max()) + 1, dtype=bool)
    wanted[lines] = True
    n = 0
    with open(path, "rb") as src:
        for line_no, raw in enumerate(src, start=1):
            if line_no >= wanted.size:
                break
            if wanted[line_no]:
                if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                f.write(raw if raw.endswith(b"\n") else raw + b"\n")
                n += 1
    return n


def _fill(report: MiningReport, samples: Samples, preds: Predictions, result: MiningResult) -> None:
    """Copy the counts of one run into ``report``."""
    report.samples = len(samples)
    report.invalid = samples.invalid
    report.invalid_examples = samples.invalid_examples
    report.duplicate_ids = samples.duplicate_ids
    report.predictions = preds.counts
    report.prediction_examples = preds.examples
    report.predicted_samples = preds.samples_predicted
    report.hotspots = int(result.hotspot.sum())
    report.dropped = int(result.dropped.sum())
    report.hard = int(result.keep.sum())
