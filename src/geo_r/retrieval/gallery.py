"""The gallery side of an index folder: merging the shards into ``embeddings.npy`` + ``rows.jsonl``, reading rows.

``rows.jsonl`` has one line per embedded row, in the order of ``embeddings.npy``::

    {"id": "mp16_0001", "lat": 43.45, "lon": 142.61, "country": "Japan", "country_code": "JP",
     "region": "Hokkaido", "city": "Biei", "author": "12@N01", "digest": "<blake2b-128 of the image bytes>",
     "source": "mp16.jsonl:1", "images": ["/abs/path/0001.jpg"]}

Chain fields and ``author`` are null where unknown. The leakage-aware protocol reads ``id``, ``author`` and
``digest``; the neighbours file copies ``id``, ``lat``, ``lon``, the chain and ``author``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from geo_r.atomic_io import atomic_write
from geo_r.data.schema import CHAIN_FIELDS, GeoRecord
from geo_r.retrieval.layout import EMBEDDINGS, ROWS, RetrievalInputError
from geo_r.retrieval.shards import ShardPlan, read_shard

_SCAN = 1 << 26  # bytes of rows.jsonl scanned for line ends at a time


def row_entry(record: GeoRecord, digest: str) -> dict[str, Any]:
    """The ``rows.jsonl`` object of one embedded record."""
    return {
        "id": record.id,
        "lat": record.lat,
        "lon": record.lon,
        **{name: getattr(record, name) for name in CHAIN_FIELDS},
        "author": record.author,
        "digest": digest,
        "source": record.source,
        "images": list(record.images),
    }


def merge_shards(records: Sequence[GeoRecord], shard_dir: str | os.PathLike, plan: ShardPlan, dimension: int,
                 index_dir: str | os.PathLike) -> tuple[int, list[str]]:
    """Write ``embeddings.npy`` (float16, streamed into a memory map) and ``rows.jsonl`` from every shard, in
    row order; returns the number of rows and the skipped rows' messages. :class:`RetrievalInputError` when no
    row could be embedded."""
    import numpy as np

    counts = []
    for shard in range(plan.n_shards):
        with np.load(Path(shard_dir) / f"shard_{shard:06d}.npz", allow_pickle=False) as data:
            counts.append(int(data["rows"].shape[0]))
    total = sum(counts)
    skipped: list[str] = []
    if total == 0:
        for shard in range(plan.n_shards):
            skipped += list(read_shard(shard_dir, shard, dimension).skipped.values())
        raise RetrievalInputError(
            f"empty gallery: none of the {plan.n_rows} row(s) could be embedded ({len(skipped)} unreadable photo(s); "
            f"first: {skipped[0] if skipped else '?'})"
        )
    folder = Path(index_dir)
    tmp = folder / f".{EMBEDDINGS}.tmp"
    matrix = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(total, dimension))
    at = 0
    with atomic_write(folder / ROWS) as fh:
        for shard in range(plan.n_shards):
            part = read_shard(shard_dir, shard, dimension)
            matrix[at : at + len(part.rows)] = part.embeddings
            at += len(part.rows)
            for row, digest in zip(part.rows.tolist(), part.digests, strict=True):
                fh.write(json.dumps(row_entry(records[row], digest), ensure_ascii=False) + "\n")
            skipped += [part.skipped[r] for r in sorted(part.skipped)]
    matrix.flush()
    del matrix
    os.replace(tmp, folder / EMBEDDINGS)
    return total, skipped


class RowTable:
    """The rows of ``rows.jsonl`` without holding them as Python objects: the file is memory-mapped, line
    offsets are found once, and a row is parsed when asked for (a search looks at k + a few rows per query, so
    a 4.12M-row gallery costs its offsets, 33 MB, instead of gigabytes of dicts)."""

    def __init__(self, index_dir: str | os.PathLike, count: int) -> None:
        import mmap

        import numpy as np

        self.path = Path(index_dir) / ROWS
        with open(self.path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            self._map = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        found = []
        for start in range(0, size, _SCAN):  # newline positions, a window at a time (no file-sized temporaries)
            window = np.frombuffer(self._map[start : start + _SCAN], dtype=np.uint8)
            found.append(np.flatnonzero(window == ord("\n")) + start)
        ends = np.concatenate(found) if found else np.zeros(0, np.int64)
        if size and (not len(ends) or ends[-1] != size - 1):
            ends = np.append(ends, size)  # a last line without a newline
        self._starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64) if len(ends) else np.zeros(0, np.int64)
        self._ends = ends.astype(np.int64)
        if len(self._ends) != count:
            raise RetrievalInputError(
                f"{self.path}: {len(self._ends)} row(s), but the manifest counts {count}: the files come from "
                "different builds; rebuild the index"
            )
        self._cache: dict[int, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = self._cache.get(i)
        if row is None:
            line = self._map[int(self._starts[i]) : int(self._ends[i])]
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise RetrievalInputError(f"{self.path}:{i + 1}: invalid JSON ({exc}); rebuild the index") from None
            if not isinstance(row, dict) or not isinstance(row.get("id"), str) or "lat" not in row or "lon" not in row:
                raise RetrievalInputError(f"{self.path}:{i + 1}: not a gallery row (id, lat, lon ...); rebuild the index")
            if len(self._cache) >= 1 << 16:
                self._cache.clear()
            self._cache[i] = row
        return row
