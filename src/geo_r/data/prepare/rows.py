"""What a format reader yields: a :class:`SourceRow` (one photo with its location) or a :class:`Skip` (why not).

Readers only parse their source; everything shared (image lookup, region chains, the SFT answer, the
summary) happens downstream in :mod:`geo_r.data.prepare.pipeline`, so each format module stays small.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Why a source row was not written. Each is counted in the summary and listed in the skipped-rows file.
MALFORMED_ROW = "malformed_row"  # wrong number of fields, undecodable text
MISSING_ID = "missing_id"
MISSING_IMAGE = "missing_image"  # the row names no image
MISSING_COORDINATES = "missing_coordinates"
BAD_COORDINATES = "bad_coordinates"  # not a number, NaN, out of range
IMAGE_NOT_FOUND = "image_not_found"
NO_GPS = "no_gps"  # EXIF: the photo carries no usable GPS position
UNREADABLE_IMAGE = "unreadable_image"  # EXIF: Pillow cannot open the file
UNSUPPORTED_IMAGE = "unsupported_image"  # EXIF: a photo format Pillow cannot read (HEIC, RAW)


@dataclass(slots=True)
class SourceRow:
    """One photo as read from a source: id, image path, true coordinates, and the chain levels it names."""

    id: str
    image: str  # relative to the images folder (or absolute), as the source names it
    lat: float
    lon: float
    where: str  # "file:line" (or the photo's path), for messages
    country: str | None = None
    country_code: str | None = None
    region: str | None = None
    city: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)  # pass-through columns (author, --keep_columns)


@dataclass(frozen=True, slots=True)
class Skip:
    """A source row that is not written: where it is, the reason (a kind above) and the detail."""

    where: str
    reason: str
    detail: str
