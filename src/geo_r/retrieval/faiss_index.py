"""Build, save, load and search the FAISS index over an index folder's embeddings; measure IVF-PQ recall.

Three kinds, all inner product over L2-normalised vectors (= cosine similarity):

* ``flat``: ``IndexFlatIP``, exact, 4 bytes per dimension (MP16-Pro at 768-d: 12.7 GB);
* ``flat_fp16``: ``IndexScalarQuantizer`` fp16, exact over the stored fp16 values, half the memory;
* ``ivfpq``: ``IndexIVFPQ``, compressed to ``pq_m`` bytes per vector (64 at 768-d: 0.3 GB for 4.12M),
  approximate; retrieve re-scores its candidates exactly from ``embeddings.npy``. Needs training on a sample;
  its recall@10 against exact search is measured at build time and kept in the manifest.

Embeddings are read from the memory-mapped float16 array in chunks, so building never holds the gallery in
float32 beyond what the index itself stores. ``bench/bench_retrieval_scale.py`` measures the three at scale.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

INDEX_TYPES = ("flat", "flat_fp16", "ivfpq")
CHUNK = 65_536  # rows converted to float32 and added at a time
DEFAULT_NPROBE = 32


@dataclass(frozen=True)
class IndexSettings:
    """How to build the index: its kind and, for ``ivfpq``, the coarse lists, code size and training sample."""

    index_type: str = "flat"
    nlist: int | None = None  # None: default_nlist(n)
    pq_m: int | None = None  # None: default_pq_m(d)
    pq_nbits: int | None = None  # None: default_pq_nbits(n)
    train_size: int | None = None  # None: min(n, 64 * max(nlist, 2 ** nbits))
    nprobe: int = DEFAULT_NPROBE
    seed: int = 0

    def resolved(self, n: int, d: int) -> dict[str, Any]:
        """The settings with every default filled in for ``n`` vectors of width ``d`` (kept in the manifest)."""
        if self.index_type not in INDEX_TYPES:
            raise ValueError(f"index type {self.index_type!r}: choose one of {', '.join(INDEX_TYPES)}")
        if self.index_type != "ivfpq":
            return {"type": self.index_type, "metric": "inner_product"}
        nlist = self.nlist or default_nlist(n)
        pq_m = self.pq_m or default_pq_m(d)
        nbits = self.pq_nbits or default_pq_nbits(n)
        if d % pq_m:
            raise ValueError(f"--pq_m {pq_m} must divide the embedding dimension {d}")
        if not 1 <= nlist <= n:
            raise ValueError(f"--nlist {nlist} must be between 1 and the gallery size {n}")
        if not 1 <= nbits <= 16 or 2**nbits > n:
            raise ValueError(f"--pq_nbits {nbits}: 2^nbits centroids need at least as many gallery rows ({n})")
        train = min(n, self.train_size or 64 * max(nlist, 2**nbits))
        if train < max(nlist, 2**nbits):
            raise ValueError(f"--train_size {train} is below the {max(nlist, 2 ** nbits)} centroids to train")
        return {"type": "ivfpq", "metric": "inner_product", "nlist": nlist, "pq_m": pq_m, "pq_nbits": nbits,
                "train_size": train, "nprobe": self.nprobe, "seed": self.seed}


def default_nlist(n: int) -> int:
    """About 4 sqrt(n) coarse lists (a power of two), at most one per 39 vectors (FAISS's training minimum)."""
    target = 2 ** round(math.log2(max(1.0, 4 * math.sqrt(n))))
    return max(1, min(target, n // 39 or 1))


def default_pq_m(d: int) -> int:
    """The largest number of sub-quantisers up to 64 that divides ``d`` (64 bytes per vector at 768-d)."""
    return max(m for m in range(1, min(64, d) + 1) if d % m == 0)


def default_pq_nbits(n: int) -> int:
    """8 bits per code (256 centroids) when the gallery allows it, fewer for a tiny one."""
    return max(1, min(8, int(math.log2(max(2, n // 4)))))


def _chunks(embeddings: np.ndarray, chunk: int = CHUNK):
    import numpy as np

    for start in range(0, embeddings.shape[0], chunk):
        yield start, np.ascontiguousarray(embeddings[start : start + chunk], dtype=np.float32)


def build_index(embeddings: np.ndarray, settings: dict[str, Any], progress: bool = False) -> Any:
    """A FAISS index over ``embeddings`` (N x d, any float dtype, e.g. a float16 memmap) per resolved
    ``settings`` (:meth:`IndexSettings.resolved`)."""
    import faiss
    import numpy as np
    from tqdm.auto import tqdm

    n, d = embeddings.shape
    kind = settings["type"]
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
    elif kind == "flat_fp16":
        index = faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    elif kind == "ivfpq":
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFPQ(quantizer, d, settings["nlist"], settings["pq_m"], settings["pq_nbits"],
                                 faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(settings["seed"])
        sample = np.sort(rng.choice(n, size=settings["train_size"], replace=False))
        logger.info("training IVF-PQ (nlist %d, m %d, %d bits) on %d of %d vectors", settings["nlist"],
                    settings["pq_m"], settings["pq_nbits"], len(sample), n)
        index.train(np.ascontiguousarray(embeddings[sample], dtype=np.float32))
        index.nprobe = settings["nprobe"]
    else:
        raise ValueError(f"unknown index type {kind!r}")
    if not index.is_trained:
        index.train(np.ascontiguousarray(embeddings[: min(n, CHUNK)], dtype=np.float32))
    with tqdm(total=n, desc=f"faiss {kind}", unit="vec", disable=not progress) as bar:
        for _, block in _chunks(embeddings):
            index.add(block)
            bar.update(len(block))
    return index


def save_index(index: Any, path: str) -> None:
    """Write the index to ``path`` (FAISS's own format)."""
    import faiss

    faiss.write_index(index, path)


def load_index(path: str, nprobe: int | None = None) -> Any:
    """Read an index; ``nprobe`` sets how many IVF lists a search visits (ignored by flat indexes)."""
    import faiss

    index = faiss.read_index(path)
    if nprobe is not None and hasattr(index, "nprobe"):
        index.nprobe = nprobe
    return index


def exact_search(embeddings: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force top-``k`` inner products of ``queries`` over ``embeddings`` (read in chunks), best first:
    ``(scores, row numbers)``; the reference IVF-PQ recall is measured against."""
    import numpy as np

    q = np.ascontiguousarray(queries, dtype=np.float32)
    k = min(k, embeddings.shape[0])
    best_s = np.full((len(q), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(q), 0), dtype=np.int64)
    for start, block in _chunks(embeddings):
        scores = q @ block.T
        if scores.shape[1] > k:  # this chunk's top k only, then merge with the best so far
            part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            scores, ids = np.take_along_axis(scores, part, 1), part + start
        else:
            ids = np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)
        s = np.concatenate([best_s, scores], axis=1)
        i = np.concatenate([best_i, ids], axis=1)
        top = np.argsort(-s, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(s, top, 1), np.take_along_axis(i, top, 1)
    return best_s, best_i


def recall_at_k(found: np.ndarray, exact: np.ndarray, k: int) -> float:
    """Mean fraction of the exact top-``k`` found in the approximate top-``k`` (rows = queries)."""
    hits = [len(set(f[:k].tolist()) & set(e[:k].tolist())) / min(k, len(e)) for f, e in zip(found, exact, strict=True)]
    return float(sum(hits) / len(hits)) if hits else float("nan")


def rerank(embeddings: np.ndarray, queries: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
    """The top-``k`` of each row of candidate ``ids`` (``-1`` = none) by exact inner product with the stored
    ``embeddings``: how retrieve re-scores an IVF-PQ index's candidates."""
    import numpy as np

    out = np.full((len(queries), k), -1, dtype=np.int64)
    for q, row in enumerate(ids):
        row = row[row >= 0]
        if not len(row):
            continue
        order = np.argsort(row)
        exact = np.empty(len(row), dtype=np.float32)
        exact[order] = np.asarray(embeddings[row[order]], dtype=np.float32) @ queries[q]
        best = row[np.argsort(-exact, kind="stable")[:k]]
        out[q, : len(best)] = best
    return out


def measure_recall(index: Any, embeddings: np.ndarray, k: int = 10, n_queries: int = 1000, seed: int = 0,
                   rerank_factor: int = 10) -> dict[str, float]:
    """Recall@``k`` of ``index`` against exact search, with ``n_queries`` gallery rows (seeded) as queries: from
    its codes alone (``recall_at_10`` for k = 10), and after re-scoring ``rerank_factor`` x k candidates
    exactly (``recall_at_10_reranked``), what retrieve does."""
    import numpy as np

    n = embeddings.shape[0]
    rows = np.sort(np.random.default_rng(seed).choice(n, size=min(n, n_queries), replace=False))
    queries = np.ascontiguousarray(embeddings[rows], dtype=np.float32)
    _, exact = exact_search(embeddings, queries, k)
    _, found = index.search(queries, min(k, n))
    _, wide = index.search(queries, min(k * rerank_factor, n))
    return {f"recall_at_{k}": recall_at_k(found, exact, k),
            f"recall_at_{k}_reranked": recall_at_k(rerank(embeddings, queries, wide, k), exact, k),
            "rerank_factor": rerank_factor}
