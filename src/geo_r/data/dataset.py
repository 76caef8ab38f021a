"""Turn :class:`GeoRecord` s into the dataset TRL's ``GRPOTrainer`` consumes, and split off a validation set.

Columns:

* ``prompt``: conversational, ``[{"role": "user", "content": [...]}]`` (a ``system`` message first when the
  record's conversation had one). The content holds one ``{"type": "image"}`` block per image, where the
  question's ``<image>`` placeholders were, else all images first, then ``{"type": "text", "text": ...}``.
  The text around the placeholders is kept verbatim (``"<image>\\nWhere?"`` gives an image block and
  ``"\\nWhere?"``), so the prompt renders to the same tokens as LLaMA-Factory's SFT rendering of the same
  line, which replaces each ``<image>`` in place. TRL's
  ``prepare_multimodal_messages`` fills these blocks with the decoded images, in order; Arrow stores every
  block with both keys, so an image block reads back as ``{"type": "image", "text": None}``.
* ``images``: absolute paths under ``datasets.List(datasets.Image())``: nothing is read here; a row's images
  are decoded when the trainer reads that row.
* ``id``, ``lat``, ``lon``, ``country``, ``country_code``, ``region``, ``city``, ``solution`` (str or None),
  ``author`` (the photographer, str or None) when any record names one, and every pass-through field, all of
  which reach reward functions as keyword lists.
* ``candidates``, only when some record has retrieval candidates: a list per row of
  :meth:`geo_r.geo.candidates.Candidate.to_dict` objects (None for a row without), for the ``format`` and
  ``candidate`` rewards. The prompt text then comes from :func:`geo_r.prompts.question_with_candidates`.

Arrow needs one type per column. A pass-through field keeps its values when Arrow can give them one type
(ints and floats mix into float; objects with different keys become one struct with the union of the keys,
absent ones None); otherwise (e.g. a number in one record and text in another) every value of that field is
turned into its JSON text (strings stay as they are) and a warning names the field. Fields named like a
built column or a TRL reward argument (``prompt``, ``images``, ``completions``, ``trainer_state`` ...) are
dropped with a warning.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from geo_r.data.gc_pause import gc_paused
from geo_r.data.schema import CHAIN_FIELDS, IMAGE_PLACEHOLDER, RESERVED_COLUMNS, GeoRecord
from geo_r.prompts import question_with_candidates

if TYPE_CHECKING:
    import datasets

logger = logging.getLogger(__name__)

_CHUNK = 20_000  # records converted to Arrow at a time (bounds the Python objects alive at once)


def content_blocks(text: str | None, n_images: int) -> list[dict[str, Any]]:
    """The user content: image blocks at the ``<image>`` placeholders of ``text`` (all first when it has
    none) and the text around them, verbatim, as text blocks (empty pieces left out). Raises ValueError
    when the placeholder count is neither 0 nor ``n_images``."""
    text = text or ""
    parts = text.split(IMAGE_PLACEHOLDER)
    if len(parts) == 1:
        parts = [""] * n_images + [text]
    elif len(parts) - 1 != n_images:
        raise ValueError(f"{len(parts) - 1} {IMAGE_PLACEHOLDER} placeholder(s) for {n_images} image(s)")
    blocks: list[dict[str, Any]] = []
    for i, part in enumerate(parts):
        if i:
            blocks.append({"type": "image", "text": None})
        if part:
            blocks.append({"type": "text", "text": part})
    return blocks


def question_text(record: GeoRecord, question: str, replace_question: bool = False) -> str:
    """The text of a record's human turn: its own question, or ``question`` when it has none (or when
    ``replace_question``), followed by its retrieval candidates when it has any
    (:func:`geo_r.prompts.question_with_candidates`). Anything a row adds to its human turn belongs here: the
    training-data cache (:mod:`geo_r.data.cache`) stores this text (each distinct one once) and rebuilds the
    prompt from it."""
    text = question if replace_question or record.question is None else record.question
    return question_with_candidates(text, record.candidates)


def prompt_messages(text: str, system: str | None, n_images: int) -> list[dict[str, Any]]:
    """The conversational prompt for a human turn ``text`` with ``n_images`` images and an optional system
    turn (ValueError when the placeholders do not fit the images)."""
    content = content_blocks(text, n_images)
    messages = []
    if system:
        messages.append({"role": "system", "content": [{"type": "text", "text": system}]})
    messages.append({"role": "user", "content": content})
    return messages


def build_prompt(record: GeoRecord, question: str, replace_question: bool = False) -> list[dict[str, Any]]:
    """The conversational prompt of one record: :func:`prompt_messages` of :func:`question_text`."""
    try:
        return prompt_messages(question_text(record, question, replace_question), record.system, len(record.images))
    except ValueError as exc:
        raise ValueError(f"{record.source or record.id}: {exc}") from exc


def build_grpo_dataset(
    records: Sequence[GeoRecord],
    question: str | None = None,
    *,
    replace_questions: bool = False,
    decode_images: bool = True,
) -> datasets.Dataset:
    """A ``datasets.Dataset`` for ``GRPOTrainer`` (columns in the module docstring).

    ``question`` (default :data:`geo_r.prompts.DEFAULT_QUESTION`) is asked of records that bring no question
    (no human turn, no ``problem``); with ``replace_questions=True`` it is asked of every record.
    ``decode_images=False`` types the images ``Image(decode=False)`` (rows give ``{"bytes", "path"}``), ready for
    :func:`geo_r.data.skip_images.skip_unreadable_images` without a cast (which would copy the table).
    """
    import datasets
    import pyarrow as pa
    from datasets.fingerprint import generate_random_fingerprint
    from datasets.table import InMemoryTable

    from geo_r.prompts import DEFAULT_QUESTION

    if not records:
        raise ValueError("build_grpo_dataset: no records")
    default_question = DEFAULT_QUESTION if question is None else question
    extras, extra_types = _harmonise_extras(records)
    candidate_features = candidate_column_features() if any(r.candidates for r in records) else {}
    features = datasets.Features(
        {
            "prompt": datasets.List(
                {
                    "role": datasets.Value("string"),
                    "content": datasets.List(
                        {"type": datasets.Value("string"), "text": datasets.Value("string")}
                    ),
                }
            ),
            "images": datasets.List(datasets.Image(decode=decode_images)),
            "id": datasets.Value("string"),
            "lat": datasets.Value("float64"),
            "lon": datasets.Value("float64"),
            **{name: datasets.Value("string") for name in CHAIN_FIELDS},
            "solution": datasets.Value("string"),
            **candidate_features,
            **datasets.Features.from_arrow_schema(pa.schema(list(extra_types.items()))),
        }
    )
    # Arrow arrays are built directly with the final types: datasets' per-value encoding (from_dict) costs
    # about twice as much, and an image column needs nothing encoded (a path, no bytes).
    schema = features.arrow_schema
    tables = []
    with gc_paused():
        for start in range(0, len(records), _CHUNK):
            chunk = records[start : start + _CHUNK]
            columns: dict[str, list[Any]] = {
                "prompt": [build_prompt(r, default_question, replace_questions) for r in chunk],
                "images": [[{"bytes": None, "path": p} for p in r.images] for r in chunk],
                "id": [r.id for r in chunk],
                "lat": [r.lat for r in chunk],
                "lon": [r.lon for r in chunk],
                **{name: [getattr(r, name) for r in chunk] for name in CHAIN_FIELDS},
                "solution": [r.solution for r in chunk],
                **({"candidates": [candidate_rows(r) for r in chunk]} if candidate_features else {}),
                **{name: values[start : start + _CHUNK] for name, values in extras.items()},
            }
            arrays = [pa.array(columns[field.name], type=field.type) for field in schema]
            tables.append(pa.Table.from_arrays(arrays, schema=schema))
    table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
    # A fingerprint given: without one, datasets hashes the whole table (+750 MB and 0.7 s at 200k rows).
    return datasets.Dataset(InMemoryTable(table), info=datasets.DatasetInfo(features=features),
                            fingerprint=generate_random_fingerprint())


def candidate_column_features() -> dict[str, Any]:
    """The ``candidates`` column's feature: a list of :data:`geo_r.geo.candidates.CANDIDATE_FIELDS` structs."""
    import datasets

    return {
        "candidates": datasets.List(
            {
                "lat": datasets.Value("float64"),
                "lon": datasets.Value("float64"),
                "country": datasets.Value("string"),
                "region": datasets.Value("string"),
                "city": datasets.Value("string"),
                "photos": datasets.Value("int64"),
                "score": datasets.Value("float64"),
                "radius_km": datasets.Value("float64"),
            }
        )
    }


def candidate_rows(record: GeoRecord) -> list[dict[str, Any]] | None:
    """A record's ``candidates`` column value: its candidates as dicts, None when it has none."""
    return [c.to_dict() for c in record.candidates] if record.candidates else None


def _harmonise_extras(records: Sequence[GeoRecord]) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """Pass-through columns with one Arrow type each (see the module docstring), and those types."""
    import pyarrow as pa

    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record.extras))
    columns: dict[str, list[Any]] = {}
    types: dict[str, Any] = {}
    if any(record.author is not None for record in records):  # a parsed field that passes through like the others
        columns["author"] = [record.author for record in records]
        types["author"] = pa.string()
    for name in names:
        if name in RESERVED_COLUMNS:
            logger.warning(
                "pass-through field %r clashes with a dataset column or TRL argument: dropped", name
            )
            continue
        values = [record.extras.get(name) for record in records]
        try:
            arrow_type = pa.array(values).type
            if has_empty_struct(arrow_type):
                raise pa.ArrowInvalid("empty object")
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            logger.warning(
                "pass-through field %r has values of different types (%s): stored as JSON text", name, exc
            )
            values = [v if v is None or isinstance(v, str) else json.dumps(v) for v in values]
            arrow_type = pa.string()
        columns[name] = values
        types[name] = arrow_type
    return columns, types


def has_empty_struct(arrow_type: Any) -> bool:
    """True when an Arrow type holds a struct with no fields (from ``{}`` values), which datasets rejects."""
    import pyarrow as pa

    if pa.types.is_struct(arrow_type):
        return arrow_type.num_fields == 0 or any(has_empty_struct(f.type) for f in arrow_type)
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return has_empty_struct(arrow_type.value_type)
    return False


def split_dataset(
    dataset: datasets.Dataset, val_split_ratio: float, seed: int = 42
) -> tuple[datasets.Dataset, datasets.Dataset | None]:
    """``(train, val)``: a seeded random split holding out ``val_split_ratio`` of the rows; ``val`` is None
    when the ratio is 0. Raises ValueError for a ratio outside [0, 1) or a split that leaves a side empty."""
    if not 0.0 <= val_split_ratio < 1.0:
        raise ValueError(f"val_split_ratio must be in [0, 1), got {val_split_ratio}")
    if val_split_ratio == 0.0:
        return dataset, None
    n_val = round(len(dataset) * val_split_ratio)
    if n_val < 1 or n_val >= len(dataset):
        raise ValueError(
            f"val_split_ratio {val_split_ratio} of {len(dataset)} rows gives {n_val} validation row(s); "
            "both sides need at least one"
        )
    # train_test_split's own permutation, with the indices kept in memory: on a memory-mapped dataset
    # train_test_split would write index files beside the cache, from every rank at once.
    import numpy as np

    permutation = np.random.default_rng(seed).permutation(len(dataset))
    return (
        dataset.select(permutation[n_val:], keep_in_memory=True),
        dataset.select(permutation[:n_val], keep_in_memory=True),
    )
