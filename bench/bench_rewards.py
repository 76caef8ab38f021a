"""Reward throughput on real MP16 coordinates, side by side with a naive baseline, and reward-hacking floors.

What it measures, in one process on the same inputs:
* region labelling: ``geo_r.geo.regions.reverse_geocode`` (one KD-tree query on unit vectors) against
  ``reverse_geocoder.search(mode=1)``, plus how often their labels agree and how much farther the
  baseline's place is when they do not (it searches raw lat/lon degrees, not the sphere);
* parsing: ``parse_prediction`` against a literal_eval-style parser (THE BASELINE, defined here only);
* rewards: ``format``, ``distance`` (paper map), ``region`` and ``geo_r_paper`` as TRL calls them (built
  from the registry, batches of --batch completions), and a naive distance reward (literal_eval parser +
  per-pair ``geopy.distance.geodesic`` + the paper map);
* reward-hacking floors of each distance map: the mean reward over the points of (a) the single best
  constant prediction (global grid + dataset points as candidates on a subsample, then local refinement,
  then scored on every point) and (b) "right country, predict its centroid" / (c) "right admin1 region,
  predict its centroid", where a centroid is the normalised mean of the group's unit vectors (the
  spherical centroid, not a medoid) and groups are the points' own reverse-geocoded labels.

Completions are rendered with ``geo_r.prompts.render_answer`` around perturbed true points: 40 % near
(|N(0, 5 km)| away, that place's labels), 25 % far (50-500 km away, that place's labels), 15 % another
country (a random sample point in another country), 10 % inconsistent (true labels, another point's
coordinates), 10 % unparseable text. Seeded: the same command gives the same completions.

Usage: ``python bench/bench_rewards.py [--n 100000] [--quick] [--out bench/results/bench_rewards.json]``.
"""

from __future__ import annotations

import argparse
import ast  # the BASELINE parser only; nothing in src/ uses literal_eval
import json
import math
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from coordinates import destination, read_latlon_csv  # bench/coordinates.py (scripts run as files)
from provenance import provenance

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "mp16_coordinates_100k.csv"
DEFAULT_OUT = REPO / "bench" / "results" / "bench_rewards.json"
QUICK_N = 2000
JUNK = (
    "I cannot determine the location from this image.",
    "<think>Looks like a beach.</think><answer>somewhere warm</answer>",
    "<answer>Country: unknown</answer>",
    "The photo shows mountains and a lake.",
)


# ------------------------------------------------------------------------------------------------- inputs


def load_coordinates(path: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` rows of a ``LAT,LON`` csv; errors name the file and line."""
    if not path.is_file():
        sys.exit(
            f"bench_rewards: {path} not found. It holds the 100k real MP16 coordinates "
            "(see ../shared/data/README.md); pass --data PATH to use another copy."
        )
    return read_latlon_csv(path, "bench_rewards", n)


def build_completions(lat: np.ndarray, lon: np.ndarray, seed: int = 0) -> tuple[list[str], list[str], list[Any]]:
    """Completions around the true points (mix in the module docstring), their kinds, and the true chains."""
    from geo_r.geo.regions import reverse_geocode
    from geo_r.prompts import render_answer

    rng = np.random.default_rng(seed)
    n = len(lat)
    kinds = rng.choice(["near", "far", "other_country", "inconsistent", "unparseable"], size=n, p=[0.4, 0.25, 0.15, 0.1, 0.1])
    truth = reverse_geocode(lat, lon)
    plat, plon = lat.copy(), lon.copy()
    bearing = rng.uniform(0, 2 * math.pi, n)
    near, far = kinds == "near", kinds == "far"
    plat[near], plon[near] = destination(lat[near], lon[near], np.abs(rng.normal(0, 5, near.sum())), bearing[near])
    plat[far], plon[far] = destination(lat[far], lon[far], rng.uniform(50, 500, far.sum()), bearing[far])
    codes = np.array([c.country_code for c in truth])
    other = np.flatnonzero(kinds == "other_country")
    for i in other:  # a random sample point in another country (rejection sampling)
        for _ in range(100):
            j = int(rng.integers(n))
            if codes[j] != codes[i]:
                plat[i], plon[i] = lat[j], lon[j]
                break
    inconsistent = np.flatnonzero(kinds == "inconsistent")
    moved = rng.integers(0, n, len(inconsistent))
    plat[inconsistent], plon[inconsistent] = lat[moved], lon[moved]
    named = reverse_geocode(plat, plon)
    texts: list[str] = []
    for i in range(n):
        if kinds[i] == "unparseable":
            texts.append(JUNK[i % len(JUNK)])
            continue
        c = truth[i] if kinds[i] == "inconsistent" else named[i]
        texts.append(render_answer(c.country or "", c.region or c.country or "", c.city or "", float(plat[i]), float(plon[i])))
    return texts, kinds.tolist(), truth


# ------------------------------------------------------------------------------------------------ baseline

_BASELINE_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_BASELINE_COORDS = re.compile(r"Coordinates:\s*(\(.*?\))")


def baseline_parse(text: str) -> tuple[float, float] | None:
    """THE BASELINE being measured: Geo-R-release style, ``ast.literal_eval`` on the answer's coordinate text."""
    m = _BASELINE_ANSWER.search(text)
    if not m:
        return None
    c = _BASELINE_COORDS.search(m.group(1))
    if not c:
        return None
    try:
        value = ast.literal_eval(c.group(1))  # noqa: S307 - the baseline under measurement, never in src/
    except (ValueError, SyntaxError):
        return None
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return float(value[0]), float(value[1])
    return None


def baseline_distance_reward(texts: list[str], lat: np.ndarray, lon: np.ndarray) -> list[float]:
    """THE BASELINE distance reward: literal_eval parser, per-pair geopy geodesic, the paper's map."""
    from geopy.distance import geodesic

    out = []
    for text, la, lo in zip(texts, lat.tolist(), lon.tolist(), strict=True):
        pred = baseline_parse(text)
        if pred is None or not (-90 <= pred[0] <= 90 and -180 <= pred[1] <= 180):
            out.append(0.0)
            continue
        d = geodesic(pred, (la, lo)).km
        if d <= 750:
            r = 1 - 0.5 * d / 750
        elif d <= 2500:
            r = 0.5 - 0.3 * (d - 750) / 1750
        else:
            r = max(0.0, 0.2 - 0.2 * (d - 2500) / 17500)
        out.append(r)
    return out


# -------------------------------------------------------------------------------------------------- timing


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def in_batches(reward: Callable[..., list[Any]], texts: list[str], lat: np.ndarray, lon: np.ndarray, batch: int) -> list[Any]:
    out: list[Any] = []
    lat_l, lon_l = lat.tolist(), lon.tolist()
    for s in range(0, len(texts), batch):
        out.extend(reward(None, texts[s : s + batch], None, lat=lat_l[s : s + batch], lon=lon_l[s : s + batch]))
    return out


def throughput(
    texts: list[str], lat: np.ndarray, lon: np.ndarray, batch: int
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, list[Any]]]:
    """Rows of the throughput table (items/s, ours vs baseline), the label-agreement figures, and each
    reward's values."""
    import reverse_geocoder

    from geo_r.geo.parse import parse_prediction
    from geo_r.geo.regions import geonames, reverse_geocode
    from geo_r.rewards import build_reward

    n = len(texts)
    rows: list[dict[str, Any]] = []

    def row(name: str, ours_s: float, base_s: float | None = None, baseline: str = "", note: str = "") -> None:
        rows.append({
            "step": name, "ours_items_per_s": n / ours_s, "ours_s": ours_s,
            "baseline": baseline, "baseline_items_per_s": n / base_s if base_s else None,
            "baseline_s": base_s, "speedup": base_s / ours_s if base_s else None, "note": note,
        })

    load_s, _ = timed(lambda: geonames().build_indexes())
    rg_load_s, _ = timed(lambda: reverse_geocoder.search([(0.0, 0.0)], mode=1, verbose=False))
    ours_s, chains = timed(lambda: reverse_geocode(lat, lon))
    base_s, rg = timed(
        lambda: reverse_geocoder.search(list(zip(lat.tolist(), lon.tolist(), strict=True)), mode=1, verbose=False)
    )
    row("region labelling (reverse geocode)", ours_s, base_s, "reverse_geocoder.search(mode=1)",
        f"from arrays to labels; one-time load (not included): ours {load_s:.2f} s with name indexes, "
        f"baseline {rg_load_s:.2f} s")

    from geo_r.geo.distance import haversine_km

    same = [c.country_code == r["cc"] and c.region == (r["admin1"] or None) and c.city == (r["name"] or None)
            for c, r in zip(chains, rg, strict=True)]
    same_cc = [c.country_code == r["cc"] for c, r in zip(chains, rg, strict=True)]
    rg_km = haversine_km(lat, lon, np.array([float(r["lat"]) for r in rg]), np.array([float(r["lon"]) for r in rg]))
    ours_km = np.array([c.distance_km for c in chains])
    differ = ~np.asarray(same)
    agreement = {
        "same_place_pct": 100.0 * float(np.mean(same)),
        "same_country_pct": 100.0 * float(np.mean(same_cc)),
        "baseline_farther_when_different_median_km": float(np.median((rg_km - ours_km)[differ])) if differ.any() else 0.0,
        "baseline_ever_nearer": bool(np.any(rg_km < ours_km - 1e-6)),
    }

    ours_s, _ = timed(lambda: [parse_prediction(t) for t in texts])
    base_s, _ = timed(lambda: [baseline_parse(t) for t in texts])
    row("parse completion", ours_s, base_s, "regex + ast.literal_eval",
        "ours reads names + coordinates leniently; baseline only the contract's coordinate tuple")

    rewards: dict[str, list[Any]] = {}
    for name in ("format", "distance", "region", "geo_r_paper"):
        fn = build_reward(name)  # fresh: the region reward's truth cache starts empty
        ours_s, values = timed(lambda fn=fn: in_batches(fn, texts, lat, lon, batch))
        rewards[name] = values
        if name == "distance":
            base_s, base_values = timed(lambda: baseline_distance_reward(texts, lat, lon))
            diff = max(abs(a - b) for a, b in zip(values, base_values, strict=True) if a is not None)
            row("reward: distance (paper map)", ours_s, base_s, "literal_eval + geopy geodesic per pair",
                f"max |ours - baseline| = {diff:.4f} (haversine vs WGS-84 geodesic)")
        else:
            row(f"reward: {name}", ours_s, note=f"mean {np.mean([v for v in values if v is not None]):.3f}")
    return rows, agreement, rewards


def by_kind(kinds: list[str], rewards: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Mean of each reward per completion kind (shows the region reward's ordering on real data)."""
    rows = []
    for kind in ("near", "far", "other_country", "inconsistent", "unparseable"):
        idx = [i for i, k in enumerate(kinds) if k == kind]
        row: dict[str, Any] = {"kind": kind, "count": len(idx)}
        for name, values in rewards.items():
            vals = [values[i] for i in idx if values[i] is not None]
            row[name] = float(np.mean(vals)) if vals else None
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------------- floors


def distance_maps() -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Each distance-reward variant of ``--distance_reward`` (default settings) as km -> reward."""
    from geo_r.rewards.args import RewardArguments
    from geo_r.rewards.distance import exp_reward, paper_reward, threshold_reward

    a = RewardArguments()
    return {
        "paper": lambda d: np.asarray(paper_reward(d)),
        "geoscore": lambda d: np.asarray(exp_reward(d, a.geoscore_scale_km)),
        "threshold": lambda d: np.asarray(threshold_reward(d, a.threshold_values, a.threshold_reward_values)),
        f"anneal start (tau {a.anneal_start_km:g} km)": lambda d: np.asarray(exp_reward(d, a.anneal_start_km)),
        f"anneal end (tau {a.anneal_end_km:g} km)": lambda d: np.asarray(exp_reward(d, a.anneal_end_km)),
    }


def mean_scores(cand_lat: np.ndarray, cand_lon: np.ndarray, lat: np.ndarray, lon: np.ndarray,
                f: Callable[[np.ndarray], np.ndarray], chunk: int = 128) -> np.ndarray:
    """Mean reward over the points of each candidate constant prediction."""
    from geo_r.geo.distance import haversine_km

    out = np.empty(len(cand_lat))
    for s in range(0, len(cand_lat), chunk):
        d = haversine_km(cand_lat[s : s + chunk, None], cand_lon[s : s + chunk, None], lat[None, :], lon[None, :])
        out[s : s + chunk] = f(d).mean(axis=1)
    return out


def best_constant(lat: np.ndarray, lon: np.ndarray, f: Callable[[np.ndarray], np.ndarray], quick: bool,
                  rng: np.random.Generator) -> tuple[float, float, float]:
    """(lat, lon, mean reward over all points) of the best single constant prediction found."""
    sub = rng.choice(len(lat), min(len(lat), 1000 if quick else 5000), replace=False)
    step = 10.0 if quick else 5.0
    g_lat, g_lon = np.meshgrid(np.arange(-90 + step / 2, 90, step), np.arange(-180 + step / 2, 180, step))
    data = rng.choice(len(lat), min(len(lat), 200 if quick else 1000), replace=False)
    c_lat = np.concatenate([g_lat.ravel(), lat[data]])
    c_lon = np.concatenate([g_lon.ravel(), lon[data]])
    scores = mean_scores(c_lat, c_lon, lat[sub], lon[sub], f)
    best: list[tuple[float, float, float]] = []
    for k in np.argsort(scores)[::-1][:5]:  # refine the five best starts
        b_lat, b_lon, b_score, width = c_lat[k], c_lon[k], scores[k], step
        while width > 0.002:
            width /= 5.0
            offsets = np.arange(-4, 5) * width
            grid_lat, grid_lon = np.meshgrid(
                np.clip(b_lat + offsets, -90, 90), (b_lon + offsets + 180) % 360 - 180, indexing="ij"
            )
            r_lat, r_lon = grid_lat.ravel(), grid_lon.ravel()
            s = mean_scores(r_lat, r_lon, lat[sub], lon[sub], f)
            if s.max() > b_score:
                b_lat, b_lon, b_score = r_lat[s.argmax()], r_lon[s.argmax()], s.max()
        best.append((float(b_lat), float(b_lon), float(mean_scores(np.array([b_lat]), np.array([b_lon]), lat, lon, f)[0])))
    return max(best, key=lambda t: t[2])


def group_centroids(lat: np.ndarray, lon: np.ndarray, keys: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Each point's group centroid: normalised mean of the group's unit vectors (spherical centroid)."""
    from geo_r.geo.regions import unit_vectors

    xyz = unit_vectors(lat, lon)
    _, inverse = np.unique(np.array([str(k) for k in keys]), return_inverse=True)
    sums = np.zeros((inverse.max() + 1, 3))
    np.add.at(sums, inverse, xyz)
    sums /= np.linalg.norm(sums, axis=1, keepdims=True)
    c = sums[inverse]
    return np.degrees(np.arcsin(np.clip(c[:, 2], -1, 1))), np.degrees(np.arctan2(c[:, 1], c[:, 0]))


def floors(lat: np.ndarray, lon: np.ndarray, chains: list[Any], quick: bool) -> list[dict[str, Any]]:
    """The reward-hacking floor table: best constant, country centroid, admin1 centroid, per variant."""
    from geo_r.geo.distance import haversine_km

    rng = np.random.default_rng(0)
    country_lat, country_lon = group_centroids(lat, lon, [c.country_code for c in chains])
    region_lat, region_lon = group_centroids(lat, lon, [(c.country_code, c.region) for c in chains])
    d_country = haversine_km(lat, lon, country_lat, country_lon)
    d_region = haversine_km(lat, lon, region_lat, region_lon)
    rows = []
    for name, f in distance_maps().items():
        b_lat, b_lon, b_score = best_constant(lat, lon, f, quick, rng)
        rows.append({
            "variant": name, "best_constant_lat": b_lat, "best_constant_lon": b_lon,
            "best_constant_mean": b_score, "country_centroid_mean": float(f(d_country).mean()),
            "region_centroid_mean": float(f(d_region).mean()),
        })
    return rows


# ---------------------------------------------------------------------------------------------------- main


def markdown(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> str:
    head = "| " + " | ".join(c[1] for c in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = []
    for r in rows:
        cells = []
        for key, _, fmt in columns:
            v = r.get(key)
            cells.append("-" if v is None or v == "" else format(v, fmt) if fmt else str(v))
        body.append("| " + " | ".join(cells) + " |")
    return "\n".join([head, sep, *body])


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the tables, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=None,
                        help=f"number of coordinates (and completions) to use (default: 100000, or {QUICK_N} with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: {QUICK_N} points and a coarser constant-prediction search")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="where to write the JSON results (default: bench/results/bench_rewards.json)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="LAT,LON csv of real coordinates (default: ../shared/data/mp16_coordinates_100k.csv)")
    parser.add_argument("--batch", type=int, default=64,
                        help="completions per reward call, like one GRPO step's batch x generations (default: 64)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the completion mix (default: 0)")
    args = parser.parse_args(argv)
    n = args.n if args.n is not None else (QUICK_N if args.quick else 100_000)
    if n < 10 or args.batch < 1:
        parser.error("--n must be >= 10 and --batch >= 1")

    lat, lon = load_coordinates(args.data, n)
    n = len(lat)
    build_s, (texts, kinds, chains) = timed(lambda: build_completions(lat, lon, args.seed))
    print(f"{n} coordinates from {args.data.name}; completions built in {build_s:.1f} s "
          f"({', '.join(f'{k} {kinds.count(k)}' for k in sorted(set(kinds)))})\n")

    rows, agreement, rewards = throughput(texts, lat, lon, args.batch)
    print(f"## Throughput (items/s, {n} items, reward batches of {args.batch}, one process)\n")
    print(markdown(rows, [("step", "step", ""), ("ours_items_per_s", "ours", ",.0f"),
                          ("baseline", "baseline", ""), ("baseline_items_per_s", "baseline items/s", ",.0f"),
                          ("speedup", "speed-up", ".1f"), ("note", "note", "")]))
    print(f"\nLabel agreement with reverse_geocoder.search: same place {agreement['same_place_pct']:.2f} %, "
          f"same country {agreement['same_country_pct']:.2f} %; where they differ the baseline's place is a median "
          f"{agreement['baseline_farther_when_different_median_km']:.2f} km farther "
          f"(baseline ever nearer: {agreement['baseline_ever_nearer']}).\n")

    kind_rows = by_kind(kinds, rewards)
    print("## Mean reward by completion kind\n")
    print(markdown(kind_rows, [("kind", "completion kind", ""), ("count", "count", ","),
                               *((name, name, ".3f") for name in rewards)]))
    print()

    floor_s, floor_rows = timed(lambda: floors(lat, lon, chains, args.quick))
    print(f"## Reward-hacking floors (mean reward over the {n} points; searched in {floor_s:.0f} s)\n")
    for r in floor_rows:
        r["best_constant"] = f"({r['best_constant_lat']:.2f}, {r['best_constant_lon']:.2f})"
    print(markdown(floor_rows, [("variant", "distance reward", ""), ("best_constant", "best constant (lat, lon)", ""),
                                ("best_constant_mean", "best constant", ".3f"),
                                ("country_centroid_mean", "right country, its centroid", ".3f"),
                                ("region_centroid_mean", "right admin1, its centroid", ".3f")]))

    result = {
        **provenance([sys.argv[0], *argv] if argv is not None else None),  # command, packages, machine, commit
        "n": n, "batch": args.batch, "seed": args.seed, "quick": args.quick,
        "completion_kinds": {k: kinds.count(k) for k in sorted(set(kinds))},
        "throughput": rows, "label_agreement": agreement, "reward_by_kind": kind_rows, "floors": floor_rows,
        "centroid": "spherical centroid (normalised mean unit vector) of the group's points in this sample",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
