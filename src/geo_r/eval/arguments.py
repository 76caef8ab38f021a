"""The flags of ``geo-r eval`` and the settings derived from them (decoding settings, the run fingerprint).

Data flags are named as in the GRPO entrypoint, and ``--min_pixels`` / ``--max_pixels`` default to the
training defaults, so a training command line's data and image settings carry over unchanged.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from geo_r.eval.generate import GenerationSettings
from geo_r.eval.metrics import DEFAULT_THRESHOLDS_KM

RUN_CONFIG_FILE = "run_config.json"


def explorer_thumbnails(value: str) -> str | int:
    """``--explorer_thumbnails``: 'all', 'none' or a count >= 0."""
    text = value.strip().lower()
    if text in ("all", "none"):
        return text
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected all, none or a number of rows, not {value!r}") from None
    if count < 0:
        raise argparse.ArgumentTypeError(f"expected a number of rows >= 0, not {count}")
    return count


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``geo-r eval`` (data flags named as in the GRPO entrypoint)."""
    from geo_r.defaults import DEFAULT_DIST_TIMEOUT_S, DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS

    data = parser.add_argument_group("data and output")
    data.add_argument(
        "--data_file_paths", required=True, help="ground truth: colon-separated .jsonl/.json files"
    )
    data.add_argument(
        "--image_folders", default="", help="image folders paired with the data files (as in training)"
    )
    data.add_argument("--output_dir", required=True, help="where predictions, metrics, report and figures go")
    data.add_argument(
        "--predictions",
        default=None,
        help="score this jsonl file (lines with 'id' and 'completion') instead of generating; no model needed",
    )
    data.add_argument(
        "--allow_missing",
        action="store_true",
        help="with --predictions: images without a prediction count as unparseable (default: error)",
    )
    data.add_argument("--max_samples", type=int, default=None, help="evaluate only the first N records")
    data.add_argument("--skip_invalid", action="store_true", help="drop invalid records instead of stopping")
    data.add_argument(
        "--no_check_images", action="store_true", help="do not open every image before generating"
    )
    data.add_argument(
        "--overwrite", action="store_true", help="delete earlier predictions in --output_dir first"
    )
    data.add_argument(
        "--run_name", default=None, help="label of this run in the report (default: model folder name)"
    )
    from geo_r.data.candidates import add_candidate_arguments

    add_candidate_arguments(data)

    model = parser.add_argument_group("model and generation")
    model.add_argument("--model_name_or_path", default=None, help="saved model folder (Qwen2/2.5/3-VL)")
    model.add_argument(
        "--backend", choices=("hf", "vllm"), default="hf", help="HF generate (default) or vLLM"
    )
    model.add_argument("--batch_size", type=int, default=8, help="images per generate call (default: 8)")
    model.add_argument("--max_new_tokens", type=int, default=512, help="completion budget (default: 512)")
    model.add_argument("--do_sample", action="store_true", help="sample instead of greedy decoding")
    model.add_argument(
        "--temperature", type=float, default=1.0, help="sampling temperature (with --do_sample or --num_samples)"
    )
    model.add_argument("--top_p", type=float, default=1.0, help="nucleus sampling (with --do_sample or --num_samples)")
    model.add_argument("--top_k", type=int, default=0, help="top-k sampling, 0 = off (with --do_sample or --num_samples)")
    model.add_argument("--repetition_penalty", type=float, default=1.0, help="1.0 = off (default)")
    model.add_argument(
        "--seed", type=int, default=42, help="sampling seed (per batch / per image; default: 42)"
    )
    model.add_argument(
        "--num_samples",
        type=int,
        default=1,
        help="test-time scaling: also sample K answers per image at --temperature / --top_p / --top_k (HF "
        "generate num_return_sequences, vLLM n=K), kept in predictions.jsonl; the greedy answer is decoded as "
        "well (default: 1, greedy only)",
    )
    model.add_argument(
        "--aggregate",
        default=None,
        help="with --num_samples K: the answers to score, comma-separated, each reported side by side; the "
        "first is the headline: greedy (the greedy answer), medoid (the sample closest in summed km to the "
        "others), vote (most frequent country, then region, then medoid) (default: greedy,medoid,vote when "
        "samples exist, else greedy)",
    )
    model.add_argument("--question", default=None, help="prompt for records without their own question")
    model.add_argument(
        "--min_pixels", type=int, default=DEFAULT_MIN_PIXELS, help="as in training (default: %(default)s)"
    )
    model.add_argument(
        "--max_pixels", type=int, default=DEFAULT_MAX_PIXELS, help="as in training (default: %(default)s)"
    )
    model.add_argument(
        "--torch_dtype",
        default=None,
        help="bfloat16 / float16 / float32 / auto (default: bf16 on GPU, fp32 on CPU)",
    )
    model.add_argument("--attn_implementation", default=None, help="sdpa (default) or flash_attention_2")
    model.add_argument(
        "--vllm_gpu_memory_utilization",
        type=float,
        default=0.85,
        help="vLLM's share of GPU memory (default: %(default)s); on vLLM's CPU build the share of RAM, unless "
        "VLLM_CPU_KVCACHE_SPACE=<GiB> sets the KV cache (docs/vllm.md)",
    )
    model.add_argument("--vllm_max_model_len", type=int, default=None, help="vLLM context length cap")
    model.add_argument(
        "--ddp_timeout",
        type=int,
        default=DEFAULT_DIST_TIMEOUT_S,
        help="under torchrun: seconds a rank may go silent (a barrier may wait) before the job ends with a message "
        "naming the rank (default %(default)s, as in training)",
    )

    scoring = parser.add_argument_group("metrics")
    scoring.add_argument(
        "--distance",
        choices=("haversine", "geodesic"),
        default="haversine",
        help="haversine on R = 6371 km (default; GeoEstimation, OSV-5M, Geo-R) or WGS-84 geodesic (GeoCLIP, G3)",
    )
    scoring.add_argument(
        "--strict_threshold", action="store_true", help="count d < X km instead of d <= X km"
    )
    scoring.add_argument(
        "--thresholds",
        type=float,
        nargs="+",
        default=list(DEFAULT_THRESHOLDS_KM),
        help="accuracy thresholds in km (default: 1 25 200 750 2500)",
    )
    scoring.add_argument(
        "--benchmark",
        choices=("auto", "im2gps3k", "yfcc4k", "none"),
        default="auto",
        help="which benchmark the data is; report.md lists published Im2GPS3k/YFCC4k rows only for that one "
        "(auto: recognised from the data file names, e.g. im2gps3k.jsonl; none: other data, no published rows)",
    )
    scoring.add_argument(
        "--abstain_km",
        type=float,
        default=None,
        help="with samples: also report accuracy on the images whose sample spread (median km from the samples "
        "to the chosen answer) is <= this, and the coverage (share of images kept)",
    )
    scoring.add_argument("--map_max_points", type=int, default=2000, help="images drawn on map.png (sampled)")
    scoring.add_argument(
        "--explorer_thumbnails", type=explorer_thumbnails, default="all",
        help="photos of explorer.html shown as thumbnails (files in explorer_files/, ~2 ms of CPU and ~4 KB each): "
        "'all' (default), 'none', or a number N (a random sample of N rows, seeded with --seed)",
    )
    scoring.add_argument("--no_progress", action="store_true", help="no progress bar")


def generation_settings(args: argparse.Namespace) -> GenerationSettings:
    """The decoding settings the flags ask for (raises ValueError for impossible values)."""
    return GenerationSettings(
        max_new_tokens=args.max_new_tokens,
        do_sample=args.do_sample,
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        repetition_penalty=args.repetition_penalty,
        seed=args.seed,
    )


def sample_settings(args: argparse.Namespace) -> GenerationSettings | None:
    """The decoding settings of the ``--num_samples`` samples (sampling on), None without samples."""
    if args.num_samples < 1:
        raise ValueError(f"--num_samples must be >= 1, got {args.num_samples}")
    if args.num_samples == 1:
        return None
    if args.do_sample:
        raise ValueError(
            "--num_samples K always samples its K answers (at --temperature / --top_p / --top_k) and decodes the "
            "reference answer greedily; drop --do_sample"
        )
    return GenerationSettings(**{**generation_settings(args).to_dict(), "do_sample": True})


FINGERPRINT_DEFAULTS: dict[str, Any] = {"num_samples": 1}
"""Values a run_config.json written before a key existed stands for (so old runs still resume)."""
OPTIONAL_FINGERPRINT_KEYS: tuple[str, ...] = ("candidates",)
"""Keys written only when their flag is given (absent = None), compared whichever side has them."""


def candidate_settings(args: argparse.Namespace) -> dict[str, Any] | None:
    """``--candidates`` and its options as written into run_config.json and metrics.json (None without)."""
    if not getattr(args, "candidates", None):
        return None
    return {
        "file": str(Path(args.candidates).resolve()),
        "num_candidates": args.num_candidates,
        "radius_km": args.candidate_radius_km,
    }


def fingerprint(args: argparse.Namespace) -> dict[str, Any]:
    """What determines the completions (written to run_config.json): resuming with a different value would
    mix two runs in one predictions file."""
    out = {
        "model_name_or_path": str(Path(args.model_name_or_path).resolve()),
        "question": args.question,
        "min_pixels": args.min_pixels,
        "max_pixels": args.max_pixels,
        "torch_dtype": args.torch_dtype,
        "generation": generation_settings(args).to_dict(),
        "num_samples": args.num_samples,
    }
    sampling = sample_settings(args)
    if sampling is not None:
        out["sampling"] = sampling.to_dict()
    candidates = candidate_settings(args)
    if candidates is not None:  # the prompt lists them: a resumed run must use the same
        out["candidates"] = candidates
    return out
