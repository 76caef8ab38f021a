"""The training-time geo metrics: parse rate, km and acc@k computed by hand for a small batch."""

from __future__ import annotations

import pytest

from geo_r.prompts import render_answer
from geo_r.trainer.geo_metrics import GeoMetricsBuffer, completion_errors_km
from geo_r.trainer.log_table import format_table


def test_errors_and_summary_match_hand_computation():
    paris = (48.8566, 2.3522)
    completions = [
        [{"role": "assistant", "content": render_answer("France", "Ile-de-France", "Paris", *paris)}],  # 0 km
        render_answer("France", "Grand Est", "Reims", 49.2583, 4.0317),  # ~130 km from Paris
        "no coordinates at all",
        render_answer("Japan", "Tokyo", "Tokyo", 35.6762, 139.6503),  # ~9712 km
    ]
    errors = completion_errors_km(completions, [paris[0]] * 4, [paris[1]] * 4)
    assert errors[0] == pytest.approx(0.0, abs=1e-6)
    assert errors[1] == pytest.approx(129.6, abs=1.0)
    assert errors[2] is None
    assert errors[3] == pytest.approx(9712, abs=5)

    buf = GeoMetricsBuffer()
    buf.add(errors)
    s = buf.summary()
    assert s["geo/parse_rate"] == 0.75
    assert s["geo/distance_km_median"] == pytest.approx(errors[1])
    assert s["geo/distance_km_mean"] == pytest.approx((errors[1] + errors[3]) / 3)
    # acc@k is over ALL completions: the unparseable one is a miss everywhere.
    assert s["geo/acc@1km"] == 25.0 and s["geo/acc@200km"] == 50.0 and s["geo/acc@2500km"] == 50.0
    assert buf.summary() == {}  # reset after logging


def test_unusable_truth_and_empty_buffer():
    assert completion_errors_km(["(1.0, 2.0)"], [None], [float("nan")]) == [None]
    assert GeoMetricsBuffer().summary() == {}


def test_log_table_shows_each_reward():
    rows = [{"step": 1, "reward": 0.5, "reward_std": 0.1, "rewards/format/mean": 1.0, "rewards/distance/mean": 0.25,
             "geo/parse_rate": 1.0}]
    table = format_table(rows)
    assert "format" in table and "distance" in table and "geo/parse_rate" in table and "0.25" in table


def test_best_of_group_and_group_spread_by_hand():
    from geo_r.trainer.geo_metrics import completion_points

    truth = (0.0, 0.0)
    deg = 6371.0 * 3.141592653589793 / 180.0
    # group 1: answers on the equator at lon 0.1, 10, 11 and one unparseable -> best is ~11 km away;
    # group 2: all at lon 20 (collapsed) -> best is 20 degrees away
    texts = ["(0.0, 0.1)", "(0.0, 10.0)", "(0.0, 11.0)", "nothing", "(0.0, 20.0)", "(0.0, 20.0)", "(0.0, 20.0)",
             "(0.0, 20.0)"]
    errors = completion_errors_km(texts, [truth[0]] * 8, [truth[1]] * 8)
    points = completion_points(texts)
    assert points[3] is None and points[0] == (0.0, 0.1)
    buf = GeoMetricsBuffer()
    buf.add(errors, points, group_size=4)
    s = buf.summary()
    assert s["geo/best_of_group_acc@25km"] == 50.0  # group 1's best (11 km) counts; no answer of group 2 does
    assert s["geo/best_of_group_acc@750km"] == 50.0
    assert s["geo/acc@25km"] == 12.5  # the average completion: 1 of 8
    # group 1's medoid is lon 10 (summed degrees: 0.1 -> 20.8, 10 -> 10.9, 11 -> 11.9); its answers lie 9.9, 0
    # and 1 degrees from it -> median 1 degree; group 2 collapsed: 0 km
    assert s["geo/group_spread_km"] == pytest.approx((1.0 * deg + 0.0) / 2, rel=1e-6)
    assert buf.summary() == {} and buf.groups == []
    # a batch that is not whole groups (or without points) adds no group, but still its errors
    buf.add(errors[:6], points[:6], group_size=4)
    s = buf.summary()
    assert "geo/best_of_group_acc@25km" not in s and s["geo/parse_rate"] == 5 / 6
