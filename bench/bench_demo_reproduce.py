"""Do the README's demo numbers reproduce? The README's main command in N fresh clones, tables side by side.

    python bench/bench_demo_reproduce.py                       # 2 fresh clones of HEAD, seed 0 (~6 min each)
    python bench/bench_demo_reproduce.py --runs 3 --seed 1
    python bench/bench_demo_reproduce.py --markdown bench/results/demo_reproduce.json   # the table of docs/demo.md

Each run is ``git clone`` of this repository's HEAD into a temporary folder, then the README's quick-start
command there (``bash run_scripts/run_demo.sh``, ``SEED`` and ``DEMO_DIR`` set), with the environment that is
installed now (the clone's ``src`` first on ``PYTHONPATH``, so the clone's code runs). Runs go one after the
other, never in parallel (they would share the cores and change nothing but the time). The JSON keeps each
run's table and rows, the spread (max - min) of every number across the runs, whether all tables were
identical, and the command / package versions / machine (:func:`provenance.provenance`).
``--markdown`` prints the docs/demo.md table from a JSON: the numbers when the runs agree, ``min-max`` where not.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from provenance import provenance  # bench/provenance.py (scripts run as files)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "results" / "demo_reproduce.json"
DEMO_COMMAND = "bash run_scripts/run_demo.sh"
SUMMARY = "demo_summary.json"  # geo_r.demo.pipeline.SUMMARY_FILE
STAGES = {"untrained": "untrained", "sft": "after SFT", "grpo": "after GRPO"}
COLUMNS = (("parse_rate", "parse rate", "pct"), ("acc@25km", "acc@25 km", "pct"),
           ("acc@200km", "acc@200 km", "pct"), ("acc@750km", "acc@750 km", "pct"),
           ("acc@2500km", "acc@2500 km", "pct"), ("median_km", "median km", "km"),
           ("mean_reward", "mean reward (of 3)", "reward"))


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def run_in_fresh_clone(
    repo: Path, work: Path, seed: int, command: str, extra: list[str], threads: int | None = None
) -> dict[str, Any]:
    """Clone ``repo``'s HEAD into ``work``, run ``command`` there, return its demo summary plus wall time.

    ``threads`` None runs with torch's default thread count, as a user's shell does (``OMP_NUM_THREADS`` and
    ``MKL_NUM_THREADS`` are removed: the thread count changes the numbers); else it sets both."""
    subprocess.run(["git", "clone", "--quiet", str(repo), str(work)], check=True)
    demo_dir = work / "outputs" / "demo_full"
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env = {**env, "SEED": str(seed), "DEMO_DIR": str(demo_dir),
           "PYTHONPATH": os.pathsep.join([str(work / "src"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "VIRTUAL_ENV": os.environ.get("VIRTUAL_ENV", sys.prefix),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    log = work.parent / f"{work.name}.log"
    t0 = time.monotonic()
    with log.open("w", encoding="utf-8") as f:
        proc = subprocess.run(["bash", "-c", " ".join([command, *map(shlex.quote, extra)])], cwd=work, env=env,
                              stdout=f, stderr=subprocess.STDOUT)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise SystemExit(f"bench_demo_reproduce: '{command}' failed in {work} (exit {proc.returncode}):\n{tail}")
    summary = json.loads((demo_dir / SUMMARY).read_text(encoding="utf-8"))
    probe = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"], env=env,
                           capture_output=True, text=True)
    return {"clone_commit": _git("rev-parse", "HEAD", cwd=work), "wall_s": round(wall, 1),
            "torch_threads": int(probe.stdout) if probe.returncode == 0 else None,
            "rows": summary["rows"], "table": summary["table"]}


def spread(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per stage and metric: max - min across the runs (0.0 where every run printed the same value)."""
    out: dict[str, dict[str, float]] = {}
    for stage in runs[0]["rows"]:
        for key in runs[0]["rows"][stage]:
            values = [r["rows"][stage][key] for r in runs]
            if all(isinstance(v, int | float) for v in values):
                out.setdefault(stage, {})[key] = max(values) - min(values)
    return out


def _fmt(value: float, kind: str) -> str:
    return {"pct": f"{value:.1f}%", "km": f"{value:,.0f}", "reward": f"{value:.3f}"}[kind]


def markdown(result: dict[str, Any]) -> str:
    """The docs/demo.md table: each cell the runs' common value, or ``min-max`` where they differ (as printed)."""
    head = ["model", *(label for _, label, _ in COLUMNS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    runs = result["runs"]
    for stage, label in STAGES.items():
        if stage not in runs[0]["rows"]:
            continue
        cells = [label]
        for key, _, kind in COLUMNS:
            values = [r["rows"][stage].get(key) for r in runs]
            if any(v is None for v in values):
                cells.append("n/a")
                continue
            shown = sorted({_fmt(v, kind) for v in values}, key=lambda s: float(s.rstrip("%").replace(",", "")))
            cells.append(shown[0] if len(shown) == 1 else f"{shown[0]}-{shown[-1]}")
        lines.append("| " + " | ".join(cells) + " |")
    n = len(runs)
    note = ("identical in all" if result["identical"] else "ranges are min-max over") + f" {n} fresh-clone run(s)"
    return "\n".join(lines) + f"\n\n({note}, seed {result['seed']}; `{result['demo_command']}`.)"


def main(argv: list[str] | None = None) -> int:
    """Run the demo in fresh clones (or print the table of an earlier JSON with --markdown)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2, help="fresh clones, run one after the other (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="SEED for run_demo.sh (default 0, the README's)")
    parser.add_argument("--repo", type=Path, default=REPO, help="repository to clone (default: this one)")
    parser.add_argument("--command", default=DEMO_COMMAND, help=f"run in each clone (default: {DEMO_COMMAND})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON (default: {DEFAULT_OUT})")
    parser.add_argument("--threads", type=int, default=None,
                        help="OMP_NUM_THREADS for the runs (default: unset, torch's default, as the README's "
                        "command runs in a user's shell; the thread count changes the numbers)")
    parser.add_argument("--keep", action="store_true", help="keep the clones and their logs (path printed)")
    parser.add_argument("--markdown", type=Path, default=None, metavar="JSON",
                        help="only print the docs/demo.md table of an earlier result JSON")
    parser.add_argument("demo_args", nargs="*", help="extra arguments for the command (after --)")
    args = parser.parse_args(argv)
    if args.markdown is not None:
        print(markdown(json.loads(args.markdown.read_text(encoding="utf-8"))))
        return 0
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    if _git("status", "--porcelain", "--untracked-files=no", cwd=args.repo):
        print("bench_demo_reproduce: warning: uncommitted changes are not in the clones (they run HEAD)",
              file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="geo_r_reproduce_"))
    runs = []
    try:
        for i in range(args.runs):
            print(f"=== run {i + 1}/{args.runs}: fresh clone -> {work / f'clone{i}'}", flush=True)
            runs.append(run_in_fresh_clone(args.repo, work / f"clone{i}", args.seed, args.command, args.demo_args,
                                           args.threads))
            print(runs[-1]["table"], flush=True)
    finally:
        if args.keep:
            print(f"clones and logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    result = {**provenance([sys.argv[0], *argv] if argv is not None else None),
              "demo_command": args.command, "seed": args.seed,
              "threads_in_runs": args.threads if args.threads is not None else "torch default",
              "repo_commit": _git("rev-parse", "HEAD", cwd=args.repo),
              "runs": runs, "spread": spread(runs),
              "identical": all(r["table"] == runs[0]["table"] for r in runs)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print("\n" + markdown(result))
    print(f"\n{'identical' if result['identical'] else 'DIFFERENT'} tables in {args.runs} run(s); wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
