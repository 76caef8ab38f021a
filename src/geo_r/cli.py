"""Geo-R command-line tools (`geo-r COMMAND`): one subcommand per job, implemented by the module that owns it.

A subcommand module exposes ``add_arguments(parser)`` and ``run(args) -> int``, or ``cli_main(argv) -> int`` when
it parses its own flags (``geo-r grpo``: TRL's parser, the same as ``grpo_jsonl.py``). Only the module of the
command being run is imported, so ``geo-r --help`` stays fast and a missing optional dependency of one
command never breaks the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "tiny-model": ("geo_r.demo.tiny_model", "build a tiny random Qwen-VL checkpoint offline (tests, demo)"),
    "toy-data": ("geo_r.demo.toy_data", "write a small synthetic geolocation set (jsonl + images) for quick runs"),
    "validate": ("geo_r.data.validate", "check jsonl files and image folders before training"),
    "eval": ("geo_r.eval.cli", "batch inference + acc@1/25/200/750/2500 km, report.md, map and error CDF"),
    "prepare": ("geo_r.data.prepare.cli", "convert MP16-Pro/OSV-5M/Im2GPS3k/YFCC4k/CSV/EXIF photos to Geo-R jsonl"),
    "index": ("geo_r.retrieval.index_cli", "embed a gallery of geotagged photos + build a FAISS index (resumable, torchrun)"),
    "retrieve": ("geo_r.retrieval.retrieve_cli", "k nearest gallery rows of each query photo -> a neighbours jsonl (leakage-aware)"),
    "mine-hard": ("geo_r.data.mining.cli", "Geo-R hard-sample mining: drop samples near base-model hotspots"),
    "export-sft": ("geo_r.sft.export", "write the training jsonl as a LLaMA-Factory sharegpt set + dataset_info.json"),
    "sft": ("geo_r.sft.train", "built-in SFT warm-up (TRL SFTTrainer, loss on the answer) -> a GRPO-ready model"),
    "app": ("geo_r.app.cli", "local web page (Gradio, offline): a photo in, the streamed answer and a pin out"),
    "grpo": ("geo_r.grpo.main", "GRPO training, the same run as src/geo_r/grpo_jsonl.py (torchrun-able)"),
    "demo": ("geo_r.demo.cli", "CPU demo: tiny model + toy world, eval, SFT, eval, GRPO, eval, one table"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [
        "usage: geo-r COMMAND [options]   (geo-r COMMAND --help for a command's options)",
        "",
        (__doc__ or "").splitlines()[0],
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {help_text}" for name, (_, help_text) in COMMANDS.items()]
    lines += ["", "GRPO under torchrun: torchrun ... src/geo_r/grpo_jsonl.py (the same flags as geo-r grpo --help)"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``geo-r`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"geo-r: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(module_name)
    if hasattr(module, "cli_main"):
        return int(module.cli_main(rest) or 0)
    parser = argparse.ArgumentParser(prog=f"geo-r {name}", description=(module.__doc__ or help_text).strip(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    module.add_arguments(parser)
    return int(module.run(parser.parse_args(rest)) or 0)


if __name__ == "__main__":
    sys.exit(main())
