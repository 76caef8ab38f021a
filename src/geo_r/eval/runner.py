"""The generation loop of ``geo-r eval``: skip what is done, shard over torchrun ranks, append batch by batch.

Single process: predictions go straight to ``predictions.jsonl``. Under torchrun (``WORLD_SIZE`` > 1) every
rank reads the same done set, takes every ``WORLD_SIZE``-th remaining record (``todo[rank::world]``) and
appends to its own ``predictions.rank<R>.jsonl``; after a barrier rank 0 merges the shards
(:func:`geo_r.eval.predictions.merge_shards`). The barrier uses a ``gloo`` process group (CPU tensors only, so
it works the same with or without GPUs) whose timeout is ``--ddp_timeout`` (as in training): ranks finish their
strided shards within about one batch of each other. When a rank dies or freezes, the barrier waiting on it
fails after that timeout, and the heartbeat (:mod:`geo_r.runtime.heartbeat`) names the rank. A barrier also
separates reading the done set from the first write, so every rank shards the same list.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from geo_r.data.image_decode import UnreadableImageError, first_unreadable
from geo_r.data.schema import GeoRecord
from geo_r.eval.generate import Generator
from geo_r.eval.predictions import PREDICTIONS_FILE, PredictionWriter, done_ids, prediction_line, shard_path
from geo_r.runtime.ranks import Ranks, barrier

logger = logging.getLogger(__name__)

def output_path(output_dir: str | os.PathLike, dist: Ranks) -> Path:
    """Where this process appends: ``predictions.jsonl`` alone, a rank shard under torchrun."""
    return shard_path(output_dir, dist.rank) if dist.distributed else Path(output_dir) / PREDICTIONS_FILE


def pending_records(records: Sequence[GeoRecord], done: set[str], dist: Ranks) -> list[GeoRecord]:
    """This rank's share of the records that have no prediction yet (strided, so shards differ by <= 1)."""
    todo = [r for r in records if r.id not in done]
    return todo[dist.rank :: dist.world_size]


def generate_predictions(
    records: Sequence[GeoRecord],
    generator: Generator,
    output_dir: str | os.PathLike,
    *,
    batch_size: int,
    dist: Ranks | None = None,
    distance: str = "haversine",
    progress: bool = True,
    num_samples: int = 1,
) -> int:
    """Generate and append predictions for this rank's pending records; returns how many were written.

    With ``num_samples`` > 1 each line also holds that many sampled completions (``samples``), written with
    the greedy answer in one line, so a resumed run redoes an image wholly or not at all.

    Call it on every rank; each reads the done set, waits for the others, then works on its own shard. The
    caller merges shards on rank 0 after a final :func:`barrier`.
    """
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dist = dist or Ranks()
    done = done_ids(output_dir)
    barrier(dist)  # nobody writes before every rank has read the same done set
    mine = pending_records(records, done, dist)
    if dist.is_main:
        logger.info(
            "%d of %d image(s) already predicted; %d to go on this rank (%d rank(s))",
            len(done & {r.id for r in records}),
            len(records),
            len(mine),
            dist.world_size,
        )
    written = unreadable = 0
    bar = tqdm(
        total=len(mine),
        desc=f"geo-r eval [{generator.name}]",
        unit="img",
        disable=not (progress and dist.is_main),
    )
    try:
        with PredictionWriter(output_path(output_dir, dist)) as writer:
            for start in range(0, len(mine), batch_size):
                batch = mine[start : start + batch_size]
                lines, bad = _batch_lines(generator, batch, distance, num_samples)
                unreadable += bad
                written += writer.append(lines)
                bar.update(len(batch))
    finally:
        bar.close()
    if unreadable:
        logger.warning(
            "%d image(s) on this rank could not be read: recorded as unparseable with 'image_error'", unreadable
        )
    return written


def _batch_lines(
    generator: Generator, batch: Sequence[GeoRecord], distance: str, num_samples: int = 1
) -> tuple[list[dict], int]:
    """Prediction lines for ``batch`` (with ``num_samples`` > 1, also K sampled completions each) and how many
    records had an unreadable image. One bad image costs its own record only: it is written with empty
    completions (scored as unparseable) and ``image_error``."""
    try:
        completions = generator.generate(batch)
        errors: dict[str, UnreadableImageError] = {}
    except UnreadableImageError:
        errors = {r.id: e for r in batch if (e := first_unreadable(r.images)) is not None}
        readable = [r for r in batch if r.id not in errors]
        generated = generator.generate(readable) if readable else []
        if len(generated) != len(readable):
            raise RuntimeError(
                f"{generator.name} backend returned {len(generated)} completion(s) for {len(readable)} image(s)"
            ) from None
        done = iter(generated)
        completions = ["" if r.id in errors else next(done) for r in batch]
    if len(completions) != len(batch):
        raise RuntimeError(
            f"{generator.name} backend returned {len(completions)} completion(s) for {len(batch)} image(s)"
        )
    samples: list[list[str] | None] = [None] * len(batch)
    if num_samples > 1:
        readable = [r for r in batch if r.id not in errors]
        drawn = generator.generate_samples(readable, num_samples) if readable else []
        if len(drawn) != len(readable) or any(len(d) != num_samples for d in drawn):
            raise RuntimeError(f"{generator.name} backend returned a wrong number of samples for {len(readable)} image(s)")
        done_samples = iter(drawn)
        samples = [[""] * num_samples if r.id in errors else next(done_samples) for r in batch]
    lines = []
    for record, completion, drawn_k in zip(batch, completions, samples, strict=True):
        line = prediction_line(record, completion, distance, drawn_k)
        if record.id in errors:
            line["image_error"] = str(errors[record.id])
            logger.warning("image unreadable, recorded as unparseable: %s", errors[record.id])
        lines.append(line)
    return lines, len(errors)
