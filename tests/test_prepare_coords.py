"""Coordinate reading and the latitude/longitude order check behind ``geo-r prepare``'s swapped-header detection."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from geo_r.data.prepare.coords import detect_order, parse_coordinate

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mp16_coordinates_100k.csv"

# European capitals: every value is within +-90, so only geography can tell the order
EUROPE = [(48.85, 2.35), (52.52, 13.40), (41.9, 12.5), (40.4, -3.7), (59.3, 18.06), (50.08, 14.43), (47.5, 19.04),
          (38.72, -9.14), (45.46, 9.19), (53.35, -6.26), (55.68, 12.57), (60.17, 24.94), (37.98, 23.73),
          (44.43, 26.1), (46.95, 7.45), (51.51, -0.13)]  # fmt: skip


def text_pairs(points: list[tuple[float, float]], swap: bool = False) -> list[tuple[str, str]]:
    return [(str(b), str(a)) if swap else (str(a), str(b)) for a, b in points]


def test_parse_coordinate() -> None:
    assert parse_coordinate(" 48.8566 ", "lat", 90) == (48.8566, None)
    assert parse_coordinate("-1e1", "lat", 90) == (-10.0, None)
    assert parse_coordinate("", "lat", 90) == (None, ("missing_coordinates", "lat is empty"))
    assert parse_coordinate("nan", "lat", 90)[1][0] == "bad_coordinates"
    assert parse_coordinate("inf", "lat", 90)[1][0] == "bad_coordinates"
    assert parse_coordinate("48°51'N", "lat", 90)[1] == ("bad_coordinates", "lat \"48°51'N\" is not a number")
    assert parse_coordinate("90.0001", "lat", 90)[1] == ("bad_coordinates", "lat '90.0001' is out of range [-90, 90]")
    assert parse_coordinate("-180", "lon", 180) == (-180.0, None)


def test_values_beyond_90_decide() -> None:
    points = [(37.77, -122.42), (35.68, 139.65), (48.85, 2.35), (-33.87, 151.21)]
    assert not detect_order(text_pairs(points)).swapped
    swapped = detect_order(text_pairs(points, swap=True), "LAT/LON")
    assert swapped.swapped and "3 of 4 checked rows have a latitude beyond +-90" in swapped.reason


def test_a_few_junk_rows_do_not_flip_the_verdict() -> None:
    points = [(float(i % 80), 100.0 + i % 70) for i in range(200)]  # |lon| > 90 everywhere
    pairs = text_pairs(points, swap=True) + [("10", "120")]  # one row that is out of range either way
    decision = detect_order(pairs)
    assert decision.swapped and "1 row(s) are out of range either way" in decision.reason
    # evidence on both sides in similar amounts: keep the labels, the bad rows are reported one by one
    mixed = text_pairs(points[:10], swap=True) + text_pairs(points[:10])
    assert not detect_order(mixed).swapped


def test_values_within_90_use_distance_to_places() -> None:
    as_labelled = detect_order(text_pairs(EUROPE))
    assert not as_labelled.swapped and "as labelled" in as_labelled.reason
    swapped = detect_order(text_pairs(EUROPE, swap=True))
    assert swapped.swapped and "--coordinate_order lat_lon" in swapped.reason


def test_nothing_numeric() -> None:
    decision = detect_order([("", ""), ("x", "y"), (None, "3")])
    assert not decision.swapped and "no numeric" in decision.reason


@pytest.mark.skipif(not SHARED.is_file(), reason=f"real MP16 coordinates not found at {SHARED} (../shared is not part of a checkout)")
def test_real_mp16_coordinates_within_90() -> None:
    """On real photo positions with |lon| <= 90 (Europe, Africa, the Americas' east), the order is found both ways."""
    with open(SHARED, encoding="utf-8", newline="") as f:
        rows = [(float(a), float(b)) for a, b in list(csv.reader(f))[1:]]
    inside = [p for p in rows if abs(p[1]) <= 90][:3000]
    assert not detect_order(text_pairs(inside)).swapped
    assert detect_order(text_pairs(inside, swap=True)).swapped
