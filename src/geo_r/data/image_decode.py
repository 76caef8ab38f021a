"""Decode a real photo the way training and evaluation need it: full pixels, upright, 8-bit RGB, or one reason.

Photos scraped at scale hold every quirk PIL can open but the Qwen-VL processor cannot use as is:

* aspect ratio >= 200 (a 1-row panorama): the processor's ``smart_resize`` raises "absolute aspect ratio
  must be smaller than 200" mid-run, so such an image is refused here with that reason;
* more pixels than PIL accepts (a decompression bomb, ``> 2 * Image.MAX_IMAGE_PIXELS``): refused;
* a truncated file whose header is intact: only a full decode finds it, so :func:`open_rgb` loads every pixel;
* EXIF orientation: applied, so a portrait phone photo is upright (its width and height swap);
* CMYK, palette (with or without transparency), alpha, 16-bit grey: converted to 8-bit RGB, transparent
  pixels composited onto white (not onto whatever colour the hidden pixels hold), 16-bit scaled to 8-bit
  (PIL's plain ``convert("RGB")`` clips every value above 255 to white).

:func:`size_problem` needs only the header's width and height, so the cheap header check uses it too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

# Qwen2-VL / Qwen2.5-VL smart_resize refuses max(h, w) / min(h, w) > 200 ("must be smaller than 200").
MAX_ASPECT_RATIO = 200.0


class UnreadableImageError(OSError):
    """An image that cannot be used; ``str()`` is ``"<path>: <reason>"``."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def size_problem(width: int, height: int) -> str | None:
    """Why the processor would refuse an image of this size (None when it would not)."""
    from PIL import Image

    if width <= 0 or height <= 0:
        return f"size {width}x{height}"
    ratio = max(width, height) / min(width, height)
    if ratio >= MAX_ASPECT_RATIO:
        return (
            f"aspect ratio {ratio:.0f}:1 ({width}x{height}); the Qwen-VL processor needs it below "
            f"{MAX_ASPECT_RATIO:.0f}"
        )
    limit = Image.MAX_IMAGE_PIXELS
    if limit and width * height > 2 * limit:
        return f"decompression bomb: {width}x{height} = {width * height:,} pixels, over PIL's limit {2 * limit:,}"
    return None


def to_rgb(img: Image.Image) -> Image.Image:
    """An 8-bit RGB copy of ``img``: alpha composited on white, 16-bit and 32-bit grey scaled to 8 bits."""
    from PIL import Image

    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        import numpy as np

        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        grey = np.clip(arr * (255.0 / top), 0, 255).round().astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if mode == "F":
        import numpy as np

        arr = np.nan_to_num(np.asarray(img, dtype=np.float64))
        grey = np.clip(arr * 255.0 if arr.max(initial=0) <= 1.0 else arr, 0, 255).round().astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def open_rgb(path: str) -> Image.Image:
    """The fully decoded, EXIF-upright, 8-bit RGB image at ``path``; :class:`UnreadableImageError` otherwise."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            problem = size_problem(*img.size)
            if problem is not None:
                raise UnreadableImageError(path, problem)
            img.load()  # every pixel: a truncated file fails here, not in the middle of a training step
            upright = ImageOps.exif_transpose(img)
            return to_rgb(upright if upright is not None else img)
    except UnreadableImageError:
        raise
    except FileNotFoundError:
        raise UnreadableImageError(path, "not found") from None
    except Image.DecompressionBombError as exc:
        raise UnreadableImageError(path, f"decompression bomb: {exc}") from None
    except UnidentifiedImageError:
        raise UnreadableImageError(path, "not an image format PIL recognises") from None
    except (OSError, ValueError, SyntaxError, MemoryError) as exc:  # truncated / corrupt data, bad EXIF
        raise UnreadableImageError(path, f"{type(exc).__name__}: {exc}") from None


def first_unreadable(paths: Iterable[str]) -> UnreadableImageError | None:
    """The error of the first of ``paths`` that :func:`open_rgb` refuses, or None when all decode."""
    for path in paths:
        try:
            open_rgb(path)
        except UnreadableImageError as exc:
            return exc
    return None
