"""bench/bench_gspo_equivalence.py on the tiny model: TRL's KL correction is what makes the ``gspo`` recipe's
on-policy gradient differ from ``loss_grpo``'s (the README's explanation of the ablation's gspo row rests on it)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import bench_gspo_equivalence as bench  # noqa: E402

pytestmark = pytest.mark.slow


def test_kl_correction_is_the_only_difference_and_runs_are_deterministic(tmp_path: Path) -> None:
    out = tmp_path / "gspo.json"
    assert bench.main(["--steps", "2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    on = result["gradients"]["use_bias_correction_kl_true"]
    off = result["gradients"]["use_bias_correction_kl_false"]
    assert result["gradients"]["after_steps"] == 1
    # same loss value either way (on-policy ratio 1); the gradients differ only through TRL's KL correction
    assert on["loss_grpo_token"] == pytest.approx(on["loss_gspo"], rel=1e-6)
    assert on["relative_grad_difference"] > 1e-3
    assert off["relative_grad_difference"] < 1e-5
    first, second = result["training"]
    # step 1 starts at the reference model (KL 0): the same update; a rerun is identical at every step
    assert first["gspo_vs_grpo_token"]["relative_l2"] < 1e-6
    assert second["gspo_vs_grpo_token"]["relative_l2"] > 1e-4
    assert first["grpo_token_rerun"]["relative_l2"] == second["grpo_token_rerun"]["relative_l2"] == 0.0
    assert set(first["reward"]) == {"grpo_token", "gspo", "grpo_token_again"}
    assert result["settings"]["gspo"]["importance_sampling_level"] == "sequence"
    assert "command" in result and "packages" in result
