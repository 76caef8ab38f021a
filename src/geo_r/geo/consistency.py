"""Does a named country / region / city fit a coordinate? Names checked against the map, offline.

One rule serves both uses of the ``region`` reward: "is the predicted chain right?" (names against the
true point and its labels) and "are the predicted coordinates consistent with the predicted names?"
(names against the predicted point and its labels).

A named level matches a point when
* its name matches the point's label (:func:`~geo_r.geo.names.same_country` / ``same_region`` /
  ``same_city``), or
* (border tolerance) a GeoNames place of the named country / region lies within
  :func:`border_tolerance_km` of the point: d0 + clip(d0, 2, 25) km, where d0 is the distance from the
  point to its nearest place (the one its labels come from). Nearest-place labels cross borders when
  another country's or region's place is about as near as the true one, so a name is accepted when its
  nearest place is "about as near": at most twice d0, and never more than 25 km (nor less than 2 km)
  beyond it. Times Square (d0 = 3.2 km to Weehawken, NJ) accepts the region "New York" (its nearest
  New York place, Manhattan, is 3.3 km away: within 3.2 + 3.2); central Strasbourg (d0 = 0 km, it is
  a GeoNames place) does not accept Germany (the nearest German place is 5.3 km away, over 0 + 2);
* a city matches when a GeoNames place with that name (in the named country when it resolves, else
  anywhere) lies within ``max(CITY_RADIUS_KM, border_tolerance_km(d0))`` of the point. 25 km is the
  standard "city" accuracy threshold of geolocation benchmarks; the nearest place itself is often a suburb
  (the Eiffel Tower's is Neuilly-sur-Seine), and "Paris" there is right.

Without coordinates (truth given only as names) only the name rule applies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .names import country_code, same_city, same_country, same_region
from .regions import EMPTY_CHAIN, RegionChain, geonames, reverse_geocode

CITY_RADIUS_KM = 25.0
"""A named city matches a point when a place of that name is this close (the benchmarks' city level)."""
BORDER_SLACK_MIN_KM = 2.0
"""Smallest border tolerance beyond the nearest place (see :func:`border_tolerance_km`)."""
BORDER_SLACK_MAX_KM = 25.0
"""Largest border tolerance beyond the nearest place (see :func:`border_tolerance_km`)."""


@dataclass(frozen=True)
class Consistency:
    """Per level: True (matches), False (named but does not match), None (not named, or nothing to check)."""

    country: bool | None = None
    region: bool | None = None
    city: bool | None = None


def border_tolerance_km(nearest_km: float | None) -> float:
    """How far a named country/region's nearest place may be: d0 + clip(d0, 2, 25) km (0 if d0 unknown)."""
    if nearest_km is None or not math.isfinite(nearest_km):
        return 0.0
    return nearest_km + min(max(nearest_km, BORDER_SLACK_MIN_KM), BORDER_SLACK_MAX_KM)


def _clean(name: object) -> str | None:
    return name.strip() if isinstance(name, str) and name.strip() else None


def match_names(
    country: str | None,
    region: str | None,
    city: str | None,
    reference: RegionChain,
    lat: float | None = None,
    lon: float | None = None,
    within_km: float = 0.0,
) -> Consistency:
    """Check named levels against a reference chain (labels) and, when (lat, lon) is valid, the map.

    ``reference`` holds the labels to compare with (a true chain from the dataset, or
    ``reverse_geocode(lat, lon)``); its ``distance_km`` sets the border tolerance. Levels are checked
    independently (gating is the caller's choice). The region is resolved in the named country when it
    resolves, else in the reference's country. ``within_km`` widens every map distance by that much: the
    question becomes "could a point within ``within_km`` of (lat, lon) carry these names?" (the ``candidate``
    reward asks it of the candidate an answer names).
    """
    country, region, city = _clean(country), _clean(region), _clean(city)
    xyz = _unit_vector(lat, lon)
    tolerance = border_tolerance_km(reference.distance_km) + max(0.0, within_km)
    table = geonames() if xyz is not None else None
    named_cc = country_code(country)
    ref_cc = reference.country_code or country_code(reference.country)

    country_ok: bool | None = None
    if country is not None:
        country_ok = same_country(country, ref_cc or reference.country)
        if not country_ok and table is not None and named_cc is not None:
            country_ok = table.country_distance_km(named_cc, xyz) <= tolerance

    region_ok: bool | None = None
    if region is not None:
        cc = named_cc or ref_cc
        region_ok = bool(reference.region) and same_region(region, reference.region, cc)
        if not region_ok and table is not None and cc is not None:
            region_ok = table.nearest_km(table.region_places(cc, region), xyz) <= tolerance

    city_ok: bool | None = None
    if city is not None:
        city_ok = same_city(city, reference.city)
        if not city_ok and table is not None:
            radius = max(CITY_RADIUS_KM, tolerance - max(0.0, within_km)) + max(0.0, within_km)
            city_ok = table.nearest_km(table.city_places(city, named_cc), xyz) <= radius
    return Consistency(country_ok, region_ok, city_ok)


def _unit_vector(lat: float | None, lon: float | None) -> np.ndarray | None:
    """The unit vector of a valid (lat, lon), else None (cheap scalar path: called per completion)."""
    if not isinstance(lat, int | float) or not isinstance(lon, int | float) or isinstance(lat, bool) or isinstance(lon, bool):
        return None
    if not (math.isfinite(lat) and math.isfinite(lon) and abs(lat) <= 90.0 and abs(lon) <= 180.0):
        return None
    la, lo = math.radians(lat), math.radians(lon)
    return np.array([math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la)])


def place_matches_coordinates(
    country: str | None,
    region: str | None,
    city: str | None,
    lat: float | None,
    lon: float | None,
    chain: RegionChain | None = None,
) -> Consistency:
    """Whether the named country / region / city lie at (lat, lon) (see the module docstring for the rule).

    ``chain`` may pass ``reverse_geocode(lat, lon)[0]`` when the caller has it already (batched).
    Invalid or missing coordinates: every named level is False.
    """
    if chain is None:
        chain = reverse_geocode(lat, lon)[0] if lat is not None and lon is not None else EMPTY_CHAIN
    if not chain.valid:
        return Consistency(
            None if _clean(country) is None else False,
            None if _clean(region) is None else False,
            None if _clean(city) is None else False,
        )
    return match_names(country, region, city, chain, lat, lon)
