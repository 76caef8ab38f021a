"""Score every aggregate of a K-sample run: one metrics block each (with its confidence), side by side.

:func:`score_aggregates` chooses each aggregate's answers (:mod:`geo_r.eval.tts.run`), scores them
with the same :func:`~geo_r.eval.scoring.score_predictions` and :func:`~geo_r.eval.metrics.compute_metrics`
as a one-answer run, and adds a ``confidence`` entry (:mod:`geo_r.eval.tts.confidence`) per aggregate.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geo_r.data.schema import GeoRecord
from geo_r.eval.scoring import ScoredRow
from geo_r.eval.tts.run import AggregateResult, aggregate_score_fields, run_aggregates


@dataclass
class ScoredAggregates:
    """Rows, choices and metrics blocks of every aggregate of a run, in the order they were asked for."""

    rows: dict[str, list[ScoredRow]]
    results: dict[str, AggregateResult]
    blocks: dict[str, dict[str, Any]]
    num_samples: int

    def score_fields(self, record_id: str, index: int) -> dict[str, dict[str, Any]]:
        """The ``aggregates`` entry of the ``scores.jsonl`` line of record ``index`` (same order as rows)."""
        return {
            name: aggregate_score_fields(self.results[name], record_id, self.rows[name][index].distance_km)
            for name in self.rows
        }

    def plot(self, path: str | os.PathLike, *, abstain_km: float | None, title: str) -> Path:
        """Write ``confidence.png`` (one panel per aggregate)."""
        from geo_r.eval.tts.confidence import plot_confidence

        panels = {}
        for name, rows in self.rows.items():
            spreads = self.results[name].spreads
            panels[name] = (
                [spreads[r.id].spread_km if r.id in spreads else None for r in rows],
                [r.distance_km for r in rows],
            )
        return plot_confidence(panels, path, abstain_km=abstain_km, title=title)


def score_aggregates(
    records: Sequence[GeoRecord],
    greedy: Mapping[str, str],
    samples: Mapping[str, Sequence[str]],
    aggregates: Sequence[str],
    *,
    distance: str,
    thresholds_km: Sequence[float],
    strict: bool = False,
    abstain_km: float | None = None,
) -> ScoredAggregates:
    """Choose, score and summarise every aggregate (see the module docstring)."""
    from geo_r.eval.metrics import compute_metrics
    from geo_r.eval.scoring import score_predictions
    from geo_r.eval.tts.confidence import confidence_block

    results = run_aggregates(records, greedy, samples, aggregates)
    rows: dict[str, list[ScoredRow]] = {}
    blocks: dict[str, dict[str, Any]] = {}
    for name, res in results.items():
        rows[name] = score_predictions(records, res.completions, distance)
        block = compute_metrics(rows[name], thresholds_km, strict)
        spreads = [res.spreads[r.id] if r.id in res.spreads else None for r in rows[name]]
        block["confidence"] = confidence_block(
            [None if s is None else s.spread_km for s in spreads],
            [r.distance_km for r in rows[name]],
            [0.0 if s is None else s.country_agreement for s in spreads],
            thresholds_km=block["thresholds_km"],
            strict=strict,
            abstain_km=abstain_km,
        )
        blocks[name] = block
    k = max((len(v) for v in samples.values()), default=0)
    return ScoredAggregates(rows, results, blocks, k)
