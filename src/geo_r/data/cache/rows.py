"""Rows of the training-data cache as the trainer reads them: the prompt and the pass-through fields rebuilt
when a row is read (a ``datasets`` transform), identical to :func:`geo_r.data.dataset.build_grpo_dataset`'s rows.

A row's prompt is :func:`geo_r.data.dataset.prompt_messages` of its stored human-turn text, system turn and image
count; its pass-through fields are read from their JSON text and given the field's type (so ints stored in a
float field come back as floats, an object in a struct field gets the struct's other keys as None, and a field
of mixed types is JSON text), exactly what Arrow did to them in the in-memory dataset. Images stay undecoded
(``{"bytes": None, "path": ...}``): :func:`geo_r.data.skip_images.skip_unreadable_images` decodes them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from geo_r.data.dataset import prompt_messages
from geo_r.data.schema import CHAIN_FIELDS

PLAIN_COLUMNS: tuple[str, ...] = ("images", "id", "lat", "lon", *CHAIN_FIELDS, "solution")


class CachedRows:
    """The transform: stored columns (``q``, ``sys``, ``extras`` ...) in, the GRPO dataset's columns out.

    ``texts_file`` (``texts.arrow``) is memory-mapped on first use, in every process that uses the transform;
    pickling (a DataLoader worker) carries the path, not the texts."""

    def __init__(self, texts_file: str, extras: Sequence[tuple[str, Any]], *, author: bool = False,
                 candidates: bool = False) -> None:
        self.texts_file = texts_file
        self.extras = list(extras)  # (field name, Arrow type, or None for JSON text), in column order
        self.author, self.candidates = author, candidates  # columns the in-memory set has when any row has one
        self._texts: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_texts": None}

    def text(self, index: int | None) -> str | None:
        """Text number ``index`` of ``texts.arrow`` (None for None)."""
        if index is None:
            return None
        if self._texts is None:
            self._texts = open_texts(self.texts_file)
        value = self._texts[index]
        return value if isinstance(value, str) else value.as_py()

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {
            "prompt": [
                prompt_messages(self.text(q), self.text(s), len(images or []))
                for q, s, images in zip(batch["q"], batch["sys"], batch["images"], strict=True)
            ]
        }
        for name in PLAIN_COLUMNS:
            out[name] = batch[name]
        if self.candidates:
            out["candidates"] = batch["candidates"]
        if self.author:
            out["author"] = batch["author"]
        if self.extras:
            parsed = [json.loads(text) if text else {} for text in batch["extras"]]
            for name, arrow_type in self.extras:
                out[name] = [typed(obj.get(name), arrow_type) for obj in parsed]
        return out

    def column_names(self) -> list[str]:
        """The columns a row has, in order."""
        optional = [name for name, on in (("candidates", self.candidates), ("author", self.author)) if on]
        return ["prompt", *PLAIN_COLUMNS, *optional, *(name for name, _ in self.extras)]


def open_texts(path: str) -> Any:
    """The distinct texts of ``texts.arrow``: a list when there are few (the usual one question), else the
    memory-mapped Arrow column itself (a set where every row has its own text stays on disk)."""
    from datasets.table import MemoryMappedTable

    column = MemoryMappedTable.from_file(path).table.column("text")
    return column.to_pylist() if len(column) <= 10_000 else column


def typed(value: Any, arrow_type: Any) -> Any:
    """``value`` as Arrow stores and returns it in a column of ``arrow_type`` (JSON text when that is None)."""
    if arrow_type is None:
        return value if value is None or isinstance(value, str) else json.dumps(value)
    if value is None:
        return None
    import pyarrow as pa

    if pa.types.is_string(arrow_type) and isinstance(value, str):
        return value
    if pa.types.is_float64(arrow_type) and type(value) in (int, float):
        return float(value)
    if pa.types.is_int64(arrow_type) and type(value) is int:
        return value
    return pa.array([value], type=arrow_type).to_pylist()[0]
