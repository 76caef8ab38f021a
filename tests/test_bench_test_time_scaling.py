"""bench/bench_test_time_scaling.py's table and verdict on hand-made per-seed results (no demo is run)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_tts", REPO / "bench" / "bench_test_time_scaling.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _agg(acc25: float, median: float, rho: float | None = 0.5) -> dict:
    return {"acc@25km": acc25, "acc@200km": 50.0, "acc@750km": 60.0, "acc@2500km": 70.0,
            "median_km_worst_case": median, "spearman_spread_error": rho,
            "abstention": {"coverage": 40.0, "acc@25km": 90.0}}


def test_verdict_counts_wins_ties_and_losses_against_greedy() -> None:
    bench = _bench()
    results = [
        {"seed": 0, "aggregates": {"greedy": _agg(30.0, 1000.0), "medoid": _agg(35.0, 900.0), "vote": _agg(30.0, 1100.0)}},
        {"seed": 1, "aggregates": {"greedy": _agg(30.0, 1000.0), "medoid": _agg(25.0, 1000.0), "vote": _agg(31.0, 800.0)}},
    ]
    v = bench.verdict(results, ["greedy", "medoid", "vote"])
    assert set(v) == {"medoid", "vote"}
    assert v["medoid"]["beats_greedy_acc@25km"] == 1 and v["medoid"]["ties_greedy_acc@25km"] == 0
    assert v["medoid"]["beats_greedy_median_km_worst_case"] == 1 and v["medoid"]["ties_greedy_median_km_worst_case"] == 1
    assert v["vote"]["beats_greedy_acc@25km"] == 1 and v["vote"]["ties_greedy_acc@25km"] == 1
    assert v["vote"]["ties_greedy_acc@750km"] == 2

    table = bench.table(results, ["greedy", "medoid", "vote"]).splitlines()
    assert len(table) == 2 + 6 + 3  # header, separator, seed x aggregate rows, one mean row per aggregate
    assert table[2].startswith("| 0 | greedy | 30.0% |") and "1,000" in table[2] and "40% / 90.0%" in table[2]
    assert table[-2].startswith("| mean | **medoid** | 30.0% |") and "950" in table[-2]
