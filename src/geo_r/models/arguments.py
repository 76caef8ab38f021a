"""Model flags shared by GRPO and SFT: TRL's ``ModelConfig`` (path, dtype, attention, LoRA) plus Geo-R's own."""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import ModelConfig


@dataclass
class GeoModelArguments(ModelConfig):
    """TRL's ``ModelConfig`` (model path, dtype, attention, LoRA flags) plus vision-tower freezing."""

    dtype: str | None = field(
        default=None,
        metadata={
            "help": "dtype the weights are loaded in: bfloat16, float16, float32 or auto (as stored). Default: "
            "bfloat16 with --bf16, float16 with --fp16, else float32.",
            "choices": ["auto", "bfloat16", "float16", "float32"],
        },
    )

    freeze_vision_modules: bool = field(
        default=False,
        metadata={"help": "Freeze the vision tower (model.model.visual, merger included); train the language model only."},
    )
    vision_reuse: bool = field(
        default=True,
        metadata={
            "help": "GRPO: encode each distinct photo once per forward pass (a group's copies share the output, "
            "gradients included) and, while the vision tower is frozen (--freeze_vision_modules, or LoRA), once "
            "per optimizer step (generation, reference and policy passes reuse it); process its pixels once per "
            "step. Exact (same completions, log-probs and loss as off). The log shows vision/encodings per step. "
            "False: the stock per-copy, per-pass encoding."
        },
    )
    vision_cache_max_mb: int = field(
        default=2048,
        metadata={
            "help": "GRPO: bound of the per-step cache of frozen vision-tower outputs, in MiB (per process; photos "
            "past it are encoded again in later passes). Its peak is logged as vision/cache_peak_mb."
        },
    )
