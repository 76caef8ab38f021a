"""The ``region`` reward: gated chain accuracy + self-consistency, orderings, truth handling, robustness."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import geo_r.rewards.region as region_module
from geo_r.geo.names import country_name, normalize_city
from geo_r.geo.regions import geonames, unit_vectors
from geo_r.prompts import render_answer
from geo_r.rewards import build_reward
from geo_r.rewards.args import RewardArguments
from geo_r.rewards.region import (
    CITY_WEIGHT,
    CONSISTENT_CITY_WEIGHT,
    CONSISTENT_COUNTRY_WEIGHT,
    CONSISTENT_REGION_WEIGHT,
    COUNTRY_WEIGHT,
    REGION_WEIGHT,
    make_region_reward,
)

LOUVRE = (48.8606, 2.3376)


@pytest.fixture(scope="module")
def reward() -> Any:
    """The raw reward function (not wrapped by safe_reward, so a raise would fail the test)."""
    geonames().build_indexes()  # load the table and its name index once for the whole module
    return make_region_reward(RewardArguments())


def call(fn: Any, completions: list[Any], lat: float | None, lon: float | None, **columns: Any) -> list[float | None]:
    n = len(completions)
    kwargs = {k: [v] * n for k, v in columns.items()}
    return fn(None, completions, None, lat=[lat] * n, lon=[lon] * n, **kwargs)


def test_weights_make_accuracy_dominate_consistency() -> None:
    consistency = CONSISTENT_COUNTRY_WEIGHT + CONSISTENT_REGION_WEIGHT + CONSISTENT_CITY_WEIGHT
    assert min(COUNTRY_WEIGHT, REGION_WEIGHT, CITY_WEIGHT) > consistency
    assert COUNTRY_WEIGHT + REGION_WEIGHT + CITY_WEIGHT + consistency == pytest.approx(1.0)


def test_worked_example_of_the_docstring(reward: Any) -> None:
    completions = [
        render_answer("France", "Île-de-France", "Paris", 48.8566, 2.3522),
        render_answer("France", "Île-de-France", "Paris", 51.5074, -0.1278),
        render_answer("France", "Auvergne-Rhône-Alpes", "Lyon", 45.7640, 4.8357),
        render_answer("France", "Bavaria", "Munich", 48.1351, 11.5820),
        render_answer("Belgium", "Brussels", "Brussels", 50.8503, 4.3517),
        "I cannot tell where this is.",
    ]
    assert call(reward, completions, *LOUVRE) == [1.0, 0.8, 0.5, 0.3, 0.2, 0.0]
    # The same truth given as dataset labels (no coordinates) scores the same here.
    by_labels = call(reward, completions, None, None, country="France", region="Ile-de-France", city="Paris")
    assert by_labels == [1.0, 0.8, 0.5, 0.3, 0.2, 0.0]


def test_aliases_and_abbreviations_count(reward: Any) -> None:
    liberty = (40.6892, -74.0445)
    variants = [
        render_answer("USA", "NY", "New York City", *liberty),
        render_answer("United States of America", "New York State", "NYC", *liberty),
        render_answer("US", "New York", "New York", *liberty),
    ]
    assert call(reward, variants, *liberty) == [1.0, 1.0, 1.0]


def _pick(rng: np.random.Generator, candidates: list[int], ok: Any) -> int | None:
    table = geonames()
    for i in rng.permutation(candidates)[:50]:
        if table.name[int(i)] and ok(int(i)):
            return int(i)
    return None


def _comparison_places(t: int, by_region: dict[tuple[str, str], list[int]], rng: np.random.Generator) -> dict[str, Any] | None:
    """For truth place t: a same-region, a same-country and a foreign place that no tolerance rule can blur
    (far from t, and no place of their region / country / city name near t); None if there is none."""
    table = geonames()
    cc, a1 = table.cc[t], table.admin1[t]
    xyz = unit_vectors(np.array([table.lat[t]]), np.array([table.lon[t]]))[0]

    def far(i: int, km: float) -> bool:
        return table.nearest_km(np.array([i]), xyz) > km

    def city_far(i: int, in_cc: str) -> bool:
        return table.nearest_km(table.city_places(table.name[i], in_cc), xyz) > 40

    same_region = _pick(rng, by_region[(cc, a1)], lambda i: far(i, 80) and city_far(i, cc))
    others = [i for i in table.country_places(cc).tolist() if table.admin1[i] and table.admin1[i] != a1]
    same_country = _pick(
        rng, others,
        lambda i: far(i, 200) and city_far(i, cc) and table.nearest_km(table.region_places(cc, table.admin1[i]), xyz) > 20,
    )
    foreign = _pick(
        rng, rng.integers(0, len(table), 200).tolist(),
        lambda i: table.cc[i] != cc and far(i, 1000) and table.country_distance_km(table.cc[i], xyz) > 20
        and city_far(i, table.cc[i]),
    )
    if same_region is None or same_country is None or foreign is None:
        return None
    return {"truth": t, "region": same_region, "country": same_country, "foreign": foreign}


def _sample_cases(count: int) -> list[dict[str, Any]]:
    """Deterministic truth places (GeoNames places with an admin1 of 5+ places) and their comparison places."""
    table = geonames()
    rng = np.random.default_rng(1234)
    by_region: dict[tuple[str, str], list[int]] = {}
    for i, (cc, a1) in enumerate(zip(table.cc, table.admin1, strict=True)):
        if a1:
            by_region.setdefault((cc, a1), []).append(i)
    cases: list[dict[str, Any]] = []
    for t in rng.permutation(len(table)).tolist():
        if not table.admin1[t] or not table.name[t] or len(by_region[(table.cc[t], table.admin1[t])]) < 5:
            continue
        case = _comparison_places(t, by_region, rng)
        if case is not None:
            cases.append(case)
        if len(cases) == count:
            return cases
    raise AssertionError("not enough sample places")


def _answer(i: int, at: int | None = None) -> str:
    """The labels of place i, with the coordinates of place ``at`` (default: i itself, i.e. consistent)."""
    table = geonames()
    at = i if at is None else at
    return render_answer(country_name(table.cc[i]) or table.cc[i], table.admin1[i], table.name[i], float(table.lat[at]), float(table.lon[at]))


def test_orderings_on_real_places(reward: Any) -> None:
    table = geonames()
    for case in _sample_cases(40):
        t = case["truth"]
        consistent = [_answer(t), _answer(case["region"]), _answer(case["country"]), _answer(case["foreign"])]
        # the same names, with the coordinates of the foreign place (or, for it, of the truth's country place)
        inconsistent = [_answer(t, case["foreign"]), _answer(case["region"], case["foreign"]),
                        _answer(case["country"], case["foreign"]), _answer(case["foreign"], case["country"])]
        got = call(reward, consistent + inconsistent, float(table.lat[t]), float(table.lon[t]))
        where = (table.name[t], table.admin1[t], table.cc[t])
        # right city > right region only > right country only > wrong country, all consistent
        assert got[:4] == [1.0, 0.75, 0.5, 0.2], where
        # the same chains with coordinates elsewhere lose exactly the consistency part
        assert got[4:] == [0.8, 0.55, 0.3, 0.0], where
        assert all(c > i for c, i in zip(got[:4], got[4:], strict=True))


def test_gating_wrong_country_earns_nothing_below(reward: Any) -> None:
    # Right region and city names, wrong country: neither counts (coordinates elsewhere, so 0).
    got = call(reward, [render_answer("Germany", "Île-de-France", "Paris", 0.0, -150.0)], *LOUVRE)
    assert got == [0.0]
    # A wrong region blocks the right city.
    got = call(reward, [render_answer("France", "Brittany", "Paris", 0.0, -150.0)], *LOUVRE)
    assert got == [COUNTRY_WEIGHT]


def test_truth_labels_win_and_fill_in(reward: Any) -> None:
    # Biei (DESIGN.md's example) is not in GeoNames cities1000: its nearest place is Shimo-furano, 22 km
    # away. From coordinates alone the city "Biei" cannot be confirmed, neither as truth nor as consistent.
    biei = (43.452002, 142.615358)
    answer = [render_answer("Japan", "Hokkaido", "Biei", *biei)]
    no_city = COUNTRY_WEIGHT + REGION_WEIGHT + CONSISTENT_COUNTRY_WEIGHT + CONSISTENT_REGION_WEIGHT
    assert call(reward, answer, *biei) == [pytest.approx(no_city)]
    # The dataset's label says Biei: the truth side now matches (self-consistency still cannot).
    labelled = call(reward, answer, *biei, country="Japan", country_code="JP", region="Hokkaido", city="Biei")
    assert labelled == [pytest.approx(no_city + CITY_WEIGHT)]
    # Labels only (no coordinates): the label rule alone.
    assert call(reward, answer, None, None, country="Japan", region="Hokkaido", city="Biei") == labelled
    wrong_truth = call(reward, answer, None, None, country="France")
    assert wrong_truth == [pytest.approx(CONSISTENT_COUNTRY_WEIGHT + CONSISTENT_REGION_WEIGHT)]


def test_namibia_survives_pandas_nan_code(reward: Any) -> None:
    windhoek = (-22.5609, 17.0658)
    answer = [render_answer("Namibia", "Khomas", "Windhoek", *windhoek)]
    # pandas reads "NA" as NaN: the code column is then useless, the name or the coordinates still work.
    assert call(reward, answer, *windhoek, country_code=math.nan) == [1.0]
    assert call(reward, answer, None, None, country_code=math.nan, country="Namibia", region="Khomas", city="Windhoek") == [1.0]
    assert call(reward, [render_answer("NA", "Khomas", "Windhoek", *windhoek)], *windhoek, country_code="NA") == [1.0]


def test_unlabelled_region_is_credited_with_the_city(reward: Any) -> None:
    singapore = (1.2897, 103.8501)  # GeoNames has no admin1 for Singapore
    assert geonames().admin1[int(geonames().tree.query(unit_vectors(np.array([1.2897]), np.array([103.8501])))[1][0])] == ""
    assert call(reward, [render_answer("Singapore", "Singapore", "Singapore", *singapore)], *singapore) == [1.0]
    wrong_city = call(reward, [render_answer("Singapore", "Central", "Jakarta", *singapore)], *singapore)
    assert wrong_city == [COUNTRY_WEIGHT + CONSISTENT_COUNTRY_WEIGHT]


def test_missing_truth_is_none_and_unparseable_is_zero(reward: Any) -> None:
    good = render_answer("France", "Île-de-France", "Paris", *LOUVRE)
    assert call(reward, [good], None, None) == [None]
    assert call(reward, [good], math.nan, 2.0) == [None]
    assert call(reward, [good], 95.0, 2.0) == [None]
    assert reward(None, [good, good], None) == [None, None]  # no columns at all
    assert call(reward, ["", "no answer", None, 17], *LOUVRE) == [0.0, 0.0, 0.0, 0.0]


def test_conversational_completions(reward: Any) -> None:
    msg = [{"role": "assistant", "content": render_answer("France", "Île-de-France", "Paris", *LOUVRE)}]
    assert call(reward, [msg], *LOUVRE) == [1.0]


def test_one_batched_geocoding_per_call_and_cached_truths(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = region_module.reverse_geocode

    def counting(lats: Any, lons: Any) -> Any:
        calls.append(len(lats))
        return real(lats, lons)

    monkeypatch.setattr(region_module, "reverse_geocode", counting)
    fn = make_region_reward(RewardArguments())
    completions = [render_answer("France", "Île-de-France", "Paris", 48.85 + k / 100, 2.35) for k in range(8)]
    lats = [LOUVRE[0]] * 4 + [40.6892] * 4
    lons = [LOUVRE[1]] * 4 + [-74.0445] * 4
    fn(None, completions, None, lat=lats, lon=lons)
    assert calls == [2, 8]  # two distinct truths, then all eight predictions, each in one query
    fn(None, completions, None, lat=lats, lon=lons)
    assert calls == [2, 8, 8]  # the truths come from the cache


def test_sub_scores_are_logged(reward: Any) -> None:
    logged: dict[str, float] = {}
    completions = [render_answer("France", "Île-de-France", "Paris", *LOUVRE), render_answer("Spain", "Madrid", "Madrid", 40.4, -3.7)]
    reward(None, completions, None, lat=[LOUVRE[0]] * 2, lon=[LOUVRE[1]] * 2, log_metric=lambda k, v: logged.__setitem__(k, v))
    assert logged == {
        "rewards/region/country_acc": 0.5,
        "rewards/region/region_acc": 0.5,
        "rewards/region/city_acc": 0.5,
        "rewards/region/consistent": 1.0,
    }


def test_registered_under_its_name() -> None:
    fn = build_reward("region")
    assert fn.__name__ == "region"
    assert fn(None, [render_answer("France", "Île-de-France", "Paris", *LOUVRE)], None, lat=[LOUVRE[0]], lon=[LOUVRE[1]]) == [1.0]


def test_city_normalisation_matches_index() -> None:
    # the index used by the city rule is keyed by normalize_city: a synonym lands on its GeoNames entry
    assert len(geonames().city_places("München", "DE")) >= 1
    assert normalize_city("München") == normalize_city("Munich")


# ------------------------------------------------------------------------------------------------ properties

_NAMES = st.one_of(
    st.none(),
    st.text(max_size=24),
    st.sampled_from(["France", "USA", "NA", "Namibia", "Île-de-France", "CA", "Tokyo", "Paris", "", "  ",
                     "Korea, Republic of", "Fiji", "Northern", "Lambasa", "(", "[]", "St.", "the"]),
)
_NUMBERS = st.one_of(
    st.none(), st.booleans(), st.text(max_size=8),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-90, max_value=90), st.floats(min_value=-180, max_value=180),
)
_COORD = st.floats(min_value=-200, max_value=200, allow_nan=False)
_COMPLETIONS = st.one_of(
    st.text(max_size=120),
    st.none(),
    st.integers(),
    st.builds(
        lambda c, r, ci, la, lo: render_answer(c or "", r or "", ci or "", la, lo), _NAMES, _NAMES, _NAMES,
        st.one_of(_COORD, st.floats(allow_nan=True, allow_infinity=True)), _COORD,
    ),
    st.builds(lambda t: [{"role": "assistant", "content": t}], st.text(max_size=60)),
)


@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    completions=st.lists(_COMPLETIONS, min_size=1, max_size=2),
    lat=_NUMBERS, lon=_NUMBERS, country=_NAMES, code=_NAMES, region=_NAMES, city=_NAMES,
)
def test_never_raises_never_nan_always_in_range(
    reward: Any, completions: list[Any], lat: Any, lon: Any, country: Any, code: Any, region: Any, city: Any
) -> None:
    n = len(completions)
    out = reward(
        None, completions, None, lat=[lat] * n, lon=[lon] * n,
        country=[country] * n, country_code=[code] * n, region=[region] * n, city=[city] * n,
    )
    assert isinstance(out, list) and len(out) == n
    for v in out:
        assert v is None or (isinstance(v, float) and math.isfinite(v) and 0.0 <= v <= 1.0)
