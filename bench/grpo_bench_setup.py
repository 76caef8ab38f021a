"""What the GRPO GPU bench runs: the configurations compared, the random real-size model, the synthetic photos.

A configuration is a :class:`Knobs` value: the trainer class plus every setting that changes the work of
a step. ``CONFIGS`` names the ones the bench knows; each differs from ``ours`` only where its description
says. ``ours`` is ``run_scripts/run_grpo_rec.sh`` on one GPU at the issue's workload (8 prompts x 8
generations per optimizer step = per-device batch 8 x 8 accumulation steps, generated in one call).
``vlmr1`` reproduces VLM-R1's ``run_grpo_rec.sh`` per GPU (per-device batch 8 x 2 accumulation steps,
2048-token completions, max_pixels 12845056, beta 0.04 with a reference model, temperature 1, top-k 50)
inside our trainer.
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpu_shapes import REAL_SHAPES, qwen2_5_vl_config

VLMR1_MAX_PIXELS = 12_845_056
MODEL_INFO_FILE = "geo_r_bench_model.json"
MODEL_SIZES = ("tiny", *REAL_SHAPES)


@dataclass(frozen=True)
class Knobs:
    """Every setting of one bench configuration (counts are per GPU)."""

    trainer: str = "geo"  # "geo": GeoGRPOTrainer; "trl": stock trl.GRPOTrainer
    per_device_batch: int = 8  # completions per micro-step (TRL and VLM-R1 both count completions)
    grad_accum: int = 8  # micro-steps per optimizer step
    num_generations: int = 8
    steps_per_generation: int | None = None  # None: grad_accum, i.e. one generate call per optimizer step
    completion_len: int = 512  # max_completion_length, and min_new_tokens: every completion is full length
    max_pixels: int = 401_408
    min_pixels: int = 3_136
    beta: float = 0.04
    temperature: float = 0.9
    top_k: int = 0
    grad_ckpt: bool = True
    cache_implementation: str | None = None  # e.g. "static"
    compile_generation: bool = False  # let transformers compile the decoding forward (needs a static cache)
    liger: bool = False  # Liger Triton kernels (RMSNorm, SwiGLU, RoPE) through TrainingArguments.use_liger_kernel
    lora_r: int = 0  # > 0: LoRA (alpha 2r, dropout 0.05) on the language model only
    freeze_vision: bool = False
    vision_reuse: bool = True  # GeoGRPOTrainer's vision reuse (geo_r.trainer.vision_cache); stock TRL has none
    deepspeed: str | None = None  # DeepSpeed config file, relative to the repository root
    learning_rate: float = 1e-6

    @property
    def samples_per_step(self) -> int:
        """Completions per optimizer step on this GPU."""
        return self.per_device_batch * self.grad_accum

    @property
    def prompts_per_step(self) -> int:
        """Distinct prompts per optimizer step on this GPU."""
        return self.samples_per_step // self.num_generations

    def check(self) -> None:
        """Raise ValueError for a combination TRL would refuse later, with the reason."""
        if self.trainer not in ("geo", "trl"):
            raise ValueError(f"trainer must be 'geo' or 'trl', not {self.trainer!r}")
        spg = self.steps_per_generation or self.grad_accum
        if (self.per_device_batch * spg) % self.num_generations:
            raise ValueError(
                f"per_device_batch {self.per_device_batch} x steps_per_generation {spg} is not a multiple of "
                f"num_generations {self.num_generations}"
            )
        if self.compile_generation and self.cache_implementation != "static":
            raise ValueError("compile_generation needs cache_implementation='static'")


OURS = Knobs()
CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "ours": ("GeoGRPOTrainer, run_grpo_rec.sh settings: 8 prompts x 8, 512 tokens, 0.4 MP, beta 0.04", {}),
    "stock_trl": ("stock trl.GRPOTrainer, identical settings", {"trainer": "trl"}),
    "vlmr1": (
        "VLM-R1 run_grpo_rec.sh per GPU: batch 8 x GA 2, 2048 tokens, 12.8 MP, beta 0.04, T=1, top-k 50",
        {"grad_accum": 2, "completion_len": 2048, "max_pixels": VLMR1_MAX_PIXELS, "temperature": 1.0, "top_k": 50},
    ),
    "ours_beta0": ("ours without KL term: no reference model, no reference pass", {"beta": 0.0}),
    "ours_no_ckpt": ("ours without gradient checkpointing", {"grad_ckpt": False}),
    "ours_gen_per_microbatch": (
        "ours, one generate call per micro-batch of 8 (as VLM-R1 does) instead of one for all 64",
        {"steps_per_generation": 1},
    ),
    "ours_static_cache": ("ours with a static KV cache in generate", {"cache_implementation": "static"}),
    "ours_compile": (
        "ours with a static KV cache and a compiled decoding forward",
        {"cache_implementation": "static", "compile_generation": True},
    ),
    "ours_liger": ("ours with Liger kernels (RMSNorm, SwiGLU, RoPE)", {"liger": True}),
    "ours_vlmr1_pixels": ("ours at VLM-R1's max_pixels 12845056", {"max_pixels": VLMR1_MAX_PIXELS}),
    "ours_len2048": ("ours at VLM-R1's 2048-token completions", {"completion_len": 2048}),
    "ours_lora": ("ours with LoRA r64 on the language model, vision frozen", {"lora_r": 64, "freeze_vision": True}),
    "ours_no_reuse": ("ours with vision reuse off: every copy of a photo encoded in every pass", {"vision_reuse": False}),
    "ours_frozen_vision": (
        "ours with the vision tower frozen: one encoding per photo per step (reuse across passes)",
        {"freeze_vision": True},
    ),
    "ours_frozen_vision_no_reuse": (
        "ours with the vision tower frozen and vision reuse off", {"freeze_vision": True, "vision_reuse": False},
    ),
    "stock_trl_frozen_vision": ("stock trl.GRPOTrainer with the vision tower frozen", {"trainer": "trl", "freeze_vision": True}),
}
"""name -> (one-line description, overrides of :data:`OURS`)."""


def knobs_for(name: str, tiny: bool = False, **extra: Any) -> Knobs:
    """The knobs of configuration ``name`` (scaled down for the tiny CPU model when ``tiny``), plus ``extra``."""
    if name not in CONFIGS:
        raise ValueError(f"unknown configuration {name!r}; known: {', '.join(CONFIGS)}")
    knobs = dataclasses.replace(OURS, **CONFIGS[name][1])
    if tiny:
        knobs = tiny_scale(knobs)
    if extra:
        knobs = dataclasses.replace(knobs, **extra)
    knobs.check()
    return knobs


def tiny_scale(k: Knobs) -> Knobs:
    """The same configuration at smoke-test scale: 2 generations, batch 2, 1/64 of the tokens, 1/32 of the pixels.

    Ratios between configurations keep their direction (VLM-R1 still generates 4x longer and sees more
    pixels); only the absolute sizes shrink so a CPU runs a step in seconds.
    """
    return dataclasses.replace(
        k,
        num_generations=2,
        per_device_batch=2,
        grad_accum=max(1, k.grad_accum // 4),
        steps_per_generation=None if k.steps_per_generation is None else max(1, k.steps_per_generation // 4),
        completion_len=max(4, k.completion_len // 64),
        max_pixels=max(k.min_pixels, k.max_pixels // 32),
        lora_r=min(k.lora_r, 8),
    )


# --------------------------------------------------------------------------------------------- the model


def _read_info(folder: Path) -> dict[str, Any] | None:
    path = folder / MODEL_INFO_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None


def build_bench_model(
    size: str, root: Path, device: str, seed: int = 0, layers: int | None = None, vision_layers: int | None = None,
    dtype: str = "bfloat16",
) -> Path:
    """A saved Qwen2.5-VL checkpoint with random weights: ``tiny`` (CPU tests) or the real ``3b`` / ``7b`` shapes.

    Real sizes take the tokenizer, chat template and processor of Geo-R's offline ``small`` build (4096
    tokens; the embedding keeps the real vocabulary size, so ids never overflow) and are initialised
    directly on ``device`` in bf16, then saved (TRL rebuilds the reference model from the folder). A
    folder already built with the same size, seed and ``layers`` (see :func:`gpu_shapes.qwen2_5_vl_config`)
    is reused. ``vision_layers`` sets the vision tower's depth on its own (after ``layers``; the last layer keeps
    full attention); ``dtype`` is the weights' dtype (``float32`` for CPU runs).
    """
    if size not in MODEL_SIZES:
        raise ValueError(f"unknown model size {size!r}; choose one of {', '.join(MODEL_SIZES)}")
    import torch

    from geo_r.demo.tiny_model import build_tiny_model

    root.mkdir(parents=True, exist_ok=True)
    if size == "tiny" and layers is not None:
        raise ValueError("layers applies to the real sizes only")
    folder = root / (f"qwen2_5_vl-{size}-seed{seed}" + ("" if layers is None else f"-{layers}layers")
                     + ("" if vision_layers is None else f"-vision{vision_layers}")
                     + ("" if dtype == "bfloat16" else f"-{dtype}"))
    info = _read_info(folder)
    wanted = (size, seed, layers, vision_layers, dtype)
    if info is not None and (info.get("size"), info.get("seed"), info.get("layers"), info.get("vision_layers"),
                             info.get("dtype", "bfloat16")) == wanted:
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    if size == "tiny":
        build_tiny_model(folder, family="qwen2_5_vl", size="tiny", seed=seed)
        built = json.loads((folder / "geo_r_tiny_model.json").read_text(encoding="utf-8"))
        parameters = int(built["parameters"])
    else:
        from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

        from geo_r.models.processor import load_processor

        tok_dir = build_tiny_model(root / "tokenizer-small", family="qwen2_5_vl", size="small", seed=seed)
        tok = load_processor(tok_dir).tokenizer
        ids = {
            "bos": tok.convert_tokens_to_ids("<|endoftext|>"),
            "eos": tok.convert_tokens_to_ids("<|im_end|>"),
            "pad": tok.convert_tokens_to_ids("<|endoftext|>"),
            "image": tok.convert_tokens_to_ids("<|image_pad|>"),
            "video": tok.convert_tokens_to_ids("<|video_pad|>"),
            "vision_start": tok.convert_tokens_to_ids("<|vision_start|>"),
            "vision_end": tok.convert_tokens_to_ids("<|vision_end|>"),
        }
        config = qwen2_5_vl_config(size, ids, layers=layers)
        if vision_layers is not None:
            full = [i for i in config.vision_config.fullatt_block_indexes if i < vision_layers]
            config.vision_config.depth = vision_layers
            config.vision_config.fullatt_block_indexes = full or [vision_layers - 1]
        torch.manual_seed(seed)
        with torch.device(device):
            model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=getattr(torch, dtype))
        model.generation_config = GenerationConfig(
            bos_token_id=ids["pad"], eos_token_id=[ids["eos"], ids["pad"]], pad_token_id=ids["pad"], do_sample=True
        )
        parameters = sum(p.numel() for p in model.parameters())
        folder.mkdir(parents=True)
        model.save_pretrained(folder, max_shard_size="5GB")
        del model
        skip = {"config.json", "generation_config.json", "model.safetensors", "geo_r_tiny_model.json"}
        for path in tok_dir.iterdir():
            if path.is_file() and path.name not in skip:
                shutil.copy2(path, folder / path.name)
    info = {"size": size, "seed": seed, "layers": layers, "vision_layers": vision_layers, "dtype": dtype,
            "parameters": parameters, "family": "qwen2_5_vl"}
    (folder / MODEL_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return folder


# ------------------------------------------------------------------------------------------- the photos


def parse_image_size(text: str) -> tuple[int, int]:
    """``"1024x768"`` -> (1024, 768); a clear ValueError otherwise."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"image size {text!r}: expected WIDTHxHEIGHT, e.g. 1024x768")
    return int(parts[0]), int(parts[1])


def write_synthetic_photos(out_dir: Path, n: int, size: tuple[int, int], seed: int = 0) -> tuple[Path, Path]:
    """``n`` synthetic JPEG photos of real cities at ``size`` plus a Geo-R jsonl; returns (jsonl, image folder).

    The pictures come from :func:`geo_r.demo.toy_data.draw_place` (flat colours, so JPEG decoding is
    cheaper than for real photos of the same size).
    """
    from geo_r.demo.toy_data import PLACES, draw_place

    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    jsonl = out_dir / "train.jsonl"
    with jsonl.open("w", encoding="utf-8") as f:
        for i in range(n):
            place = PLACES[i % len(PLACES)]
            name = f"{i:05d}.jpg"
            draw_place(place, size, rng).save(images / name, quality=90)
            rec = {
                "id": f"bench_{i:05d}", "image": name, "lat": place.lat, "lon": place.lon,
                "country": place.country, "country_code": place.country_code,
                "region": place.region, "city": place.city,
            }
            f.write(json.dumps(rec) + "\n")
    return jsonl, images


def synthetic_dataset(out_dir: Path, n: int, size: tuple[int, int]) -> Any:
    """The GRPO dataset of :func:`write_synthetic_photos`, through Geo-R's own loader and builder."""
    from geo_r.data import build_grpo_dataset, load_records

    jsonl, images = write_synthetic_photos(out_dir, n, size)
    records, _ = load_records(str(jsonl), str(images), derive_chains=False)
    return build_grpo_dataset(records)
