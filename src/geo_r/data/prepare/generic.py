"""Any CSV/TSV with one photo per row: columns found by common names, or named with ``--*_column`` flags.

Recognised names (case-insensitive): id ``id, img_id, image_id, photo_id``; image ``image, image_path,
path, file, filename, file_name, img, img_id``; latitude ``lat, latitude``; longitude ``lon, lng, long,
longitude``; ``country``; ``country_code, cc, iso2``; region ``region, state, province, admin1``; city
``city, town, place``; ``author``. Without an id column the image name is the id. The coordinate order is
checked from the values as for Im2GPS3k.
"""

from __future__ import annotations

from collections.abc import Iterator

from .options import PrepareOptions
from .progress import Progress
from .rows import Skip, SourceRow
from .tabular import CsvSpec, read_table

SPEC = CsvSpec(
    name="csv",
    columns={
        "id": ("id", "img_id", "image_id", "photo_id"),
        "image": ("image", "image_path", "path", "file", "filename", "file_name", "img", "img_id"),
        "lat": ("lat", "latitude"),
        "lon": ("lon", "lng", "long", "longitude"),
        "country": ("country",),
        "country_code": ("country_code", "cc", "iso2"),
        "region": ("region", "state", "province", "admin1"),
        "city": ("city", "town", "place"),
        "author": ("author",),
    },
    required=("lat", "lon"),
)


def read(opts: PrepareOptions, progress: Progress, notes: list[str]) -> Iterator[SourceRow | Skip]:
    """Rows of a generic photo table."""
    return read_table(SPEC, opts, progress, notes)
