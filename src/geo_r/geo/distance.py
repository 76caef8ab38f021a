"""Great-circle distances and GeoScore, the way geolocation papers compute them.

Every evaluation code base Geo-R is compared with (GeoEstimation, OSV-5M, REVERSE, Geo-R's own release)
uses the haversine formula on a sphere of radius 6371 km, so rewards and metrics use it too. On the
WGS-84 ellipsoid the same pairs differ by at most about 0.5 % (London-New York: 5570 km here, 5586 km
geodesic), which is below what any threshold metric resolves.
"""

from __future__ import annotations

from typing import overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

EARTH_RADIUS_KM = 6371.0
"""Mean Earth radius (km) used by GeoEstimation, OSV-5M and Geo-R's evaluation and reward code."""

GEOSCORE_MAX = 5000.0
GEOSCORE_SCALE_KM = 1492.7
"""GeoGuessr's world-map decay: OSV-5M ``metrics/distance_based.py`` and PIGEON use 5000 * exp(-d / 1492.7)."""


@overload
def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float: ...
@overload
def haversine_km(
    lat1: ArrayLike, lon1: ArrayLike, lat2: ArrayLike, lon2: ArrayLike
) -> float | NDArray[np.float64]: ...


def haversine_km(
    lat1: ArrayLike, lon1: ArrayLike, lat2: ArrayLike, lon2: ArrayLike
) -> float | NDArray[np.float64]:
    """Great-circle distance in km between points given in decimal degrees (R = 6371 km).

    Inputs broadcast like numpy arrays; all-scalar input returns a Python float, anything else an ndarray.
    The asin argument is clipped to [0, 1], so rounding can never produce NaN near the antipodes; longitudes
    enter only through sin^2 of their half-difference, so 179.9 and -179.9 are 22 km apart at the equator,
    not 40,000. NaN coordinates give NaN (callers validate their inputs); no range check is done here.
    """
    phi1 = np.radians(np.asarray(lat1, dtype=np.float64))
    phi2 = np.radians(np.asarray(lat2, dtype=np.float64))
    dphi = phi2 - phi1
    dlmb = np.radians(np.asarray(lon2, dtype=np.float64) - np.asarray(lon1, dtype=np.float64))
    a = np.sin(dphi / 2.0) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlmb / 2.0) ** 2
    d = 2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    if np.ndim(d) == 0:
        return float(d)
    return d


def geoscore(d_km: ArrayLike) -> float | NDArray[np.float64]:
    """GeoGuessr score 5000 * exp(-d / 1492.7) for a distance in km (scalar -> float, array -> ndarray)."""
    s = GEOSCORE_MAX * np.exp(-np.asarray(d_km, dtype=np.float64) / GEOSCORE_SCALE_KM)
    if np.ndim(s) == 0:
        return float(s)
    return s
