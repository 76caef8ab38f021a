"""The leakage-aware retrieval protocol: which gallery rows a query must not see, and why.

A gallery row is dropped for a query when (first rule that applies, in this order):

* ``self_id``: it has the query's id;
* ``self_content``: its image bytes are the query's (same digest: the same photo under another id or path);
* ``same_author``: both name a photographer (``author``) and it is the same one (YFCC4k shares photographers
  with MP16, and a photographer's other shots of the same spot give away the answer);
* ``near_duplicate``: its cosine similarity to the query is at least the threshold (default 0.95: a resized,
  re-encoded or burst copy).

``standard`` keeps every row (numbers comparable with published tables) and only flags what the rules would
drop. Counts are per rule, over the rows examined until ``k`` rows were kept.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PROTOCOLS = ("leakage_aware", "standard")
RULES = ("self_id", "self_content", "same_author", "near_duplicate")
DEFAULT_NEAR_DUPLICATE = 0.95


@dataclass(frozen=True)
class QueryKey:
    """What the rules compare of a query: its id, image digest and photographer (None when unknown)."""

    id: str
    digest: str | None
    author: str | None


def leak_rule(query: QueryKey, row: Mapping[str, Any], score: float, threshold: float) -> str | None:
    """The first rule that drops ``row`` (with similarity ``score``) for ``query``, or None."""
    if row.get("id") == query.id:
        return "self_id"
    if query.digest and row.get("digest") == query.digest:
        return "self_content"
    if query.author and row.get("author") and row["author"] == query.author:
        return "same_author"
    if score >= threshold:
        return "near_duplicate"
    return None


@dataclass
class Selection:
    """The rows kept for one query (row number, score, rule that flags it in ``standard``), and the counts."""

    kept: list[tuple[int, float, str | None]]
    dropped: Counter[str]  # leakage_aware: rows dropped, by rule
    exhausted: bool  # fewer than k kept because the candidates ran out


def select(query: QueryKey, candidates: Sequence[tuple[int, float]], rows: Sequence[Mapping[str, Any]], k: int,
           protocol: str, threshold: float, complete: bool) -> Selection:
    """Apply ``protocol`` to ``candidates`` (row number, score; best first). ``complete`` says the candidates
    are every row there is, so running out of them is final rather than a reason to search deeper."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    kept: list[tuple[int, float, str | None]] = []
    dropped: Counter[str] = Counter()
    for row, score in candidates:
        if len(kept) == k:
            break
        rule = leak_rule(query, rows[row], score, threshold)
        if protocol == "standard":
            kept.append((row, score, rule))
        elif rule is None:
            kept.append((row, score, None))
        else:
            dropped[rule] += 1
    return Selection(kept, dropped, exhausted=len(kept) < k and complete)
