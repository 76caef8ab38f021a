"""Decode a training dataset's images when rows are read, and skip a row whose image fails, never the run.

The image checks before training read headers only (``geo-r validate --decode`` decodes everything), so a
file truncated or corrupted after its header, or changed on disk during a multi-day run, is first seen when
the trainer reads its row. Stock ``datasets.Image`` decoding raises there and ends the run. Instead,
:func:`skip_unreadable_images` stores the paths undecoded and decodes them with
:func:`geo_r.data.image_decode.open_rgb` in a ``datasets`` transform; a row whose image fails is replaced
by a readable row, and a warning counts the skipped images.

The replacement depends only on the failed path (the first readable row at or after ``crc32(path) % n``),
so the ``num_generations`` copies GRPO's sampler makes of a prompt, on every rank, get the same one and
every group still holds one prompt.
"""

from __future__ import annotations

import logging
import threading
import zlib
from typing import TYPE_CHECKING, Any

from geo_r.data.image_decode import UnreadableImageError, open_rgb

if TYPE_CHECKING:
    import datasets

logger = logging.getLogger(__name__)

IMAGES_COLUMN = "images"


class _DecodeOrReplace:
    """The transform: decode each row's images; a row with an unreadable image becomes its replacement."""

    def __init__(self, raw: datasets.Dataset) -> None:
        self.raw = raw  # the same rows, images as {"path", "bytes"} (not decoded)
        self.replacement: dict[str, int] = {}  # failed path -> index of the row that stands in for it
        self.skipped: dict[str, str] = {}  # failed path -> reason
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_lock")
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        out = {name: list(values) for name, values in batch.items()}
        for i, images in enumerate(batch[IMAGES_COLUMN]):
            try:
                out[IMAGES_COLUMN][i] = _decode(images)
            except UnreadableImageError as exc:
                row = self._replace(exc)
                for name in out:
                    out[name][i] = row[name]
        return out

    def _replace(self, exc: UnreadableImageError) -> dict[str, Any]:
        """The decoded replacement row for a row whose image ``exc.path`` failed (and a counted warning)."""
        with self._lock:
            first = exc.path not in self.skipped
            if first:
                self.skipped[exc.path] = exc.reason
            n_skipped = len(self.skipped)
        if first:
            logger.warning(
                "skipped a training sample: image unreadable (%s); %d unreadable image(s) skipped so far",
                exc,
                n_skipped,
            )
        n = len(self.raw)
        start = self.replacement.get(exc.path, zlib.crc32(exc.path.encode("utf-8")) % n)
        for step in range(n):
            index = (start + step) % n
            row = self.raw[index]
            try:
                row[IMAGES_COLUMN] = _decode(row[IMAGES_COLUMN])
            except UnreadableImageError as other:
                if other.path not in self.skipped:
                    with self._lock:
                        self.skipped[other.path] = other.reason
                    logger.warning("image unreadable (%s), found while replacing %s", other, exc.path)
                continue
            self.replacement[exc.path] = index
            return row
        raise RuntimeError(f"no image of the {n} training rows can be read (first failure: {exc})")


def _decode(images: list[dict[str, Any]] | None) -> list[Any]:
    """The decoded RGB images of one row (their stored paths)."""
    return [open_rgb(image["path"]) for image in images or []]


def skip_unreadable_images(dataset: datasets.Dataset) -> datasets.Dataset:
    """``dataset`` with its ``images`` column decoded on read by :func:`open_rgb`, skipping unreadable rows."""
    import datasets

    if IMAGES_COLUMN not in dataset.column_names:
        return dataset
    raw = dataset.cast_column(IMAGES_COLUMN, datasets.List(datasets.Image(decode=False)))
    return raw.with_transform(_DecodeOrReplace(raw))


def skipped_images(dataset: datasets.Dataset) -> dict[str, str]:
    """``path -> reason`` of the images a :func:`skip_unreadable_images` dataset skipped in this process."""
    transform = (getattr(dataset, "format", None) or {}).get("format_kwargs", {}).get("transform")
    return dict(transform.skipped) if isinstance(transform, _DecodeOrReplace) else {}
