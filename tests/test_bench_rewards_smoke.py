"""Smoke run of bench/bench_rewards.py --quick on a few hundred real MP16 coordinates (no timing asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "mp16_coordinates_100k.csv"
BENCH = REPO / "bench" / "bench_rewards.py"

needs_data = pytest.mark.skipif(
    not DATA.is_file(), reason=f"real MP16 coordinates not found at {DATA} (../shared/data is not part of a checkout)"
)


@needs_data
def test_quick_bench_runs_and_writes_consistent_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--n", "400", "--out", str(out)],
        capture_output=True, text=True, timeout=600, env=env, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "## Throughput" in proc.stdout and "## Reward-hacking floors" in proc.stdout
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["n"] == 400 and result["quick"] is True
    assert "bench/bench_rewards.py --quick" in result["command"] and result["packages"]["reverse_geocoder"]
    assert result["machine"]["cpu_count"] and result["git_commit"]
    assert sum(result["completion_kinds"].values()) == 400

    steps = {row["step"]: row for row in result["throughput"]}
    assert set(steps) == {
        "region labelling (reverse geocode)", "parse completion", "reward: format",
        "reward: distance (paper map)", "reward: region", "reward: geo_r_paper",
    }
    for row in steps.values():
        assert row["ours_items_per_s"] > 0
    for name in ("region labelling (reverse geocode)", "parse completion", "reward: distance (paper map)"):
        assert steps[name]["baseline_items_per_s"] > 0 and steps[name]["speedup"] > 0

    # Our labels are the exact great-circle nearest place: the degree-space baseline is never nearer.
    assert result["label_agreement"]["baseline_ever_nearer"] is False
    assert 80.0 < result["label_agreement"]["same_country_pct"] <= 100.0

    kinds = {row["kind"]: row for row in result["reward_by_kind"]}
    assert kinds["unparseable"]["region"] == 0.0 and kinds["unparseable"]["distance"] == 0.0
    # On real points the region reward orders the mix: near > far > another country.
    assert kinds["near"]["region"] > kinds["far"]["region"] > kinds["other_country"]["region"]

    floors = {row["variant"]: row for row in result["floors"]}
    assert len(floors) == 5 and {"paper", "geoscore", "threshold"} <= set(floors)
    for row in floors.values():
        for key in ("best_constant_mean", "country_centroid_mean", "region_centroid_mean"):
            assert 0.0 <= row[key] <= 1.0
        assert -90 <= row["best_constant_lat"] <= 90 and -180 <= row["best_constant_lon"] <= 180
    paper = floors["paper"]
    # Knowing more earns more: admin1 centroid > country centroid > one point for everybody.
    assert paper["region_centroid_mean"] > paper["country_centroid_mean"] > paper["best_constant_mean"] > 0.1


def test_missing_data_file_is_a_clear_exit(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--data", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "x.json")],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert proc.returncode != 0
    assert "nope.csv not found" in proc.stderr
    assert not (tmp_path / "x.json").exists()
