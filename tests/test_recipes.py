"""The recipes in local_scripts/recipes: each parses with TRL's --config, the baseline is the CPU demo's GRPO stage
flag for flag, and every other recipe differs from it only in its own lever."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "local_scripts" / "recipes"
# recipe -> the settings it changes against demo_baseline (everything else must be equal)
LEVERS = {
    "demo_baseline": {},
    "loss_grpo": {"loss_type": "grpo"},
    "loss_dr_grpo": {"loss_type": "dr_grpo"},
    "gspo": {"loss_type": "grpo", "importance_sampling_level": "sequence", "epsilon": 3e-4, "epsilon_high": 4e-4},
    "normalize_then_sum": {"multi_objective_aggregation": "normalize_then_sum"},
    "group_filter": {"group_filter": "zero_std"},
    "hard_mining": {"data_file_paths": "outputs/demo_full/world/train_hard.jsonl"},
}
IGNORED = {"output_dir", "logging_dir", "run_name"}  # named after the recipe


def _settings(argv: list[str]) -> dict:
    from geo_r.grpo_jsonl import parse_args

    out = {}
    for parsed in parse_args(argv):
        out.update({f.name: getattr(parsed, f.name) for f in dataclasses.fields(parsed)})
    return {k: v for k, v in out.items() if k not in IGNORED}


def test_every_recipe_is_listed():
    assert sorted(p.stem for p in RECIPES.glob("*.yaml")) == sorted(LEVERS)


def test_baseline_is_the_demo_grpo_stage():
    from geo_r.demo.pipeline import DemoConfig, grpo_command

    demo = Path("outputs/demo_full")
    cmd = grpo_command(DemoConfig(), demo / "sft", demo / "world" / "train.jsonl", demo / "world" / "images",
                       Path("outputs/recipes/demo_baseline"))
    assert _settings(["--config", str(RECIPES / "demo_baseline.yaml")]) == _settings(cmd[2:])


@pytest.mark.parametrize("name", sorted(set(LEVERS) - {"demo_baseline"}))
def test_a_recipe_changes_only_its_lever(name):
    base = _settings(["--config", str(RECIPES / "demo_baseline.yaml")])
    recipe = _settings(["--config", str(RECIPES / f"{name}.yaml")])
    changed = {k: v for k, v in recipe.items() if base.get(k) != v}
    assert changed == LEVERS[name]


def test_command_line_flags_override_a_recipe():
    recipe = _settings(["--config", str(RECIPES / "group_filter.yaml"), "--max_steps", "3", "--group_filter", "none"])
    assert recipe["max_steps"] == 3 and recipe["group_filter"] == "none"
