"""Flags of the built-in SFT: Geo-R's data flags, TRL's ``ModelConfig`` (+ vision freezing) and ``SFTConfig``.

The data and model flags are named exactly as in ``grpo_jsonl.py`` (``--data_file_paths``, ``--image_folders``,
``--max_pixels``, ``--use_peft``, ``--lora_r``, ``--freeze_vision_modules`` ...), so a GRPO command line's data
and model part can be reused. ``add_arguments`` puts every flag of the three dataclasses on a plain argparse
parser (the ``geo-r`` CLI's); ``parse_namespace`` builds the dataclasses from what was given, with an
optional ``--config recipe.yaml`` underneath (command-line flags win), like TRL's ``TrlParser``.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from typing import Any

from geo_r.data.candidates import CANDIDATES_HELP, NUM_CANDIDATES_HELP, RADIUS_HELP
from geo_r.defaults import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS
from geo_r.geo.candidates import DEFAULT_NUM_CANDIDATES, DEFAULT_RADIUS_KM
from geo_r.sft.examples import TARGETS


@dataclass
class SFTScriptArguments:
    """Where the SFT data comes from, which answer is learned, and how images are sized."""

    data_file_paths: str | None = field(
        default=None,
        metadata={"help": "Training data: .jsonl/.json files separated by ':' (the same files as GRPO)."},
    )
    image_folders: str = field(
        default="",
        metadata={"help": "Image folders paired by position with --data_file_paths, separated by ':'."},
    )
    val_split_ratio: float = field(
        default=0.0,
        metadata={"help": "Fraction held out for evaluation (evaluated with --eval_strategy steps|epoch)."},
    )
    target: str = field(
        default="auto",
        metadata={
            "help": "Answer to learn: auto (the record's gpt turn when it follows the answer contract, else one "
            "rendered from its chain and coordinates), solution (the gpt turn whenever present) or render (always "
            "rendered).",
            "choices": list(TARGETS),
        },
    )
    question: str | None = field(
        default=None,
        metadata={"help": "Question for records without a human turn (default: the GRPO Chain-of-Region question)."},
    )
    replace_questions: bool = field(
        default=False, metadata={"help": "Ask --question (or the default question) of every record."}
    )
    freeze_vision_modules: bool = field(
        default=False,
        metadata={"help": "Freeze the vision tower (model.model.visual, merger included); train the language model only."},
    )
    max_pixels: int = field(
        default=DEFAULT_MAX_PIXELS,
        metadata={"help": "Largest image area after resizing; keep it equal to GRPO's --max_pixels (default 401408)."},
    )
    min_pixels: int = field(
        default=DEFAULT_MIN_PIXELS, metadata={"help": "Smallest image area after resizing (GRPO's --min_pixels)."}
    )
    skip_invalid: bool = field(
        default=False, metadata={"help": "Drop invalid records (counted in the log) instead of stopping."}
    )
    check_images: bool = field(
        default=True, metadata={"help": "Check that every image exists and is readable before training."}
    )
    derive_chains: bool = field(
        default=True,
        metadata={"help": "Fill missing country / region / city offline from lat/lon before rendering answers."},
    )
    candidates: str | None = field(default=None, metadata={"help": CANDIDATES_HELP})
    num_candidates: int = field(default=DEFAULT_NUM_CANDIDATES, metadata={"help": NUM_CANDIDATES_HELP})
    candidate_radius_km: float = field(default=DEFAULT_RADIUS_KM, metadata={"help": RADIUS_HELP})
    merge_lora: bool = field(
        default=True,
        metadata={
            "help": "With --use_peft: write the adapter to <output_dir>/adapter and the merged full model to "
            "<output_dir>, so grpo_jsonl.py loads <output_dir> directly. False: only the adapter, in <output_dir>."
        },
    )


def dataclass_types() -> tuple[type, ...]:
    """The dataclasses the SFT flags fill, in the order :func:`parse_namespace` returns them."""
    from trl import SFTConfig

    from geo_r.models.arguments import GeoModelArguments

    return (SFTScriptArguments, GeoModelArguments, SFTConfig)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Put every flag of :func:`dataclass_types` (and ``--config``) on ``parser``.

    Defaults are suppressed so the namespace holds only what was given (a ``--config`` file fills the rest);
    optional booleans such as ``--bf16`` may stand alone, as in the GRPO entrypoint.
    """
    from trl import TrlParser

    source = TrlParser(dataclass_types(), add_help=False)
    for action in source._actions:
        action.default = argparse.SUPPRESS
        # TRL vendors HfArgumentParser, so its string_to_bool is matched by name.
        if getattr(action.type, "__name__", "") == "string_to_bool" and action.nargs is None:
            action.nargs, action.const = "?", True
    # What ``argparse.ArgumentParser(parents=[source])`` does, onto a parser that already exists.
    parser._add_container_actions(source)
    parser.add_argument(
        "--config",
        default=argparse.SUPPRESS,
        help="YAML file of flag values (an 'env' mapping sets environment variables); command-line flags win",
    )


def parse_namespace(args: argparse.Namespace) -> tuple[Any, ...]:
    """``(SFTScriptArguments, GeoModelArguments, SFTConfig)`` from a namespace made by :func:`add_arguments`."""
    import yaml
    from transformers import HfArgumentParser

    given = dict(vars(args))
    values: dict[str, Any] = {}
    config_path = given.pop("config", None)
    if config_path is not None:
        try:
            with open(config_path, encoding="utf-8") as f:
                config = yaml.safe_load(f)
        except OSError as exc:
            raise ValueError(f"--config {config_path}: {exc}") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{config_path}:{mark.line + 1}" if mark is not None else config_path
            raise ValueError(f"{where}: invalid YAML ({exc})") from None
        if not isinstance(config, dict):
            raise ValueError(f"{config_path}:1: expected a YAML mapping of flag values")
        env = config.pop("env", {}) or {}
        if not isinstance(env, dict):
            raise ValueError(f"{config_path}: 'env' must be a mapping of environment variables")
        for key, value in env.items():
            os.environ[str(key)] = str(value)
        values.update(config)
    values.update(given)
    try:
        return HfArgumentParser(dataclass_types()).parse_dict(values)
    except ValueError as exc:
        if "not used by the HfArgumentParser" in str(exc):
            raise ValueError(f"unknown setting(s) in {config_path or 'the flags'}: {exc}") from None
        raise
