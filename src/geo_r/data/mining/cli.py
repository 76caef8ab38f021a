"""Geo-R hard-sample mining: keep the training samples far from every place the base model already gets right.

Run the base model on the training set with the evaluation harness (its predictions.jsonl has ``id`` and
``completion``; lines with ``pred_lat``/``pred_lon`` instead of a completion work too). Samples answered within
--hotspot_km of the truth are hotspots; every sample within --radius_km of a hotspot is dropped (the hotspots
too); the rest is written. An output keeps its data file's image paths, so train on it with the same
--image_folders. Exit code 0 when the data files held usable samples (the hard subset may be empty).

Example (Geo-R's recipe, then 200k of the hard samples):
  geo-r mine-hard --data_file_paths mp16_500k.jsonl --predictions eval_3b/predictions.jsonl \\
      --out mp16_hard.jsonl --hotspot_km 200 --radius_km 200 --max_samples 200000
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TextIO


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``geo-r mine-hard``."""
    parser.add_argument(
        "--data_file_paths",
        required=True,
        help="colon-separated training files (jsonl or JSON array), as for GRPO",
    )
    parser.add_argument(
        "--predictions", required=True, help="the base model's predictions jsonl (id + completion)"
    )
    parser.add_argument("--out", required=True, help="output jsonl, one per data file (colon-separated)")
    parser.add_argument(
        "--hotspot_km",
        type=float,
        default=200.0,
        help="a sample is a hotspot when its prediction is within this many km of the truth (default: 200)",
    )
    parser.add_argument(
        "--radius_km",
        type=float,
        default=200.0,
        help="drop every sample within this many km of a hotspot (default: 200, Geo-R's value)",
    )
    parser.add_argument(
        "--max_samples", type=int, default=None, help="keep at most this many hard samples, chosen at random"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the --max_samples choice (default: 0)")
    parser.add_argument("--summary_json", default=None, help="also write the summary as JSON to this path")
    parser.add_argument(
        "--no_progress",
        action="store_true",
        help="no progress output (by default a bar on a terminal, else a line every 30 s on stderr)",
    )


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Mine, print the summary, return the exit code."""
    from geo_r.data.report import DataConfigError

    from .job import MiningInputError, mine_hard_files

    out = out or sys.stdout
    try:
        report = mine_hard_files(
            args.data_file_paths,
            args.predictions,
            args.out,
            hotspot_km=args.hotspot_km,
            radius_km=args.radius_km,
            max_samples=args.max_samples,
            seed=args.seed,
            progress="off" if getattr(args, "no_progress", False) else "auto",
        )
    except (MiningInputError, DataConfigError) as exc:
        print(f"geo-r mine-hard: error: {exc}", file=sys.stderr)
        return 1
    print(report.format_text(), file=out)
    if args.summary_json:
        Path(args.summary_json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.summary_json).write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    if report.samples == 0:
        print("geo-r mine-hard: error: no usable samples in the data files", file=sys.stderr)
        return 1
    return 0
