"""``geo-r export-sft``: write the training jsonl as a LLaMA-Factory sharegpt dataset plus its dataset_info entry.

Output, in ``--out_dir`` (LLaMA-Factory's ``dataset_dir``):

* ``<dataset_name>.jsonl``, one row per photo, streamed to disk::

    {"messages": [{"role": "user", "content": "<image>You are a geographic reasoning agent..."},
                  {"role": "assistant", "content": "<think> ... </think>\\n<answer>\\nCountry: Japan\\n..."}],
     "images": ["mp16/00/000123.jpg"]}

  (a ``system`` message first when the record's conversation had one);
* ``dataset_info.json`` with the entry for ``<dataset_name>`` added or replaced (other entries kept).

LLaMA-Factory's rules, each held by construction: turns alternate user / assistant starting with the user
(an odd count or a wrong order is silently dropped by LLaMA-Factory); the number of ``<image>`` placeholders
equals the number of images (else it aborts the run); image paths are relative to ``media_dir`` (default:
``--out_dir``), which LLaMA-Factory joins them with. The question is the one GRPO asks (the record's human
turn, else :data:`geo_r.prompts.DEFAULT_QUESTION`) with the images first when it has no placeholder: the
same tokens as the GRPO prompt (retrieval candidates included, ``--candidates``). The answer follows
:mod:`geo_r.sft.examples` (``--target``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geo_r.atomic_io import atomic_write, write_json_atomic
from geo_r.data.candidates import add_candidate_arguments
from geo_r.sft.examples import TARGETS, SFTExample

logger = logging.getLogger(__name__)

DATASET_INFO = "dataset_info.json"
DEFAULT_DATASET_NAME = "geo_sft"
SHAREGPT_TAGS: dict[str, str] = {
    "role_tag": "role",
    "content_tag": "content",
    "user_tag": "user",
    "assistant_tag": "assistant",
    "system_tag": "system",
}


@dataclass(frozen=True, slots=True)
class ExportResult:
    """Where an export went and what LLaMA-Factory needs to find it."""

    data_file: Path
    dataset_info: Path
    dataset_name: str
    dataset_dir: Path
    media_dir: Path
    rows: int

    def yaml_keys(self) -> dict[str, str]:
        """The LLaMA-Factory yaml keys (or ``key=value`` overrides) that select this dataset."""
        return {"dataset": self.dataset_name, "dataset_dir": str(self.dataset_dir), "media_dir": str(self.media_dir)}


def dataset_info_entry(file_name: str) -> dict[str, Any]:
    """The ``dataset_info.json`` entry of a sharegpt multimodal file with role/content messages."""
    return {
        "file_name": file_name,
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "images": "images"},
        "tags": dict(SHAREGPT_TAGS),
    }


def sharegpt_row(example: SFTExample, media_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """One sharegpt row: system (optional), user, assistant messages and the images relative to ``media_dir``."""
    messages = []
    if example.system:
        messages.append({"role": "system", "content": example.system})
    messages.append({"role": "user", "content": example.question})
    messages.append({"role": "assistant", "content": example.answer})
    images = [Path(os.path.relpath(p, media_dir)).as_posix() for p in example.images]
    return {"messages": messages, "images": images}


def write_sharegpt(examples: Iterable[SFTExample], path: str | os.PathLike[str], media_dir: str | os.PathLike[str]) -> int:
    """Write one sharegpt row per example to ``path`` (``.jsonl``, or ``.json`` for one array), atomically;
    returns the number of rows."""
    path = Path(path)
    as_array = path.suffix == ".json"
    rows = 0
    with atomic_write(path) as f:
        if as_array:
            f.write("[\n")
        for example in examples:
            line = json.dumps(sharegpt_row(example, media_dir), ensure_ascii=False)
            if as_array:
                f.write(("" if rows == 0 else ",\n") + line)
            else:
                f.write(line + "\n")
            rows += 1
        if as_array:
            f.write("\n]\n")
    return rows


def update_dataset_info(info_path: str | os.PathLike[str], name: str, entry: dict[str, Any]) -> None:
    """Add or replace ``name`` in a ``dataset_info.json`` (created when missing), keeping the other entries."""
    info_path = Path(info_path)
    info: dict[str, Any] = {}
    if info_path.is_file():
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{info_path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
        if not isinstance(info, dict):
            raise ValueError(f"{info_path}:1: expected a JSON object of dataset entries, found {type(info).__name__}")
    info[name] = entry
    write_json_atomic(info_path, info)


def export_llamafactory(
    examples: Iterable[SFTExample],
    out_dir: str | os.PathLike[str],
    dataset_name: str = DEFAULT_DATASET_NAME,
    *,
    file_name: str | None = None,
    media_dir: str | os.PathLike[str] | None = None,
) -> ExportResult:
    """Write ``examples`` as ``out_dir/<file_name>`` (default ``<dataset_name>.jsonl``) and register it in
    ``out_dir/dataset_info.json``. Image paths are written relative to ``media_dir`` (default ``out_dir``)."""
    if not dataset_name or any(c in dataset_name for c in "/\\,") or dataset_name != dataset_name.strip():
        raise ValueError(f"dataset name {dataset_name!r}: use a plain name (no '/', '\\\\', ',' or edge spaces)")
    out = Path(out_dir).resolve()
    media = Path(media_dir).resolve() if media_dir is not None else out
    name = file_name or f"{dataset_name}.jsonl"
    if Path(name).suffix not in (".jsonl", ".json") or Path(name).name != name:
        raise ValueError(f"file name {name!r}: a plain file name ending in .jsonl or .json")
    out.mkdir(parents=True, exist_ok=True)
    rows = write_sharegpt(examples, out / name, media)
    if rows == 0:
        (out / name).unlink(missing_ok=True)
        raise ValueError("no SFT examples to export (every record was skipped)")
    update_dataset_info(out / DATASET_INFO, dataset_name, dataset_info_entry(name))
    return ExportResult(out / name, out / DATASET_INFO, dataset_name, out, media, rows)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``geo-r export-sft`` (data flags named as in the GRPO entrypoint)."""
    parser.add_argument("--data_file_paths", required=True, help="colon-separated .jsonl/.json training files")
    parser.add_argument(
        "--image_folders", default="", help="colon-separated image folders paired with the data files (default: '')"
    )
    parser.add_argument("--out_dir", required=True, help="LLaMA-Factory dataset_dir: gets the data file and dataset_info.json")
    parser.add_argument("--dataset_name", default=DEFAULT_DATASET_NAME, help="entry name in dataset_info.json (default: geo_sft)")
    parser.add_argument("--file_name", default=None, help="data file name in --out_dir (default: <dataset_name>.jsonl; .json writes one array)")
    parser.add_argument(
        "--media_dir",
        default=None,
        help="folder the image paths are written relative to; pass the same as LLaMA-Factory's media_dir "
        "(default: --out_dir, LLaMA-Factory's own default)",
    )
    parser.add_argument("--target", choices=TARGETS, default="auto", help="which answer to train on (see geo_r.sft.examples; default: auto)")
    parser.add_argument("--question", default=None, help="question for records without a human turn (default: the GRPO question)")
    parser.add_argument("--replace_questions", action="store_true", help="ask --question (or the default) of every record")
    parser.add_argument("--skip_invalid", action="store_true", help="drop invalid records (counted) instead of stopping")
    parser.add_argument("--no_check_images", action="store_true", help="do not open every image first")
    parser.add_argument("--no_derive_chains", action="store_true", help="do not fill missing chains offline from lat/lon")
    add_candidate_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Load and validate the records, build the examples, write the export and print what to put in the yaml."""
    from geo_r.data import DataConfigError, DataValidationError, load_records
    from geo_r.data.candidates import attach_from_args, check_candidate_options
    from geo_r.sft.examples import build_sft_examples

    logging.basicConfig(format="[geo-r %(levelname)s] %(message)s", level=logging.INFO)
    try:
        check_candidate_options(args.num_candidates, args.candidate_radius_km)
        records, _ = load_records(
            args.data_file_paths,
            args.image_folders,
            skip_invalid=args.skip_invalid,
            check_images=not args.no_check_images,
            derive_chains=not args.no_derive_chains,
        )
        attach_from_args(records, args)
    except (DataConfigError, DataValidationError, ValueError) as exc:
        print(f"geo-r export-sft: {exc}", file=sys.stderr)
        return 1
    examples, report = build_sft_examples(
        records, args.question, args.target, replace_questions=args.replace_questions
    )
    print(report.summary())
    try:
        result = export_llamafactory(
            examples, args.out_dir, args.dataset_name, file_name=args.file_name, media_dir=args.media_dir
        )
    except ValueError as exc:
        print(f"geo-r export-sft: {exc}", file=sys.stderr)
        return 1
    _print_result(result)
    return 0


def _print_result(result: ExportResult) -> None:
    print(f"wrote {result.rows} sharegpt row(s) to {result.data_file}")
    print(f"registered '{result.dataset_name}' in {result.dataset_info}")
    print("LLaMA-Factory yaml keys (or key=value overrides of llamafactory-cli train):")
    for key, value in result.yaml_keys().items():
        print(f"  {key}: {value}")
