"""Write validated records into the training-data cache's Arrow files, one chunk at a time (flat memory).

Three files in the cache folder:

* ``rows.arrow``: one row per record: ``q`` (index of its human-turn text in ``texts.arrow``), ``sys`` (index of
  its system turn, or null), ``images`` (paths, stored undecoded), ``id``, ``lat``, ``lon``, the chain fields,
  ``solution``, ``author``, ``candidates`` (the retrieval candidates as the in-memory dataset's ``candidates``
  column holds them, or null) and ``extras`` (the record's pass-through fields as one JSON object, or null);
* ``texts.arrow``: each distinct human-turn or system text once (MP16-Pro's 567-character question is stored
  once, not on 4.12M rows). Texts are deduplicated through a table of the first 100,000 distinct ones, so a set
  where every row has its own text (a per-row addition such as retrieval candidates) costs no more than before;
* the pass-through fields' types, decided as :func:`geo_r.data.dataset.build_grpo_dataset` decides them: each
  field gets the common Arrow type of its values (ints and floats -> float, objects -> one struct with the union
  of keys), found chunk by chunk and unified with pyarrow's permissive promotion, or JSON text when there is
  none (with the same warning). :mod:`.rows` applies them when a row is read.

Both Arrow files are Arrow IPC streams with ``datasets`` feature metadata, so ``datasets`` memory-maps them.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from geo_r.data.dataset import (
    candidate_column_features,
    candidate_rows,
    content_blocks,
    has_empty_struct,
    question_text,
)
from geo_r.data.schema import CHAIN_FIELDS, RESERVED_COLUMNS, GeoRecord

logger = logging.getLogger(__name__)

ROWS_FILE = "rows.arrow"
TEXTS_FILE = "texts.arrow"
_MAX_INTERNED = 100_000


def rows_features() -> Any:
    """The ``datasets.Features`` of ``rows.arrow``."""
    import datasets

    return datasets.Features(
        {
            "q": datasets.Value("int32"),
            "sys": datasets.Value("int32"),
            "images": datasets.List(datasets.Image(decode=False)),
            "id": datasets.Value("string"),
            "lat": datasets.Value("float64"),
            "lon": datasets.Value("float64"),
            **{name: datasets.Value("string") for name in CHAIN_FIELDS},
            "solution": datasets.Value("string"),
            "author": datasets.Value("string"),
            **candidate_column_features(),
            "extras": datasets.Value("string"),
        }
    )


def texts_features() -> Any:
    """The ``datasets.Features`` of ``texts.arrow``."""
    import datasets

    return datasets.Features({"text": datasets.Value("string")})


def type_to_text(arrow_type: Any) -> str | None:
    """An Arrow type as base64 text for the manifest (None stays None: a JSON-text field)."""
    import pyarrow as pa

    if arrow_type is None:
        return None
    return base64.b64encode(pa.schema([("v", arrow_type)]).serialize().to_pybytes()).decode("ascii")


def type_from_text(text: str | None) -> Any:
    """The inverse of :func:`type_to_text`."""
    import pyarrow as pa

    if text is None:
        return None
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text))).field("v").type


class CacheWriter:
    """Appends chunks of records to ``rows.arrow`` / ``texts.arrow`` in ``folder``; :meth:`close` returns what the
    manifest records (row and text counts, how many rows have an author and candidates, pass-through fields and
    their types)."""

    def __init__(self, folder: Path, question: str, replace_questions: bool) -> None:
        import pyarrow as pa

        self.folder = folder
        self.question, self.replace = question, replace_questions
        self.rows = self.with_author = self.with_candidates = 0
        self._rows_schema = rows_features().arrow_schema
        self._texts_schema = texts_features().arrow_schema
        self._rows_file = pa.OSFile(str(folder / ROWS_FILE), "wb")
        self._rows = pa.ipc.new_stream(self._rows_file, self._rows_schema)
        self._texts_file = pa.OSFile(str(folder / TEXTS_FILE), "wb")
        self._texts = pa.ipc.new_stream(self._texts_file, self._texts_schema)
        self._text_index: dict[str, int] = {}
        self._n_texts = 0
        self._checked: set[tuple[int, int]] = set()  # (text index, image count) whose placeholders fit
        self._fields: dict[str, Any] = {}  # pass-through field -> unified Arrow type so far (None: JSON text)
        self._json_reason: dict[str, str] = {}
        self._dropped: set[str] = set()

    def add(self, records: Sequence[GeoRecord]) -> None:
        """Append ``records`` (raises ValueError naming the record when its placeholders do not fit)."""
        import pyarrow as pa

        if not records:
            return
        new_texts: list[str] = []
        q = [self._text(question_text(r, self.question, self.replace), new_texts) for r in records]
        sys = [None if not r.system else self._text(r.system, new_texts) for r in records]
        for record, index in zip(records, q, strict=True):
            key = (index, len(record.images))
            if key not in self._checked:
                try:
                    content_blocks(question_text(record, self.question, self.replace), len(record.images))
                except ValueError as exc:
                    raise ValueError(f"{record.source or record.id}: {exc}") from exc
                if len(self._checked) < _MAX_INTERNED:
                    self._checked.add(key)
        extras = self._extras(records)
        columns: dict[str, list[Any]] = {
            "q": q,
            "sys": sys,
            "images": [[{"bytes": None, "path": p} for p in r.images] for r in records],
            "id": [r.id for r in records],
            "lat": [r.lat for r in records],
            "lon": [r.lon for r in records],
            **{name: [getattr(r, name) for r in records] for name in CHAIN_FIELDS},
            "solution": [r.solution for r in records],
            "author": [r.author for r in records],
            "candidates": [candidate_rows(r) for r in records],
            "extras": extras,
        }
        arrays = [pa.array(columns[f.name], type=f.type) for f in self._rows_schema]
        self._rows.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self._rows_schema))
        if new_texts:
            self._texts.write_batch(
                pa.RecordBatch.from_arrays([pa.array(new_texts, type=pa.string())], schema=self._texts_schema)
            )
        self.rows += len(records)
        self.with_author += sum(r.author is not None for r in records)
        self.with_candidates += sum(bool(r.candidates) for r in records)

    def _text(self, text: str, new_texts: list[str]) -> int:
        found = self._text_index.get(text)
        if found is not None:
            return found
        index = self._n_texts
        self._n_texts += 1
        new_texts.append(text)
        if len(self._text_index) < _MAX_INTERNED:
            self._text_index[text] = index
        return index

    def _extras(self, records: Sequence[GeoRecord]) -> list[str | None]:
        """Each record's pass-through fields as JSON text; the fields' types are updated from this chunk."""
        import pyarrow as pa

        names: dict[str, None] = {}
        for record in records:
            names.update(dict.fromkeys(record.extras))
        for name in names:
            if name in RESERVED_COLUMNS:
                if name not in self._dropped:
                    self._dropped.add(name)
                    logger.warning(
                        "pass-through field %r clashes with a dataset column or TRL argument: dropped", name
                    )
                continue
            if name not in self._fields:
                self._fields[name] = pa.null()
            current = self._fields[name]
            if current is None:
                continue  # already JSON text
            values = [record.extras.get(name) for record in records]
            try:
                found = pa.array(values).type
                merged = found if current == found else _unify(current, found)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError) as exc:
                self._fields[name] = None
                self._json_reason[name] = str(exc)
                continue
            self._fields[name] = merged
        out: list[str | None] = []
        for record in records:
            kept = {k: v for k, v in record.extras.items() if k not in RESERVED_COLUMNS}
            out.append(json.dumps(kept, ensure_ascii=False) if kept else None)
        return out

    def close(self) -> dict[str, Any]:
        """Finish both files; the manifest's ``rows``, ``texts``, ``with_author``, ``with_candidates`` and
        ``extras`` ([name, type text or None])."""
        self._rows.close()
        self._rows_file.close()
        self._texts.close()
        self._texts_file.close()
        fields: list[list[Any]] = []
        for name, arrow_type in self._fields.items():
            if arrow_type is not None and has_empty_struct(arrow_type):
                arrow_type, self._json_reason[name] = None, "empty object"
            if arrow_type is None:
                logger.warning(
                    "pass-through field %r has values of different types (%s): stored as JSON text",
                    name, self._json_reason.get(name, ""),
                )
            fields.append([name, type_to_text(arrow_type)])
        return {"rows": self.rows, "texts": self._n_texts, "with_author": self.with_author,
                "with_candidates": self.with_candidates, "extras": fields}

    def abort(self) -> None:
        """Close the files after a failure (the caller removes the folder)."""
        for closer in (self._rows, self._rows_file, self._texts, self._texts_file):
            try:
                closer.close()
            except Exception:  # noqa: BLE001 - closing after a failure; the first error is what matters
                pass


def _unify(a: Any, b: Any) -> Any:
    """The common type of two Arrow types (pyarrow's permissive promotion), or an ArrowTypeError."""
    import pyarrow as pa

    return pa.unify_schemas([pa.schema([("v", a)]), pa.schema([("v", b)])], promote_options="permissive").field("v").type
