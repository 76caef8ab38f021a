"""Score each evaluated image: parse the completion, measure the error in km, check the predicted names.

One :class:`ScoredRow` per ground-truth record. The completion is always re-parsed here (with the same
:func:`geo_r.geo.parse_prediction` the rewards use), so a predictions file is scored the same way whoever
wrote it, and a stored ``distance_km`` is never trusted.

Distances (``distance=``):

* ``"haversine"`` (default): great circle on a sphere of R = 6371 km, as GeoEstimation, OSV-5M, REVERSE and
  Geo-R compute it;
* ``"geodesic"``: the WGS-84 ellipsoid distance (Karney's algorithm in ``geographiclib``; ``geopy.distance.
  geodesic`` calls the same code), as GeoCLIP, G3 and GeoRanker compute it.

Names, two ways:

* from the *parsed names* (``country_correct`` ...), normalised by :mod:`geo_r.geo.names`, against the
  record's chain (its own fields, or derived offline from its coordinates). Region and city count only when
  the country is right too, so "Georgia" the US state never matches Georgia the country's regions, and
  "Paris, Texas" is not Paris;
* from the *predicted coordinates* (``*_correct_coords``), OSV-5M's protocol: both points are reverse
  geocoded with the same offline GeoNames table and compared as (country), (country, admin1) and
  (country, admin1, admin2, place).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from geo_r.data.schema import GeoRecord
from geo_r.eval.continents import continent_of
from geo_r.geo import Prediction, haversine_km, parse_prediction

DISTANCES: tuple[str, ...] = ("haversine", "geodesic")


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float, method: str = "haversine") -> float:
    """Distance in km between two points in decimal degrees: ``haversine`` (R = 6371 km) or WGS-84 ``geodesic``."""
    if method == "haversine":
        return float(haversine_km(lat1, lon1, lat2, lon2))
    if method == "geodesic":
        return _geodesic_km(lat1, lon1, lat2, lon2)
    raise ValueError(f"unknown distance {method!r}; choose one of {', '.join(DISTANCES)}")


def _geodesic_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    try:
        from geographiclib.geodesic import Geodesic
    except ImportError as exc:  # geopy depends on it, so a normal install has it
        raise ImportError("--distance geodesic needs geographiclib: pip install geographiclib") from exc
    return float(Geodesic.WGS84.Inverse(lat1, lon1, lat2, lon2, Geodesic.DISTANCE)["s12"]) / 1000.0


@dataclass(frozen=True)
class ScoredRow:
    """One evaluated image. ``distance_km`` is None when the completion has no valid coordinates (or no
    completion exists); a ``*_correct`` flag is None when the ground truth lacks that level."""

    id: str
    true_lat: float
    true_lon: float
    country_code: str | None
    continent: str | None
    prediction: Prediction
    has_completion: bool
    distance_km: float | None
    country_correct: bool | None
    region_correct: bool | None
    city_correct: bool | None
    country_correct_coords: bool | None
    region_correct_coords: bool | None
    city_correct_coords: bool | None

    @property
    def parsed(self) -> bool:
        """True when the completion gave valid coordinates (the row can be within a threshold)."""
        return self.distance_km is not None


def _name_checks(record: GeoRecord, pred: Prediction) -> tuple[bool | None, bool | None, bool | None]:
    """(country, region, city) correctness from the parsed names, gated top-down by the country."""
    from geo_r.geo.names import same_city, same_country, same_region

    true_country = record.country_code or record.country
    country_ok = same_country(pred.country, true_country) if true_country else None
    gate = bool(country_ok)
    region_ok = None if not record.region else gate and same_region(pred.region, record.region, true_country)
    city_ok = None if not record.city else gate and same_city(pred.city, record.city)
    return country_ok, region_ok, city_ok


def score_predictions(
    records: Sequence[GeoRecord], completions: Mapping[str, str], distance: str = "haversine"
) -> list[ScoredRow]:
    """Score every record against ``completions[record.id]`` (a missing id scores as an unparseable answer)."""
    if distance not in DISTANCES:
        raise ValueError(f"unknown distance {distance!r}; choose one of {', '.join(DISTANCES)}")
    from geo_r.geo.regions import reverse_geocode

    preds = [parse_prediction(completions.get(r.id)) for r in records]
    true_chains = reverse_geocode([r.lat for r in records], [r.lon for r in records])
    pred_chains = reverse_geocode(
        [p.lat if p.has_coordinates else float("nan") for p in preds],
        [p.lon if p.has_coordinates else float("nan") for p in preds],
    )
    rows = []
    for record, pred, tc, pc in zip(records, preds, true_chains, pred_chains, strict=True):
        d = (
            distance_km(record.lat, record.lon, pred.lat, pred.lon, distance)  # type: ignore[arg-type]
            if pred.has_coordinates
            else None
        )
        country_ok, region_ok, city_ok = _name_checks(record, pred)
        geo_ok = tc.valid and pc.valid
        same_cc = geo_ok and tc.country_code == pc.country_code
        same_a1 = same_cc and tc.region == pc.region
        code = (record.country_code or tc.country_code or "").upper() or None
        rows.append(
            ScoredRow(
                id=record.id,
                true_lat=record.lat,
                true_lon=record.lon,
                country_code=code,
                continent=continent_of(code),
                prediction=pred,
                has_completion=record.id in completions,
                distance_km=d,
                country_correct=country_ok,
                region_correct=region_ok,
                city_correct=city_ok,
                country_correct_coords=same_cc if tc.valid else None,
                region_correct_coords=same_a1 if tc.valid else None,
                city_correct_coords=(
                    same_a1 and tc.admin2 == pc.admin2 and tc.city == pc.city if tc.valid else None
                ),
            )
        )
    return rows
