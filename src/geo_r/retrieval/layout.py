"""The files of an index folder, its manifest (read with checks that name the file), and the digests it records.

A manifest is the contract between ``geo-r index`` and ``geo-r retrieve``: retrieve embeds queries with the
encoder the manifest names and refuses an index whose files disagree with it, before any model loads.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
EMBEDDINGS = "embeddings.npy"
ROWS = "rows.jsonl"
FAISS_INDEX = "index.faiss"
SHARDS = "shards"
BUILD = "build.json"  # inside shards/: the settings every shard of this build was made with
FORMAT_VERSION = 1

# Distributions whose version can change an embedding or a search result.
VERSIONED_PACKAGES = ("geo-r", "torch", "transformers", "faiss-cpu", "faiss-gpu", "numpy", "pillow")

_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "format_version": int,
    "encoder": dict,
    "dimension": int,
    "count": int,
    "index": dict,
    "data": dict,
    "versions": dict,
    "files": dict,
}
_ENCODER_KEYS = ("name", "kind", "path", "model_type", "dimension", "config_sha256", "dtype")


class RetrievalInputError(ValueError):
    """Bad input to ``geo-r index`` / ``geo-r retrieve``: the message names the file (and line) and the fix."""


def read_manifest(index_dir: str | os.PathLike) -> dict[str, Any]:
    """The checked manifest of an index folder; :class:`RetrievalInputError` naming the file when the folder
    has none (an unfinished build says so), it is not valid JSON, or a key is missing or of the wrong type."""
    folder = Path(index_dir)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise RetrievalInputError(f"{folder}: index folder not found (build one with geo-r index)")
    if not path.is_file():
        unfinished = " (its shards/ folder says a geo-r index run did not finish: rerun it)" if (
            folder / SHARDS).is_dir() else ""
        raise RetrievalInputError(f"{path}: not found; {folder} is not a finished geo-r index folder{unfinished}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise RetrievalInputError(f"{path}: not UTF-8 text ({exc.reason}); the manifest is corrupted") from None
    except json.JSONDecodeError as exc:
        raise RetrievalInputError(
            f"{path}:{exc.lineno}: invalid JSON ({exc.msg}); the manifest is corrupted: rebuild the index"
        ) from None
    if not isinstance(manifest, dict):
        raise RetrievalInputError(f"{path}:1: expected a JSON object, found {type(manifest).__name__}")
    for key, kind in _REQUIRED.items():
        if not isinstance(manifest.get(key), kind) or isinstance(manifest.get(key), bool):
            raise RetrievalInputError(
                f"{path}: key {key!r} is missing or not a {getattr(kind, '__name__', kind)}; the manifest is "
                "corrupted: rebuild the index"
            )
    if manifest["format_version"] != FORMAT_VERSION:
        raise RetrievalInputError(
            f"{path}: format_version {manifest['format_version']} (this geo-r reads {FORMAT_VERSION}): rebuild the index"
        )
    missing = [key for key in _ENCODER_KEYS if key not in manifest["encoder"]]
    if missing or manifest["encoder"].get("dimension") != manifest["dimension"]:
        raise RetrievalInputError(
            f"{path}: the encoder entry lacks {missing or 'a dimension equal to the manifest dimension'}; the "
            "manifest is corrupted: rebuild the index"
        )
    if manifest["count"] < 1 or manifest["dimension"] < 1:
        raise RetrievalInputError(f"{path}: count and dimension must be positive; the manifest is corrupted")
    return manifest


def check_index_files(index_dir: str | os.PathLike, manifest: dict[str, Any], with_index: bool = True) -> None:
    """:class:`RetrievalInputError` naming the file when ``embeddings.npy``, ``rows.jsonl`` or (``with_index``)
    the FAISS index is missing, or the embeddings' shape or dtype differ from the manifest (header only)."""
    folder = Path(index_dir)
    names = [EMBEDDINGS, ROWS] + ([manifest["files"].get("index", FAISS_INDEX)] if with_index else [])
    for name in names:
        if not (folder / name).is_file():
            raise RetrievalInputError(f"{folder / name}: not found; the index folder is incomplete: rebuild it")
    shape, dtype = npy_header(folder / EMBEDDINGS)
    expected = (manifest["count"], manifest["dimension"])
    if shape != expected or dtype != "float16":
        raise RetrievalInputError(
            f"{folder / EMBEDDINGS}: {shape[0] if shape else '?'} x {shape[1] if len(shape) > 1 else '?'} {dtype}, but "
            f"{folder / MANIFEST} says {expected[0]} x {expected[1]} float16 (dimension or count mismatch): "
            "the files come from different builds; rebuild the index"
        )


def npy_header(path: str | os.PathLike) -> tuple[tuple[int, ...], str]:
    """``(shape, dtype name)`` of a .npy file, memory-mapped (nothing but the header is read); RetrievalInputError if it is not one."""
    import numpy as np

    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)  # maps the file: only the header is read
    except (OSError, ValueError, EOFError) as exc:
        raise RetrievalInputError(f"{path}: not a readable .npy file ({exc})") from None
    return tuple(int(n) for n in array.shape), array.dtype.name


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """SHA-256 of a file's bytes, read in chunks (a gallery jsonl can be gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def data_files(sources: Sequence[Any]) -> list[dict[str, Any]]:
    """The manifest's record of the gallery: each data file's path, size and SHA-256, with its image folder
    (``sources``: :class:`geo_r.data.DataSource` s)."""
    return [
        {"path": s.path, "bytes": os.path.getsize(s.path), "sha256": file_sha256(s.path),
         "image_folder": s.image_folder}
        for s in sources
    ]


def ids_digest(ids: Iterable[str]) -> str:
    """SHA-256 of the row ids in order: two builds with the same digest embed the same rows in the same order."""
    digest = hashlib.sha256()
    for row_id in ids:
        digest.update(row_id.encode("utf-8") + b"\n")
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that can change an embedding or a search (absent ones left out)."""
    import importlib.metadata as md
    import platform

    out = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    return out


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically (a reader never sees half a manifest)."""
    from geo_r.atomic_io import write_json_atomic

    write_json_atomic(path, data)
