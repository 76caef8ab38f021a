"""Vision reuse on vs off vs stock TRL: GRPO steps at the 3B width, side by side in one process, plus a FLOP count.

Builds a Qwen2.5-VL with the published 3B widths (decoder 2048 wide, the published vision config: 1280 wide,
16 heads, 14-pixel patches, window attention) and random weights, cut to ``--layers`` decoder layers and
``--vision_layers`` vision layers, and times one GRPO optimizer step per run for three configurations:

* ``ours_reuse``: GeoGRPOTrainer as shipped (vision reuse on);
* ``ours_no_reuse``: GeoGRPOTrainer with ``vision_reuse=False``;
* ``stock_trl``: trl.GRPOTrainer.

Every configuration trains the same thing: vision tower frozen, LoRA on the language model, beta 0.04 (so the
reference pass runs), ``--generations`` completions of each photo, every completion forced to full length. The
runs are repeated ``--reps`` times in a rotating order (drift on a shared machine hits all three alike). The step
time runs from the end of the previous step (the start of training for the first) to the end of the step, so
data loading and collation count. Hooks count the photos the model asked the vision tower for and the patches
the tower really encoded.

The CPU ratio depends on how much of the step is vision work at the depth that was run, so the JSON also holds a
FLOP count at the real depths (36 decoder layers, 32 vision layers) and real photo size: the share of a step's
model FLOPs that is vision work, stock and with reuse (``vision_flop_share``).

    python bench/bench_vision_reuse.py                      # the committed run (CPU, about 15 minutes)
    python bench/bench_vision_reuse.py --reps 1 --image_size 112x112 --vision_layers 1 --out /tmp/v.json  # check
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
for _p in (BENCH, REPO / "src"):
    if _p == BENCH or importlib.util.find_spec("geo_r") is None:
        sys.path.insert(0, str(_p))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from grpo_bench_setup import build_bench_model, parse_image_size, write_synthetic_photos  # noqa: E402
from provenance import provenance  # noqa: E402

CONFIGS = ("ours_reuse", "ours_no_reuse", "stock_trl")
QUESTION = "Where was this photo taken? Answer with the country, region, city and coordinates."
DEFAULT_OUT = REPO / "bench" / "results" / "vision_reuse.json"


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags of the bench."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=2, help="decoder layers (the widths stay the 3B ones)")
    p.add_argument("--vision_layers", type=int, default=4, help="vision tower layers (published widths)")
    p.add_argument("--image_size", default="224x224", help="synthetic photo size WIDTHxHEIGHT")
    p.add_argument("--max_pixels", type=int, default=401_408, help="processor max_pixels (Geo-R's default)")
    p.add_argument("--generations", type=int, default=8, help="completions per photo (TRL num_generations)")
    p.add_argument("--photos", type=int, default=1, help="distinct photos per optimizer step")
    p.add_argument("--completion_len", type=int, default=4, help="tokens per completion (forced to full length)")
    p.add_argument("--reps", type=int, default=3, help="repetitions of the three configurations")
    p.add_argument("--real_image_size", default="1024x768",
                   help="photo size of the FLOP count at real depth (resized to --max_pixels, as in training)")
    p.add_argument("--real_completion_len", type=int, default=512,
                   help="completion length of the FLOP count at real depth (run_grpo_rec.sh: 512)")
    p.add_argument("--shared_machine", default="",
                   help="a note for the JSON when other jobs shared the machine (e.g. '2 cores shared by 6 jobs')")
    p.add_argument("--work_dir", type=Path, default=Path(tempfile.gettempdir()) / "geo_r_bench_vision")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    p.add_argument("--resummarize", action="store_true",
                   help="recompute the summary and the FLOP count of an existing --out from its stored runs "
                   "(no training; the model folder in --work_dir supplies the tokenizer)")
    return p


# --------------------------------------------------------------------------------------------- one run


class _Counters:
    """Hooks on a vision tower: photos asked for, patches encoded, seconds inside the tower."""

    def __init__(self, tower: Any) -> None:
        self.images = 0
        self.patches = 0
        self.seconds = 0.0
        self._start = 0.0
        tower.register_forward_pre_hook(self._before_call, with_kwargs=True)
        tower.register_forward_hook(self._after_call)
        tower.patch_embed.register_forward_pre_hook(self._before_patches)

    def _before_call(self, module: Any, args: tuple, kwargs: dict) -> None:
        grid = kwargs.get("grid_thw", args[1] if len(args) > 1 else None)
        self.images += int(grid.shape[0]) if grid is not None else 0
        self._start = time.perf_counter()

    def _after_call(self, module: Any, args: tuple, output: Any) -> None:
        self.seconds += time.perf_counter() - self._start

    def _before_patches(self, module: Any, args: tuple) -> None:
        self.patches += int(args[0].shape[0])


def run_once(name: str, model_dir: Path, dataset: Any, args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    """Train one optimizer step of configuration ``name``; return its timings and vision counts."""
    import torch
    from peft import LoraConfig
    from transformers import PrinterCallback, TrainerCallback
    from trl import GRPOTrainer

    from geo_r.models.loading import freeze_vision_tower, load_model, lora_target_modules_regex
    from geo_r.models.processor import load_processor
    from geo_r.rewards import get_reward_funcs
    from geo_r.trainer.config import GeoGRPOConfig
    from geo_r.trainer.grpo_trainer import GeoGRPOTrainer
    from geo_r.trainer.vision_cache import find_vision_towers

    batch = args.photos * args.generations
    # stock TRL reads only the GRPOConfig part; ours: tower frozen, reuse on or off
    config = GeoGRPOConfig(
        output_dir=str(out_dir), max_steps=1, per_device_train_batch_size=batch, num_generations=args.generations,
        max_completion_length=args.completion_len, generation_kwargs={"min_new_tokens": args.completion_len},
        beta=0.04, learning_rate=1e-5, use_cpu=True, bf16=False, logging_steps=1, report_to="none",
        save_strategy="no", disable_tqdm=True, seed=0, data_seed=42, dataloader_num_workers=0,
        freeze_vision_modules=True, vision_reuse=name == "ours_reuse",
    )
    processor = load_processor(model_dir, min_pixels=3136, max_pixels=args.max_pixels)
    model = load_model(model_dir, dtype=torch.float32, attn_implementation="sdpa")
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=lora_target_modules_regex(),
                      task_type="CAUSAL_LM")
    kwargs: dict[str, Any] = dict(model=model, reward_funcs=get_reward_funcs(["format", "distance"]), args=config,
                                  train_dataset=dataset, processing_class=processor, peft_config=lora)
    if name == "stock_trl":
        freeze_vision_tower(model)
        trainer = GRPOTrainer(**kwargs)
    else:
        trainer = GeoGRPOTrainer(**kwargs)
    trainer.remove_callback(PrinterCallback)
    (tower,) = find_vision_towers(trainer.model)
    counters = _Counters(tower)
    marks: list[float] = []

    class StepClock(TrainerCallback):
        def on_train_begin(self, *a: Any, **k: Any) -> None:
            marks.append(time.perf_counter())

        def on_step_end(self, *a: Any, **k: Any) -> None:
            marks.append(time.perf_counter())

    trainer.add_callback(StepClock())
    trainer.train()
    step_s = marks[1] - marks[0]
    grid = processor.image_processor(images=[dataset[0]["images"][0]], return_tensors="pt")["image_grid_thw"]
    patches_per_photo = int(grid.prod(-1)[0])
    logs = [e for e in trainer.state.log_history if "loss" in e]
    return {
        "config": name, "step_s": round(step_s, 3), "samples_per_s": round(batch / step_s, 4),
        "vision_images_requested": counters.images,
        "vision_patches_encoded": counters.patches,
        "vision_encodings": round(counters.patches / patches_per_photo, 3),
        "vision_s": round(counters.seconds, 3),
        "patches_per_photo": patches_per_photo,
        "logged_vision_encodings": logs[0].get("vision/encodings") if logs else None,
        "loss": logs[0]["loss"] if logs else None,
        "reward": logs[0]["reward"] if logs else None,
    }


# ------------------------------------------------------------------------------------------ FLOP count


def real_depth_flops(args: argparse.Namespace, prompt_text_tokens: int) -> dict[str, Any]:
    """Model FLOPs of one photo's GRPO step at the real 3B depths, split into vision and language work.

    Per step: generation (prefill + decode, counted as one forward over prompt + completion), the reference
    forward and the policy forward + backward (3 forwards) over ``generations`` rows; the frozen tower runs once
    per row per pass stock (3 passes: generation, reference, policy) and once per photo with reuse.
    """
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from geo_r.models.processor import build_image_processor
    from gpu_shapes import count_parameters, forward_flops, qwen2_5_vl_config

    ids = {k: i for i, k in enumerate(("bos", "eos", "pad", "image", "video", "vision_start", "vision_end"))}
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration._from_config(qwen2_5_vl_config("3b", ids))
    counts = count_parameters(model, dtype_bytes=2)
    from PIL import Image

    width, height = parse_image_size(args.real_image_size)
    image_processor = build_image_processor("qwen2_5_vl", 3136, args.max_pixels)
    grid = image_processor(images=[Image.new("RGB", (width, height))], return_tensors="pt")["image_grid_thw"]
    patches = int(grid.prod(-1)[0])
    image_tokens = patches // 4
    row = prompt_text_tokens + image_tokens + args.real_completion_len
    lm_forward = forward_flops(counts, [row] * args.generations, args.generations * args.real_completion_len, [])
    vision_once = forward_flops(counts, [], 0, [patches])
    lm_step = 5 * lm_forward  # generation 1 + reference 1 + policy forward 1 + backward 2
    stock_vision = 3 * args.generations * vision_once
    reuse_vision = vision_once
    return {
        "model": "Qwen2.5-VL-3B shapes: 36 decoder layers, 32 vision layers",
        "photo": f"{width}x{height} resized to max_pixels {args.max_pixels}: {patches} patches, {image_tokens} tokens",
        "generations": args.generations, "completion_len": args.real_completion_len,
        "prompt_text_tokens": prompt_text_tokens,
        "vision_gflop_per_encoding": round(vision_once / 1e9, 1),
        "language_gflop_per_step": round(lm_step / 1e9, 1),
        "vision_flop_share_stock": round(stock_vision / (lm_step + stock_vision), 4),
        "vision_flop_share_reuse": round(reuse_vision / (lm_step + reuse_vision), 4),
        "step_flops_reuse_over_stock": round((lm_step + reuse_vision) / (lm_step + stock_vision), 4),
    }


# ------------------------------------------------------------------------------------------------- main


def prompt_text_tokens(model_dir: Path) -> int:
    """Tokens of the bench's chat prompt around the photo (the image placeholder counted once)."""
    from geo_r.models.processor import load_processor

    tokenizer = load_processor(model_dir).tokenizer
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}],
        add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    return len(ids)


def main(argv: list[str] | None = None) -> int:
    """Run the side-by-side bench and write the JSON."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.resummarize:
        payload = json.loads(args.out.read_text(encoding="utf-8"))
        payload["summary"] = summarize(payload["runs"])
        model_dir = build_bench_model("3b", args.work_dir / "models", "cpu", layers=args.layers,
                                      vision_layers=args.vision_layers, dtype="float32")
        payload["flops_at_real_depth"] = real_depth_flops(args, prompt_text_tokens(model_dir))
        payload["resummarized"] = provenance()
        _write(args.out, payload)
        print(json.dumps({"summary": payload["summary"], "flops": payload["flops_at_real_depth"]}, indent=2))
        return 0
    import torch

    from geo_r.data import build_grpo_dataset, load_records

    torch.manual_seed(0)
    size = parse_image_size(args.image_size)
    t0 = time.perf_counter()
    model_dir = build_bench_model("3b", args.work_dir / "models", "cpu", layers=args.layers,
                                  vision_layers=args.vision_layers, dtype="float32")
    build_s = time.perf_counter() - t0
    n_photos = args.photos * len(CONFIGS) * args.reps
    jsonl, images = write_synthetic_photos(args.work_dir / f"photos-{size[0]}x{size[1]}", n_photos, size)
    records, _ = load_records(str(jsonl), str(images), derive_chains=False)
    dataset = build_grpo_dataset(records, question=QUESTION, replace_questions=True)

    runs: list[dict[str, Any]] = []
    payload: dict[str, Any] = {
        "bench": "bench_vision_reuse", "provenance": provenance(),
        "shared_machine": args.shared_machine or None,
        "setup": {
            "widths": "Qwen2.5-VL-3B (decoder 2048, vision 1280 / 16 heads / patch 14, window 112)",
            "layers": args.layers, "vision_layers": args.vision_layers, "image_size": list(size),
            "max_pixels": args.max_pixels, "generations": args.generations, "photos_per_step": args.photos,
            "completion_len": args.completion_len, "reps": args.reps, "dtype": "float32",
            "training": "LoRA r8 on the language model, vision tower frozen, beta 0.04 (reference pass), 1 step per run",
            "model_build_s": round(build_s, 1),
        },
        "runs": runs,
    }
    for rep in range(args.reps):
        order = CONFIGS[rep % 3:] + CONFIGS[: rep % 3]
        for name in order:
            # each run sees its own photos: nothing decoded or cached carries over between runs
            start = (rep * len(CONFIGS) + CONFIGS.index(name)) * args.photos
            subset = dataset.select(range(start, start + args.photos))
            result = run_once(name, model_dir, subset, args, args.work_dir / "runs" / name)
            result["rep"] = rep
            runs.append(result)
            print(json.dumps(result), flush=True)
            payload["summary"] = summarize(runs)
            _write(args.out, payload)
    payload["flops_at_real_depth"] = real_depth_flops(args, prompt_text_tokens(model_dir))
    payload["total_s"] = round(time.perf_counter() - t0, 1)
    _write(args.out, payload)
    print(json.dumps({"summary": payload["summary"], "flops": payload["flops_at_real_depth"]}, indent=2))
    return 0


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median samples/s and vision counts per configuration, and the samples/s ratios between them."""
    out: dict[str, Any] = {}
    for name in CONFIGS:
        mine = [r for r in runs if r["config"] == name]
        if mine:
            out[name] = {
                "samples_per_s_median": round(statistics.median(r["samples_per_s"] for r in mine), 4),
                "samples_per_s": [r["samples_per_s"] for r in mine],
                "vision_encodings_per_step": statistics.median(r["vision_encodings"] for r in mine),
                "vision_images_requested_per_step": statistics.median(r["vision_images_requested"] for r in mine),
                "vision_s_median": round(statistics.median(r["vision_s"] for r in mine), 3),
            }
    ratio, paired = {}, {}
    for a, b in (("ours_reuse", "stock_trl"), ("ours_no_reuse", "stock_trl"), ("ours_reuse", "ours_no_reuse")):
        if a in out and b in out:
            ratio[f"{a}/{b}"] = round(out[a]["samples_per_s_median"] / out[b]["samples_per_s_median"], 3)
            # the same repetition's runs ran back to back, so their ratio cancels most of the machine's drift
            per_rep = [
                x["samples_per_s"] / y["samples_per_s"]
                for x in runs if x["config"] == a
                for y in runs if y["config"] == b and y.get("rep") == x.get("rep")
            ]
            if per_rep:
                paired[f"{a}/{b}"] = {"per_rep": [round(v, 3) for v in per_rep],
                                      "median": round(statistics.median(per_rep), 3)}
    out["ratios"] = ratio
    out["paired_ratios"] = paired
    return out


def _write(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


if __name__ == "__main__":
    raise SystemExit(main())
