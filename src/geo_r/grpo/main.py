"""The GRPO run behind ``grpo_jsonl.py`` and ``geo-r grpo``: flags -> data -> model -> GeoGRPOTrainer.train().

Flags are TRL's GRPOConfig and ModelConfig plus Geo-R's own (``--help`` lists them all). The data is validated
before any model is loaded. VLM-R1 flags without a meaning here are accepted and explained in the log
(:mod:`geo_r.grpo.compat`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

logger = logging.getLogger("geo_r.grpo")
DESCRIPTION = (
    "GRPO training of a Qwen-VL model to geolocate photos (Geo-R): flags of TRL's GRPOConfig and ModelConfig "
    "plus Geo-R's own"
)


def _prepare_argv(argv: list[str]) -> list[str]:
    """CPU runs: force ``--use_cpu`` and give DeepSpeed a gloo process group before GRPOConfig is built."""
    import torch

    from geo_r.runtime.distributed import ddp_timeout_from_argv, init_deepspeed_on_cpu, uses_deepspeed

    if torch.cuda.is_available():
        return argv
    if not any(a == "--use_cpu" or a.startswith("--use_cpu=") or a.startswith("--use-cpu") for a in argv):
        argv = [*argv, "--use_cpu", "true"]
    if uses_deepspeed(argv):
        init_deepspeed_on_cpu(ddp_timeout_from_argv(argv))
    return argv


def _complete_bare_flags(argv: list[str], dataclass_types: Sequence[type]) -> list[str]:
    """Give bare ``bool | None`` flags such as VLM-R1's ``--bf16`` the value ``true``.

    HfArgumentParser lets plain ``bool`` flags stand alone but demands a value for ``bool | None`` fields
    (TRL's ``bf16``), so ``--bf16 --attn_implementation ...`` would fail to parse.
    """
    import dataclasses
    import typing

    optional_bools: set[str] = set()
    for dc in dataclass_types:
        hints = typing.get_type_hints(dc)
        for f in dataclasses.fields(dc):
            if hints.get(f.name) == (bool | None) and f.default is None:
                optional_bools |= {f"--{f.name}", f"--{f.name.replace('_', '-')}"}
    out: list[str] = []
    for i, arg in enumerate(argv):
        out.append(arg)
        if arg in optional_bools and (i + 1 == len(argv) or argv[i + 1].startswith("--")):
            out.append("true")
    return out


def parse_args(argv: Sequence[str] | None = None) -> tuple:
    """Parse flags (and an optional ``--config recipe.yaml``) into Geo-R's, TRL's and compatibility dataclasses:
    ``(script, rewards, model, compat, GeoGRPOConfig)``."""
    from trl import TrlParser

    from geo_r.grpo.arguments import GeoModelArguments, GeoScriptArguments, VLMR1CompatArguments
    from geo_r.rewards import RewardArguments
    from geo_r.trainer.config import GeoGRPOConfig

    types = (GeoScriptArguments, RewardArguments, GeoModelArguments, VLMR1CompatArguments, GeoGRPOConfig)
    args = _complete_bare_flags(_prepare_argv(list(sys.argv[1:] if argv is None else argv)), types)
    parser = TrlParser(types, description=DESCRIPTION)
    return parser.parse_args_and_config(args)


def _setup_logging(training_args) -> None:
    level = logging.INFO if training_args.process_index == 0 else logging.WARNING
    logging.basicConfig(format="[geo-r %(levelname)s] %(message)s", level=level, force=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Validate the data, load model and processor, and run GRPO until the configured number of steps."""
    try:
        script, reward_args, model_args, compat, training = parse_args(argv)
    except ValueError as exc:  # a value out of range (GeoGRPOConfig / GRPOConfig checks): said, no traceback
        raise SystemExit(f"grpo_jsonl.py: {exc}") from None
    _setup_logging(training)
    from geo_r.runtime.heartbeat import exit_if_a_rank_went_silent, start_heartbeat

    heartbeat = start_heartbeat(training.ddp_timeout, what="GRPO training")

    from geo_r.data import build_grpo_dataset, load_records, split_dataset
    from geo_r.data.candidates import attach_from_args, check_candidate_options, check_candidate_reward
    from geo_r.data.mixture import is_mixture_config, load_mixture
    from geo_r.data.skip_images import skip_unreadable_images
    from geo_r.grpo.compat import reconcile
    from geo_r.models.loading import load_model, resolve_attn_implementation, resolve_dtype
    from geo_r.models.lora import build_lora_config
    from geo_r.models.processor import load_processor
    from geo_r.rewards import get_reward_funcs
    from geo_r.runtime.checkpoints import CompleteCheckpointCallback, resolve_resume, save_settings_note
    from geo_r.runtime.distributed import shutdown_process_group
    from geo_r.runtime.preemption import StopRequestCallback
    from geo_r.trainer.grpo_trainer import GeoGRPOTrainer
    from geo_r.trainer.vllm_colocate import close_colocated_engine

    try:
        check_candidate_options(script.num_candidates, script.candidate_radius_km)
    except ValueError as exc:
        raise SystemExit(f"grpo_jsonl.py: {exc}") from None
    for note in reconcile(script, model_args, compat, training):
        logger.warning(note)
    if training.beta == 0.0:
        logger.info("beta 0.0 (TRL 1.16's default; VLM-R1 and Geo-R used 0.04): no reference model, no KL term")
    mixture = script.dataset_name if is_mixture_config(script.dataset_name) else None
    if not script.data_file_paths and mixture is None:
        raise SystemExit(
            "grpo_jsonl.py: --data_file_paths (a.jsonl:b.jsonl) or --dataset_name (a data_config/*.yaml mixture) "
            "is required"
        )
    if not model_args.model_name_or_path:
        raise SystemExit("grpo_jsonl.py: --model_name_or_path is required")
    try:
        resume, resume_note = resolve_resume(training.resume_from_checkpoint, training.output_dir)
    except ValueError as exc:
        raise SystemExit(f"grpo_jsonl.py: {exc}") from None
    if resume_note:
        logger.warning(resume_note)
    if (note := save_settings_note(training)) is not None:
        logger.warning(note)

    # Rewards first: a typo in --reward_funcs must fail before minutes of data checking.
    reward_funcs = get_reward_funcs(script.reward_funcs, reward_args)
    if training.reward_weights is not None and len(training.reward_weights) != len(reward_funcs):
        raise SystemExit(
            f"--reward_weights has {len(training.reward_weights)} values for {len(reward_funcs)} --reward_funcs "
            f"({' '.join(script.reward_funcs)})"
        )
    logger.info("rewards: %s", ", ".join(
        f.__name__ + (f" (--paper_format {f.format_check})" if hasattr(f, "format_check") else "")
        for f in reward_funcs))

    # Image checks hit the file system once per image: with many ranks, only each node's first process does
    # them (a failure there stops the whole torchrun job). --skip_invalid must drop the same records on every
    # rank, so then every rank checks. A mixture's random draws are seeded alike on every rank.
    seed = training.data_seed if training.data_seed is not None else training.seed
    check_images = script.check_images and (script.skip_invalid or training.local_process_index == 0)
    if mixture is not None:
        records, _report = load_mixture(
            mixture,
            image_root=script.image_root,
            seed=seed,
            skip_invalid=script.skip_invalid,
            check_images=check_images,
            derive_chains=script.derive_chains,
        )
    else:
        records, _report = load_records(
            data_file_paths=script.data_file_paths,
            image_folders=script.image_folders or script.image_root or "",
            skip_invalid=script.skip_invalid,
            check_images=check_images,
            derive_chains=script.derive_chains,
        )
    # Retrieval candidates (--candidates): into each prompt, and the 'candidates' column the rewards read.
    attach_from_args(records, script)
    check_candidate_reward(records, [f.__name__ for f in reward_funcs], "grpo_jsonl.py")
    for rec in records[: script.log_ground_truth]:
        logger.info(
            "ground truth %s: lat=%s lon=%s country=%s region=%s city=%s",
            rec.id, rec.lat, rec.lon, rec.country, rec.region, rec.city,
        )
    dataset = build_grpo_dataset(records, question=script.question, replace_questions=script.replace_questions)
    train_ds, val_ds = split_dataset(dataset, script.val_split_ratio, seed)
    # Images decode when a row is read; a row whose image fails then is skipped with a counted warning.
    train_ds = skip_unreadable_images(train_ds)
    val_ds = skip_unreadable_images(val_ds) if val_ds is not None else None
    if val_ds is not None and training.eval_strategy == "no":
        logger.warning(
            "--val_split_ratio %s holds out %d records that are never evaluated: add --eval_strategy steps",
            script.val_split_ratio, len(val_ds),
        )

    processor = load_processor(
        model_args.model_name_or_path, min_pixels=script.min_pixels, max_pixels=script.max_pixels
    )
    model = load_model(
        model_args.model_name_or_path,
        dtype=resolve_dtype(model_args.dtype, bf16=bool(training.bf16), fp16=bool(training.fp16)),
        attn_implementation=resolve_attn_implementation(model_args.attn_implementation),
    )
    trainer = GeoGRPOTrainer(
        model=model,
        reward_funcs=reward_funcs,
        args=training,
        train_dataset=train_ds,
        eval_dataset=val_ds if training.eval_strategy != "no" else None,
        processing_class=processor,
        peft_config=build_lora_config(model_args),
    )
    trainer.add_callback(CompleteCheckpointCallback())
    stop = StopRequestCallback(training.output_dir)
    trainer.add_callback(stop)
    try:
        trainer.train(resume_from_checkpoint=resume)
        if stop.stopped_at is None:
            trainer.save_model(training.output_dir)
    except RuntimeError:
        exit_if_a_rank_went_silent(heartbeat)  # a silent rank: named, and this process ends (exit 75)
        raise
    if stop.stopped_at is None:
        trainer.save_state()
        logger.info("saved the trained model and trainer_state.json to %s", training.output_dir)
    else:
        stop.acknowledge(training.process_index == 0)
    if heartbeat is not None:
        heartbeat.stop()
    close_colocated_engine(trainer)  # before the process group: the engine closes the groups it joined
    shutdown_process_group()


def cli_main(argv: Sequence[str] | None = None) -> int:
    """``geo-r grpo`` and ``grpo_jsonl.py``: run :func:`main`, then end DeepSpeed-on-CPU runs cleanly."""
    from geo_r.runtime.distributed import exit_if_deepspeed_on_cpu

    args = list(sys.argv[1:] if argv is None else argv)
    main(args)
    exit_if_deepspeed_on_cpu(args)
    return 0
