"""``GeoGRPOTrainer``: TRL's GRPOTrainer plus what a geolocation run needs, and nothing copied from TRL.

Additions, each small:
- geolocation metrics in every log line (parse rate, mean / median km, acc@1/25/200/750/2500 km),
  gathered across processes (:mod:`geo_r.trainer.geo_metrics`);
- every vision special token is blocked during sampling (TRL blocks only the image pad token; a sampled
  ``<|vision_start|>`` or ``<|video_pad|>`` breaks the next forward pass with "image features and image
  tokens do not match");
- ``freeze_vision_modules`` and a guard that LoRA never lands in the vision tower;
- ``--data_seed`` seeds the prompt order, as in transformers' Trainer (TRL uses ``--seed`` only);
- each photo is encoded by the vision tower once per pass (the group's copies share it) and, with the tower
  frozen, once per optimizer step; its pixels are processed once per step (:mod:`geo_r.trainer.vision_cache`,
  :mod:`geo_r.trainer.image_memo`; ``vision_reuse=False`` turns both off). The log shows ``vision/encodings``;
- ``group_filter`` (DAPO's dynamic sampling): groups whose rewards all agree are dropped and replaced by groups
  of further prompts (:mod:`geo_r.trainer.group_filter`); off by default, and then nothing changes;
- colocated vLLM on vLLM's CPU build gets its weights by vLLM's in-place reload (:mod:`geo_r.trainer.vllm_colocate`;
  TRL's own sync cannot write into the CPU build's packed layers); on a GPU TRL's sync is used as is.

Every setting is a field of :class:`geo_r.trainer.config.GeoGRPOConfig` and read from ``self.args``; a plain
``GRPOConfig`` works too (each Geo-R setting at its default). What the trainer relies on in TRL is checked when
this module is imported (:mod:`geo_r.trainer.trl_contract`).
"""

from __future__ import annotations

import copy
import functools
import inspect
import logging
from typing import Any

import torch
from accelerate.utils import gather_object
from transformers import TrainerCallback
from trl import GRPOTrainer
from trl.trainer.utils import RepeatSampler, get_config_model_id

from geo_r.models.loading import freeze_vision_tower
from geo_r.models.processor import vision_special_token_ids
from geo_r.trainer import trl_contract
from geo_r.trainer.config import GEO_FIELDS, GeoGRPOConfig, geo_option, group_filter_config
from geo_r.trainer.geo_metrics import GeoMetricsBuffer, completion_errors_km, completion_points
from geo_r.trainer.group_filter import (
    FilterOutcome,
    flat_groups,
    kept_counts,
    local_rows,
    loss_token_count,
    mask_rows_out,
    replacement_indices,
    rollout_seed,
    select_rows,
)
from geo_r.trainer.image_memo import (
    ImageDecodeMemo,
    ImageProcessorMemo,
    memoized_image_processor,
    undecoded_images,
)
from geo_r.trainer.vision_cache import (
    VisionReuseCache,
    find_vision_towers,
    install_vision_reuse,
    same_weights,
    tower_is_frozen,
)
from geo_r.trainer.vllm_colocate import install_cpu_weight_sync

logger = logging.getLogger(__name__)

trl_contract.check_trl_version()
trl_contract.check_hooks(GRPOTrainer)


def _always() -> bool:
    return True


def _block_tokens_kwargs(token_ids: list[int], use_vllm: bool) -> dict[str, Any]:
    """Generation kwargs that forbid ``token_ids``: HF generate's suppress_tokens, or a vLLM logit bias."""
    if use_vllm:
        return {"logit_bias": {int(t): -100.0 for t in token_ids}}
    return {"suppress_tokens": [int(t) for t in token_ids]}


class GeoGRPOTrainer(GRPOTrainer):
    """GRPO for geolocation: TRL's trainer with geo metrics, vision-token blocking, vision freezing and reuse.

    Takes ``GRPOTrainer``'s arguments; Geo-R's settings come from ``args`` (a :class:`GeoGRPOConfig`, or a plain
    ``GRPOConfig`` for the defaults)."""

    _tag_names = ["trl", "grpo", "geo-r", "geolocation"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        moved = sorted(set(kwargs) & {*GEO_FIELDS, "vision_cache_max_bytes"})
        if moved:
            raise TypeError(f"GeoGRPOTrainer: {', '.join(moved)} are GeoGRPOConfig fields now; set them on args "
                            "(geo_r.trainer.config.GeoGRPOConfig)")
        self._reward_capture: list[torch.Tensor] | None = None
        bound = inspect.signature(GRPOTrainer.__init__).bind(None, *args, **kwargs)
        model = bound.arguments["model"]
        training_args = bound.arguments.get("args")
        if training_args is None:  # TRL's default, as a GeoGRPOConfig
            name = model if isinstance(model, str) else get_config_model_id(model.config)
            training_args = GeoGRPOConfig(f"{name.split('/')[-1]}-GRPO")
        group_filter_config(training_args)  # a bad setting on a hand-built config fails before the model loads
        blocked = vision_special_token_ids(_tokenizer_source(bound.arguments.get("processing_class"), model,
                                                             training_args))
        if blocked:
            # a copy: the caller's GRPOConfig is theirs (they may build another trainer from it)
            training_args = copy.copy(training_args)
            user_kwargs = dict(training_args.generation_kwargs or {})
            training_args.generation_kwargs = {**_block_tokens_kwargs(blocked, training_args.use_vllm), **user_kwargs}
        bound.arguments["args"] = training_args
        super().__init__(*bound.args[1:], **bound.kwargs)
        if missing := trl_contract.missing_attributes(self):
            raise trl_contract.UntestedTRLError(f"GRPOTrainer no longer sets {missing}, which GeoGRPOTrainer reads")
        if self.use_vllm:
            install_cpu_weight_sync(self.vllm_generation)
        self._group_filter = group_filter_config(self.args)
        self._geo_buffers = {"train": GeoMetricsBuffer(), "eval": GeoMetricsBuffer()}
        if geo_option(self.args, "freeze_vision_modules"):
            base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
            n = freeze_vision_tower(base)
            logger.info("froze the vision tower: %d parameters", n)
        self._check_no_vision_adapters()
        if self._group_filter.enabled and not (hasattr(self.train_dataset, "__len__")
                                               and hasattr(self.train_dataset, "__getitem__")):
            raise ValueError("--group_filter draws further prompts by index: it needs a map-style training set, "
                             f"not {type(self.train_dataset).__name__}")
        self._vision_cache: VisionReuseCache | None = None
        self._image_memo: ImageProcessorMemo | None = None
        self._decode_memo: ImageDecodeMemo | None = None
        if geo_option(self.args, "vision_reuse"):
            self._setup_vision_reuse(geo_option(self.args, "vision_cache_max_mb") * 2**20,
                                     timing=geo_option(self.args, "vision_timing"))

    def _setup_vision_reuse(self, max_bytes: int, timing: bool = False) -> None:
        """Wrap the policy's (and the reference model's) vision tower and memoize image processing per step."""
        towers = find_vision_towers(self.model)
        if not towers:
            logger.info("vision reuse: no Qwen-VL vision tower found; nothing to reuse")
            return
        self._vision_cache = VisionReuseCache(max_bytes=max_bytes, timing=timing)
        for tower in towers:
            install_vision_reuse(tower, self._vision_cache, group="policy")
        if self.ref_model is not None:
            # the reference model shares cached outputs only when its tower holds the policy's weights
            for tower in find_vision_towers(self.ref_model):
                # shared group: cacheable while the policy's tower is frozen (equal weights all step); else its own
                # group, cacheable always (a reference model is never trained)
                if same_weights(tower, towers[0]):
                    group, frozen = "policy", functools.partial(tower_is_frozen, towers[0])
                else:
                    group, frozen = "reference", _always
                install_vision_reuse(tower, self._vision_cache, group=group, frozen=frozen)
                logger.info("vision reuse: the reference model's tower %s the policy's outputs",
                            "shares" if group == "policy" else "does not share (different weights)")
        if getattr(self.processing_class, "image_processor", None) is not None:
            self._image_memo = ImageProcessorMemo(self.processing_class.image_processor)
        # photos decoded once per batch: datasets would decode every copy of a prompt
        decoders: dict[str, Any] = {}
        self.train_dataset, found = undecoded_images(self.train_dataset)
        decoders.update(found)
        if isinstance(self.eval_dataset, dict):
            for key, dataset in list(self.eval_dataset.items()):
                self.eval_dataset[key], found = undecoded_images(dataset)
                decoders.update(found)
        else:
            self.eval_dataset, found = undecoded_images(self.eval_dataset)
            decoders.update(found)
        self._decode_memo = ImageDecodeMemo(decoders) if decoders else None
        self.add_callback(_VisionStepCallback(self))

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        out, rewards_per_func = self._rollout(inputs)
        if self._group_filter.enabled and self.model.training:
            out = self._refill_flat_groups(out, rewards_per_func)
        return out

    def _rollout(self, inputs: list[dict[str, Any]]) -> tuple[dict[str, Any], torch.Tensor]:
        """TRL's rollout (generate, score, advantages) with each photo decoded and processed once, and the
        (rows x reward functions) rewards TRL gathered from every process for it."""
        if self._decode_memo is not None:
            inputs = self._decode_memo.decode_rows(inputs)
        captured: list[torch.Tensor] = []
        self._reward_capture = captured
        try:
            if self._image_memo is None:
                out = super()._generate_and_score_completions(inputs)
            else:
                with memoized_image_processor(self.processing_class, self._image_memo):
                    out = super()._generate_and_score_completions(inputs)
        finally:
            self._reward_capture = None
            if self._image_memo is not None:
                self._image_memo.forget()  # the rollout's two processor calls are done; keep no pixels past it
        if len(captured) != 1:
            raise trl_contract.UntestedTRLError(
                f"TRL's rollout called _calculate_rewards {len(captured)} times (GeoGRPOTrainer expects once)")
        return out, captured[0]

    def _refill_flat_groups(self, out: dict[str, Any], rewards_per_func: torch.Tensor) -> dict[str, Any]:
        """Drop the rows of groups whose rewards agree; refill from rollouts of further prompts (DAPO).

        Decisions come from the rewards gathered from every process, so all processes make the same number of
        rollouts. When ``max_tries`` rollouts leave a process short, dropped rows fill it, taken out of the loss."""
        cfg, n = self._group_filter, self.num_generations
        nproc, rank = self.accelerator.num_processes, self.accelerator.process_index
        local = out["completion_ids"].size(0)

        def flat_of(rewards: torch.Tensor) -> torch.Tensor:
            return flat_groups(rewards, self.reward_weights, n, self.multi_objective_aggregation, cfg.tolerance)

        flat = flat_of(rewards_per_func)
        outcome = FilterOutcome(groups=len(flat), filtered=int(flat.sum()), rows=local * nproc)
        if outcome.filtered:
            kept, dropped = local_rows(flat, n, rank, local)
            counts = kept_counts(flat, n, nproc, local)
            parts = [(out, kept)]
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            while min(counts) < local and outcome.extra_rollouts < cfg.max_tries:
                outcome.extra_rollouts += 1
                indices = replacement_indices(
                    len(self.train_dataset), local * nproc // n, n,
                    rollout_seed(seed, self.state.global_step, outcome.extra_rollouts), rank, local)
                extra, extra_rewards = self._rollout([self.train_dataset[i] for i in indices])
                flat = flat_of(extra_rewards)
                outcome.extra_completions += local * nproc
                outcome.extra_groups += len(flat)
                outcome.extra_groups_filtered += int(flat.sum())
                parts.append((extra, local_rows(flat, n, rank, local)[0]))
                counts = [c + k for c, k in zip(counts, kept_counts(flat, n, nproc, local), strict=True)]
            selection, need = [], local
            for part, rows in parts:
                take = rows[:need]
                if take:
                    selection.append((part, take))
                    need -= len(take)
            if need:
                selection.append((out, dropped[:need]))
            outcome.filler_rows = sum(max(0, local - c) for c in counts)
            out = select_rows(selection, self._tokenizer.pad_token_id)
            if need:
                mask_rows_out(out, slice(local - need, None))
            out["num_items_in_batch"] = self.accelerator.gather(loss_token_count(out)).sum()
        for key, value in outcome.metrics().items():
            self._metrics["train"][key].append(value)
        return out

    def _log_vision_step(self) -> None:
        """Log this step's vision work (summed over processes), then drop the step's cached outputs."""
        stats = self._vision_cache.end_step()
        memo = self._image_memo.end_step() if self._image_memo is not None else (0, 0)
        decoded = self._decode_memo.end_step() if self._decode_memo is not None else 0
        local = [stats.images, stats.encodings, stats.cache_hits, stats.dummy_calls, stats.seconds,
                 stats.peak_cache_bytes / 2**20, memo[0], decoded]  # every process sends the same list
        totals = self.accelerator.gather(torch.tensor([local], dtype=torch.float64, device=self.accelerator.device))
        images, encodings, hits, dummy, seconds, peak_mb, processed, decoded = totals.sum(0).tolist()
        mode = "train" if self.model.training else "eval"
        metrics = self._metrics[mode]
        metrics["vision/images"].append(images)
        metrics["vision/encodings"].append(encodings)
        metrics["vision/cache_hits"].append(hits)
        if self._vision_cache.timing:
            metrics["vision/seconds"].append(seconds)
        metrics["vision/cache_peak_mb"].append(peak_mb)
        metrics["vision/images_processed"].append(processed)
        if self._decode_memo is not None:
            metrics["vision/images_decoded"].append(decoded)
        if dummy:
            metrics["vision/zero3_dummy_calls"].append(dummy)
        if stats.cache_full:
            logger.warning("vision reuse: the per-step cache bound was reached (%d images not cached)",
                           stats.cache_full)

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
        if self._reward_capture is not None:  # inside _rollout: gathered from every process, the filter's input
            self._reward_capture.append(rewards)
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


def _tokenizer_source(processing_class: Any, model: Any, args: Any) -> Any:
    """What :func:`vision_special_token_ids` reads the vision tokens from: the caller's processing class or, when
    TRL is to load one itself from the model id, that model id's tokenizer (so the block applies either way)."""
    if processing_class is not None:
        return processing_class
    from transformers import AutoTokenizer

    model_id = model if isinstance(model, str) else get_config_model_id(model.config)
    revision = (args.model_init_kwargs or {}).get("revision") if isinstance(model, str) else None
    return AutoTokenizer.from_pretrained(model_id, revision=revision, trust_remote_code=args.trust_remote_code)


class _VisionStepCallback(TrainerCallback):
    """Ends the vision cache's step at each optimizer step (cached outputs never outlive their step)."""

    def __init__(self, trainer: GeoGRPOTrainer) -> None:
        self._trainer = trainer

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._trainer._log_vision_step()

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._trainer._vision_cache.clear()
