"""Stream a source into the project's jsonl: read -> find image -> complete chain -> write answer -> summary.

Rows flow in batches of ``batch_size``: memory holds one batch (plus capped examples and exact counters),
whatever the input size, and each batch costs one reverse-geocoding query. The output is written to
``OUT.partial`` and renamed at the end, so an interrupted run never leaves a file that looks finished;
skipped rows go, one per line, to a list beside it (``train.jsonl`` -> ``train.skipped.tsv``: location, reason,
detail).

Each line is the data contract of DESIGN.md (``id, image, lat, lon, country, country_code, region, city``,
pass-through fields, ``conversations``). The human turn is ``"<image>" + question`` (the full question, so
SFT and GRPO, which reads the same human turn as its prompt, see the same text); the gpt turn is
:func:`geo_r.prompts.render_answer` of the row's chain and true coordinates.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from geo_r.data.schema import IMAGE_PLACEHOLDER

from .chains import complete_chains
from .csv_source import PrepareInputError
from .formats import FORMATS
from .images import ImageResolver
from .options import PrepareOptions
from .progress import Progress
from .rows import IMAGE_NOT_FOUND, Skip, SourceRow
from .summary import MAX_DUPLICATES, PrepareSummary


def skipped_path(out: Path) -> Path:
    """Where the skipped rows of ``out`` are listed: ``train.jsonl`` -> ``train.skipped.tsv``."""
    return (
        out.with_name(out.stem + ".skipped.tsv") if out.suffix else out.with_name(out.name + ".skipped.tsv")
    )


def prepare(
    fmt: str, opts: PrepareOptions, out: str | os.PathLike[str], *, progress: bool | None = None
) -> PrepareSummary:
    """Convert ``opts.input`` (format ``fmt``, a key of :data:`FORMATS`) into the jsonl ``out``.

    Raises :class:`PrepareInputError` when the input cannot be read at all (missing file, no usable header,
    a column flag on a format without columns); bad rows are counted and listed, never fatal.
    """
    info = FORMATS.get(fmt)
    if info is None:
        raise PrepareInputError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not info.tabular and (opts.columns or opts.keep_columns or opts.coordinate_order != "auto"):
        raise PrepareInputError(
            f"--*_column, --keep_columns and --coordinate_order apply to tables; format {fmt} has no columns"
        )
    if opts.images is not None and not opts.images.is_dir():
        raise PrepareInputError(f"image folder not found: {opts.images}")
    out_path = Path(out)
    if os.path.abspath(out_path) == os.path.abspath(opts.input):
        raise PrepareInputError(f"--out {out_path} is the input itself; write the jsonl elsewhere")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    skip_file = skipped_path(out_path)
    skip_file.unlink(missing_ok=True)  # a list left by an earlier run would describe other rows
    images_root = opts.images if opts.images is not None else (opts.input if fmt == "exif" else None)
    resolver = ImageResolver(images_root, flatten_slashes=info.flatten_slashes, search=opts.search_images)
    summary = PrepareSummary(
        format=fmt, input=str(opts.input), output=str(out_path), images_checked=resolver.checking
    )
    question = opts.question
    if question is None:
        from geo_r.prompts import DEFAULT_QUESTION

        question = DEFAULT_QUESTION
    bar = Progress(f"prepare {fmt}", progress)
    start = time.perf_counter()
    skips: IO[str] | None = None
    try:
        with open(partial, "w", encoding="utf-8") as f:
            batch: list[SourceRow] = []
            for item in info.reader()(opts, bar, summary.notes):
                summary.rows_read += 1
                if isinstance(item, Skip):
                    skips = _skip(summary, item, skips, skip_file)
                    continue
                found = resolver.resolve(item.image)
                if found is None:
                    skips = _skip(summary, _missing(item, resolver), skips, skip_file)
                    continue
                item.image = found
                batch.append(item)
                if len(batch) >= opts.batch_size:
                    _write_batch(batch, f, opts, question, summary)
                    batch = []
            if batch:
                _write_batch(batch, f, opts, question, summary)
    except BaseException:
        partial.unlink(missing_ok=True)
        if skips is not None:
            skips.close()
        skip_file.unlink(missing_ok=True)
        raise
    finally:
        bar.close()
    if skips is not None:
        skips.close()
    os.replace(partial, out_path)
    summary.image_lookups = resolver.counts
    summary.duplicate_names = {k: v for k, v in sorted(resolver.duplicates.items())[:MAX_DUPLICATES]}
    summary.n_duplicate_names = len(resolver.duplicates)
    summary.skipped_file = str(skip_file) if summary.n_skipped else None
    summary.seconds = time.perf_counter() - start
    return summary


def _missing(row: SourceRow, resolver: ImageResolver) -> Skip:
    """The skip of a row whose image is not in the folder."""
    hint = "" if resolver.search else " (without --no_search_images, sub-folders are searched by file name)"
    several = resolver.duplicates.get(os.path.basename(row.image))
    if several:
        hint = f" (several files have its name: {', '.join(several[:3])}{', ...' if len(several) > 3 else ''})"
    return Skip(row.where, IMAGE_NOT_FOUND, f"{row.image} not in {resolver.folder}{hint}")


def _skip(summary: PrepareSummary, skip: Skip, handle: IO[str] | None, path: Path) -> IO[str]:
    """Count ``skip`` and list it in the skipped-rows file (opened on the first skip)."""
    summary.add_skip(skip)
    if handle is None:
        handle = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed by prepare)
        handle.write("where\treason\tdetail\n")
    handle.write(f"{_tsv(skip.where)}\t{skip.reason}\t{_tsv(skip.detail)}\n")
    return handle


def _tsv(text: str) -> str:
    """Text safe for one TSV field."""
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def _write_batch(
    batch: Sequence[SourceRow], f: IO[str], opts: PrepareOptions, question: str, summary: PrepareSummary
) -> None:
    """Complete the batch's chains and write one jsonl line per row."""
    counts = complete_chains(batch, opts.chains)
    for name in vars(counts):
        setattr(summary.chains, name, getattr(summary.chains, name) + getattr(counts, name))
    lines = []
    for row in batch:
        summary.countries[row.country_code or "unknown"] += 1
        lines.append(json.dumps(to_record(row, question if opts.conversations else None), ensure_ascii=False))
    f.write("\n".join(lines) + "\n")
    summary.written += len(batch)


def to_record(row: SourceRow, question: str | None) -> dict[str, Any]:
    """The jsonl object of one row (data contract order); ``conversations`` only when ``question`` is given."""
    record: dict[str, Any] = {"id": row.id, "image": row.image, "lat": row.lat, "lon": row.lon}
    for name in ("country", "country_code", "region", "city"):
        value = getattr(row, name)
        if value is not None:
            record[name] = value
    for key, value in row.extras.items():
        record.setdefault(key, value)
    if question is not None:
        record["conversations"] = [
            {"from": "human", "value": IMAGE_PLACEHOLDER + question},
            {"from": "gpt", "value": answer_for(row)},
        ]
    return record


def answer_for(row: SourceRow) -> str:
    """The Chain-of-Region SFT target of a row. A level GeoNames leaves empty (admin1 of some city-states)
    is written as the next level that exists, so every answer has all four lines the format reward wants."""
    from geo_r.prompts import render_answer

    country = row.country or row.country_code or "Unknown"
    region = row.region or row.city or country
    city = row.city or row.region or country
    return render_answer(country, region, city, row.lat, row.lon)
