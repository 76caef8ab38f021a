"""Hard-sample mining (Geo-R's recipe): drop every training sample near a place the base model already gets right.

Given a base model's predictions on the training set, samples answered within ``hotspot_km`` (200) are
hotspots; every sample within ``radius_km`` (200) of a hotspot is dropped; the rest is the hard subset GRPO
trains on (Geo-R's MP16-Hard-200K). :mod:`.hotspots` is the rule on arrays (one KD-tree query),
:mod:`.inputs` reads data and predictions, :mod:`.job` runs it file to file, :mod:`.cli` is ``geo-r mine-hard``.
"""

from __future__ import annotations

from .hotspots import MiningResult, chord_for_km, hotspot_mask, mine_hard, within_radius
from .job import MiningInputError, MiningReport, mine_hard_files

__all__ = [
    "MiningInputError",
    "MiningReport",
    "MiningResult",
    "chord_for_km",
    "hotspot_mask",
    "mine_hard",
    "mine_hard_files",
    "within_radius",
]
