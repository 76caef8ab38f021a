"""Does sampling K answers and voting on the map beat the greedy answer? The CPU demo's GRPO model, 3 seeds.

    python bench/bench_test_time_scaling.py                        # seeds 0 1 2, K = 8, into outputs/bench_tts
    python bench/bench_test_time_scaling.py --seeds 0 --out /tmp/tts_demo     # reuse demos already there

For each seed: the demo (:func:`geo_r.demo.pipeline.run_demo`: tiny model, toy world, SFT, GRPO) runs into
``<out>/seed<N>``, or is reused when its ``demo_summary.json`` and GRPO checkpoint are there; then
``geo-r eval --num_samples K --aggregate greedy,medoid,vote`` into ``<out>/seed<N>/eval_tts_k<K>`` (resumed,
not redone, when it is already there with the same settings; the demo's own evaluation flags, sampling at
the demo's GRPO temperature) scores its GRPO checkpoint on the seed's held-out photos. Greedy, medoid and
vote are scored on the same samples in the same run, so the comparison is side by side. The sampling
temperature and ``--abstain_km`` are fixed up front (the GRPO temperature and 200 km, the region-level
threshold), not tuned on these results.

Writes ``bench/results/test_time_scaling.json`` (every aggregate's metrics per seed, the recipe, the demo's own
greedy row as a cross-check, provenance) and ``bench/results/test_time_scaling_confidence.png`` (the first
seed's confidence.png), and prints the table of docs/measurements.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from statistics import mean
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/provenance.py, however this file is run
from geo_r.demo.pipeline import SUMMARY_FILE, DemoConfig, _child_env, eval_command, run_demo
from provenance import provenance  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
KEYS = ("parse_rate", "acc@25km", "acc@200km", "acc@750km", "acc@2500km", "median_km", "median_km_worst_case",
        "mean_km", "geoscore", "country_acc")


def demo_for_seed(out: Path, seed: int, quiet: bool) -> tuple[DemoConfig, dict[str, Any], bool]:
    """The demo of ``seed`` under ``out`` (run now unless already complete): (config, summary, reused)."""
    cfg = DemoConfig(out_dir=str(out), seed=seed)
    summary_path = out / SUMMARY_FILE
    if summary_path.is_file() and (out / "grpo" / "config.json").is_file():
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        if summary.get("config", {}).get("seed") != seed:
            raise SystemExit(f"{summary_path}: a demo of seed {summary['config'].get('seed')}, not {seed}")
        return cfg, summary, True
    return cfg, run_demo(cfg, show_progress=not quiet), False


def evaluate(cfg: DemoConfig, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    """``geo-r eval`` with K samples of the demo's GRPO checkpoint on its held-out photos; its metrics.json."""
    eval_dir = out / f"eval_tts_k{args.num_samples}"
    cmd = eval_command(cfg, out / "grpo", out / "world" / "heldout.jsonl", out / "world" / "images", eval_dir,
                       f"GRPO seed {cfg.seed}, K = {args.num_samples}")
    cmd.remove("--overwrite")  # resume: a rerun with the same settings rescores the predictions already there
    cmd += ["--num_samples", str(args.num_samples), "--temperature", str(args.temperature),
            "--aggregate", args.aggregate, "--abstain_km", str(args.abstain_km), "--seed", str(cfg.seed),
            "--no_progress"]
    proc = subprocess.run(cmd, cwd=REPO, env=_child_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"seed {cfg.seed}: geo-r eval failed ({proc.returncode})\n{proc.stdout[-3000:]}\n"
                         f"{proc.stderr[-3000:]}")
    print(proc.stdout.strip(), flush=True)
    return {"dir": eval_dir, "metrics": json.loads((eval_dir / "metrics.json").read_text(encoding="utf-8"))}


def diagnostics(eval_dir: Path, aggregates: list[str]) -> dict[str, Any]:
    """Why an aggregate does or does not beat greedy, from the run's files: how often the samples repeat the
    greedy point, the best-of-K oracle (any sample within 25 / 750 km), and per aggregate on how many images
    its answer differs from greedy's and is closer / farther."""
    from geo_r.eval.tts.aggregate import points_of
    from geo_r.geo import haversine_km

    preds = [json.loads(x) for x in (eval_dir / "predictions.jsonl").read_text(encoding="utf-8").splitlines() if x]
    scores = [json.loads(x) for x in (eval_dir / "scores.jsonl").read_text(encoding="utf-8").splitlines() if x]
    at_greedy = n_samples = 0
    best = {25: 0, 750: 0}
    for p in preds:
        greedy_point = points_of([p["completion"]])[0]
        pts = points_of(p["samples"])
        n_samples += len(pts)
        at_greedy += sum(q is not None and q == greedy_point for q in pts)
        d = [haversine_km(p["true_lat"], p["true_lon"], q[0], q[1]) for q in pts if q is not None]
        for t in best:
            best[t] += any(x <= t for x in d)
    out: dict[str, Any] = {
        "share_of_samples_at_the_greedy_point": at_greedy / n_samples if n_samples else None,
        "best_of_k_acc@25km": 100.0 * best[25] / len(preds),
        "best_of_k_acc@750km": 100.0 * best[750] / len(preds),
    }
    for name in aggregates:
        if name == "greedy":
            continue
        pairs = [(s["aggregates"][name]["distance_km"], s["aggregates"]["greedy"]["distance_km"]) for s in scores]
        changed = [(a, g) for a, g in pairs if a != g]
        out[f"{name}_changes_the_answer"] = {
            "images": len(changed),
            "closer": sum(a is not None and (g is None or a < g) for a, g in changed),
            "farther": sum(g is not None and (a is None or a > g) for a, g in changed),
        }
    return out


def seed_result(seed: int, metrics: dict[str, Any], summary: dict[str, Any], reused: bool) -> dict[str, Any]:
    """What the JSON keeps per seed: each aggregate's headline metrics and confidence, the demo's greedy row."""
    aggs = {}
    for name, block in metrics["aggregates"].items():
        conf = block["confidence"]
        aggs[name] = {k: block.get(k) for k in KEYS} | {
            "spread_km_median": conf["spread_km_median"],
            "country_agreement_mean": conf["country_agreement_mean"],
            "spearman_spread_error": conf["spearman_spread_error"],
            "abstention": conf.get("abstention"),
            "deciles": conf["deciles"],
        }
    return {"seed": seed, "n_images": metrics["n"], "demo_reused": reused, "aggregates": aggs,
            "demo_greedy_row": summary["rows"].get("grpo")}


def _f(v: float | None, fmt: str) -> str:
    return "n/a" if v is None else format(v, fmt)


def table(results: list[dict[str, Any]], aggregates: list[str]) -> str:
    """The docs/measurements.md table: one row per seed and aggregate, then the mean over seeds per aggregate."""
    head = ["seed", "answer", "acc@25 km", "acc@200 km", "acc@750 km", "acc@2500 km", "median km",
            "Spearman(spread, error)", "coverage / acc@25 km at spread <= 200 km"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]

    def row(label: str, name: str, a: dict[str, Any]) -> str:
        ab = a.get("abstention") or {}
        return (f"| {label} | {name} | {_f(a['acc@25km'], '.1f')}% | {_f(a['acc@200km'], '.1f')}% | "
                f"{_f(a['acc@750km'], '.1f')}% | {_f(a['acc@2500km'], '.1f')}% | "
                f"{_f(a['median_km_worst_case'], ',.0f')} | {_f(a['spearman_spread_error'], '.2f')} | "
                f"{_f(ab.get('coverage'), '.0f')}% / {_f(ab.get('acc@25km'), '.1f')}% |")

    for r in results:
        for name in aggregates:
            lines.append(row(str(r["seed"]), name, r["aggregates"][name]))
    if len(results) > 1:
        for name in aggregates:
            avg: dict[str, Any] = {}
            for k in ("acc@25km", "acc@200km", "acc@750km", "acc@2500km", "median_km_worst_case",
                      "spearman_spread_error"):
                vals = [r["aggregates"][name][k] for r in results if r["aggregates"][name][k] is not None]
                avg[k] = mean(vals) if vals else None
            abs_ = [r["aggregates"][name].get("abstention") or {} for r in results]
            cov = [a["coverage"] for a in abs_ if a.get("coverage") is not None]
            acc = [a["acc@25km"] for a in abs_ if a.get("acc@25km") is not None]
            avg["abstention"] = {"coverage": mean(cov) if cov else None, "acc@25km": mean(acc) if acc else None}
            lines.append(row("mean", f"**{name}**", avg))
    return "\n".join(lines)


def verdict(results: list[dict[str, Any]], aggregates: list[str]) -> dict[str, dict[str, int]]:
    """Per aggregate: on how many seeds it beats / ties / loses to greedy at acc@25 km and median km."""
    out: dict[str, dict[str, int]] = {}
    for name in aggregates:
        if name == "greedy":
            continue
        v = {"seeds": len(results)}
        for key, better in (("acc@25km", 1), ("acc@750km", 1), ("median_km_worst_case", -1)):
            wins = ties = 0
            for r in results:
                a, g = r["aggregates"][name][key], r["aggregates"]["greedy"][key]
                if a is None or g is None:
                    continue
                wins += (a - g) * better > 1e-9
                ties += abs(a - g) <= 1e-9
            v[f"beats_greedy_{key}"], v[f"ties_greedy_{key}"] = wins, ties
        out[name] = v
    return out


def _shown_argv(argv: list[str]) -> list[str]:
    """The command line for the JSON, with an absolute ``--out`` folder (this machine's) shown as ``$OUT``."""
    shown = list(argv)
    for i, a in enumerate(shown[:-1]):
        if a == "--out" and Path(shown[i + 1]).is_absolute():
            shown[i + 1] = "$OUT"
    return shown


def main(argv: list[str] | None = None) -> int:
    """Run (or reuse) the demo per seed, evaluate with K samples, write the JSON and the figure, print."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="outputs/bench_tts", help="one demo folder per seed (seed<N>)")
    parser.add_argument("--num_samples", type=int, default=8)
    parser.add_argument("--temperature", type=float, default=DemoConfig().temperature,
                        help="sampling temperature (default: the demo's GRPO temperature)")
    parser.add_argument("--aggregate", default="greedy,medoid,vote")
    parser.add_argument("--abstain_km", type=float, default=200.0)
    parser.add_argument("--json", default=str(RESULTS / "test_time_scaling.json"))
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    aggregates = args.aggregate.split(",")
    if "greedy" not in aggregates:
        parser.error("--aggregate must include greedy (the reference row)")
    root = Path(args.out)
    results, figure = [], None
    for seed in args.seeds:
        out = (root / f"seed{seed}").resolve()
        cfg, summary, reused = demo_for_seed(out, seed, args.quiet)
        ev = evaluate(cfg, out, args)
        results.append(seed_result(seed, ev["metrics"], summary, reused)
                       | {"diagnostics": diagnostics(ev["dir"], aggregates)})
        if figure is None:
            figure = ev["dir"] / "confidence.png"
        payload = {
            "what": "greedy vs medoid vs vote over K sampled answers, the CPU demo's GRPO checkpoint, held-out photos",
            "recipe": asdict(cfg) | {"out_dir": None, "seed": None},
            "eval": {"num_samples": args.num_samples, "temperature": args.temperature, "aggregate": args.aggregate,
                     "abstain_km": args.abstain_km, "max_new_tokens": cfg.eval_max_new_tokens,
                     "median_km": "median_km_worst_case: an unparseable answer counts as 20,015 km, as in the demo"},
            "results": results,
            "verdict": verdict(results, aggregates),
            "provenance": provenance(_shown_argv(sys.argv if argv is None else [sys.argv[0], *argv])),
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    if figure is not None and figure.is_file():
        shutil.copyfile(figure, Path(args.json).with_name("test_time_scaling_confidence.png"))
    print(f"\n=== test-time scaling, K = {args.num_samples}, T = {args.temperature} (held-out photos) ===")
    print(table(results, aggregates))
    print(json.dumps(verdict(results, aggregates), indent=1))
    print(json.dumps({r["seed"]: r["diagnostics"] for r in results}, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
