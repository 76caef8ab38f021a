"""Check training data before any model is loaded: every record's layout, coordinates and images.

Reads the files exactly as training does (same ``--data_file_paths``/``--image_folders`` rules) and prints
records per file, layouts, and every kind of problem with ``file:line`` examples. The files are streamed with a
progress bar (rows/s, ETA): memory holds one chunk of records and the counts, whatever the size of the data. Exit code 0 when training
with these flags would start (no problems; with --skip_invalid: at least one valid record), 1 otherwise.
Duplicate ids are printed as warnings and do not change the exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from geo_r.data.report import Problem


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``geo-r validate`` (named as in the GRPO entrypoint, so a command line can be reused)."""
    parser.add_argument(
        "--data_file_paths",
        required=True,
        help="colon-separated .jsonl or .json (array) files, e.g. a.jsonl:b.json",
    )
    parser.add_argument(
        "--image_folders",
        default="",
        help="colon-separated image folders paired with the data files by position, or one folder for all; "
        "an empty entry means the data file's own directory (default: '')",
    )
    parser.add_argument(
        "--skip_invalid",
        action="store_true",
        help="report problems but exit 0 when valid records remain, as training with --skip_invalid would "
        "drop the invalid ones and start",
    )
    parser.add_argument(
        "--no_check_images",
        action="store_true",
        help="skip opening the images (existence and header check); much faster on slow file systems",
    )
    parser.add_argument(
        "--decode",
        action="store_true",
        help="decode every image fully, in parallel (--image_check_workers threads), instead of reading only its "
        "header: finds truncated files whose header is intact, which would otherwise fail mid-run",
    )
    parser.add_argument(
        "--derive_chains",
        action="store_true",
        help="fill missing country/region/city offline from lat/lon (reverse geocoding) and report how many",
    )
    parser.add_argument(
        "--image_check_workers",
        type=int,
        default=8,
        help="threads that check images (default: 8, for network file systems such as NFS or Lustre; "
        "1 is faster on a local disk)",
    )
    parser.add_argument(
        "--no_progress",
        action="store_true",
        help="no progress output (by default a bar on a terminal, else a line every 30 s on stderr)",
    )
    parser.add_argument(
        "--max_examples",
        type=int,
        default=5,
        help="file:line examples printed per kind of problem (default: 5)",
    )


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Validate, print the summary to ``out`` (stdout), and return the exit code."""
    from geo_r.data.records import RecordScanner, derive_chains_of, warn_border_conflicts
    from geo_r.data.report import DataConfigError, format_counts
    from geo_r.data.sources import pair_sources

    out = out or sys.stdout
    derived = complete = kept = conflicts = 0
    missing: Counter[str] = Counter()
    try:
        sources = pair_sources(args.data_file_paths, args.image_folders)
        scanner = RecordScanner(
            sources,
            check_images=not args.no_check_images,
            image_check_workers=args.image_check_workers,
            decode_images=getattr(args, "decode", False),
            progress="off" if getattr(args, "no_progress", False) else "auto",
            what="geo-r validate",
        )
        for chunk in scanner.chunks():  # counts only: no record outlives its chunk
            if args.derive_chains:
                looked_up, clashes = derive_chains_of(chunk)
                derived, conflicts = derived + looked_up, conflicts + clashes
            kept += len(chunk)
            complete += sum(not r.missing_chain() for r in chunk)
            missing.update(name for r in chunk for name in ("country", "region", "city") if getattr(r, name) is None)
    except DataConfigError as exc:
        print(f"error: {exc}", file=out)
        return 1
    report = scanner.report
    warn_border_conflicts(conflicts)

    print(f"Data files ({len(report.files)}):", file=out)
    for f in report.files:
        layouts = ", ".join(f"{name} {n}" for name, n in sorted(f.layouts.items())) or "none"
        print(
            f"  {f.path} ({f.format}; images in {f.image_folder}): {f.records_read} read, "
            f"{f.records_kept} valid, {f.records_invalid} invalid; layouts: {layouts}",
            file=out,
        )
    images = (
        "image check skipped (--no_check_images)"
        if args.no_check_images
        else f"{report.images_checked} distinct image(s) {'decoded' if getattr(args, 'decode', False) else 'checked'}"
    )
    print(
        f"Records: {report.records_read} read, {report.records_kept} valid, {report.records_invalid} invalid; "
        f"{images}; {report.seconds:.2f} s",
        file=out,
    )
    if kept:
        line = f"Region chains: {complete} of {kept} complete"
        if args.derive_chains:
            line += f" after deriving {derived} offline"
        if missing:
            line += f"; missing: {format_counts(missing)}"
            if not args.derive_chains:
                line += " (--derive_chains fills them offline from lat/lon)"
        print(line, file=out)

    _print_findings("Problems", report.errors(), report.error_counts, args.max_examples, out)
    _print_findings("Warnings", report.warnings(), report.warning_counts, args.max_examples, out)

    if not kept:
        print("Result: FAIL: no valid records", file=out)
        return 1
    if report.n_errors and not args.skip_invalid:
        print(
            f"Result: FAIL: {report.records_invalid} invalid record(s); fix them, or train with --skip_invalid "
            f"to drop them ({report.records_kept} would remain)",
            file=out,
        )
        return 1
    if report.n_errors:
        print(
            f"Result: OK with --skip_invalid: {report.records_invalid} record(s) would be dropped", file=out
        )
    else:
        print("Result: OK", file=out)
    return 0


def _print_findings(
    title: str, findings: list[Problem], counts: Counter[str], max_examples: int, out: TextIO
) -> None:
    """``title: N (kind: n, ...)`` then up to ``max_examples`` ``file:line: message`` lines per kind."""
    from geo_r.data.report import format_counts

    if not counts:
        return
    print(f"{title}: {sum(counts.values())} ({format_counts(counts)})", file=out)
    by_kind: dict[str, list[Problem]] = {}
    for finding in findings:
        by_kind.setdefault(finding.kind, []).append(finding)
    for kind, n in counts.most_common():
        print(f"  {kind} ({n}):", file=out)
        for finding in by_kind.get(kind, [])[:max_examples]:
            print(f"    {finding}", file=out)
        if n > max_examples:
            print(f"    ... and {n - max_examples} more", file=out)
