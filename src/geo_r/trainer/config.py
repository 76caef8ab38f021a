"""``GeoGRPOConfig``: TRL's ``GRPOConfig`` plus every setting that changes what ``GeoGRPOTrainer`` does.

One dataclass, read by the trainer from ``self.args`` as TRL's trainers read theirs, and parsed by
``grpo_jsonl.py`` / ``geo-r grpo`` (each field's help text is its ``--help`` line). ``GeoGRPOTrainer`` also
accepts a plain ``GRPOConfig`` (TRL's own tests build it that way): :func:`geo_option` then gives each Geo-R
field its default here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from trl import GRPOConfig

from geo_r.trainer.group_filter import GROUP_FILTERS, GroupFilterConfig
from geo_r.trainer.vision_cache import DEFAULT_MAX_BYTES


@dataclass
class GeoGRPOConfig(GRPOConfig):
    """TRL's GRPOConfig plus Geo-R's trainer settings: vision freezing and reuse, vision timing, group filtering."""

    freeze_vision_modules: bool = field(
        default=False,
        metadata={"help": "Freeze the vision tower (model.model.visual, merger included); train the language model only."},
    )
    vision_reuse: bool = field(
        default=True,
        metadata={
            "help": "Encode each distinct photo once per forward pass (a group's copies share the output; autograd "
            "sums their gradients at the tower output) and, while the vision tower is frozen "
            "(--freeze_vision_modules, or LoRA), once per optimizer step (generation, reference and policy passes "
            "reuse it); decode and process each photo once per rollout. Frozen tower or LoRA: bitwise the same "
            "completions, log-probs and loss as off. Trained tower: the same in exact arithmetic; the tower's "
            "gradient is summed in another order, so in bf16 it differs by rounding (docs/training.md). The log "
            "shows vision/encodings per step. False: the stock per-copy, per-pass encoding."
        },
    )
    vision_cache_max_mb: int = field(
        default=DEFAULT_MAX_BYTES // 2**20,
        metadata={
            "help": "Bound of the per-step cache of frozen vision-tower outputs, in MiB (per process; photos past it "
            "are encoded again in later passes). Its peak is logged as vision/cache_peak_mb."
        },
    )
    vision_timing: bool = field(
        default=False,
        metadata={
            "help": "Log vision/seconds, the time spent inside the vision tower per step. On GPUs each tower call "
            "then waits for the device twice (torch.cuda.synchronize before and after), which stalls the "
            "pipeline a little; off by default, and then vision/seconds is not logged."
        },
    )
    group_filter: str = field(
        default="none",
        metadata={
            "help": "Online group filtering (DAPO's dynamic sampling). 'zero_std': a group whose rewards all agree "
            "(within --group_filter_tol) has zero advantage and teaches nothing; it is dropped and groups of further "
            "training prompts are rolled out until every process holds a full batch, or --group_filter_max_tries "
            "extra rollouts were made (rows still missing are filled with dropped rows whose loss is masked). The "
            "log shows group_filter/filtered_frac, extra_completions, extra_rollouts and masked_frac; rewards and "
            "geo metrics in the log cover every rollout. 'none': off, TRL's batch as is.",
            "choices": list(GROUP_FILTERS),
        },
    )
    group_filter_tol: float = field(
        default=1e-4,
        metadata={
            "help": "--group_filter zero_std: a group agrees when its total weighted reward spans at most this "
            "(max - min); with --multi_objective_aggregation normalize_then_sum, when every reward function's does. "
            "1e-4 is the epsilon TRL adds to the std: below it, group scaling turns noise into full advantages."
        },
    )
    group_filter_max_tries: int = field(
        default=3,
        metadata={
            "help": "--group_filter zero_std: at most this many extra rollouts (each the size of the generation "
            "batch) per generation batch. 0 drops flat groups from the loss without replacing them."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        group_filter_config(self)  # a bad --group_filter* value fails here, with its flag named
        if self.vision_cache_max_mb < 0:
            raise ValueError(f"--vision_cache_max_mb must be >= 0, got {self.vision_cache_max_mb}")


GEO_FIELDS: dict[str, Any] = {
    f.name: f.default for f in fields(GeoGRPOConfig) if f.name not in {g.name for g in fields(GRPOConfig)}
}
"""Geo-R's own settings and their defaults (what a plain ``GRPOConfig`` lacks)."""


def geo_option(args: Any, name: str) -> Any:
    """``args.<name>`` for a Geo-R setting, or its :class:`GeoGRPOConfig` default when ``args`` is a plain
    ``GRPOConfig``; a name that is not a Geo-R setting is a programming error (KeyError)."""
    default = GEO_FIELDS[name]
    return getattr(args, name, default)


def group_filter_config(args: Any) -> GroupFilterConfig:
    """The group filter settings of ``args`` (ValueError naming the flag when one is out of range)."""
    return GroupFilterConfig(
        geo_option(args, "group_filter"), geo_option(args, "group_filter_tol"), geo_option(args, "group_filter_max_tries")
    )
