"""What ``geo-r index`` and ``geo-r retrieve`` share as commands: logging set-up, bad input turned into exit
code 1 with the reason (never a traceback), and the ``python -m`` entry point."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from geo_r.retrieval.layout import RetrievalInputError


def run_command(prog: str, body: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run ``body(args)``; bad input (a reason naming the file) is printed as ``prog: error: ...`` and gives 1."""
    from geo_r.data.report import DataConfigError, DataValidationError

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    try:
        return body(args)
    except (RetrievalInputError, DataConfigError, DataValidationError, FileNotFoundError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1


def standalone_main(prog: str, doc: str | None, add_arguments: Callable[[argparse.ArgumentParser], None],
                    run: Callable[[argparse.Namespace], int], argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` with the command's own flags and run it: ``python -m geo_r.retrieval.<module> ...``."""
    parser = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))
