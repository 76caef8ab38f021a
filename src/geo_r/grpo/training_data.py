"""The GRPO run's data phase: the training (and validation) set, from the memory-mapped cache or in memory.

With the cache (default, ``--data_cache_dir``): each node's first process checks the data (and attaches the
``--candidates`` retrieval candidates) and writes the cache (:mod:`geo_r.data.cache`); every rank memory-maps it. The split and the image decoding wrapper are the same as
in memory, so the rows a trainer sees, and their order, do not depend on where the set was built.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

logger = logging.getLogger("geo_r.grpo")

NO_CACHE = "none"
DEFAULT_CACHE_DIR = "_data_cache"  # in output_dir; Trainer.push_to_hub skips names starting with "_"


def cache_root(script: Any, training: Any) -> str | None:
    """The cache folder the flags ask for (None: no cache)."""
    value = script.data_cache_dir
    if value is not None and value.strip().lower() == NO_CACHE:
        return None
    return value or os.path.join(training.output_dir, DEFAULT_CACHE_DIR)


def load_training_data(script: Any, training: Any, reward_names: Sequence[str] = ()) -> tuple[Any, Any]:
    """``(train, val)`` datasets for the trainer: checked, with their retrieval candidates (``--candidates``), split
    with ``--data_seed`` (else ``--seed``), and with images decoded when a row is read (unreadable ones skipped);
    ``val`` is None without ``--val_split_ratio``. SystemExit when ``reward_names`` has the candidate reward and no
    row has candidates."""
    from geo_r.data import split_dataset
    from geo_r.data.candidates import check_candidate_counts
    from geo_r.data.mixture import is_mixture_config
    from geo_r.data.skip_images import skip_unreadable_images

    seed = training.data_seed if training.data_seed is not None else training.seed
    mixture = script.dataset_name if is_mixture_config(script.dataset_name) else None
    root = cache_root(script, training)
    if root is None:
        dataset, with_candidates = _in_memory(script, training, mixture, seed)
    else:
        from geo_r.data.cache import open_training_cache

        cache = open_training_cache(
            root,
            data_file_paths=None if mixture else script.data_file_paths,
            image_folders=None if mixture else (script.image_folders or script.image_root or ""),
            mixture=mixture,
            image_root=script.image_root,
            seed=seed,
            question=script.question,
            replace_questions=script.replace_questions,
            skip_invalid=script.skip_invalid,
            check_images=script.check_images,
            derive_chains=script.derive_chains,
            candidates=getattr(script, "candidates", None),
            num_candidates=getattr(script, "num_candidates", None),
            candidate_radius_km=getattr(script, "candidate_radius_km", None),
            prefer_builder=training.local_process_index == 0,
            rebuild=script.rebuild_data_cache,
        )
        dataset, with_candidates = cache.dataset, cache.manifest["with_candidates"]
    check_candidate_counts(with_candidates, len(dataset), reward_names, "grpo_jsonl.py")
    _log_ground_truth(dataset, script.log_ground_truth)
    train_ds, val_ds = split_dataset(dataset, script.val_split_ratio, seed)
    # Images decode when a row is read; a row whose image fails then is skipped with a counted warning.
    train_ds = skip_unreadable_images(train_ds)
    val_ds = skip_unreadable_images(val_ds) if val_ds is not None else None
    return train_ds, val_ds


def _in_memory(script: Any, training: Any, mixture: str | None, seed: int) -> tuple[Any, int]:
    """``--data_cache_dir none``: every rank loads and builds the whole set in its own memory; the dataset and
    how many of its rows have retrieval candidates."""
    from geo_r.data import build_grpo_dataset, load_records
    from geo_r.data.candidates import attach_from_args
    from geo_r.data.mixture import load_mixture

    # Image checks hit the file system once per image: with many ranks, only each node's first process does
    # them (a failure there stops the whole torchrun job). --skip_invalid must drop the same records on every
    # rank, so then every rank checks. A mixture's random draws are seeded alike on every rank.
    check_images = script.check_images and (script.skip_invalid or training.local_process_index == 0)
    if mixture is not None:
        records, _report = load_mixture(mixture, image_root=script.image_root, seed=seed,
                                        skip_invalid=script.skip_invalid, check_images=check_images,
                                        derive_chains=script.derive_chains)
    else:
        records, _report = load_records(
            data_file_paths=script.data_file_paths,
            image_folders=script.image_folders or script.image_root or "",
            skip_invalid=script.skip_invalid,
            check_images=check_images,
            derive_chains=script.derive_chains,
        )
    # Retrieval candidates (--candidates): into each prompt, and the 'candidates' column the rewards read.
    attach_from_args(records, script)
    dataset = build_grpo_dataset(records, question=script.question, replace_questions=script.replace_questions,
                                 decode_images=False)
    return dataset, sum(bool(r.candidates) for r in records)


def _log_ground_truth(dataset: Any, n: int) -> None:
    """Log the parsed ground truth of the first ``n`` rows (the check that lat/lon and the chain were read right)."""
    for i in range(min(n, len(dataset))):
        row = dataset[i]
        logger.info("ground truth %s: lat=%s lon=%s country=%s region=%s city=%s",
                    row["id"], row["lat"], row["lon"], row["country"], row["region"], row["city"])
