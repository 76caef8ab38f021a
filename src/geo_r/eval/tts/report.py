"""The report's test-time scaling section: one row per aggregate side by side, then each one's confidence.

Built from ``metrics["aggregates"]`` alone (written by ``geo-r eval --num_samples K``); a one-answer run has
no such key and gets no section.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from geo_r.eval.metrics import accuracy_key
from geo_r.eval.tables import km, num, pct, table

EXPLAIN = {
    "greedy": "the greedy answer (the reference row)",
    "medoid": "the sample with the smallest summed great-circle distance to the other parsed samples",
    "vote": "most frequent country among the samples, then most frequent region in it, then the medoid of "
    "those samples (ties broken by the medoid)",
}


def aggregate_section(metrics: Mapping[str, Any]) -> list[str]:
    """Markdown lines of the section (empty when the run has no aggregates)."""
    blocks: Mapping[str, Any] = metrics.get("aggregates") or {}
    if not blocks:
        return []
    thresholds = metrics.get("thresholds_km", [])
    k = metrics.get("num_samples")
    lines = [
        f"## Test-time scaling: {k} samples per image, one answer per aggregate",
        "",
        f"The headline numbers above are **{metrics.get('aggregate')}**'s. Aggregates: "
        + "; ".join(f"**{name}**: {EXPLAIN.get(name, name)}" for name in blocks)
        + ". A sample's country and region are those of its coordinates (reverse geocoded offline).",
        "",
    ]
    header = ["aggregate", "parsed %", *(f"{t:g} km" for t in thresholds), "median km", "GeoScore",
              "country (names) %", "spread median km", "Spearman(spread, error)"]
    rows = []
    for name, b in blocks.items():
        c = b.get("confidence", {})
        rho = c.get("spearman_spread_error")
        rows.append([f"**{name}**", pct(b.get("parse_rate")), *(pct(b.get(accuracy_key(t))) for t in thresholds),
                     km(b.get("median_km")), num(b.get("geoscore")), pct(b.get("country_acc")),
                     km(c.get("spread_km_median")), "–" if rho is None else f"{rho:.2f}"])
    lines += table(header, rows, range(1, len(header)))
    lines += [
        "",
        "Spread: median distance from the parsed samples to the aggregate's chosen point; a positive Spearman "
        "correlation means a tighter group of samples goes with a smaller error, so the spread says how sure "
        "the model is.",
        "",
    ]
    for name, b in blocks.items():
        c = b.get("confidence", {})
        lines += [f"### Confidence of {name}: error by spread decile", "",
                  "Deciles of the images ranked by spread (equal spreads share a row, so rows can span deciles).",
                  ""]
        dec = [
            [f"{r['rank_pct'][0]:.0f}–{r['rank_pct'][1]:.0f}%",
             f"{km(r['spread_km_min'])} – {km(r['spread_km_max'])}", str(r["n"]),
             f"{100 * r['country_agreement_mean']:.0f}%", km(r["error_km_p10"]), km(r["error_km_p50"]),
             km(r["error_km_p90"]), pct(r.get("acc@25km")), pct(r.get("acc@750km"))]
            for r in c.get("deciles", [])
        ]
        if dec:
            header = ["images ranked by spread", "spread km", "n", "same country", "error p10 km",
                      "error p50 km", "error p90 km", "25 km %", "750 km %"]
            lines += table(header, dec, range(2, 9))
        else:
            lines += ["No image has both a chosen point and a parsed sample."]
        missing = b["n"] - c.get("n_with_spread", 0)
        if missing:
            lines += ["", f"{missing} image(s) without a spread (no parsed chosen answer or no parsed sample)."]
        ab = c.get("abstention")
        if ab:
            accs = ", ".join(f"{accuracy_key(t)} {pct(ab.get(accuracy_key(t)))}%" for t in thresholds)
            lines += ["", f"Answering only when the spread is <= {ab['abstain_km']:g} km (`--abstain_km`): "
                      f"coverage **{pct(ab['coverage'])}%** ({ab['n_kept']} of {b['n']} images); on those: {accs}; "
                      f"median {km(ab['median_km'])} km."]
        lines.append("")
    return lines
