"""Do the HF and vLLM eval backends agree on a model whose answers parse? Greedy float32, same held-out photos.

    .venv-vllm/bin/python bench/bench_vllm_vs_hf.py --work /tmp/vllm_vs_hf        # vLLM's CPU build (docs/vllm.md)

A random tiny model's answers never parse, so this first trains one that answers in the project's format: the CPU
demo's model, toy world and SFT stage (:mod:`geo_r.demo.pipeline`, its recipe: ``geo-r sft``, 300 steps). Then
``geo-r eval`` runs on the held-out photos with ``--backend hf`` (the baseline) and ``--backend vllm`` (in
subprocesses of this process, one after the other), and the two runs are compared: completions, parsed
predictions (country, region, city, coordinates), and every metric. Writes ``bench/results/vllm_vs_hf.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from geo_r.demo.pipeline import DemoConfig, eval_command, sft_command
from provenance import provenance  # bench/provenance.py (scripts run as files)

METRIC_KEYS = ("parse_rate", "acc@25km", "acc@200km", "acc@750km", "acc@2500km", "median_km", "mean_km", "geoscore")


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def _run(cmd: list[str], **env: str) -> float:
    start = time.monotonic()
    proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1", **env}, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return time.monotonic() - start


def compare(hf_dir: Path, vllm_dir: Path) -> dict:
    """Side-by-side counts of equal completions and parsed fields, and each metric of both runs."""
    from geo_r.geo import parse_prediction

    hf, vl = _lines(hf_dir / "predictions.jsonl"), _lines(vllm_dir / "predictions.jsonl")
    if [r["id"] for r in hf] != [r["id"] for r in vl]:
        raise SystemExit("the two runs predicted different ids")
    same_text = sum(a["completion"] == b["completion"] for a, b in zip(hf, vl, strict=True))
    fields = ("country", "region", "city", "lat", "lon")
    same_parsed = 0
    parsed = 0
    for a, b in zip(hf, vl, strict=True):
        pa, pb = parse_prediction(a["completion"]), parse_prediction(b["completion"])
        parsed += pa.lat is not None
        same_parsed += all(getattr(pa, f, None) == getattr(pb, f, None) for f in fields)
    differing = [{"id": a["id"], "hf": a["completion"], "vllm": b["completion"]}
                 for a, b in zip(hf, vl, strict=True) if a["completion"] != b["completion"]][:5]
    metrics = {name: json.loads((d / "metrics.json").read_text()) for name, d in (("hf", hf_dir), ("vllm", vllm_dir))}
    return {
        "n": len(hf),
        "parsed_by_hf": parsed,
        "equal_completions": same_text,
        "equal_parsed_predictions": same_parsed,
        "metrics": {k: {"hf": metrics["hf"].get(k), "vllm": metrics["vllm"].get(k)} for k in METRIC_KEYS},
        "metrics_equal": all(metrics["hf"].get(k) == metrics["vllm"].get(k) for k in METRIC_KEYS),
        "first_differences": differing,
    }


def main(argv: list[str] | None = None) -> int:
    """Train the demo's SFT model, evaluate it with both backends, write the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="outputs/vllm_vs_hf", help="scratch folder (model, world, runs)")
    parser.add_argument("--sft_steps", type=int, default=DemoConfig.sft_steps)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "vllm_vs_hf.json"))
    args = parser.parse_args(argv)

    from geo_r.demo.tiny_model import build_tiny_model
    from geo_r.demo.world import write_world

    cfg = DemoConfig(out_dir=args.work, sft_steps=args.sft_steps)
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    model = work / "model"
    if not (model / "config.json").is_file():
        build_tiny_model(model, family=cfg.family, seed=cfg.seed, size=cfg.size, max_pixels=cfg.max_pixels)
    world = write_world(work / "world", cfg.train_per_place, cfg.heldout_per_place, seed=cfg.seed,
                        jitter_km=cfg.jitter_km, decimals=cfg.coordinate_decimals, teacher_accuracy=cfg.teacher)
    sft = work / "sft"
    if not (sft / "model.safetensors").is_file():
        timings["sft"] = _run(sft_command(cfg, model, world["train"], world["images"], sft))
    runs = {}
    for backend in ("hf", "vllm"):
        out = work / f"eval_{backend}"
        cmd = [*eval_command(cfg, sft, world["heldout"], world["images"], out, backend), "--backend", backend,
               "--torch_dtype", "float32", "--no_progress"]
        timings[f"eval_{backend}"] = _run(cmd, VLLM_CPU_KVCACHE_SPACE=os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"))
        runs[backend] = out
    result = {"provenance": provenance(), "recipe": {"sft_steps": cfg.sft_steps, "size": cfg.size,
                                                     "max_pixels": cfg.max_pixels,
                                                     "eval_max_new_tokens": cfg.eval_max_new_tokens},
              "comparison": compare(runs["hf"], runs["vllm"]), "timings_s": {k: round(v, 1) for k, v in timings.items()}}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result["comparison"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
