"""The training-data cache's key: a digest of what shapes the rows (the inputs' identity and the options).

Each data file (and a mixture yaml) counts by its absolute path, size, modification time (ns) and a BLAKE2b
digest of its first and last MiB. Not a hash of the whole content: at MP16-Pro's 4.5 GB that would be a full read
on every launch (seconds on a local disk, minutes on a cold network file system), while any edit through a
write changes the modification time. The sampled bytes also catch a different file put in place with its size
and time preserved (``cp -p``, ``rsync -t``) wherever its first or last MiB differs. Options that change the
rows are part of the key too: the question (resolved, so a changed default counts), --replace_questions,
--skip_invalid, --check_images, --derive_chains (with the reverse geocoder's version), the mixture's seed and
--image_root, each file's image folder, a --candidates neighbours file (as a data file) with --num_candidates and
--candidate_radius_km, the cache format and Geo-R's version. Image files themselves are not:
they are checked when the cache is built (an image that breaks later is still skipped when its row is read);
``--rebuild_data_cache`` rebuilds after images changed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

CACHE_FORMAT = 2  # bump when the files' layout or the way rows are built changes (2: author, candidates)
_SAMPLE = 1 << 20


def file_identity(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``{"path", "size", "mtime_ns", "sample"}`` of a file (``sample``: digest of its first and last MiB)."""
    path = os.path.abspath(path)
    st = os.stat(path)
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        digest.update(fh.read(_SAMPLE))
        if st.st_size > 2 * _SAMPLE:
            fh.seek(st.st_size - _SAMPLE)
        digest.update(fh.read(_SAMPLE))
    return {"path": path, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sample": digest.hexdigest()}


def _digest(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def cache_key(files: Sequence[Mapping[str, Any]], options: Mapping[str, Any]) -> tuple[str, str]:
    """``(key, lineage)``: ``key`` changes with any input or option; ``lineage`` only with the input paths and the
    options, so a cache whose lineage matches but whose key does not has been superseded (its files changed)."""
    import importlib.metadata as md

    try:
        version = md.version("geo-r")
    except md.PackageNotFoundError:
        version = "unknown"
    base = {"format": CACHE_FORMAT, "geo_r": version, "options": dict(options)}
    key = _digest({**base, "files": [dict(f) for f in files]})
    lineage = _digest({**base, "files": [f["path"] for f in files]})
    return key, lineage
