"""``explorer.html``: a page to browse an evaluation photo by photo, that opens at any size.

The page (``explorer_page.html``) holds the script, style, land outline (:func:`geo_r.eval.worldmap.land_path`)
and the run's metadata; the rows live beside it in ``explorer_files/<run>/``: ``rows-NNNNN.js`` files of
:data:`CHUNK_ROWS` rows each (no single string comes near a browser's string limit: V8 refuses strings over
~536 million characters, which an inline page reached at ~112k rows) and the 96-px JPEG thumbnails in
``thumbs/`` (one file per distinct photo). Each row stores its completion once; the answer and reasoning shown are
slices of it. The page loads the files with ``<script>`` elements, which browsers allow from ``file://``, so it
still opens offline from disk (keep ``explorer_files/`` beside ``explorer.html`` when moving it). It draws a
sortable, filterable table that renders only the rows in view, and a map of truth -> prediction lines where
choosing a row highlights its line.

Writing is streamed chunk by chunk with a progress bar; thumbnails are made on a thread pool (JPEG decoding
releases the GIL). ``thumbnails``: all photos (default), none, or at most N (a seeded random sample of rows).
The page is replaced atomically and points at its own ``<run>`` folder, so an interrupted rewrite leaves the
previous explorer intact; older run folders are deleted once the new page is in place.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any

from geo_r.atomic_io import atomic_write, make_temp_dir
from geo_r.data.schema import GeoRecord
from geo_r.eval.continents import continent_name
from geo_r.eval.scoring import ScoredRow

EXPLORER_FILE = "explorer.html"
FILES_DIR = "explorer_files"
THUMB_PX = 96
CHUNK_ROWS = 10_000
THUMBS_PER_FOLDER = 1000
FIELDS: tuple[str, ...] = ("id", "thumb", "lat", "lon", "truth", "plat", "plon", "pred", "km", "cont", "status",
                           "completion", "answer", "reasoning")
_THINK = re.compile(r"<\s*think\s*>(.*?)(?:<\s*/\s*think\s*>|$)", re.IGNORECASE | re.DOTALL)
_PLACEHOLDERS = ("/*__TITLE__*/", "/*__DATA__*/", "/*__LAND__*/")


def make_thumbnail(path: str, target: Path, size: int = THUMB_PX) -> bool:
    """Write a JPEG of the image at ``path``, at most ``size`` px on a side, to ``target``; False if unreadable."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as img:
            img.draft("RGB", (size * 2, size * 2))  # JPEG: decode at a reduced scale, much faster
            small = ImageOps.exif_transpose(img).convert("RGB")
            small.thumbnail((size, size))
    except (OSError, ValueError, Image.DecompressionBombError):
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    small.save(target, format="JPEG", quality=70)
    return True


def reasoning_of(text: str | None) -> str:
    """The ``<think>`` part of a completion (all text before ``<answer>`` when there is no think tag)."""
    if not text:
        return ""
    match = _THINK.search(text)
    if match:
        return match.group(1).strip()
    cut = re.search(r"<\s*answer\s*>", text, re.IGNORECASE)
    return text[: cut.start()].strip() if cut else ""


def _span(text: str, part: str) -> list[int] | None:
    """``[start, end]`` of ``part`` in ``text`` (any occurrence shows the same characters), None when empty."""
    if not part:
        return None
    start = text.rfind(part)
    return None if start < 0 else [start, start + len(part)]


def _status(row: ScoredRow) -> str:
    if not row.has_completion:
        return "no prediction"
    if row.parsed:
        return "parsed"
    return "no answer tag" if not row.prediction.answer_found else "no coordinates"


def explorer_rows(
    records: Sequence[GeoRecord], completions: Mapping[str, str], rows: Sequence[ScoredRow]
) -> Iterator[dict[str, Any]]:
    """The page's rows, one per scored image (in evaluation order); ``photo`` is the image a thumbnail is made of.

    ``answer`` and ``reasoning`` are ``[start, end]`` slices of ``completion`` (None when empty)."""
    from geo_r.geo import extract_answer

    by_id = {r.id: r for r in records}
    for row in rows:
        rec = by_id[row.id]
        text = completions.get(row.id) or ""
        p = row.prediction
        yield {
            "id": row.id,
            "photo": rec.images[0] if rec.images else None,
            "lat": row.true_lat,
            "lon": row.true_lon,
            "truth": [rec.country or row.country_code, rec.region, rec.city],
            "plat": p.lat,
            "plon": p.lon,
            "pred": [p.country, p.region, p.city],
            "km": None if row.distance_km is None else round(row.distance_km, 3),
            "cont": continent_name(row.continent) if row.continent else "unknown",
            "status": _status(row),
            "completion": text,
            "answer": _span(text, (extract_answer(text) or "").strip()) if text else None,
            "reasoning": _span(text, reasoning_of(text)),
        }


def _json(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _script_json(payload: Any) -> str:
    """JSON safe inside a <script> element (no '</' can close it early)."""
    return _json(payload).replace("</", "<\\/").replace("<!--", "<\\!--")


def render_page(meta: Mapping[str, Any], *, title: str) -> str:
    """The page's HTML: the template with the title, the land outline and ``meta`` (which names the row files)."""
    from geo_r.eval.worldmap import land_path, land_source

    template = resources.files("geo_r.eval").joinpath("explorer_page.html").read_text(encoding="utf-8")
    for mark in _PLACEHOLDERS:
        if template.count(mark) != 1:
            raise RuntimeError(f"explorer_page.html: expected one {mark} placeholder")
    meta = {"title": title, "land_source": land_source(), **meta}
    return (
        template.replace("/*__TITLE__*/", html.escape(title))
        .replace("/*__LAND__*/", _script_json(land_path()))
        .replace("/*__DATA__*/", _script_json(meta))
    )


class _Thumbnails:
    """Makes each distinct photo's thumbnail once, into ``folder/thumbs``; paths relative to the page."""

    def __init__(self, folder: Path, page_dir: Path, allowed: Callable[[int], bool]) -> None:
        self.folder, self.page_dir, self.allowed = folder, page_dir, allowed
        self.done: dict[str, str | None] = {}
        self.pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="geo-r-thumb")

    def fill(self, first_index: int, rows: list[dict[str, Any]]) -> None:
        """Set ``thumb`` on each row (None: no photo, unreadable, or not in the sample)."""
        todo: dict[str, Path] = {}
        wanted: list[tuple[dict[str, Any], str]] = []
        for offset, row in enumerate(rows):
            if "photo" not in row:  # the row names its thumbnail itself
                row.setdefault("thumb", None)
                continue
            photo = row.pop("photo")
            row["thumb"] = None
            if not photo or not self.allowed(first_index + offset):
                continue
            wanted.append((row, photo))
            if photo not in self.done and photo not in todo:
                n = len(self.done) + len(todo)
                todo[photo] = self.folder / "thumbs" / f"{n // THUMBS_PER_FOLDER:04d}" / f"{n:07d}.jpg"
        made = self.pool.map(lambda item: make_thumbnail(item[0], item[1]), todo.items())
        for (photo, target), ok in zip(todo.items(), made, strict=True):
            self.done[photo] = target.relative_to(self.page_dir).as_posix() if ok else None
        for row, photo in wanted:
            row["thumb"] = self.done[photo]

    def close(self) -> None:
        self.pool.shutdown()


def write_explorer_rows(
    path: str | os.PathLike,
    page_rows: Iterable[dict[str, Any]],
    *,
    n_rows: int,
    title: str,
    thumbnails: bool | int = True,
    seed: int = 0,
    progress: str = "auto",
) -> Path:
    """Write ``explorer.html`` and its ``explorer_files/<run>/`` from page rows (:func:`explorer_rows`' dicts; a row
    may also give ``thumb`` itself, a path relative to the page, instead of ``photo``)."""
    from geo_r.data.progress import RowProgress

    page = Path(path)
    page.parent.mkdir(parents=True, exist_ok=True)
    files_root = page.parent / FILES_DIR
    run = make_temp_dir(files_root, f"{page.stem}-")
    allowed = _thumbnail_rule(thumbnails, n_rows, seed)
    thumbs = _Thumbnails(run, page.parent, allowed)
    chunks: list[str] = []
    written = 0
    bar = RowProgress("explorer.html: thumbnails and rows", total_rows=n_rows, mode=progress)
    try:
        batch: list[dict[str, Any]] = []
        for row in page_rows:
            batch.append(row)
            if len(batch) == CHUNK_ROWS:
                chunks.append(_write_chunk(run, page.parent, len(chunks), written, batch, thumbs))
                written += len(batch)
                bar.update(len(batch))
                batch = []
        if batch or not chunks:
            chunks.append(_write_chunk(run, page.parent, len(chunks), written, batch, thumbs))
            written += len(batch)
            bar.update(len(batch))
        meta = {"n": written, "chunks": chunks, "fields": list(FIELDS)}
        with atomic_write(page) as fh:
            fh.write(render_page(meta, title=title))
    except BaseException:
        shutil.rmtree(run, ignore_errors=True)
        raise
    finally:
        thumbs.close()
        bar.close()
    for old in files_root.glob(f"{page.stem}-*"):  # the runs the previous pages used
        if old != run:
            shutil.rmtree(old, ignore_errors=True)
    return page


def _thumbnail_rule(thumbnails: bool | int, n_rows: int, seed: int) -> Callable[[int], bool]:
    """Which rows (by index) get a thumbnail: all, none, or a seeded random sample of ``thumbnails`` rows."""
    if thumbnails is True or (not isinstance(thumbnails, bool) and thumbnails >= n_rows):
        return lambda i: True
    if thumbnails is False or thumbnails <= 0:
        return lambda i: False
    import numpy as np

    chosen = np.zeros(n_rows, dtype=bool)
    chosen[np.random.default_rng(seed).choice(n_rows, size=int(thumbnails), replace=False)] = True
    return lambda i: bool(chosen[i]) if i < n_rows else False


def _write_chunk(run: Path, page_dir: Path, number: int, first: int, rows: list[dict[str, Any]],
                 thumbs: _Thumbnails) -> str:
    """One ``rows-NNNNN.js``: ``geoRExplorerChunk(first_row, [[field values...], ...])``; its path from the page."""
    thumbs.fill(first, rows)
    target = run / f"rows-{number:05d}.js"
    with atomic_write(target) as fh:
        fh.write(f"geoRExplorerChunk({first},[")
        for i, row in enumerate(rows):
            fh.write(("," if i else "") + _json([row.get(name) for name in FIELDS]))
        fh.write("]);\n")
    return target.relative_to(page_dir).as_posix()


def write_explorer(
    path: str | os.PathLike,
    records: Sequence[GeoRecord],
    completions: Mapping[str, str],
    rows: Sequence[ScoredRow],
    *,
    title: str,
    thumbnails: bool | int = True,
    seed: int = 0,
    progress: str = "auto",
) -> Path:
    """Write ``explorer.html`` (and ``explorer_files/``) for an evaluation's scored rows (those report.md uses)."""
    return write_explorer_rows(path, explorer_rows(records, completions, rows), n_rows=len(rows), title=title,
                               thumbnails=thumbnails, seed=seed, progress=progress)

