"""``distance`` (aliases ``accuracy``, ``haversine``): how close the predicted coordinates are, in [0, 1].

The parser reads the completion's coordinates leniently; the great-circle (haversine, R = 6371 km) error d
to the ``lat`` / ``lon`` columns is mapped to [0, 1] by ``--distance_reward``:

* ``paper`` (default), the Geo-R paper: piecewise linear through (0 km, 1), (750, 0.5), (2500, 0.2),
  (20000, 0), and 0 beyond. At 0 / 25 / 200 / 750 / 2500 / 20000 km: 1 / .983 / .867 / .5 / .2 / 0.
* ``geoscore``: exp(-d / 1492.7), i.e. GeoScore / 5000: 1 / .983 / .875 / .605 / .187 / 0.
* ``anneal``: exp(-d / tau) with tau going 2000 km -> 25 km over training; at the start
  1 / .988 / .905 / .687 / .287 / 0, at the end 1 / .368 / 0 / 0 / 0 / 0.
* ``threshold``: steps, <= 1 / 25 / 200 / 750 / 2500 km earn 1 / .8 / .6 / .4 / .2, else 0.

A completion without valid coordinates gets 0.0 (or None with ``--unparseable_reward none``). A row whose
ground truth is missing or invalid (None, NaN, a non-number, out of range) gets None: TRL then leaves it out
of this reward, since the answer is not at fault (every completion of a prompt shares the truth, so a
constant 0.0 would carry no gradient either, only bias the logged mean). Numeric strings such as
``"48.85"`` are accepted as ground truth; booleans are not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from geo_r.geo.distance import haversine_km
from geo_r.geo.parse import parse_prediction
from geo_r.rewards.args import RewardArguments
from geo_r.rewards.common import (
    RewardFunc,
    column,
    completion_text,
    log_metric,
    training_progress,
    true_coordinates,
)
from geo_r.rewards.registry import register

PAPER_KNOTS_KM = (0.0, 750.0, 2500.0, 20000.0)
PAPER_KNOT_REWARDS = (1.0, 0.5, 0.2, 0.0)


def _out(values: NDArray[np.float64]) -> float | NDArray[np.float64]:
    return float(values) if np.ndim(values) == 0 else values


def paper_reward(d_km: ArrayLike) -> float | NDArray[np.float64]:
    """Geo-R paper's map: 1 - 0.5 d/750 up to 750 km, then to 0.2 at 2500 km, then to 0 at 20,000 km; 0 beyond.

    (Geo-R's released code puts the middle knot at 3000 km; the paper, which this follows, at 2500 km.)
    """
    d = np.asarray(d_km, dtype=np.float64)
    return _out(np.interp(d, PAPER_KNOTS_KM, PAPER_KNOT_REWARDS, left=1.0, right=0.0))


def exp_reward(d_km: ArrayLike, scale_km: float) -> float | NDArray[np.float64]:
    """exp(-d / scale): GeoScore / 5000 for scale 1492.7 km."""
    return _out(np.exp(-np.asarray(d_km, dtype=np.float64) / float(scale_km)))


def annealed_scale_km(progress: float, start_km: float, end_km: float) -> float:
    """The anneal schedule's scale at training progress p in [0, 1]: start * (end / start) ** p (log-linear)."""
    p = min(1.0, max(0.0, float(progress)))
    return float(start_km * (end_km / start_km) ** p)


def threshold_reward(
    d_km: ArrayLike, thresholds_km: Sequence[float], rewards: Sequence[float]
) -> float | NDArray[np.float64]:
    """rewards[i] for the first thresholds_km[i] with d <= thresholds_km[i]; 0 beyond the last threshold."""
    d = np.asarray(d_km, dtype=np.float64)
    idx = np.searchsorted(np.asarray(thresholds_km, dtype=np.float64), d, side="left")
    table = np.append(np.asarray(rewards, dtype=np.float64), 0.0)
    return _out(table[idx])


def distance_map(args: RewardArguments) -> Callable[[float, float], float]:
    """The km -> [0, 1] map chosen by ``args.distance_reward``, as ``f(d_km, progress)``."""
    kind = args.distance_reward
    if kind == "paper":
        return lambda d, p: float(paper_reward(d))
    if kind == "geoscore":
        scale = args.geoscore_scale_km
        return lambda d, p: float(exp_reward(d, scale))
    if kind == "anneal":
        start, end = args.anneal_start_km, args.anneal_end_km
        return lambda d, p: float(exp_reward(d, annealed_scale_km(p, start, end)))
    if kind == "threshold":
        thresholds, rewards = args.threshold_values, args.threshold_reward_values
        return lambda d, p: float(threshold_reward(d, thresholds, rewards))
    raise ValueError(f"unknown --distance_reward {kind!r}")


def prediction_error_km(text: str, lat: Any, lon: Any) -> tuple[float | None, bool]:
    """(great-circle error in km or None, whether the ground truth is usable) for one completion text."""
    truth = true_coordinates(lat, lon)
    if truth is None:
        return None, False
    pred = parse_prediction(text)
    if not pred.has_coordinates:
        return None, True
    return float(haversine_km(pred.lat, pred.lon, truth[0], truth[1])), True


@register("distance", "accuracy", "haversine")
def make_distance_reward(args: RewardArguments) -> RewardFunc:
    """Build ``distance`` with the map and unparseable-answer value chosen in ``args``."""
    score = distance_map(args)
    unparseable = 0.0 if args.unparseable_reward == "zero" else None
    annealing = args.distance_reward == "anneal"

    def distance_reward(
        prompts: Any, completions: Any, completion_ids: Any = None, **kwargs: Any
    ) -> list[float | None]:
        """Per completion: the distance map of its error to (lat, lon); see the module docstring."""
        n = len(completions)
        lats, lons = column(kwargs, "lat", n), column(kwargs, "lon", n)
        progress = training_progress(kwargs.get("trainer_state"))
        if annealing:
            scale = annealed_scale_km(progress, args.anneal_start_km, args.anneal_end_km)
            log_metric(kwargs, "rewards/distance/scale_km", scale)
        out: list[float | None] = []
        for completion, lat, lon in zip(completions, lats, lons, strict=True):
            error_km, truth_ok = prediction_error_km(completion_text(completion), lat, lon)
            if not truth_ok:
                out.append(None)
            elif error_km is None:
                out.append(unparseable)
            else:
                out.append(min(1.0, max(0.0, score(error_km, progress))))
        return out

    return distance_reward
