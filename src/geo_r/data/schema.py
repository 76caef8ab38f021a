"""The one in-memory form of a training photo, whatever layout its jsonl line used.

:class:`GeoRecord` is what :func:`geo_r.data.load_records` returns and :func:`geo_r.data.build_grpo_dataset`
consumes. Image paths are absolute (the dataset decodes them later, from whatever working directory the
trainer runs in); the question keeps its ``<image>`` placeholders so the prompt builder can put each image
where the user put it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from geo_r.geo.candidates import Candidate

IMAGE_PLACEHOLDER = "<image>"

# The four chain fields of the data contract, top-down.
CHAIN_FIELDS: tuple[str, ...] = ("country", "country_code", "region", "city")

# Columns the GRPO dataset builds itself. A pass-through field with one of these names would clash, and so
# would one named like an argument TRL passes to reward functions; such fields are dropped with a warning.
RESERVED_COLUMNS: frozenset[str] = frozenset(
    {
        "prompt",
        "images",
        "image",
        "id",
        "lat",
        "lon",
        *CHAIN_FIELDS,
        "solution",
        "candidates",
        "prompts",
        "completion",
        "completions",
        "completion_ids",
        "trainer_state",
        "log_extra",
        "log_metric",
        "environments",
    }
)


@dataclass(slots=True)
class GeoRecord:
    """One photo (or several) with its true location, question, optional SFT target and extra fields."""

    id: str
    images: list[str]  # absolute paths
    lat: float
    lon: float
    country: str | None = None
    country_code: str | None = None
    region: str | None = None
    city: str | None = None
    question: str | None = None  # human turn / ``problem``; None -> the default question
    system: str | None = None  # a system turn of ``conversations``, if any
    solution: str | None = None  # gpt turn (SFT target) or Geo-R ``solution``, as text
    author: str | None = None  # the photographer (MP16-Pro ``AUTHOR``, a Flickr NSID, ...), when the source names one
    extras: dict[str, Any] = field(default_factory=dict)  # pass-through fields for reward functions
    layout: str = "contract"  # "contract", "vlm-r1" or "geo-r": where the coordinates came from
    source: str = ""  # "file:line" it was read from
    # Retrieval candidates shown after the question (a record's ``candidates`` field, or --candidates); None: none.
    candidates: tuple[Candidate, ...] | None = None

    def missing_chain(self) -> bool:
        """True when any of country, country_code, region, city is unknown."""
        return any(getattr(self, name) is None for name in CHAIN_FIELDS)
