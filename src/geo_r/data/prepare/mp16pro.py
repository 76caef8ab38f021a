"""MP16-Pro (``MP16_Pro_places365.csv`` / ``MP16_Pro_filtered.csv``, HF ``Jia-py/MP16-Pro``).

Columns: ``IMG_ID, AUTHOR, LAT, LON, neighbourhood, city, county, state, region, country, country_code,
continent`` (+ places365 fields). The address keys are OpenStreetMap/Nominatim-style, so the chain comes from
the source: region = ``state``, else ``region``, else ``county``; city = ``city``; the country code is
upper-cased and the country shown by its English name. Missing levels (G3 drops rows with no country; we
keep them) are filled offline. ``IMG_ID`` holds slashes (``a5/d4/123.jpg``) while the released tar shards
name files with ``_`` instead; the image lookup tries both (see :mod:`geo_r.data.prepare.images`).
"""

from __future__ import annotations

from collections.abc import Iterator

from .options import PrepareOptions
from .progress import Progress
from .rows import Skip, SourceRow
from .tabular import CsvSpec, read_table

SPEC = CsvSpec(
    name="mp16pro",
    columns={
        "id": ("IMG_ID",),
        "image": ("IMG_ID",),
        "lat": ("LAT",),
        "lon": ("LON",),
        "author": ("AUTHOR",),
        "country": ("country",),
        "country_code": ("country_code",),
        "region": ("state", "region", "county"),
        "city": ("city",),
    },
    required=("id", "lat", "lon"),
)


def read(opts: PrepareOptions, progress: Progress, notes: list[str]) -> Iterator[SourceRow | Skip]:
    """Rows of an MP16-Pro metadata CSV."""
    return read_table(SPEC, opts, progress, notes)
