"""Score completions against the ground truth and write every output of an evaluation run.

``D/metrics.json`` (the metrics of :mod:`geo_r.eval.metrics` plus the run's settings), ``D/scores.jsonl``
(one line per image: parsed answer, error in km, name checks), ``D/map.png``, ``D/error_cdf.png``,
``D/report.md`` and ``D/explorer.html`` (:mod:`geo_r.eval.explorer`). Used by ``geo-r eval`` after generation
and in ``--predictions`` mode alike.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from geo_r.atomic_io import write_json_atomic as _write_json_atomic
from geo_r.data.schema import GeoRecord
from geo_r.eval.metrics import compute_metrics
from geo_r.eval.scoring import ScoredRow, score_predictions

METRICS_FILE = "metrics.json"
SCORES_FILE = "scores.jsonl"
REPORT_FILE = "report.md"
MAP_FILE = "map.png"
CDF_FILE = "error_cdf.png"


def write_json_atomic(path: str | os.PathLike, payload: Any) -> Path:
    """Write JSON through a temporary file and a rename, so readers never see half a file (no NaN allowed)."""
    return _write_json_atomic(path, payload, allow_nan=False)


def score_line(row: ScoredRow) -> dict[str, Any]:
    """The ``scores.jsonl`` object of one image."""
    p = row.prediction
    return {
        "id": row.id,
        "true_lat": row.true_lat,
        "true_lon": row.true_lon,
        "country_code": row.country_code,
        "continent": row.continent,
        "has_prediction": row.has_completion,
        "pred_lat": p.lat,
        "pred_lon": p.lon,
        "pred_country": p.country,
        "pred_region": p.region,
        "pred_city": p.city,
        "distance_km": row.distance_km,
        "country_correct": row.country_correct,
        "region_correct": row.region_correct,
        "city_correct": row.city_correct,
        "country_correct_coords": row.country_correct_coords,
        "region_correct_coords": row.region_correct_coords,
        "city_correct_coords": row.city_correct_coords,
    }


def evaluate_and_write(
    records: Sequence[GeoRecord],
    completions: Mapping[str, str],
    output_dir: str | os.PathLike,
    *,
    distance: str = "haversine",
    thresholds_km: Sequence[float],
    strict: bool = False,
    settings: Mapping[str, Any],
    run_label: str,
    benchmark: str | None,
    map_max_points: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Score, then write metrics.json, scores.jsonl, map.png, error_cdf.png, explorer.html and report.md;
    returns the metrics."""
    from geo_r.eval.coastlines import coastline_source
    from geo_r.eval.explorer import EXPLORER_FILE, write_explorer
    from geo_r.eval.plots import plot_error_cdf, plot_error_map
    from geo_r.eval.report import write_report

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = score_predictions(records, completions, distance)
    metrics = compute_metrics(rows, thresholds_km, strict)
    full_settings = {**settings, "distance": distance, "coastlines": coastline_source()}
    metrics["distance"] = distance
    metrics["settings"] = full_settings
    write_json_atomic(out / METRICS_FILE, metrics)
    with open(out / SCORES_FILE, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(score_line(row), ensure_ascii=False, allow_nan=False) + "\n")
    plot_error_map(rows, out / MAP_FILE, max_points=map_max_points, seed=seed, title=run_label)
    plot_error_cdf(
        rows, out / CDF_FILE, thresholds_km=metrics["thresholds_km"], strict=strict, title=run_label
    )
    write_explorer(out / EXPLORER_FILE, records, completions, rows, title=run_label)
    write_report(
        out / REPORT_FILE,
        metrics,
        full_settings,
        run_label=run_label,
        benchmark=benchmark,
        figures={
            "True (dots) and predicted (crosses) locations, joined by error lines": MAP_FILE,
            "Cumulative error: share of all images within x km": CDF_FILE,
        },
    )
    return metrics
