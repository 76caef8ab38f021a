"""The CSV/TSV reader every table format shares: a :class:`CsvSpec` (which columns mean what) in, rows out.

A format is data: its column aliases (the first non-empty of them fills a field, which also gives fallbacks
such as MP16-Pro's ``state`` -> ``region`` -> ``county``), which fields it requires, how the image name is
made when there is no image column, and whether ``country`` holds an ISO code (OSV-5M). Coordinates go
through :func:`geo_r.data.prepare.coords.detect_order` first unless the order is given, so a file with
swapped headers is read right and the summary says so.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from geo_r.data.schema import RESERVED_COLUMNS

from .coords import SAMPLE_ROWS, detect_order, parse_coordinate
from .csv_source import CsvFile, PrepareInputError, first_value, has_invalid_text, resolve_columns
from .options import PrepareOptions
from .progress import Progress
from .rows import MALFORMED_ROW, MISSING_ID, MISSING_IMAGE, Skip, SourceRow

_PROGRESS_EVERY = 2048  # rows between progress-bar updates
# Fields each written line gets from the converter (a --keep_columns name must not collide with them).
OWN_FIELDS = frozenset({*RESERVED_COLUMNS, "conversations", "author"})


@dataclass(frozen=True)
class CsvSpec:
    """How one table format maps to the data contract."""

    name: str
    columns: Mapping[str, Sequence[str]]  # field -> header aliases, in preference order
    required: Sequence[str] = ("lat", "lon")
    image_pattern: str | None = None  # image name from the id when no image column is found, e.g. "{id}.jpg"
    country_is_code: bool = False  # the ``country`` column holds ISO codes (OSV-5M)
    header: Sequence[str] | None = None  # column names of a file without a header row (raw YFCC)
    id_transform: Callable[[str], str] | None = None
    notes: Sequence[str] = field(default_factory=tuple)  # always added to the summary


def read_table(
    spec: CsvSpec, opts: PrepareOptions, progress: Progress, notes: list[str]
) -> Iterator[SourceRow | Skip]:
    """Stream the rows of ``opts.input`` as :class:`SourceRow` / :class:`Skip` (see the module docstring)."""
    table = CsvFile(opts.input, opts.delimiter)
    where = str(opts.input)
    rows = table.rows()
    if spec.header is None:
        first = next(rows, None)
        if first is None:
            raise PrepareInputError(f"{where}: the file is empty (expected a header line)")
        header = first[1]
    else:
        header = list(spec.header)
    cols = resolve_columns(header, spec.columns, spec.required, where, opts.columns)
    if "id" not in cols and "image" not in cols:
        raise PrepareInputError(
            f"{where}:1: header {list(header)} has no id or image column (name one with --id_column or "
            "--image_column)"
        )
    image_pattern = opts.image_pattern or spec.image_pattern
    if "image" not in cols and image_pattern is None:
        raise PrepareInputError(
            f"{where}:1: header {list(header)} has no image column; name it with --image_column or make "
            "names from the id with --image_pattern '{id}.jpg'"
        )
    keep = _keep_columns(header, opts.keep_columns, where)
    swapped = _decide_order(spec, opts, cols, header, notes)
    notes.extend(spec.notes)
    lat_cols, lon_cols = (cols["lon"], cols["lat"]) if swapped else (cols["lat"], cols["lon"])
    labels = (f"latitude (column {header[lat_cols[0]]})", f"longitude (column {header[lon_cols[0]]})")
    n_fields = len(header)

    progress.start(table.size, "B")
    for count, (line, fields) in enumerate(itertools.islice(rows, opts.limit), start=1):
        if count % _PROGRESS_EVERY == 0:
            progress.update_to(table.bytes_read)
        at = f"{where}:{line}"
        if len(fields) != n_fields:
            yield Skip(at, MALFORMED_ROW, f"{len(fields)} fields where the header has {n_fields}")
            continue
        if has_invalid_text(fields):
            yield Skip(at, MALFORMED_ROW, "not valid UTF-8 (re-encode the file as UTF-8)")
            continue
        yield _row(spec, opts, cols, keep, fields, at, (lat_cols, lon_cols), labels, image_pattern)
    progress.update_to(table.size)


def _row(
    spec: CsvSpec,
    opts: PrepareOptions,
    cols: dict[str, list[int]],
    keep: dict[str, int],
    fields: list[str],
    at: str,
    coordinate_cols: tuple[list[int], list[int]],
    labels: tuple[str, str],
    image_pattern: str | None,
) -> SourceRow | Skip:
    """One data row -> a source row, or the first reason it cannot be one."""
    raw_id = first_value(fields, cols["id"]) if "id" in cols else None
    if raw_id is not None and spec.id_transform is not None:
        raw_id = spec.id_transform(raw_id)
    image = first_value(fields, cols["image"]) if "image" in cols else None
    if image is None and raw_id is not None and image_pattern is not None and "image" not in cols:
        image = image_pattern.replace("{id}", raw_id)
    if raw_id is None:
        raw_id = image
    if raw_id is None:
        return Skip(at, MISSING_ID, "no id and no image name")
    if image is None:
        return Skip(at, MISSING_IMAGE, f"no image name for id {raw_id!r}")
    lat, problem = parse_coordinate(first_value(fields, coordinate_cols[0]), labels[0], 90.0)
    if problem is not None:
        return Skip(at, *problem)
    lon, problem = parse_coordinate(first_value(fields, coordinate_cols[1]), labels[1], 180.0)
    if problem is not None:
        return Skip(at, *problem)
    assert lat is not None and lon is not None
    chain = {
        name: first_value(fields, cols[name]) if name in cols else None
        for name in ("country", "country_code", "region", "city")
    }
    if spec.country_is_code and chain["country"] is not None:
        chain["country_code"] = chain["country_code"] or chain["country"]
        chain["country"] = None
    extras: dict[str, str] = {}
    if "author" in cols:
        author = first_value(fields, cols["author"])
        if author is not None:
            extras["author"] = author
    for name, i in keep.items():
        value = first_value(fields, [i])
        if value is not None:
            extras[name] = value
    return SourceRow(
        id=opts.id_prefix + raw_id, image=image, lat=lat, lon=lon, where=at, extras=extras, **chain
    )


def _keep_columns(header: Sequence[str], names: Sequence[str], where: str) -> dict[str, int]:
    """``--keep_columns``: output field name -> column index; every name must be in the header and must not
    be a field the converter writes itself."""
    index = {h.strip().lower(): i for i, h in reversed(list(enumerate(header)))}
    out: dict[str, int] = {}
    for name in names:
        if name.strip().lower() in OWN_FIELDS:
            raise PrepareInputError(
                f"--keep_columns {name!r}: the converter writes {name.strip()!r} itself; map a column to it "
                "with --<field>_column instead"
            )
        i = index.get(name.strip().lower())
        if i is None:
            raise PrepareInputError(f"{where}:1: --keep_columns {name!r} is not in the header {list(header)}")
        out[name.strip()] = i
    return out


def _decide_order(
    spec: CsvSpec, opts: PrepareOptions, cols: dict[str, list[int]], header: Sequence[str], notes: list[str]
) -> bool:
    """True when the labelled lat/lon columns are to be read swapped (``--coordinate_order`` or detection)."""
    label = f"{header[cols['lat'][0]]}/{header[cols['lon'][0]]}"
    if opts.coordinate_order == "lat_lon":
        return False
    if opts.coordinate_order == "lon_lat":
        notes.append(f"{label} read swapped (--coordinate_order lon_lat)")
        return True
    table = CsvFile(opts.input, opts.delimiter)
    rows = table.rows()
    if spec.header is None:
        next(rows, None)
    n_fields = len(header)
    pairs = (
        (first_value(fields, cols["lat"]), first_value(fields, cols["lon"]))
        for _, fields in itertools.islice(rows, SAMPLE_ROWS)
        if len(fields) == n_fields
    )
    decision = detect_order(pairs, label)
    rows.close()
    notes.append(decision.reason)
    return decision.swapped
