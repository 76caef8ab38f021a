"""Im2GPS3k (``im2gps3k_places365.csv``), and the ``*_places365.csv`` files of YFCC4k/YFCC26k in the same layout.

Columns: ``IMG_ID, AUTHOR, LAT, LON, S3_Label, S16_Label, S365_Label, Prob_indoor, Prob_natural,
Prob_urban``; ``IMG_ID`` is the image file name (some copies call it ``name``). No region names: the chain
is derived offline. The metadata published before 2020 has the LAT and LON headers swapped (fixed in
TIBHannover/GeoEstimation 5e091c0); the order is detected from the values and reported
(:mod:`geo_r.data.prepare.coords`).
"""

from __future__ import annotations

from collections.abc import Iterator

from .options import PrepareOptions
from .progress import Progress
from .rows import Skip, SourceRow
from .tabular import CsvSpec, read_table

SPEC = CsvSpec(
    name="im2gps3k",
    columns={
        "id": ("IMG_ID", "name"),
        "image": ("IMG_ID", "name"),
        "lat": ("LAT", "latitude"),
        "lon": ("LON", "longitude"),
        "author": ("AUTHOR",),
    },
    required=("id", "lat", "lon"),
)


def read(opts: PrepareOptions, progress: Progress, notes: list[str]) -> Iterator[SourceRow | Skip]:
    """Rows of an Im2GPS3k-style places365 CSV."""
    return read_table(SPEC, opts, progress, notes)
