"""A folder of the user's own photos, located by the GPS position in their EXIF data (read with Pillow).

Every sub-folder is walked (sorted, so the output order is stable). A photo is written when its GPS IFD
holds latitude and longitude with their N/S/E/W references; it is listed and skipped when it has no GPS,
an incomplete or void fix (``GPSStatus`` V), the (0, 0) placeholder some cameras write without a fix, or
values out of range. HEIC/RAW files are listed as unsupported (Pillow cannot read them without plugins);
other files are ignored and counted. The id is the photo's path relative to the image folder.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .csv_source import PrepareInputError
from .options import PrepareOptions
from .progress import Progress
from .rows import BAD_COORDINATES, NO_GPS, UNREADABLE_IMAGE, UNSUPPORTED_IMAGE, Skip, SourceRow

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".tif", ".tiff", ".webp"})
UNSUPPORTED_SUFFIXES = frozenset(
    {".heic", ".heif", ".avif", ".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2"}
)

GPS_IFD = 0x8825
# GPS IFD tags (EXIF 2.3, section 4.6.6)
LAT_REF, LAT, LON_REF, LON, STATUS = 1, 2, 3, 4, 9


def read(opts: PrepareOptions, progress: Progress, notes: list[str]) -> Iterator[SourceRow | Skip]:
    """One :class:`SourceRow` per photo with a GPS position under ``opts.input``, a :class:`Skip` per other photo."""
    if not opts.input.is_dir():
        raise PrepareInputError(
            f"--input {opts.input} is not a folder (the exif format reads a folder of photos)"
        )
    root = Path(os.path.abspath(opts.input))
    base = Path(os.path.abspath(opts.images or opts.input))
    if not root.is_relative_to(base):
        raise PrepareInputError(
            f"--input {opts.input} is not inside --images {opts.images}: image paths could not be relative to it"
        )
    progress.start(None, "photo")
    others = seen = 0
    for path in _walk(root):
        if opts.limit is not None and seen >= opts.limit:
            break
        suffix = path.suffix.lower()
        if suffix not in PHOTO_SUFFIXES and suffix not in UNSUPPORTED_SUFFIXES:
            others += 1
            continue
        seen += 1
        progress.update_to(seen)
        rel = path.relative_to(base).as_posix()
        if suffix in UNSUPPORTED_SUFFIXES:
            yield Skip(
                str(path),
                UNSUPPORTED_IMAGE,
                f"{suffix} photos cannot be read by Pillow; convert them to JPEG",
            )
            continue
        position = read_gps(path)
        if isinstance(position, Skip):
            yield position
            continue
        lat, lon = position
        yield SourceRow(id=opts.id_prefix + rel, image=rel, lat=lat, lon=lon, where=str(path))
    if others:
        notes.append(f"{others} file(s) that are not photos were ignored")


def _walk(root: Path) -> Iterator[Path]:
    """Files under ``root`` in a stable order: sorted names, a folder's files before its sub-folders
    (hidden files and folders skipped)."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(folder) / name


def read_gps(path: Path) -> tuple[float, float] | Skip:
    """``(lat, lon)`` in decimal degrees from the photo's EXIF GPS IFD, or the :class:`Skip` saying why not."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            gps = dict(img.getexif().get_ifd(GPS_IFD))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        return Skip(str(path), UNREADABLE_IMAGE, f"Pillow cannot read it: {exc}")
    if not gps:
        return Skip(str(path), NO_GPS, "no GPS data in EXIF")
    if LAT not in gps or LON not in gps:
        return Skip(str(path), NO_GPS, "GPS data without latitude/longitude")
    if str(gps.get(STATUS, "A")).strip().upper().startswith("V"):
        return Skip(str(path), NO_GPS, "GPS status is V (no valid fix)")
    lat_ref, lon_ref = _ref(gps.get(LAT_REF)), _ref(gps.get(LON_REF))
    if lat_ref not in ("N", "S") or lon_ref not in ("E", "W"):
        return Skip(
            str(path), NO_GPS, f"GPS hemisphere references missing or invalid ({lat_ref!r}, {lon_ref!r})"
        )
    lat, lon = dms_to_degrees(gps[LAT]), dms_to_degrees(gps[LON])
    if lat is None or lon is None:
        return Skip(str(path), BAD_COORDINATES, f"GPS values are not numbers: {gps[LAT]!r}, {gps[LON]!r}")
    lat, lon = (-lat if lat_ref == "S" else lat), (-lon if lon_ref == "W" else lon)
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        return Skip(str(path), BAD_COORDINATES, f"GPS position ({lat}, {lon}) is out of range")
    if lat == 0.0 and lon == 0.0:
        return Skip(str(path), NO_GPS, "GPS position is (0, 0), the placeholder written without a fix")
    return lat, lon


def _ref(value: Any) -> str:
    """A hemisphere reference as one upper-case letter ("N", "S", "E", "W"), or "" when absent."""
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    return str(value).strip().strip("\x00").upper()[:1] if value is not None else ""


def dms_to_degrees(value: Any) -> float | None:
    """EXIF degrees/minutes/seconds (three rationals, or fewer) as decimal degrees; None if not finite."""
    parts = value if isinstance(value, tuple | list) else (value,)
    if not 1 <= len(parts) <= 3:
        return None
    total = 0.0
    for part, scale in zip(parts, (1.0, 60.0, 3600.0), strict=False):
        try:
            number = float(part)
        except (TypeError, ValueError, ZeroDivisionError):
            return None
        if not math.isfinite(number) or number < 0:
            return None
        total += number / scale
    return total
