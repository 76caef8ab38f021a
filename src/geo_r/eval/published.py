"""Published Im2GPS3k / YFCC4k results that an evaluation report prints next to ours, each with its source.

They are listed only when the run's data is that benchmark (``geo-r eval --benchmark im2gps3k|yfcc4k``, or
recognised from the data file names): numbers on other data are not comparable to them.

Each row's ``source`` names the paper (and table) its numbers are copied from. They are reference rows, not
something we reproduced: the
code bases behind them differ in distance (haversine or WGS-84 geodesic) and threshold test (``<=`` or
``<``), which is why ``geo-r eval`` has ``--distance`` and ``--strict_threshold``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PUBLISHED_THRESHOLDS_KM: tuple[float, ...] = (1.0, 25.0, 200.0, 750.0, 2500.0)
"""The thresholds every published row reports (street, city, region, country, continent)."""

BENCHMARKS: dict[str, str] = {"im2gps3k": "Im2GPS3k", "yfcc4k": "YFCC4k"}
"""Benchmark key -> display name."""


@dataclass(frozen=True)
class PublishedResult:
    """One published row: accuracy (%) at :data:`PUBLISHED_THRESHOLDS_KM` on one benchmark (None = not reported)."""

    method: str
    setting: str
    benchmark: str
    acc: tuple[float | None, float | None, float | None, float | None, float | None]
    source: str


PUBLISHED: tuple[PublishedResult, ...] = (
    PublishedResult(
        "Geo-R (AAAI'26)",
        "Qwen2.5-VL-7B, SFT + GRPO, MP16, retrieval-free",
        "im2gps3k",
        (18.10, 41.53, 58.31, 75.33, 86.42),
        "arXiv 2601.00388 (paper note; Jia-py awesome list)",
    ),
    PublishedResult(
        "Geo-R (AAAI'26)",
        "Qwen2.5-VL-7B, SFT + GRPO, MP16, retrieval-free",
        "yfcc4k",
        (10.5, 22.7, 40.0, 60.8, 75.8),
        "arXiv 2601.00388 (paper note; Jia-py awesome list)",
    ),
    PublishedResult(
        "GeoCLIP (NeurIPS'23)",
        "image-GPS contrastive retrieval, MP16",
        "im2gps3k",
        (14.11, 34.47, 50.65, 69.67, 83.82),
        "Img2Loc paper text (SIGIR'24), quoting GeoCLIP",
    ),
    PublishedResult(
        "GeoCLIP (NeurIPS'23)",
        "image-GPS contrastive retrieval, MP16 (reproduced by Img2Loc)",
        "yfcc4k",
        (9.59, 19.31, 32.63, 55.0, 74.69),
        "Img2Loc paper text (SIGIR'24), reproduction",
    ),
    PublishedResult(
        "PIGEOTTO (CVPR'24)",
        "CLIP geocell classification + retrieval refinement",
        "im2gps3k",
        (11.3, 36.7, 53.8, 72.4, 85.3),
        "Jia-py awesome list; GeoRanker paper note",
    ),
    PublishedResult(
        "PIGEOTTO (CVPR'24)",
        "CLIP geocell classification + retrieval refinement",
        "yfcc4k",
        (10.4, 23.7, 40.6, 62.2, 77.7),
        "Jia-py awesome list; GeoRanker paper note",
    ),
    PublishedResult(
        "Qwen2.5-VL-7B zero-shot",
        "asked for coordinates",
        "im2gps3k",
        (3.2, 16.62, 28.03, 42.14, 52.99),
        "GRE Suite paper (NeurIPS'25), Tables 2 and 7",
    ),
    PublishedResult(
        "Qwen2.5-VL-3B zero-shot",
        "asked for coordinates",
        "im2gps3k",
        (0.33, 1.2, 3.57, 5.37, 7.31),
        "GRE Suite paper (NeurIPS'25), appendix Table 7",
    ),
)


def published_for(benchmark: str | None) -> list[PublishedResult]:
    """The reference rows of one benchmark key, or of every benchmark when ``benchmark`` is None."""
    if benchmark is not None and benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; choose one of {', '.join(BENCHMARKS)}")
    return [r for r in PUBLISHED if benchmark is None or r.benchmark == benchmark]


def detect_benchmark(data_files: Sequence[str | Path]) -> str | None:
    """The benchmark a run evaluates, from its data file names ("im2gps3k_test.jsonl" -> "im2gps3k"):
    only when every file names the same benchmark; None otherwise (the report then lists all rows)."""
    found: set[str | None] = set()
    for path in data_files:
        name = Path(path).name.lower().replace("-", "").replace("_", "")
        hits = {key for key in BENCHMARKS if key in name}
        found.add(hits.pop() if len(hits) == 1 else None)
    return found.pop() if len(found) == 1 else None


BENCHMARK_SIZES: dict[str, int] = {"im2gps3k": 2997, "yfcc4k": 4536}
"""Images in each full benchmark, to say when a run covers only part of it."""


def resolve_benchmark(flag: str, data_files: Sequence[str | Path]) -> tuple[str | None, str]:
    """The benchmark key of a run (None: not a published benchmark) and a sentence saying how it was decided.

    ``flag`` is ``geo-r eval --benchmark``: ``auto`` recognises the data file names (:func:`detect_benchmark`),
    ``none`` says the data is no published benchmark, a benchmark key says it is that one.
    """
    names = ", ".join(Path(p).name for p in data_files)
    if flag == "none":
        return None, "not a published benchmark (--benchmark none)"
    if flag in BENCHMARKS:
        return flag, f"{BENCHMARKS[flag]} (--benchmark {flag})"
    if flag != "auto":
        raise ValueError(f"unknown --benchmark {flag!r}; choose auto, none or one of {', '.join(BENCHMARKS)}")
    found = detect_benchmark(data_files)
    if found is None:
        return None, f"not recognised as Im2GPS3k or YFCC4k from the data file name(s) {names}"
    return found, f"{BENCHMARKS[found]} (recognised from the data file name(s) {names})"
