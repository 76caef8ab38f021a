"""Training data: jsonl/json files + image folders -> validated records -> the dataset TRL's GRPOTrainer reads.

Importing this package is cheap (no torch, datasets or PIL until a function needs them)::

    records, report = load_records("a.jsonl:b.json", "imgs_a/:imgs_b/", derive_chains=True)
    dataset = build_grpo_dataset(records)
    train, val = split_dataset(dataset, val_split_ratio=0.05, seed=42)
"""

from geo_r.data.dataset import build_grpo_dataset, build_prompt, content_blocks, split_dataset
from geo_r.data.records import derive_missing_chains, load_records, scan_records
from geo_r.data.report import DataConfigError, DataValidationError, FileReport, LoadReport, Problem
from geo_r.data.schema import GeoRecord
from geo_r.data.sources import DataSource, pair_sources

__all__ = [
    "DataConfigError",
    "DataSource",
    "DataValidationError",
    "FileReport",
    "GeoRecord",
    "LoadReport",
    "Problem",
    "build_grpo_dataset",
    "build_prompt",
    "content_blocks",
    "derive_missing_chains",
    "load_records",
    "pair_sources",
    "scan_records",
    "split_dataset",
]
