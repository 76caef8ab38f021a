"""Load training records from jsonl/json files and image folders, validating everything before any model loads.

``load_records("a.jsonl:b.json", "imgs_a/:imgs_b/")`` streams every file once, recognises each record's
layout (:mod:`geo_r.data.layouts`), checks each distinct image once (:mod:`geo_r.data.images`), and collects
*all* problems with their ``file:line``. Then it either raises one :class:`DataValidationError` or, with
``skip_invalid=True``, drops the bad records and logs how many. Duplicate ids are warnings (the records are
kept). Missing region-chain fields stay None unless ``derive_chains=True`` fills them offline from
``lat``/``lon`` in one batched reverse-geocoding call.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

from geo_r.data import report as k
from geo_r.data.gc_pause import gc_paused
from geo_r.data.images import DEFAULT_WORKERS, check_images
from geo_r.data.layouts import RecordContext, parse_record
from geo_r.data.readers import detect_format, iter_raw_records
from geo_r.data.report import (
    DataConfigError,
    DataValidationError,
    FileReport,
    LoadReport,
    Problem,
    format_counts,
)
from geo_r.data.schema import CHAIN_FIELDS, GeoRecord
from geo_r.data.sources import DataSource, pair_sources

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Where:
    """Location of a kept record, for problems found after parsing (images)."""

    file_index: int
    line: int
    element: int | None


def load_records(
    data_file_paths: str | Sequence[str],
    image_folders: str | Sequence[str] | None = None,
    *,
    skip_invalid: bool = False,
    check_images: bool = True,
    derive_chains: bool = False,
    image_check_workers: int = DEFAULT_WORKERS,
) -> tuple[list[GeoRecord], LoadReport]:
    """Validated records of every data file, and the report of what was found.

    Raises :class:`DataConfigError` when a file or folder is missing or the folder count does not fit, and
    :class:`DataValidationError` when any record has a problem (unless ``skip_invalid``) or none is left.
    """
    sources = pair_sources(data_file_paths, image_folders)
    records, report = scan_records(
        sources, check_images=check_images, image_check_workers=image_check_workers
    )
    if report.n_errors:
        if not skip_invalid:
            raise DataValidationError(report)
        logger.warning(
            "skip_invalid: dropped %d of %d record(s) with problems (%s); first: %s",
            report.records_invalid,
            report.records_read,
            format_counts(report.error_counts),
            report.errors()[0],
        )
    if report.n_warnings:
        logger.warning(
            "data warnings: %s; first: %s", format_counts(report.warning_counts), report.warnings()[0]
        )
    if not records:
        raise (
            DataValidationError(report)
            if report.n_errors
            else DataConfigError(f"no records in {', '.join(s.data_file for s in sources)}")
        )
    if derive_chains:
        report.chains_derived = derive_missing_chains(records)
    logger.info(
        "loaded %d record(s) from %d file(s) (layouts: %s) in %.1f s",
        len(records),
        len(sources),
        format_counts(report.layouts),
        report.seconds,
    )
    return records, report


def scan_records(
    sources: Sequence[DataSource],
    *,
    check_images: bool = True,
    image_check_workers: int = DEFAULT_WORKERS,
    decode_images: bool = False,
) -> tuple[list[GeoRecord], LoadReport]:
    """Read and check every record of ``sources``; the valid records and the full report. Never raises on
    bad data (only on unreadable files), so callers decide what to do with the problems. ``decode_images``
    decodes every image fully instead of reading its header (``geo-r validate --decode``)."""
    start = time.perf_counter()
    scan = _Scan(sources)
    with gc_paused():
        for file_index in range(len(sources)):
            scan.read_file(file_index)
    if check_images:
        scan.drop_bad_images(image_check_workers, decode_images)
    report = scan.report
    for file_report in report.files:
        file_report.records_kept = file_report.records_read - file_report.records_invalid
    report.sort({s.data_file: i for i, s in enumerate(sources)})
    report.seconds = time.perf_counter() - start
    return scan.records, report


class _Scan:
    """The state of one pass over the data files: kept records with their locations, the report, ids seen."""

    def __init__(self, sources: Sequence[DataSource]) -> None:
        self.sources = sources
        self.report = LoadReport()
        self.records: list[GeoRecord] = []
        self.where: list[_Where] = []  # location of each kept record
        self.invalid_images: list[tuple[list[str], _Where]] = []  # images of records already invalid
        self.seen_ids: dict[str, str] = {}
        # Questions repeat across records (often one long prompt on every line): keep one copy of each.
        self.texts: dict[str, str] = {}

    def read_file(self, file_index: int) -> None:
        """Parse one file, keeping its valid records and reporting its problems."""
        source = self.sources[file_index]
        file_report = FileReport(path=source.data_file, image_folder=source.image_folder)
        self.report.files.append(file_report)
        name = os.path.basename(source.data_file)
        try:
            file_report.format = detect_format(source.path)
            for raw in iter_raw_records(source.path, file_report.format):
                file_report.records_read += 1
                if raw.error is not None:
                    file_report.records_invalid += 1
                    self.report.add(
                        Problem(k.MALFORMED_JSON, source.data_file, raw.line, raw.error, raw.element)
                    )
                    continue
                loc = f"{source.data_file}:{raw.line}"
                if raw.element is not None:
                    loc += f" [element {raw.element}]"
                default_id = f"{name}:{raw.line}" if raw.element is None else f"{name}[{raw.element}]"
                ctx = RecordContext(image_folder=source.image_folder, default_id=default_id, source=loc)
                record, found, images = parse_record(raw.value, ctx)
                where = _Where(file_index, raw.line, raw.element)
                if record is None:
                    file_report.records_invalid += 1
                    if images:
                        self.invalid_images.append((images, where))
                    for kind, message in found:
                        self.report.add(Problem(kind, source.data_file, raw.line, message, raw.element))
                    continue
                first = self.seen_ids.setdefault(record.id, loc)
                if first is not loc:  # identity: the same file listed twice repeats its locations
                    message = f"duplicate id {record.id!r} (first at {first})"
                    self.report.add(Problem(k.DUPLICATE_ID, source.data_file, raw.line, message, raw.element))
                if record.question is not None:
                    record.question = self.texts.setdefault(record.question, record.question)
                if record.system is not None:
                    record.system = self.texts.setdefault(record.system, record.system)
                file_report.layouts[record.layout] += 1
                self.records.append(record)
                self.where.append(where)
        except OSError as exc:
            raise DataConfigError(f"cannot read data file {source.data_file}: {exc}") from exc

    def drop_bad_images(self, workers: int, decode: bool = False) -> None:
        """Check every distinct image path once (of invalid records too, so all problems come out in one
        run); report the bad ones and drop the records that use them."""
        paths = [p for r in self.records for p in r.images] + [
            p for imgs, _ in self.invalid_images for p in imgs
        ]
        failures = check_images(paths, workers=workers, decode=decode)
        self.report.images_checked = len(set(paths))
        if not failures:
            return
        for images, loc in self.invalid_images:
            self._report_images(images, loc, failures)
        kept = []
        for record, loc in zip(self.records, self.where, strict=True):
            if not self._report_images(record.images, loc, failures):
                kept.append(record)
                continue
            file_report = self.report.files[loc.file_index]
            file_report.records_invalid += 1
            file_report.layouts[record.layout] -= 1
        for file_report in self.report.files:
            file_report.layouts = +file_report.layouts  # drop layouts whose records all went
        self.records = kept

    def _report_images(self, images: list[str], loc: _Where, failures: dict[str, tuple[str, str]]) -> bool:
        """Add a problem per bad image of one record; True when it had any."""
        bad = [failures[p] for p in images if p in failures]
        for kind, message in bad:
            self.report.add(
                Problem(kind, self.sources[loc.file_index].data_file, loc.line, message, loc.element)
            )
        return bool(bad)


def derive_missing_chains(records: Sequence[GeoRecord]) -> int:
    """Fill missing country/country_code/region/city offline from lat/lon, in one batched reverse-geocoding
    call; returns how many records were looked up. A record whose own ``country_code`` disagrees with the
    geocoded one (a point near a border) keeps its fields and gets nothing from the lookup, so a chain never
    mixes two countries."""
    todo = [r for r in records if r.missing_chain()]
    if not todo:
        return 0
    from geo_r.geo.regions import reverse_geocode

    chains = reverse_geocode([r.lat for r in todo], [r.lon for r in todo])
    conflicts = 0
    for record, chain in zip(todo, chains, strict=True):
        derived_code = getattr(chain, "country_code", None)
        if record.country_code is not None and derived_code and record.country_code != derived_code.upper():
            conflicts += 1
            continue
        for name in CHAIN_FIELDS:
            if getattr(record, name) is None:
                found = getattr(chain, name, None)
                setattr(record, name, found if isinstance(found, str) and found.strip() else None)
    if conflicts:
        logger.warning(
            "derive_chains: %d record(s) have a country_code that differs from the reverse-geocoded one "
            "(points near a border); their missing chain fields were left empty",
            conflicts,
        )
    return len(todo)
