"""The settings of one conversion, shared by every format reader and the pipeline (the CLI flags, as data)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

CHAIN_MODES = ("source", "geonames")


@dataclass
class PrepareOptions:
    """What to convert and how. Only ``input`` is required; the rest mirrors ``geo-r prepare``'s flags."""

    input: Path
    images: Path | None = None  # image folder the written paths are relative to; None: not checked
    coordinate_order: str = "auto"  # "auto" (detect), "lat_lon", "lon_lat"
    delimiter: str | None = None  # None: sniffed from the first line
    columns: dict[str, str] = field(default_factory=dict)  # field -> exact column name (--*_column)
    keep_columns: tuple[str, ...] = ()  # source columns copied into each line as pass-through fields
    image_pattern: str | None = None  # image name from the id, e.g. "{id}.jpg"
    id_prefix: str = ""
    limit: int | None = None  # read at most this many source rows (quick tries)
    search_images: bool = True  # look for a missing image by file name anywhere under ``images``
    chains: str = "source"  # "source": keep the source's names, fill gaps offline; "geonames": relabel all
    question: str | None = None  # human turn text after "<image>"; None: geo_r.prompts.DEFAULT_QUESTION
    conversations: bool = True  # write the SFT conversation (human question + Chain-of-Region answer)
    batch_size: int = 10_000  # rows geocoded and written at a time

    def __post_init__(self) -> None:
        self.input = Path(self.input)
        if self.images is not None:
            self.images = Path(self.images)
        if self.coordinate_order not in ("auto", "lat_lon", "lon_lat"):
            raise ValueError(
                f"coordinate_order must be auto, lat_lon or lon_lat, not {self.coordinate_order!r}"
            )
        if self.chains not in CHAIN_MODES:
            raise ValueError(f"chains must be one of {', '.join(CHAIN_MODES)}, not {self.chains!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {self.batch_size}")
        if self.limit is not None and self.limit < 0:
            raise ValueError(f"limit must be >= 0, not {self.limit}")
        if self.image_pattern is not None and "{id}" not in self.image_pattern:
            raise ValueError(f"image_pattern {self.image_pattern!r} must contain {{id}}")
