"""Score completions against the ground truth and write every output of an evaluation run.

``D/metrics.json`` (the metrics of :mod:`geo_r.eval.metrics` plus the run's settings), ``D/scores.jsonl``
(one line per image: parsed answer, error in km, name checks), ``D/map.png``, ``D/error_cdf.png``,
``D/report.md``, ``D/explorer.html`` with ``D/explorer_files/`` (:mod:`geo_r.eval.explorer`) and, with
``--num_samples K``, ``D/confidence.png``. Used by ``geo-r eval`` after generation and in ``--predictions`` mode
alike. When records have retrieval candidates, :mod:`geo_r.eval.retrieval` adds its metrics, per-image fields and
section.
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
CONFIDENCE_FILE = "confidence.png"


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
    samples: Mapping[str, Sequence[str]] | None = None,
    aggregates: Sequence[str] = ("greedy",),
    abstain_km: float | None = None,
    explorer_thumbnails: str | int = "all",
    progress: str = "auto",
) -> dict[str, Any]:
    """Score, then write metrics.json, scores.jsonl, map.png, error_cdf.png, explorer.html and report.md;
    returns the metrics.

    With ``samples`` (``--num_samples K``) every aggregate is scored too (``metrics["aggregates"]``, one
    block each, :mod:`geo_r.eval.tts.metrics`), the first aggregate is the run's headline answer, and
    confidence.png is written. ``explorer_thumbnails``: 'all', 'none' or a number of rows (a sample seeded with
    ``seed``)."""
    from geo_r.eval.coastlines import coastline_source
    from geo_r.eval.explorer import EXPLORER_FILE, write_explorer
    from geo_r.eval.plots import plot_error_cdf, plot_error_map
    from geo_r.eval.report import write_report

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    tts = None
    if samples is not None:
        from geo_r.eval.tts.metrics import score_aggregates

        tts = score_aggregates(records, completions, samples, aggregates, distance=distance,
                               thresholds_km=thresholds_km, strict=strict, abstain_km=abstain_km)
        rows = tts.rows[aggregates[0]]
    else:
        rows = score_predictions(records, completions, distance)
    metrics = compute_metrics(rows, thresholds_km, strict)
    retrieval = None
    if any(r.candidates for r in records):
        from geo_r.eval.retrieval import retrieval_metrics, retrieval_rows

        retrieval = retrieval_rows(records, rows, distance)
        metrics.update(retrieval_metrics(retrieval, rows, metrics["thresholds_km"], strict,
                                         settings.get("candidates")))
    if tts is not None:
        metrics.update(aggregate=aggregates[0], num_samples=tts.num_samples, abstain_km=abstain_km,
                       aggregates=tts.blocks)
    full_settings = {**settings, "distance": distance, "coastlines": coastline_source()}
    metrics["distance"] = distance
    metrics["settings"] = full_settings
    write_json_atomic(out / METRICS_FILE, metrics)
    with open(out / SCORES_FILE, "w", encoding="utf-8") as fh:
        for i, row in enumerate(rows):
            line = score_line(row) | ({} if tts is None else {"aggregates": tts.score_fields(row.id, i)})
            if retrieval is not None:
                line |= retrieval[i].fields()
            fh.write(json.dumps(line, ensure_ascii=False, allow_nan=False) + "\n")
    plot_error_map(rows, out / MAP_FILE, max_points=map_max_points, seed=seed, title=run_label)
    plot_error_cdf(
        rows, out / CDF_FILE, thresholds_km=metrics["thresholds_km"], strict=strict, title=run_label
    )
    figures = {
        "True (dots) and predicted (crosses) locations, joined by error lines": MAP_FILE,
        "Cumulative error: share of all images within x km": CDF_FILE,
    }
    if tts is not None:
        tts.plot(out / CONFIDENCE_FILE, abstain_km=abstain_km, title=run_label)
        figures["Spread of the samples vs error of the chosen answer, per aggregate (log-log)"] = CONFIDENCE_FILE
    shown = completions if tts is None else tts.results[aggregates[0]].completions  # the headline answers
    thumbs = {"all": True, "none": False}.get(explorer_thumbnails, explorer_thumbnails)  # type: ignore[arg-type]
    write_explorer(out / EXPLORER_FILE, records, shown, rows, title=run_label, thumbnails=thumbs, seed=seed,
                   progress=progress)
    write_report(
        out / REPORT_FILE,
        metrics,
        full_settings,
        run_label=run_label,
        benchmark=benchmark,
        figures=figures,
    )
    return metrics
