"""Geolocation metrics of the sampled completions, accumulated between two log lines.

Rewards say how well the policy is doing on the reward's own scale; these say it in kilometres, the way
papers report it: the share of completions with parseable coordinates, the mean and median error of
those, and accuracy at the standard 1 / 25 / 200 / 750 / 2500 km thresholds over ALL completions (an
unparseable answer is a miss at every threshold, as in evaluation).

Per GRPO group (the ``num_generations`` completions of one prompt), when the trainer passes the group size:
``best_of_group_acc@25km`` / ``@750km``, the percent of groups whose *best* completion is within the
threshold (set it against ``acc@25km``, the average completion: the gap is the headroom GRPO learns from),
and ``group_spread_km``, the mean over groups of the median distance from the group's parsed answers to
their medoid (:mod:`geo_r.geo.points`): it falls towards 0 when the groups collapse onto one answer and
the advantages vanish.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from geo_r.rewards.common import completion_text
from geo_r.rewards.distance import prediction_error_km

THRESHOLDS_KM = (1, 25, 200, 750, 2500)
BEST_OF_GROUP_KM = (25, 750)


def completion_errors_km(completions: Sequence[Any], lats: Sequence[Any], lons: Sequence[Any]) -> list[float | None]:
    """Great-circle error in km of each completion's coordinates, None where the answer or the truth is unusable."""
    return [
        prediction_error_km(completion_text(c), lat, lon)[0] for c, lat, lon in zip(completions, lats, lons, strict=True)
    ]


def completion_points(completions: Sequence[Any]) -> list[tuple[float, float] | None]:
    """Parsed (lat, lon) of each completion, None where it has no valid coordinates."""
    from geo_r.geo.points import points_of

    return points_of([completion_text(c) for c in completions])


@dataclass
class GeoMetricsBuffer:
    """Errors (km, None = unparseable) collected over a logging interval; ``summary`` turns them into log keys.

    ``groups`` holds (errors, points) per GRPO group when :meth:`add` is given the group size."""

    errors: list[float | None] = field(default_factory=list)
    groups: list[tuple[list[float | None], list[tuple[float, float] | None]]] = field(default_factory=list)

    def add(
        self,
        errors: Sequence[float | None],
        points: Sequence[tuple[float, float] | None] | None = None,
        group_size: int | None = None,
    ) -> None:
        """Append the errors of one batch (already gathered across processes, in TRL's group order); with
        ``points`` and ``group_size``, also cut the batch into its groups for the per-group metrics (a batch
        that is not a whole number of groups adds no group)."""
        self.errors.extend(errors)
        if points is None or not group_size or len(points) != len(errors) or len(errors) % group_size:
            return
        for start in range(0, len(errors), group_size):
            stop = start + group_size
            self.groups.append((list(errors[start:stop]), list(points[start:stop])))

    def group_summary(self, prefix: str = "geo/") -> dict[str, float]:
        """Best-of-group accuracy (percent of groups) and mean group spread (km) of the groups collected."""
        from geo_r.geo.points import medoid, spread_km

        if not self.groups:
            return {}
        out = {}
        for k in BEST_OF_GROUP_KM:
            hits = sum(any(e is not None and e <= k for e in errs) for errs, _ in self.groups)
            out[f"{prefix}best_of_group_acc@{k}km"] = 100.0 * hits / len(self.groups)
        spreads = []
        for _, pts in self.groups:
            m = medoid(pts)
            if m is not None:
                spreads.append(spread_km(pts, pts[m]))
        if spreads:
            out[f"{prefix}group_spread_km"] = float(np.mean(spreads))
        return out

    def summary(self, prefix: str = "geo/") -> dict[str, float]:
        """Parse rate, mean/median km of parsed answers, and acc@k (percent of all completions); then reset."""
        n = len(self.errors)
        if n == 0:
            self.groups = []
            return {}
        parsed = np.array([e for e in self.errors if e is not None], dtype=np.float64)
        out = {f"{prefix}parse_rate": len(parsed) / n}
        if len(parsed):
            out[f"{prefix}distance_km_mean"] = float(parsed.mean())
            out[f"{prefix}distance_km_median"] = float(np.median(parsed))
        for k in THRESHOLDS_KM:
            out[f"{prefix}acc@{k}km"] = 100.0 * float((parsed <= k).sum()) / n
        out.update(self.group_summary(prefix))
        self.errors = []
        self.groups = []
        return out
