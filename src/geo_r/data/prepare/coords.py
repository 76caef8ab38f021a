"""Read coordinates from source text, and decide whether a file's latitude/longitude columns are swapped.

The old Im2GPS3k metadata (before TIBHannover/GeoEstimation 5e091c0, 2020) labels its latitude values
``LON`` and its longitude values ``LAT``; raw YFCC rows put longitude first. :func:`detect_order` looks at
the values, not the header: a "latitude" beyond +-90 cannot be one, so when many rows have one in the
latitude column and (almost) none in the longitude column, the columns are swapped. When every value is
within +-90 the values alone cannot tell; then the side whose points lie nearer to a GeoNames place
(photos are taken where people live; a swapped point often lands in the sea) decides, and only when the
difference is clear. The verdict and its evidence go into the summary.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from geo_r.data.layouts import parse_number

from .rows import BAD_COORDINATES, MISSING_COORDINATES

ORDERS = ("auto", "lat_lon", "lon_lat")
SAMPLE_ROWS = 20_000  # rows read to decide the order (a whole Im2GPS3k / YFCC4k file)
GEO_SAMPLE = 2_000  # points per side for the nearest-place check
# The place check swaps only when the as-labelled side is this much farther from places, and far at all.
GEO_RATIO = 3.0
GEO_MIN_MEDIAN_KM = 25.0


def parse_coordinate(
    text: str | None, name: str, limit: float
) -> tuple[float | None, tuple[str, str] | None]:
    """``(value, None)`` for a decimal number within ``[-limit, limit]``; ``(None, (reason, detail))`` else."""
    if text is None or not text.strip():
        return None, (MISSING_COORDINATES, f"{name} is empty")
    value = parse_number(text)
    if value is None or not math.isfinite(value):
        return None, (BAD_COORDINATES, f"{name} {text!r} is not a number")
    if not -limit <= value <= limit:
        return None, (BAD_COORDINATES, f"{name} {text!r} is out of range [-{limit:g}, {limit:g}]")
    return value, None


@dataclass(frozen=True)
class OrderDecision:
    """Whether the values labelled (lat, lon) are really (lon, lat), and why (a sentence for the summary)."""

    swapped: bool
    reason: str


def detect_order(pairs: Iterable[tuple[str | None, str | None]], label: str = "LAT/LON") -> OrderDecision:
    """Decide the order of ``(labelled_lat, labelled_lon)`` text pairs (see the module docstring)."""
    lat_beyond = lon_beyond = usable = 0
    lats: list[float] = []
    lons: list[float] = []
    for lat_text, lon_text in pairs:
        lat, lon = parse_number(lat_text or ""), parse_number(lon_text or "")
        if lat is None or lon is None or not (math.isfinite(lat) and math.isfinite(lon)):
            continue
        if abs(lat) > 180 or abs(lon) > 180:
            continue
        usable += 1
        lat_beyond += abs(lat) > 90
        lon_beyond += abs(lon) > 90
        if len(lats) < GEO_SAMPLE:
            lats.append(lat)
            lons.append(lon)
    if usable == 0:
        return OrderDecision(False, f"no numeric {label} values to check the order on")
    if lat_beyond and lat_beyond >= 20 * lon_beyond:
        extra = f" ({lon_beyond} row(s) are out of range either way)" if lon_beyond else ""
        return OrderDecision(
            True,
            f"{label} columns are swapped: {lat_beyond} of {usable} checked rows have a latitude beyond +-90 "
            f"and {lon_beyond} a longitude beyond +-90 (the old Im2GPS3k header); values read as "
            f"latitude = the longitude column, longitude = the latitude column{extra}",
        )
    if lon_beyond:
        return OrderDecision(
            False, f"{label} order as labelled: {lon_beyond} of {usable} checked rows have |longitude| > 90"
        )
    return _order_by_places(np.asarray(lats), np.asarray(lons), usable, label)


def _order_by_places(lats: np.ndarray, lons: np.ndarray, usable: int, label: str) -> OrderDecision:
    """Every value is within +-90: compare how far each reading's points are from the nearest place."""
    from geo_r.geo.regions import nearest_places

    _, as_labelled, _ = nearest_places(lats, lons)
    _, swapped, _ = nearest_places(lons, lats)
    med_labelled, med_swapped = float(np.nanmedian(as_labelled)), float(np.nanmedian(swapped))
    numbers = (
        f"median distance to the nearest GeoNames place {med_labelled:.1f} km as labelled, "
        f"{med_swapped:.1f} km swapped, over {len(lats)} of {usable} rows"
    )
    if med_labelled > GEO_MIN_MEDIAN_KM and med_labelled > GEO_RATIO * med_swapped:
        return OrderDecision(
            True,
            f"{label} columns look swapped (all values within +-90; {numbers}); pass "
            "--coordinate_order lat_lon to keep them as labelled",
        )
    return OrderDecision(False, f"{label} order as labelled (all values within +-90; {numbers})")
