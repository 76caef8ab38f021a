"""format / distance / geo_r_paper rewards, their settings, the never-raise guard and the registry."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import HfArgumentParser, TrainerState

from geo_r.geo import haversine_km
from geo_r.prompts import render_answer
from geo_r.rewards import REFUSED_REWARDS, REWARD_FUNCS, RewardArguments, get_reward_funcs, register
from geo_r.rewards.common import column, completion_text, safe_reward, to_float, training_progress
from geo_r.rewards.distance import annealed_scale_km, paper_reward, threshold_reward
from geo_r.rewards.format import follows_contract

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mp16_coordinates_100k.csv"
KM_PER_DEGREE = math.pi * 6371.0 / 180.0
PARIS = (48.8566, 2.3522)
GOOD = render_answer("France", "Ile-de-France", "Paris", *PARIS)


def _at_equator_km(d_km: float) -> str:
    """A contract completion exactly d_km east of (0, 0)."""
    return render_answer("Gabon", "Estuaire", "Somewhere", 0.0, d_km / KM_PER_DEGREE)


def _call(fn, completions, **columns):
    return fn(prompts=["p"] * len(completions), completions=completions, **columns)


# ---------------------------------------------------------------------------------------------- distance maps


@pytest.mark.parametrize(("d", "expected"), [(0, 1.0), (750, 0.5), (2500, 0.2), (20000, 0.0), (25000, 0.0)])
def test_paper_map_at_its_knots(d: float, expected: float) -> None:
    assert paper_reward(d) == expected


def test_paper_map_between_knots_and_monotone() -> None:
    assert paper_reward(375) == pytest.approx(0.75)
    assert paper_reward(1625) == pytest.approx(0.35)
    assert paper_reward(11250) == pytest.approx(0.1)
    d = np.linspace(0, 21000, 5001)
    r = paper_reward(d)
    assert isinstance(r, np.ndarray) and np.all(np.diff(r) <= 0) and r.min() == 0.0 and r.max() == 1.0


def test_anneal_schedule_and_threshold_steps() -> None:
    assert annealed_scale_km(0.0, 2000, 25) == 2000
    assert annealed_scale_km(1.0, 2000, 25) == pytest.approx(25)
    assert annealed_scale_km(0.5, 2000, 25) == pytest.approx(math.sqrt(2000 * 25))
    assert annealed_scale_km(7.0, 2000, 25) == pytest.approx(25)  # clipped
    steps = threshold_reward(
        np.array([0, 1, 1.01, 25, 26, 200, 750, 2500, 2501]),
        (1, 25, 200, 750, 2500),
        (1.0, 0.8, 0.6, 0.4, 0.2),
    )
    np.testing.assert_allclose(steps, [1, 1, 0.8, 0.8, 0.6, 0.6, 0.4, 0.2, 0])


# ---------------------------------------------------------------------------------------------- distance reward


@pytest.mark.parametrize(("d", "expected"), [(0, 1.0), (375, 0.75), (750, 0.5), (2500, 0.2), (11250, 0.1)])
def test_distance_reward_uses_the_paper_map_by_default(d: float, expected: float) -> None:
    out = _call(REWARD_FUNCS["distance"], [_at_equator_km(d)], lat=[0.0], lon=[0.0])
    assert out[0] == pytest.approx(expected, abs=1e-6)


def test_distance_reward_is_monotone_in_distance() -> None:
    completions = [_at_equator_km(d) for d in np.linspace(0, 19000, 60)]
    out = _call(REWARD_FUNCS["distance"], completions, lat=[0.0] * 60, lon=[0.0] * 60)
    assert all(b < a for a, b in zip(out, out[1:], strict=False))


def test_distance_reward_on_real_coordinates_equals_paper_of_haversine() -> None:
    if not SHARED_DATA.is_file():
        pytest.skip(f"real MP16 coordinates not found at {SHARED_DATA} (only in the project's shared folder)")
    coords = np.loadtxt(SHARED_DATA, delimiter=",", skiprows=1, max_rows=400)
    truth, guess = coords[:200], coords[200:]
    completions = [render_answer("A", "B", "C", float(la), float(lo)) for la, lo in guess]
    out = _call(REWARD_FUNCS["distance"], completions, lat=list(truth[:, 0]), lon=list(truth[:, 1]))
    expected = paper_reward(haversine_km(guess[:, 0], guess[:, 1], truth[:, 0], truth[:, 1]))
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_distance_settings_change_the_map() -> None:
    completion = [_at_equator_km(1000)]
    cols = {"lat": [0.0], "lon": [0.0]}
    geo = get_reward_funcs(["distance"], RewardArguments(distance_reward="geoscore"))[0]
    assert _call(geo, completion, **cols)[0] == pytest.approx(math.exp(-1000 / 1492.7), abs=1e-6)
    geo_fine = get_reward_funcs(
        ["distance"], RewardArguments(distance_reward="geoscore", geoscore_scale_km=100)
    )[0]
    assert _call(geo_fine, completion, **cols)[0] == pytest.approx(math.exp(-10), abs=1e-6)
    thr = get_reward_funcs(["distance"], RewardArguments(distance_reward="threshold"))[0]
    assert _call(thr, completion, **cols)[0] == 0.2
    thr2 = get_reward_funcs(
        ["distance"],
        RewardArguments(distance_reward="threshold", threshold_km="500,2000", threshold_rewards="1,0.5"),
    )[0]
    assert _call(thr2, completion, **cols)[0] == 0.5


def test_anneal_follows_trainer_state_and_logs_its_scale() -> None:
    fn = get_reward_funcs(["distance"], RewardArguments(distance_reward="anneal"))[0]
    logged: list[tuple[str, float]] = []
    values = []
    for step in (0, 50, 100):
        state = TrainerState(global_step=step, max_steps=100)
        out = _call(
            fn,
            [_at_equator_km(200)],
            lat=[0.0],
            lon=[0.0],
            trainer_state=state,
            log_metric=lambda name, value: logged.append((name, value)),
        )
        values.append(out[0])
    tau = [2000.0, math.sqrt(2000 * 25), 25.0]
    np.testing.assert_allclose(values, [math.exp(-200 / t) for t in tau], atol=1e-6)
    assert [name for name, _ in logged] == ["rewards/distance/scale_km"] * 3
    np.testing.assert_allclose([v for _, v in logged], tau)
    # no trainer state (or max_steps unknown): the start scale
    assert _call(fn, [_at_equator_km(200)], lat=[0.0], lon=[0.0])[0] == pytest.approx(
        math.exp(-0.1), abs=1e-6
    )
    assert training_progress(TrainerState(global_step=5, max_steps=0)) == 0.0


def test_unparseable_answers_and_bad_ground_truth() -> None:
    junk = ["no coordinates here", "<answer>Coordinates: (95, 10)</answer>", None, 42]
    zero = _call(REWARD_FUNCS["distance"], junk, lat=[1.0] * 4, lon=[1.0] * 4)
    assert zero == [0.0] * 4
    skip = get_reward_funcs(["distance"], RewardArguments(unparseable_reward="none"))[0]
    assert _call(skip, junk, lat=[1.0] * 4, lon=[1.0] * 4) == [None] * 4
    # ground truth: missing, None, NaN, out of range, bool, junk string -> None; numeric strings are fine
    lats = [None, float("nan"), 91.0, True, "north", "48.8566", np.float32(48.8566)]
    lons = [2.3522, 2.3522, 2.3522, 2.3522, 2.3522, "2.3522", np.float64(2.3522)]
    out = _call(REWARD_FUNCS["distance"], [GOOD] * 7, lat=lats, lon=lons)
    assert out[:5] == [None] * 5
    assert out[5] == pytest.approx(1.0) and out[6] == pytest.approx(1.0, abs=1e-6)
    assert _call(REWARD_FUNCS["distance"], [GOOD, GOOD]) == [None, None]  # no lat/lon columns at all


def test_conversational_and_string_completions_score_the_same() -> None:
    texts = [GOOD, _at_equator_km(900), "junk"]
    conversational = [[{"role": "assistant", "content": t}] for t in texts]
    blocks = [[{"role": "assistant", "content": [{"type": "text", "text": t}]}] for t in texts]
    for name in ("format", "distance", "geo_r_paper"):
        fn = REWARD_FUNCS[name]
        cols = {"lat": [PARIS[0], 0.0, 0.0], "lon": [PARIS[1], 0.0, 0.0]}
        expected = _call(fn, texts, **cols)
        assert _call(fn, conversational, **cols) == expected
        assert _call(fn, blocks, **cols) == expected
    assert _call(REWARD_FUNCS["format"], texts) == [1.0, 1.0, 0.0]


def test_trl_style_call_with_all_keyword_arguments() -> None:
    """Exactly what GRPOTrainer._calculate_rewards passes: every column, trainer_state, log_extra, log_metric."""
    completions = [[{"role": "assistant", "content": GOOD}], [{"role": "assistant", "content": "no idea"}]]
    kwargs = {
        "prompts": [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "where?"}]}]]
        * 2,
        "completions": completions,
        "completion_ids": [[1, 2, 3], [4]],
        "image": [object(), object()],
        "id": ["a", "a"],
        "lat": [PARIS[0], PARIS[0]],
        "lon": [PARIS[1], PARIS[1]],
        "country": ["France", "France"],
        "country_code": ["FR", "FR"],
        "region": ["Ile-de-France", None],
        "city": [None, None],
        "trainer_state": TrainerState(global_step=3, max_steps=10),
        "log_extra": lambda column_name, values: None,
        "log_metric": lambda name, value: None,
    }
    for fn in get_reward_funcs(["format", "distance", "geo_r_paper"]):
        out = fn(**kwargs)
        assert len(out) == 2 and out[1] == 0.0 and out[0] == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------- format reward


def test_format_accepts_the_contract() -> None:
    assert follows_contract(GOOD)
    assert follows_contract("\n  " + GOOD + "\n")
    assert follows_contract(
        render_answer("Japan", "Hokkaido", "Biei", -90.0, 180.0, think="Snow, Japanese signs.")
    )
    assert follows_contract(
        "<think>x</think><answer>Country: A\nRegion: B\nCity: C\nCoordinates: (1, -2)</answer>"
    )


def _replace(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


REJECTED = {
    "no-think": GOOD[GOOD.index("<answer>") :],
    "empty-think": "<think> </think>" + GOOD[GOOD.index("\n<answer>") :],
    "no-answer-tags": _replace("<answer>", "").replace("</answer>", ""),
    "no-closing-answer": GOOD[: -len("</answer>")],
    "text-after-answer": GOOD + " Hope this helps!",
    "text-between-think-and-answer": _replace("</think>\n", "</think> So: "),
    "two-answers": GOOD + "<answer>Country: Spain</answer>",
    "uppercase-tag": _replace("<answer>", "<Answer>"),
    "missing-country": _replace("Country: France\n", ""),
    "missing-region": _replace("Region: Ile-de-France\n", ""),
    "missing-city": _replace("City: Paris\n", ""),
    "missing-coordinates": _replace("Coordinates: (48.856600, 2.352200)\n", ""),
    "empty-city": _replace("City: Paris", "City: "),
    "state-synonym": _replace("Region:", "State:"),
    "lowercase-label": _replace("Country:", "country:"),
    "wrong-order": _replace(
        "Country: France\nRegion: Ile-de-France", "Region: Ile-de-France\nCountry: France"
    ),
    "extra-line": _replace("City: Paris\n", "City: Paris\nNote: sure\n"),
    "two-pairs": _replace("City: Paris", "City: Paris (48.85, 2.35)"),
    "two-pairs-on-coordinates-line": _replace("(48.856600, 2.352200)", "(48.856600, 2.352200), (1.0, 2.0)"),
    "lat-out-of-range": _replace("(48.856600, 2.352200)", "(98.856600, 2.352200)"),
    "lon-out-of-range": _replace("(48.856600, 2.352200)", "(48.856600, -182.352200)"),
    "no-parentheses": _replace("(48.856600, 2.352200)", "48.856600, 2.352200"),
    "hemisphere-letters": _replace("(48.856600, 2.352200)", "(48.856600 N, 2.352200 E)"),
    "one-number": _replace("(48.856600, 2.352200)", "(48.856600)"),
    "placeholder": _replace("France", "<country name>"),
}


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_format_rejects(name: str) -> None:
    assert not follows_contract(REJECTED[name])
    assert _call(REWARD_FUNCS["format"], [REJECTED[name]]) == [0.0]


# ---------------------------------------------------------------------------------------------- composite


def test_geo_r_paper_is_format_times_paper_distance() -> None:
    completions = [
        GOOD,
        _at_equator_km(600),
        _at_equator_km(3000),
        REJECTED["state-synonym"],
        REJECTED["text-after-answer"],
        "Coordinates: (48.8566, 2.3522)",
        "junk",
    ]
    truth = [PARIS, (0.0, 0.0), (0.0, 0.0), PARIS, PARIS, PARIS, PARIS]
    cols = {"lat": [t[0] for t in truth], "lon": [t[1] for t in truth]}
    fmt = _call(REWARD_FUNCS["format"], completions, **cols)
    dist = _call(
        get_reward_funcs(["distance"], RewardArguments(distance_reward="paper"))[0], completions, **cols
    )
    paper = _call(REWARD_FUNCS["geo_r_paper"], completions, **cols)
    assert paper == pytest.approx([f * d for f, d in zip(fmt, dist, strict=True)])
    assert paper[0] == pytest.approx(1.0) and paper[1] == pytest.approx(0.6, abs=1e-6) and paper[3] == 0.0
    # the lenient distance still reads these answers; the composite does not pay them
    assert dist[3] > 0.99 and dist[4] > 0.99 and dist[5] > 0.99 and paper[3:] == [0.0] * 4
    # always the paper map, whatever --distance_reward says
    other = get_reward_funcs(["geo_r_paper"], RewardArguments(distance_reward="geoscore"))[0]
    assert _call(other, completions, **cols) == paper
    assert _call(REWARD_FUNCS["geo_r_paper"], [GOOD], lat=[None], lon=[2.0]) == [None]


def test_paper_format_exact_is_the_papers_check_to_the_letter(caplog: pytest.LogCaptureFixture) -> None:
    completions = [
        GOOD,  # the contract: both checks pass
        "Coordinates: (48.8566, 2.3522)",  # one pair, no tags or chain: only the paper's check passes
        "I think it is Paris (48.8566,2.3522).",
        REJECTED["state-synonym"],  # a chain with a synonym label: only the paper's check passes
        "(48.8566, 2.3522) or maybe (51.5, -0.12)",  # two pairs
        "Coordinates: (148.8566, 2.3522)",  # out of range
        "48.8566, 2.3522",  # no parentheses
        "junk",
    ]
    cols = {"lat": [PARIS[0]] * len(completions), "lon": [PARIS[1]] * len(completions)}
    strict = _call(REWARD_FUNCS["geo_r_paper"], completions, **cols)
    with caplog.at_level("INFO", logger="geo_r.rewards.composite"):
        fn = get_reward_funcs(["geo_r_paper"], RewardArguments(paper_format="exact"))[0]
        exact = _call(fn, completions, **cols)
        _call(fn, completions, **cols)
    assert strict[0] == pytest.approx(1.0) and strict[1:] == [0.0] * 7
    assert exact[:4] == pytest.approx([1.0] * 4) and exact[4:] == [0.0] * 4
    # the distance is measured from the one pair: 100 km off gives the paper map's value at 100 km
    east = render_answer("X", "Y", "Z", 0.0, 100 / KM_PER_DEGREE).split("Coordinates:")[1].split("\n")[0]
    assert _call(fn, [f"Coordinates: {east.strip()}"], lat=[0.0], lon=[0.0]) == pytest.approx([paper_reward(100)], abs=1e-6)
    assert _call(fn, [GOOD], lat=[None], lon=[2.0]) == [None]
    # which check ran is logged, once per built reward, and on the function the trainer logs
    ran = [r.getMessage() for r in caplog.records if "geo_r_paper: format check" in r.getMessage()]
    assert len(ran) == 1 and ran[0].startswith("geo_r_paper: format check exact (the paper's check")
    assert fn.format_check == "exact" and REWARD_FUNCS["geo_r_paper"].format_check == "strict"
    with pytest.raises(ValueError, match="--paper_format must be one of strict, exact; got 'loose'"):
        RewardArguments(paper_format="loose")
    (parsed,) = HfArgumentParser(RewardArguments).parse_args_into_dataclasses(["--paper_format", "exact"])
    assert parsed.paper_format == "exact"


# ---------------------------------------------------------------------------------------------- registry


def test_registry_names_aliases_and_function_names() -> None:
    assert {"format", "distance", "accuracy", "haversine", "geo_r_paper", "region"} <= set(REWARD_FUNCS)
    assert REWARD_FUNCS["accuracy"] is REWARD_FUNCS["distance"] is REWARD_FUNCS["haversine"]
    for name, canonical in [
        ("format", "format"),
        ("distance", "distance"),
        ("accuracy", "distance"),
        ("haversine", "distance"),
        ("geo_r_paper", "geo_r_paper"),
        ("region", "region"),
    ]:
        assert REWARD_FUNCS[name].__name__ == canonical
        assert get_reward_funcs([name])[0].__name__ == canonical
    funcs = get_reward_funcs("format, accuracy  geo_r_paper")
    assert [f.__name__ for f in funcs] == ["format", "distance", "geo_r_paper"]
    assert get_reward_funcs(["ACCURACY"])[0].__name__ == "distance"
    assert [f.__name__ for f in get_reward_funcs(["format,haversine", "region"])] == [
        "format",
        "distance",
        "region",
    ]


def test_unknown_and_duplicate_names() -> None:
    with pytest.raises(
        ValueError,
        match=r"unknown reward 'distnace'.*Valid rewards: .*distance \(aliases: accuracy, haversine\)",
    ):
        get_reward_funcs(["format", "distnace"])
    with pytest.raises(ValueError, match="selected twice"):
        get_reward_funcs(["distance", "accuracy"])
    with pytest.raises(ValueError, match="no reward functions"):
        get_reward_funcs([])


@pytest.mark.parametrize(
    "name", ["length", "repetition", "iou", "mcq", "yes_no", "math", "od_ap", "odLength"]
)
def test_vlm_r1_rewards_are_refused_by_name_with_a_reason(name: str) -> None:
    with pytest.raises(ValueError) as info:
        get_reward_funcs(["format", name])
    message = str(info.value)
    assert "does not apply to geolocation" in message and REFUSED_REWARDS[name.lower()] in message
    assert "use 'distance'" in message


def test_register_rejects_taken_names() -> None:
    with pytest.raises(ValueError, match="already taken"):
        register("accuracy")(lambda args: None)
    with pytest.raises(ValueError, match="already taken"):
        register("iou")(lambda args: None)


def test_custom_reward_file_is_loaded_and_guarded(tmp_path: Path) -> None:
    path = tmp_path / "my_rewards.py"
    path.write_text(
        "def coast(prompts, completions, **kwargs):\n    return [0.25 for _ in completions]\n"
        "def broken(prompts, completions, **kwargs):\n    raise RuntimeError('boom')\n"
    )
    coast, broken = get_reward_funcs([f"{path}:coast", f"{path}:broken"])
    assert coast.__name__ == "coast" and _call(coast, ["a", "b"]) == [0.25, 0.25]
    assert broken.__name__ == "broken" and _call(broken, ["a", "b"]) == [0.0, 0.0]


# ---------------------------------------------------------------------------------------------- guard + helpers


def test_safe_reward_guard() -> None:
    def nan_and_inf(prompts, completions, completion_ids=None, **kwargs):
        return [float("nan"), float("inf"), None, 0.5, "x"]

    def raises(prompts, completions, completion_ids=None, **kwargs):
        raise KeyError("lat")

    def short(prompts, completions, completion_ids=None, **kwargs):
        return [1.0]

    five = ["a"] * 5
    assert safe_reward(nan_and_inf, "n")(prompts=five, completions=five) == [0.0, 0.0, None, 0.5, 0.0]
    assert safe_reward(raises, "r")(prompts=five, completions=five) == [0.0] * 5
    assert safe_reward(short, "s")(prompts=five, completions=five) == [0.0] * 5
    assert safe_reward(short, "s").__name__ == "s"


def test_helpers() -> None:
    assert completion_text("x") == "x"
    assert completion_text([{"role": "assistant", "content": "y"}]) == "y"
    assert completion_text({"role": "assistant", "content": "z"}) == "z"
    assert completion_text(None) == "" and completion_text([]) == "" and completion_text(3) == ""
    assert column({"lat": [1, 2]}, "lat", 2) == [1, 2]
    assert column({}, "lat", 2) == [None, None]
    assert column({"lat": [1]}, "lat", 2) == [None, None]  # misaligned: treated as missing
    assert column({"lat": "12"}, "lat", 2) == [None, None]
    assert to_float("48.85") == 48.85 and to_float(np.float32(2.5)) == 2.5 and to_float(np.array(3.0)) == 3.0
    for bad in (
        None,
        True,
        np.bool_(True),
        float("nan"),
        "inf",
        "1e999",
        "abc",
        [1.0],
        np.array([1.0]),
        "9" * 100,
    ):
        assert to_float(bad) is None


def test_reward_arguments_flags_and_validation() -> None:
    parser = HfArgumentParser(RewardArguments)
    (args,) = parser.parse_args_into_dataclasses(
        ["--distance_reward", "anneal", "--anneal_end_km", "50", "--unparseable_reward", "none"]
    )
    assert (args.distance_reward, args.anneal_end_km, args.unparseable_reward) == ("anneal", 50.0, "none")
    with pytest.raises(SystemExit):
        parser.parse_args_into_dataclasses(["--distance_reward", "linear"])  # argparse choices
    for action in parser._actions:
        if action.dest != "help":
            assert action.help and len(action.help) > 40, action.dest
    bad = [
        {"distance_reward": "linear"},
        {"unparseable_reward": "skip"},
        {"geoscore_scale_km": 0},
        {"anneal_start_km": float("nan")},
        {"threshold_km": "1,25,x"},
        {"threshold_km": "25,1", "threshold_rewards": "1,0.5"},
        {"threshold_km": "1,25"},
        {"threshold_rewards": "1,0.8,0.6,0.4,1.2"},
        {"threshold_rewards": "0.2,0.4,0.6,0.8,1"},
    ]
    for kwargs in bad:
        with pytest.raises(ValueError):
            RewardArguments(**kwargs)


# ---------------------------------------------------------------------------------------------- properties


_JUNK_VALUES = [
    None,
    True,
    False,
    0,
    -1,
    10**400,
    float("nan"),
    float("inf"),
    -0.0,
    "48.85",
    "-200",
    "nan",
    "inf",
    " 1 ",
    "",
    "x",
    [1.0],
    {"lat": 1},
    b"12",
    np.float32(3.5),
    np.array([1.0, 2.0]),
]
_JUNK = st.one_of(st.sampled_from(_JUNK_VALUES), st.floats(), st.integers(-400, 400))
_TRICKY_COMPLETIONS = [
    None,
    3,
    2.5,
    b"<answer>(1, 2)</answer>",
    [],
    [None],
    [{}],
    [{"role": "assistant"}],
    [{"role": "assistant", "content": None}],
    [{"role": "assistant", "content": [{"type": "image"}, "x", 3]}],
    {"role": "assistant", "content": GOOD},
    [{"role": "assistant", "content": GOOD}],
    GOOD,
    REJECTED["two-pairs"],
    REJECTED["lat-out-of-range"],
    "<answer>Coordinates: (1e999, 2)</answer>",
    "<answer>Coordinates: (-90, -180)</answer>",
    "<answer>Latitude: 90 S\nLongitude: 180 W</answer>",
]
_COMPLETION = st.one_of(
    st.text(max_size=60),
    st.sampled_from(_TRICKY_COMPLETIONS),
    st.builds(
        render_answer,
        st.sampled_from(["France", "", "<x>", "N 1 E"]),
        st.just("R"),
        st.just("C"),
        st.floats(-100, 100),
        st.floats(-200, 200),
    ),
)
_ALL_SETTINGS = [
    RewardArguments(),
    RewardArguments(distance_reward="geoscore", unparseable_reward="none"),
    RewardArguments(distance_reward="anneal"),
    RewardArguments(distance_reward="threshold"),
    RewardArguments(paper_format="exact"),
]
_FUNCS = [get_reward_funcs(["format", "distance", "geo_r_paper"], args) for args in _ALL_SETTINGS]


@settings(max_examples=10_000, deadline=None, derandomize=True)
@given(
    st.lists(st.tuples(_COMPLETION, _JUNK, _JUNK), min_size=1, max_size=3),
    st.sampled_from([None, TrainerState(global_step=7, max_steps=10), "not a state"]),
    st.booleans(),
    st.sampled_from(_FUNCS),
)
def test_rewards_never_raise_never_nan_and_stay_in_unit_interval(
    rows, trainer_state, drop_columns, funcs
) -> None:
    completions = [r[0] for r in rows]
    columns = {} if drop_columns else {"lat": [r[1] for r in rows], "lon": [r[2] for r in rows]}
    for fn in funcs:
        raw = fn.__wrapped__  # the reward without the safety net: an exception here fails the test
        out = raw(prompts=["p"] * len(rows), completions=completions, trainer_state=trainer_state, **columns)
        assert len(out) == len(rows)
        for value in out:
            assert value is None or (isinstance(value, float) and 0.0 <= value <= 1.0), (fn.__name__, value)
