"""What ``--candidates`` costs before training starts: reading a neighbours file, clustering, naming, prompts.

Input (seeded): --n query photos, each with --k neighbours best first, as ``geo-r retrieve`` writes them. True
points are the 100k real MP16 coordinates of ``../shared/data`` (uniform on the sphere when the file is
absent); per query, a few neighbours lie within 0-3 km of it (the same site), the rest are other MP16 points.

Measured in one process on the same file:
* THE BASELINE: ``json.loads`` of every line and nothing else (the floor of any reader of this file);
* ``attach_candidates`` on one record per query, as every command runs it: parse + validate each line,
  cluster it as it is read (greedy by score, 1 km, at most 10), then name every candidate by offline reverse
  geocoding in one batched call; the peak resident memory of the process after it (every query's candidates
  held at once);
* then, for attribution, the same stages one by one on the same file: ``read_neighbours`` alone,
  ``cluster_neighbours`` on the lists it returned, ``fill_chains``;
* ``question_with_candidates``: the prompt text of every query.
The machine is shared: ``load_average`` says how busy it was (wall-clock seconds, not CPU seconds).

Usage: ``python bench/bench_candidates.py [--n 100000] [--k 20] [--quick] [--out bench/results/bench_candidates.json]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from coordinates import destination, read_latlon_csv  # bench/coordinates.py (scripts run as files)
from provenance import provenance

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
DEFAULT_DATA = REPO.parent / "shared" / "data" / "mp16_coordinates_100k.csv"
DEFAULT_OUT = REPO / "bench" / "results" / "bench_candidates.json"


def write_neighbours(path: Path, n: int, k: int, seed: int, data: Path) -> str:
    """A neighbours file of ``n`` queries x ``k`` neighbours; returns where the points came from."""
    rng = np.random.default_rng(seed)
    real = read_latlon_csv(data, "bench_candidates") if data.is_file() else None
    if real is None:
        lat = np.degrees(np.arcsin(rng.uniform(-1, 1, 200_000)))
        real, source = (lat, rng.uniform(-180, 180, 200_000)), "uniform on the sphere (MP16 file not found)"
    else:
        source = f"{data.name}"
    pool_lat, pool_lon = real
    with open(path, "w", encoding="utf-8") as fh:
        for q in range(n):
            i = int(rng.integers(0, len(pool_lat)))
            n_near = int(rng.integers(0, 5))
            near_lat, near_lon = destination(np.full(n_near, pool_lat[i]), np.full(n_near, pool_lon[i]),
                                             rng.uniform(0, 3, n_near), rng.uniform(0, 2 * math.pi, n_near))
            other = rng.integers(0, len(pool_lat), k - n_near)
            lats = np.concatenate([near_lat, pool_lat[other]])
            lons = np.concatenate([near_lon, pool_lon[other]])
            scores = np.sort(rng.uniform(0.3, 0.95, k))[::-1]
            order = rng.permutation(k)  # near ones anywhere in the ranking
            items = [{"id": f"g{q}_{j}", "lat": round(float(lats[o]), 6), "lon": round(float(lons[o]), 6),
                      "score": round(float(s), 4)} for j, (o, s) in enumerate(zip(order, scores, strict=True))]
            fh.write(json.dumps({"id": f"q{q}", "neighbours": items}) + "\n")
    return source


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="5,000 queries (a smoke run)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    n = 5_000 if args.quick else args.n

    from geo_r.data.candidates import attach_candidates, fill_chains, read_neighbours
    from geo_r.data.schema import GeoRecord
    from geo_r.geo.candidates import cluster_neighbours
    from geo_r.prompts import DEFAULT_QUESTION, question_with_candidates

    timings: dict[str, float] = {}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "neighbours.jsonl"
        start = time.perf_counter()
        source = write_neighbours(path, n, args.k, args.seed, args.data)
        timings["write_file_s"] = time.perf_counter() - start
        size_mb = path.stat().st_size / 2**20

        start = time.perf_counter()
        with open(path, "rb") as fh:
            parsed = sum(1 for line in fh if json.loads(line))
        timings["baseline_json_loads_s"] = time.perf_counter() - start
        assert parsed == n

        records = [GeoRecord(id=f"q{q}", images=[f"/photos/{q}.jpg"], lat=0.0, lon=0.0) for q in range(n)]
        start = time.perf_counter()
        attach_candidates(records, path, num_candidates=10, radius_km=1.0)
        timings["attach_candidates_s"] = time.perf_counter() - start
        peak_attach_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        start = time.perf_counter()
        table, _ = read_neighbours(path)
        timings["stage_read_neighbours_s"] = time.perf_counter() - start
    start = time.perf_counter()
    clustered = [cluster_neighbours(table[f"q{q}"], 10, 1.0) for q in range(n)]
    timings["stage_cluster_s"] = time.perf_counter() - start
    del table
    start = time.perf_counter()
    named = fill_chains(clustered)
    timings["stage_reverse_geocode_s"] = time.perf_counter() - start
    assert named == [r.candidates for r in records]  # the stages give what attach gave
    start = time.perf_counter()
    prompts = [question_with_candidates(DEFAULT_QUESTION, r.candidates) for r in records]
    timings["prompts_s"] = time.perf_counter() - start
    n_candidates = sum(len(c) for c in named)

    per_1k = {key.replace("_s", "_s_per_1k_queries"): round(value * 1000 / n, 4) for key, value in timings.items()}
    result = {
        "what": "cost of --candidates before training: read + validate, cluster, reverse geocode, render",
        "queries": n,
        "neighbours_per_query": args.k,
        "points": source,
        "file_mb": round(size_mb, 1),
        "candidates": n_candidates,
        "mean_candidates": round(n_candidates / n, 2),
        "mean_prompt_chars": round(sum(map(len, prompts)) / n, 1),
        "seconds": {k: round(v, 3) for k, v in timings.items()},
        **per_1k,
        "attach_vs_baseline": round(timings["attach_candidates_s"] / timings["baseline_json_loads_s"], 2),
        "peak_rss_mib_after_attach": round(peak_attach_mib, 1),
        "load_average": {"before": [round(x, 2) for x in load_before],
                         "after": [round(x, 2) for x in os.getloadavg()]},
        "provenance": provenance(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "provenance"}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
