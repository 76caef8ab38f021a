"""Dataset converters: public geolocation datasets and geotagged photo folders -> the project's jsonl.

``geo-r prepare --format FORMAT --input CSV_OR_DIR --images DIR --out OUT.jsonl`` (:mod:`.cli`), or in code::

    summary = prepare("im2gps3k", PrepareOptions(input=Path("im2gps3k_places365.csv"), images=Path("imgs")),
                      "im2gps3k.jsonl")
    print(summary.format_text())

One module per format (:mod:`.mp16pro`, :mod:`.osv5m`, :mod:`.im2gps3k`, :mod:`.yfcc4k`, :mod:`.generic`,
:mod:`.exif`) turns its source into :class:`SourceRow` / :class:`Skip` items; the shared :mod:`.pipeline`
finds images, completes region chains offline, writes the SFT answer and counts everything.
"""

from __future__ import annotations

from .csv_source import PrepareInputError
from .formats import FORMATS, FormatInfo
from .options import PrepareOptions
from .pipeline import answer_for, prepare, skipped_path, to_record
from .rows import Skip, SourceRow
from .summary import PrepareSummary

__all__ = [
    "FORMATS",
    "FormatInfo",
    "PrepareInputError",
    "PrepareOptions",
    "PrepareSummary",
    "Skip",
    "SourceRow",
    "answer_for",
    "prepare",
    "skipped_path",
    "to_record",
]
