"""What does retrieval add? The retrieval demo over several seeds: accuracy at 1 / 25 / 200 / 750 / 2500 km.

    python bench/bench_retrieval_demo.py                          # seeds 0 1 2, the bench recipe below
    python bench/bench_retrieval_demo.py --seeds 1 --resume       # finish one seed; the others stay in the JSON
    python bench/bench_retrieval_demo.py --seeds 0 --model_free_seeds 1 2   # train on seed 0 only
    python bench/bench_retrieval_demo.py --report                 # print the tables from the JSON only

Each seed runs (``--resume``: continues) :func:`geo_r.demo.retrieval_pipeline.run_retrieval_demo` from scratch (new tiny model, new
retrieval world, gallery index, neighbours under both protocols, retrieval-free SFT -> GRPO, retrieval-augmented
SFT -> GRPO, evaluations). Rows: retrieval top-1 and the candidate oracle (no model), the retrieval-free and
retrieval-augmented models, each retrieval row under the leakage-aware and the standard protocol; plus a
breakdown by kind of held-out photo (what the world says it is). Cells are the mean over seeds and, in
brackets, the min-max spread. Writes ``--json`` (default bench/results/retrieval_demo.json): provenance, the
recipe, every seed's rows, breakdown, retrieve summaries and timings. A seed run again replaces its entry;
seeds run with another recipe are dropped (the JSON holds one recipe).

It shows a mechanism on a toy world (photos whose site only a gallery lookup can tell), not an accuracy
claim about real photos.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from statistics import mean
from typing import Any

from provenance import provenance  # bench/provenance.py (scripts run as files)

THRESHOLDS_KM = (1, 25, 200, 750, 2500)
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "retrieval_demo.json"
# The bench recipe: the demo's training recipe cut to about ten minutes of one CPU core per seed.
RECIPE = {"sft_steps": 100, "grpo_steps": 8, "grpo_batch_size": 16, "num_generations": 4}
FIXED = {"eval_sft_extras": False}  # the table needs neither the retrieval-free SFT row nor augmented SFT + standard
TABLE_ROWS = (
    ("retrieval_top1.leakage_aware", "retrieval top-1 (no model)", "leakage-aware"),
    ("candidate_oracle.leakage_aware", "candidate oracle (no model)", "leakage-aware"),
    ("sft_plain", "retrieval-free SFT", "-"),
    ("grpo_plain", "retrieval-free SFT -> GRPO", "-"),
    ("sft_cand.leakage_aware", "retrieval-augmented SFT", "leakage-aware"),
    ("grpo_cand.leakage_aware", "retrieval-augmented SFT -> GRPO", "leakage-aware"),
    ("retrieval_top1.standard", "retrieval top-1 (no model)", "standard"),
    ("candidate_oracle.standard", "candidate oracle (no model)", "standard"),
    ("sft_cand.standard", "retrieval-augmented SFT", "standard"),
    ("grpo_cand.standard", "retrieval-augmented SFT -> GRPO", "standard"),
)
KIND_ROWS = (
    ("retrieval.leakage_aware", "retrieval_top1", "retrieval top-1, leakage-aware"),
    ("retrieval.standard", "retrieval_top1", "retrieval top-1, standard"),
    ("grpo_plain", "model", "retrieval-free SFT -> GRPO"),
    ("grpo_cand.leakage_aware", "model", "augmented SFT -> GRPO, leakage-aware"),
    ("grpo_cand.standard", "model", "augmented SFT -> GRPO, standard"),
)
KINDS = ("gallery_site", "gallery_only_site", "uncovered_city", "near_duplicate", "owner_query",
         "other_author_query")
KIND_LABELS = {
    "gallery_site": "sites with gallery and training photos",
    "gallery_only_site": "gallery-only sites (no training photo)",
    "uncovered_city": "uncovered cities (no gallery photo)",
    "near_duplicate": "re-posts of gallery photos",
    "owner_query": "covered sites, photo by the site's owner",
    "other_author_query": "covered sites, photo by anyone else",
}


def spread(values: list[float], fmt: str = "{:.1f}") -> str:
    """``mean (min-max)`` of the seeds' values; one seed, or the same value for all: the value alone."""
    if not values:
        return "n/a"
    if len(values) == 1 or min(values) == max(values):
        return fmt.format(values[0])
    return f"{fmt.format(mean(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def accuracy_table(results: list[dict[str, Any]]) -> str:
    """Markdown: one row per method and protocol, accuracy (%) on held-out photos at every threshold."""
    head = ["method", "candidates' protocol", "seeds", *(f"acc@{t} km" for t in THRESHOLDS_KM)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, label, protocol in TABLE_ROWS:
        present = [r["rows"][key] for r in results if key in r["rows"]]
        if not present:
            continue
        cells = [spread([row[f"acc@{t}km"] for row in present]) for t in THRESHOLDS_KM]
        seeds = ",".join(str(r["seed"]) for r in results if key in r["rows"])
        lines.append("| " + " | ".join([label, protocol, seeds, *cells]) + " |")
    return "\n".join(lines)


def kind_table(results: list[dict[str, Any]]) -> str:
    """Markdown: one row per kind of held-out photo (and author group), accuracy at 1 / 25 km of each method
    and the share of the augmented model's answers that name no candidate."""
    head = ["held-out photos", "n", *(f"{label} @1 / @25 km" for _, _, label in KIND_ROWS),
            "augmented SFT -> GRPO (leakage-aware): answers `Candidate: none`"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for kind in KINDS:
        base = [r["by_kind"]["retrieval.leakage_aware"][kind] for r in results
                if kind in r["by_kind"]["retrieval.leakage_aware"]]
        if not base:
            continue
        cells = [KIND_LABELS[kind], spread([e["n"] for e in base], "{:.0f}")]
        for name, who, _ in KIND_ROWS:
            entries = [r["by_kind"][name][kind] for r in results if kind in r["by_kind"].get(name, {})]
            a1 = spread([e[f"{who}_acc@1km"] for e in entries if f"{who}_acc@1km" in e])
            a25 = spread([e[f"{who}_acc@25km"] for e in entries if f"{who}_acc@25km" in e])
            cells.append(f"{a1} / {a25}")
        nones = [r["by_kind"]["grpo_cand.leakage_aware"][kind].get("model_none_pct") for r in results
                 if kind in r["by_kind"].get("grpo_cand.leakage_aware", {})]
        cells.append(spread([v for v in nones if v is not None]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rebreakdown(data: dict[str, Any], out: Path, command: list[str]) -> dict[str, Any]:
    """Recompute every seed's per-kind breakdown from its run folder under ``out`` (its eval scores and world,
    nothing run again), for a breakdown added after the runs; records who recomputed it."""
    from geo_r.demo.retrieval_pipeline import by_kind

    for r in data["results"]:
        run = out / f"seed{r['seed']}"
        r["by_kind"] = {name: by_kind(run / "eval" / name, run / "world" / "heldout.jsonl") for name in r["by_kind"]}
        r["by_kind_recomputed"] = provenance(command)
    return data


def report(data: dict[str, Any]) -> str:
    """Both tables and a line on seeds, recipe and time, from the bench JSON."""
    results = sorted(data["results"], key=lambda r: r["seed"])
    seeds = ", ".join(str(r["seed"]) for r in results)
    walls = ", ".join(f"seed {r['seed']} {r['wall_s'] / 60:.1f} min"
                      + ("" if r.get("trained", True) else " (no training)") for r in results)
    recipe = data["recipe"]
    return "\n".join([
        f"Held-out photos of the retrieval world, % within each distance; mean (min-max) over seeds {seeds} "
        "(models: over the seeds that trained them) "
        f"(SFT {recipe['sft_steps']} steps, GRPO {recipe['grpo_steps']} steps x {recipe['grpo_batch_size']} "
        f"prompts x {recipe['num_generations']} generations; wall time {walls}).",
        "",
        accuracy_table(results),
        "",
        "By kind of held-out photo (% within 1 km / 25 km):",
        "",
        kind_table(results),
    ])


def _recipe(cfg: Any, out: Path) -> dict[str, Any]:
    """The recipe as the JSON stores it (every seed's config but the seed; JSON types)."""
    return json.loads(json.dumps(asdict(cfg) | {"out_dir": str(out), "seed": None}))


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def main(argv: list[str] | None = None) -> int:
    """Run the retrieval demo per seed (or only --report), write the JSON, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2], help="seeds run in full")
    parser.add_argument("--model_free_seeds", type=int, nargs="*", default=[],
                        help="seeds run without training: only the no-model rows (retrieval top-1, candidate oracle)")
    parser.add_argument("--out", default="outputs/bench_retrieval_demo", help="one run folder per seed")
    parser.add_argument("--json", default=str(DEFAULT_JSON), help="the bench JSON (read by --report)")
    for name, value in RECIPE.items():
        parser.add_argument(f"--{name}", type=int, default=value, help=f"default {value}")
    parser.add_argument("--report", action="store_true", help="print the tables from --json; run nothing")
    parser.add_argument("--rebreakdown", action="store_true",
                        help="recompute the per-kind breakdown of the JSON's seeds from their run folders under --out "
                             "(nothing is run again), then print the tables")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--resume", action="store_true",
                        help="keep a seed's stages that completed in an earlier, interrupted run (default: start over)")
    args = parser.parse_args(argv)
    json_path = Path(args.json)
    command = [sys.argv[0], *(argv if argv is not None else sys.argv[1:])]
    if args.rebreakdown:
        data = _load(json_path)
        if data is None:
            print(f"{json_path}: no such file; run the bench first", file=sys.stderr)
            return 2
        json_path.write_text(json.dumps(rebreakdown(data, Path(args.out), command), indent=2) + "\n",
                             encoding="utf-8")
        print(report(data))
        return 0
    if args.report:
        data = _load(json_path)
        if data is None:
            print(f"{json_path}: no such file; run the bench first", file=sys.stderr)
            return 2
        print(report(data))
        return 0

    from geo_r.demo.retrieval_pipeline import RetrievalDemoConfig, run_retrieval_demo

    out = Path(args.out)
    recipe = {name: getattr(args, name) for name in RECIPE}
    previous = _load(json_path)
    results = []
    if previous is not None and previous["recipe"] == _recipe(RetrievalDemoConfig(**recipe, **FIXED), out):
        results = [r for r in previous["results"] if r["seed"] not in (*args.seeds, *args.model_free_seeds)]
    runs = [(seed, True) for seed in args.seeds] + [(seed, False) for seed in args.model_free_seeds]
    for seed, train in runs:
        cfg = RetrievalDemoConfig(out_dir=str(out / f"seed{seed}"), seed=seed, **recipe, **FIXED)
        t0 = time.monotonic()
        summary = run_retrieval_demo(cfg, show_progress=not args.quiet, overwrite=not args.resume, train=train)
        wall = time.monotonic() - t0
        results = [r for r in results if r["seed"] != seed] + [{
            "seed": seed, "wall_s": round(wall, 1), "resumed": args.resume, "provenance": provenance(command),
            **{key: summary[key] for key in ("trained", "rows", "by_kind", "retrieve", "near_duplicate_rule", "world_counts",
                                             "timings_s")},
        }]
        results.sort(key=lambda r: r["seed"])
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({
            **provenance(command),
            "recipe": _recipe(cfg, out),
            "results": results,
        }, indent=2) + "\n", encoding="utf-8")
    print()
    print(report(_load(json_path)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
