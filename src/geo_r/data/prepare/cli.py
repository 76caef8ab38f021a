"""Convert a public geolocation dataset's metadata, or a folder of your own geotagged photos, to Geo-R jsonl.

Formats: mp16pro, osv5m, im2gps3k, yfcc4k, csv (any table) and exif (photos located by their EXIF GPS).
Each written line follows the data contract (id, image, lat, lon, country, country_code, region, city) and
carries the SFT target: a Chain-of-Region answer in ``conversations``. Region names come from the source
where it has them and are filled offline from GeoNames otherwise. Bad rows are counted, listed beside
the output (train.jsonl -> train.skipped.tsv) and never stop the run; a summary (rows, skips by reason, images, chains, top countries)
ends it. Exit code 0 when at least one row was written.

Example:
  geo-r prepare --format im2gps3k --input im2gps3k_places365.csv --images im2gps3ktest/ --out im2gps3k.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from .options import PrepareOptions

COLUMN_FIELDS = ("id", "image", "lat", "lon", "country", "country_code", "region", "city", "author")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``geo-r prepare``."""
    from .formats import FORMATS
    from .options import CHAIN_MODES

    formats = "; ".join(f"{f.name}: {f.help}" for f in FORMATS.values())
    parser.add_argument("--format", required=True, choices=list(FORMATS), help=f"input format ({formats})")
    parser.add_argument("--input", required=True, help="the metadata CSV/TXT, or the photo folder for exif")
    parser.add_argument(
        "--images",
        default=None,
        help="image folder the written image paths are relative to; rows whose image is not there are skipped "
        "(default: not checked; for exif, the --input folder)",
    )
    parser.add_argument(
        "--out",
        required=True,
        help="output .jsonl (skipped rows are listed beside it: train.jsonl -> train.skipped.tsv)",
    )
    parser.add_argument(
        "--chains",
        choices=CHAIN_MODES,
        default="source",
        help="source: keep the source's country/region/city and fill gaps offline; geonames: relabel every row "
        "from GeoNames, as the region reward and metrics do (default: source)",
    )
    parser.add_argument(
        "--coordinate_order",
        choices=("auto", "lat_lon", "lon_lat"),
        default="auto",
        help="auto: check from the values whether the latitude/longitude columns are swapped (old Im2GPS3k "
        "headers) and say so; lat_lon: as labelled; lon_lat: swap them (default: auto)",
    )
    parser.add_argument(
        "--delimiter",
        default=None,
        help="column delimiter (default: tab if the first line has tabs and no commas, else comma)",
    )
    for name in COLUMN_FIELDS:
        parser.add_argument(
            f"--{name}_column", default=None, help=f"the column holding {name} (overrides the format's names)"
        )
    parser.add_argument(
        "--keep_columns",
        default="",
        help="comma-separated source columns copied into each line as pass-through fields (reward functions get them)",
    )
    parser.add_argument(
        "--image_pattern",
        default=None,
        help="image file name made from the id when the table has no image column, e.g. '{id}.jpg' "
        "(osv5m and raw yfcc4k default to '{id}.jpg')",
    )
    parser.add_argument(
        "--no_search_images",
        dest="search_images",
        action="store_false",
        help="look for each image only at the path the row gives (and MP16-Pro's flattened name); by default an "
        "image not there is found by file name anywhere under --images (OSV-5M's shards unzip into images/test/00/, "
        "01/, ...), walking the folder once (about 150 bytes per file) and reporting names found in two folders",
    )
    parser.add_argument(
        "--search_images",
        dest="search_images",
        action="store_true",
        default=True,
        help="search sub-folders by file name (the default; kept for older scripts)",
    )
    parser.add_argument(
        "--id_prefix", default="", help="text put before every id, e.g. 'mp16_' (default: none)"
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="read at most this many source rows (quick tries)"
    )
    parser.add_argument(
        "--question_file",
        default=None,
        help="text file with the question of the human turn (default: geo_r.prompts.DEFAULT_QUESTION)",
    )
    parser.add_argument(
        "--no_conversations",
        action="store_true",
        help="leave out conversations (no SFT target; GRPO then asks the default question); smaller files",
    )
    parser.add_argument(
        "--batch_size", type=int, default=10_000, help="rows geocoded and written at a time (default: 10000)"
    )
    parser.add_argument("--summary_json", default=None, help="also write the summary as JSON to this path")
    parser.add_argument(
        "--no_progress", action="store_true", help="no progress bar (it is shown only on a terminal anyway)"
    )


def options_from_args(args: argparse.Namespace) -> tuple[PrepareOptions | None, str | None]:
    """The :class:`PrepareOptions` of parsed flags, plus an error message instead when a flag is unusable."""
    from .options import PrepareOptions

    question = None
    if args.question_file:
        path = Path(args.question_file)
        if not path.is_file():
            return None, f"--question_file {path} not found"
        question = path.read_text(encoding="utf-8").strip()
        if not question:
            return None, f"--question_file {path} is empty"
    columns = {
        name: getattr(args, f"{name}_column") for name in COLUMN_FIELDS if getattr(args, f"{name}_column")
    }
    keep = tuple(c.strip() for c in args.keep_columns.split(",") if c.strip())
    try:
        opts = PrepareOptions(
            input=Path(args.input),
            images=Path(args.images) if args.images else None,
            coordinate_order=args.coordinate_order,
            delimiter=_delimiter(args.delimiter),
            columns=columns,
            keep_columns=keep,
            image_pattern=args.image_pattern,
            id_prefix=args.id_prefix,
            limit=args.limit,
            search_images=args.search_images,
            chains=args.chains,
            question=question,
            conversations=not args.no_conversations,
            batch_size=args.batch_size,
        )
    except ValueError as exc:
        return None, str(exc)
    return opts, None


def _delimiter(text: str | None) -> str | None:
    """``--delimiter``: ``\\t``/``tab`` mean a tab."""
    if text is None:
        return None
    return "\t" if text in ("\\t", "tab", "TAB") else text


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run the conversion, print the summary, return the exit code (0 when rows were written)."""
    from .csv_source import PrepareInputError
    from .pipeline import prepare

    out = out or sys.stdout
    opts, error = options_from_args(args)
    if opts is None:
        print(f"geo-r prepare: error: {error}", file=sys.stderr)
        return 1
    try:
        summary = prepare(args.format, opts, args.out, progress=False if args.no_progress else None)
    except PrepareInputError as exc:
        print(f"geo-r prepare: error: {exc}", file=sys.stderr)
        return 1
    print(summary.format_text(), file=out)
    if args.summary_json:
        Path(args.summary_json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.summary_json).write_text(json.dumps(summary.to_dict(), indent=2) + "\n", encoding="utf-8")
    if summary.written == 0:
        print("geo-r prepare: error: no rows written (see the reasons above)", file=sys.stderr)
        return 1
    return 0
