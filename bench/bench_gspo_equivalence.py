"""GSPO vs ``loss_type grpo`` with one update per rollout: where their gradients differ, and how fast runs part.

The recipe ablation (bench/bench_recipe_ablation.py) found ``gspo`` 0.08-0.16 below ``loss_grpo`` in held-out
reward on each of three seeds, in a setting where the importance ratio is exactly 1, so that the policy-gradient
terms are equal. The KL term is not: TRL 1.16 multiplies the per-token KL by the importance weight by default
(``use_bias_correction_kl``), and that weight's gradient, at the sequence level, spreads each sequence's mean KL over
all its tokens instead of giving each token its own. This bench measures that on the tiny model:

1. gradients: one rollout through ``GeoGRPOTrainer`` after a first training step (the policy has left the reference
   model, so the KL term is not zero), then TRL's ``compute_loss`` on that same batch with token-level ratios and
   clip 0.2 (the ``loss_grpo`` recipe) and with sequence-level ratios and GSPO's clip 3e-4 / 4e-4 (the ``gspo``
   recipe), with ``use_bias_correction_kl`` on (TRL's default) and off: the losses and the largest gradient
   difference;
2. training: ``--max_steps N`` from one checkpoint with each recipe's setting, and the token setting a second time
   (is a run deterministic?), weights saved after every step: per step, how far apart the runs' weight changes are,
   and the mean rewards logged;
3. the ablation's per-seed rows for ``loss_grpo`` and ``gspo``, from bench/results/recipe_ablation.json.

    python bench/bench_gspo_equivalence.py            # writes bench/results/gspo_equivalence.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_recipe_ablation import recipe_config  # noqa: E402 - bench/ scripts run as files
from provenance import provenance  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ENTRY = REPO / "src" / "geo_r" / "grpo_jsonl.py"
LENGTH_REWARD = f"{REPO / 'tests' / 'rewards_for_tests.py'}:length_reward"
ABLATION = REPO / "bench" / "results" / "recipe_ablation.json"


def recipe_setting(recipe: str) -> dict:
    """The ratio level and clip range of ``local_scripts/recipes/<recipe>.yaml`` (TRL's defaults where it sets none:
    epsilon 0.2, epsilon_high = epsilon)."""
    from trl import GRPOConfig

    config = recipe_config(recipe)
    epsilon = config.get("epsilon", GRPOConfig.__dataclass_fields__["epsilon"].default)
    return {"importance_sampling_level": config["importance_sampling_level"], "epsilon": epsilon,
            "epsilon_high": config.get("epsilon_high", epsilon)}


# the two recipes' levers, and what they share (read from the recipe files, so the bench measures what they run)
SETTINGS = {"grpo_token": recipe_setting("loss_grpo"), "gspo": recipe_setting("gspo")}
COMMON = {key: recipe_config("gspo")[key] for key in ("loss_type", "beta", "scale_rewards")}
if COMMON != {key: recipe_config("loss_grpo")[key] for key in COMMON}:
    raise SystemExit(f"loss_grpo.yaml and gspo.yaml differ in more than their lever: {sorted(COMMON)}")


def _trainer(model_dir: Path, jsonl: Path, images: Path, out: Path, setting: dict):
    """A GeoGRPOTrainer on the tiny model with the format reward and the tests' length reward (variance)."""
    from trl import GRPOConfig

    from geo_r.data import build_grpo_dataset, load_records
    from geo_r.models.loading import load_model
    from geo_r.models.processor import load_processor
    from geo_r.rewards import get_reward_funcs
    from geo_r.trainer.grpo_trainer import GeoGRPOTrainer

    records, _ = load_records(str(jsonl), str(images))
    args = GRPOConfig(output_dir=str(out), max_steps=1, per_device_train_batch_size=8, num_generations=4,
                      max_completion_length=16, learning_rate=1e-3, report_to="none", bf16=False, use_cpu=True,
                      save_strategy="no", seed=0, **COMMON, **setting)
    return GeoGRPOTrainer(
        model=load_model(str(model_dir), dtype=torch.float32, attn_implementation="eager"), args=args,
        train_dataset=build_grpo_dataset(records), reward_funcs=get_reward_funcs(["format", LENGTH_REWARD]),
        processing_class=load_processor(str(model_dir), min_pixels=3136, max_pixels=12544),
    )


def gradients(model_dir: Path, jsonl: Path, images: Path, work: Path) -> dict:
    """TRL's loss and gradients of both settings on one and the same rollout, taken after one training step (so
    the policy has left the reference model and the KL term has a gradient), with TRL's KL correction on and off."""
    trainer = _trainer(model_dir, jsonl, images, work / "grad", SETTINGS["grpo_token"])
    trainer.train()
    trainer.model.train()
    batch = next(iter(trainer.get_train_dataloader()))
    inputs = trainer._generate_and_score_completions(batch)
    result: dict = {"completions": int(inputs["completion_ids"].shape[0]), "after_steps": trainer.state.global_step}
    for correction in (True, False):
        trainer.args.use_bias_correction_kl = correction
        grads, row = {}, {}
        for name, setting in SETTINGS.items():
            trainer.importance_sampling_level = setting["importance_sampling_level"]
            trainer.epsilon_low, trainer.epsilon_high = setting["epsilon"], setting["epsilon_high"]
            trainer.model.zero_grad(set_to_none=True)
            loss = trainer.compute_loss(trainer.model, inputs)
            loss.backward()
            row[f"loss_{name}"] = loss.item()
            grads[name] = {n: p.grad.detach().clone() for n, p in trainer.model.named_parameters()
                           if p.grad is not None}
        a, b = grads["grpo_token"], grads["gspo"]
        row["max_abs_grad"] = max(g.abs().max().item() for g in a.values())
        row["max_abs_grad_difference"] = max((a[n] - b[n]).abs().max().item() for n in a)
        row["relative_grad_difference"] = row["max_abs_grad_difference"] / row["max_abs_grad"]
        result[f"use_bias_correction_kl_{str(correction).lower()}"] = row
    return result


def _train(model_dir: Path, jsonl: Path, images: Path, out: Path, setting: dict, steps: int) -> None:
    flags = {**COMMON, **setting}
    cmd = [sys.executable, str(ENTRY), "--model_name_or_path", str(model_dir), "--data_file_paths", str(jsonl),
           "--image_folders", str(images), "--output_dir", str(out), "--max_steps", str(steps),
           "--per_device_train_batch_size", "8", "--num_generations", "4", "--max_completion_length", "16",
           "--learning_rate", "1e-3", "--logging_steps", "1", "--max_pixels", "12544", "--min_pixels", "3136",
           "--seed", "0", "--save_strategy", "steps", "--save_steps", "1", "--save_only_model", "true",
           "--report_to", "none", "--reward_funcs", "format", LENGTH_REWARD,
           *[x for k, v in flags.items() for x in (f"--{k}", str(v))]]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode != 0:
        raise RuntimeError(f"training failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-4000:]}")


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return {k: v.float() for k, v in load_file(str(folder / "model.safetensors")).items()}


def _distance(base: dict, a: dict, b: dict) -> dict:
    """How far apart two runs' weight changes are: relative L2 and the share of elements that differ."""
    diff = sum(((a[k] - b[k]) ** 2).sum() for k in base).sqrt().item()
    step = sum(((a[k] - base[k]) ** 2).sum() for k in base).sqrt().item()
    changed = sum((a[k] != b[k]).sum().item() for k in base)
    total = sum(v.numel() for v in base.values())
    return {"relative_l2": diff / step if step else 0.0, "elements_differing": changed / total}


def training(model_dir: Path, jsonl: Path, images: Path, work: Path, steps: int) -> list[dict]:
    """Per step: token vs GSPO, and token vs token (a second, identical run)."""
    runs = {"grpo_token": SETTINGS["grpo_token"], "gspo": SETTINGS["gspo"], "grpo_token_again": SETTINGS["grpo_token"]}
    for name, setting in runs.items():
        _train(model_dir, jsonl, images, work / name, setting, steps)
    base = _weights(model_dir)
    rows = []
    for step in range(1, steps + 1):
        w = {name: _weights(work / name / f"checkpoint-{step}") for name in runs}
        rewards = {name: _logged(work / name / f"checkpoint-{step}", step) for name in runs}
        rows.append({"step": step, "gspo_vs_grpo_token": _distance(base, w["grpo_token"], w["gspo"]),
                     "grpo_token_rerun": _distance(base, w["grpo_token"], w["grpo_token_again"]),
                     "reward": rewards})
    return rows


def _logged(checkpoint: Path, step: int) -> float | None:
    """The mean reward logged at ``step`` (equal rewards: most likely the same sampled completions)."""
    history = json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]
    return next((e["reward"] for e in history if e.get("step") == step and "reward" in e), None)


def ablation_rows() -> dict | None:
    """The recipe ablation's per-seed held-out reward of loss_grpo and gspo (None when the JSON is absent)."""
    if not ABLATION.exists():
        return None
    recipes = json.loads(ABLATION.read_text())["recipes"]
    rows = {name: {seed: round(r["mean_reward"], 3) for seed, r in recipes[name]["seeds"].items()}
            for name in ("loss_grpo", "gspo")}
    rows["gap_per_seed"] = {s: round(rows["gspo"][s] - rows["loss_grpo"][s], 3) for s in rows["gspo"]}
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the three parts and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4, help="training steps per run in part 2 (default 4)")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "gspo_equivalence.json"),
                        help="where the JSON goes")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from geo_r.demo.tiny_model import build_tiny_model
    from geo_r.demo.toy_data import write_toy_dataset

    with tempfile.TemporaryDirectory(prefix="gspo-bench-") as tmp:
        work = Path(tmp)
        model_dir = build_tiny_model(work / "model")
        jsonl = write_toy_dataset(work / "toy", n=16, seed=1)
        images = jsonl.parent / "images"
        result = {**provenance([sys.argv[0], *argv] if argv is not None else None),
                  "settings": {"common": COMMON, **SETTINGS},
                  "gradients": gradients(model_dir, jsonl, images, work),
                  "training": training(model_dir, jsonl, images, work, args.steps),
                  "ablation": ablation_rows()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for correction in ("true", "false"):
        g = result["gradients"][f"use_bias_correction_kl_{correction}"]
        print(f"one rollout, use_bias_correction_kl {correction}: loss token {g['loss_grpo_token']:.6g} vs gspo "
              f"{g['loss_gspo']:.6g}; largest gradient difference {g['max_abs_grad_difference']:.3g} "
              f"({g['relative_grad_difference']:.3g} of the largest gradient)")
    for row in result["training"]:
        a, b = row["gspo_vs_grpo_token"], row["grpo_token_rerun"]
        print(f"step {row['step']}: gspo vs token: {a['relative_l2']:.3g} of the update apart, "
              f"{a['elements_differing']:.1%} of weights differ; token rerun: {b['relative_l2']:.3g}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
