"""The formats ``geo-r prepare`` reads: name -> reader, one module each, imported only when chosen."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .options import PrepareOptions
from .progress import Progress
from .rows import Skip, SourceRow

Reader = Callable[[PrepareOptions, Progress, list[str]], Iterator[SourceRow | Skip]]


@dataclass(frozen=True)
class FormatInfo:
    """One input format: its reader module, a line of help, and how its images and columns work."""

    name: str
    module: str
    help: str
    tabular: bool = True  # a table whose columns --*_column / --keep_columns / --coordinate_order apply to
    flatten_slashes: bool = False  # images may be stored with "/" in the name replaced by "_"

    def reader(self) -> Reader:
        """The module's ``read`` function."""
        return importlib.import_module(f"geo_r.data.prepare.{self.module}").read  # type: ignore[no-any-return]


FORMATS: dict[str, FormatInfo] = {
    f.name: f
    for f in (
        FormatInfo(
            "mp16pro",
            "mp16pro",
            "MP16-Pro metadata CSV (IMG_ID, AUTHOR, LAT, LON, city, state, country, ...)",
            flatten_slashes=True,
        ),
        FormatInfo(
            "osv5m",
            "osv5m",
            "OSV-5M train.csv/test.csv (id, latitude, longitude, country, region, city, ...)",
        ),
        FormatInfo(
            "im2gps3k",
            "im2gps3k",
            "im2gps3k_places365.csv (IMG_ID, AUTHOR, LAT, LON, ...); swapped headers detected",
        ),
        FormatInfo(
            "yfcc4k", "yfcc4k", "yfcc4k_places365.csv, or raw yfcc4k.txt YFCC100M rows (lon before lat)"
        ),
        FormatInfo(
            "csv", "generic", "any CSV/TSV: columns by common names or --id_column/--lat_column/... flags"
        ),
        FormatInfo(
            "exif",
            "exif",
            "a folder of your own photos, located by their EXIF GPS (sub-folders included)",
            tabular=False,
        ),
    )
}
