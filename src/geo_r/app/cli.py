"""``geo-r app``: a local web page to ask a checkpoint where a photo was taken (Gradio, offline).

  geo-r app --model_name_or_path outputs/grpo        # then open http://127.0.0.1:7860
  geo-r app                                          # the demo's GRPO model (after `geo-r demo`)

Upload a photo or pick one of the examples: the answer streams in as it is generated, then the parsed chain
(country / region / city), the coordinates and a pin on a world map; the prompt and generation settings are
shown under it. Generation is `geo-r eval`'s (same prompt, pixel limits, blocked vision tokens, greedy by
default). Nothing is fetched from the network: system fonts, a map drawn from the installed coastlines,
Gradio analytics off. Binds to 127.0.0.1 unless --host says otherwise. Needs the app extra:
pip install -e ".[app]" (setup.sh installs it).

Under the chain the page shows where the answer's coordinates fall (offline reverse geocoding) and flags a
chain that disagrees with them. With --candidates NEIGHBOURS.jsonl the example photos get their retrieval
candidates (by record id, as in geo-r eval): the prompt lists them and the page shows them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
MAX_EXAMPLES = 12


class AppConfigError(ValueError):
    """The app cannot start as asked; the message says what to do."""


def demo_paths() -> dict[str, Path]:
    """Where ``geo-r demo`` (default settings, run from this folder) leaves its GRPO model and held-out set."""
    from geo_r.demo.pipeline import DemoConfig

    out = Path(DemoConfig.out_dir)
    return {"model": out / "grpo", "heldout": out / "world" / "heldout.jsonl", "images": out / "world" / "images"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``geo-r app`` (generation flags as in ``geo-r eval``)."""
    from geo_r.defaults import DEFAULT_MIN_PIXELS

    paths = demo_paths()
    parser.add_argument("--model_name_or_path", default=None,
                        help=f"saved model folder (default: the demo's GRPO model, {paths['model']}, if it exists)")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help="address to bind (default: 127.0.0.1, this machine only; 0.0.0.0 exposes it)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default: %(default)s)")
    parser.add_argument("--examples", default=None,
                        help=f"a jsonl whose photos are offered as examples (default: {paths['heldout']} if it "
                             "exists); --example_images is its image folder")
    parser.add_argument("--example_images", default="", help="image folder of --examples")
    parser.add_argument("--max_new_tokens", type=int, default=None,
                        help="completion budget (default: 512; 96, as the demo evaluates, for the demo model)")
    parser.add_argument("--do_sample", action="store_true", help="sample instead of greedy decoding")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (with --do_sample)")
    parser.add_argument("--top_p", type=float, default=1.0, help="nucleus sampling (with --do_sample)")
    parser.add_argument("--top_k", type=int, default=0, help="top-k sampling, 0 = off (with --do_sample)")
    parser.add_argument("--repetition_penalty", type=float, default=1.0, help="1.0 = off (default)")
    parser.add_argument("--seed", type=int, default=42, help="sampling seed (default: 42)")
    parser.add_argument("--question", default=None, help="prompt (default: geo_r.prompts.DEFAULT_QUESTION)")
    parser.add_argument("--min_pixels", type=int, default=DEFAULT_MIN_PIXELS, help="as in eval (default: %(default)s)")
    parser.add_argument("--max_pixels", type=int, default=None,
                        help="as in eval (default: 401408; the demo's 12544 for the demo model)")
    parser.add_argument("--torch_dtype", default=None, help="bfloat16 / float16 / float32 (default: bf16 on GPU, fp32 on CPU)")
    parser.add_argument("--attn_implementation", default=None, help="sdpa (default) or flash_attention_2")
    from geo_r.data.candidates import add_candidate_arguments

    group = parser.add_argument_group(
        "retrieval candidates", "for the --examples photos, matched by record id (an upload that is byte for byte "
        "one of them gets its candidates too)")
    add_candidate_arguments(group)


def _resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the model and the defaults that depend on it; AppConfigError when there is no model to load."""
    from geo_r.defaults import DEFAULT_MAX_PIXELS
    from geo_r.demo.pipeline import DemoConfig

    paths = demo_paths()
    use_demo = args.model_name_or_path is None
    if use_demo:
        if not (paths["model"] / "config.json").is_file():
            raise AppConfigError(
                f"no --model_name_or_path given and no demo model at {paths['model']}. Run `geo-r demo` here "
                "first (about 6 minutes on CPU; it trains one), or pass --model_name_or_path DIR."
            )
        args.model_name_or_path = str(paths["model"])
    elif not Path(args.model_name_or_path).is_dir():
        raise AppConfigError(f"--model_name_or_path {args.model_name_or_path}: no such folder")
    demo = DemoConfig()
    if args.max_new_tokens is None:
        args.max_new_tokens = demo.eval_max_new_tokens if use_demo else 512
    if args.max_pixels is None:
        args.max_pixels = demo.max_pixels if use_demo else DEFAULT_MAX_PIXELS
    if args.examples is None and paths["heldout"].is_file():
        args.examples, args.example_images = str(paths["heldout"]), str(paths["images"])
    if not 0 <= args.port < 65536:
        raise AppConfigError(f"--port must be between 0 and 65535, got {args.port}")
    return args


def example_records(jsonl: str | None, folder: str) -> list[Any]:
    """Up to MAX_EXAMPLES records of a data file, one per place where the file repeats places."""
    if not jsonl:
        return []
    from geo_r.data import load_records

    records, _ = load_records(jsonl, folder or None, check_images=False)
    seen, chosen = set(), []
    for r in records:
        key = (r.country, r.city)
        if key in seen or not r.images:
            continue
        seen.add(key)
        chosen.append(r)
        if len(chosen) == MAX_EXAMPLES:
            break
    return chosen


def example_photos(jsonl: str | None, folder: str) -> list[str]:
    """The photo paths of :func:`example_records` (absolute)."""
    return [str(Path(r.images[0]).resolve()) for r in example_records(jsonl, folder)]


def example_candidates(records: list[Any], args: argparse.Namespace) -> dict[str, Any]:
    """``{photo digest: candidates}`` of the example records: from --candidates (every example needs a line in
    it) or their own ``candidates`` fields; empty when there are none."""
    from geo_r.app.engine import photo_digest
    from geo_r.data.candidates import attach_from_args, check_candidate_options

    check_candidate_options(args.num_candidates, args.candidate_radius_km)
    if args.candidates and not records:
        raise AppConfigError("--candidates gives candidates to the --examples photos: pass --examples FILE.jsonl")
    attach_from_args(records, args)
    return {photo_digest(r.images[0]): r.candidates for r in records if r.candidates}


def run(args: argparse.Namespace) -> int:
    """Load the model and serve the page until interrupted; 1 with a one-line reason for bad arguments."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from geo_r.data.report import DataConfigError, DataValidationError
    from geo_r.eval.arguments import generation_settings

    try:
        args = _resolve(args)
        settings = generation_settings(args)
        chosen = example_records(args.examples, args.example_images)
        examples = [str(Path(r.images[0]).resolve()) for r in chosen]
        candidates = example_candidates(chosen, args)
    except (AppConfigError, DataConfigError, DataValidationError, ValueError, OSError) as exc:
        print(f"geo-r app: error: {exc}", file=sys.stderr)
        return 1
    try:
        import gradio  # noqa: F401
    except ImportError:
        print('geo-r app: error: Gradio is not installed; pip install -e ".[app]" (or bash setup.sh)',
              file=sys.stderr)
        return 1
    from geo_r.app.engine import Engine
    from geo_r.app.page import CSS, build_page, theme

    print(f"geo-r app: loading {args.model_name_or_path} ...", flush=True)
    engine = Engine(args.model_name_or_path, settings, min_pixels=args.min_pixels, max_pixels=args.max_pixels,
                    dtype=args.torch_dtype, attn_implementation=args.attn_implementation, question=args.question,
                    candidates=candidates)
    label = f"examples: click one ({Path(args.examples).name})" if examples else "examples"
    page = build_page(engine, examples, label)
    allowed = sorted({str(Path(p).parent) for p in examples})
    print(f"geo-r app: serving http://{args.host}:{args.port} (Ctrl+C to stop)", flush=True)
    page.queue(default_concurrency_limit=1).launch(
        server_name=args.host, server_port=args.port, share=False, quiet=True, show_error=False,
        allowed_paths=allowed, max_file_size="100mb", theme=theme(), css=CSS, ssr_mode=False, mcp_server=False, pwa=False,
        footer_links=["settings"],
    )
    return 0
