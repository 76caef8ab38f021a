"""Built-in SFT warm-up (``geo-r sft``): TRL's SFTTrainer on the GRPO jsonl, loss on the assistant turn only.

Run it on one process or many, with the same DeepSpeed configs as GRPO::

    geo-r sft --model_name_or_path Qwen/Qwen2.5-VL-7B-Instruct --data_file_paths a.jsonl --image_folders imgs/ \\
        --output_dir checkpoints/sft --bf16 --num_train_epochs 1 --learning_rate 1e-5
    torchrun --nproc_per_node 8 -m geo_r.sft.train ... --deepspeed local_scripts/zero3.json

It shares the GRPO pipeline's parts: records are loaded and validated by :func:`geo_r.data.load_records`
before any model loads; the prompt is the GRPO prompt; the processor has the same pixel limits
(:func:`geo_r.models.processor.load_processor`); LoRA goes on the language model only
(:func:`geo_r.models.lora.build_lora_config`). The output folder holds a full model and its processor, which
``grpo_jsonl.py --model_name_or_path`` loads (with ``--use_peft``, the adapter is merged; it is also kept in
``<output_dir>/adapter``). Flags: TRL's SFTConfig and ModelConfig plus :class:`geo_r.sft.arguments.SFTScriptArguments`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from geo_r.models.arguments import GeoModelArguments
from geo_r.runtime.distributed import (
    DEFAULT_TIMEOUT_S,
    exit_if_deepspeed_on_cpu,
    init_deepspeed_on_cpu,
    shutdown_process_group,
)
from geo_r.sft.arguments import SFTScriptArguments, parse_namespace
from geo_r.sft.arguments import add_arguments as _add_sft_arguments
from geo_r.sft.examples import SFTBuildReport, SFTExample

logger = logging.getLogger("geo_r.sft")

ADAPTER_SUBDIR = "adapter"


class SFTSetupError(ValueError):
    """A flag or data problem found before training starts; ``geo-r sft`` prints it without a traceback."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``geo-r sft``: TRL's SFTConfig and ModelConfig plus Geo-R's data flags (see --help)."""
    _add_sft_arguments(parser)


def prepare_platform(args: argparse.Namespace) -> None:
    """CPU runs: turn on ``use_cpu`` and give DeepSpeed a gloo process group before SFTConfig is built (as
    ``grpo_jsonl.py`` does)."""
    import torch

    if torch.cuda.is_available():
        return
    if not hasattr(args, "use_cpu"):
        args.use_cpu = True
    if getattr(args, "deepspeed", None):
        init_deepspeed_on_cpu(int(getattr(args, "ddp_timeout", None) or DEFAULT_TIMEOUT_S))


def check_lengths(
    examples: Sequence[SFTExample], processor: Any, max_length: int | None, max_pixels: int
) -> tuple[int, int]:
    """Refuse a ``max_length`` that would cut image tokens (a crash in the first forward pass); warn when it
    would cut answers. Measured on the example with the longest texts, with every image at ``max_pixels``;
    returns that example's ``(prompt_tokens, prompt_and_answer_tokens)`` upper bounds ((0, 0) when unchecked)."""
    if max_length is None or not examples:
        return 0, 0
    from geo_r.sft.data import completion_messages, prompt_messages

    longest = max(examples, key=lambda e: len(e.question) + len(e.answer) + len(e.system or "") + 1000 * len(e.images))
    ip = processor.image_processor
    factor = int(ip.patch_size) * int(ip.merge_size)  # one image token per factor x factor pixels
    per_image = max_pixels // (factor * factor)
    tok = processor.tokenizer
    prompt_text = processor.apply_chat_template(prompt_messages(longest), tokenize=False, add_generation_prompt=True)
    full_text = processor.apply_chat_template(
        prompt_messages(longest) + completion_messages(longest), tokenize=False
    )
    # Each image renders as one <|image_pad|> here; the processor expands it to up to `per_image` tokens.
    extra = len(longest.images) * (per_image - 1)
    prompt_len = len(tok(prompt_text, add_special_tokens=False)["input_ids"]) + extra
    full_len = len(tok(full_text, add_special_tokens=False)["input_ids"]) + extra
    if prompt_len >= max_length:
        raise SFTSetupError(
            f"--max_length {max_length} is too short: the longest prompt ({longest.source or longest.id}) takes up to "
            f"{prompt_len} tokens with {len(longest.images)} image(s) of up to {per_image} tokens at --max_pixels "
            f"{max_pixels}; truncating image tokens breaks training. Raise --max_length (>= {full_len}) or lower "
            "--max_pixels."
        )
    if full_len > max_length:
        logger.warning(
            "--max_length %d may cut the longest answer (%s needs up to %d tokens): the model would not learn to "
            "finish it. Consider --max_length %d.",
            max_length, longest.source or longest.id, full_len, full_len,
        )
    return prompt_len, full_len


def build_sft_trainer(
    script: SFTScriptArguments, model_args: GeoModelArguments, training: Any
) -> tuple[Any, SFTBuildReport]:
    """Validate the data, build the examples, load processor and model, and return ``(SFTTrainer, report)``."""
    from trl import SFTTrainer

    from geo_r.data import load_records, split_dataset
    from geo_r.data.candidates import attach_from_args, check_candidate_options
    from geo_r.data.skip_images import skip_unreadable_images
    from geo_r.models.loading import (
        freeze_vision_tower,
        load_model,
        resolve_attn_implementation,
        resolve_dtype,
    )
    from geo_r.models.lora import build_lora_config
    from geo_r.models.processor import load_processor
    from geo_r.sft.data import build_sft_dataset
    from geo_r.sft.examples import build_sft_examples

    if not script.data_file_paths:
        raise SFTSetupError("--data_file_paths is required (a.jsonl:b.jsonl)")
    if not model_args.model_name_or_path:
        raise SFTSetupError("--model_name_or_path is required")
    try:
        check_candidate_options(script.num_candidates, script.candidate_radius_km)
    except ValueError as exc:
        raise SFTSetupError(str(exc)) from None
    if getattr(training, "assistant_only_loss", False):
        logger.warning(
            "--assistant_only_loss: the SFT rows are prompt-completion, so the loss already falls on the assistant "
            "turn only (completion_only_loss); using that instead (TRL's assistant_only_loss needs transformers>=5.18)"
        )
        training.assistant_only_loss = False
    if training.completion_only_loss is False:
        logger.warning("--completion_only_loss false: the loss also covers the prompt (question and image tokens)")
    else:
        training.completion_only_loss = True

    records, _ = load_records(
        script.data_file_paths,
        script.image_folders,
        skip_invalid=script.skip_invalid,
        check_images=script.check_images and (script.skip_invalid or training.local_process_index == 0),
        derive_chains=script.derive_chains,
    )
    attach_from_args(records, script)  # --candidates: retrieval candidates in the prompt and the targets
    examples, report = build_sft_examples(
        records, script.question, script.target, replace_questions=script.replace_questions
    )
    logger.info("%s", report.summary())
    if not examples:
        raise SFTSetupError(f"no SFT examples: {report.summary()}")
    dataset = build_sft_dataset(examples)
    seed = training.data_seed if training.data_seed is not None else training.seed
    train_ds, val_ds = split_dataset(dataset, script.val_split_ratio, seed)
    # Images decode when a row is read; a row whose image fails then is skipped with a counted warning.
    train_ds = skip_unreadable_images(train_ds)
    val_ds = skip_unreadable_images(val_ds) if val_ds is not None else None

    processor = load_processor(model_args.model_name_or_path, min_pixels=script.min_pixels, max_pixels=script.max_pixels)
    check_lengths(examples, processor, training.max_length, script.max_pixels)
    model = load_model(
        model_args.model_name_or_path,
        dtype=resolve_dtype(model_args.dtype, bf16=bool(training.bf16), fp16=bool(training.fp16)),
        attn_implementation=resolve_attn_implementation(model_args.attn_implementation),
    )
    if script.freeze_vision_modules:
        logger.info("froze the vision tower: %d parameters", freeze_vision_tower(model))
    trainer = SFTTrainer(
        model=model,
        args=training,
        train_dataset=train_ds,
        eval_dataset=val_ds if val_ds is not None and training.eval_strategy != "no" else None,
        processing_class=processor,
        peft_config=build_lora_config(model_args),
    )
    bad = [n for n, _ in trainer.model.named_parameters() if "lora_" in n and ".visual." in n]
    if bad:
        raise SFTSetupError(f"LoRA adapters landed in the vision tower ({bad[0]}); restrict --lora_target_modules")
    return trainer, report


def save_for_grpo(trainer: Any, script: SFTScriptArguments, model_args: GeoModelArguments, output_dir: str) -> Path:
    """Save what ``grpo_jsonl.py`` loads: the full model + processor in ``output_dir`` (LoRA: adapter in
    ``output_dir/adapter``, merged into a fresh copy of the base model on the main process)."""
    from geo_r.models.processor import write_pixel_limits

    out = Path(output_dir)
    peft = hasattr(trainer.model, "peft_config")
    if not peft or not script.merge_lora:
        trainer.save_model(str(out))
        if trainer.accelerator.is_main_process and not peft:
            write_pixel_limits(out, script.min_pixels, script.max_pixels)
        if peft:
            logger.warning("--merge_lora false: %s holds only the LoRA adapter; merge it before GRPO", out)
        return out
    adapter_dir = out / ADAPTER_SUBDIR
    trainer.save_model(str(adapter_dir))
    trainer.accelerator.wait_for_everyone()
    if trainer.accelerator.is_main_process:
        from peft import PeftModel

        from geo_r.models.loading import load_model, resolve_dtype

        base = load_model(
            model_args.model_name_or_path,
            dtype=resolve_dtype(model_args.dtype, bf16=bool(trainer.args.bf16), fp16=bool(trainer.args.fp16)),
        )
        merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
        merged.save_pretrained(str(out))
        trainer.processing_class.save_pretrained(str(out))
        write_pixel_limits(out, script.min_pixels, script.max_pixels)
        logger.info("merged the LoRA adapter (%s) into %s", adapter_dir, out)
    trainer.accelerator.wait_for_everyone()
    return out


def train_sft(script: SFTScriptArguments, model_args: GeoModelArguments, training: Any) -> Path:
    """Build the trainer, train (resuming when asked), save the GRPO-ready folder and the trainer state."""
    from geo_r.runtime.checkpoints import CompleteCheckpointCallback, resolve_resume, save_settings_note
    from geo_r.runtime.heartbeat import exit_if_a_rank_went_silent, start_heartbeat
    from geo_r.runtime.preemption import StopRequestCallback

    heartbeat = start_heartbeat(training.ddp_timeout, what="SFT training")
    try:
        resume, note = resolve_resume(training.resume_from_checkpoint, training.output_dir)
    except ValueError as exc:
        raise SFTSetupError(str(exc)) from None
    if note:
        logger.warning(note)
    if (save_note := save_settings_note(training)) is not None:
        logger.warning(save_note)
    trainer, _report = build_sft_trainer(script, model_args, training)
    trainer.add_callback(CompleteCheckpointCallback())
    stop = StopRequestCallback(training.output_dir)
    trainer.add_callback(stop)
    try:
        trainer.train(resume_from_checkpoint=resume)
    except RuntimeError:
        exit_if_a_rank_went_silent(heartbeat)  # a silent rank: named, and this process ends (exit 75)
        raise
    out = Path(training.output_dir)
    if stop.stopped_at is None:
        out = save_for_grpo(trainer, script, model_args, training.output_dir)
        trainer.save_state()
        logger.info("saved the SFT model to %s: pass it to grpo_jsonl.py --model_name_or_path", out)
    else:
        stop.acknowledge(training.process_index == 0)
    if heartbeat is not None:
        heartbeat.stop()
    shutdown_process_group()
    return out


def run(args: argparse.Namespace) -> int:
    """``geo-r sft``: parse, train, save; 1 with a message on bad flags or data."""
    from geo_r.data import DataConfigError, DataValidationError

    prepare_platform(args)
    try:
        script, model_args, training = parse_namespace(args)
    except ValueError as exc:
        print(f"geo-r sft: {exc}", file=sys.stderr)
        return 2
    level = logging.INFO if training.process_index == 0 else logging.WARNING
    logging.basicConfig(format="[geo-r %(levelname)s] %(message)s", level=level, force=True)
    try:
        train_sft(script, model_args, training)
    except (DataConfigError, DataValidationError, SFTSetupError, FileNotFoundError) as exc:
        print(f"geo-r sft: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m geo_r.sft.train`` / ``torchrun -m geo_r.sft.train``."""
    parser = argparse.ArgumentParser(
        prog="python -m geo_r.sft.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    code = main()
    if code == 0:
        exit_if_deepspeed_on_cpu(sys.argv[1:])
    sys.exit(code)
