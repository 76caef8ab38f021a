"""Read the photos of a batch of records: the decoded images and a digest of each record's image bytes.

The digest (BLAKE2b-128 over each image file's bytes, in order) is what the leakage-aware protocol compares to
find a query that is itself in the gallery under another id or path. Decoding uses
:func:`geo_r.data.image_decode.open_rgb` (upright, 8-bit RGB, truncated files caught); batches are read on a
thread pool, since PIL releases the GIL while it decodes and decoding, not the encoder, bounds a GPU run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from geo_r.data.image_decode import UnreadableImageError, open_rgb
from geo_r.data.schema import GeoRecord

if TYPE_CHECKING:
    from PIL import Image


@dataclass
class Photo:
    """One record's decoded images and content digest, or the reason they cannot be used."""

    images: list[Image.Image]
    digest: str | None
    error: str | None = None


def content_digest(paths: Sequence[str]) -> str:
    """BLAKE2b-128 (hex) of the bytes of every file in ``paths``, each prefixed by its length."""
    digest = hashlib.blake2b(digest_size=16)
    for path in paths:
        with open(path, "rb") as fh:
            data = fh.read()
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def read_photo(record: GeoRecord) -> Photo:
    """The decoded images and digest of one record; a :class:`Photo` with ``error`` (never an exception) when a
    file is missing or does not decode."""
    try:
        digest = content_digest(record.images)
        return Photo([open_rgb(path) for path in record.images], digest)
    except UnreadableImageError as exc:
        return Photo([], None, str(exc))
    except OSError as exc:
        return Photo([], None, f"{getattr(exc, 'filename', None) or record.images}: {exc.strerror or exc}")


def read_batches(
    records: Sequence[GeoRecord], batch_size: int, workers: int
) -> Iterator[tuple[Sequence[GeoRecord], list[Photo]]]:
    """``(batch, photos)`` for consecutive batches of ``records``; the next batch is read while the caller
    encodes this one (``workers`` threads; 0 reads in the calling thread)."""
    batches = [records[i : i + batch_size] for i in range(0, len(records), batch_size)]
    if workers <= 0:
        for batch in batches:
            yield batch, [read_photo(r) for r in batch]
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="geo-r-photos") as pool:
        pending = [pool.map(read_photo, batch) for batch in batches[:2]]
        for i, batch in enumerate(batches):
            photos = list(pending[i])
            if i + 2 < len(batches):
                pending.append(pool.map(read_photo, batches[i + 2]))
            yield batch, photos
