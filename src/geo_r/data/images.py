"""Image checks before training: the file exists, PIL recognises its header, the processor accepts its size.

``PIL.Image.open`` reads only the header (format, size, mode), so a check costs a stat and a small read,
not a decode. Sizes the processor refuses (aspect ratio >= 200, decompression bombs) are caught from the
header (:func:`geo_r.data.image_decode.size_problem`). A truncated file whose header is intact passes the
header check; ``decode=True`` (``geo-r validate --decode``) decodes every pixel to find it, at the cost of
a full decode per image (PIL releases the GIL while decoding, so the thread pool decodes in parallel).
Missing and unreadable files are reported as different kinds.

Paths are checked in batches on a thread pool (``workers``, default 8), meant for cluster file systems
(NFS, Lustre) where each open waits on the network; that gain is not measured here. On a local disk with
a warm page cache the threads only add GIL contention: 20,000 JPEGs took 0.47 s with 1 worker and 1.0 s
with 8 (2-core machine), i.e. 24 vs 50 us per image, so pass ``workers=1`` there.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from geo_r.data import report as k

DEFAULT_WORKERS = 8
_BATCH = 256  # paths per thread-pool task
_DECODE_BATCH = 4  # a full decode costs milliseconds, so small tasks keep every thread busy


def check_image(path: str, decode: bool = False) -> tuple[str, str] | None:
    """None when ``path`` is a file whose header PIL can read and whose size the processor accepts (and,
    with ``decode``, whose every pixel decodes); else ``(kind, message)``."""
    from PIL import Image, UnidentifiedImageError

    from geo_r.data.image_decode import UnreadableImageError, open_rgb, size_problem

    if not os.path.isfile(path):
        what = "is a directory" if os.path.isdir(path) else "not found"
        return k.IMAGE_NOT_FOUND, f"image {what}: {path}"
    try:
        with Image.open(path) as im:
            width, height = im.size
    except Image.DecompressionBombError as exc:  # would fail again when the dataset decodes it
        return k.IMAGE_UNREADABLE, f"image unreadable (too large, a decompression bomb: {exc}): {path}"
    except UnidentifiedImageError:
        return k.IMAGE_UNREADABLE, f"image unreadable (not an image format PIL recognises): {path}"
    except (OSError, ValueError, SyntaxError) as exc:  # PIL raises SyntaxError for some corrupt headers
        return k.IMAGE_UNREADABLE, f"image unreadable ({type(exc).__name__}: {exc}): {path}"
    problem = size_problem(width, height)
    if problem is not None:
        return k.IMAGE_UNREADABLE, f"image unusable ({problem}): {path}"
    if decode:
        try:
            open_rgb(path)
        except UnreadableImageError as exc:
            return k.IMAGE_UNREADABLE, f"image does not decode ({exc.reason}): {path}"
    return None


def check_images(
    paths: Iterable[str], workers: int = DEFAULT_WORKERS, decode: bool = False
) -> dict[str, tuple[str, str]]:
    """Check each distinct path once; the failures, by path. ``workers <= 1`` checks in this thread;
    ``decode`` decodes every image fully (see the module docstring)."""
    unique = list(dict.fromkeys(paths))
    size = _DECODE_BATCH if decode else _BATCH
    if workers <= 1 or len(unique) <= size:
        return _check_batch(unique, decode)
    failures: dict[str, tuple[str, str]] = {}
    batches = [unique[i : i + size] for i in range(0, len(unique), size)]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="geo-r-image-check") as pool:
        for batch_failures in pool.map(_check_batch, batches, [decode] * len(batches)):
            failures.update(batch_failures)
    return failures


def _check_batch(paths: list[str], decode: bool = False) -> dict[str, tuple[str, str]]:
    """The failures among ``paths`` (one thread-pool task: per-path tasks would cost more than the checks)."""
    failures = {}
    for path in paths:
        found = check_image(path, decode)
        if found is not None:
            failures[path] = found
    return failures
