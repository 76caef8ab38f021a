"""What retrieval did in an evaluation with candidates (``geo-r eval --candidates``): baselines and the model's use.

Per image with candidates (``record.candidates``, numbered 1..K, candidate 1 = the best neighbour):

* ``retrieval_top1_km``: error of candidate 1's coordinates, i.e. of answering the best neighbour's location
  with no model at all (G3's and GeoRanker's "retrieval top-1" row);
* ``oracle_km`` / ``oracle_candidate``: the candidate nearest to the truth and its error, the best any
  chooser among the candidates could do (the candidate oracle);
* ``pred_candidate``: what the answer's ``Candidate:`` line says (k, 0 for ``none``, None for no line).

``metrics.json`` gets, for every threshold X, ``retrieval_top1_acc@Xkm`` and ``candidate_oracle_acc@Xkm``
(percent of ALL evaluated images, like ``acc@Xkm``: an image without candidates is a miss), their median
errors over the images with candidates, and a ``candidates`` block on how the model used them (percent of
the images with candidates): ``named_pct`` (named a listed candidate), ``named_best_pct`` (named the oracle's
candidate), ``named_top1_pct``, ``none_pct``, ``no_line_pct``, ``not_offered_pct`` (a number that was not
listed), and per threshold ``ignored_correct_pct@Xkm``: among the images where some candidate lay within X
km of the truth (``n_correct_available@Xkm`` of them), the share whose answer did not (farther, or no
coordinates). ``report.md`` shows them in a section; ``scores.jsonl`` carries the per-image fields for the
explorer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median
from typing import Any

from geo_r.data.schema import GeoRecord
from geo_r.eval.metrics import accuracy_key, within
from geo_r.eval.scoring import ScoredRow, distance_km
from geo_r.eval.tables import km, pct, table

CANDIDATES_BLOCK = "candidates"


def top1_key(threshold_km: float) -> str:
    """``retrieval_top1_acc@25km``."""
    return f"retrieval_top1_{accuracy_key(threshold_km)}"


def oracle_key(threshold_km: float) -> str:
    """``candidate_oracle_acc@25km``."""
    return f"candidate_oracle_{accuracy_key(threshold_km)}"


def ignored_key(threshold_km: float) -> str:
    """``ignored_correct_pct@25km`` (in the ``candidates`` block)."""
    return f"ignored_correct_pct@{threshold_km:g}km"


def available_key(threshold_km: float) -> str:
    """``n_correct_available@25km`` (in the ``candidates`` block)."""
    return f"n_correct_available@{threshold_km:g}km"


@dataclass(frozen=True, slots=True)
class RetrievalRow:
    """One image's retrieval facts (all None / 0 when it has no candidates)."""

    n_candidates: int
    top1_km: float | None
    oracle_km: float | None
    oracle_candidate: int | None
    pred_candidate: int | None

    def fields(self) -> dict[str, Any]:
        """The ``scores.jsonl`` fields of this image."""
        return {
            "n_candidates": self.n_candidates,
            "retrieval_top1_km": self.top1_km,
            "oracle_km": self.oracle_km,
            "oracle_candidate": self.oracle_candidate,
            "pred_candidate": self.pred_candidate,
        }


def retrieval_rows(
    records: Sequence[GeoRecord], rows: Sequence[ScoredRow], distance: str = "haversine"
) -> list[RetrievalRow]:
    """One :class:`RetrievalRow` per scored row (records and rows in the same order, as scoring makes them)."""
    out = []
    for record, row in zip(records, rows, strict=True):
        cands = record.candidates or ()
        pred = row.prediction.candidate if row.has_completion else None
        if not cands:
            out.append(RetrievalRow(0, None, None, None, pred))
            continue
        errors = [distance_km(record.lat, record.lon, c.lat, c.lon, distance) for c in cands]
        best = min(range(len(errors)), key=errors.__getitem__)
        out.append(RetrievalRow(len(cands), errors[0], errors[best], best + 1, pred))
    return out


def _percent(count: int, total: int) -> float | None:
    return 100.0 * count / total if total else None


def retrieval_metrics(
    retrieval: Sequence[RetrievalRow],
    rows: Sequence[ScoredRow],
    thresholds_km: Sequence[float],
    strict: bool = False,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The keys :func:`geo_r.eval.outputs.evaluate_and_write` adds to ``metrics.json`` (module docstring)."""
    n = len(retrieval)
    with_c = [(r, s) for r, s in zip(retrieval, rows, strict=True) if r.n_candidates]
    m = len(with_c)
    out: dict[str, Any] = {}
    for t in thresholds_km:
        out[top1_key(t)] = _percent(sum(within(r.top1_km, t, strict) for r in retrieval), n)
        out[oracle_key(t)] = _percent(sum(within(r.oracle_km, t, strict) for r in retrieval), n)
    top1 = [r.top1_km for r, _ in with_c if r.top1_km is not None]
    oracle = [r.oracle_km for r, _ in with_c if r.oracle_km is not None]
    out["retrieval_top1_median_km"] = float(median(top1)) if top1 else None
    out["candidate_oracle_median_km"] = float(median(oracle)) if oracle else None

    offered = [r.pred_candidate is not None and 1 <= r.pred_candidate <= r.n_candidates for r, _ in with_c]
    block: dict[str, Any] = {
        **(settings or {}),
        "n_images": n,
        "n_with_candidates": m,
        "mean_candidates": sum(r.n_candidates for r, _ in with_c) / m if m else None,
        "named_pct": _percent(sum(offered), m),
        "named_best_pct": _percent(sum(r.pred_candidate == r.oracle_candidate for r, _ in with_c), m),
        "named_top1_pct": _percent(sum(r.pred_candidate == 1 for r, _ in with_c), m),
        "none_pct": _percent(sum(r.pred_candidate == 0 for r, _ in with_c), m),
        "no_line_pct": _percent(sum(r.pred_candidate is None for r, _ in with_c), m),
        "not_offered_pct": _percent(
            sum(r.pred_candidate is not None and r.pred_candidate > r.n_candidates for r, _ in with_c), m
        ),
    }
    for t in thresholds_km:
        available = [(r, s) for r, s in with_c if within(r.oracle_km, t, strict)]
        ignored = sum(not within(s.distance_km, t, strict) for _, s in available)
        block[available_key(t)] = len(available)
        block[ignored_key(t)] = _percent(ignored, len(available))
    out[CANDIDATES_BLOCK] = block
    return out


def retrieval_section(metrics: dict[str, Any]) -> list[str]:
    """The report.md lines of an evaluation with candidates (empty without)."""
    block = metrics.get(CANDIDATES_BLOCK)
    if not isinstance(block, dict):
        return []
    thresholds = metrics.get("thresholds_km", [])
    header = ["", *(f"{t:g} km" for t in thresholds), "median km"]
    numeric = range(1, 2 + len(thresholds))
    rows = [
        ["this run (the model's answers)", *(pct(metrics.get(accuracy_key(t))) for t in thresholds),
         km(metrics.get("median_km"))],
        ["retrieval top-1 (candidate 1, no model)", *(pct(metrics.get(top1_key(t))) for t in thresholds),
         km(metrics.get("retrieval_top1_median_km"))],
        ["candidate oracle (nearest candidate)", *(pct(metrics.get(oracle_key(t))) for t in thresholds),
         km(metrics.get("candidate_oracle_median_km"))],
    ]
    m, n = block.get("n_with_candidates", 0), block.get("n_images", metrics.get("n", 0))
    source = f" from `{block['file']}`" if block.get("file") else ""
    limits = (f" (at most {block['num_candidates']}, merged within {block['radius_km']:g} km)"
              if block.get("num_candidates") is not None else "")
    lines = [
        "## Retrieval candidates",
        "",
        f"{m} of {n} images had candidates{source}{limits}, {block.get('mean_candidates') or 0:.1f} on average. "
        "Accuracy is % of all images (an image without candidates is a miss for the two retrieval rows); "
        "median errors are over the images with candidates (the model's over its parsed answers).",
        "",
        *table(header, rows, numeric),
        "",
        "How the answers used them (% of the images with candidates):",
        "",
    ]
    use = [
        ["named a listed candidate", pct(block.get("named_pct"))],
        ["named the best one (nearest to the truth)", pct(block.get("named_best_pct"))],
        ["named candidate 1", pct(block.get("named_top1_pct"))],
        ["said `Candidate: none`", pct(block.get("none_pct"))],
        ["no readable `Candidate:` line", pct(block.get("no_line_pct"))],
        ["named a number that was not listed", pct(block.get("not_offered_pct"))],
    ]
    lines += table(["answer", "%"], use, [1])
    ignored = [
        [f"{t:g} km", str(block.get(available_key(t), 0)), pct(block.get(ignored_key(t)))] for t in thresholds
    ]
    lines += [
        "",
        "Ignored a correct candidate: among the images where some candidate lay within X km of the truth, the "
        "share whose answer did not (farther, or no coordinates).",
        "",
        *table(["X", "images with a candidate within X", "ignored %"], ignored, [1, 2]),
    ]
    return lines
