"""GRPO step throughput on a real-size Qwen2.5-VL with random weights: ours, stock TRL and VLM-R1's settings.

Builds a Qwen2.5-VL-3B-shaped model (``--model_size 7b`` for 7B) with random bf16 weights, writes
synthetic photos (``--image_size``, default 1024x768, so ``--max_pixels`` matters), and runs a few GRPO
optimizer steps per configuration, one configuration after the other in this process on the same GPU.
Completions are forced to full length (``min_new_tokens`` = ``max_completion_length``), gradient
checkpointing is on unless a configuration turns it off. Per step it times generation (prefill /
decode), the log-prob passes, rewards and the policy update (forward, backward, optimizer) with
synchronised timers around the trainer's override points (``grpo_bench_timing``), records peak GPU
memory, and derives samples/s, generated tokens/s, decode bandwidth use and update MFU against the
GPU's datasheet peak and against a measured matmul / copy peak (``grpo_bench_report``). It prints two
tables and writes JSON after every configuration (so a run cut short still leaves its results).

Configurations (``--configs``, see ``grpo_bench_setup.CONFIGS``): ``ours`` (GeoGRPOTrainer with
run_grpo_rec.sh settings, 8 prompts x 8 generations per step), ``stock_trl`` (trl.GRPOTrainer with
identical settings), ``vlmr1`` (VLM-R1's run_grpo_rec.sh settings in our trainer) and single-change
variants of ``ours``. ``--memory_search`` finds the largest per-device batch that fits instead
(``grpo_bench_memory``).

Usage (GPU; packages the GPU machine lacks come as wheels from ``bench/fetch_gpu_wheels.sh``):

    python bench/bench_grpo_gpu.py --configs ours,stock_trl,vlmr1 --steps 2 --warmup_steps 1
    python bench/bench_grpo_gpu.py --configs ours,ours_beta0,ours_static_cache,ours_liger --steps 1
    python bench/bench_grpo_gpu.py --configs ours_frozen_vision,ours_frozen_vision_no_reuse,stock_trl_frozen_vision,ours,ours_no_reuse,stock_trl
    python bench/bench_grpo_gpu.py --memory_search 3b_full,3b_zero3_offload,7b_lora --memory_limit_gib 79.6
    python bench/bench_grpo_gpu.py --model_size 3b --layers 2 --small_workload --steps 1 --warmup_steps 0  # 1-min check

CPU smoke (tiny model, one step): ``python bench/bench_grpo_gpu.py --device cpu --tiny --steps 1 --warmup_steps 0``.
Numbers from a CPU run are not performance data: only the GPU run's JSON belongs in ``bench/results/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
for _p in (BENCH, REPO / "src"):
    # bench helpers sit beside this file; the package from src/ when it is not installed (GPU machine)
    if _p == BENCH or importlib.util.find_spec("geo_r") is None:
        sys.path.insert(0, str(_p))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from grpo_bench_setup import (  # noqa: E402
    CONFIGS,
    MODEL_SIZES,
    Knobs,
    build_bench_model,
    knobs_for,
    parse_image_size,
    synthetic_dataset,
)
from provenance import provenance  # noqa: E402

DEFAULT_OUT = REPO / "bench" / "results" / "bench_grpo_gpu.json"
DEFAULT_MEMORY_OUT = REPO / "bench" / "results" / "bench_grpo_gpu_memory.json"
DEFAULT_CONFIGS = "ours,stock_trl,vlmr1"
REWARDS = ["format", "distance", "region"]


# ------------------------------------------------------------------------------------------------ flags


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags of the bench."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", default=DEFAULT_CONFIGS,
                   help=f"comma-separated configurations, run in this order (known: {', '.join(CONFIGS)})")
    p.add_argument("--model_size", choices=[s for s in MODEL_SIZES if s != "tiny"], default="3b",
                   help="real Qwen2.5-VL shapes to build with random weights")
    p.add_argument("--layers", type=int, default=None,
                   help="quick checks only: cut decoder and vision tower to N layers (widths and vocabulary stay real)")
    p.add_argument("--tiny", action="store_true",
                   help="smoke mode: Geo-R's tiny model and --small_workload")
    p.add_argument("--small_workload", action="store_true",
                   help="every configuration scaled down (2 generations, 1/64 of the tokens: grpo_bench_setup.tiny_scale)")
    p.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    p.add_argument("--steps", type=int, default=2, help="measured optimizer steps per configuration")
    p.add_argument("--warmup_steps", type=int, default=1, help="optimizer steps run first and not measured")
    p.add_argument("--image_size", default="1024x768", help="synthetic photo size WIDTHxHEIGHT (before resizing)")
    p.add_argument("--max_pixels", type=int, default=None,
                   help="override max_pixels of 'ours'-based configurations (default 401408; VLM-R1 keeps 12845056)")
    p.add_argument("--completion_len", type=int, default=None,
                   help="override max_completion_length (= min_new_tokens) of every configuration")
    p.add_argument("--attn_implementation", default="sdpa", help="sdpa (default) or flash_attention_2 when installed")
    p.add_argument("--work_dir", type=Path, default=Path(tempfile.gettempdir()) / "geo_r_bench",
                   help="where the random model (reused between runs) and the photos are written")
    p.add_argument("--out", type=Path, default=None,
                   help=f"JSON results file, rewritten after each configuration (default {DEFAULT_OUT.relative_to(REPO)}, "
                   f"or {DEFAULT_MEMORY_OUT.relative_to(REPO)} with --memory_search)")
    p.add_argument("--no_measure_peaks", action="store_true",
                   help="skip the matmul / copy micro-benchmarks that give the measured peaks")
    p.add_argument("--memory_search", default=None,
                   help="comma-separated memory settings (3b_full, 3b_zero3_offload, 7b_lora): find the largest "
                   "per-device batch that fits instead of timing configurations")
    p.add_argument("--memory_limit_gib", type=float, default=None,
                   help="cap GPU memory per probe (e.g. 79.6 to answer 'fits on an 80 GB H100' on an H200); on CPU "
                   "a probe whose peak RSS exceeds it counts as not fitting")
    p.add_argument("--max_batch", type=int, default=256, help="memory search: largest per-device batch tried")
    p.add_argument("--batch_resolution", type=int, default=None,
                   help="memory search: batches tried are multiples of this (default and minimum: num_generations); "
                   "coarser means fewer probes")
    p.add_argument("--probe_timeout_s", type=float, default=300.0, help="memory search: time limit of one probe")
    # internal: one memory probe in a child process
    p.add_argument("--probe", default=None, help=argparse.SUPPRESS)
    p.add_argument("--probe_batch", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--probe_out", type=Path, default=None, help=argparse.SUPPRESS)
    return p


# ------------------------------------------------------------------------------------------ environment


def resolve_device(choice: str) -> str:
    """``auto`` -> cuda when available; asking for cuda without one is an error."""
    import torch

    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_grpo_gpu: --device cuda but torch sees no CUDA device")
    return choice


def measure_peaks(device: str) -> dict[str, float] | None:
    """Measured bf16 matmul TFLOP/s (8192^3, mean of 10 after 3 warm-ups) and device copy TB/s (read + write)."""
    if device != "cuda":
        return None
    import torch

    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(10):
        a @ b
    torch.cuda.synchronize()
    matmul = 2 * n**3 * 10 / (time.perf_counter() - t) / 1e12
    src = torch.empty(2**30 // 2, device="cuda", dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(10):
        dst.copy_(src)
    torch.cuda.synchronize()
    copy = 2 * src.numel() * src.element_size() * 10 / (time.perf_counter() - t) / 1e12
    del a, b, src, dst
    torch.cuda.empty_cache()
    return {"matmul_tflops": round(matmul, 1), "copy_tbps": round(copy, 3)}


def environment(device: str) -> dict[str, Any]:
    """Versions and the device, for the JSON."""
    import torch
    import transformers
    import trl

    from gpu_shapes import gpu_peak

    env: dict[str, Any] = {
        "python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
        "trl": trl.__version__, "device": device, "cpu": platform.processor() or platform.machine(),
    }
    if device == "cuda":
        name = torch.cuda.get_device_name(0)
        peak = gpu_peak(name)
        env.update(
            gpu=name, cuda=torch.version.cuda,
            gpu_memory_gib=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1),
            datasheet_peak=dataclasses.asdict(peak) if peak else None,
        )
    return env


def warm_rewards() -> None:
    """Call each reward once, so loading GeoNames is not billed to whichever configuration runs first."""
    from geo_r.prompts import render_answer
    from geo_r.rewards import get_reward_funcs

    text = render_answer("France", "Ile-de-France", "Paris", 48.8566, 2.3522)
    completion = [[{"role": "assistant", "content": text}]]
    for fn in get_reward_funcs(REWARDS):
        fn(prompts=[[]], completions=completion, completion_ids=[[0]], lat=[48.85], lon=[2.35],
           country=["France"], country_code=["FR"], region=["Ile-de-France"], city=["Paris"])


def requirement_problem(knobs: Knobs, device: str) -> str | None:
    """Why a configuration cannot run here (a missing package or device), or None."""
    if knobs.liger and importlib.util.find_spec("liger_kernel") is None:
        return "skipped: liger-kernel is not installed (pip install liger-kernel)"
    if knobs.liger and device != "cuda":
        return "skipped: Liger kernels are Triton kernels and need a GPU"
    if knobs.deepspeed and importlib.util.find_spec("deepspeed") is None:
        return "skipped: deepspeed is not installed"
    if knobs.compile_generation and device != "cuda":
        return "skipped: compiled decoding is measured on GPU only"
    return None


# ------------------------------------------------------------------------------------------------ a run


def _grpo_config(knobs: Knobs, args: argparse.Namespace, device: str, output_dir: Path, max_steps: int):
    """The run's GeoGRPOConfig (stock TRL reads only its GRPOConfig fields)."""
    from geo_r.trainer.config import GeoGRPOConfig

    return GeoGRPOConfig(
        output_dir=str(output_dir),
        max_steps=max_steps,
        per_device_train_batch_size=knobs.per_device_batch,
        gradient_accumulation_steps=knobs.grad_accum,
        steps_per_generation=knobs.steps_per_generation,
        num_generations=knobs.num_generations,
        max_completion_length=knobs.completion_len,
        generation_kwargs={"min_new_tokens": knobs.completion_len},
        temperature=knobs.temperature,
        top_k=knobs.top_k,
        beta=knobs.beta,
        learning_rate=knobs.learning_rate,
        gradient_checkpointing=knobs.grad_ckpt,
        cache_implementation=knobs.cache_implementation,
        use_liger_kernel=knobs.liger,
        deepspeed=str(REPO / knobs.deepspeed) if knobs.deepspeed else None,
        bf16=device == "cuda",
        use_cpu=device == "cpu",
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
        data_seed=42,
        dataloader_num_workers=0,
        freeze_vision_modules=knobs.freeze_vision and knobs.trainer == "geo",
        vision_reuse=knobs.vision_reuse,
    )


def _free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_config(
    name: str, knobs: Knobs, model_dir: Path, dataset: Any, args: argparse.Namespace, device: str,
    measured: dict[str, float] | None, steps: int, warmup: int,
) -> dict[str, Any]:
    """Train ``warmup + steps`` optimizer steps of one configuration and summarise the measured ones."""
    import torch

    from gpu_shapes import count_parameters, gpu_peak
    from grpo_bench_report import summarize
    from grpo_bench_timing import count_vision, timed_trainer_class

    result: dict[str, Any] = {
        "name": name, "description": CONFIGS[name][0] if name in CONFIGS else name,
        "knobs": dataclasses.asdict(knobs),
        "prompts_per_step": knobs.prompts_per_step,
    }
    problem = requirement_problem(knobs, device)
    if problem:
        result["skipped"] = problem
        return result
    trainer = model = kwargs = processor = None
    try:
        if knobs.deepspeed and device == "cpu":
            import deepspeed

            deepspeed.init_distributed(dist_backend="gloo")  # as grpo_jsonl does for CPU runs
        from transformers import PrinterCallback
        from trl import GRPOTrainer

        from geo_r.models.loading import freeze_vision_tower, load_model, lora_target_modules_regex
        from geo_r.models.processor import load_processor
        from geo_r.rewards import get_reward_funcs
        from geo_r.trainer.grpo_trainer import GeoGRPOTrainer

        grpo_args = _grpo_config(knobs, args, device, args.work_dir / "runs" / name, warmup + steps)
        processor = load_processor(model_dir, min_pixels=knobs.min_pixels, max_pixels=knobs.max_pixels)
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        extra = {"device_map": {"": 0}} if device == "cuda" and not knobs.deepspeed else {}
        model = load_model(model_dir, dtype=dtype, attn_implementation=args.attn_implementation, **extra)
        peft_config = None
        if knobs.lora_r:
            from peft import LoraConfig

            peft_config = LoraConfig(r=knobs.lora_r, lora_alpha=2 * knobs.lora_r, lora_dropout=0.05,
                                     target_modules=lora_target_modules_regex(), task_type="CAUSAL_LM")
        kwargs = dict(
            model=model, reward_funcs=get_reward_funcs(REWARDS), args=grpo_args, train_dataset=dataset,
            processing_class=processor, peft_config=peft_config,
        )
        if knobs.trainer == "geo":
            cls = timed_trainer_class(GeoGRPOTrainer)
        else:
            cls = timed_trainer_class(GRPOTrainer)
            if knobs.freeze_vision:
                freeze_vision_tower(model)
        trainer = cls(**kwargs)
        trainer.remove_callback(PrinterCallback)  # the JSON keeps TRL's logs; the console keeps the tables
        count_vision(trainer.model, trainer.bench_clock)
        if trainer.ref_model is not None:
            count_vision(trainer.ref_model, trainer.bench_clock)
        if knobs.compile_generation:
            trainer.generation_config.disable_compile = False  # TRL turns compilation off; this is the experiment
            trainer.bench_split_decode = False  # per-forward hooks would break the compiled graph
        counts = count_parameters(trainer.model, dtype_bytes=2 if dtype == torch.bfloat16 else 4)
        result["trainable_parameters"] = sum(
            int(getattr(p, "ds_numel", 0) or p.numel()) for p in trainer.model.parameters() if p.requires_grad
        )
        result["reference_model"] = trainer.ref_model is not None
        result["deepspeed"] = bool(getattr(trainer, "is_deepspeed_enabled", False))
        start = time.perf_counter()
        trainer.train()
        result["wall_s"] = time.perf_counter() - start
        peak = gpu_peak(torch.cuda.get_device_name(0)) if device == "cuda" else None
        result["summary"] = summarize(trainer.bench_clock.steps, warmup, counts, peak, measured,
                                      knobs.samples_per_step, knobs.completion_len)
        result["trl_logs"] = [e for e in trainer.state.log_history if "train_runtime" not in e][warmup:]
        measured_steps = trainer.bench_clock.steps[warmup:] or trainer.bench_clock.steps[-1:]
        result["vision_per_step"] = [
            {"images_asked": int(r.get("vision_images", 0)), "patches_encoded": int(r.get("vision_patches", 0))}
            for r in measured_steps
        ]
        if knobs.compile_generation:
            from torch._dynamo.utils import counters

            result["compiled_graphs"] = int(counters["stats"]["unique_graphs"])  # 0: nothing was compiled
        result["counts"] = dataclasses.asdict(counts)
        result["decode_weight_gb"] = counts.decode_weight_bytes / 1e9
    except Exception as exc:  # one configuration failing (OOM, a missing kernel) must not stop the others
        result["error"] = f"{type(exc).__name__}: {exc}".strip()[:2000]
        result["oom"] = isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()
        result["traceback"] = traceback.format_exc()[-4000:]
    finally:
        # drop every reference to the models before emptying the allocator's cache, or the next
        # configuration's reserved-memory peak would include this one's cached blocks
        trainer = model = kwargs = processor = None
        if knobs.compile_generation:
            torch._dynamo.reset()  # no compiled code carried into the next configuration
        _free_memory()
    return result


# ------------------------------------------------------------------------------------------- main modes


def _write(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _apply_overrides(knobs: Knobs, args: argparse.Namespace) -> Knobs:
    """``--completion_len`` for every configuration; ``--max_pixels`` for those at ours' default pixels."""
    changes: dict[str, Any] = {}
    if args.completion_len is not None:
        changes["completion_len"] = args.completion_len
    if args.max_pixels is not None and knobs.max_pixels == knobs_for("ours", tiny=args.small_workload).max_pixels:
        changes["max_pixels"] = args.max_pixels
    return dataclasses.replace(knobs, **changes) if changes else knobs


def time_configs(args: argparse.Namespace, device: str) -> int:
    """The side-by-side timing mode: every configuration of ``--configs`` in this process."""
    from grpo_bench_report import add_ratios, tables

    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    if not names:
        raise SystemExit("bench_grpo_gpu: --configs is empty")
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise SystemExit(f"bench_grpo_gpu: unknown configuration(s) {', '.join(unknown)}; known: {', '.join(CONFIGS)}")
    size = "tiny" if args.tiny else args.model_size
    image_size = parse_image_size(args.image_size)
    payload: dict[str, Any] = {
        "bench": "bench_grpo_gpu", "command": " ".join(sys.argv), "environment": environment(device),
        "provenance": provenance(),
        "model_size": size, "image_size": list(image_size), "steps": args.steps, "warmup_steps": args.warmup_steps,
        "rewards": REWARDS, "configs": [],
    }
    t0 = time.perf_counter()
    measured = None if args.no_measure_peaks else measure_peaks(device)
    payload["environment"]["measured_peak"] = measured
    model_dir = build_bench_model(size, args.work_dir / "models", device, layers=args.layers)
    payload["model_layers_override"] = args.layers
    payload["model_build_s"] = round(time.perf_counter() - t0, 1)
    total_steps = args.steps + args.warmup_steps
    # A name may repeat (ours,stock_trl,ours): later runs are labelled ours#2 ...; their spread is the noise.
    labels = [n if names[:i].count(n) == 0 else f"{n}#{names[:i].count(n) + 1}" for i, n in enumerate(names)]
    knobs_list = [
        (label, n, _apply_overrides(knobs_for(n, tiny=args.small_workload), args))
        for label, n in zip(labels, names, strict=True)
    ]
    # Liger patches transformers' Qwen2.5-VL module globally (RoPE, RMSNorm classes): whatever ran after it
    # would be measured with its kernels, so Liger configurations always run last.
    ordered = [c for c in knobs_list if not c[2].liger] + [c for c in knobs_list if c[2].liger]
    if ordered != knobs_list:
        print("bench_grpo_gpu: Liger configurations moved to the end (they patch transformers globally)", flush=True)
    knobs_list = ordered
    n_photos = max(k.prompts_per_step for _, _, k in knobs_list) * total_steps
    dataset = synthetic_dataset(args.work_dir / f"photos-{image_size[0]}x{image_size[1]}", n_photos, image_size)
    warm_rewards()
    print(f"bench_grpo_gpu: {size} model in {model_dir}, {device}, {len(names)} configuration(s)", flush=True)
    for label, name, knobs in knobs_list:
        print(f"-- {label}: {CONFIGS[name][0]}", flush=True)
        result = run_config(name, knobs, model_dir, dataset, args, device, measured, args.steps, args.warmup_steps)
        result["name"] = label
        payload["configs"].append(result)
        payload["ratios"] = add_ratios(payload["configs"])
        _write(args.out, payload)
        status = result.get("skipped") or result.get("error") or f"{result['summary']['mean']['step_s']:.2f} s/step"
        print(f"   {status.splitlines()[0]}", flush=True)
    payload["total_s"] = round(time.perf_counter() - t0, 1)
    _write(args.out, payload)
    print()
    print(tables(payload["configs"]))
    if payload.get("ratios"):
        print("\n## Ratios\n")
        for key, value in payload["ratios"].items():
            print(f"- {key}: {value}")
    print(f"\nwrote {args.out}")
    return 0


def probe(args: argparse.Namespace, device: str) -> int:
    """Child process of the memory search: one step at ``--probe_batch``; writes fits / peak to ``--probe_out``."""
    import resource

    import torch

    from grpo_bench_memory import MEMORY_SETTINGS

    size, _, overrides = MEMORY_SETTINGS[args.probe]
    size = "tiny" if args.tiny else size
    base = knobs_for("ours", tiny=args.small_workload)
    knobs = dataclasses.replace(base, **overrides, per_device_batch=args.probe_batch, grad_accum=1,
                                steps_per_generation=None)
    knobs = _apply_overrides(knobs, args)
    knobs.check()
    limit_bytes = args.memory_limit_gib * 2**30 if args.memory_limit_gib else None
    if device == "cuda" and limit_bytes:
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, limit_bytes / total))
    model_dir = build_bench_model(size, args.work_dir / "models", device, layers=args.layers)
    image_size = parse_image_size(args.image_size)
    dataset = synthetic_dataset(args.work_dir / f"photos-{image_size[0]}x{image_size[1]}", knobs.prompts_per_step,
                                image_size)
    res = run_config(args.probe, knobs, model_dir, dataset, args, device, None, steps=1, warmup=0)
    out: dict[str, Any] = {"batch": args.probe_batch, "deepspeed": res.get("deepspeed"),
                           "trainable_parameters": res.get("trainable_parameters")}
    if "summary" in res:
        m = res["summary"]["mean"]
        out["peak_reserved_gib"] = m.get("peak_step_reserved_gib")
        out["peak_allocated_gib"] = m.get("peak_step_allocated_gib")
        out["step_s"] = m.get("step_s")
    out["max_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30
    if "error" in res or "skipped" in res:
        out["fits"] = False
        out["oom"] = bool(res.get("oom"))
        out["error"] = res.get("error") or res.get("skipped")
    elif device == "cpu" and limit_bytes and out["max_rss_gib"] * 2**30 > limit_bytes:
        out["fits"] = False
        out["error"] = f"peak RSS {out['max_rss_gib']:.2f} GiB over the {args.memory_limit_gib} GiB limit"
    else:
        out["fits"] = True
    _write(args.probe_out, out)
    return 0


def memory_search(args: argparse.Namespace, device: str) -> int:
    """Largest per-device batch per memory setting, each probe a child process."""
    from grpo_bench_memory import MEMORY_SETTINGS, largest_fitting, run_probe

    settings = [s.strip() for s in args.memory_search.split(",") if s.strip()]
    unknown = [s for s in settings if s not in MEMORY_SETTINGS]
    if unknown:
        raise SystemExit(f"bench_grpo_gpu: unknown memory setting(s) {', '.join(unknown)}; known: "
                         f"{', '.join(MEMORY_SETTINGS)}")
    common = ["--device", device, "--work_dir", str(args.work_dir), "--image_size", args.image_size,
              "--attn_implementation", args.attn_implementation]
    if args.tiny:
        common.append("--tiny")
    if args.small_workload:
        common.append("--small_workload")
    if args.layers is not None:
        common += ["--layers", str(args.layers)]
    if args.memory_limit_gib:
        common += ["--memory_limit_gib", str(args.memory_limit_gib)]
    if args.completion_len is not None:
        common += ["--completion_len", str(args.completion_len)]
    if args.max_pixels is not None:
        common += ["--max_pixels", str(args.max_pixels)]
    payload: dict[str, Any] = {
        "bench": "bench_grpo_gpu --memory_search", "command": " ".join(sys.argv), "environment": environment(device),
        "provenance": provenance(),
        "memory_limit_gib": args.memory_limit_gib, "image_size": args.image_size, "memory_search": [],
    }
    for setting in settings:
        size, description, _ = MEMORY_SETTINGS[setting]
        build_bench_model("tiny" if args.tiny else size, args.work_dir / "models", device, layers=args.layers)
        gens = knobs_for("ours", tiny=args.small_workload).num_generations
        step = args.batch_resolution or gens
        if step % gens:
            raise SystemExit(f"bench_grpo_gpu: --batch_resolution {step} is not a multiple of num_generations {gens}")
        probes: list[dict[str, Any]] = []

        def fits(batch: int, _setting: str = setting, _probes: list = probes) -> bool:
            r = run_probe(Path(__file__), _setting, batch, common, args.work_dir / "probes", args.probe_timeout_s)
            _probes.append(r)
            print(f"   {_setting} batch {batch}: {'fits' if r.get('fits') else 'does not fit'}"
                  f" {r.get('peak_reserved_gib') or ''} {(r.get('error') or '').splitlines()[0][:100] if r.get('error') else ''}",
                  flush=True)
            return bool(r.get("fits"))

        print(f"-- {setting}: {description}", flush=True)
        best, tried = largest_fitting(fits, step, args.max_batch, step)
        payload["memory_search"].append(
            {"setting": setting, "description": description, "model_size": size, "largest_batch": best,
             "tried": tried, "probes": probes}
        )
        _write(args.out, payload)
    print("\n## Largest per-device batch\n\n| setting | largest batch | peak reserved GiB at it |\n|---|---|---|")
    for row in payload["memory_search"]:
        at = next((p for p in row["probes"] if p["batch"] == row["largest_batch"]), {})
        print(f"| {row['setting']} | {row['largest_batch']} | {at.get('peak_reserved_gib') or '-'} |")
    print(f"\nwrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: timing mode, memory-search mode, or one memory probe (internal)."""
    args = build_parser().parse_args(argv)
    if args.steps < 1 or args.warmup_steps < 0:
        raise SystemExit("bench_grpo_gpu: --steps must be >= 1 and --warmup_steps >= 0")
    if args.tiny and args.layers is not None:
        raise SystemExit("bench_grpo_gpu: --layers applies to the real sizes, not --tiny")
    args.small_workload = args.small_workload or args.tiny
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    device = resolve_device(args.device)
    if args.out is None:
        args.out = DEFAULT_MEMORY_OUT if args.memory_search else DEFAULT_OUT
    if args.probe:
        if args.probe_batch is None or args.probe_out is None:
            raise SystemExit("bench_grpo_gpu: --probe needs --probe_batch and --probe_out")
        return probe(args, device)
    if args.memory_search:
        return memory_search(args, device)
    return time_configs(args, device)


if __name__ == "__main__":
    sys.exit(main())
