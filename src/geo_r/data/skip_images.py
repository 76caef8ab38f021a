"""Decode a training dataset's images when rows are read, and skip a row whose image fails, never the run.

The image checks before training read headers only (``geo-r validate --decode`` decodes everything), so a
file truncated or corrupted after its header, or changed on disk during a multi-day run, is first seen when
the trainer reads its row. Stock ``datasets.Image`` decoding raises there and ends the run. Instead,
:func:`skip_unreadable_images` stores the paths undecoded and decodes them with
:func:`geo_r.data.image_decode.open_rgb` in a ``datasets`` transform; a row whose image fails is replaced
by a readable row, and a warning counts the skipped images. A dataset that already has a transform (the
memory-mapped training cache, :mod:`geo_r.data.cache`) keeps it: its rows are built first, then decoded.

The replacement depends only on the failed path (the first readable row at or after ``crc32(path) % n``),
so the ``num_generations`` copies GRPO's sampler makes of a prompt, on every rank, get the same one and
every group still holds one prompt.

The trainer decodes each photo file once per rollout instead of once per copy: :func:`defer_decoding` hands it
the same dataset with decoding left out of the transform and a :class:`RowDecoder` that decodes (and replaces)
exactly as the transform would (:mod:`geo_r.trainer.image_memo`).
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
    """The transform: build rows (``inner``), decode each row's images; a row with an unreadable image becomes its
    replacement. With ``decode=False`` images stay encoded (the trainer's memo decodes them)."""

    def __init__(self, raw: datasets.Dataset, inner: Any = None, decode: bool = True,
                 shared: _DecodeOrReplace | None = None) -> None:
        self.raw = raw  # the same rows, images as {"path", "bytes"} (not decoded), ``inner`` applied
        self.inner = inner
        self.decode = decode
        # what was skipped and what replaces it: shared with the decoding twin of a deferred dataset
        self.replacement: dict[str, int] = shared.replacement if shared is not None else {}
        self.skipped: dict[str, str] = shared.skipped if shared is not None else {}
        self._lock = shared._lock if shared is not None else threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_lock")
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        if self.inner is not None:
            batch = self.inner(batch)
        if not self.decode:
            return batch
        out = {name: list(values) for name, values in batch.items()}
        for i, images in enumerate(batch[IMAGES_COLUMN]):
            try:
                out[IMAGES_COLUMN][i] = _decode(images)
            except UnreadableImageError as exc:
                row = self.replace(exc)
                for name in out:
                    out[name][i] = row[name]
        return out

    def replace(self, exc: UnreadableImageError) -> dict[str, Any]:
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


def _transform_of(dataset: Any) -> Any:
    """The custom transform set on a ``datasets.Dataset`` (``with_transform``), else None."""
    fmt = getattr(dataset, "format", None) or {}
    return fmt.get("format_kwargs", {}).get("transform") if fmt.get("type") == "custom" else None


def skip_unreadable_images(dataset: datasets.Dataset) -> datasets.Dataset:
    """``dataset`` with its ``images`` column decoded on read by :func:`open_rgb`, skipping unreadable rows."""
    import datasets

    inner = _transform_of(dataset)
    names = inner.column_names() if inner is not None and hasattr(inner, "column_names") else dataset.column_names
    if IMAGES_COLUMN not in names:
        return dataset
    feature = dataset.features.get(IMAGES_COLUMN)
    encoded = isinstance(getattr(feature, "feature", None), datasets.Image) and not feature.feature.decode
    # already stored undecoded (the training cache): no cast, which would rewrite a memory-mapped table
    raw = dataset if encoded else dataset.cast_column(IMAGES_COLUMN, datasets.List(datasets.Image(decode=False)))
    return raw.with_transform(_DecodeOrReplace(raw, inner))


class RowDecoder:
    """Decodes the images of rows a deferred dataset returned, as its transform would have, replacing a row whose
    image fails; used through :class:`geo_r.trainer.image_memo.ImageDecodeMemo`, which decodes each file once."""

    mode = None  # the ``datasets.Image`` attribute the memo keys on: open_rgb always gives RGB

    def __init__(self, transform: _DecodeOrReplace) -> None:
        self._transform = transform

    def decode_example(self, value: dict[str, Any]) -> Any:
        """One encoded image ``{"path", "bytes"}`` decoded by :func:`open_rgb` (UnreadableImageError if it fails)."""
        return open_rgb(value["path"])

    def replacement(self, exc: UnreadableImageError) -> dict[str, Any]:
        """The decoded row that stands in for a row whose image failed (the same one the transform would use)."""
        return self._transform.replace(exc)


def defer_decoding(dataset: Any) -> tuple[Any, RowDecoder] | None:
    """For a :func:`skip_unreadable_images` dataset: the same rows with images left encoded, and the decoder the
    trainer uses on them; None for any other dataset."""
    transform = _transform_of(dataset)
    if not isinstance(transform, _DecodeOrReplace) or not transform.decode:
        return None
    lazy = _DecodeOrReplace(transform.raw, transform.inner, decode=False, shared=transform)
    return dataset.with_transform(lazy), RowDecoder(transform)


def skipped_images(dataset: datasets.Dataset) -> dict[str, str]:
    """``path -> reason`` of the images a :func:`skip_unreadable_images` dataset skipped in this process."""
    transform = _transform_of(dataset)
    return dict(transform.skipped) if isinstance(transform, _DecodeOrReplace) else {}
