"""bench/bench_recipe_ablation.py: its bookkeeping on hand-made inputs, and one short real run (two recipes, one
seed, a few steps) through the same code the README's table comes from."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "bench_recipe_ablation.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_ablation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_completions_count_the_filter_extra_rollouts_per_step():
    state = {"global_step": 10, "log_history": [
        {"step": 5, "group_filter/extra_completions": 8.0},  # mean over steps 1-5
        {"step": 10, "group_filter/extra_completions": 0.0},
        {"step": 10, "train_runtime": 1.0},
    ]}
    assert _bench().completions_generated(state, 32) == 10 * 32 + 5 * 8
    assert _bench().completions_generated({"global_step": 4, "log_history": [{"step": 4, "loss": 0.1}]}, 32) == 128


def test_recipe_data_moves_into_the_seed_folder(tmp_path):
    bench = _bench()
    assert bench.recipe_data("demo_baseline", tmp_path) == f"{tmp_path}/world/train.jsonl"
    assert bench.recipe_data("hard_mining", tmp_path) == f"{tmp_path}/world/train_hard.jsonl"
    assert set(bench.ORDER) == {p.stem for p in (REPO / "local_scripts" / "recipes").glob("*.yaml")}


def test_markdown_shows_mean_and_range():
    bench = _bench()
    rows = {"demo_baseline": {0: {"mean_reward": 2.0, "median_km": 1000.0, "acc@25km": 30.0, "acc@750km": 60.0,
                                  "grpo_wall_s": 100.0, "completions": 1280.0},
                              1: {"mean_reward": 2.2, "median_km": 800.0, "acc@25km": 30.0, "acc@750km": 70.0,
                                  "grpo_wall_s": 120.0, "completions": 1280.0}}}
    result = {"recipes": bench.summarize(rows), "seeds": ["0", "1"], "threads": 1, "jobs": 2}
    line = bench.markdown(result).splitlines()[2]
    assert line == "| `demo_baseline` | 2.100 (2.000-2.200) | 900 (800-1,000) | 30.0% | 65.0% (60.0-70.0) | " \
                   "110 (100-120) | 1,280 |"


@pytest.mark.slow
def test_a_rerun_replaces_only_its_recipes_and_is_recorded():
    bench = _bench()
    row = {"mean_reward": 2.0, "median_km": 900.0}
    earlier = {"seeds": ["0"], "threads": 1, "command": "first", "recipes": bench.summarize(
        {"demo_baseline": {0: row}, "group_filter": {0: {**row, "mean_reward": 1.0}}, "gspo": {0: row}})}
    rerun = {"seeds": ["0"], "threads": 1, "command": "second", "git_commit": "abc", "wall_s": 5.0,
             "recipes": bench.summarize({"group_filter": {0: {**row, "mean_reward": 3.0}}})}
    merged = bench.merge_rerun(earlier, rerun, "after a fix")
    assert list(merged["recipes"]) == ["demo_baseline", "gspo", "group_filter"]  # the table's order
    assert merged["recipes"]["group_filter"]["summary"]["mean_reward"]["mean"] == 3.0
    assert merged["recipes"]["gspo"] == earlier["recipes"]["gspo"] and merged["command"] == "first"
    assert merged["reruns"] == [{"recipes": ["group_filter"], "note": "after a fix", "command": "second",
                                 "packages": None, "machine": None, "git_commit": "abc", "utc": None, "wall_s": 5.0}]
    with pytest.raises(ValueError, match="seeds"):
        bench.merge_rerun(earlier, {**rerun, "seeds": ["0", "1"]}, "")


def test_a_short_ablation_runs_end_to_end(tmp_path):
    out = tmp_path / "ablation.json"
    cmd = [sys.executable, str(SCRIPT), "--seeds", "0", "--recipes", "group_filter", "hard_mining",
           "--out_dir", str(tmp_path / "work"), "--sft_steps", "20", "--grpo_steps", "2", "--jobs", "1",
           "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert list(result["recipes"]) == ["group_filter", "hard_mining"]
    assert result["overrides"] == {"sft_steps": 20, "grpo_steps": 2} and result["packages"]["trl"]
    for recipe in ("group_filter", "hard_mining"):
        row = result["recipes"][recipe]["seeds"]["0"]
        assert 0.0 <= row["mean_reward"] <= 3.0 and row["completions"] >= 2 * 32
    assert any("group_filter/filtered_frac" in e for e in result["recipes"]["group_filter"]["seeds"]["0"]["train_log"])
    assert result["mining"]["per_seed"]["0"]  # mine-hard's summary is kept
    assert "| `group_filter` |" in proc.stdout
