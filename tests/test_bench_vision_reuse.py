"""The vision-reuse bench's arithmetic: its FLOP count at the real 3B depths and its summary of the runs."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import bench_vision_reuse as bench  # noqa: E402


def test_flop_count_at_real_depth():
    args = bench.build_parser().parse_args([])
    flops = bench.real_depth_flops(args, prompt_text_tokens=40)
    assert "1976 patches, 494 tokens" in flops["photo"]  # 1024x768 resized to 0.4 MP, as in training
    # a 32-layer ViT over ~2,000 patches: about 2.6 TFLOP per encoding (6 x 0.67e9 params x patches / 3 x 2)
    assert 2000 < flops["vision_gflop_per_encoding"] < 3500
    stock, reuse = flops["vision_flop_share_stock"], flops["vision_flop_share_reuse"]
    assert 0 < reuse < stock < 1
    assert abs(flops["step_flops_reuse_over_stock"] - (1 - stock) / (1 - reuse)) < 1e-3


def test_summary_ratios_use_medians():
    runs = [
        {"config": c, "samples_per_s": v, "vision_encodings": e, "vision_images_requested": 24, "vision_s": 1.0,
         "rep": rep}
        for c, vals, e in (("ours_reuse", (2.0, 3.0, 9.0), 1.0), ("ours_no_reuse", (1.0, 1.5, 2.0), 24.0),
                           ("stock_trl", (1.0, 1.5, 1.6), 24.0))
        for rep, v in enumerate(vals)
    ]
    summary = bench.summarize(runs)
    assert summary["ours_reuse"]["samples_per_s_median"] == 3.0
    assert summary["ours_reuse"]["vision_encodings_per_step"] == 1.0
    assert summary["ratios"] == {"ours_reuse/stock_trl": 2.0, "ours_no_reuse/stock_trl": 1.0,
                                 "ours_reuse/ours_no_reuse": 2.0}
    # per repetition: 2/1, 3/1.5, 9/1.6 -> median 2.0
    assert summary["paired_ratios"]["ours_reuse/stock_trl"] == {"per_rep": [2.0, 2.0, 5.625], "median": 2.0}
