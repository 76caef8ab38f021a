"""LoRA on the language model only: Qwen-VL's vision MLPs share projection names with the LLM's."""

from __future__ import annotations

from peft import LoraConfig

from geo_r.models.arguments import GeoModelArguments
from geo_r.models.loading import lora_target_modules_regex

DEFAULT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def build_lora_config(model_args: GeoModelArguments) -> LoraConfig | None:
    """A ``LoraConfig`` from ``--use_peft --lora_*`` whose targets are restricted to ``model.language_model``.

    ``--lora_target_modules`` names projections (default: all seven attention and MLP projections); they are
    turned into one regex anchored on ``language_model``, so ``visual.blocks.N.mlp.gate_proj`` is never hit.
    ``lm_head`` is refused because TRL computes log-probs from its weight directly.
    """
    if not model_args.use_peft:
        return None
    names = model_args.lora_target_modules or DEFAULT_LORA_TARGETS
    if isinstance(names, str):
        names = [n for n in names.replace(",", " ").split() if n]
    if "all-linear" in names:
        names = DEFAULT_LORA_TARGETS
    if "lm_head" in names:
        raise ValueError("--lora_target_modules lm_head: TRL 1.16 reads lm_head.weight directly; LoRA cannot go there")
    kwargs = {}
    if model_args.lora_target_parameters is not None:
        kwargs["target_parameters"] = model_args.lora_target_parameters
    return LoraConfig(
        task_type=model_args.lora_task_type,
        r=model_args.lora_r,
        lora_alpha=model_args.lora_alpha,
        lora_dropout=model_args.lora_dropout,
        target_modules=lora_target_modules_regex(names),
        bias="none",
        use_rslora=model_args.use_rslora,
        use_dora=model_args.use_dora,
        modules_to_save=model_args.lora_modules_to_save,
        **kwargs,
    )
