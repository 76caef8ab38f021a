"""CPU smoke runs of bench/bench_grpo_gpu.py on the tiny model, so the GPU bench cannot rot (no timing asserted).

One step per configuration: ours, stock TRL and VLM-R1's settings run side by side in one process, a
GPU-only configuration is skipped with its reason, and the JSON/table carry every metric the GPU run
reports. The memory search runs its child-process probes on CPU with the tiny model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench" / "bench_grpo_gpu.py"
pytestmark = pytest.mark.slow

MEAN_KEYS = {
    "step_s", "samples_per_step", "samples_per_s", "gen_tokens_per_s", "generate_s", "prefill_s", "decode_s",
    "ref_logps_s", "rewards_s", "policy_forward_s", "backward_s", "optimizer_s", "update_s", "decode_bw_pct",
    "decode_only_bw_pct", "update_mfu_pct", "logps_mfu_pct", "update_tflop", "decode_weight_read_gb",
    "prompt_tokens_per_sample", "full_length", "step_s_spread_pct",
}


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, str(BENCH), "--device", "cpu", "--tiny", "--work_dir", str(tmp_path / "work"), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env, cwd=REPO)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def test_tiny_run_compares_configurations_side_by_side(tmp_path):
    out = tmp_path / "bench.json"
    proc = _run(["--configs", "ours,stock_trl,vlmr1,ours_liger", "--steps", "1", "--warmup_steps", "0",
                 "--image_size", "224x168", "--out", str(out)], tmp_path)
    assert "## Throughput (per GPU)" in proc.stdout and "## Phases" in proc.stdout
    for name in ("ours", "stock_trl", "vlmr1", "ours_liger"):
        assert f"| {name} |" in proc.stdout

    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["model_size"] == "tiny" and result["environment"]["device"] == "cpu"
    assert result["provenance"]["packages"]["trl"] and result["provenance"]["machine"]["cpu_count"]
    configs = {c["name"]: c for c in result["configs"]}
    assert list(configs) == ["ours", "stock_trl", "vlmr1", "ours_liger"]
    assert configs["ours_liger"]["skipped"].startswith("skipped:")

    for name in ("ours", "stock_trl", "vlmr1"):
        c = configs[name]
        assert "error" not in c, c.get("traceback")
        mean = c["summary"]["mean"]
        assert MEAN_KEYS <= set(mean), MEAN_KEYS - set(mean)
        knobs = c["knobs"]
        # completions were forced to full length: every sample generated max_completion_length tokens
        assert mean["full_length"] is True
        assert mean["generated_tokens"] == knobs["per_device_batch"] * knobs["grad_accum"] * knobs["completion_len"]
        assert all(e["completions/mean_length"] == knobs["completion_len"] for e in c["trl_logs"])
        assert c["reference_model"] is True and mean["ref_logps_s"] > 0  # beta 0.04 in all three
        assert mean["samples_per_s"] > 0 and mean["update_tflop"] > 0 and mean["decode_weight_read_gb"] > 0
        # the phases never add up to more than the step (no double counting)
        assert mean["other_s"] >= -1e-3 and mean["rollout_other_s"] >= -1e-3
        assert mean["prefill_s"] + mean["decode_s"] <= mean["generate_s"] + 1e-3
        # no GPU: roofline percentages are empty, not invented
        assert mean["decode_bw_pct"] is None and mean["update_mfu_pct"] is None
    assert configs["ours"]["knobs"]["trainer"] == "geo" and configs["stock_trl"]["knobs"]["trainer"] == "trl"
    vl, ours = configs["vlmr1"], configs["ours"]
    assert vl["knobs"]["completion_len"] == 4 * ours["knobs"]["completion_len"]
    # VLM-R1's max_pixels keeps the 224x168 photo whole; ours shrinks it: more image tokens per prompt
    assert vl["summary"]["mean"]["prompt_tokens_per_sample"] > ours["summary"]["mean"]["prompt_tokens_per_sample"]
    for name in ("ours", "stock_trl", "vlmr1"):
        assert configs[name]["vs_ours"]["samples_per_s"] > 0
    ratios = result["ratios"]
    assert {"ours_step_time_over_stock_trl", "ours_samples_per_s_over_stock_trl",
            "ours_samples_per_s_over_vlmr1", "ours_gen_tokens_per_s_over_vlmr1"} <= set(ratios)


def test_tiny_memory_search_probes_in_child_processes(tmp_path):
    out = tmp_path / "memory.json"
    _run(["--memory_search", "3b_full", "--max_batch", "4", "--image_size", "112x84", "--out", str(out)], tmp_path)
    result = json.loads(out.read_text(encoding="utf-8"))
    (row,) = result["memory_search"]
    # no memory limit on CPU: every batch tried fits, so the largest is the cap
    assert row["setting"] == "3b_full" and row["largest_batch"] == 4 and row["tried"] == [2, 4]
    assert all(p["fits"] and p["max_rss_gib"] > 0 and p["step_s"] > 0 for p in row["probes"])

    # a limit below any process's size: the first probe fails and nothing fits
    out2 = tmp_path / "memory2.json"
    _run(["--memory_search", "3b_full", "--max_batch", "4", "--image_size", "112x84", "--memory_limit_gib", "0.01",
          "--out", str(out2)], tmp_path)
    (row2,) = json.loads(out2.read_text(encoding="utf-8"))["memory_search"]
    assert row2["largest_batch"] is None and row2["tried"] == [2]
    assert "over the 0.01 GiB limit" in row2["probes"][0]["error"]


def test_unknown_configuration_is_a_clear_exit(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH), "--device", "cpu", "--tiny", "--configs", "ours,nope",
                           "--out", str(tmp_path / "x.json")], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode != 0 and "unknown configuration(s) nope" in proc.stderr
    assert not (tmp_path / "x.json").exists()
