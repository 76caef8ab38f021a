"""The ``geo-r`` command: one subcommand per job, each implemented in the module that owns the job.

A subcommand module exposes ``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported
only when their subcommand runs, so ``geo-r --help`` stays fast and a missing optional dependency of
one command never breaks the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "tiny-model": ("geo_r.demo.tiny_model", "build a tiny random Qwen-VL checkpoint offline (tests, demo)"),
    "validate": ("geo_r.data.validate", "check jsonl files and image folders before training"),
    "toy-data": ("geo_r.demo.toy_data", "write a small synthetic geolocation set (jsonl + images) for quick runs"),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per entry of ``COMMANDS``."""
    parser = argparse.ArgumentParser(prog="geo-r", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module_name, help_text) in COMMANDS.items():
        # Subcommand modules are imported here only to attach their arguments; their heavy imports
        # (torch, transformers) must stay inside their run() functions.
        module = importlib.import_module(module_name)
        sp = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip())
        module.add_arguments(sp)
        sp.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``geo-r`` console script."""
    args = build_parser().parse_args(argv)
    return int(args._module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
