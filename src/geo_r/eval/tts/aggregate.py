"""Test-time scaling: pick one answer out of K sampled answers for a photo, and say how much they agree.

Every function here works on one photo's samples, given as points (``(lat, lon)``, or None for a sample
without valid coordinates) and, for ``vote``, place labels of those points. Only parsed samples take part;
a photo whose samples are all unparseable has no choice (None) and scores as an unparseable answer.

* :func:`medoid`: the parsed sample whose summed great-circle distance (haversine, R = 6371 km) to the other
  parsed samples is smallest; equal sums go to the earliest sample.
* :func:`vote`: hierarchical. The most frequent country among the parsed samples, then the most frequent
  region within it, then the medoid of the samples that agree on both. A tie between countries (or regions)
  goes to the group holding the sample with the smallest summed distance to all parsed samples (the
  overall medoid's ranking), so ties are broken by the medoid.
* :func:`spread`: how sure the samples are: the median distance from the parsed samples to the chosen point
  (the chosen sample itself included, at 0 km) and the share of all K samples whose country is the chosen
  point's country (unparseable samples disagree).

Labels are the country code and first-level region of each sample's *coordinates*, reverse geocoded
offline (:func:`place_labels`), so a sample votes where its point lies whatever names it writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from geo_r.geo.points import (
    TIE_KM,
    Point,
    medoid,
    medoid_of,
    pairwise_km,
    parsed_indices,
    points_of,
    spread_km,
)

Label = tuple[str | None, str | None]
"""(ISO country code, first-level region) of a point; (None, None) where it has none."""

__all__ = ["AGGREGATES", "Label", "Point", "Spread", "choose", "medoid", "parse_aggregates", "parsed_indices",
           "place_labels", "points_of", "spread", "spread_km", "vote"]

AGGREGATES: tuple[str, ...] = ("greedy", "medoid", "vote")


def place_labels(points: Sequence[Point | None]) -> list[Label]:
    """(country code, region) of each point, reverse geocoded offline in one batch; (None, None) for None."""
    from geo_r.geo import reverse_geocode

    if not points:
        return []
    chains = reverse_geocode(
        [p[0] if p else float("nan") for p in points], [p[1] if p else float("nan") for p in points]
    )
    return [(c.country_code, c.region) if p is not None else (None, None) for p, c in zip(points, chains, strict=True)]


def _rank_by_centrality(points: Sequence[Point | None], members: list[int]) -> dict[int, int]:
    """Rank (0 = most central) of each member by summed distance to all members; ties by sample order."""
    d = pairwise_km([points[i] for i in members])  # type: ignore[misc]
    sums = np.round(d.sum(axis=1) / TIE_KM) * TIE_KM
    order = sorted(range(len(members)), key=lambda j: (sums[j], members[j]))
    return {members[j]: rank for rank, j in enumerate(order)}


def _most_frequent(groups: dict[object, list[int]], rank: dict[int, int]) -> list[int]:
    """The largest group; between equal sizes, the one holding the best-ranked (most central) sample."""
    return min(groups.values(), key=lambda g: (-len(g), min(rank[i] for i in g)))


def vote(points: Sequence[Point | None], labels: Sequence[Label]) -> int | None:
    """Index chosen by the hierarchical vote (country, then region, then medoid); None when none parsed."""
    if len(labels) != len(points):
        raise ValueError(f"{len(points)} points but {len(labels)} labels")
    members = parsed_indices(points)
    if not members:
        return None
    rank = _rank_by_centrality(points, members)
    by_country: dict[object, list[int]] = {}
    for i in members:
        by_country.setdefault(labels[i][0], []).append(i)
    country = _most_frequent(by_country, rank)
    by_region: dict[object, list[int]] = {}
    for i in country:
        by_region.setdefault(labels[i][1], []).append(i)
    region = _most_frequent(by_region, rank)
    return medoid_of(points, region)


@dataclass(frozen=True)
class Spread:
    """How much one photo's K samples agree with the chosen point.

    ``spread_km``: median distance (km) from the parsed samples to the chosen point, None when the chosen
    point or every sample is missing; ``country_agreement``: share (0..1) of all K samples in the chosen
    point's country; ``n_parsed``: samples with coordinates."""

    spread_km: float | None
    country_agreement: float
    n_parsed: int


def spread(
    points: Sequence[Point | None],
    labels: Sequence[Label],
    chosen: Point | None,
    chosen_label: Label,
) -> Spread:
    """The :class:`Spread` of the samples around ``chosen`` (a sample's point or any other answer's)."""
    n_parsed = sum(p is not None for p in points)
    km = spread_km(points, chosen)
    if km is None:
        return Spread(None, 0.0, n_parsed)
    cc = chosen_label[0]
    agree = sum(1 for lab, p in zip(labels, points, strict=True) if p is not None and cc is not None and lab[0] == cc)
    return Spread(km, agree / len(points), n_parsed)


def choose(method: str, points: Sequence[Point | None], labels: Sequence[Label]) -> int | None:
    """The sample index ``method`` (``medoid`` or ``vote``) picks; None when no sample has coordinates."""
    if method == "medoid":
        return medoid(points)
    if method == "vote":
        return vote(points, labels)
    raise ValueError(f"unknown sample aggregate {method!r}; choose medoid or vote (greedy is not a choice)")


def parse_aggregates(text: str) -> tuple[str, ...]:
    """``greedy,medoid,vote`` (any subset, any order, no repeats) as a tuple; ValueError otherwise."""
    names = tuple(a.strip() for a in text.split(",") if a.strip())
    if not names:
        raise ValueError("--aggregate needs at least one of greedy, medoid, vote")
    bad = [a for a in names if a not in AGGREGATES]
    if bad:
        raise ValueError(f"--aggregate: unknown {', '.join(map(repr, bad))}; choose from {', '.join(AGGREGATES)}")
    if len(set(names)) != len(names):
        raise ValueError(f"--aggregate lists a name twice: {text!r}")
    return names
