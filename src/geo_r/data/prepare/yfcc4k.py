"""YFCC4k metadata in either of its two published forms, told apart by the first line.

* ``yfcc4k_places365.csv`` (``IMG_ID, LAT, LON, ...``, as G3 / GeoRanker use it): read like Im2GPS3k.
* ``yfcc4k.txt``: raw YFCC100M rows, tab-separated, no header. The 25-field form (with a line number and a
  hash, as REVERSE's loader reads it) has the photo id in field 1 and **longitude in field 12, latitude in
  field 13** (0-based; lon before lat); the original 23-field YFCC100M form has them in fields 0, 10 and 11.
  Images are named ``{photo_id}.jpg`` unless ``--image_pattern`` says otherwise; the author is the user NSID.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from .csv_source import PrepareInputError
from .im2gps3k import SPEC as PLACES365_SPEC
from .options import PrepareOptions
from .progress import Progress
from .rows import Skip, SourceRow
from .tabular import CsvSpec, read_table

_TAIL = (
    "user_nsid",
    "user_nickname",
    "date_taken",
    "date_uploaded",
    "capture_device",
    "title",
    "description",
    "user_tags",
    "machine_tags",
    "longitude",
    "latitude",
    "accuracy",
    "photo_url",
    "download_url",
    "license_name",
    "license_url",
    "server_id",
    "farm_id",
    "secret",
    "secret_original",
    "extension",
    "marker",
)
RAW_HEADERS: dict[int, tuple[str, ...]] = {
    25: ("line_number", "photo_id", "hash", *_TAIL),  # yfcc100m_dataset with line numbers and hashes
    23: ("photo_id", *_TAIL),  # the original YFCC100M release
}
RAW_COLUMNS = {
    "id": ("photo_id",),
    "lat": ("latitude",),
    "lon": ("longitude",),
    "author": ("user_nsid",),
}


def read(opts: PrepareOptions, progress: Progress, notes: list[str]) -> Iterator[SourceRow | Skip]:
    """Rows of ``yfcc4k_places365.csv`` or of raw ``yfcc4k.txt``."""
    first = _first_line(opts)
    header = [h.strip().strip('"').lower() for h in first.split(",")]
    if "\t" not in first and ("img_id" in header or "lat" in header):
        spec = dataclasses.replace(PLACES365_SPEC, name="yfcc4k")
        notes.append("read as a places365 CSV (IMG_ID, LAT, LON)")
        return read_table(spec, opts, progress, notes)
    n_fields = len(first.split("\t"))
    if n_fields not in RAW_HEADERS:
        raise PrepareInputError(
            f"{opts.input}:1: neither a places365 CSV header (IMG_ID, LAT, LON) nor a raw YFCC100M row "
            f"(25 or 23 tab-separated fields; found {n_fields})"
        )
    spec = CsvSpec(
        name="yfcc4k",
        columns=RAW_COLUMNS,
        required=("id", "lat", "lon"),
        image_pattern="{id}.jpg",
        header=RAW_HEADERS[n_fields],
        notes=(f"read as raw YFCC100M rows ({n_fields} tab-separated fields; longitude before latitude)",),
    )
    raw_opts = dataclasses.replace(opts, delimiter="\t")
    return read_table(spec, raw_opts, progress, notes)


def _first_line(opts: PrepareOptions) -> str:
    """The first non-blank line of the input, decoded (BOM dropped)."""
    if not opts.input.is_file():
        raise PrepareInputError(f"input file not found: {opts.input}")
    with open(opts.input, encoding="utf-8-sig", errors="replace") as f:
        for line in f:
            if line.strip():
                return line.rstrip("\r\n")
    raise PrepareInputError(f"{opts.input}: the file is empty")
