"""Dataset mixtures: VLM-R1 / Geo-R ``data_config/*.yaml`` files, selected with ``--dataset_name x.yaml``.

A mixture lists data files, each with the part of it to train on::

    datasets:
      - json_path: data/mp16_train.jsonl       # .jsonl or .json array, any layout load_records accepts
        image_folder: /data/mp16/images        # optional: else --image_root, else json_path's own folder
        sampling_strategy: random:10%          # optional, default all

``sampling_strategy`` is read as VLM-R1's and Geo-R's ``grpo_rec.py`` read it: ``all``; ``first:N`` (the
first N records); ``end:N`` (the last N); ``random:N`` (N records drawn without replacement); ``P%`` in place
of N means ``ceil(P * n / 100)`` of the file's n records (``random:10%`` of 1,005 records is 101). An N larger
than the file takes all of it (with a warning). The records of all entries are concatenated in entry order.

Where Geo-R differs from ``grpo_rec.py`` on purpose:

* ``random`` draws from a generator seeded with ``--data_seed`` (else ``--seed``) and the entry's position,
  so a run is reproducible on every rank and editing one entry does not re-draw the others (``grpo_rec.py``
  shuffles with Python's unseeded global ``random``). The drawn records keep their file order.
* An unknown strategy (``frist:10``), a strategy without its number (``first``), a negative number, a
  number after ``all``, an unknown key or a non-string strategy is an error naming the yaml line
  (``grpo_rec.py`` silently keeps the whole file). ``end:0`` selects nothing (``list[-0:]`` kept everything).
* Relative paths are taken from the working directory, as in ``grpo_rec.py``; a missing file is reported
  before anything is loaded, with the yaml-relative path suggested when that one exists.

Every record of a listed file is parsed and validated by :func:`geo_r.data.load_records` (a bad line fails
the run even when it is not drawn, as ``json.loads`` did), but images are checked only for the records
drawn: ``first:1000`` of a 4-million-photo file opens 1,000 images, not 4 million.
"""

from __future__ import annotations

import logging
import math
import os
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from geo_r.data.images import DEFAULT_WORKERS, check_images
from geo_r.data.records import derive_missing_chains, load_records
from geo_r.data.report import (
    DataConfigError,
    DataValidationError,
    FileReport,
    LoadReport,
    Problem,
    format_counts,
)
from geo_r.data.schema import GeoRecord

logger = logging.getLogger(__name__)

MIXTURE_SUFFIXES = (".yaml", ".yml")
STRATEGIES = ("all", "first", "end", "random")
ENTRY_KEYS = ("json_path", "image_folder", "sampling_strategy")
_STRATEGY_RE = re.compile(r"\s*([A-Za-z]+)\s*(?::(.*))?")
_COUNT_RE = re.compile(r"\s*\+?(\d+)\s*")
_PERCENT_RE = re.compile(r"\s*\+?(\d+(?:\.\d*)?|\.\d+)\s*%\s*")
_SOURCE_RE = re.compile(r"(?P<file>.*):(?P<line>\d+)(?: \[element (?P<element>\d+)\])?")


def is_mixture_config(name: str | os.PathLike[str] | None) -> bool:
    """True when ``--dataset_name`` names a mixture yaml (by its suffix, as ``grpo_rec.py`` decides)."""
    return name is not None and str(name).lower().endswith(MIXTURE_SUFFIXES)


@dataclass(frozen=True, slots=True)
class SamplingStrategy:
    """Which records of a file to use: ``kind`` with a ``count`` or a ``percent`` (``all`` has neither)."""

    kind: str
    count: int | None = None
    percent: Fraction | None = None

    def __str__(self) -> str:
        if self.count is not None:
            return f"{self.kind}:{self.count}"
        if self.percent is not None:
            return f"{self.kind}:{float(self.percent):g}%"
        return self.kind

    def requested(self, n: int) -> int:
        """How many records the strategy asks for out of ``n`` (may exceed ``n``)."""
        if self.count is not None:
            return self.count
        if self.percent is not None:
            return math.ceil(self.percent * n / 100)  # exact: Fraction arithmetic, no float rounding
        return n

    def size(self, n: int) -> int:
        """How many records of ``n`` it selects."""
        return min(self.requested(n), n)

    def select(self, n: int, rng: random.Random) -> list[int]:
        """Indices (ascending) of the selected records among ``n``; ``rng`` is used by ``random`` only."""
        size = self.size(n)
        if self.kind == "first":
            return list(range(size))
        if self.kind == "end":
            return list(range(n - size, n))
        if self.kind == "random":
            return sorted(rng.sample(range(n), size))
        return list(range(n))


def parse_sampling_strategy(value: Any) -> SamplingStrategy:
    """``"first:1000"``, ``"end:3000"``, ``"random:999"``, ``"random:10%"`` or ``"all"`` as a strategy.

    Names are case-insensitive and blanks around the parts are allowed; anything else raises ValueError
    saying what is wrong (the caller adds the file and line).
    """
    if isinstance(value, dict):
        raise ValueError(
            f"sampling_strategy must be a string such as 'first:1000', found a mapping {value!r}: write it "
            "without a space after ':' (first:1000) or quote it"
        )
    if not isinstance(value, str):
        raise ValueError(f"sampling_strategy must be a string such as 'first:1000', found {value!r}")
    m = _STRATEGY_RE.fullmatch(value)
    kind = m.group(1).lower() if m else None
    if m is None or kind not in STRATEGIES:
        raise ValueError(
            f"unknown sampling_strategy {value!r}; use all, first:N, end:N, random:N, or P% in place of N "
            "(e.g. random:10%)"
        )
    amount = m.group(2)
    if kind == "all":
        if amount is not None:
            raise ValueError(f"sampling_strategy {value!r}: 'all' takes no number")
        return SamplingStrategy("all")
    if amount is None or not amount.strip():
        raise ValueError(f"sampling_strategy {value!r} needs a number: {kind}:N or {kind}:P%")
    if count := _COUNT_RE.fullmatch(amount):
        return SamplingStrategy(kind, count=int(count.group(1)))
    if percent := _PERCENT_RE.fullmatch(amount):
        return SamplingStrategy(kind, percent=Fraction(percent.group(1)))
    raise ValueError(
        f"sampling_strategy {value!r}: {amount.strip()!r} is not a record count (N >= 0) or a percentage (P%)"
    )


@dataclass(frozen=True, slots=True)
class MixtureEntry:
    """One ``datasets:`` item: the data file, its image folder and its sampling strategy."""

    index: int  # 0-based position in the yaml
    line: int  # 1-based line of the item in the yaml
    json_path: str  # as written (user-expanded); relative to the working directory
    image_folder: str  # absolute, or "" for the data file's own folder
    strategy: SamplingStrategy


@dataclass(slots=True)
class EntryReport:
    """What one entry contributed: valid records in its file, records drawn, drawn records with bad images."""

    entry: MixtureEntry
    records_available: int
    records_selected: int
    images_failed: int = 0
    load: LoadReport = field(default_factory=LoadReport)


@dataclass(slots=True)
class MixtureReport:
    """Per-entry counts of a loaded mixture, plus image checks, derived chains and duplicate ids."""

    config: str
    entries: list[EntryReport] = field(default_factory=list)
    images_checked: int = 0
    chains_derived: int = 0
    duplicate_ids: int = 0

    @property
    def records_selected(self) -> int:
        """Records in the mixture (drawn, minus those dropped for bad images)."""
        return sum(e.records_selected - e.images_failed for e in self.entries)

    def lines(self) -> list[str]:
        """One line per entry, for the log: ``[1] a.jsonl (images: x/): first:16 -> 16 of 32 record(s)``."""
        out = []
        for e in self.entries:
            images = e.entry.image_folder or "its own folder"
            line = (
                f"[{e.entry.index + 1}] {e.entry.json_path} (images: {images}): {e.entry.strategy} -> "
                f"{e.records_selected} of {e.records_available} record(s)"
            )
            if e.images_failed:
                line += f", {e.images_failed} dropped for bad images"
            out.append(line)
        return out


def read_mixture(config: str | os.PathLike[str], image_root: str | None = None) -> list[MixtureEntry]:
    """The entries of a mixture yaml, with every path checked; one :class:`DataConfigError` lists all problems
    as ``yaml:line: what``. ``image_root`` (Geo-R's ``--image_root``) is the image folder of entries without
    their own ``image_folder``."""
    import yaml

    path = Path(config)
    if not path.is_file():
        raise DataConfigError(f"dataset mixture not found: {config} (--dataset_name)")
    if image_root and not Path(image_root).expanduser().is_dir():
        raise DataConfigError(f"--image_root {image_root}: no such folder")
    text = path.read_text(encoding="utf-8")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{config}:{mark.line + 1}" if mark is not None else str(config)
        problem = getattr(exc, "problem", None) or str(exc)
        raise DataConfigError(f"{where}: not valid YAML ({problem})") from None
    if not isinstance(data, dict) or not isinstance(root, yaml.MappingNode):
        raise DataConfigError(f"{config}:1: expected a mapping with a 'datasets:' list of json_path entries")
    key_nodes = {key.value: value for key, value in root.value if isinstance(key, yaml.ScalarNode)}
    unknown = sorted(str(key) for key in data if key != "datasets")
    if unknown:
        raise DataConfigError(
            f"{config}:1: unknown top-level key(s) {', '.join(unknown)}; only 'datasets' is read"
        )
    items, node = data.get("datasets"), key_nodes.get("datasets")
    if not isinstance(items, list) or not items or not isinstance(node, yaml.SequenceNode):
        line = node.start_mark.line + 1 if node is not None else 1
        raise DataConfigError(f"{config}:{line}: 'datasets' must be a non-empty list of json_path entries")
    default_folder = os.path.abspath(os.path.expanduser(image_root)) if image_root else ""
    entries: list[MixtureEntry] = []
    problems: list[str] = []
    for index, (item, item_node) in enumerate(zip(items, node.value, strict=True)):
        entry = _read_entry(path, index, item, item_node, default_folder, problems)
        if entry is not None:
            entries.append(entry)
    if problems:
        raise DataConfigError(
            f"{len(problems)} problem(s) in dataset mixture {config}:\n  " + "\n  ".join(problems)
        )
    return entries


def _read_entry(
    config: Path, index: int, item: Any, node: Any, default_folder: str, problems: list[str]
) -> MixtureEntry | None:
    """One ``datasets:`` item, or None with its problems added as ``yaml:line: what``."""
    import yaml

    line = node.start_mark.line + 1
    if not isinstance(item, dict) or not isinstance(node, yaml.MappingNode):
        problems.append(
            f"{config}:{line}: entry {index + 1} must be a mapping with json_path (found {item!r})"
        )
        return None
    lines = {
        key.value: value.start_mark.line + 1 for key, value in node.value if isinstance(key, yaml.ScalarNode)
    }
    before = len(problems)
    unknown = [str(key) for key in item if key not in ENTRY_KEYS]
    if unknown:
        problems.append(
            f"{config}:{line}: unknown key(s) {', '.join(unknown)} in entry {index + 1}; known keys: "
            f"{', '.join(ENTRY_KEYS)}"
        )
    json_path = item.get("json_path")
    if not isinstance(json_path, str) or not json_path.strip():
        problems.append(
            f"{config}:{lines.get('json_path', line)}: entry {index + 1} needs a json_path (a file path)"
        )
    else:
        json_path = os.path.expanduser(json_path.strip())
        if not os.path.isfile(json_path):
            problems.append(f"{config}:{lines['json_path']}: {_not_found('data file', json_path, config)}")
    try:
        strategy = parse_sampling_strategy(item.get("sampling_strategy", "all"))
    except ValueError as exc:
        problems.append(f"{config}:{lines.get('sampling_strategy', line)}: {exc}")
    folder = item.get("image_folder")
    image_folder = default_folder
    if folder is not None and not isinstance(folder, str):
        problems.append(
            f"{config}:{lines['image_folder']}: image_folder must be a folder path, found {folder!r}"
        )
    elif folder is not None and folder.strip():
        image_folder = os.path.abspath(os.path.expanduser(folder.strip()))
        if not os.path.isdir(image_folder):
            problems.append(
                f"{config}:{lines['image_folder']}: {_not_found('image folder', folder.strip(), config)}"
            )
    if len(problems) > before:
        return None
    return MixtureEntry(index, line, json_path, image_folder, strategy)


def _not_found(what: str, path: str, config: Path) -> str:
    """``"data file not found: x"`` plus where relative paths are looked for, and the yaml-relative hit."""
    message = f"{what} not found: {path}"
    if not os.path.isabs(path):
        message += f" (relative paths are taken from the working directory, {os.getcwd()}"
        beside = config.parent / path
        if beside.exists():
            message += f"; {beside} exists: write that path, or run from the yaml's folder"
        message += ")"
    return message


def load_mixture(
    config: str | os.PathLike[str],
    image_root: str | None = None,
    *,
    seed: int = 42,
    skip_invalid: bool = False,
    check_images: bool = True,
    derive_chains: bool = False,
    image_check_workers: int = DEFAULT_WORKERS,
) -> tuple[list[GeoRecord], MixtureReport]:
    """The records a mixture yaml selects, in entry order, and what each entry contributed.

    Each file is validated by :func:`geo_r.data.load_records` (same errors, same ``skip_invalid``); then its
    strategy picks records (``random`` seeded by ``seed`` and the entry's position); then the images of the
    picked records are checked. Raises :class:`DataConfigError` for a bad yaml or a mixture left empty and
    :class:`DataValidationError` for bad records or images (unless ``skip_invalid``).
    """
    entries = read_mixture(config, image_root)
    report = MixtureReport(config=str(config))
    records: list[GeoRecord] = []
    loaded: dict[tuple[str, str], tuple[list[GeoRecord], LoadReport]] = {}  # a file listed twice is read once
    for entry in entries:
        key = (os.path.abspath(entry.json_path), entry.image_folder)
        if key not in loaded:
            loaded[key] = load_records(
                [entry.json_path],
                [entry.image_folder],
                skip_invalid=skip_invalid,
                check_images=False,
                derive_chains=False,
                image_check_workers=image_check_workers,
            )
        found, load = loaded[key]
        rng = random.Random(f"geo-r-mixture:{seed}:{entry.index}")
        chosen = [found[i] for i in entry.strategy.select(len(found), rng)]
        if entry.strategy.requested(len(found)) > len(found):
            logger.warning(
                "%s: entry %d asks for %s but %s has %d valid record(s): all of them are used (records are "
                "never repeated)",
                config,
                entry.index + 1,
                entry.strategy,
                entry.json_path,
                len(found),
            )
        if not chosen:
            logger.warning(
                "%s: entry %d (%s, %s) selects no records",
                config,
                entry.index + 1,
                entry.json_path,
                entry.strategy,
            )
        report.entries.append(EntryReport(entry, len(found), len(chosen), load=load))
        records.extend(chosen)
    if check_images:
        records = _check_drawn_images(records, report, skip_invalid, image_check_workers)
    if not records:
        raise DataConfigError(f"dataset mixture {config} selects no records ({'; '.join(report.lines())})")
    counts = Counter(r.id for r in records)
    report.duplicate_ids = sum(n - 1 for n in counts.values() if n > 1)
    if report.duplicate_ids:
        example = next(i for i, n in counts.items() if n > 1)
        logger.warning(
            "%s: %d record(s) repeat an id already drawn by another entry (e.g. %r, drawn %d times): entries "
            "that overlap train on those photos more than once",
            config,
            report.duplicate_ids,
            example,
            counts[example],
        )
    if derive_chains:
        report.chains_derived = derive_missing_chains(records)
    logger.info(
        "dataset mixture %s: %d record(s) from %d entr%s",
        config,
        len(records),
        len(entries),
        "y" if len(entries) == 1 else "ies",
    )
    for line in report.lines():
        logger.info("  %s", line)
    return records, report


def _check_drawn_images(
    records: list[GeoRecord], report: MixtureReport, skip_invalid: bool, workers: int
) -> list[GeoRecord]:
    """Check the images of the drawn records; drop the bad ones (``skip_invalid``) or raise naming each."""
    failures = check_images([p for r in records for p in r.images], workers=workers)
    report.images_checked = len({p for r in records for p in r.images})
    if not failures:
        return records
    problems = LoadReport()
    files: dict[int, FileReport] = {}
    kept: list[GeoRecord] = []
    position = 0
    for entry_report in report.entries:
        file_report = FileReport(
            path=entry_report.entry.json_path, image_folder=entry_report.entry.image_folder
        )
        file_report.records_read = entry_report.records_selected
        files[entry_report.entry.index] = file_report
        for record in records[position : position + entry_report.records_selected]:
            bad = [failures[p] for p in record.images if p in failures]
            if not bad:
                kept.append(record)
                continue
            entry_report.images_failed += 1
            file_report.records_invalid += 1
            where = _SOURCE_RE.fullmatch(record.source)
            for kind, message in bad:
                if where is None:
                    problems.add(Problem(kind, record.source or record.id, 0, message))
                else:
                    element = where.group("element")
                    problems.add(
                        Problem(
                            kind,
                            where.group("file"),
                            int(where.group("line")),
                            message,
                            int(element) if element is not None else None,
                        )
                    )
        position += entry_report.records_selected
    problems.files = list(files.values())
    if not skip_invalid:
        raise DataValidationError(problems)
    logger.warning(
        "skip_invalid: dropped %d of %d drawn record(s) with bad images (%s); first: %s",
        problems.records_invalid,
        len(records),
        format_counts(problems.error_counts),
        problems.errors()[0],
    )
    return kept
