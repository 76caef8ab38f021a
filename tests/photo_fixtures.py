"""Photos with the quirks of real scraped data, made in the test (never downloaded).

Each builder writes one file and returns its path: a CMYK JPEG, a 16-bit greyscale PNG, palette PNGs with and
without transparency, an RGBA PNG, a 10x10 JPEG, an 8000x30 panorama, a JPEG truncated after its header, an
EXIF-rotated camera-sized JPEG, and a PNG whose header claims more pixels than PIL accepts (a decompression
bomb, written as a bare header: the check must refuse it without decoding anything).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

ORIENTATION = 0x0112  # EXIF tag
ROTATE_90_CW = 6  # "rotate 90 degrees clockwise to display": the stored image is landscape, shown as portrait


def camera_jpeg(path: Path, size: tuple[int, int], orientation: int | None = None, seed: int = 0) -> Path:
    """A photo-like JPEG of ``size`` (noise over a gradient, so it does not compress to nothing) with an
    optional EXIF orientation tag."""
    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), (xx + yy) * 127 // max(w + h, 1)], -1)
    noise = rng.integers(0, 32, size=(h, w, 3))
    img = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")
    exif = Image.Exif()
    if orientation is not None:
        exif[ORIENTATION] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="JPEG", quality=85, exif=exif.tobytes())
    return path


def cmyk_jpeg(path: Path) -> Path:
    """A CMYK JPEG (as print workflows save them), pure cyan."""
    Image.new("CMYK", (64, 48), (255, 0, 0, 0)).save(path, format="JPEG")
    return path


def grey16_png(path: Path) -> Path:
    """A 16-bit greyscale PNG: left half 65535 (white), right half 32768 (mid grey)."""
    arr = np.full((40, 60), 32768, dtype=np.uint16)
    arr[:, :30] = 65535
    Image.fromarray(arr).save(path, format="PNG")
    return path


def palette_png(path: Path, transparent: bool) -> Path:
    """A palette PNG: index 0 black, index 1 red; with ``transparent`` index 0 is fully transparent."""
    img = Image.new("P", (50, 40), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * (256 * 3 - 6))
    img.paste(1, (25, 0, 50, 40))
    if transparent:
        img.save(path, format="PNG", transparency=0)
    else:
        img.save(path, format="PNG")
    return path


def rgba_png(path: Path) -> Path:
    """An RGBA PNG whose left half is black but fully transparent, right half opaque green."""
    img = Image.new("RGBA", (50, 40), (0, 0, 0, 0))
    img.paste((0, 200, 0, 255), (25, 0, 50, 40))
    img.save(path, format="PNG")
    return path


def tiny_jpeg(path: Path) -> Path:
    """A 10x10 JPEG (thumbnails and icons in scraped data); the processor scales it up to min_pixels."""
    Image.new("RGB", (10, 10), (120, 60, 30)).save(path, format="JPEG")
    return path


def panorama_png(path: Path) -> Path:
    """An 8000x30 strip (aspect ratio 267): smart_resize refuses anything at or above 200."""
    Image.new("RGB", (8000, 30), (10, 120, 200)).save(path, format="PNG")
    return path


def truncated_jpeg(path: Path) -> Path:
    """A JPEG cut to a third of its bytes: the header (size, mode) is intact, the pixels are not."""
    full = path.with_name(path.stem + "_full.jpg")
    camera_jpeg(full, (320, 240), seed=3)
    data = full.read_bytes()
    full.unlink()
    path.write_bytes(data[: len(data) // 3])
    return path


def bomb_png(path: Path, width: int = 20000, height: int = 10000) -> Path:
    """A PNG header (IHDR + empty IDAT + IEND) claiming ``width`` x ``height`` 1-bit pixels: 200M by default,
    over PIL's refusal limit of 2 x 89.5M; a few dozen bytes on disk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"") + chunk(b"IEND", b""))
    return path


GOOD_QUIRKS: dict[str, tuple[str, Callable[[Path], Path]]] = {
    "cmyk": ("cmyk.jpg", cmyk_jpeg),
    "grey16": ("grey16.png", grey16_png),
    "palette": ("palette.png", lambda p: palette_png(p, transparent=False)),
    "palette_alpha": ("palette_alpha.png", lambda p: palette_png(p, transparent=True)),
    "rgba": ("rgba.png", rgba_png),
    "tiny": ("tiny.jpg", tiny_jpeg),
    "exif_rotated": ("rotated.jpg", lambda p: camera_jpeg(p, (96, 64), orientation=ROTATE_90_CW)),
}
"""Quirky photos the pipeline must read (name -> (file name, builder))."""

BAD_QUIRKS: dict[str, tuple[str, Callable[[Path], Path], str]] = {
    "panorama": ("panorama.png", panorama_png, "aspect ratio"),
    "truncated": ("truncated.jpg", truncated_jpeg, "truncated"),
    "bomb": ("bomb.png", bomb_png, "decompression bomb"),
}
"""Photos the pipeline must refuse (name -> (file name, builder, words of the reason))."""


def write_quirks(folder: Path) -> dict[str, Path]:
    """Every quirky photo in ``folder``; name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {name: build(folder / fname) for name, (fname, build) in GOOD_QUIRKS.items()}
    out.update({name: build(folder / fname) for name, (fname, build, _) in BAD_QUIRKS.items()})
    return out
