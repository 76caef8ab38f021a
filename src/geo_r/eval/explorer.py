"""``explorer.html``: one self-contained page to browse an evaluation, photo by photo.

Everything is inside the file: the rows as inline JSON (thumbnail as a JPEG data URI, truth, prediction,
error, continent, parse status, the whole completion), the page's script and style, and the land outline
(:func:`geo_r.eval.worldmap.land_path`). It opens from disk with no network access. The page
(``explorer_page.html``) draws a sortable, filterable table that renders only the rows in view, so 10,000
rows stay responsive, and a map of truth -> prediction lines where choosing a row highlights its line.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any

from geo_r.atomic_io import atomic_write
from geo_r.data.schema import GeoRecord
from geo_r.eval.continents import continent_name
from geo_r.eval.scoring import ScoredRow

EXPLORER_FILE = "explorer.html"
THUMB_PX = 96
_THINK = re.compile(r"<\s*think\s*>(.*?)(?:<\s*/\s*think\s*>|$)", re.IGNORECASE | re.DOTALL)
_PLACEHOLDERS = ("/*__TITLE__*/", "/*__DATA__*/", "/*__LAND__*/")


def thumbnail(path: str, size: int = THUMB_PX) -> str | None:
    """A JPEG data URI of the image at ``path`` at most ``size`` px on a side, or None if it cannot be read."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as img:
            img.draft("RGB", (size * 2, size * 2))  # JPEG: decode at a reduced scale, much faster
            small = ImageOps.exif_transpose(img).convert("RGB")
            small.thumbnail((size, size))
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=70)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def reasoning_of(text: str | None) -> str:
    """The ``<think>`` part of a completion (all text before ``<answer>`` when there is no think tag)."""
    if not text:
        return ""
    match = _THINK.search(text)
    if match:
        return match.group(1).strip()
    cut = re.search(r"<\s*answer\s*>", text, re.IGNORECASE)
    return text[: cut.start()].strip() if cut else ""


def _status(row: ScoredRow) -> str:
    if not row.has_completion:
        return "no prediction"
    if row.parsed:
        return "parsed"
    return "no answer tag" if not row.prediction.answer_found else "no coordinates"


def explorer_rows(
    records: Sequence[GeoRecord],
    completions: Mapping[str, str],
    rows: Sequence[ScoredRow],
    *,
    thumbnails: bool = True,
) -> list[dict[str, Any]]:
    """The page's row objects, one per scored image (in evaluation order)."""
    from geo_r.geo import extract_answer

    by_id = {r.id: r for r in records}
    thumbs: list[str | None] = [None] * len(rows)
    if thumbnails:
        firsts = [by_id[row.id].images[0] if by_id[row.id].images else None for row in rows]
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:  # decoding releases the GIL
            thumbs = list(pool.map(lambda p: thumbnail(p) if p else None, firsts))
    out = []
    for row, thumb in zip(rows, thumbs, strict=True):
        rec = by_id[row.id]
        text = completions.get(row.id)
        p = row.prediction
        out.append(
            {
                "id": row.id,
                "thumb": thumb,
                "lat": row.true_lat,
                "lon": row.true_lon,
                "truth": [rec.country or row.country_code, rec.region, rec.city],
                "plat": p.lat,
                "plon": p.lon,
                "pred": [p.country, p.region, p.city],
                "km": None if row.distance_km is None else round(row.distance_km, 3),
                "cont": continent_name(row.continent) if row.continent else "unknown",
                "status": _status(row),
                "answer": (extract_answer(text) or "").strip() if text else "",
                "reasoning": reasoning_of(text),
                "completion": text or "",
            }
        )
    return out


def _script_json(payload: Any) -> str:
    """JSON safe inside a <script> element (no '</' can close it early)."""
    text = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def render_explorer(page_rows: Sequence[Mapping[str, Any]], *, title: str) -> str:
    """The whole page as HTML text."""
    from geo_r.eval.worldmap import land_path, land_source

    template = resources.files("geo_r.eval").joinpath("explorer_page.html").read_text(encoding="utf-8")
    for mark in _PLACEHOLDERS:
        if template.count(mark) != 1:
            raise RuntimeError(f"explorer_page.html: expected one {mark} placeholder")
    meta = {"title": title, "land_source": land_source(), "n": len(page_rows)}
    return (
        template.replace("/*__TITLE__*/", html.escape(title))
        .replace("/*__LAND__*/", _script_json(land_path()))
        .replace("/*__DATA__*/", _script_json({"meta": meta, "rows": list(page_rows)}))
    )


def write_explorer(
    path: str | os.PathLike,
    records: Sequence[GeoRecord],
    completions: Mapping[str, str],
    rows: Sequence[ScoredRow],
    *,
    title: str,
    thumbnails: bool = True,
) -> Path:
    """Write ``explorer.html`` for an evaluation's scored rows (the rows report.md is computed from)."""
    text = render_explorer(explorer_rows(records, completions, rows, thumbnails=thumbnails), title=title)
    with atomic_write(path) as fh:
        fh.write(text)
    return Path(path)
