"""Embed records with an encoder, batch by batch: the gallery shard by shard (resumable), or queries in memory.

A record with several images gets the normalised mean of its images' vectors. A record whose photo is missing
or does not decode is reported with its ``file:line``; with ``skip_invalid`` it is left out (and listed in
the manifest), otherwise the run stops with that message before writing the shard, keeping every shard
already written, so the rerun after the fix continues where this one stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from geo_r.data.schema import GeoRecord
from geo_r.retrieval import shards
from geo_r.retrieval.layout import RetrievalInputError
from geo_r.retrieval.photos import Photo, read_batches
from geo_r.runtime.ranks import Ranks

if TYPE_CHECKING:
    import numpy as np

    from geo_r.retrieval.encoders import Encoder

logger = logging.getLogger(__name__)


@dataclass
class Embedded:
    """Embeddings of the readable records of a batch or run, with their positions, digests and the skipped."""

    vectors: list[np.ndarray] = field(default_factory=list)  # float32 rows, L2-normalised
    positions: list[int] = field(default_factory=list)  # index into the records given
    digests: list[str] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)  # position -> "file:line: reason"


def embed_batch(encoder: Encoder, batch: Sequence[GeoRecord], photos: Sequence[Photo], first: int,
                skip_invalid: bool, out: Embedded) -> None:
    """Add the vectors of one batch (positions ``first`` ..) to ``out``; an unreadable record is skipped
    (``skip_invalid``) or raises :class:`RetrievalInputError` naming its ``file:line``."""
    import numpy as np

    good: list[int] = []
    for i, (record, photo) in enumerate(zip(batch, photos, strict=True)):
        if photo.error is None:
            good.append(i)
            continue
        message = f"{record.source or record.id}: {photo.error}"
        if not skip_invalid:
            raise RetrievalInputError(
                f"{message}. Fix or remove the photo, or pass --skip_invalid to leave such rows out; the shards "
                "already written are kept and a rerun continues from them"
            )
        logger.warning("skipped (unreadable photo): %s", message)
        out.skipped[first + i] = message
    images = [image for i in good for image in photos[i].images]
    vectors = encoder.encode(images)
    at = 0
    for i in good:
        n = len(photos[i].images)
        vector = vectors[at] if n == 1 else vectors[at : at + n].mean(0)
        at += n
        out.vectors.append(vector / np.linalg.norm(vector))
        out.positions.append(first + i)
        out.digests.append(photos[i].digest or "")


def embed_records(records: Sequence[GeoRecord], encoder: Encoder, *, batch_size: int, workers: int,
                  skip_invalid: bool, progress: bool, desc: str) -> Embedded:
    """Embed ``records`` in memory (queries): vectors in order, with the skipped ones' reasons."""
    from tqdm.auto import tqdm

    out = Embedded()
    with tqdm(total=len(records), desc=desc, unit="img", disable=not progress) as bar:
        first = 0
        for batch, photos in read_batches(records, batch_size, workers):
            embed_batch(encoder, batch, photos, first, skip_invalid, out)
            first += len(batch)
            bar.update(len(batch))
    return out


def embed_gallery(records: Sequence[GeoRecord], encoder: Encoder, shard_dir: str | Path, plan: shards.ShardPlan,
                  expected: str, *, ranks: Ranks, batch_size: int, workers: int, skip_invalid: bool,
                  progress: bool) -> int:
    """Embed this rank's missing shards of ``records`` into ``shard_dir``; returns how many rows it embedded.
    The progress bar (rank 0) counts this rank's rows, starting from those its finished shards hold."""
    import numpy as np
    from tqdm.auto import tqdm

    mine = plan.shards_of(ranks.rank, ranks.world_size)
    done = shards.done_shards(shard_dir, plan, expected)
    todo = [s for s in mine if s not in done]
    total = sum(len(plan.rows(s)) for s in mine)
    finished = total - sum(len(plan.rows(s)) for s in todo)
    if ranks.is_main:
        if done:
            first = min(todo) if todo else None
            logger.info(
                "resuming: %d of %d shard(s) already embedded (%d of %d rows); %s",
                len(done), plan.n_shards, sum(len(plan.rows(s)) for s in done), plan.n_rows,
                f"continuing from shard {first} (rows {plan.rows(first).start}..)" if first is not None
                else "this rank has nothing left to embed",
            )
        else:
            logger.info("embedding %d row(s) in %d shard(s) of %d over %d rank(s)", plan.n_rows, plan.n_shards,
                        plan.shard_size, ranks.world_size)
    embedded = 0
    with tqdm(total=total, initial=finished, desc=f"geo-r index [rank {ranks.rank}]", unit="row",
              disable=not (progress and ranks.is_main), smoothing=0.1) as bar:
        for shard in todo:
            rows = plan.rows(shard)
            part = records[rows.start : rows.stop]
            out = Embedded()
            first = 0
            for batch, photos in read_batches(part, batch_size, workers):
                embed_batch(encoder, batch, photos, first, skip_invalid, out)
                first += len(batch)
                bar.update(len(batch))
            dimension = encoder.dimension
            vectors = np.stack(out.vectors) if out.vectors else np.zeros((0, dimension), np.float32)
            shards.write_shard(shard_dir, shard, shards.Shard(
                embeddings=vectors.astype(np.float16),
                rows=np.asarray(out.positions, dtype=np.int64) + rows.start,
                digests=out.digests,
                skipped={rows.start + p: why for p, why in out.skipped.items()},
            ), expected)
            embedded += len(out.positions)
    return embedded
