"""Haversine distance and GeoScore: agreement with WGS-84 geodesics, known values, edge cases, broadcasting."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from geographiclib.geodesic import Geodesic
from hypothesis import given, settings
from hypothesis import strategies as st

from geo_r.geo import EARTH_RADIUS_KM, geoscore, haversine_km

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mp16_coordinates_100k.csv"
HALF_CIRCUMFERENCE_KM = math.pi * EARTH_RADIUS_KM
# A sphere of radius 6371 km vs the WGS-84 ellipsoid: local radii of curvature span 6335-6400 km, so the
# relative difference is at most about 0.57 %.
MAX_REL_DIFF = 0.006


def _geodesic_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    return Geodesic.WGS84.Inverse(lat1, lon1, lat2, lon2, outmask=Geodesic.DISTANCE)["s12"] / 1000.0


def _random_pairs(rng: np.random.Generator, n: int) -> np.ndarray:
    """Uniform points on the sphere plus the hard cases: poles, near-antipodes, the antimeridian, near-equal."""
    z = rng.uniform(-1, 1, size=(n, 2))
    lat = np.degrees(np.arcsin(z))
    lon = rng.uniform(-180, 180, size=(n, 2))
    pairs = np.stack([lat[:, 0], lon[:, 0], lat[:, 1], lon[:, 1]], axis=1)
    k = n // 5
    # near-antipodal: the second point is the antipode of the first, jittered by up to 0.5 degrees
    pairs[:k, 2] = np.clip(-pairs[:k, 0] + rng.uniform(-0.5, 0.5, k), -90, 90)
    pairs[:k, 3] = (pairs[:k, 1] + 180 + rng.uniform(-0.5, 0.5, k) + 180) % 360 - 180
    # across the antimeridian
    pairs[k : 2 * k, 1] = rng.uniform(170, 180, k)
    pairs[k : 2 * k, 3] = rng.uniform(-180, -170, k)
    # near the poles (both hemispheres)
    pairs[2 * k : 3 * k, 0] = rng.choice([-1, 1], k) * rng.uniform(85, 90, k)
    pairs[2 * k : 3 * k, 2] = rng.choice([-1, 1], k) * rng.uniform(80, 90, k)
    # short distances (a few km), where the relative difference is largest
    pairs[3 * k : 4 * k, 2] = np.clip(pairs[3 * k : 4 * k, 0] + rng.uniform(-0.05, 0.05, k), -90, 90)
    pairs[3 * k : 4 * k, 3] = pairs[3 * k : 4 * k, 1] + rng.uniform(-0.05, 0.05, k)
    return pairs


def _assert_close_to_geodesic(pairs: np.ndarray) -> None:
    ours = haversine_km(pairs[:, 0], pairs[:, 1], pairs[:, 2], pairs[:, 3])
    ref = np.array([_geodesic_km(*p) for p in pairs])
    keep = ref > 0.01  # relative error is meaningless for coincident points
    rel = np.abs(ours[keep] - ref[keep]) / ref[keep]
    worst = int(np.argmax(rel))
    assert rel.max() < MAX_REL_DIFF, (
        f"pair {pairs[keep][worst]}: {ours[keep][worst]} vs {ref[keep][worst]} km"
    )
    assert np.all(np.abs(ours[~keep] - ref[~keep]) < 0.01)


def test_matches_wgs84_geodesic_on_random_and_hard_pairs() -> None:
    _assert_close_to_geodesic(_random_pairs(np.random.default_rng(20260101), 3000))


def test_matches_wgs84_geodesic_on_real_mp16_pairs() -> None:
    if not SHARED_DATA.is_file():
        pytest.skip(f"real MP16 coordinates not found at {SHARED_DATA} (only in the project's shared folder)")
    coords = np.loadtxt(SHARED_DATA, delimiter=",", skiprows=1, max_rows=4000)
    pairs = np.concatenate([coords[:2000], coords[2000:4000]], axis=1)
    _assert_close_to_geodesic(pairs)


def test_known_city_distances() -> None:
    london, nyc = (51.5074, -0.1278), (40.7128, -74.0060)
    paris, tokyo = (48.8566, 2.3522), (35.6762, 139.6503)
    assert haversine_km(*london, *nyc) == pytest.approx(5570.2, abs=0.5)
    assert haversine_km(*paris, *tokyo) == pytest.approx(9711.7, abs=0.5)
    assert haversine_km(*nyc, *london) == pytest.approx(haversine_km(*london, *nyc), rel=1e-12)


def test_exact_geometric_values() -> None:
    assert haversine_km(0, 0, 0, 90) == pytest.approx(HALF_CIRCUMFERENCE_KM / 2, rel=1e-12)
    assert haversine_km(0, 0, 0, 180) == pytest.approx(HALF_CIRCUMFERENCE_KM, rel=1e-12)
    assert haversine_km(90, 0, -90, 0) == pytest.approx(HALF_CIRCUMFERENCE_KM, rel=1e-12)
    assert haversine_km(0, 0, 1, 0) == pytest.approx(HALF_CIRCUMFERENCE_KM / 180, rel=1e-12)
    assert haversine_km(12.3, 45.6, 12.3, 45.6) == 0.0


def test_poles_antipodes_and_antimeridian_are_safe() -> None:
    # every longitude is the same point at a pole
    assert haversine_km(90, 0, 90, 123.4) == pytest.approx(0.0, abs=1e-9)
    assert haversine_km(-90, -170, -90, 10) == pytest.approx(0.0, abs=1e-9)
    # exact antipodes: the asin argument rounds to slightly above 1 without the clip
    rng = np.random.default_rng(7)
    lat = rng.uniform(-90, 90, 2000)
    lon = rng.uniform(-180, 180, 2000)
    d = haversine_km(lat, lon, -lat, lon + 180.0)
    assert not np.isnan(d).any()
    np.testing.assert_allclose(
        d, HALF_CIRCUMFERENCE_KM, rtol=1e-7
    )  # within 2 m: asin is ill-conditioned at 1
    # 0.2 degrees apart across the antimeridian, not 359.8
    assert haversine_km(0, 179.9, 0, -179.9) == pytest.approx(0.2 * HALF_CIRCUMFERENCE_KM / 180, rel=1e-9)
    assert haversine_km(0, 180, 0, -180) == pytest.approx(0.0, abs=1e-9)


def test_scalar_in_float_out_and_broadcasting() -> None:
    d = haversine_km(1, 2, 3, 4)
    assert type(d) is float
    assert type(haversine_km(np.float32(1), 2, np.array(3.0), 4)) is float
    lats = np.array([[0.0], [10.0], [20.0]])  # (3, 1)
    lons = np.array([[0.0, 90.0, -90.0, 180.0]])  # (1, 4)
    grid = haversine_km(lats, 0.0, 0.0, lons)
    assert isinstance(grid, np.ndarray) and grid.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            assert grid[i, j] == pytest.approx(haversine_km(float(lats[i, 0]), 0.0, 0.0, float(lons[0, j])))
    listed = haversine_km([0, 10], [0, 0], 0, 0)
    assert isinstance(listed, np.ndarray) and listed.shape == (2,)
    with pytest.raises(ValueError):
        haversine_km(np.zeros(3), 0, np.zeros(4), 0)


def test_nan_input_gives_nan_not_an_error() -> None:
    assert math.isnan(haversine_km(float("nan"), 0, 0, 0))


def test_geoscore_values() -> None:
    assert geoscore(0) == 5000.0
    assert geoscore(1492.7) == pytest.approx(5000 / math.e, rel=1e-12)
    assert type(geoscore(10)) is float
    arr = geoscore(np.array([0.0, 1492.7, 20000.0]))
    assert isinstance(arr, np.ndarray)
    np.testing.assert_allclose(arr, [5000, 5000 / math.e, 5000 * math.exp(-20000 / 1492.7)], rtol=1e-12)
    assert np.all(np.diff(geoscore(np.linspace(0, 20000, 101))) < 0)


_lat = st.floats(-90, 90, allow_nan=False)
_lon = st.floats(-180, 180, allow_nan=False)


@settings(max_examples=500, deadline=None, derandomize=True)
@given(_lat, _lon, _lat, _lon)
def test_distance_is_a_bounded_symmetric_metric(lat1: float, lon1: float, lat2: float, lon2: float) -> None:
    d = haversine_km(lat1, lon1, lat2, lon2)
    assert 0.0 <= d <= HALF_CIRCUMFERENCE_KM * (1 + 1e-12)
    assert d == pytest.approx(haversine_km(lat2, lon2, lat1, lon1), rel=1e-9, abs=1e-9)
    # shifting both longitudes by 360 changes nothing
    assert d == pytest.approx(haversine_km(lat1, lon1 + 360, lat2, lon2 - 360), rel=1e-9, abs=1e-6)
