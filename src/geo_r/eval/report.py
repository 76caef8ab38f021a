"""``report.md``: the accuracy table in the papers' layout with published rows, the exact settings, the figures.

The report is plain Markdown built from ``metrics.json``'s payload and the run's settings, so it can be
regenerated from those two alone (:func:`render_report` is pure; :func:`write_report` writes the file).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from geo_r.eval.metrics import WORST_CASE_KM, accuracy_key
from geo_r.eval.published import BENCHMARK_SIZES, BENCHMARKS, PUBLISHED_THRESHOLDS_KM, published_for
from geo_r.eval.tables import km, num, pct, table


def accuracy_table(metrics: Mapping[str, Any], run_label: str, benchmark: str | None) -> list[str]:
    """Markdown lines: this run's acc@1/25/200/750/2500 km, then the published rows of the benchmark, each with
    its setting and source (none when the data is not a published benchmark: they would not be comparable)."""
    header = ["Method", "Setting", "Benchmark", *(f"{t:g} km" for t in PUBLISHED_THRESHOLDS_KM), "Source"]
    numeric = range(3, 3 + len(PUBLISHED_THRESHOLDS_KM))
    bench_name = BENCHMARKS.get(benchmark or "", "this data")
    ours = [f"**{run_label}**", "this run", bench_name]
    ours += [f"**{pct(metrics.get(accuracy_key(t)))}**" for t in PUBLISHED_THRESHOLDS_KM]
    rows = [ours + ["metrics.json"]]
    for r in published_for(benchmark) if benchmark is not None else []:
        rows.append([r.method, r.setting, BENCHMARKS[r.benchmark], *(pct(a) for a in r.acc), r.source])
    return table(header, rows, numeric)


def _benchmark_note(metrics: Mapping[str, Any], settings: Mapping[str, Any], benchmark: str | None) -> list[str]:
    """What data this is, how that was decided, and what the published rows are (when they are shown)."""
    how = settings.get("benchmark")
    if benchmark is None:
        return [
            f"Data: {how or 'not a published benchmark'}. Published Im2GPS3k / YFCC4k rows are listed only for "
            "those benchmarks (`--benchmark im2gps3k|yfcc4k`, or a data file named after one); on other data "
            "they are not comparable."
        ]
    size = BENCHMARK_SIZES[benchmark]
    part = "" if metrics["n"] == size else f" ({metrics['n']:,} of its {size:,} images: not the full test set)"
    return [
        f"Data: {how or BENCHMARKS[benchmark]}{part}. "
        "Published rows are the numbers their papers report (sources in the last column), not reproductions. "
        "Their code bases differ in distance and threshold test (GeoCLIP: geodesic, `<=`; G3 / GeoRanker: "
        "geodesic, `<`; Geo-R, GeoEstimation, OSV-5M: haversine): rerun with `--distance geodesic` and/or "
        "`--strict_threshold` to match one exactly."
    ]


def render_report(
    metrics: Mapping[str, Any],
    settings: Mapping[str, Any],
    *,
    run_label: str,
    benchmark: str | None,
    figures: Mapping[str, str] | None = None,
) -> str:
    """The whole report as Markdown text."""
    rule = metrics.get("threshold_rule", "<=")
    distance = settings.get("distance", "haversine")
    lines = [f"# Geo-R evaluation: {run_label}", ""]
    lines += [
        f"{metrics['n']} images; distance: **{distance}**"
        + (" (sphere, R = 6371 km)" if distance == "haversine" else " (WGS-84 ellipsoid)")
        + f"; an image counts at X km when its error is **{rule} X**.",
        "",
        "## Accuracy (% of images within X km)",
        "",
    ]
    lines += accuracy_table(metrics, run_label, benchmark)
    lines += [
        "",
        f"Answers with valid coordinates: **{pct(metrics.get('parse_rate'))}%** "
        f"({metrics.get('unparseable', 0)} of {metrics['n']} unparseable"
        + (
            f", {metrics['missing_predictions']} without any prediction"
            if metrics.get("missing_predictions")
            else ""
        )
        + "). Unparseable answers count as misses at every threshold.",
        "",
    ]
    lines += _benchmark_note(metrics, settings, benchmark)
    lines += [""]
    if list(metrics.get("thresholds_km", [])) != list(PUBLISHED_THRESHOLDS_KM):
        extra = [
            [accuracy_key(t), pct(metrics.get(accuracy_key(t)))] for t in metrics.get("thresholds_km", [])
        ]
        lines += ["This run's thresholds:", "", *table(["threshold", "%"], extra, [1]), ""]

    lines += ["## Errors and place names", ""]
    summary = [
        ["median error, answers with coordinates (km)", km(metrics.get("median_km"))],
        ["mean error, answers with coordinates (km)", km(metrics.get("mean_km"))],
        [f"median error, unparseable = {WORST_CASE_KM:,.1f} km", km(metrics.get("median_km_worst_case"))],
        [f"mean error, unparseable = {WORST_CASE_KM:,.1f} km", km(metrics.get("mean_km_worst_case"))],
        ["mean GeoScore (5000 exp(-d / 1492.7); 0 when unparseable)", num(metrics.get("geoscore"))],
    ]
    for level in ("country", "region", "city"):
        summary.append(
            [
                f"{level} accuracy from the answer's names (%, n = {metrics.get(f'n_{level}_labels', 0)})",
                pct(metrics.get(f"{level}_acc")),
            ]
        )
    for level in ("country", "region", "city"):
        summary.append(
            [
                f"{level} accuracy from the answer's coordinates (%, reverse geocoded)",
                pct(metrics.get(f"{level}_acc_coords")),
            ]
        )
    lines += table(["metric", "value"], summary, [1])
    lines += [
        "",
        "Region and city names count only when the country is right as well. Name matching is offline "
        "(normalised names and aliases, `geo_r.geo.names`); the coordinate variants reverse-geocode both points "
        "with the same GeoNames table and compare country, (country, admin1) and (country, admin1, admin2, "
        "place), as OSV-5M does.",
        "",
        "## Per continent (true location)",
        "",
    ]
    thresholds = metrics.get("thresholds_km", PUBLISHED_THRESHOLDS_KM)
    per = metrics.get("per_continent", {})
    cont_rows = [
        [
            f"{block.get('name', key)} ({key})",
            str(block["n"]),
            pct(block.get("parse_rate")),
            *(pct(block.get(accuracy_key(t))) for t in thresholds),
            km(block.get("median_km")),
            num(block.get("geoscore")),
        ]
        for key, block in per.items()
    ]
    lines += table(
        ["continent", "n", "parsed %", *(f"{t:g} km" for t in thresholds), "median km", "GeoScore"],
        cont_rows,
        range(1, 5 + len(thresholds)),
    )
    from geo_r.eval.retrieval import retrieval_section
    from geo_r.eval.tts.report import aggregate_section

    for section in (retrieval_section(dict(metrics)), aggregate_section(metrics)):
        if section:
            lines += ["", *section]
    if figures:
        lines += ["", "## Figures", ""]
        for caption, name in figures.items():
            lines += [f"![{caption}]({name})", "", f"*{caption}*", ""]
    lines += [
        "",
        "## Settings",
        "",
        "```json",
        json.dumps(dict(settings), indent=2, sort_keys=True, default=str),
        "```",
        "",
    ]
    return "\n".join(lines)


def write_report(
    path: str | os.PathLike,
    metrics: Mapping[str, Any],
    settings: Mapping[str, Any],
    *,
    run_label: str,
    benchmark: str | None,
    figures: Mapping[str, str] | None = None,
) -> Path:
    """Write :func:`render_report` to ``path`` and return it."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        render_report(metrics, settings, run_label=run_label, benchmark=benchmark, figures=figures),
        encoding="utf-8",
    )
    return out
