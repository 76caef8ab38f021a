"""Search the index for a batch of query vectors and apply the protocol, searching deeper until k rows remain.

FAISS returns the ``depth`` best rows; the leakage-aware protocol may drop some of them (the query itself, the
same photographer's shots, near-duplicates), so a query left with fewer than ``k`` rows is searched again at
twice the depth, until ``k`` remain or the whole gallery was searched. With an approximate (IVF-PQ) index
``rerank_factor`` times as many candidates are taken from it and re-scored exactly from the stored float16
embeddings, then re-sorted: every reported score is a true cosine, the near-duplicate rule compares true
cosines, and the compressed codes only have to get the true neighbours into a wider pool, not rank them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from geo_r.retrieval.leakage import QueryKey, Selection, select

if TYPE_CHECKING:
    import numpy as np

FIRST_EXTRA = 16  # leakage-aware: rows searched beyond k in the first pass


def _candidates(index: Any, embeddings: np.ndarray, vectors: np.ndarray, depth: int,
                rescore: bool) -> list[list[tuple[int, float]]]:
    """Per query, ``(row, score)`` best first (FAISS's ``-1`` padding dropped; exact scores when ``rescore``)."""
    import numpy as np

    scores, ids = index.search(np.ascontiguousarray(vectors, dtype=np.float32), min(depth, int(index.ntotal)))
    out = []
    for q, (s_row, i_row) in enumerate(zip(scores, ids, strict=True)):
        valid = i_row >= 0
        rows, row_scores = i_row[valid], s_row[valid]
        if rescore and len(rows):
            order = np.argsort(rows)
            exact = np.empty(len(rows), dtype=np.float32)
            exact[order] = np.asarray(embeddings[rows[order]], dtype=np.float32) @ vectors[q]
            best = np.argsort(-exact, kind="stable")
            rows, row_scores = rows[best], exact[best]
        out.append(list(zip(rows.tolist(), row_scores.tolist(), strict=True)))
    return out


def search_queries(index: Any, embeddings: np.ndarray, rows: Sequence[Mapping[str, Any]], vectors: np.ndarray,
                   keys: Sequence[QueryKey], *, k: int, protocol: str, threshold: float,
                   rescore: bool, rerank_factor: int = 1) -> list[Selection]:
    """One :class:`Selection` per query vector (rows of ``vectors``, L2-normalised float32); with ``rescore``
    ``rerank_factor`` x the depth is taken from the index and re-scored exactly."""
    ntotal = int(index.ntotal)
    depth = min(ntotal, k if protocol == "standard" else k + FIRST_EXTRA)
    results: list[Selection | None] = [None] * len(keys)
    todo = list(range(len(keys)))
    while todo:
        complete = depth >= ntotal
        found = _candidates(index, embeddings, vectors[todo], depth * (rerank_factor if rescore else 1), rescore)
        retry = []
        for q, candidates in zip(todo, found, strict=True):
            selection = select(keys[q], candidates, rows, k, protocol, threshold, complete)
            if len(selection.kept) < k and not complete:
                retry.append(q)
            else:
                results[q] = selection
        todo, depth = retry, min(ntotal, depth * 2)
    return [r for r in results if r is not None]
