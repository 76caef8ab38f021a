"""The dataset TRL's ``SFTTrainer`` reads: conversational prompt-completion rows with images.

Columns: ``prompt`` (the system message if any, then the user message whose content holds one image block
per ``<image>`` placeholder, exactly as the GRPO dataset builds it), ``completion`` (one assistant message
with the answer), ``images`` (absolute paths, decoded when a row is read) and ``id``.

Prompt-completion is what makes the loss fall on the assistant turn only: TRL's vision collator renders
the prompt with the chat template's generation prompt, renders prompt + completion, and masks every token
of the prompt (system, question, image tokens) to -100, so only the answer and its closing
``<|im_end|>`` are learned. (TRL's other route, ``assistant_only_loss``, needs transformers >= 5.18.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from geo_r.data.dataset import content_blocks
from geo_r.sft.examples import SFTExample

if TYPE_CHECKING:
    import datasets

_CHUNK = 20_000


def prompt_messages(example: SFTExample) -> list[dict[str, Any]]:
    """The conversational prompt of one example (system message first when it has one)."""
    messages: list[dict[str, Any]] = []
    if example.system:
        messages.append({"role": "system", "content": [{"type": "text", "text": example.system}]})
    messages.append({"role": "user", "content": content_blocks(example.question, len(example.images))})
    return messages


def completion_messages(example: SFTExample) -> list[dict[str, Any]]:
    """The assistant turn the model learns."""
    return [{"role": "assistant", "content": [{"type": "text", "text": example.answer}]}]


def build_sft_dataset(examples: Sequence[SFTExample]) -> datasets.Dataset:
    """A ``datasets.Dataset`` of prompt-completion rows (columns in the module docstring)."""
    import datasets
    import pyarrow as pa
    from datasets.table import InMemoryTable

    if not examples:
        raise ValueError("build_sft_dataset: no examples")
    message = datasets.List(
        {
            "role": datasets.Value("string"),
            "content": datasets.List({"type": datasets.Value("string"), "text": datasets.Value("string")}),
        }
    )
    features = datasets.Features(
        {
            "prompt": message,
            "completion": message,
            "images": datasets.List(datasets.Image()),
            "id": datasets.Value("string"),
        }
    )
    schema = features.arrow_schema
    tables = []
    for start in range(0, len(examples), _CHUNK):
        chunk = examples[start : start + _CHUNK]
        columns: dict[str, list[Any]] = {
            "prompt": [prompt_messages(e) for e in chunk],
            "completion": [completion_messages(e) for e in chunk],
            "images": [[{"bytes": None, "path": p} for p in e.images] for e in chunk],
            "id": [e.id for e in chunk],
        }
        arrays = [pa.array(columns[f.name], type=f.type) for f in schema]
        tables.append(pa.Table.from_arrays(arrays, schema=schema))
    table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
    return datasets.Dataset(InMemoryTable(table), info=datasets.DatasetInfo(features=features))
