"""Markdown tables of ``bench/results/scale.json`` (written by ``bench/bench_scale.py``) for docs/scale.md.

Every number in the tables is read from the JSON: measured values as recorded, extrapolations from the JSON's
linear fits (``a + b * rows``). Usage::

    python bench/scale_tables.py [bench/results/scale.json]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

STEP_NAMES = {
    "prepare_mp16pro": "`geo-r prepare --format mp16pro`",
    "prepare_osv5m": "`geo-r prepare --format osv5m`",
    "validate": "`geo-r validate`",
    "grpo_first_build": "GRPO start-up, 1 process, first build",
    "grpo_from_cache": "GRPO start-up, 1 process, from the cache",
    "grpo_torchrun2_first_build": "GRPO start-up, `torchrun` x2, first build",
    "grpo_torchrun2_from_cache": "GRPO start-up, `torchrun` x2, from the cache",
    "mine_hard": "`geo-r mine-hard`",
    "eval": "`geo-r eval --predictions` (+ explorer)",
}
ORDER = list(STEP_NAMES)


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _ranks(run: dict[str, Any]) -> str:
    return "; ".join(f"{p['role']} {_num(p['peak_rss_mb'])} / {_num(p['peak_anon_mb'])}" for p in run["per_rank"])


def measured_table(runs: list[dict[str, Any]]) -> str:
    """One row per measured run, grouped by step, then rows, after before before."""
    lines = ["| step | rows | code | wall s | CPU s | first step s | per rank: peak RSS / anonymous MB | other |",
             "|---|---|---|---|---|---|---|---|"]
    key = {name: i for i, name in enumerate(ORDER)}
    for r in sorted(runs, key=lambda r: (key.get(r["step"], 99), r["rows"], r["code"] != "after")):
        other = []
        if "cache_mb" in r:
            other.append(f"cache {_num(r['cache_mb'], 1)} MB")
        if "explorer_mb" in r:
            other.append(f"explorer {_num(r['explorer_mb'], 1)} MB (largest file {_num(r['largest_explorer_file_mb'], 1)})")
        if r.get("teardown_abort_after_training"):
            other.append("a rank aborted at exit after training (gloo teardown)")
        lines.append(f"| {STEP_NAMES.get(r['step'], r['step'])} | {r['rows']:,} | {r['code']} | {_num(r['wall_s'], 1)} "
                     f"| {_num(r['cpu_s'], 1)} | {_num(r['first_step_s'], 1)} | {_ranks(r)} | {', '.join(other)} |")
    return "\n".join(lines)


def fits_table(fits: dict[str, Any]) -> str:
    """Per step and code: the fitted growth and its value at the target size (4.12M rows, or 210k for eval)."""
    lines = ["| step | code | sizes fitted | at rows | wall s | CPU s | first step s | max rank peak RSS MB | "
             "max rank anonymous MB | anonymous MB per 1M rows | wall log-log slope |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    key = {name: i for i, name in enumerate(ORDER)}
    blocks = [(name, block) for name, block in fits.items() if "/" in name]
    for name, block in sorted(blocks, key=lambda kv: (key.get(kv[0].split("/")[0], 99), kv[0].split("/")[1] != "after")):
        step, code = name.split("/")

        def at(metric: str, b: dict[str, Any] = block) -> str:
            return _num(b[metric]["at_target"]) if metric in b else "-"

        anon = block.get("max_rank_peak_anon_mb", {}).get("fit")
        slope = block.get("wall_s", {}).get("fit", {}) or {}
        lines.append(
            f"| {STEP_NAMES.get(step, step)} | {code} | {', '.join(f'{x:,}' for x in block['rows'])} | "
            f"{block['extrapolated_to_rows']:,} | {at('wall_s')} | {at('cpu_s')} | {at('first_step_s')} | "
            f"{at('max_rank_peak_rss_mb')} | {at('max_rank_peak_anon_mb')} | "
            f"{_num(anon['b_per_row'] * 1e6, 1) if anon else '-'} | {_num(slope.get('loglog_slope'), 2)} |")
    return "\n".join(lines)


def two_largest(block: dict[str, Any], metric: str) -> float | None:
    """``metric`` at the target size on the line through the two largest sizes (small sizes' noise left out)."""
    if metric not in block or len(block["rows"]) < 2:
        return None
    (x1, x2), (y1, y2) = block["rows"][-2:], block[metric]["measured"][-2:]
    return y2 + (y2 - y1) / (x2 - x1) * (block["extrapolated_to_rows"] - x2)


def startup_table(fits: dict[str, Any]) -> str:
    """Start-up to the first step and CPU: the least-squares fit and the line through the two largest sizes."""
    lines = ["| step | code | measured first step s | at rows | first step s: fit / two largest | "
             "CPU s: fit / two largest |", "|---|---|---|---|---|---|"]
    for name, block in fits.items():
        if "/" not in name or "first_step_s" not in block:
            continue
        step, code = name.split("/")
        lines.append(
            f"| {STEP_NAMES.get(step, step)} | {code} | "
            f"{', '.join(_num(v, 1) for v in block['first_step_s']['measured'])} | {block['extrapolated_to_rows']:,} | "
            f"{_num(block['first_step_s']['at_target'])} / {_num(two_largest(block, 'first_step_s'))} | "
            f"{_num(block['cpu_s']['at_target'])} / {_num(two_largest(block, 'cpu_s'))} |")
    return "\n".join(lines)


def main() -> None:
    import json

    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results" / "scale.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    print(f"<!-- {path.name}: commit {data['provenance']['git_commit'][:10]}, {data['provenance']['utc']}, "
          f"complete: {data.get('complete', True)} -->\n")
    print("### Measured\n")
    print(measured_table(data["runs"]))
    print("\n### Fitted and extrapolated\n")
    print(fits_table(data["fits"]))
    print("\n### Start-up\n")
    print(startup_table(data["fits"]))
    print("\n### Node (from the fits)\n")
    print("```json\n" + json.dumps(data["fits"].get("node_8_ranks_mp16pro", {}), indent=2) + "\n```")


if __name__ == "__main__":
    main()
