"""Does GRPO help? The full CPU demo over several seeds: held-out mean reward and median km, SFT vs GRPO.

    python bench/bench_demo_learning.py                     # seeds 0 1 2, the README's recipe
    python bench/bench_demo_learning.py --seeds 0 --grpo_steps 20 --out outputs/bench_demo

Each seed runs the whole demo (:func:`geo_r.demo.pipeline.run_demo`: new tiny model, new toy world, SFT,
GRPO, three evaluations). The after-SFT row is the baseline GRPO must beat, measured in the same run on
the same held-out photos. Prints one table per seed plus a verdict, and writes
``<out>/demo_learning.json`` (every row, the recipe, timings and the verdict per seed).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, fields
from pathlib import Path

from geo_r.demo.pipeline import DemoConfig, run_demo
from provenance import provenance  # bench/provenance.py (scripts run as files)


def verdict(rows: dict) -> dict[str, bool]:
    """Whether GRPO beat SFT on held-out mean reward (higher) and median km (lower)."""
    sft, grpo = rows["sft"], rows["grpo"]
    return {
        "reward_improved": grpo["mean_reward"] > sft["mean_reward"],
        "median_improved": grpo["median_km"] < sft["median_km"],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the demo for each seed, print the tables and the verdict, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="outputs/bench_demo", help="one sub-folder per seed + the JSON")
    defaults = DemoConfig()
    for f in fields(DemoConfig):
        if f.name in ("out_dir", "seed", "extra_grpo_args"):
            continue
        value = getattr(defaults, f.name)
        parser.add_argument(f"--{f.name}", type=type(value), default=value)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    out = Path(args.out)
    results = []
    for seed in args.seeds:
        values = {f.name: getattr(args, f.name) for f in fields(DemoConfig)
                  if f.name not in ("out_dir", "seed", "extra_grpo_args")}
        cfg = DemoConfig(out_dir=str(out / f"seed{seed}"), seed=seed, **values)
        summary = run_demo(cfg, show_progress=not args.quiet)
        results.append({"seed": seed, "rows": summary["rows"], "table": summary["table"],
                        "timings_s": summary["timings_s"], **verdict(summary["rows"])})
        (out / "demo_learning.json").write_text(
            json.dumps({**provenance([sys.argv[0], *argv] if argv is not None else None),
                        "recipe": asdict(cfg) | {"out_dir": str(out)}, "results": results}, indent=2),
            encoding="utf-8")
    print("\n=== GRPO vs SFT on held-out photos ===")
    print("| seed | reward SFT -> GRPO | median km SFT -> GRPO | mean km SFT -> GRPO | acc@200 km SFT -> GRPO "
          "| demo time |")
    print("|---|---|---|---|---|---|")
    for r in results:
        s, g = r["rows"]["sft"], r["rows"]["grpo"]
        print(f"| {r['seed']} | {s['mean_reward']:.3f} -> {g['mean_reward']:.3f} | "
              f"{s['median_km']:,.0f} -> {g['median_km']:,.0f} | {s['mean_km']:,.0f} -> {g['mean_km']:,.0f} | "
              f"{s['acc@200km']:.1f}% -> {g['acc@200km']:.1f}% | "
              f"{r['timings_s']['total']:.0f} s |")
    ok = all(r["reward_improved"] and r["median_improved"] for r in results)
    print(f"GRPO beats SFT on reward and median km for every seed: {ok}  ({out / 'demo_learning.json'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
