"""The ``candidate`` reward (a true claim the answer keeps: +1; none: 0; false or broken: -1) and the ``format``
reward's Candidate line, on prompts with and without retrieval candidates."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo_r.geo.candidates import NAME_KM, Candidate, check_candidate
from geo_r.geo.parse import parse_prediction
from geo_r.prompts import render_answer
from geo_r.rewards import REWARD_FUNCS, get_reward_funcs
from geo_r.rewards.candidate import INCONSISTENT_CLAIM, NO_CLAIM, RIGHT_CLAIM, WRONG_CLAIM
from geo_r.rewards.format import follows_contract

KM_PER_DEG_LAT = math.pi * 6371.0 / 180.0
LOUVRE = (48.8606, 2.3376)
TOKYO = (35.6895, 139.6917)
# candidate 1: central Paris (right), candidate 2: Tokyo (wrong), candidate 3: Versailles, 17 km away (right)
CANDS = [
    Candidate(48.8584, 2.2945, "France", "Ile-de-France", "Paris", 3, 0.91),
    Candidate(*TOKYO, "Japan", "Tokyo", "Tokyo", 2, 0.88),
    Candidate(48.8049, 2.1204, "France", "Ile-de-France", "Versailles", 1, 0.80),
]
ROW = [c.to_dict() for c in CANDS]


def _paris(**kw: Any) -> str:
    return render_answer("France", "Ile-de-France", "Paris", *kw.pop("at", (48.8584, 2.2945)), **kw)


def _call(completions: list[str], candidates: Any = None, truth: tuple[float, float] = LOUVRE, **extra: Any):
    n = len(completions)
    columns = {"lat": [truth[0]] * n, "lon": [truth[1]] * n, **extra}
    if candidates is not None:
        columns["candidates"] = [candidates] * n
    return REWARD_FUNCS["candidate"](prompts=["p"] * n, completions=completions, **columns)


def test_registered_and_selectable_with_the_others() -> None:
    funcs = get_reward_funcs("format distance region candidate")
    assert [f.__name__ for f in funcs] == ["format", "distance", "region", "candidate"]


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        pytest.param(_paris(candidate=1), RIGHT_CLAIM, id="copies-the-right-candidate"),
        pytest.param(_paris(candidate=3, at=(48.81, 2.13)), RIGHT_CLAIM, id="names-a-right-one-own-coordinates"),
        pytest.param(_paris(candidate=0), NO_CLAIM, id="none"),
        pytest.param(_paris(), NO_CLAIM, id="no-candidate-line"),
        pytest.param("nothing parseable", NO_CLAIM, id="junk"),
        pytest.param(render_answer("Japan", "Tokyo", "Tokyo", *TOKYO, candidate=2), WRONG_CLAIM, id="wrong-claim"),
        pytest.param(_paris(candidate=2), INCONSISTENT_CLAIM, id="names-tokyo-answers-paris"),
        pytest.param(render_answer("Japan", "Hokkaido", "Manaus", 48.8584, 2.2945, candidate=1), INCONSISTENT_CLAIM,
                     id="right-coordinates-contradicting-chain"),
        pytest.param(_paris(candidate=9), INCONSISTENT_CLAIM, id="not-listed"),
        pytest.param("<answer>Candidate: 1</answer>", INCONSISTENT_CLAIM, id="named-without-coordinates"),
    ],
)
def test_claims_and_their_values(completion: str, expected: float) -> None:
    assert _call([completion], ROW) == [expected]


def test_chain_near_the_candidate_is_not_a_contradiction() -> None:
    # the truth and the copied candidate are in Saitama by GeoNames, the data says Tokyo: still consistent
    saitama = Candidate(35.8274, 139.756, "Japan", "Saitama", "Hatogaya-honcho")
    answer = render_answer("Japan", "Tokyo", "Tokyo", saitama.lat, saitama.lon, candidate=1)
    assert _call([answer], [saitama.to_dict()], truth=(35.8264, 139.756)) == [RIGHT_CLAIM]
    check = check_candidate(parse_prediction(answer), [saitama])
    assert check is not None and check.consistent and check.distance_km == pytest.approx(0.0)
    # 30 km from the candidate is beyond what naming it claims
    far = render_answer("Japan", "Tokyo", "Tokyo", saitama.lat + 30 / KM_PER_DEG_LAT, saitama.lon, candidate=1)
    assert _call([far], [saitama.to_dict()], truth=(35.8264, 139.756)) == [INCONSISTENT_CLAIM]


def test_rows_without_candidates_or_truth_get_none() -> None:
    answers = [_paris(candidate=1), _paris()]
    assert _call(answers) == [None, None]
    assert _call(answers, []) == [None, None]
    assert _call(answers, ROW, truth=(float("nan"), 0.0)) == [None, None]
    out = REWARD_FUNCS["candidate"](prompts=["p"] * 2, completions=answers, candidates=[ROW, None],
                                    lat=[LOUVRE[0]] * 2, lon=[LOUVRE[1]] * 2)
    assert out == [RIGHT_CLAIM, None]


def test_logs_named_consistent_and_right_shares() -> None:
    logged: dict[str, float] = {}
    _call([_paris(candidate=1), _paris(candidate=2), _paris(candidate=0), _paris()], ROW,
          log_metric=lambda k, v: logged.__setitem__(k, v))
    assert logged == {"rewards/candidate/named": 0.5, "rewards/candidate/consistent": 0.5,
                      "rewards/candidate/right": 0.5}


def _bare(k: int, lat: float, lon: float) -> str:
    """An answer with only a Candidate line and coordinates (no names to agree or disagree)."""
    return f"<answer>\nCandidate: {k or 'none'}\nCoordinates: ({lat:.6f}, {lon:.6f})\n</answer>"


def test_always_naming_candidate_one_does_not_pay_when_retrieval_is_mostly_wrong() -> None:
    """The gaming argument of the module docstring, on 400 synthetic photos whose candidate 1 is right 30 % of
    the time and some candidate is right 60 % of the time: a policy that copies candidate 1 every time earns
    less than answering none, and one that names only the right candidates earns the most."""
    rng = random.Random(0)
    rows, truths, always_first, honest = [], [], [], []
    for _ in range(400):
        truth = (rng.uniform(-50, 60), rng.uniform(-150, 150))
        wrong = [Candidate(truth[0] - 40 if truth[0] > 0 else truth[0] + 40, truth[1] + 10 * j) for j in (1, 2)]
        right = Candidate(truth[0] + 5 / KM_PER_DEG_LAT, truth[1])
        u = rng.random()
        cands = [right, *wrong] if u < 0.3 else [*wrong, right] if u < 0.6 else [*wrong, wrong[0]]
        rows.append([c.to_dict() for c in cands])
        truths.append(truth)
        first = cands[0]
        always_first.append(_bare(1, first.lat, first.lon))
        k = next((j + 1 for j, c in enumerate(cands) if c is right), 0)
        honest.append(_bare(k, *((cands[k - 1].lat, cands[k - 1].lon) if k else truth)))

    def mean(completions: list[str]) -> float:
        out = REWARD_FUNCS["candidate"](prompts=["p"] * 400, completions=completions, candidates=rows,
                                        lat=[t[0] for t in truths], lon=[t[1] for t in truths])
        return sum(out) / len(out)

    always, none, calibrated = mean(always_first), 0.0, mean(honest)
    assert always == pytest.approx(2 * 0.3 - 1, abs=0.06) and always < none < calibrated


def test_format_requires_the_line_with_candidates_and_refuses_it_without() -> None:
    plain, with_none, with_2 = _paris(), _paris(candidate=0), _paris(candidate=2)
    fmt = REWARD_FUNCS["format"]
    n = 5
    columns = {"candidates": [ROW, ROW, ROW, None, []]}
    assert fmt(prompts=["p"] * n, completions=[plain, with_none, with_2, with_2, with_none], **columns) == [
        0.0, 1.0, 1.0, 0.0, 0.0]
    assert fmt(prompts=["p"] * 3, completions=[plain, with_none, with_2]) == [1.0, 0.0, 0.0]
    assert follows_contract(_paris(candidate=3), 3) and not follows_contract(_paris(candidate=4), 3)
    for line in ("Candidate: None", "Candidate: #2", "Candidate: 02", "Candidate:2x", "Candidates: 2"):
        assert not follows_contract(with_2.replace("Candidate: 2", line), 3), line
    assert not follows_contract(with_2.replace("Candidate: 2\nCoordinates", "Coordinates").replace(
        "City: Paris", "Candidate: 2\nCity: Paris"), 3)  # in the wrong place
    assert follows_contract(with_2, None) and follows_contract(plain, None)  # context unknown
    paper = REWARD_FUNCS["geo_r_paper"]
    truth = {"lat": [48.8584] * 2, "lon": [2.2945] * 2}
    assert paper(prompts=["p"] * 2, completions=[plain, with_2], candidates=[ROW, ROW], **truth) == [0.0, 1.0]


_COMPLETION = st.one_of(
    st.text(max_size=60),
    st.builds(
        lambda k, lat, lon, country: render_answer(country, "R", "C", lat, lon, candidate=k),
        st.one_of(st.none(), st.integers(0, 12)),
        st.floats(-90, 90),
        st.floats(-180, 180),
        st.sampled_from(["France", "Japan", "Atlantis", "United States"]),
    ),
)
_CAND = st.fixed_dictionaries(
    {"lat": st.floats(-90, 90), "lon": st.floats(-180, 180)},
    optional={"country": st.sampled_from([None, "France", "Japan", ""]), "radius_km": st.floats(-1, 50),
              "photos": st.integers(-1, 5), "score": st.floats(allow_nan=True)},
)
_JUNK = st.one_of(st.none(), st.floats(allow_nan=True), st.text(max_size=3), st.booleans(), st.integers(-200, 200))


@settings(max_examples=3000, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(_COMPLETION, st.one_of(st.none(), st.lists(_CAND, max_size=4), _JUNK), _JUNK, _JUNK),
        min_size=1, max_size=3,
    ),
    st.booleans(),
)
def test_never_raises_never_nan_values_on_the_scale(rows, drop_columns) -> None:
    completions = [r[0] for r in rows]
    columns = {} if drop_columns else {"candidates": [r[1] for r in rows], "lat": [r[2] for r in rows],
                                       "lon": [r[3] for r in rows]}
    for name in ("candidate", "format"):
        raw = REWARD_FUNCS[name].__wrapped__  # without the safety net: an exception fails the test
        out = raw(prompts=["p"] * len(rows), completions=completions, **columns)
        assert len(out) == len(rows)
        allowed = {NO_CLAIM, RIGHT_CLAIM, WRONG_CLAIM, INCONSISTENT_CLAIM} if name == "candidate" else {0.0, 1.0}
        assert all(v is None or v in allowed for v in out), (name, out)
    if drop_columns:
        assert REWARD_FUNCS["candidate"](prompts=["p"] * len(rows), completions=completions) == [None] * len(rows)


def test_name_km_is_the_claim_radius() -> None:
    assert NAME_KM == 25.0
