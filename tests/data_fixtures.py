"""Small builders for the data-loading tests: JPEGs made with PIL and jsonl/json files in a tmp folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image


def make_jpeg(
    path: Path, size: tuple[int, int] = (32, 24), color: tuple[int, int, int] = (90, 140, 200)
) -> Path:
    """A small RGB JPEG at ``path`` (parent folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format="JPEG")
    return path


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    """One JSON value per line; a ``str`` row is written verbatim (for malformed lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


def write_json_array(path: Path, rows: list[Any], indent: int | None = 2) -> Path:
    """One JSON array holding ``rows``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=indent), encoding="utf-8")
    return path


def contract_row(i: int, image: str | list[str] | None = None, **extra: Any) -> dict[str, Any]:
    """A record in the project's data contract (Paris-ish coordinates shifted by ``i``)."""
    row: dict[str, Any] = {
        "id": f"r{i}",
        "image": image if image is not None else f"{i}.jpg",
        "lat": 48.8566 + i * 0.01,
        "lon": 2.3522 - i * 0.01,
        "country": "France",
        "country_code": "fr",
        "region": "Ile-de-France",
        "city": "Paris",
    }
    row.update(extra)
    return row


def image_folder(root: Path, n: int = 4) -> Path:
    """``root/imgs/0.jpg .. {n-1}.jpg``, each a different width (so tests can tell them apart)."""
    folder = root / "imgs"
    for i in range(n):
        make_jpeg(folder / f"{i}.jpg", size=(20 + i, 16))
    return folder
