"""Load training records from jsonl/json files and image folders, validating everything before any model loads.

``load_records("a.jsonl:b.json", "imgs_a/:imgs_b/")`` streams every file once (:class:`RecordScanner`, with a
progress bar), recognises each record's layout (:mod:`geo_r.data.layouts`), checks each distinct image
(:mod:`geo_r.data.images`), and collects *all* problems with their ``file:line``. Then it either raises one
:class:`DataValidationError` or, with ``skip_invalid=True``, drops the bad records and logs how many.
Duplicate ids are warnings (the records are kept). Missing region-chain fields stay None unless
``derive_chains=True`` fills them offline from ``lat``/``lon`` in one batched reverse-geocoding call.
"""

from __future__ import annotations

import logging
import os
import time
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from geo_r.data import report as k
from geo_r.data.gc_pause import gc_paused
from geo_r.data.images import DEFAULT_WORKERS, check_images
from geo_r.data.layouts import RecordContext, parse_record
from geo_r.data.progress import RowProgress
from geo_r.data.readers import RawRecord, detect_format, iter_raw_records
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

CHUNK_RECORDS = 20_000  # records parsed, checked and handed on at a time
_MAX_INTERNED = 10_000


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
    progress: str = "auto",
) -> tuple[list[GeoRecord], LoadReport]:
    """Validated records of every data file, and the report of what was found.

    Raises :class:`DataConfigError` when a file or folder is missing or the folder count does not fit, and
    :class:`DataValidationError` when any record has a problem (unless ``skip_invalid``) or none is left.
    """
    sources = pair_sources(data_file_paths, image_folders)
    records, report = scan_records(
        sources, check_images=check_images, image_check_workers=image_check_workers, progress=progress
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
    progress: str = "auto",
) -> tuple[list[GeoRecord], LoadReport]:
    """Read and check every record of ``sources``; the valid records and the full report. Never raises on
    bad data (only on unreadable files), so callers decide what to do with the problems. ``decode_images``
    decodes every image fully instead of reading its header (``geo-r validate --decode``)."""
    scanner = RecordScanner(
        sources, check_images=check_images, image_check_workers=image_check_workers,
        decode_images=decode_images, progress=progress,
    )
    records: list[GeoRecord] = []
    for chunk in scanner.chunks():
        records.extend(chunk)
    return records, scanner.report


class RecordScanner:
    """One streaming pass over the data files: valid records in chunks, every problem in :attr:`report`.

    Memory stays flat in the number of records: a chunk of ``chunk_size`` records (and the images of its
    invalid ones) at a time, plus 28 bytes per record for the duplicate-id check (a hash and a location; the
    few records whose hashes meet are read again at the end for their ids, so a hash collision never reports
    a false duplicate). Images are checked chunk by chunk (each distinct path once per chunk). The report is
    complete once :meth:`chunks` is exhausted; a progress bar (``progress``: see
    :class:`geo_r.data.progress.RowProgress`) shows rows/s and an ETA from the bytes read.
    """

    def __init__(
        self,
        sources: Sequence[DataSource],
        *,
        check_images: bool = True,
        image_check_workers: int = DEFAULT_WORKERS,
        decode_images: bool = False,
        chunk_size: int | None = None,
        progress: str = "auto",
        what: str = "checking data",
    ) -> None:
        self.sources = sources
        self.check_images = check_images
        self.workers = image_check_workers
        self.decode = decode_images
        self.chunk_size = max(1, CHUNK_RECORDS if chunk_size is None else chunk_size)
        self.progress_mode = progress
        self.what = what
        self.report = LoadReport()
        # Questions repeat across records (often one long prompt on every line): keep one copy of each.
        self._texts: dict[str, str] = {}
        self._id_hash = array("q")
        self._id_file = array("i")
        self._id_line = array("q")
        self._id_element = array("q")  # -1: a jsonl line

    def chunks(self) -> Iterator[list[GeoRecord]]:
        """Yield the valid records, file order, ``chunk_size`` (or fewer) at a time."""
        start = time.perf_counter()
        total = sum(os.path.getsize(s.path) for s in self.sources if os.path.isfile(s.path))
        bar = RowProgress(self.what, total_bytes=total, mode=self.progress_mode)
        done_bytes = 0
        try:
            for file_index, source in enumerate(self.sources):
                file_report = FileReport(path=source.data_file, image_folder=source.image_folder)
                self.report.files.append(file_report)
                try:
                    file_report.format = detect_format(source.path)
                    raws = iter_raw_records(source.path, file_report.format)
                    while True:
                        with gc_paused():
                            batch = self._read_batch(file_index, file_report, raws, bar, done_bytes)
                        if batch is None:
                            break
                        kept = self._drop_bad_images(*batch) if self.check_images else batch[0]
                        if kept:
                            yield kept
                except OSError as exc:
                    raise DataConfigError(f"cannot read data file {source.data_file}: {exc}") from exc
                done_bytes += os.path.getsize(source.path)
            self._report_duplicate_ids()
        finally:
            bar.close()
        for file_report in self.report.files:
            file_report.records_kept = file_report.records_read - file_report.records_invalid
            file_report.layouts = +file_report.layouts  # drop layouts whose records all went
        self.report.sort({s.data_file: i for i, s in enumerate(self.sources)})
        self.report.seconds = time.perf_counter() - start

    def _read_batch(
        self, file_index: int, file_report: FileReport, raws: Iterator[RawRecord], bar: RowProgress, done_bytes: int
    ) -> tuple[list[GeoRecord], list[_Where], list[tuple[list[str], _Where]]] | None:
        """Parse up to ``chunk_size`` records of one file: (valid records, their locations, images of the
        invalid ones); None when the file is exhausted."""
        source = self.sources[file_index]
        name = os.path.basename(source.data_file)
        records: list[GeoRecord] = []
        wheres: list[_Where] = []
        invalid_images: list[tuple[list[str], _Where]] = []
        n = 0
        for raw in raws:
            n += 1
            bar.update(1, done_bytes + raw.end)
            file_report.records_read += 1
            if raw.error is not None:
                file_report.records_invalid += 1
                self.report.add(Problem(k.MALFORMED_JSON, source.data_file, raw.line, raw.error, raw.element))
            else:
                loc = f"{source.data_file}:{raw.line}"
                if raw.element is not None:
                    loc += f" [element {raw.element}]"
                ctx = RecordContext(source.image_folder, _default_id(name, raw), loc)
                record, found, images = parse_record(raw.value, ctx)
                where = _Where(file_index, raw.line, raw.element)
                if record is None:
                    file_report.records_invalid += 1
                    if images:
                        invalid_images.append((images, where))
                    for kind, message in found:
                        self.report.add(Problem(kind, source.data_file, raw.line, message, raw.element))
                else:
                    self._note_id(record.id, where)
                    if record.question is not None:
                        record.question = self._intern(record.question)
                    if record.system is not None:
                        record.system = self._intern(record.system)
                    file_report.layouts[record.layout] += 1
                    records.append(record)
                    wheres.append(where)
            if n >= self.chunk_size:
                break
        if n == 0:
            return None
        return records, wheres, invalid_images

    def _intern(self, text: str) -> str:
        """One shared copy of a repeated text (at most 10,000 distinct ones are remembered)."""
        found = self._texts.get(text)
        if found is not None:
            return found
        if len(self._texts) < _MAX_INTERNED:
            self._texts[text] = text
        return text

    def _note_id(self, record_id: str, where: _Where) -> None:
        self._id_hash.append(hash(record_id))
        self._id_file.append(where.file_index)
        self._id_line.append(where.line)
        self._id_element.append(-1 if where.element is None else where.element)

    def _drop_bad_images(
        self, records: list[GeoRecord], wheres: list[_Where], invalid_images: list[tuple[list[str], _Where]]
    ) -> list[GeoRecord]:
        """Check each distinct image path of the chunk once (of invalid records too, so all problems come
        out in one run); report the bad ones and drop the records that use them."""
        paths = list(dict.fromkeys([p for r in records for p in r.images] + [
            p for imgs, _ in invalid_images for p in imgs
        ]))
        failures = check_images(paths, workers=self.workers, decode=self.decode)
        self.report.images_checked += len(paths)
        if not failures:
            return records
        for images, loc in invalid_images:
            self._report_images(images, loc, failures)
        kept = []
        for record, loc in zip(records, wheres, strict=True):
            if not self._report_images(record.images, loc, failures):
                kept.append(record)
                continue
            file_report = self.report.files[loc.file_index]
            file_report.records_invalid += 1
            file_report.layouts[record.layout] -= 1
        return kept

    def _report_images(self, images: list[str], loc: _Where, failures: dict[str, tuple[str, str]]) -> bool:
        """Add a problem per bad image of one record; True when it had any."""
        bad = [failures[p] for p in images if p in failures]
        for kind, message in bad:
            self.report.add(
                Problem(kind, self.sources[loc.file_index].data_file, loc.line, message, loc.element)
            )
        return bool(bad)

    def _report_duplicate_ids(self) -> None:
        """A warning for every record whose id an earlier record already had (with where that one is)."""
        import numpy as np

        hashes = np.frombuffer(self._id_hash, dtype=np.int64) if len(self._id_hash) else np.empty(0, np.int64)
        if hashes.size < 2:
            return
        order = np.argsort(hashes, kind="stable")
        ordered = hashes[order]
        meets = ordered[1:] == ordered[:-1]
        if not meets.any():
            return
        candidates = np.zeros(hashes.size, dtype=bool)
        candidates[order[1:][meets]] = True
        candidates[order[:-1][meets]] = True
        positions = np.flatnonzero(candidates).tolist()  # scan order
        ids = self._ids_at(positions)
        first: dict[str, str] = {}
        for pos in positions:
            record_id = ids.get(pos)
            if record_id is None:
                continue
            file_index = self._id_file[pos]
            line, element = self._id_line[pos], self._id_element[pos]
            element_or_none = None if element < 0 else element
            data_file = self.sources[file_index].data_file
            loc = f"{data_file}:{line}" + ("" if element_or_none is None else f" [element {element_or_none}]")
            if record_id in first:
                message = f"duplicate id {record_id!r} (first at {first[record_id]})"
                self.report.add(Problem(k.DUPLICATE_ID, data_file, line, message, element_or_none))
            else:
                first[record_id] = loc

    def _ids_at(self, positions: list[int]) -> dict[int, str]:
        """The ids of the records at ``positions`` (indices in scan order), read again from their files."""
        wanted: dict[tuple[int, int, int], int] = {
            (self._id_file[p], self._id_line[p], self._id_element[p]): p for p in positions
        }
        out: dict[int, str] = {}
        for file_index in sorted({key[0] for key in wanted}):
            source = self.sources[file_index]
            name = os.path.basename(source.data_file)
            last_line = max(key[1] for key in wanted if key[0] == file_index)
            for raw in iter_raw_records(source.path):
                if raw.line > last_line:
                    break
                key = (file_index, raw.line, -1 if raw.element is None else raw.element)
                if key not in wanted or raw.error is not None:
                    continue
                ctx = RecordContext(source.image_folder, _default_id(name, raw), "")
                record, _found, _images = parse_record(raw.value, ctx)
                if record is not None:
                    out[wanted[key]] = record.id
        return out


def _default_id(name: str, raw: RawRecord) -> str:
    """The id of a record without one: ``file.jsonl:LINE`` or ``file.json[ELEMENT]``."""
    return f"{name}:{raw.line}" if raw.element is None else f"{name}[{raw.element}]"


def derive_missing_chains(records: Sequence[GeoRecord]) -> int:
    """Fill missing country/country_code/region/city offline from lat/lon, in one batched reverse-geocoding
    call; returns how many records were looked up. A record whose own ``country_code`` disagrees with the
    geocoded one (a point near a border) keeps its fields and gets nothing from the lookup, so a chain never
    mixes two countries."""
    looked_up, conflicts = derive_chains_of(records)
    warn_border_conflicts(conflicts)
    return looked_up


def warn_border_conflicts(conflicts: int) -> None:
    """The warning about records whose own country code differs from the geocoded one (none when 0)."""
    if conflicts:
        logger.warning(
            "derive_chains: %d record(s) have a country_code that differs from the reverse-geocoded one "
            "(points near a border); their missing chain fields were left empty",
            conflicts,
        )


def derive_chains_of(records: Sequence[GeoRecord]) -> tuple[int, int]:
    """:func:`derive_missing_chains` without the warning: (records looked up, border conflicts). Streaming
    callers run it chunk by chunk (each point is looked up on its own, so chunking changes nothing) and warn
    once with the total."""
    todo = [r for r in records if r.missing_chain()]
    if not todo:
        return 0, 0
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
    return len(todo), conflicts
