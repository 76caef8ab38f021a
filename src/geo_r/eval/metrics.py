"""Standard geolocation metrics from scored rows: acc@km, median/mean error, GeoScore, name accuracy, per continent.

Conventions (every one is also written into ``metrics.json`` so a reader knows what was computed):

* ``acc@Xkm`` is the percentage of ALL evaluated images whose error is ``<= X`` km (``strict=True``: ``< X``,
  the test G3, GeoRanker and OSV-5M use). An unparseable answer has no error and is a miss at every
  threshold; ``parse_rate`` (percent) says how many answers gave valid coordinates.
* ``median_km`` / ``mean_km`` are over the parsed answers only (None when there are none), so they describe
  the answers the model did give. ``median_km_worst_case`` / ``mean_km_worst_case`` count every unparseable
  answer as the largest possible error, half the circumference (pi x 6371 = 20015.1 km), which is what an
  accuracy-only reader implicitly assumes.
* ``geoscore`` is the mean of 5000 * exp(-d / 1492.7) over ALL images, 0 for an unparseable answer.
* ``country_acc`` / ``region_acc`` / ``city_acc`` are percentages over the images whose ground truth has that
  level (see :mod:`geo_r.eval.scoring` for how names are compared and gated); the ``*_coords`` variants use the
  reverse-geocoded predicted coordinates instead of the names (OSV-5M's area accuracy).
* ``per_continent`` repeats the distance metrics for the images of each true continent.

Every value is a finite float, an int or None, never NaN.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from statistics import median
from typing import Any

from geo_r.eval.continents import UNKNOWN_CONTINENT, continent_name
from geo_r.eval.scoring import ScoredRow
from geo_r.geo import EARTH_RADIUS_KM, geoscore

DEFAULT_THRESHOLDS_KM: tuple[float, ...] = (1.0, 25.0, 200.0, 750.0, 2500.0)
WORST_CASE_KM = math.pi * EARTH_RADIUS_KM
"""The largest great-circle distance on the R = 6371 km sphere (antipodes): 20015.09 km."""


def accuracy_key(threshold_km: float) -> str:
    """The metrics key of a threshold: ``acc@25km``, ``acc@0.5km``."""
    return f"acc@{threshold_km:g}km"


def check_thresholds(thresholds_km: Iterable[float]) -> tuple[float, ...]:
    """Thresholds as a sorted tuple of distinct positive finite floats; ValueError otherwise."""
    out = []
    for t in thresholds_km:
        value = float(t)
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"thresholds must be positive numbers of km, got {t!r}")
        out.append(value)
    if not out:
        raise ValueError("at least one threshold is needed")
    return tuple(sorted(set(out)))


def within(distance: float | None, threshold_km: float, strict: bool = False) -> bool:
    """Whether an error is within a threshold: ``d <= t`` (``d < t`` when strict); None is never within."""
    if distance is None:
        return False
    return distance < threshold_km if strict else distance <= threshold_km


def _percent(count: int, total: int) -> float | None:
    return 100.0 * count / total if total else None


def distance_metrics(
    distances: Sequence[float | None], thresholds_km: Sequence[float], strict: bool = False
) -> dict[str, Any]:
    """n, parse counts, acc@ each threshold, median/mean (parsed and worst case) and mean GeoScore."""
    n = len(distances)
    parsed = [d for d in distances if d is not None]
    out: dict[str, Any] = {"n": n, "n_parsed": len(parsed), "parse_rate": _percent(len(parsed), n)}
    for t in thresholds_km:
        out[accuracy_key(t)] = _percent(sum(within(d, t, strict) for d in distances), n)
    worst = [WORST_CASE_KM if d is None else d for d in distances]
    out["median_km"] = float(median(parsed)) if parsed else None
    out["mean_km"] = math.fsum(parsed) / len(parsed) if parsed else None
    out["median_km_worst_case"] = float(median(worst)) if worst else None
    out["mean_km_worst_case"] = math.fsum(worst) / n if n else None
    out["geoscore"] = math.fsum(float(geoscore(d)) for d in parsed) / n if n else None
    return out


def _level_accuracy(flags: Iterable[bool | None]) -> tuple[float | None, int]:
    known = [f for f in flags if f is not None]
    return _percent(sum(known), len(known)), len(known)


def compute_metrics(
    rows: Sequence[ScoredRow], thresholds_km: Sequence[float] = DEFAULT_THRESHOLDS_KM, strict: bool = False
) -> dict[str, Any]:
    """The ``metrics.json`` payload for scored rows (see the module docstring for every key's meaning)."""
    thresholds = check_thresholds(thresholds_km)
    out = distance_metrics([r.distance_km for r in rows], thresholds, strict)
    out["unparseable"] = out["n"] - out["n_parsed"]
    out["missing_predictions"] = sum(not r.has_completion for r in rows)
    for level in ("country", "region", "city"):
        for suffix in ("", "_coords"):
            acc, n_known = _level_accuracy(getattr(r, f"{level}_correct{suffix}") for r in rows)
            out[f"{level}_acc{suffix}"] = acc
            out[f"n_{level}_labels{suffix}"] = n_known
    groups: dict[str, list[ScoredRow]] = {}
    for r in rows:
        groups.setdefault(r.continent or UNKNOWN_CONTINENT, []).append(r)
    out["per_continent"] = {
        key: {
            "name": continent_name(key),
            **distance_metrics([r.distance_km for r in group], thresholds, strict),
        }
        for key, group in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    }
    out["thresholds_km"] = list(thresholds)
    out["threshold_rule"] = "<" if strict else "<="
    return out
