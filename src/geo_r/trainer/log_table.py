"""Print a run's per-step log (trainer_state.json) as a table: each reward on its own, plus the geo metrics.

    python -m geo_r.trainer.log_table checkpoints/rl/RUN/trainer_state.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

_FIXED = ["reward", "reward_std", "geo/parse_rate", "geo/distance_km_median", "geo/acc@2500km",
          "geo/best_of_group_acc@750km", "geo/group_spread_km", "kl", "loss"]


def log_rows(state_path: str | Path) -> list[dict]:
    """The training log entries (those with a reward) of a trainer_state.json."""
    state = json.loads(Path(state_path).read_text(encoding="utf-8"))
    return [e for e in state.get("log_history", []) if "reward" in e]


def format_table(rows: Sequence[dict]) -> str:
    """A plain-text table: step, total reward, each ``rewards/<name>/mean``, then the geo metrics and loss."""
    if not rows:
        return "(no training log entries with rewards)"
    reward_cols = sorted({k for r in rows for k in r if k.startswith("rewards/") and k.endswith("/mean")})
    cols = ["step", *(["reward", "reward_std"]), *reward_cols, *[c for c in _FIXED[2:] if any(c in r for r in rows)]]
    head = [c.removeprefix("rewards/").removesuffix("/mean") if c.startswith("rewards/") else c for c in cols]
    widths = [max(len(h), 8) for h in head]

    def cell(row: dict, col: str) -> str:
        v = row.get(col)
        if v is None:
            return "-"
        return str(v) if isinstance(v, int) else f"{v:.4g}"

    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True))]
    lines += ["  ".join(cell(r, c).rjust(w) for c, w in zip(cols, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table for the trainer_state.json given on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trainer_state", help="path to trainer_state.json (in the output dir or a checkpoint-N)")
    args = parser.parse_args(argv)
    print(format_table(log_rows(args.trainer_state)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
