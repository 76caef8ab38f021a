"""Fill a cache folder: stream and check the data files (or a mixture's draw) into the Arrow files, keep the report.

The checks are those of :func:`geo_r.data.load_records` (the same :class:`geo_r.data.records.RecordScanner`, the
same errors and warnings with ``file:line``, ``--skip_invalid``, image checks, chains derived offline), done once
by the builder for every rank. Records go to disk chunk by chunk; the builder's memory is one chunk plus the
scanner's 28 bytes per record. A mixture's ``random:`` draws need a file's records together, so a mixture is
loaded whole by :func:`geo_r.data.mixture.load_mixture` in the builder only, then written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from geo_r.data.cache.writer import CacheWriter
from geo_r.data.records import CHUNK_RECORDS, RecordScanner, derive_chains_of, warn_border_conflicts
from geo_r.data.report import DataConfigError, DataValidationError, LoadReport, format_counts
from geo_r.data.sources import DataSource

logger = logging.getLogger(__name__)

MAX_STORED_PROBLEMS = 20


def build_from_files(
    folder: Path,
    sources: Sequence[DataSource],
    *,
    question: str,
    replace_questions: bool,
    skip_invalid: bool,
    check_images: bool,
    derive_chains: bool,
    progress: str = "auto",
) -> dict[str, Any]:
    """Check ``sources`` and write their valid records into ``folder``; the manifest's data part.
    Raises :class:`DataValidationError` / :class:`DataConfigError` as ``load_records`` would."""
    start = time.perf_counter()
    scanner = RecordScanner(sources, check_images=check_images, progress=progress,
                            what="training data: checking and caching")
    writer = CacheWriter(folder, question, replace_questions)
    derived = conflicts = 0
    try:
        for chunk in scanner.chunks():
            if scanner.report.n_errors and not skip_invalid:
                continue  # the build fails at the end; keep scanning only to report every problem
            if derive_chains:
                looked_up, clashes = derive_chains_of(chunk)
                derived, conflicts = derived + looked_up, conflicts + clashes
            writer.add(chunk)
    except BaseException:
        writer.abort()
        raise
    report = scanner.report
    report.chains_derived = derived
    warn_border_conflicts(conflicts)
    _check(report, skip_invalid, sources)
    written = writer.close()
    return {**written, "report": report_summary(report), "build_seconds": round(time.perf_counter() - start, 1)}


def build_from_records(
    folder: Path, records: list[Any], summary: dict[str, Any], *, question: str, replace_questions: bool
) -> dict[str, Any]:
    """Write already loaded and checked records (a mixture's draw) into ``folder``; the manifest's data part
    (``summary``: what to keep of the load's report, as :func:`report_summary` gives it)."""
    start = time.perf_counter()
    writer = CacheWriter(folder, question, replace_questions)
    try:
        for begin in range(0, len(records), CHUNK_RECORDS):
            writer.add(records[begin : begin + CHUNK_RECORDS])
    except BaseException:
        writer.abort()
        raise
    written = writer.close()
    return {**written, "report": summary, "build_seconds": round(time.perf_counter() - start, 1)}


def _check(report: LoadReport, skip_invalid: bool, sources: Sequence[DataSource]) -> None:
    """Raise as :func:`geo_r.data.load_records` does when the data cannot train as asked."""
    if report.n_errors and not skip_invalid:
        raise DataValidationError(report)
    if not report.records_kept:
        raise (
            DataValidationError(report)
            if report.n_errors
            else DataConfigError(f"no records in {', '.join(s.data_file for s in sources)}")
        )


def report_summary(report: LoadReport) -> dict[str, Any]:
    """What the manifest keeps of a load report: exact counts and the first problems of each category."""
    return {
        "records_read": report.records_read,
        "records_kept": report.records_kept,
        "records_invalid": report.records_invalid,
        "error_counts": dict(report.error_counts),
        "warning_counts": dict(report.warning_counts),
        "first_errors": [str(p) for p in report.errors()[:MAX_STORED_PROBLEMS]],
        "first_warnings": [str(p) for p in report.warnings()[:MAX_STORED_PROBLEMS]],
        "layouts": dict(report.layouts),
        "images_checked": report.images_checked,
        "chains_derived": report.chains_derived,
        "files": [
            {"path": f.path, "format": f.format, "records_read": f.records_read, "records_kept": f.records_kept,
             "records_invalid": f.records_invalid}
            for f in report.files
        ],
    }


def log_report(summary: dict[str, Any], *, skip_invalid: bool) -> None:
    """The log lines :func:`geo_r.data.load_records` writes, from a manifest's report (a build or a cache hit)."""
    from collections import Counter

    errors = Counter(summary["error_counts"])
    warnings = Counter(summary["warning_counts"])
    if errors and skip_invalid:
        logger.warning(
            "skip_invalid: dropped %d of %d record(s) with problems (%s); first: %s",
            summary["records_invalid"], summary["records_read"], format_counts(errors),
            (summary["first_errors"] or ["-"])[0],
        )
    if warnings:
        logger.warning("data warnings: %s; first: %s", format_counts(warnings), (summary["first_warnings"] or ["-"])[0])
