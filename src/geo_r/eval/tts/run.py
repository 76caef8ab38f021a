"""Apply the aggregates (greedy, medoid, vote) to a whole run of K-sample predictions and score each one.

For every image: the greedy answer is the run's ``completion``; ``medoid`` and ``vote`` pick one of its
``samples`` (:mod:`geo_r.eval.tts.aggregate`), whose text (reasoning included) becomes that aggregate's answer.
An image whose samples are all unparseable keeps its first sample as the answer (it scores as unparseable).
Every aggregate also gets each image's :class:`~geo_r.eval.tts.aggregate.Spread` around its chosen point, so
the confidence of the greedy answer is measured by the same samples.

All sample points of the run are reverse geocoded in one batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from geo_r.data.schema import GeoRecord
from geo_r.eval.tts.aggregate import Label, Point, choose, place_labels, points_of, spread
from geo_r.eval.tts.aggregate import Spread as SpreadT


@dataclass
class AggregateResult:
    """One aggregate over the run: its answer text, chosen sample (None: greedy or none) and spread per id."""

    name: str
    completions: dict[str, str] = field(default_factory=dict)
    chosen: dict[str, int | None] = field(default_factory=dict)
    spreads: dict[str, SpreadT] = field(default_factory=dict)


def run_aggregates(
    records: Sequence[GeoRecord],
    greedy: Mapping[str, str],
    samples: Mapping[str, Sequence[str]],
    aggregates: Sequence[str],
) -> dict[str, AggregateResult]:
    """Each aggregate's answers for the records (an id missing from ``samples`` has no sampled answer, and
    an id missing from ``greedy`` no greedy one: both then score as missing)."""
    ids = [r.id for r in records]
    sample_points = {i: points_of(samples[i]) for i in ids if i in samples}
    greedy_points = {i: points_of([greedy[i]])[0] for i in ids if i in greedy}
    flat: list[Point | None] = [p for i in ids if i in sample_points for p in sample_points[i]]
    flat += [greedy_points[i] for i in ids if i in greedy_points]
    flat_labels = place_labels(flat)
    labels: dict[str, list[Label]] = {}
    pos = 0
    for i in ids:
        if i in sample_points:
            labels[i] = flat_labels[pos : pos + len(sample_points[i])]
            pos += len(sample_points[i])
    greedy_labels: dict[str, Label] = {}
    for i in ids:
        if i in greedy_points:
            greedy_labels[i] = flat_labels[pos]
            pos += 1

    out: dict[str, AggregateResult] = {}
    for name in aggregates:
        res = AggregateResult(name)
        for i in ids:
            pts, labs = sample_points.get(i, []), labels.get(i, [])
            if name == "greedy":
                if i not in greedy:
                    continue
                res.completions[i] = greedy[i]
                res.chosen[i] = None
                chosen_point, chosen_label = greedy_points[i], greedy_labels[i]
            else:
                if i not in samples:
                    continue
                k = choose(name, pts, labs)
                res.chosen[i] = k
                res.completions[i] = samples[i][0 if k is None else k]
                chosen_point = None if k is None else pts[k]
                chosen_label = (None, None) if k is None else labs[k]
            res.spreads[i] = spread(pts, labs, chosen_point, chosen_label)
        out[name] = res
    return out


def aggregate_score_fields(result: AggregateResult, record_id: str, distance_km: float | None) -> dict[str, Any]:
    """What ``scores.jsonl`` stores about one image under one aggregate."""
    s = result.spreads.get(record_id)
    return {
        "chosen_sample": result.chosen.get(record_id),
        "distance_km": distance_km,
        "spread_km": None if s is None else s.spread_km,
        "country_agreement": None if s is None else s.country_agreement,
    }
