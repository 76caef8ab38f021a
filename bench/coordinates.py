"""Shared by the bench scripts: reading a ``LAT,LON`` csv of real coordinates, and moving points on the sphere."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np


def read_latlon_csv(path: Path, who: str, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` (all when None) rows of a ``LAT,LON`` csv; a bad header, row or range exits naming file:line."""
    lats: list[float] = []
    lons: list[float] = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip().upper() for h in header[:2]] != ["LAT", "LON"]:
            sys.exit(f"{who}: {path}:1: expected a LAT,LON header, got {header}")
        for line_no, row in enumerate(reader, start=2):
            if n is not None and len(lats) >= n:
                break
            try:
                lat, lon = float(row[0]), float(row[1])
            except (IndexError, ValueError):
                sys.exit(f"{who}: {path}:{line_no}: not a LAT,LON pair: {row}")
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                sys.exit(f"{who}: {path}:{line_no}: coordinate out of range: {row}")
            lats.append(lat)
            lons.append(lon)
    return np.asarray(lats), np.asarray(lons)


def destination(lat: np.ndarray, lon: np.ndarray, km: np.ndarray, bearing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points ``km`` away from (lat, lon) along ``bearing`` (radians) on the sphere."""
    from geo_r.geo.distance import EARTH_RADIUS_KM

    d = km / EARTH_RADIUS_KM
    p1, l1 = np.radians(lat), np.radians(lon)
    p2 = np.arcsin(np.clip(np.sin(p1) * np.cos(d) + np.cos(p1) * np.sin(d) * np.cos(bearing), -1, 1))
    l2 = l1 + np.arctan2(np.sin(bearing) * np.sin(d) * np.cos(p1), np.cos(d) - np.sin(p1) * np.sin(p2))
    return np.degrees(p2), (np.degrees(l2) + 540.0) % 360.0 - 180.0
