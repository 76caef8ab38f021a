"""bench/bench_demo_reproduce.py: the README's command in fresh clones, the tables side by side, their spread,
provenance, and the README table printed from the JSON (a stand-in demo script keeps this fast)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench" / "bench_demo_reproduce.py"

# Writes the summary geo-r demo writes; the SFT median grows by one km per run when COUNTER is set (a
# nondeterministic demo), and records which code ran (the clone's, from PYTHONPATH).
FAKE_DEMO = r"""#!/usr/bin/env bash
set -euo pipefail
n=0
if [[ -n "${COUNTER:-}" ]]; then n=$(cat "$COUNTER" 2>/dev/null || echo 0); echo $((n + 1)) > "$COUNTER"; fi
mkdir -p "$DEMO_DIR"
python - "$n" <<'PY'
import json, os, sys
from pathlib import Path
n = int(sys.argv[1])
row = lambda med, rew: {"parse_rate": 100.0, "acc@25km": 32.6, "acc@200km": 32.6, "acc@750km": 41.0,
                        "acc@2500km": 59.0, "median_km": med, "mean_km": 3000.0, "mean_reward": rew}
rows = {"untrained": row(20015.0, 0.0), "sft": row(1660.0 + n, 1.995), "grpo": row(1050.0, 2.125)}
out = Path(os.environ["DEMO_DIR"])
(out / "demo_summary.json").write_text(json.dumps({"rows": rows, "table": f"table {n}",
                                                   "seed": os.environ["SEED"]}))
print(os.environ["PYTHONPATH"].split(os.pathsep)[0])
print(os.environ.get("OMP_NUM_THREADS", "unset"))
PY
"""


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "run_scripts").mkdir(parents=True)
    (repo / "run_scripts" / "run_demo.sh").write_text(FAKE_DEMO, encoding="utf-8")
    for cmd in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):
        subprocess.run(["git", *cmd], cwd=repo, check=True)
    return repo


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=300,
                          env=env)


def test_identical_runs_give_the_readme_table(tmp_path: Path) -> None:
    repo, out = _repo(tmp_path), tmp_path / "r.json"
    proc = _run("--repo", str(repo), "--out", str(out), "--runs", "2", "--keep")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["identical"] is True and len(result["runs"]) == 2 and result["seed"] == 0
    assert result["spread"]["sft"]["median_km"] == 0.0
    assert result["packages"]["torch"] and result["machine"]["cpu_count"] and "bench_demo_reproduce.py" in result["command"]
    assert result["machine"]["torch_threads"] and result["machine"]["torch_cpu_capability"]  # they change the numbers
    assert result["runs"][0]["clone_commit"] == result["repo_commit"]
    kept = Path(proc.stdout.split("clones and logs kept in ")[1].split()[0])
    # each run used its own fresh clone's code, with torch's default threads (the caller's OMP_NUM_THREADS=1
    # would change the numbers a user sees)
    assert (kept / "clone0.log").read_text().split() == [str(kept / "clone0" / "src"), "unset"]
    assert result["threads_in_runs"] == "torch default" and result["runs"][0]["torch_threads"] >= 1
    shutil.rmtree(kept)
    printed = _run("--markdown", str(out)).stdout
    assert "| after SFT | 100.0% | 32.6% | 32.6% | 41.0% | 59.0% | 1,660 | 1.995 |" in printed
    assert "identical in all 2 fresh-clone run(s), seed 0" in printed


def test_runs_that_differ_show_their_range(tmp_path: Path) -> None:
    repo, out = _repo(tmp_path), tmp_path / "r.json"
    proc = _run("--repo", str(repo), "--out", str(out), "--runs", "3", "--threads", "1", "--keep",
                env={"COUNTER": str(tmp_path / "counter")})
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["identical"] is False and result["spread"]["sft"]["median_km"] == 2.0
    assert result["spread"]["grpo"]["median_km"] == 0.0 and "DIFFERENT tables in 3 run(s)" in proc.stdout
    kept = Path(proc.stdout.split("clones and logs kept in ")[1].split()[0])
    assert (kept / "clone2.log").read_text().split()[1] == "1" and result["threads_in_runs"] == 1
    shutil.rmtree(kept)
    printed = _run("--markdown", str(out)).stdout
    assert "| after SFT | 100.0% | 32.6% | 32.6% | 41.0% | 59.0% | 1,660-1,662 | 1.995 |" in printed
    assert "ranges are min-max over 3 fresh-clone run(s)" in printed
