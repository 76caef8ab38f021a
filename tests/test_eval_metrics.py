"""Evaluation metrics against values computed by hand in the test: thresholds and ties, unparseable rows,
median/mean/GeoScore, geodesic distance, name accuracy, per-continent breakdown, continents and published rows."""

from __future__ import annotations

import math
import statistics

import pytest

from geo_r.data.schema import GeoRecord
from geo_r.eval.continents import COUNTRY_CONTINENT, continent_name, continent_of
from geo_r.eval.metrics import (
    WORST_CASE_KM,
    accuracy_key,
    check_thresholds,
    compute_metrics,
    distance_metrics,
)
from geo_r.eval.published import PUBLISHED, PUBLISHED_THRESHOLDS_KM, detect_benchmark, published_for
from geo_r.eval.scoring import distance_km, score_predictions
from geo_r.prompts import render_answer

R = 6371.0


def hand_haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """The textbook formula, written out independently of geo_r.geo.distance."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * R * math.asin(math.sqrt(a))


# ----------------------------------------------------------------------------------------- thresholds / ties


def test_ties_at_a_threshold_count_with_le_and_not_with_strict_lt() -> None:
    distances = [0.0, 1.0, 24.999, 25.0, 25.0, 200.0, 750.0001, 2500.0, None, None]
    t = (1.0, 25.0, 200.0, 750.0, 2500.0)
    le = distance_metrics(distances, t, strict=False)
    lt = distance_metrics(distances, t, strict=True)
    n = 10  # the two None rows are misses everywhere but stay in the denominator
    assert le["acc@1km"] == 100 * 2 / n and lt["acc@1km"] == 100 * 1 / n
    assert le["acc@25km"] == 100 * 5 / n and lt["acc@25km"] == 100 * 3 / n
    assert le["acc@200km"] == 100 * 6 / n and lt["acc@200km"] == 100 * 5 / n
    assert le["acc@750km"] == 100 * 6 / n and lt["acc@750km"] == 100 * 6 / n
    assert le["acc@2500km"] == 100 * 8 / n and lt["acc@2500km"] == 100 * 7 / n
    assert le["parse_rate"] == 80.0 and le["n_parsed"] == 8 and le["n"] == 10


def test_median_mean_geoscore_by_hand() -> None:
    distances = [3.0, 10.0, None, 1000.0, 12000.0]
    m = distance_metrics(distances, (25.0,))
    parsed = [3.0, 10.0, 1000.0, 12000.0]
    assert m["median_km"] == statistics.median(parsed) == 505.0
    assert m["mean_km"] == pytest.approx(sum(parsed) / 4, rel=1e-15)
    worst = [3.0, 10.0, 20015.086796020572, 1000.0, 12000.0]
    assert WORST_CASE_KM == pytest.approx(math.pi * 6371.0)
    assert m["median_km_worst_case"] == 1000.0
    assert m["mean_km_worst_case"] == pytest.approx(sum(worst) / 5, rel=1e-12)
    assert m["geoscore"] == pytest.approx(sum(5000 * math.exp(-d / 1492.7) for d in parsed) / 5, rel=1e-12)
    assert m["acc@25km"] == 40.0


def test_no_parsed_answer_gives_none_not_nan() -> None:
    m = distance_metrics([None, None], (1.0, 25.0))
    assert m["median_km"] is None and m["mean_km"] is None
    assert m["geoscore"] == 0.0 and m["acc@1km"] == 0.0 and m["parse_rate"] == 0.0
    empty = distance_metrics([], (1.0,))
    assert empty["n"] == 0 and empty["acc@1km"] is None and empty["geoscore"] is None


def test_threshold_keys_and_validation() -> None:
    assert accuracy_key(25.0) == "acc@25km" and accuracy_key(0.5) == "acc@0.5km"
    assert check_thresholds([750, 1, 25, 25]) == (1.0, 25.0, 750.0)
    for bad in ([0], [-1.0], [math.nan], [math.inf], []):
        with pytest.raises(ValueError):
            check_thresholds(bad)


# ------------------------------------------------------------------------------------------------ distances


def test_haversine_and_geodesic_against_independent_implementations() -> None:
    from geopy.distance import geodesic

    pairs = [
        ((51.5074, -0.1278), (40.7128, -74.0060)),
        ((0.0, 0.0), (0.0, 90.0)),
        ((-33.9, 151.2), (35.7, 139.7)),
    ]
    for (a, b), (c, d) in pairs:
        assert distance_km(a, b, c, d) == pytest.approx(hand_haversine(a, b, c, d), rel=1e-12)
        # geopy's geodesic is what GeoCLIP / G3 call
        assert distance_km(a, b, c, d, "geodesic") == pytest.approx(geodesic((a, b), (c, d)).km, rel=1e-12)
    # London-New York: 5570 km on the sphere, 5585 km on WGS-84 (the notes' figures)
    assert distance_km(51.5074, -0.1278, 40.7128, -74.0060) == pytest.approx(5570.2, abs=0.5)
    assert distance_km(51.5074, -0.1278, 40.7128, -74.0060, "geodesic") == pytest.approx(5585.2, abs=0.5)
    with pytest.raises(ValueError, match="unknown distance"):
        distance_km(0, 0, 1, 1, "manhattan")


# ---------------------------------------------------------------------------------- end to end from completions


def _record(i: int, lat: float, lon: float, country: str, cc: str, region: str, city: str) -> GeoRecord:
    return GeoRecord(
        id=f"img{i}", images=[], lat=lat, lon=lon, country=country, country_code=cc, region=region, city=city
    )


PARIS = (48.8566, 2.3522)
TOKYO = (35.6762, 139.6503)
NYC = (40.7128, -74.0060)
SYDNEY = (-33.8688, 151.2093)
NAIROBI = (-1.2921, 36.8219)


def _cases() -> list[tuple[GeoRecord, str | None, dict]]:
    """(record, completion, what a person expects): names correct? continent."""
    paris = _record(0, *PARIS, "France", "FR", "Ile-de-France", "Paris")
    tokyo = _record(1, *TOKYO, "Japan", "JP", "Tokyo", "Tokyo")
    nyc = _record(2, *NYC, "United States", "US", "New York", "New York City")
    sydney = _record(3, *SYDNEY, "Australia", "AU", "New South Wales", "Sydney")
    nairobi = _record(4, *NAIROBI, "Kenya", "KE", "Nairobi Area", "Nairobi")
    paris2 = _record(5, *PARIS, "France", "FR", "Ile-de-France", "Paris")
    tokyo2 = _record(6, *TOKYO, "Japan", "JP", "Tokyo", "Tokyo")
    return [
        # exact answer, every name right
        (
            paris,
            render_answer("France", "Île-de-France", "Paris", *PARIS),
            {"names": (1, 1, 1), "cont": "EU"},
        ),
        # 8 km off, country as an alias, region wrong, city right
        (tokyo, render_answer("JP", "Osaka", "Tokyo", 35.70, 139.73), {"names": (1, 0, 1), "cont": "AS"}),
        # wrong country: region/city do not count even though "New York" is a city name too
        (
            nyc,
            render_answer("Canada", "New York", "New York City", 43.65, -79.38),
            {"names": (0, 0, 0), "cont": "NA"},
        ),
        # no coordinates at all, names right: a miss at every threshold, names still count
        (
            sydney,
            "<answer>\nCountry: Australia\nRegion: NSW\nCity: Sydney\n</answer>",
            {"names": (1, 1, 1), "cont": "OC"},
        ),
        # out-of-range coordinates are unparseable
        (
            nairobi,
            render_answer("Kenya", "Nairobi", "Nairobi", 95.0, 36.8),
            {"names": (1, 1, 1), "cont": "AF"},
        ),
        # no prediction at all
        (paris2, None, {"names": (0, 0, 0), "cont": "EU"}),
        # far away (Sydney for Tokyo)
        (
            tokyo2,
            render_answer("Australia", "New South Wales", "Sydney", *SYDNEY),
            {"names": (0, 0, 0), "cont": "AS"},
        ),
    ]


def test_every_metric_equals_a_hand_computation() -> None:
    cases = _cases()
    records = [c[0] for c in cases]
    completions = {r.id: text for r, text, _ in cases if text is not None}
    rows = score_predictions(records, completions)
    thresholds = (1.0, 25.0, 200.0, 750.0, 2500.0)
    m = compute_metrics(rows, thresholds)

    # distances by hand, from the 6-decimal coordinates the completions carry
    def coords(text: str | None) -> tuple[float, float] | None:
        if text is None or "Coordinates" not in text:
            return None
        lat, lon = (float(x) for x in text.split("Coordinates: (")[1].split(")")[0].split(","))
        return (lat, lon) if abs(lat) <= 90 and abs(lon) <= 180 else None

    d = []
    for r, text, _ in cases:
        c = coords(text)
        d.append(None if c is None else hand_haversine(r.lat, r.lon, *c))
    assert [row.distance_km is None for row in rows] == [x is None for x in d]
    for row, x in zip(rows, d, strict=True):
        if x is not None:
            assert row.distance_km == pytest.approx(x, rel=1e-12, abs=1e-9)
    n = len(cases)
    parsed = [x for x in d if x is not None]
    assert m["n"] == n == 7 and m["n_parsed"] == 4 and m["unparseable"] == 3 and m["missing_predictions"] == 1
    assert m["parse_rate"] == 100 * 4 / 7
    for t in thresholds:
        assert m[accuracy_key(t)] == 100 * sum(x is not None and x <= t for x in d) / n
    # concretely: exact (0 km) and Tokyo (~8 km) are within 25 km, Toronto ~ 550 km, Sydney ~ 7800 km
    assert m["acc@1km"] == 100 / 7 and m["acc@25km"] == 200 / 7 and m["acc@750km"] == 300 / 7
    assert m["median_km"] == pytest.approx(statistics.median(parsed), rel=1e-12)
    assert m["mean_km"] == pytest.approx(sum(parsed) / 4, rel=1e-12)
    assert m["geoscore"] == pytest.approx(sum(5000 * math.exp(-x / 1492.7) for x in parsed) / n, rel=1e-12)
    worst = [WORST_CASE_KM if x is None else x for x in d]
    assert m["median_km_worst_case"] == pytest.approx(statistics.median(worst), rel=1e-12)

    # names: per-row expectations written above, gated by the country
    for level, i in (("country", 0), ("region", 1), ("city", 2)):
        expected = [c[2]["names"][i] for c in cases]
        assert [int(bool(getattr(row, f"{level}_correct"))) for row in rows] == expected, level
        assert m[f"{level}_acc"] == 100 * sum(expected) / n
    # coordinates reverse-geocoded: only the exact Paris answer lands in the true country's region and place;
    # the Tokyo answer 8 km off is still Japan
    assert [row.country_correct_coords for row in rows] == [True, True, False, False, False, False, False]
    assert m["country_acc_coords"] == 200 / 7
    assert rows[0].city_correct_coords is True and rows[0].region_correct_coords is True

    # per continent by hand
    per = m["per_continent"]
    for cont in {c[2]["cont"] for c in cases}:
        idx = [i for i, c in enumerate(cases) if c[2]["cont"] == cont]
        block = per[cont]
        assert block["n"] == len(idx)
        for t in thresholds:
            assert block[accuracy_key(t)] == 100 * sum(d[i] is not None and d[i] <= t for i in idx) / len(idx)
    assert list(per) == ["AS", "EU", "AF", "NA", "OC"]  # most images first, then by code
    assert per["EU"]["acc@1km"] == 50.0 and per["AS"]["acc@25km"] == 50.0
    assert m["threshold_rule"] == "<=" and m["thresholds_km"] == list(thresholds)


def test_strict_threshold_flips_an_exact_tie_end_to_end() -> None:
    from geo_r.geo import haversine_km

    rec = _record(0, *PARIS, "France", "FR", "Ile-de-France", "Paris")
    answer = render_answer("France", "Ile-de-France", "Versailles", 48.804865, 2.120355)
    tie = haversine_km(rec.lat, rec.lon, 48.804865, 2.120355)
    rows = score_predictions([rec], {rec.id: answer})
    assert rows[0].distance_km == tie  # the scorer's number, bit for bit
    assert compute_metrics(rows, (tie,))[accuracy_key(tie)] == 100.0
    assert compute_metrics(rows, (tie,), strict=True)[accuracy_key(tie)] == 0.0


def test_geodesic_option_changes_borderline_items() -> None:
    # 0.009 degrees of latitude at the equator: 1.0008 km on the sphere, 0.9952 km on WGS-84 (notes, §4.6)
    rec = GeoRecord(id="eq", images=[], lat=0.0, lon=10.0, country_code="GA")
    answer = render_answer("Gabon", "x", "y", 0.009, 10.0)
    hav = compute_metrics(score_predictions([rec], {"eq": answer}, "haversine"))
    geo = compute_metrics(score_predictions([rec], {"eq": answer}, "geodesic"))
    assert hav["acc@1km"] == 0.0 and geo["acc@1km"] == 100.0


# ------------------------------------------------------------------------------------- continents / published


def test_continents_follow_geonames_conventions() -> None:
    assert continent_of("NA") == "AF"  # Namibia, not North America
    assert continent_of("us") == "NA" and continent_of(" FR ") == "EU"
    assert continent_of("RU") == "EU" and continent_of("TR") == "AS" and continent_of("CY") == "EU"
    assert continent_of("EG") == "AF" and continent_of("PA") == "NA" and continent_of("AQ") == "AN"
    assert continent_of(None) is None and continent_of("ZZ") is None
    assert continent_name("OC") == "Oceania" and continent_name("unknown") == "unknown"
    import pycountry

    assert {c.alpha_2 for c in pycountry.countries} <= set(COUNTRY_CONTINENT)


def test_published_rows_and_benchmark_detection() -> None:
    assert PUBLISHED_THRESHOLDS_KM == (1.0, 25.0, 200.0, 750.0, 2500.0)
    geo_r = [r for r in published_for("im2gps3k") if r.method.startswith("Geo-R")]
    assert geo_r[0].acc == (18.10, 41.53, 58.31, 75.33, 86.42)
    assert {r.method.split(" (")[0] for r in PUBLISHED} >= {"Geo-R", "GeoCLIP", "PIGEOTTO"}
    assert all(r.source for r in PUBLISHED) and len(published_for(None)) == len(PUBLISHED)
    assert detect_benchmark(["data/im2gps3k_places365.jsonl"]) == "im2gps3k"
    assert detect_benchmark(["YFCC4k-test.jsonl"]) == "yfcc4k"
    assert detect_benchmark(["a/im2gps3k.jsonl", "b/yfcc4k.jsonl"]) is None
    assert detect_benchmark(["mp16.jsonl"]) is None
    with pytest.raises(ValueError):
        published_for("osv5m")
