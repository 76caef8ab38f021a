"""``geo-r demo``: the whole recipe on CPU in minutes (tiny model, toy world, SFT, GRPO, three evaluations).

Prints a stage heading and a progress bar per stage, then one table (untrained / after SFT / after GRPO on
the held-out photos: parse rate, accuracy at 25 / 200 / 750 / 2500 km, median km, mean GRPO reward).
Reports and maps go to ``<out>/eval/<stage>/``; the table and timings to ``<out>/demo_summary.json``.
"""

from __future__ import annotations

import argparse
from dataclasses import fields

from geo_r.demo.pipeline import DemoConfig, run_demo
from geo_r.demo.tiny_model import FAMILIES, SIZES
from geo_r.rewards.args import DISTANCE_REWARDS

_CHOICES = {"family": FAMILIES, "size": SIZES, "distance_reward": DISTANCE_REWARDS}

_HELP = {
    "out_dir": "output folder (model, world, sft, grpo, eval/<stage>, logs, demo_summary.json)",
    "seed": "seed of the model weights, the toy world and both trainings",
    "family": "model family of the tiny model (qwen2_5_vl, qwen2_vl, qwen3_vl)",
    "size": "tiny-model size (small learns in minutes; tiny is for tests)",
    "train_per_place": "training photos per place (36 places)",
    "heldout_per_place": "held-out photos per place",
    "jitter_km": "photos lie up to this far from their city (0: at the city)",
    "coordinate_decimals": "decimal places of the photos' coordinates",
    "teacher_accuracy": "SFT answers: -1 the photos' true chains; 0..1 a simulated teacher that over-predicts "
                        "famous countries (Canada, Australia -> US; Japan, India -> China; Russia -> France; "
                        "Argentina -> Brazil; Kenya -> Egypt) and names those photos right this often",
    "sft_steps": "SFT warm-up steps",
    "sft_learning_rate": "SFT learning rate",
    "sft_batch_size": "SFT batch size",
    "grpo_steps": "GRPO steps",
    "grpo_learning_rate": "GRPO learning rate",
    "grpo_batch_size": "completions per GRPO step (prompts x num_generations)",
    "num_generations": "GRPO group size (completions per prompt)",
    "temperature": "GRPO sampling temperature",
    "max_completion_length": "GRPO completion budget in tokens",
    "beta": "GRPO KL coefficient (0: no reference model)",
    "scale_rewards": "GRPO advantage scaling: none (raw reward differences), group or batch (divide by the std)",
    "reward_weights": "GRPO weights of the format, distance and region rewards, comma-separated",
    "distance_reward": "distance reward map (paper, geoscore, anneal, threshold)",
    "geoscore_scale_km": "scale of the geoscore distance reward, km",
    "eval_max_new_tokens": "completion budget of the evaluations",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``geo-r demo``: every field of :class:`DemoConfig` (defaults are the README's recipe)."""
    defaults = DemoConfig()
    for f in fields(DemoConfig):
        if f.name == "extra_grpo_args":
            continue
        value = getattr(defaults, f.name)
        parser.add_argument(f"--{f.name}", type=type(value), default=value, choices=_CHOICES.get(f.name),
                            help=f"{_HELP.get(f.name, f.name)} (default: {value})")
    parser.add_argument("--grpo_arg", action="append", default=[], dest="extra_grpo_args",
                        help="extra flag passed to grpo_jsonl.py as is (repeat: --grpo_arg=--top_k --grpo_arg=50)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars (headings and table only)")


def run(args: argparse.Namespace) -> int:
    """Run the demo and print the table; a failing stage prints its log tail and returns 1."""
    values = {f.name: getattr(args, f.name) for f in fields(DemoConfig)}
    try:
        cfg = DemoConfig(**values)
    except ValueError as exc:  # a recipe value out of range: refused before anything is built
        print(f"geo-r demo: {exc}")
        return 2
    try:
        run_demo(cfg, show_progress=not args.quiet)
    except RuntimeError as exc:
        print(f"geo-r demo: {exc}")
        return 1
    return 0
