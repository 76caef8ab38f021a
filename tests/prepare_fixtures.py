"""Builders for the converter tests: CSV/TSV files in each dataset's real layout, tiny JPEGs, and a runner."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from geo_r.data.prepare import PrepareOptions, PrepareSummary, prepare

MP16PRO_HEADER = [
    "IMG_ID", "AUTHOR", "LAT", "LON", "neighbourhood", "city", "county", "state", "region", "country",
    "country_code", "continent", "S3_Label", "S16_Label", "S365_Label", "Prob_indoor", "Prob_natural", "Prob_urban",
]  # fmt: skip
OSV5M_HEADER = [
    "id", "latitude", "longitude", "thumb_original_url", "country", "sequence", "captured_at", "lon_bin", "lat_bin",
    "cell", "region", "sub-region", "city", "land_cover", "road_index", "drive_side", "climate", "soil", "dist_sea",
    "quadtree_10_500", "quadtree_10_1000", "quadtree_10_2500", "quadtree_10_5000", "quadtree_10_12500",
    "quadtree_10_25000", "quadtree_10_50000", "unique_region", "unique_sub-region", "unique_city", "unique_country",
    "creator_username", "creator_id",
]  # fmt: skip
IM2GPS3K_HEADER = [
    "IMG_ID", "AUTHOR", "LAT", "LON", "S3_Label", "S16_Label", "S365_Label", "Prob_indoor", "Prob_natural", "Prob_urban",
]  # fmt: skip


def write_table(path: Path, header: Sequence[str] | None, rows: Sequence[Sequence[Any]], delimiter: str = ",") -> Path:
    """A CSV/TSV with ``header`` (None: no header line) and ``rows`` (values written with str())."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter=delimiter, lineterminator="\n")
        if header is not None:
            writer.writerow(header)
        for row in rows:
            writer.writerow(["" if v is None else v for v in row])
    return path


def make_row(header: Sequence[str], **values: Any) -> list[Any]:
    """A row for ``header`` with the given columns filled (others empty); ``sub_region`` means ``sub-region``."""
    values = {k.replace("sub_region", "sub-region"): v for k, v in values.items()}
    unknown = set(values) - set(header)
    assert not unknown, f"not in the header: {unknown}"
    return [values.get(name, "") for name in header]


def touch_images(folder: Path, names: Sequence[str]) -> None:
    """A tiny JPEG at each relative path under ``folder``."""
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (120, 90, 60)).save(path, format="JPEG")


def convert(fmt: str, out: Path, **options: Any) -> tuple[PrepareSummary, list[dict[str, Any]]]:
    """Run ``prepare`` and return its summary and the written records."""
    summary = prepare(fmt, PrepareOptions(**options), out, progress=False)
    return summary, read_jsonl(out)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every object of a jsonl file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def answer_of(record: dict[str, Any]) -> str:
    """The gpt turn of a written record."""
    turns = {t["from"]: t["value"] for t in record["conversations"]}
    return turns["gpt"]
