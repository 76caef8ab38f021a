"""Unit tests of the GRPO GPU bench's arithmetic: real shapes, GPU peaks, FLOP counts, knobs, batch search."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

from gpu_shapes import (  # noqa: E402
    ModelCounts,
    count_parameters,
    forward_flops,
    gpu_peak,
    pct,
    qwen2_5_vl_config,
)
from grpo_bench_memory import largest_fitting  # noqa: E402
from grpo_bench_setup import CONFIGS, OURS, Knobs, knobs_for, parse_image_size, tiny_scale  # noqa: E402

IDS = {"bos": 0, "eos": 1, "pad": 0, "image": 2, "video": 3, "vision_start": 4, "vision_end": 5}


def _meta_model(size: str, layers: int | None = None):
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    with torch.device("meta"):
        return Qwen2_5_VLForConditionalGeneration(qwen2_5_vl_config(size, IDS, layers=layers)).to(torch.bfloat16)


def test_3b_counts_match_the_published_model():
    counts = count_parameters(_meta_model("3b"))
    assert counts.total == pytest.approx(3.75e9, rel=0.01)
    assert counts.vision_per_patch + counts.vision_merger == pytest.approx(0.67e9, rel=0.01)
    # tied embeddings: one 151936 x 2048 matrix, read again by every decode step as the LM head
    assert counts.embedding == counts.lm_head == 151936 * 2048
    assert counts.decoder + counts.embedding + counts.vision_per_patch + counts.vision_merger == counts.total
    assert counts.decode_weight_bytes == pytest.approx(6.17e9, rel=0.005)
    assert counts.kv_bytes_per_token == 2 * 36 * 2 * 128 * 2
    assert (counts.vision_window_patches, counts.vision_full_layers) == (64, 4)
    # the floor of one decode step on an H100 SXM (3.35 TB/s): ~1.84 ms
    assert counts.decode_weight_bytes / 3.35e12 == pytest.approx(1.84e-3, rel=0.01)


def test_7b_counts_have_an_untied_head():
    counts = count_parameters(_meta_model("7b"))
    assert counts.total == pytest.approx(8.29e9, rel=0.01)
    assert counts.lm_head == counts.embedding == 152064 * 3584
    assert counts.decoder + 2 * counts.embedding + counts.vision_per_patch + counts.vision_merger == counts.total


def test_layers_override_keeps_widths_and_a_full_attention_layer():
    config = qwen2_5_vl_config("3b", IDS, layers=2)
    assert config.text_config.num_hidden_layers == 2 and config.text_config.hidden_size == 2048
    assert config.vision_config.depth == 2 and config.vision_config.fullatt_block_indexes == [1]
    assert config.text_config.vocab_size == 151936


def test_config_refuses_token_ids_outside_the_vocabulary():
    with pytest.raises(ValueError, match="do not fit"):
        qwen2_5_vl_config("3b", {**IDS, "image": 151936})
    with pytest.raises(ValueError, match="lacks"):
        qwen2_5_vl_config("3b", {"bos": 0})
    with pytest.raises(ValueError, match="unknown model size"):
        qwen2_5_vl_config("1b", IDS)


@pytest.mark.parametrize(
    ("name", "flops", "tbps"),
    [
        ("NVIDIA H100 80GB HBM3", 989.0, 3.35),
        ("NVIDIA H200", 989.0, 4.8),
        ("NVIDIA H100 PCIe", 756.0, 2.0),
        ("NVIDIA A100-SXM4-80GB", 312.0, 2.039),
    ],
)
def test_gpu_peak_by_device_name(name, flops, tbps):
    peak = gpu_peak(name)
    assert peak is not None and (peak.bf16_tflops, peak.hbm_tbps) == (flops, tbps)


def test_unknown_gpu_has_no_peak_and_percentages_stay_empty():
    assert gpu_peak("Some Future GPU") is None and gpu_peak(None) is None
    assert pct(1.0, None) is None and pct(None, 2.0) is None and pct(1.0, 0.0) is None
    assert pct(1.0, 4.0) == 25.0


def _toy_counts(**overrides) -> ModelCounts:
    base = dict(total=0, decoder=100, embedding=50, lm_head=50, vision_per_patch=10, vision_merger=8, layers=2,
                heads=2, head_dim=4, kv_heads=1, vision_layers=3, vision_hidden=6, vision_window_patches=4,
                vision_full_layers=1, dtype_bytes=2)
    return ModelCounts(**{**base, **overrides})


def test_forward_flops_by_hand():
    c = _toy_counts()
    # two sequences of 3 and 5 tokens, 4 scored tokens, one image of 8 patches
    got = forward_flops(c, [3, 5], 4, [8])
    decoder = 2 * 100 * 8
    attention = 2 * 2 * 8 * (3 * 3 + 5 * 5)  # 2 * layers * (heads * head_dim) * n^2 per sequence
    head = 2 * 50 * 4
    vision = 2 * 10 * 8 + 2 * 8 * 8 / 4
    vision_attn = 4 * 6 * 8 * (1 * 8 + 2 * 4)  # one full layer over 8 patches, two windowed over 4
    assert got == pytest.approx(decoder + attention + head + vision + vision_attn)
    assert forward_flops(c, [], 0, []) == 0


def test_configs_differ_from_ours_only_where_declared():
    for name, (_, overrides) in CONFIGS.items():
        knobs = knobs_for(name)
        for field in Knobs.__dataclass_fields__:
            expected = overrides.get(field, getattr(OURS, field))
            assert getattr(knobs, field) == expected, (name, field)
    assert OURS.prompts_per_step == 8 and OURS.samples_per_step == 64 and OURS.completion_len == 512
    vlmr1 = knobs_for("vlmr1")
    assert (vlmr1.samples_per_step, vlmr1.completion_len, vlmr1.max_pixels, vlmr1.beta) == (16, 2048, 12845056, 0.04)


def test_tiny_scale_keeps_the_direction_of_each_difference():
    ours, vlmr1 = tiny_scale(OURS), tiny_scale(knobs_for("vlmr1"))
    assert vlmr1.completion_len == 4 * ours.completion_len
    assert vlmr1.max_pixels > ours.max_pixels >= ours.min_pixels
    assert vlmr1.samples_per_step < ours.samples_per_step
    ours.check()
    vlmr1.check()


def test_knobs_check_refuses_what_trl_would_refuse():
    with pytest.raises(ValueError, match="multiple of num_generations"):
        Knobs(per_device_batch=6, grad_accum=1, num_generations=4).check()
    with pytest.raises(ValueError, match="static"):
        Knobs(compile_generation=True).check()
    with pytest.raises(ValueError, match="unknown configuration"):
        knobs_for("nope")


def test_parse_image_size():
    assert parse_image_size("1024x768") == (1024, 768)
    for bad in ("1024", "0x5", "ax7", "10x10x10"):
        with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
            parse_image_size(bad)


@pytest.mark.parametrize(("threshold", "expected"), [(48, 48), (8, 8), (256, 256), (1000, 256), (63, 56)])
def test_largest_fitting_finds_the_threshold(threshold, expected):
    best, tried = largest_fitting(lambda b: b <= threshold, 8, 256, 8)
    assert best == expected
    assert all(b % 8 == 0 and 8 <= b <= 256 for b in tried)
    assert len(tried) == len(set(tried))


def test_largest_fitting_when_nothing_fits_and_bad_ranges():
    best, tried = largest_fitting(lambda b: False, 8, 64, 8)
    assert best is None and tried == [8]
    with pytest.raises(ValueError):
        largest_fitting(lambda b: True, 6, 64, 8)


def test_step_metrics_roofline_by_hand():
    from gpu_shapes import GpuPeak
    from grpo_bench_report import step_metrics, summarize

    c = _toy_counts(decoder=1000, lm_head=500, dtype_bytes=2)  # 3000 bytes of weights per decode step
    shape = {"sequence_lengths": [10, 10], "scored_tokens": 8, "image_patches": []}
    rec = {
        "step": 4.0, "prepare_inputs": 2.0, "rollout": 1.9, "generate": 1.5, "hf_generate": 1.0,
        "prefill": 0.2, "decode": 0.75, "decode_forwards": 3, "generate_calls": 1, "completions": 2,
        "generated_tokens": 8, "generate_batch": 2, "prompt_tokens_generate": 12,
        "generate_shapes": [{"batch": 2, "prompt_len": 6, "steps": 4}],
        "ref_logps": 0.25, "logps_shapes": [shape], "rewards": 0.05,
        "policy_forward": 0.5, "backward": 1.0, "optimizer": 0.5, "update_shapes": [shape],
    }
    peak = GpuPeak("test", bf16_tflops=1e-9, hbm_tbps=1e-8, memory_gb=1.0)  # 1000 FLOP/s, 1e4 B/s
    m = step_metrics(rec, c, peak, {"matmul_tflops": 0.5e-9, "copy_tbps": 0.5e-8})
    assert m["decode_forwards"] == 4 and m["decode_weight_read_gb"] == pytest.approx(12000 / 1e9)
    assert m["decode_bw_pct"] == pytest.approx(100 * 12000 / 1.0 / 1e4, abs=0.05)
    assert m["decode_bw_pct_of_measured"] == pytest.approx(2 * m["decode_bw_pct"], abs=0.1)
    assert m["decode_only_bw_pct"] == pytest.approx(100 * 9000 / 0.75 / 1e4, abs=0.05)
    kv = 2 * (4 * 6 + 4 * 3 / 2) * c.kv_bytes_per_token
    assert m["decode_bw_with_kv_pct"] == pytest.approx(100 * (12000 + kv) / 1e4, abs=0.05)
    fwd = forward_flops(c, [10, 10], 8, [])
    assert m["update_mfu_pct"] == pytest.approx(round(100 * 3 * fwd / 2.0 / 1000, 1))
    assert m["logps_mfu_pct"] == pytest.approx(round(100 * fwd / 0.25 / 1000, 1))
    assert m["update_s"] == 2.0 and m["prompt_prep_s"] == 0.5 and m["prompt_tokens_per_sample"] == 6
    assert m["other_s"] == pytest.approx(4.0 - 2.0 - 0.5 - 1.0 - 0.5)
    assert m["rollout_other_s"] == pytest.approx(2.0 - 1.5 - 0.25 - 0.05)

    s = summarize([dict(rec, step=100.0), rec, dict(rec, step=6.0)], 1, c, peak, None, 2, 4)
    assert s["measured_steps"] == 2 and s["warmup_steps"] == 1
    assert s["mean"]["step_s"] == 5.0 and s["mean"]["samples_per_s"] == pytest.approx(0.4)
    assert s["mean"]["step_s_spread_pct"] == 40.0 and s["mean"]["full_length"] is True
    assert s["mean"]["gen_tokens_per_s"] == pytest.approx(8.0)
    short = summarize([dict(rec, generated_tokens=7)], 0, c, peak, None, 2, 4)
    assert short["mean"]["full_length"] is False


def test_grpo_config_forces_full_length_completions(tmp_path):
    import argparse

    import bench_grpo_gpu

    knobs = knobs_for("vlmr1")
    cfg = bench_grpo_gpu._grpo_config(knobs, argparse.Namespace(), "cpu", tmp_path, max_steps=3)
    assert cfg.max_completion_length == 2048 and cfg.generation_kwargs == {"min_new_tokens": 2048}
    assert (cfg.per_device_train_batch_size, cfg.gradient_accumulation_steps, cfg.num_generations) == (8, 2, 8)
    assert cfg.beta == 0.04 and cfg.top_k == 50 and cfg.temperature == 1.0 and cfg.gradient_checkpointing
    assert cfg.max_steps == 3 and cfg.steps_per_generation == 2  # TRL: one generate call per optimizer step
