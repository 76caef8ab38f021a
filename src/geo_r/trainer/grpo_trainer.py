"""``GeoGRPOTrainer``: TRL's GRPOTrainer plus what a geolocation run needs, and nothing copied from TRL.

Additions, each small:
- geolocation metrics in every log line (parse rate, mean / median km, acc@1/25/200/750/2500 km),
  gathered across processes (:mod:`geo_r.trainer.geo_metrics`);
- every vision special token is blocked during sampling (TRL blocks only the image pad token; a sampled
  ``<|vision_start|>`` or ``<|video_pad|>`` breaks the next forward pass with "image features and image
  tokens do not match");
- ``freeze_vision_modules`` and a guard that LoRA never lands in the vision tower;
- ``--data_seed`` seeds the prompt order, as in transformers' Trainer (TRL uses ``--seed`` only).
"""

from __future__ import annotations

import logging
from typing import Any

from accelerate.utils import gather_object
from trl import GRPOTrainer
from trl.trainer.utils import RepeatSampler

from geo_r.trainer.geo_metrics import GeoMetricsBuffer, completion_errors_km, completion_points
from geo_r.trainer.model_loading import freeze_vision_tower
from geo_r.trainer.processor import vision_special_token_ids

logger = logging.getLogger(__name__)


def _block_tokens_kwargs(token_ids: list[int], use_vllm: bool) -> dict[str, Any]:
    """Generation kwargs that forbid ``token_ids``: HF generate's suppress_tokens, or a vLLM logit bias."""
    if use_vllm:
        return {"logit_bias": {int(t): -100.0 for t in token_ids}}
    return {"suppress_tokens": [int(t) for t in token_ids]}


class GeoGRPOTrainer(GRPOTrainer):
    """GRPO for geolocation: TRL's trainer with geo metrics, vision-token blocking and vision freezing."""

    _tag_names = ["trl", "grpo", "geo-r", "geolocation"]

    def __init__(self, *args: Any, freeze_vision_modules: bool = False, **kwargs: Any) -> None:
        training_args = kwargs.get("args")
        processing_class = kwargs.get("processing_class")
        if training_args is not None and processing_class is not None:
            blocked = vision_special_token_ids(processing_class)
            if blocked:
                user_kwargs = dict(training_args.generation_kwargs or {})
                training_args.generation_kwargs = {**_block_tokens_kwargs(blocked, training_args.use_vllm), **user_kwargs}
        super().__init__(*args, **kwargs)
        self._geo_buffers = {"train": GeoMetricsBuffer(), "eval": GeoMetricsBuffer()}
        if freeze_vision_modules:
            base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
            n = freeze_vision_tower(base)
            logger.info("froze the vision tower: %d parameters", n)
        self._check_no_vision_adapters()

    def _check_no_vision_adapters(self) -> None:
        """LoRA in the vision tower would silently train it; refuse instead."""
        bad = [n for n, _ in self.model.named_parameters() if "lora_" in n and ".visual." in n]
        if bad:
            raise ValueError(
                f"LoRA adapters were placed in the vision tower ({len(bad)} tensors, e.g. {bad[0]}); restrict "
                "--lora_target_modules to the language model (Geo-R's default does)"
            )

    def _get_train_sampler(self, dataset: Any = None) -> RepeatSampler:
        sampler = super()._get_train_sampler(dataset)
        if self.args.data_seed is not None and getattr(sampler, "generator", None) is not None:
            sampler.seed = self.args.data_seed
            sampler.generator.manual_seed(self.args.data_seed)
        return sampler

    def _calculate_rewards(self, inputs: list[dict], prompts: list, completions: list, completion_ids_list: list):
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        if inputs and "lat" in inputs[0] and "lon" in inputs[0]:
            errors = completion_errors_km(completions, [x["lat"] for x in inputs], [x["lon"] for x in inputs])
            mode = "train" if self.model.training else "eval"
            group_size = self.num_generations if mode == "train" else self.num_generations_eval
            points = gather_object(completion_points(completions))
            self._geo_buffers[mode].add(gather_object(errors), points, group_size)
        return rewards

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "train" if self.model.training else "eval"
        geo = self._geo_buffers[mode].summary()
        if mode == "eval":
            geo = {f"eval_{k}": v for k, v in geo.items()}
        logs.update(geo)
        super().log(logs, start_time)
