"""Record the wall times of setup.sh's venv installs and run_tests.sh's tiers, read from their logs.

Each log is the output of ``bash -c 'time <command>'`` (the ``real`` line) or of run_tests.sh (its
``==> [tests: TIER] exit RC in N s`` lines). Usage::

    python bench/ci_timings.py --out bench/results/ci_timings.json \\
        gpu_venv_cold="bash setup.sh --gpu-venv-only"=/tmp/gpu-cold.log ...

Each argument is ``name="command"=log``; the JSON holds per name the command, the seconds and the log's file name,
plus the provenance block (run it with the GPU venv's python to record that stack's versions).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import provenance  # noqa: E402

_REAL = re.compile(r"^real\s+(\d+)m([\d.]+)s$", re.M)
_TIER = re.compile(r"^==> \[tests: (\w+)\] exit (\d+)(?: in|,) (\d+) s", re.M)  # "in N s" / ", N s after ..."
_WRAPPER = re.compile(r"^CI rc=(\d+) wall=(\d+)s", re.M)  # a wrapper's own closing line, when it wrote one
_PYTEST = re.compile(r"=+ (.*?) in ([\d.]+)s")


def read_log(path: Path) -> dict:
    """``real`` seconds, per-tier seconds and exit codes, and pytest's summary line found in the log."""
    text = path.read_text(encoding="utf-8", errors="replace")
    found: dict = {}
    if m := _REAL.findall(text):
        minutes, seconds = m[-1]
        found["wall_s"] = round(int(minutes) * 60 + float(seconds), 1)
    tiers = {name: {"exit": int(rc), "seconds": int(s)} for name, rc, s in _TIER.findall(text)}
    if tiers:
        found["tiers"] = tiers
    if m := _WRAPPER.findall(text):
        found["wall_s"], found["exit"] = float(m[-1][1]), int(m[-1][0])
    if m := _PYTEST.findall(text):
        found["pytest"] = m[-1][0] if len(m) == 1 else [f"{summary} in {secs} s" for summary, secs in m]
    if not found:
        raise SystemExit(f"{path}: no 'real' time, tier line or pytest summary")
    return found


def main(argv: list[str] | None = None) -> int:
    """Parse ``name=command=log`` arguments and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--note", default="")
    parser.add_argument("runs", nargs="+", help='name="command"=log')
    args = parser.parse_args(argv)
    runs = {}
    for item in args.runs:
        name, rest = item.split("=", 1)
        command, log = rest.rsplit("=", 1)
        runs[name] = {"command": command, "log": Path(log).name, **read_log(Path(log))}
    result = {"provenance": provenance(), "note": args.note, "runs": runs}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(runs, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
