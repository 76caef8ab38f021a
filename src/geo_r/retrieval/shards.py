"""The resumable pieces of an embedding run: fixed row ranges written as they finish, merged at the end.

Shard ``i`` holds rows ``[i * shard_size, (i + 1) * shard_size)`` of the gallery (in load order) and is one
``shards/shard_<i>.npz`` written atomically (a temporary file renamed into place), so a killed run leaves
whole shards only. Each stores its rows' float16 embeddings, their row numbers, their image digests, the rows
it skipped (``--skip_invalid``) with the reason, and the fingerprint of the settings it was made with;
``shards/build.json`` holds those settings in full. A rerun of the same command keeps every shard whose
fingerprint matches and embeds the rest; a shard or build.json from other settings (another encoder, other
data, another shard size) is refused with the keys that differ. Under torchrun shard ``i`` belongs to rank
``i % world_size``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geo_r.atomic_io import atomic_write
from geo_r.retrieval.layout import BUILD, RetrievalInputError, write_json

_NAME = "shard_{:06d}.npz"


def fingerprint(settings: dict[str, Any]) -> str:
    """SHA-256 of the settings' canonical JSON: equal fingerprints make interchangeable shards."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ShardPlan:
    """How ``n_rows`` rows are cut into shards of ``shard_size`` and dealt to ranks."""

    n_rows: int
    shard_size: int

    @property
    def n_shards(self) -> int:
        """Number of shards (the last may be short)."""
        return -(-self.n_rows // self.shard_size)

    def rows(self, shard: int) -> range:
        """The row numbers of one shard."""
        return range(shard * self.shard_size, min(self.n_rows, (shard + 1) * self.shard_size))

    def shards_of(self, rank: int, world_size: int) -> list[int]:
        """The shards rank ``rank`` embeds."""
        return list(range(rank, self.n_shards, world_size))


@dataclass
class Shard:
    """One finished shard: embeddings (float16, L2-normalised), their row numbers and digests, skipped rows."""

    embeddings: Any  # np.ndarray (m, d) float16
    rows: Any  # np.ndarray (m,) int64
    digests: list[str]
    skipped: dict[int, str] = field(default_factory=dict)  # row number -> reason


def shard_path(shard_dir: str | os.PathLike, shard: int) -> Path:
    """Where shard ``shard`` is stored."""
    return Path(shard_dir) / _NAME.format(shard)


def check_build(shard_dir: str | os.PathLike, settings: dict[str, Any]) -> bool:
    """True when ``shard_dir`` holds a build of these settings (resumable); False when it has none; raises
    :class:`RetrievalInputError` naming ``build.json`` and the differing keys when it is another build."""
    path = Path(shard_dir) / BUILD
    if not path.is_file():
        return False
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RetrievalInputError(f"{path}: unreadable ({exc}); remove {path.parent} or pass --overwrite") from None
    if stored.get("fingerprint") == fingerprint(settings):
        return True
    old = stored.get("settings") if isinstance(stored.get("settings"), dict) else {}
    differ = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
    raise RetrievalInputError(
        f"{path}: the shards in {path.parent} were embedded with other settings (differ: {', '.join(differ) or '?'}); "
        "they cannot be mixed with this run's. Use another --output_dir, or --overwrite to delete them."
    )


def start_build(shard_dir: str | os.PathLike, settings: dict[str, Any]) -> None:
    """Create ``shard_dir`` and record the settings its shards are made with."""
    Path(shard_dir).mkdir(parents=True, exist_ok=True)
    write_json(Path(shard_dir) / BUILD, {"fingerprint": fingerprint(settings), "settings": settings})


def done_shards(shard_dir: str | os.PathLike, plan: ShardPlan, expected: str) -> set[int]:
    """The shards already written; :class:`RetrievalInputError` naming a shard file made with other settings."""
    import numpy as np

    done = set()
    for shard in range(plan.n_shards):
        path = shard_path(shard_dir, shard)
        if not path.is_file():
            continue
        try:
            with np.load(path, allow_pickle=False) as data:
                found = str(data["fingerprint"])
        except (OSError, ValueError, KeyError, EOFError) as exc:
            raise RetrievalInputError(f"{path}: unreadable shard ({exc}); delete it and rerun") from None
        if found != expected:
            raise RetrievalInputError(
                f"{path}: written with other settings (another encoder, data or --shard_size: fingerprint "
                f"{found[:12]}, this run {expected[:12]}); use another --output_dir, or --overwrite"
            )
        done.add(shard)
    return done


def write_shard(shard_dir: str | os.PathLike, shard: int, data: Shard, expected: str) -> Path:
    """Write one shard atomically (temporary file, then rename)."""
    import numpy as np

    target = shard_path(shard_dir, shard)
    with atomic_write(target, fsync=True, binary=True) as fh:
        np.savez(
            fh,
            embeddings=np.asarray(data.embeddings, dtype=np.float16),
            rows=np.asarray(data.rows, dtype=np.int64),
            digests=np.asarray(data.digests, dtype=str),
            skipped_rows=np.asarray(sorted(data.skipped), dtype=np.int64),
            skipped_reasons=np.asarray([data.skipped[r] for r in sorted(data.skipped)], dtype=str),
            fingerprint=np.asarray(expected),
        )
    return target


def read_shard(shard_dir: str | os.PathLike, shard: int, dimension: int) -> Shard:
    """One shard back from disk."""
    import numpy as np

    with np.load(shard_path(shard_dir, shard), allow_pickle=False) as data:
        embeddings = data["embeddings"].reshape(-1, dimension)
        return Shard(
            embeddings=embeddings,
            rows=data["rows"],
            digests=[str(d) for d in data["digests"]],
            skipped={int(r): str(why) for r, why in zip(data["skipped_rows"], data["skipped_reasons"], strict=True)},
        )
