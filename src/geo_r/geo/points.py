"""Sets of predicted points: parse them from completions, their medoid, and how far they spread.

Shared by GRPO's group metrics (:mod:`geo_r.trainer.geo_metrics`) and test-time scaling
(:mod:`geo_r.eval.tts`). A point is ``(lat, lon)`` in degrees; None stands for an answer without valid
coordinates and never takes part. Distances are haversine (R = 6371 km); equal sums go to the earliest point.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from geo_r.geo.distance import haversine_km

Point = tuple[float, float]
TIE_KM = 1e-6
"""Summed distances closer than this count as equal (so ties are broken by order, not float noise)."""


def points_of(completions: Sequence[str]) -> list[Point | None]:
    """The parsed coordinates of each completion (None when it has none), with the rewards' parser."""
    from geo_r.geo import parse_prediction

    out: list[Point | None] = []
    for text in completions:
        pred = parse_prediction(text)
        out.append((float(pred.lat), float(pred.lon)) if pred.has_coordinates else None)  # type: ignore[arg-type]
    return out


def pairwise_km(points: Sequence[Point]) -> np.ndarray:
    """Pairwise haversine distances (km) of the points (none may be None)."""
    lat = np.array([p[0] for p in points], dtype=np.float64)
    lon = np.array([p[1] for p in points], dtype=np.float64)
    return np.asarray(haversine_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :]), dtype=np.float64)


def medoid_of(points: Sequence[Point | None], members: Sequence[int]) -> int | None:
    """Index (into ``points``) of the member with the smallest summed distance to the other members."""
    if not members:
        return None
    d = pairwise_km([points[i] for i in members])  # type: ignore[misc]
    sums = np.round(d.sum(axis=1) / TIE_KM) * TIE_KM
    return members[int(np.argmin(sums))]  # argmin keeps the first of equal sums: the earliest sample


def parsed_indices(points: Sequence[Point | None]) -> list[int]:
    """Indices of the samples with coordinates, in order."""
    return [i for i, p in enumerate(points) if p is not None]


def medoid(points: Sequence[Point | None]) -> int | None:
    """Index of the medoid of the parsed samples (None when none parsed); see the module docstring."""
    return medoid_of(points, parsed_indices(points))


def spread_km(points: Sequence[Point | None], chosen: Point | None) -> float | None:
    """Median distance (km) from the parsed points to ``chosen``; None when either side is missing."""
    parsed = [p for p in points if p is not None]
    if chosen is None or not parsed:
        return None
    lat = np.array([p[0] for p in parsed], dtype=np.float64)
    lon = np.array([p[1] for p in parsed], dtype=np.float64)
    return float(np.median(np.asarray(haversine_km(lat, lon, chosen[0], chosen[1]), dtype=np.float64)))
