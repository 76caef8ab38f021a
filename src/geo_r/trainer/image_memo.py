"""Process each photo's pixels once per step: a memo in front of the processor's image processor.

A GRPO batch holds ``num_generations`` copies of every prompt and TRL runs the processor over the batch twice per
rollout (tokenizing for generation, then the forward inputs), so stock every photo is resized and normalised
2 x ``num_generations`` times. :class:`ImageProcessorMemo` processes each distinct photo (keyed by a hash of its
decoded pixels, mode and size, plus the processor arguments) once, keeps the per-photo rows until the rollout
ends, and concatenates them exactly as one batched call would. :func:`undecoded_images` and
:class:`ImageDecodeMemo` do the same for JPEG decoding, which ``datasets`` (or the entrypoint's
:func:`geo_r.data.skip_images.skip_unreadable_images` transform) would do for every copy. Anything it does not
recognise (videos, tensors, unknown output fields) goes to the image processor unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from typing import Any

import torch
from PIL import Image

_FIELDS = {"pixel_values", "image_grid_thw"}


def _flatten(images: Any) -> list[Any] | None:
    """The photos of ``images`` (one photo, a list, or a list of lists per prompt) in order; None if not PIL."""
    if isinstance(images, Image.Image):
        return [images]
    if not isinstance(images, (list, tuple)):
        return None
    flat: list[Any] = []
    for item in images:
        if isinstance(item, (list, tuple)):
            flat.extend(item)
        else:
            flat.append(item)
    return flat if flat and all(isinstance(x, Image.Image) for x in flat) else None


def image_key(image: Image.Image) -> tuple[str, tuple[int, int], str]:
    """Content key of a decoded photo: mode, size and a BLAKE2b digest of its pixel bytes."""
    return image.mode, image.size, hashlib.blake2b(image.tobytes(), digest_size=16).hexdigest()


class ImageProcessorMemo:
    """Callable stand-in for an image processor: each distinct photo is processed once until :meth:`end_step`."""

    def __init__(self, image_processor: Any) -> None:
        self.image_processor = image_processor
        self._rows: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self.processed = 0  # photos really processed this step
        self.requested = 0  # photos asked for this step

    def __getattr__(self, name: str) -> Any:
        return getattr(self.image_processor, name)

    def __call__(self, images: Any = None, **kwargs: Any) -> Any:
        flat = _flatten(images)
        if flat is None or kwargs.get("return_tensors") != "pt" or kwargs.get("videos") is not None:
            return self.image_processor(images=images, **kwargs)
        from transformers import BatchFeature

        settings = repr(sorted((k, repr(v)) for k, v in kwargs.items()))
        keys = [(settings, *image_key(img)) for img in flat]
        missing: dict[tuple, Image.Image] = {}
        for key, img in zip(keys, flat, strict=True):
            if key not in self._rows and key not in missing:
                missing[key] = img
        if missing:
            out = self.image_processor(images=list(missing.values()), **kwargs)
            if set(out.keys()) != _FIELDS:
                return self.image_processor(images=images, **kwargs)
            grids = out["image_grid_thw"]
            rows = torch.split(out["pixel_values"], grids.prod(-1).tolist())
            for i, key in enumerate(missing):
                self._rows[key] = (rows[i], grids[i : i + 1])
            self.processed += len(missing)
        self.requested += len(flat)
        pixel_values = torch.cat([self._rows[k][0] for k in keys])
        grid = torch.cat([self._rows[k][1] for k in keys])
        return BatchFeature(data={"pixel_values": pixel_values, "image_grid_thw": grid})

    def forget(self) -> None:
        """Drop the processed rows (the trainer does after each rollout), keeping the step's counters."""
        self._rows.clear()

    def end_step(self) -> tuple[int, int]:
        """Forget the step's photos; return (processed, requested) for the step's log and reset them."""
        counts = (self.processed, self.requested)
        self._rows.clear()
        self.processed = self.requested = 0
        return counts


@contextlib.contextmanager
def memoized_image_processor(processor: Any, memo: ImageProcessorMemo) -> Iterator[None]:
    """Route ``processor.image_processor`` through ``memo`` inside the block (restored after, even on error)."""
    original = processor.image_processor
    processor.image_processor = memo
    try:
        yield
    finally:
        processor.image_processor = original


# ------------------------------------------------------------------------------------------ decoding once


def undecoded_images(dataset: Any) -> tuple[Any, dict[str, Any]]:
    """``dataset`` with its ``image`` / ``images`` columns left encoded, and the features that decode them.

    A ``datasets.Dataset`` decodes every row it returns, so the ``num_generations`` copies of a prompt in a GRPO
    batch decode the same file ``num_generations`` times; left encoded, the trainer decodes each file once per
    batch (:class:`ImageDecodeMemo`) with the very same ``decode_example``. A
    :func:`~geo_r.data.skip_images.skip_unreadable_images` dataset (what ``grpo_jsonl.py`` trains on) gives its
    :class:`~geo_r.data.skip_images.RowDecoder`, which decodes with ``open_rgb`` and replaces a row whose image
    fails, as its transform would. Anything else is returned as is.
    """
    import datasets

    from geo_r.data.skip_images import IMAGES_COLUMN, defer_decoding

    if not isinstance(dataset, datasets.Dataset):
        return dataset, {}
    deferred = defer_decoding(dataset)
    if deferred is not None:
        return deferred[0], {IMAGES_COLUMN: deferred[1]}
    decoders: dict[str, Any] = {}
    for name in ("image", "images"):
        feature = dataset.features.get(name)
        inner = getattr(feature, "feature", None)  # List(Image()) / Sequence(Image())
        if isinstance(feature, datasets.Image) and feature.decode:
            decoders[name] = feature
            dataset = dataset.cast_column(name, datasets.Image(mode=feature.mode, decode=False))
        elif isinstance(inner, datasets.Image) and inner.decode:
            decoders[name] = inner
            dataset = dataset.cast_column(name, datasets.List(datasets.Image(mode=inner.mode, decode=False)))
    return dataset, decoders


class ImageDecodeMemo:
    """Decodes the encoded image values of a batch's rows, each distinct file or byte string once until cleared."""

    def __init__(self, decoders: dict[str, Any]) -> None:
        self.decoders = decoders
        self._images: dict[tuple, Image.Image] = {}
        self.decoded = 0

    def _decode(self, feature: Any, value: Any) -> Any:
        if not isinstance(value, dict):
            return value  # already decoded (or None)
        raw = value.get("bytes")
        key = (value.get("path"), hashlib.blake2b(raw, digest_size=16).hexdigest() if raw else None, feature.mode)
        if key not in self._images:
            self._images[key] = feature.decode_example(value)
            self.decoded += 1
        return self._images[key]

    def decode_rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Copies of ``rows`` with their encoded images decoded (shared objects for equal files in ``rows``).

        A decoder with a ``replacement`` method (:class:`geo_r.data.skip_images.RowDecoder`) swaps a row whose
        image fails for the row it gives. Only this batch's images are kept: a GRPO batch holds every copy of its
        prompts, and an evaluation over thousands of photos must not accumulate them.
        """
        from geo_r.data.image_decode import UnreadableImageError

        self._images.clear()
        out = []
        for row in rows:
            decoded = dict(row)
            try:
                for name, feature in self.decoders.items():
                    value = decoded.get(name)
                    if isinstance(value, list):
                        decoded[name] = [self._decode(feature, v) for v in value]
                    elif value is not None:
                        decoded[name] = self._decode(feature, value)
            except UnreadableImageError as exc:
                feature = next((f for f in self.decoders.values() if hasattr(f, "replacement")), None)
                if feature is None:
                    raise
                decoded = feature.replacement(exc)
            out.append(decoded)
        return out

    def end_step(self) -> int:
        """Forget the step's images; return how many files were decoded."""
        decoded, self.decoded = self.decoded, 0
        self._images.clear()
        return decoded
