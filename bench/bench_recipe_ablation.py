"""Which RL recipe? The recipes of local_scripts/recipes on the CPU demo world, three seeds each, side by side.

    python bench/bench_recipe_ablation.py                          # seeds 0 1 2, every recipe, 2 jobs x 1 thread
    python bench/bench_recipe_ablation.py --seeds 0 --recipes demo_baseline group_filter --out_dir /tmp/abl
    python bench/bench_recipe_ablation.py --markdown bench/results/recipe_ablation.json    # the docs table

Per seed, under ``<out_dir>/seed<N>``: the demo's tiny model, toy world and SFT warm-up (:mod:`geo_r.demo.pipeline`,
the demo's recipe and seed), then for every recipe the GRPO stage from that SFT checkpoint,
``python src/geo_r/grpo_jsonl.py --config local_scripts/recipes/<recipe>.yaml`` with the seed's paths and ``--seed``,
and ``geo-r eval`` (greedy) of the result on the seed's held-out photos. ``hard_mining`` first evaluates the SFT
model on the training photos and runs ``geo-r mine-hard`` (200 km hotspots and radius, Geo-R's values). Every
recipe of a seed starts from the same SFT checkpoint; nothing is tuned per recipe. Finished steps are reused when
the bench is run again (``--fresh`` redoes them).

Every process runs with ``--threads`` torch threads (default 1, ``--jobs`` 2 at a time on a 2-core machine), and
all rows, the baseline included, use the same setting, so they compare like with like. (On the machine of
``bench/results/recipe_ablation.json`` the baseline's rows came out equal to the demo table's, made with 2 threads;
the CPU's kernel set, recorded in the provenance, is what changed the numbers elsewhere: docs/demo.md.) Wall times
are of runs that shared the machine with one other run.

Writes ``bench/results/recipe_ablation.json``: per recipe and seed the held-out row (parse rate, acc@25/200/750/2500
km, median km, mean reward of 3), the GRPO wall time and the completions generated; per recipe the mean, min and
max over seeds; provenance. ``--markdown`` prints the table of docs/measurements.md from it.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import shutil
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/provenance.py, however this file is run
from geo_r.demo.pipeline import DemoConfig, eval_command, run_stage, sft_command, stage_row  # noqa: E402
from provenance import provenance  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "local_scripts" / "recipes"
DEFAULT_OUT = REPO / "bench" / "results" / "recipe_ablation.json"
DEMO_PREFIX = "outputs/demo_full"  # the recipes' paths are the demo's; each seed's folder replaces this
ORDER = ("demo_baseline", "loss_grpo", "loss_dr_grpo", "gspo", "normalize_then_sum", "group_filter", "hard_mining")
METRICS = ("mean_reward", "median_km", "acc@25km", "acc@200km", "acc@750km", "acc@2500km", "parse_rate",
           "grpo_wall_s", "completions")
MINE_KM = 200.0


def log(text: str) -> None:
    """One progress line with the time."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def demo_config(seed_dir: Path, seed: int, sft_steps: int | None = None) -> DemoConfig:
    """The demo's recipe for one seed (``sft_steps`` shortens the warm-up for smoke tests only)."""
    cfg = DemoConfig(out_dir=str(seed_dir), seed=seed)
    return dataclasses.replace(cfg, sft_steps=sft_steps) if sft_steps else cfg


def build_seed(root: Path, seed: int, sft_steps: int | None = None) -> DemoConfig:
    """Tiny model and toy world of ``seed`` under ``root/seed<N>`` (kept when there). Run one seed at a time:
    building in two threads at once is not safe (a seed's folder was lost that way)."""
    from geo_r.demo.tiny_model import build_tiny_model
    from geo_r.demo.world import write_world

    cfg = demo_config(root / f"seed{seed}", seed, sft_steps)
    out = Path(cfg.out_dir)
    if not (out / "model" / "config.json").is_file():
        build_tiny_model(out / "model", family=cfg.family, seed=seed, size=cfg.size, max_pixels=cfg.max_pixels)
    if not (out / "world" / "heldout.jsonl").is_file():
        write_world(out / "world", cfg.train_per_place, cfg.heldout_per_place, seed=seed, jitter_km=cfg.jitter_km,
                    decimals=cfg.coordinate_decimals, teacher_accuracy=cfg.teacher)
    return cfg


def warm_up(cfg: DemoConfig) -> Path:
    """The seed's SFT warm-up (a subprocess; kept when already complete)."""
    out = Path(cfg.out_dir)
    if not (out / "sft" / "config.json").is_file():
        world = out / "world"
        t = run_stage("sft", sft_command(cfg, out / "model", world / "train.jsonl", world / "images", out / "sft"),
                      out / "logs", show_progress=False)
        log(f"seed {cfg.seed}: SFT done in {t:.0f} s")
    return out


def mine_hard(seed_dir: Path, seed: int) -> Path:
    """``world/train_hard.jsonl``: the SFT model's answers on the training photos, then ``geo-r mine-hard``."""
    hard = seed_dir / "world" / "train_hard.jsonl"
    if hard.is_file():
        return hard
    cfg = demo_config(seed_dir, seed)
    train, images = seed_dir / "world" / "train.jsonl", seed_dir / "world" / "images"
    eval_dir = seed_dir / "eval_train_sft"
    run_stage("eval_train_sft", eval_command(cfg, seed_dir / "sft", train, images, eval_dir, "SFT on train"),
              seed_dir / "logs", show_progress=False)
    mine = [sys.executable, "-m", "geo_r.cli", "mine-hard", "--data_file_paths", str(train),
            "--predictions", str(eval_dir / "predictions.jsonl"), "--out", str(hard),
            "--hotspot_km", str(MINE_KM), "--radius_km", str(MINE_KM),
            "--summary_json", str(seed_dir / "mine_summary.json")]
    run_stage("mine_hard", mine, seed_dir / "logs", show_progress=False)
    kept = sum(1 for line in hard.open(encoding="utf-8") if line.strip())
    log(f"seed {seed}: hard-sample mining kept {kept} of {sum(1 for _ in train.open())} training photos")
    return hard


@functools.cache
def recipe_config(recipe: str) -> dict[str, Any]:
    """The settings of ``local_scripts/recipes/<recipe>.yaml`` (read once)."""
    return yaml.safe_load((RECIPES / f"{recipe}.yaml").read_text(encoding="utf-8"))


def recipe_data(recipe: str, seed_dir: Path) -> str:
    """The recipe's training file, moved from the demo's folder into the seed's."""
    path = str(recipe_config(recipe)["data_file_paths"])
    if not path.startswith(DEMO_PREFIX):
        raise SystemExit(f"{recipe}.yaml: data_file_paths {path} is not under {DEMO_PREFIX}")
    return str(seed_dir) + path[len(DEMO_PREFIX):]


def completions_generated(state: dict[str, Any], batch: int) -> float:
    """Completions a run generated: the step's own batch each step plus the group filter's extra rollouts.

    Log lines average a value over their logging interval, so each line's mean counts once per step in it."""
    steps = int(state["global_step"])
    extra, last = 0.0, 0
    for entry in state["log_history"]:
        if "group_filter/extra_completions" in entry:
            extra += entry["group_filter/extra_completions"] * (entry["step"] - last)
            last = entry["step"]
    return steps * batch + extra


def run_recipe(root: Path, seed: int, recipe: str, grpo_steps: int | None = None) -> dict[str, Any]:
    """GRPO with ``recipe`` from the seed's SFT checkpoint, then the held-out evaluation; the row (cached).

    ``grpo_steps`` overrides the recipe's ``max_steps`` (smoke tests only)."""
    seed_dir = root / f"seed{seed}"
    run_dir = seed_dir / "runs" / recipe
    done = run_dir / "row.json"
    if done.is_file():
        return json.loads(done.read_text(encoding="utf-8"))
    cfg = demo_config(seed_dir, seed)
    cmd = [sys.executable, str(REPO / "src" / "geo_r" / "grpo_jsonl.py"), "--config", str(RECIPES / f"{recipe}.yaml"),
           "--model_name_or_path", str(seed_dir / "sft"), "--data_file_paths", recipe_data(recipe, seed_dir),
           "--image_folders", str(seed_dir / "world" / "images"), "--output_dir", str(run_dir / "model"),
           "--seed", str(seed), *(["--max_steps", str(grpo_steps)] if grpo_steps else [])]
    wall = run_stage("grpo", cmd, run_dir, show_progress=False)
    held = seed_dir / "world" / "heldout.jsonl"
    run_stage("eval", eval_command(cfg, run_dir / "model", held, seed_dir / "world" / "images", run_dir / "eval",
                                   f"{recipe} seed {seed}"), run_dir, show_progress=False)
    state = json.loads((run_dir / "model" / "trainer_state.json").read_text(encoding="utf-8"))
    row = {**stage_row(cfg, run_dir / "eval", held), "grpo_wall_s": round(wall, 1),
           "completions": completions_generated(state, int(recipe_config(recipe)["per_device_train_batch_size"])),
           "train_log": [{k: v for k, v in e.items() if k in ("step", "reward", "frac_reward_zero_std", "loss")
                          or k.startswith("group_filter/")} for e in state["log_history"] if "reward" in e]}
    done.write_text(json.dumps(row, indent=2), encoding="utf-8")
    log(f"seed {seed} {recipe}: reward {row['mean_reward']:.3f}, median {row['median_km']:,.0f} km, "
        f"acc@25 {row['acc@25km']:.1f}%, GRPO {wall:.0f} s")
    return row


def summarize(rows: dict[str, dict[int, dict[str, Any]]]) -> dict[str, Any]:
    """Per recipe: each seed's row, and the mean / min / max of every metric over the seeds."""
    out = {}
    for recipe, by_seed in rows.items():
        stats = {}
        for key in METRICS:
            values = [float(r[key]) for r in by_seed.values() if r.get(key) is not None]
            if values:
                stats[key] = {"mean": statistics.fmean(values), "min": min(values), "max": max(values)}
        out[recipe] = {"recipe": f"local_scripts/recipes/{recipe}.yaml", "seeds": {str(s): r for s, r in by_seed.items()},
                       "summary": stats}
    return out


def markdown(result: dict[str, Any]) -> str:
    """The docs/measurements.md table: mean over seeds with the min-max range, baseline first."""
    head = ["recipe", "held-out reward (of 3)", "median km", "acc@25 km", "acc@750 km", "GRPO wall s",
            "completions"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def cell(stats: dict[str, float], fmt: str, unit: str = "") -> str:
        mean, lo, hi = (format(stats[k], fmt) for k in ("mean", "min", "max"))
        return f"{mean}{unit} ({lo}-{hi})" if lo != hi else f"{mean}{unit}"

    for recipe, entry in result["recipes"].items():
        s = entry["summary"]
        lines.append("| " + " | ".join([
            f"`{recipe}`", cell(s["mean_reward"], ".3f"), cell(s["median_km"], ",.0f"), cell(s["acc@25km"], ".1f", "%"),
            cell(s["acc@750km"], ".1f", "%"), cell(s["grpo_wall_s"], ".0f"), cell(s["completions"], ",.0f"),
        ]) + " |")
    seeds = ", ".join(result["seeds"])
    lines.append(f"\nMean over seeds {seeds} (min-max in brackets); {result['threads']} torch thread per run, "
                 f"{result['jobs']} runs at a time; `python bench/bench_recipe_ablation.py`.")
    return "\n".join(lines)


def merge_rerun(earlier: dict[str, Any], rerun: dict[str, Any], note: str) -> dict[str, Any]:
    """``earlier`` with the recipes of ``rerun`` replaced (table order kept) and the rerun's provenance recorded."""
    if earlier["seeds"] != rerun["seeds"] or earlier["threads"] != rerun["threads"]:
        raise ValueError(f"--merge_into: the rerun's seeds / threads ({rerun['seeds']}, {rerun['threads']}) differ "
                         f"from the earlier result's ({earlier['seeds']}, {earlier['threads']})")
    recipes = {**earlier["recipes"], **rerun["recipes"]}
    merged = {**earlier, "recipes": {r: recipes[r] for r in ORDER if r in recipes}}
    provenance_keys = ("command", "packages", "machine", "git_commit", "utc", "wall_s")
    merged["reruns"] = [*earlier.get("reruns", []), {"recipes": list(rerun["recipes"]), "note": note,
                                                     **{k: rerun.get(k) for k in provenance_keys}}]
    return merged


def main(argv: list[str] | None = None) -> int:
    """Run every (seed, recipe) pair (or print the table of an earlier JSON with --markdown)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="demo seeds (default: 0 1 2)")
    parser.add_argument("--recipes", nargs="+", default=list(ORDER), choices=ORDER,
                        help="recipes of local_scripts/recipes to run, in this order (default: all, baseline first); "
                        "the table lists them in the default order")
    parser.add_argument("--out_dir", type=Path, default=REPO / "outputs" / "bench_ablation",
                        help="work folder: one seed<N> folder per seed, reused by a rerun")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of every run (default: 1)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (default: 2)")
    parser.add_argument("--sft_steps", type=int, default=None,
                        help="shorter SFT warm-up, for smoke tests only (default: the demo's)")
    parser.add_argument("--grpo_steps", type=int, default=None,
                        help="fewer GRPO steps than the recipes' max_steps, for smoke tests only")
    parser.add_argument("--fresh", action="store_true", help="delete the work folder first (no reuse)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="result JSON (default: %(default)s)")
    parser.add_argument("--markdown", type=Path, default=None, metavar="JSON",
                        help="print the docs/measurements.md table of an earlier result JSON and exit")
    parser.add_argument("--merge_into", type=Path, default=None, metavar="JSON",
                        help="replace only the recipes run now in this earlier result (written to --out), recording "
                        "the rerun's provenance and --note under 'reruns' (after a fix that touches one recipe)")
    parser.add_argument("--note", default="", help="why the recipes were rerun (with --merge_into)")
    args = parser.parse_args(argv)
    if args.markdown is not None:
        print(markdown(json.loads(args.markdown.read_text(encoding="utf-8"))))
        return 0
    os.environ.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    root = args.out_dir.resolve()
    if args.fresh and root.exists():
        shutil.rmtree(root)
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        configs = [build_seed(root, s, args.sft_steps) for s in args.seeds]
        list(pool.map(warm_up, configs))
        if "hard_mining" in args.recipes:
            list(pool.map(lambda s: mine_hard(root / f"seed{s}", s), args.seeds))
        tasks = [(s, r) for r in args.recipes for s in args.seeds]
        results = list(pool.map(lambda t: run_recipe(root, *t, grpo_steps=args.grpo_steps), tasks))
    rows: dict[str, dict[int, dict[str, Any]]] = {r: {} for r in ORDER if r in args.recipes}  # table order
    for (seed, recipe), row in zip(tasks, results, strict=True):
        rows[recipe][seed] = row
    # the summaries name files under the work folder: shown relative to it (no machine's paths in a result)
    mining = {str(s): json.loads((root / f"seed{s}" / "mine_summary.json").read_text(encoding="utf-8")
                                 .replace(json.dumps(str(root))[1:-1], "<out_dir>"))
              for s in args.seeds if (root / f"seed{s}" / "mine_summary.json").is_file()}
    result = {**provenance([sys.argv[0], *argv] if argv is not None else None),
              "seeds": [str(s) for s in args.seeds], "threads": args.threads, "jobs": args.jobs,
              "demo_recipe": {**dataclasses.asdict(DemoConfig()), "out_dir": None, "seed": None},
              "overrides": {"sft_steps": args.sft_steps, "grpo_steps": args.grpo_steps},
              "mining": {"hotspot_km": MINE_KM, "radius_km": MINE_KM, "per_seed": mining},
              "wall_s": round(time.monotonic() - t0, 1), "recipes": summarize(rows)}
    if args.merge_into is not None:
        result = merge_rerun(json.loads(args.merge_into.read_text(encoding="utf-8")), result, args.note)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print("\n" + markdown(result))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
