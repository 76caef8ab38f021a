"""Geolocation metrics of the sampled completions, accumulated between two log lines.

Rewards say how well the policy is doing on the reward's own scale; these say it in kilometres, the way
papers report it: the share of completions with parseable coordinates, the mean and median error of
those, and accuracy at the standard 1 / 25 / 200 / 750 / 2500 km thresholds over ALL completions (an
unparseable answer is a miss at every threshold, as in evaluation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from geo_r.rewards.common import completion_text
from geo_r.rewards.distance import prediction_error_km

THRESHOLDS_KM = (1, 25, 200, 750, 2500)


def completion_errors_km(completions: Sequence[Any], lats: Sequence[Any], lons: Sequence[Any]) -> list[float | None]:
    """Great-circle error in km of each completion's coordinates, None where the answer or the truth is unusable."""
    return [
        prediction_error_km(completion_text(c), lat, lon)[0] for c, lat, lon in zip(completions, lats, lons, strict=True)
    ]


@dataclass
class GeoMetricsBuffer:
    """Errors (km, None = unparseable) collected over a logging interval; ``summary`` turns them into log keys."""

    errors: list[float | None] = field(default_factory=list)

    def add(self, errors: Sequence[float | None]) -> None:
        """Append the errors of one batch (already gathered across processes)."""
        self.errors.extend(errors)

    def summary(self, prefix: str = "geo/") -> dict[str, float]:
        """Parse rate, mean/median km of parsed answers, and acc@k (percent of all completions); then reset."""
        n = len(self.errors)
        if n == 0:
            return {}
        parsed = np.array([e for e in self.errors if e is not None], dtype=np.float64)
        out = {f"{prefix}parse_rate": len(parsed) / n}
        if len(parsed):
            out[f"{prefix}distance_km_mean"] = float(parsed.mean())
            out[f"{prefix}distance_km_median"] = float(np.median(parsed))
        for k in THRESHOLDS_KM:
            out[f"{prefix}acc@{k}km"] = 100.0 * float((parsed <= k).sum()) / n
        self.errors = []
        return out
