"""Turn the per-phase step records of the GRPO GPU bench into throughput, roofline ratios and tables.

Every number is a mean over the measured (post-warm-up) optimizer steps of one configuration. The
definitions of decode bandwidth use and update MFU are in :mod:`gpu_shapes`; here they are applied:

* ``decode_bw_pct`` (the issue's definition): decode weight bytes x decoding forwards / generation time
  (prefill included), over the GPU's peak HBM bandwidth;
* ``decode_only_bw_pct``: the same over the decoding forwards after the first (prefill excluded);
* ``decode_bw_with_kv_pct``: weights plus the KV cache each decoding forward reads, over generation time;
* ``update_mfu_pct``: 3 x forward model FLOPs of the policy passes / (policy forward + backward +
  optimizer time), over peak bf16 FLOP/s; ``logps_mfu_pct``: forward FLOPs of the no-grad log-prob passes
  over their time.
"""

from __future__ import annotations

import statistics
from typing import Any

from gpu_shapes import GpuPeak, ModelCounts, forward_flops, pct

GIB = 2**30
PHASES = (
    "prompt_prep_s", "generate_s", "prefill_s", "decode_s", "old_logps_s", "ref_logps_s", "rewards_s",
    "rollout_other_s", "policy_forward_s", "backward_s", "optimizer_s", "other_s",
)


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _flops(counts: ModelCounts, shapes: list[dict[str, Any]]) -> float:
    return sum(
        forward_flops(counts, s["sequence_lengths"], s["scored_tokens"], s["image_patches"]) for s in shapes
    )


def _kv_read_bytes(counts: ModelCounts, calls: list[dict[str, int]]) -> float:
    """KV-cache bytes read by all decoding forwards of the generate calls (cache holds padded prompts)."""
    total = 0.0
    for c in calls:
        b, p, n = c["batch"], c["prompt_len"], c["steps"]
        total += b * (n * p + n * (n - 1) / 2) * counts.kv_bytes_per_token
    return total


def step_metrics(
    rec: dict[str, Any], counts: ModelCounts, peak: GpuPeak | None, measured: dict[str, float] | None
) -> dict[str, Any]:
    """Derived numbers of one optimizer step record from ``grpo_bench_timing``."""
    g = rec.get
    step_s = g("step", 0.0)
    hf = g("hf_generate", 0.0)
    calls = g("generate_shapes", [])
    forwards = (g("decode_forwards", 0) + g("generate_calls", 0)) if g("decode_forwards") else sum(
        c["steps"] for c in calls
    )
    update_s = g("policy_forward", 0.0) + g("backward", 0.0) + g("optimizer", 0.0)
    logps_s = g("old_logps", 0.0) + g("ref_logps", 0.0)
    # prepare_inputs holds the rollout (when due) and TRL's slicing of the buffered generation batch
    accounted = g("prepare_inputs", 0.0) + g("policy_forward", 0.0) + g("backward", 0.0) + g("optimizer", 0.0)
    weight_read = counts.decode_weight_bytes * forwards
    kv_read = _kv_read_bytes(counts, calls)
    update_flops = 3.0 * _flops(counts, g("update_shapes", []))
    logps_flops = _flops(counts, g("logps_shapes", []))
    bw = peak.hbm_tbps * 1e12 if peak else None
    fl = peak.bf16_tflops * 1e12 if peak else None
    m_bw = measured.get("copy_tbps", 0) * 1e12 if measured else None
    m_fl = measured.get("matmul_tflops", 0) * 1e12 if measured else None
    out = {
        "step_s": step_s,
        "completions": g("completions", 0),
        "generated_tokens": g("generated_tokens", 0),
        "prompt_tokens_per_sample": g("prompt_tokens_generate", 0) / g("generate_batch") if g("generate_batch") else None,
        "generate_s": hf,
        "prompt_prep_s": g("generate", 0.0) - hf,
        "prefill_s": g("prefill") if g("decode_forwards") else None,
        "decode_s": g("decode") if g("decode_forwards") else None,
        "old_logps_s": g("old_logps", 0.0),
        "ref_logps_s": g("ref_logps", 0.0),
        "logps_s": logps_s,
        "rewards_s": g("rewards", 0.0),
        "rollout_other_s": g("prepare_inputs", 0.0) - g("generate", 0.0) - logps_s - g("rewards", 0.0),
        "policy_forward_s": g("policy_forward", 0.0),
        "backward_s": g("backward", 0.0),
        "optimizer_s": g("optimizer", 0.0),
        "update_s": update_s,
        "other_s": step_s - accounted,
        "decode_forwards": forwards,
        "decode_weight_read_gb": weight_read / 1e9,
        "kv_read_gb": kv_read / 1e9,
        "update_tflop": update_flops / 1e12,
        "logps_tflop": logps_flops / 1e12,
        "decode_bw_tbps": weight_read / hf / 1e12 if hf else None,
        "decode_bw_pct": pct(weight_read / hf if hf else None, bw),
        "decode_only_bw_pct": pct(
            counts.decode_weight_bytes * g("decode_forwards", 0) / g("decode") if g("decode") else None, bw
        ),
        "decode_bw_with_kv_pct": pct((weight_read + kv_read) / hf if hf else None, bw),
        "decode_bw_pct_of_measured": pct(weight_read / hf if hf else None, m_bw),
        "update_tflops": update_flops / update_s / 1e12 if update_s else None,
        "update_mfu_pct": pct(update_flops / update_s if update_s else None, fl),
        "update_mfu_pct_of_measured": pct(update_flops / update_s if update_s else None, m_fl),
        "logps_mfu_pct": pct(logps_flops / logps_s if logps_s else None, fl),
    }
    for key in ("step_allocated", "step_reserved"):
        if f"peak_{key}_bytes" in rec:
            out[f"peak_{key}_gib"] = rec[f"peak_{key}_bytes"] / GIB
    for key in ("generate", "update", "optimizer"):
        if f"peak_{key}_bytes" in rec:
            out[f"peak_{key}_gib"] = rec[f"peak_{key}_bytes"] / GIB
    return out


def summarize(
    records: list[dict[str, Any]],
    warmup: int,
    counts: ModelCounts,
    peak: GpuPeak | None,
    measured: dict[str, float] | None,
    samples_per_step: int,
    completion_len: int,
) -> dict[str, Any]:
    """Mean metrics over ``records[warmup:]`` plus throughput, and a check that completions were full length."""
    measured_steps = records[warmup:] or records[-1:]
    per_step = [step_metrics(r, counts, peak, measured) for r in measured_steps]
    keys = per_step[0].keys() if per_step else []
    mean = {}
    for k in keys:
        vals = [s[k] for s in per_step if s[k] is not None]
        mean[k] = _mean(vals) if vals else None
    step_s = mean.get("step_s") or None
    gen_s = mean.get("generate_s") or None
    mean["samples_per_step"] = samples_per_step
    mean["samples_per_s"] = samples_per_step / step_s if step_s else None
    mean["gen_tokens_per_s"] = mean["generated_tokens"] / gen_s if gen_s else None
    step_times = [s["step_s"] for s in per_step]
    mean["step_s_per_step"] = step_times
    mean["step_s_spread_pct"] = (
        round(100 * (max(step_times) - min(step_times)) / statistics.fmean(step_times), 1) if step_times else None
    )
    mean["full_length"] = bool(per_step) and all(
        s["generated_tokens"] == s["completions"] * completion_len and s["completions"] == samples_per_step
        for s in per_step
    )
    return {"mean": mean, "steps": per_step, "measured_steps": len(per_step), "warmup_steps": len(records) - len(per_step)}


def add_ratios(results: list[dict[str, Any]], baseline: str = "ours") -> dict[str, Any]:
    """Per configuration: samples/s, tokens/s and step time relative to ``baseline`` (in place); a summary."""
    by_name = {r["name"]: r for r in results if "summary" in r}
    base = by_name.get(baseline)
    summary: dict[str, Any] = {}
    if base is None:
        return summary
    b = base["summary"]["mean"]
    for r in by_name.values():
        m = r["summary"]["mean"]
        r["vs_" + baseline] = {
            "samples_per_s": _ratio(m.get("samples_per_s"), b.get("samples_per_s")),
            "gen_tokens_per_s": _ratio(m.get("gen_tokens_per_s"), b.get("gen_tokens_per_s")),
            "step_s": _ratio(m.get("step_s"), b.get("step_s")),
        }
    if "stock_trl" in by_name:
        s = by_name["stock_trl"]["summary"]["mean"]
        summary["ours_step_time_over_stock_trl"] = _ratio(b.get("step_s"), s.get("step_s"))
        summary["ours_samples_per_s_over_stock_trl"] = _ratio(b.get("samples_per_s"), s.get("samples_per_s"))
    if baseline + "#2" in by_name:
        again = by_name[baseline + "#2"]["summary"]["mean"]
        summary[f"{baseline}_repeat_samples_per_s_ratio"] = _ratio(again.get("samples_per_s"), b.get("samples_per_s"))
    if "vlmr1" in by_name:
        v = by_name["vlmr1"]["summary"]["mean"]
        summary["ours_samples_per_s_over_vlmr1"] = _ratio(b.get("samples_per_s"), v.get("samples_per_s"))
        summary["ours_gen_tokens_per_s_over_vlmr1"] = _ratio(b.get("gen_tokens_per_s"), v.get("gen_tokens_per_s"))
    return summary


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def _fmt(x: Any, digits: int = 2) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "NO"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def tables(results: list[dict[str, Any]], baseline: str = "ours") -> str:
    """Markdown tables: throughput and roofline, then the phase breakdown (seconds per optimizer step)."""
    head = (
        "| config | samples/step | step s | samples/s | gen tok/s | decode BW % | update MFU % | logps MFU % "
        f"| peak GiB | full length | samples/s vs {baseline} |\n|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = ["## Throughput (per GPU)", "", head]
    phase_lines = [
        "## Phases (s per optimizer step; prefill and decode are parts of generate)", "",
        "| config | " + " | ".join(p.removesuffix("_s").replace("_", " ") for p in PHASES) + " |",
        "|---|" + "---|" * len(PHASES),
    ]
    for r in results:
        if "summary" not in r:
            why = r.get("skipped") or r.get("error", "not run")
            lines.append(f"| {r['name']} | {why.splitlines()[0][:120]} |")
            continue
        m = r["summary"]["mean"]
        peak_gib = m.get("peak_step_reserved_gib")
        lines.append(
            f"| {r['name']} | {m['samples_per_step']} | {_fmt(m['step_s'])} | {_fmt(m['samples_per_s'], 3)} "
            f"| {_fmt(m['gen_tokens_per_s'], 0)} | {_fmt(m['decode_bw_pct'], 1)} | {_fmt(m['update_mfu_pct'], 1)} "
            f"| {_fmt(m['logps_mfu_pct'], 1)} | {_fmt(peak_gib, 1)} | {_fmt(m['full_length'])} "
            f"| {_fmt(r.get('vs_' + baseline, {}).get('samples_per_s'), 3)} |"
        )
        phase_lines.append(f"| {r['name']} | " + " | ".join(_fmt(m.get(p)) for p in PHASES) + " |")
    return "\n".join(lines + [""] + phase_lines)
