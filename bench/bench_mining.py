"""Hard-sample mining at Geo-R's scale: ``geo-r mine-hard`` on 500k synthetic samples, and its spatial step
side by side with the naive all-pairs baseline.

Inputs (seeded, so the same command gives the same files): the 100k real MP16 coordinates of
``../shared/data`` resampled with ~25 km jitter to --n samples (uniform points on the sphere when the file is
absent), written as a GRPO jsonl (id, image, lat, lon, country_code); and a predictions jsonl in the
evaluation harness's layout (id + completion rendered with ``geo_r.prompts.render_answer``): 10 % answered
within 0-150 km of the truth (hotspots), 70 % 300-3000 km off, 10 % unparseable text, 10 % not predicted.

Measured, in one process unless said otherwise:
* ``geo-r mine-hard`` end to end as a subprocess (import, read data, parse every completion, mine, write),
  with its own stage timings;
* the spatial step "which samples lie within R km of a hotspot": ``within_radius`` (one cKDTree query on
  unit vectors) on all samples, against THE BASELINE, a numpy-vectorised all-pairs haversine in chunks
  (the O(samples x hotspots) loop it replaces), on a subsample of --naive_n samples against every hotspot;
  both masks are compared on the subsample and the baseline's full-size time is extrapolated linearly.

Usage: ``python bench/bench_mining.py [--n 500000] [--naive_n 5000] [--quick] [--out bench/results/bench_mining.json]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from coordinates import destination, read_latlon_csv  # bench/coordinates.py (scripts run as files)
from provenance import provenance

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "mp16_coordinates_100k.csv"
DEFAULT_OUT = REPO / "bench" / "results" / "bench_mining.json"
QUICK_N = 20_000
JUNK = "I cannot tell where this photo was taken."


def make_samples(n: int, seed: int, data: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """``n`` true points: real MP16 coordinates resampled with jitter, else uniform on the sphere."""
    rng = np.random.default_rng(seed)
    real = read_latlon_csv(data, "bench_mining") if data.is_file() else None
    if real is None:
        lat = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
        return lat, rng.uniform(-180, 180, n), "uniform on the sphere (MP16 file not found)"
    pick = rng.integers(0, len(real[0]), n)
    lat, lon = destination(
        real[0][pick], real[1][pick], np.abs(rng.normal(0, 25, n)), rng.uniform(0, 2 * math.pi, n)
    )
    return lat, lon, f"{data.name} resampled with |N(0, 25 km)| jitter"


def write_inputs(
    folder: Path, lat: np.ndarray, lon: np.ndarray, seed: int
) -> tuple[Path, Path, dict[str, int]]:
    """The data jsonl and the predictions jsonl (mix in the module docstring)."""
    from geo_r.prompts import render_answer

    rng = np.random.default_rng(seed + 1)
    n = len(lat)
    kinds = rng.choice(["near", "far", "junk", "none"], size=n, p=[0.1, 0.7, 0.1, 0.1])
    bearing = rng.uniform(0, 2 * math.pi, n)
    km = np.where(kinds == "near", rng.uniform(0, 150, n), rng.uniform(300, 3000, n))
    plat, plon = destination(lat, lon, km, bearing)
    data, preds = folder / "train.jsonl", folder / "predictions.jsonl"
    with open(data, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(
                json.dumps(
                    {
                        "id": f"s{i}",
                        "image": f"{i % 1000:03d}/{i}.jpg",
                        "lat": round(float(lat[i]), 6),
                        "lon": round(float(lon[i]), 6),
                        "country_code": "XX",
                    }
                )
                + "\n"
            )
    with open(preds, "w", encoding="utf-8") as f:
        for i in range(n):
            if kinds[i] == "none":
                continue
            text = (
                JUNK
                if kinds[i] == "junk"
                else render_answer("Country", "Region", "City", float(plat[i]), float(plon[i]))
            )
            f.write(json.dumps({"id": f"s{i}", "completion": text}) + "\n")
    return data, preds, {k: int((kinds == k).sum()) for k in ("near", "far", "junk", "none")}


def naive_within_radius(
    lat: np.ndarray, lon: np.ndarray, clat: np.ndarray, clon: np.ndarray, radius_km: float
) -> np.ndarray:
    """THE BASELINE: every sample against every hotspot with vectorised haversine, in chunks of rows."""
    from geo_r.geo.distance import haversine_km

    out = np.zeros(len(lat), dtype=bool)
    chunk = max(1, 2_000_000 // max(1, len(clat)))
    for s in range(0, len(lat), chunk):
        d = haversine_km(lat[s : s + chunk, None], lon[s : s + chunk, None], clat[None, :], clon[None, :])
        out[s : s + chunk] = (np.asarray(d) <= radius_km).any(axis=1)
    return out


def run_cli(
    data: Path, preds: Path, out: Path, radius_km: float, hotspot_km: float, summary: Path
) -> tuple[float, dict[str, Any], str]:
    """``geo-r mine-hard`` as a subprocess: wall seconds, its JSON summary, its printed summary."""
    cmd = [
        sys.executable,
        "-m",
        "geo_r.cli",
        "mine-hard",
        "--data_file_paths",
        str(data),
        "--predictions",
        str(preds),
        "--out",
        str(out),
        "--radius_km",
        str(radius_km),
        "--hotspot_km",
        str(hotspot_km),
        "--summary_json",
        str(summary),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"bench_mining: geo-r mine-hard failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, json.loads(summary.read_text(encoding="utf-8")), proc.stdout


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the tables, write the JSON."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=500_000, help="samples (default: 500000)")
    parser.add_argument(
        "--naive_n", type=int, default=5_000, help="samples the naive baseline checks (default: 5000)"
    )
    parser.add_argument("--radius_km", type=float, default=200.0)
    parser.add_argument("--hotspot_km", type=float, default=200.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="LAT,LON csv of real coordinates")
    parser.add_argument(
        "--quick", action="store_true", help=f"small run (--n {QUICK_N}, --naive_n 1000) for smoke tests"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.naive_n = min(args.n, QUICK_N), min(args.naive_n, 1000)

    from geo_r.data.mining import mine_hard, within_radius

    lat, lon, source = make_samples(args.n, args.seed, args.data)
    with tempfile.TemporaryDirectory(prefix="bench_mining_") as tmp:
        folder = Path(tmp)
        t = time.perf_counter()
        data, preds, kinds = write_inputs(folder, lat, lon, args.seed)
        write_s = time.perf_counter() - t
        sizes = {"data_mb": data.stat().st_size / 1e6, "predictions_mb": preds.stat().st_size / 1e6}
        wall, cli_summary, printed = run_cli(
            data, preds, folder / "hard.jsonl", args.radius_km, args.hotspot_km, folder / "summary.json"
        )

    # The spatial step, in this process, on the same truth; hotspots from the kinds' exact predictions.
    rng = np.random.default_rng(args.seed + 1)
    kind = rng.choice(["near", "far", "junk", "none"], size=args.n, p=[0.1, 0.7, 0.1, 0.1])
    hot = kind == "near"  # near predictions are 0-150 km off, so all of them are within hotspot_km = 200
    clat, clon = lat[hot], lon[hot]
    t = time.perf_counter()
    fast = within_radius(lat, lon, clat, clon, args.radius_km)
    fast_s = time.perf_counter() - t
    sub = np.random.default_rng(args.seed + 2).choice(args.n, size=min(args.naive_n, args.n), replace=False)
    t = time.perf_counter()
    naive = naive_within_radius(lat[sub], lon[sub], clat, clon, args.radius_km)
    naive_s = time.perf_counter() - t
    agree = bool(np.array_equal(naive, fast[sub]))
    naive_full_s = naive_s * args.n / len(sub)
    t = time.perf_counter()
    result = mine_hard(lat, lon, np.flatnonzero(hot), clat, clon, args.hotspot_km, args.radius_km)
    mine_s = time.perf_counter() - t

    rows = [
        ("geo-r mine-hard, end to end (subprocess)", args.n, wall),
        ("  read data (stage)", args.n, cli_summary["seconds"]["read data"]),
        (
            "  read + parse predictions (stage)",
            sum(kinds[k] for k in ("near", "far", "junk")),
            cli_summary["seconds"]["read predictions"],
        ),
        ("  mine (stage)", args.n, cli_summary["seconds"]["mine"]),
        ("  write hard subset (stage)", cli_summary["written"], cli_summary["seconds"]["write"]),
        ("within_radius, KD-tree, all samples", args.n, fast_s),
        ("mine_hard on arrays, all samples", args.n, mine_s),
        (f"BASELINE all-pairs haversine, {len(sub)} samples", len(sub), naive_s),
        ("BASELINE extrapolated to all samples", args.n, naive_full_s),
    ]
    print(
        f"# Hard-sample mining: {args.n} samples ({source}), {int(hot.sum())} hotspots, R = {args.radius_km:g} km\n"
    )
    print("| step | items | seconds | us / item |\n|---|---:|---:|---:|")
    for name, items, secs in rows:
        print(f"| {name} | {items} | {secs:.2f} | {1e6 * secs / max(items, 1):.2f} |")
    print(
        f"\nKD-tree vs baseline masks on the {len(sub)}-sample subsample: {'identical' if agree else 'DIFFERENT'}; "
        f"speed-up on the spatial step {naive_full_s / max(fast_s, 1e-9):.0f}x"
    )
    print(
        f"Kept (hard): {int(result.keep.sum())} of {args.n}; input files {sizes['data_mb']:.0f} MB + "
        f"{sizes['predictions_mb']:.0f} MB written in {write_s:.1f} s; peak RSS of geo-r mine-hard "
        f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MB\n"
    )
    print(printed)
    out = {
        "n": args.n,
        "quick": args.quick,
        "source": source,
        "radius_km": args.radius_km,
        "hotspot_km": args.hotspot_km,
        "prediction_kinds": kinds,
        "input_sizes_mb": sizes,
        "hotspots": int(hot.sum()),
        "kept": int(result.keep.sum()),
        "cli_wall_s": wall,
        "cli_summary": cli_summary,
        "spatial": {
            "kdtree_s": fast_s,
            "mine_hard_arrays_s": mine_s,
            "naive_n": len(sub),
            "naive_s": naive_s,
            "naive_extrapolated_s": naive_full_s,
            "masks_identical": agree,
        },
        "peak_rss_mb_this_process": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_rss_mb_cli": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        **provenance([sys.argv[0], *argv] if argv is not None else None),  # command, packages, machine, commit
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"JSON: {args.out}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
