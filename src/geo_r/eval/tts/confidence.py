"""Is a "sure" answer a right one? Error by sample spread: decile table, abstention, rank correlation, plot.

Inputs are per image: the spread of its K samples around the chosen point (km, None when it has none; see
:func:`geo_r.eval.tts.aggregate.spread`), the share of samples agreeing on the country, and the chosen answer's
error (km, None when unparseable).

* :func:`decile_table`: images with a spread, sorted by spread and cut into 10 bins of (nearly) equal size,
  except that images with equal spreads stay in one bin (a model often gives K identical answers: spread 0),
  so there may be fewer, larger bins; per bin its place in the ranking (``rank_pct``), the spread range,
  mean country agreement, error percentiles (10 / 50 / 90) and acc@25 / 750 km.
* :func:`abstention`: keep the images whose spread is <= ``abstain_km`` (an image without a spread is never
  kept); coverage (% of all images kept) and accuracy / median error on the kept ones.
* :func:`spearman`: Spearman's rank correlation of spread and error (positive: wider spread, larger error).
* :func:`plot_confidence`: spread vs error, log-log, one panel per aggregate, with the decile medians.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geo_r.eval.metrics import accuracy_key, within

DECILE_THRESHOLDS_KM: tuple[float, ...] = (25.0, 750.0)
PLOT_FLOOR_KM = 0.1
"""Values below this are drawn at it on the log axes (a spread of 0 km: every sample at the same point)."""


def _pairs(spreads: Sequence[float | None], errors: Sequence[float | None]) -> tuple[np.ndarray, np.ndarray]:
    keep = [(s, e) for s, e in zip(spreads, errors, strict=True) if s is not None and e is not None]
    return np.array([s for s, _ in keep], dtype=float), np.array([e for _, e in keep], dtype=float)


def decile_table(
    spreads: Sequence[float | None],
    errors: Sequence[float | None],
    agreements: Sequence[float],
    strict: bool = False,
    bins: int = 10,
) -> list[dict[str, Any]]:
    """One row per spread bin (fewer bins with fewer images or tied spreads): see the module docstring."""
    idx = [i for i, (s, e) in enumerate(zip(spreads, errors, strict=True)) if s is not None and e is not None]
    idx.sort(key=lambda i: (spreads[i], i))
    n = len(idx)
    target = [j * bins // n for j in range(n)]
    for j in range(1, n):  # images with equal spread share a bin, so a tie is never cut arbitrarily
        if spreads[idx[j]] == spreads[idx[j - 1]]:
            target[j] = target[j - 1]
    parts: list[tuple[int, int]] = []  # [start, stop) positions of each bin in the ranking
    for j in range(n):
        if j == 0 or target[j] != target[j - 1]:
            parts.append((j, j + 1))
        else:
            parts[-1] = (parts[-1][0], j + 1)
    rows = []
    for b, (start, stop) in enumerate(parts):
        part = idx[start:stop]
        s = np.array([spreads[i] for i in part], dtype=float)
        e = np.array([errors[i] for i in part], dtype=float)
        row: dict[str, Any] = {
            "bin": b + 1,
            "rank_pct": [100.0 * start / n, 100.0 * stop / n],
            "n": len(part),
            "spread_km_min": float(s.min()),
            "spread_km_max": float(s.max()),
            "country_agreement_mean": float(np.mean([agreements[i] for i in part])),
            "error_km_p10": float(np.percentile(e, 10)),
            "error_km_p50": float(np.percentile(e, 50)),
            "error_km_p90": float(np.percentile(e, 90)),
        }
        for t in DECILE_THRESHOLDS_KM:
            row[accuracy_key(t)] = 100.0 * sum(within(float(x), t, strict) for x in e) / len(e)
        rows.append(row)
    return rows


def abstention(
    spreads: Sequence[float | None],
    errors: Sequence[float | None],
    abstain_km: float,
    thresholds_km: Sequence[float],
    strict: bool = False,
) -> dict[str, Any]:
    """Answer only where the spread is <= ``abstain_km``: coverage (%) and accuracy (%) on those images."""
    if not (math.isfinite(abstain_km) and abstain_km >= 0):
        raise ValueError(f"abstain_km must be a finite number >= 0, got {abstain_km}")
    n = len(spreads)
    kept = [e for s, e in zip(spreads, errors, strict=True) if s is not None and s <= abstain_km]
    out: dict[str, Any] = {
        "abstain_km": abstain_km,
        "n_kept": len(kept),
        "coverage": 100.0 * len(kept) / n if n else None,
    }
    for t in thresholds_km:
        out[accuracy_key(t)] = 100.0 * sum(within(e, t, strict) for e in kept) / len(kept) if kept else None
    parsed = [e for e in kept if e is not None]
    out["median_km"] = float(np.median(parsed)) if parsed else None
    return out


def spearman(spreads: Sequence[float | None], errors: Sequence[float | None]) -> float | None:
    """Spearman's rho of spread vs error over images with both (None with < 3 images or a constant side)."""
    from scipy.stats import spearmanr

    s, e = _pairs(spreads, errors)
    if len(s) < 3 or np.all(s == s[0]) or np.all(e == e[0]):
        return None
    rho = float(spearmanr(s, e).statistic)
    return rho if math.isfinite(rho) else None


def confidence_block(
    spreads: Sequence[float | None],
    errors: Sequence[float | None],
    agreements: Sequence[float],
    *,
    thresholds_km: Sequence[float],
    strict: bool = False,
    abstain_km: float | None = None,
) -> dict[str, Any]:
    """The ``confidence`` entry of one aggregate's metrics block (JSON-able, no NaN)."""
    with_spread = [s for s in spreads if s is not None]
    block: dict[str, Any] = {
        "n_with_spread": len(with_spread),
        "spread_km_median": float(np.median(with_spread)) if with_spread else None,
        "country_agreement_mean": float(np.mean(agreements)) if len(agreements) else None,
        "spearman_spread_error": spearman(spreads, errors),
        "deciles": decile_table(spreads, errors, agreements, strict),
    }
    if abstain_km is not None:
        block["abstention"] = abstention(spreads, errors, abstain_km, thresholds_km, strict)
    return block


def plot_confidence(
    panels: Mapping[str, tuple[Sequence[float | None], Sequence[float | None]]],
    path: str | os.PathLike,
    *,
    abstain_km: float | None = None,
    title: str = "",
) -> Path:
    """Write ``confidence.png``: per aggregate, each image's spread (x) vs its error (y), log-log, and the
    median error of each spread decile; returns the path."""
    from geo_r.eval.plots import new_figure, save_figure

    n = max(1, len(panels))
    fig, _ = new_figure(4.2 * n + 0.6, 4.4)
    first = None
    for k, (name, (spreads, errors)) in enumerate(panels.items()):
        ax = fig.add_subplot(1, n, k + 1, sharey=first)
        first = first or ax
        s, e = _pairs(spreads, errors)
        ax.scatter(np.maximum(s, PLOT_FLOOR_KM), np.maximum(e, PLOT_FLOOR_KM), s=9, alpha=0.55, c="#2171b5",
                   linewidths=0, label="image")
        rows = decile_table(spreads, errors, [0.0] * len(spreads))
        if rows:
            xs = [max(PLOT_FLOOR_KM, math.sqrt(max(r["spread_km_min"], PLOT_FLOOR_KM) * max(r["spread_km_max"],
                                                                                              PLOT_FLOOR_KM)))
                  for r in rows]
            ax.plot(xs, [max(PLOT_FLOOR_KM, r["error_km_p50"]) for r in rows], "-o", color="#cb181d", ms=3.5,
                    lw=1.4, label="median error per spread decile")
        if abstain_km is not None:
            ax.axvline(max(abstain_km, PLOT_FLOOR_KM), color="#636363", ls="--", lw=0.9,
                       label=f"--abstain_km {abstain_km:g}")
        rho = spearman(spreads, errors)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(PLOT_FLOOR_KM / 1.5, 3e4)
        ax.set_ylim(PLOT_FLOOR_KM / 1.5, 3e4)
        ax.grid(True, which="major", color="#e0e0e0", lw=0.6)
        ax.set_xlabel("spread of the samples (km, log)")
        if k == 0:
            ax.set_ylabel("error of the chosen answer (km, log)")
            ax.legend(loc="upper left", fontsize=7)
        ax.set_title(f"{name}: {len(s)} images, Spearman rho "
                     f"{'n/a' if rho is None else f'{rho:.2f}'}", fontsize=9)
    if title:
        fig.suptitle(f"{title} (values below {PLOT_FLOOR_KM:g} km drawn at {PLOT_FLOOR_KM:g})", fontsize=10)
    return save_figure(fig, path)
