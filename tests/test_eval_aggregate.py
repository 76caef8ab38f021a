"""Test-time scaling math on hand-made sample sets: medoid, hierarchical vote, spread, confidence tables."""

from __future__ import annotations

import math

import pytest

from geo_r.eval.tts.aggregate import choose, medoid, parse_aggregates, place_labels, points_of, spread, vote
from geo_r.eval.tts.confidence import abstention, confidence_block, decile_table, spearman
from geo_r.prompts import render_answer

DEG_KM = 6371.0 * math.pi / 180.0  # one degree of great circle on the R = 6371 km sphere


def eq(*lons: float) -> list[tuple[float, float]]:
    """Points on the equator (distances are then |dlon| degrees, the short way round)."""
    return [(0.0, float(x)) for x in lons]


def test_medoid_picks_smallest_summed_distance_and_breaks_ties_by_order() -> None:
    # summed degrees: 0 -> 13, 1 -> 11, 2 -> 11, 10 -> 27: a tie between samples 1 and 2, the earlier wins
    assert medoid(eq(0, 1, 2, 10)) == 1
    assert medoid(eq(0, 2, 1, 10)) == 1  # order of the tie, not of longitude
    assert medoid(eq(10, 0, 1, 2, 2.5)) == 3
    assert medoid([(5.0, 5.0), (5.0, 5.0), (6.0, 6.0)]) == 0  # duplicates: the first copy


def test_medoid_across_the_antimeridian() -> None:
    # unwrapped positions 179.0, 179.6, 180.2, 180.8 plus a far point at lon 0: sample 1 is the medoid; a
    # medoid on raw longitude differences would put -179.8 and -179.2 half a world from the others
    pts = eq(179.0, 179.6, -179.8, -179.2, 0.0)
    assert medoid(pts) == 1
    labels = [("FJ", "Northern"), ("FJ", "Northern"), ("FJ", "Eastern"), ("FJ", "Eastern"), ("GA", None)]
    # country FJ (4 samples), regions tie 2-2: the region holding the most central sample (1) wins
    assert vote(pts, labels) == 0  # medoid of {0, 1}: equal sums, the earlier one


def test_all_unparseable_and_one_parseable() -> None:
    none = [None, None, None]
    labels = [(None, None)] * 3
    assert medoid(none) is None and vote(none, labels) is None
    assert choose("medoid", none, labels) is None
    s = spread(none, labels, None, (None, None))
    assert s.spread_km is None and s.country_agreement == 0.0 and s.n_parsed == 0

    one = [None, (10.0, 20.0), None]
    labs = [(None, None), ("NE", "Agadez"), (None, None)]
    assert medoid(one) == 1 and vote(one, labs) == 1
    s = spread(one, labs, one[1], labs[1])
    assert s.spread_km == 0.0 and s.country_agreement == pytest.approx(1 / 3) and s.n_parsed == 1


def test_vote_country_then_region_then_medoid() -> None:
    tokyo_a, tokyo_b, osaka = (35.69, 139.70), (35.66, 139.70), (34.69, 135.50)
    paris, berlin, madrid, rome = (48.86, 2.35), (52.52, 13.40), (40.42, -3.70), (41.90, 12.50)
    pts = [paris, tokyo_a, berlin, osaka, madrid, tokyo_b, rome]
    labels = [("FR", "IDF"), ("JP", "Tokyo"), ("DE", "Berlin"), ("JP", "Osaka"), ("ES", "Madrid"),
              ("JP", "Tokyo"), ("IT", "Lazio")]
    assert medoid(pts) in (0, 2, 4, 6)  # the medoid lies in Europe, where most points are
    assert vote(pts, labels) == 1  # Japan (3) > any European country (1); Tokyo (2) > Osaka; then the earlier


def test_vote_country_tie_goes_to_the_group_with_the_most_central_sample() -> None:
    # A = lons {0, 1}, B = lons {5, 6}, C = {3.5}; summed degrees: 0 -> 15.5, 1 -> 12.5, 5 -> 11.5, 6 -> 14.5,
    # 3.5 -> 10. A and B tie (2 each); B holds the better-ranked sample (5 beats 1), so B; its medoid: 5 (tie, first)
    pts = eq(0, 1, 5, 6, 3.5)
    labels = [("AA", "r"), ("AA", "r"), ("BB", "r"), ("BB", "r"), ("CC", "r")]
    assert vote(pts, labels) == 2
    swapped = [("BB", "r"), ("BB", "r"), ("AA", "r"), ("AA", "r"), ("CC", "r")]
    assert vote(pts, swapped) == 2  # the names of the groups do not matter
    with pytest.raises(ValueError, match="labels"):
        vote(pts, labels[:2])


def test_spread_values() -> None:
    pts = [*eq(0, 1, 2), None]
    labels = [("EC", "a"), ("EC", "a"), ("EC", "b"), (None, None)]
    s = spread(pts, labels, (0.0, 1.0), ("EC", "a"))  # distances 1, 0, 1 degrees
    assert s.spread_km == pytest.approx(DEG_KM, rel=1e-9)
    assert s.country_agreement == 0.75 and s.n_parsed == 3  # the unparseable fourth sample disagrees
    s = spread(pts, labels, (0.0, 10.0), ("CO", None))  # a greedy point elsewhere: 10, 9, 8 degrees
    assert s.spread_km == pytest.approx(9 * DEG_KM, rel=1e-9) and s.country_agreement == 0.0


def test_points_and_labels_from_completions() -> None:
    texts = [render_answer("France", "Ile-de-France", "Paris", 48.8566, 2.3522), "no idea", "(35.68, 139.69)"]
    pts = points_of(texts)
    assert pts[0] == (48.8566, 2.3522) and pts[1] is None and pts[2] == (35.68, 139.69)
    labels = place_labels(pts)
    assert labels[0][0] == "FR" and labels[1] == (None, None) and labels[2][0] == "JP"


def test_abstention_coverage_and_accuracy() -> None:
    spreads = [0.0, 50.0, 300.0, None, 80.0]
    errors = [1.0, 10.0, 2000.0, None, 900.0]
    a = abstention(spreads, errors, 100.0, [25.0, 750.0])
    assert a["n_kept"] == 3 and a["coverage"] == 60.0  # 0, 50 and 80 km kept; no spread = not sure
    assert a["acc@25km"] == pytest.approx(200 / 3) and a["acc@750km"] == pytest.approx(200 / 3)
    assert a["median_km"] == 10.0
    none_kept = abstention(spreads, errors, -0.0, [25.0])
    assert none_kept["n_kept"] == 1 and none_kept["acc@25km"] == 100.0  # spread 0 <= 0
    with pytest.raises(ValueError, match="abstain_km"):
        abstention(spreads, errors, -1.0, [25.0])


def test_decile_table_and_rank_correlation() -> None:
    spreads = [float(i) for i in range(20)] + [None]
    errors = [10.0 * (i + 1) for i in range(20)] + [5.0]
    agree = [1.0] * 10 + [0.5] * 10 + [0.0]
    rows = decile_table(spreads, errors, agree)
    assert len(rows) == 10 and all(r["n"] == 2 for r in rows)
    assert rows[0]["spread_km_min"] == 0.0 and rows[0]["spread_km_max"] == 1.0
    assert rows[0]["error_km_p50"] == 15.0 and rows[-1]["error_km_p50"] == 195.0
    assert rows[0]["acc@25km"] == 100.0 and rows[1]["acc@25km"] == 0.0
    assert rows[0]["country_agreement_mean"] == 1.0 and rows[-1]["country_agreement_mean"] == 0.5
    assert rows[0]["rank_pct"] == [0.0, 10.0] and rows[-1]["rank_pct"] == [90.0, 100.0]
    assert len(decile_table(spreads[:3], errors[:3], agree[:3])) == 3  # fewer images than deciles
    # 12 of 20 images at spread 0 (K identical answers): one bin, never cut in two
    tied = decile_table([0.0] * 12 + [float(i) for i in range(1, 9)], [1.0] * 20, [1.0] * 20)
    assert tied[0]["n"] == 12 and tied[0]["rank_pct"] == [0.0, 60.0] and tied[0]["spread_km_max"] == 0.0
    assert len(tied) == 5 and [r["n"] for r in tied[1:]] == [2, 2, 2, 2]
    assert spearman(spreads, errors) == pytest.approx(1.0)
    assert spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) is None and spearman([1.0], [2.0]) is None
    block = confidence_block(spreads, errors, agree, thresholds_km=[25.0], abstain_km=3.0)
    assert block["n_with_spread"] == 20 and block["abstention"]["coverage"] == pytest.approx(400 / 21)


def test_parse_aggregates() -> None:
    assert parse_aggregates("greedy,medoid,vote") == ("greedy", "medoid", "vote")
    assert parse_aggregates(" vote ,greedy") == ("vote", "greedy")
    for bad, msg in (("median", "unknown"), ("vote,vote", "twice"), (",", "at least one")):
        with pytest.raises(ValueError, match=msg):
            parse_aggregates(bad)
    with pytest.raises(ValueError, match="greedy is not a choice"):
        choose("greedy", eq(0), [("EC", None)])
