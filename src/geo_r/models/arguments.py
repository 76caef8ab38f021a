"""Model flags shared by GRPO and SFT: TRL's ``ModelConfig`` (path, dtype, attention, LoRA) with Geo-R's dtype help.

Trainer settings (vision freezing and reuse, group filtering) are GRPO's :class:`geo_r.trainer.config.GeoGRPOConfig`
fields and SFT's script flags, not model flags."""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import ModelConfig


@dataclass
class GeoModelArguments(ModelConfig):
    """TRL's ``ModelConfig`` (model path, dtype, attention, LoRA flags), ``--dtype`` documented for Geo-R."""

    dtype: str | None = field(
        default=None,
        metadata={
            "help": "dtype the weights are loaded in: bfloat16, float16, float32 or auto (as stored). Default: "
            "bfloat16 with --bf16, float16 with --fp16, else float32.",
            "choices": ["auto", "bfloat16", "float16", "float32"],
        },
    )
