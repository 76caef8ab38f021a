"""The lenient completion parser: real-model-style answers, priorities, rejection rules, robustness."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from geo_r.geo import Prediction, extract_answer, find_coordinate_pairs, parse_prediction
from geo_r.geo.parse import CANDIDATE_NONE, MAX_CANDIDATE, MAX_NAME_CHARS, _parse
from geo_r.prompts import render_answer

NAN = float("nan")

# (completion, country, region, city, lat, lon); None = expected missing.
CASES = [
    pytest.param(
        render_answer("Japan", "Hokkaido", "Biei", 43.452002, 142.615358),
        "Japan",
        "Hokkaido",
        "Biei",
        43.452002,
        142.615358,
        id="contract",
    ),
    pytest.param(
        "<think>signs in French</think>\n<Answer >\nCountry: France\nState: Île-de-France\nCity: Paris\n"
        "Coordinates: 48.8566°N, 2.3522°E\n</ ANSWER>",
        "France",
        "Île-de-France",
        "Paris",
        48.8566,
        2.3522,
        id="tag-case-spaces-state-degrees-hemispheres",
    ),
    pytest.param(
        "<think>eucalyptus, left-hand traffic</think><answer>**Country:** Australia\n**Province:** New South "
        "Wales\n- **City**: Sydney\n**Coordinates:** 33.9 S 151.2 E",
        "Australia",
        "New South Wales",
        "Sydney",
        -33.9,
        151.2,
        id="bold-bullets-missing-close-tag-S-E",
    ),
    pytest.param(
        "The photo shows the Eiffel Tower, so Paris, France (48.8584, 2.2945).",
        None,
        None,
        None,
        48.8584,
        2.2945,
        id="no-tags-prose",
    ),
    pytest.param(
        '<answer>{"country": "Brazil", "region": "S\\u00e3o Paulo", "city": "Campinas", '
        '"lat": -22.9056, "lng": -47.0608}</answer>',
        "Brazil",
        "São Paulo",
        "Campinas",
        -22.9056,
        -47.0608,
        id="json-lat-lng",
    ),
    pytest.param(
        '```json\n{"country": "Kenya", "city": null, "coordinates": [-1.2921, 36.8219]}\n```',
        "Kenya",
        None,
        None,
        -1.2921,
        36.8219,
        id="json-fence-coordinates-array-null",
    ),
    pytest.param(
        '{\n  "country": "Chile",\n  "coordinates": [\n    -33.4489,\n    -70.6693\n  ]\n}',
        "Chile",
        None,
        None,
        -33.4489,
        -70.6693,
        id="pretty-printed-json",
    ),
    pytest.param(
        "{'Country': 'Italy', 'City': 'Rome', 'LOC': [41.9028, 12.4964]}",
        "Italy",
        None,
        "Rome",
        41.9028,
        12.4964,
        id="python-dict-LOC",
    ),
    pytest.param(
        '<answer>{"latitude": "35.6762", "longitude": "139.6503", "country": "Japan"}</answer>',
        "Japan",
        None,
        None,
        35.6762,
        139.6503,
        id="json-string-numbers",
    ),
    pytest.param(
        "<answer>\nCountry: Canada\nProvince: Quebec\nTown: Gaspé\nLatitude: 48.83\nLongitude: -64.48\n</answer>",
        "Canada",
        "Quebec",
        "Gaspé",
        48.83,
        -64.48,
        id="separate-lat-lon-lines",
    ),
    pytest.param(
        "<answer>Country: Japan  Prefecture: Hokkaido  Place: Biei Town  GPS: (43.45, 142.61)</answer>",
        "Japan",
        "Hokkaido",
        "Biei Town",
        43.45,
        142.61,
        id="one-line-labels",
    ),
    pytest.param(
        "<answer>Country: USA\nAdmin1: California\nCity: Los Angeles\nLocation: [34.05, -118.24]</answer>",
        "USA",
        "California",
        "Los Angeles",
        34.05,
        -118.24,
        id="admin1-location-brackets",
    ),
    pytest.param(
        "<answer>Country: Norway, City: Tromsø, 69.65, 18.96</answer>",
        "Norway",
        None,
        "Tromsø",
        69.65,
        18.96,
        id="inline-commas-pair-after-city",
    ),
    pytest.param(
        "<answer>Country: France\nCoordinates: N 48°51'24\" E 2°21'7\"</answer>",
        "France",
        None,
        None,
        48 + 51 / 60 + 24 / 3600,
        2 + 21 / 60 + 7 / 3600,
        id="dms-prefix-hemispheres",
    ),
    pytest.param(
        "<answer>Coordinates: 22.9068° S, 43.1729° W</answer>",
        None,
        None,
        None,
        -22.9068,
        -43.1729,
        id="south-west-degree-sign",
    ),
    pytest.param(
        "<answer>Coordinates: 151.2093 E, 33.8688 S</answer>",
        None,
        None,
        None,
        -33.8688,
        151.2093,
        id="hemispheres-override-order",
    ),
    pytest.param(
        "<answer>Coordinates (lon, lat): 2.3522, 48.8566</answer>",
        None,
        None,
        None,
        48.8566,
        2.3522,
        id="label-says-lon-lat",
    ),
    pytest.param(
        "<answer>Longitude: 2.3522\nLatitude: 48.8566</answer>",
        None,
        None,
        None,
        48.8566,
        2.3522,
        id="lon-line-before-lat-line",
    ),
    pytest.param(
        "I'd say latitude 64.1466 and longitude -21.9426, Reykjavik.",
        None,
        None,
        None,
        64.1466,
        -21.9426,
        id="prose-latitude-and-longitude",
    ),
    pytest.param(
        "<think>Maybe (10.0, 20.0)?</think> Final: Country: Peru (-12.0464, -77.0428)",
        "Peru",
        None,
        None,
        -12.0464,
        -77.0428,
        id="after-think-no-answer-tag",
    ),
    pytest.param(
        "<think>x</think>\nCountry: Egypt\nCity: Cairo\nCoordinates: (30.0444, 31.2357)\n</answer>",
        "Egypt",
        None,
        "Cairo",
        30.0444,
        31.2357,
        id="closing-tag-only",
    ),
    pytest.param(
        "<answer>Country: Namibia\nCity: n/a\nRegion: unknown\nCoordinates: (-22.56, 17.08)</answer>",
        "Namibia",
        None,
        None,
        -22.56,
        17.08,
        id="placeholder-values-dropped",
    ),
    pytest.param(
        "<answer>Country: NA\nCoordinates: (-22.56, 17.08)</answer>",
        "NA",
        None,
        None,
        -22.56,
        17.08,
        id="NA-is-namibia-not-missing",
    ),
    pytest.param(
        "<answer>Country: Spain.\nCity: Madrid (40.4168, -3.7038)\nCoordinates: (40.4168, -3.7038)</answer>",
        "Spain",
        None,
        "Madrid",
        40.4168,
        -3.7038,
        id="trailing-period-and-coordinates-in-name",
    ),
    pytest.param(
        "<answer>Coordinates: (148.85, 2.35)</answer>",
        None,
        None,
        None,
        None,
        None,
        id="lat-out-of-range",
    ),
    pytest.param(
        "<answer>Coordinates: (48.85, 200.0)</answer>",
        None,
        None,
        None,
        None,
        None,
        id="lon-out-of-range",
    ),
    pytest.param(
        "<answer>Coordinates: (151.2, -33.9)</answer>",
        None,
        None,
        None,
        None,
        None,
        id="lon-first-pair-is-read-lat-first-and-rejected",
    ),
    pytest.param(
        "<answer>Coordinates: (nan, 2.35)\nCountry: France</answer>",
        "France",
        None,
        None,
        None,
        None,
        id="nan-rejected",
    ),
    pytest.param(
        "<answer>Latitude: 2.35 E\nLongitude: 48.85 N</answer>",
        None,
        None,
        None,
        None,
        None,
        id="hemisphere-on-wrong-axis",
    ),
    pytest.param(
        "<answer>Coordinates: (48.85, 2.35, 35.0)</answer>",
        None,
        None,
        None,
        None,
        None,
        id="triple-is-not-a-pair",
    ),
    pytest.param(
        "<answer>Coordinates: (-33.9 N, 151.2 E)</answer>",
        None,
        None,
        None,
        None,
        None,
        id="sign-contradicts-hemisphere",
    ),
    pytest.param(
        "<answer>Country: Germany\nCoordinates: unknown</answer>",
        "Germany",
        None,
        None,
        None,
        None,
        id="no-coordinates",
    ),
    pytest.param(
        "<answer>Coordinates: (1e999, 2.35)</answer>", None, None, None, None, None, id="exponent-is-not-east"
    ),
    pytest.param("<answer>Coordinates: 1.5e-3, 2</answer>", None, None, None, None, None, id="scientific"),
    pytest.param(
        "<answer>Coordinates: - 33.9, 151.2</answer>",
        None,
        None,
        None,
        None,
        None,
        id="detached-sign-not-dropped",
    ),
    pytest.param("", None, None, None, None, None, id="empty"),
    pytest.param("Portugalambieykjav MongBangccuania", None, None, None, None, None, id="random-model-junk"),
]


@pytest.mark.parametrize(("text", "country", "region", "city", "lat", "lon"), CASES)
def test_real_model_style_outputs(text, country, region, city, lat, lon) -> None:
    pred = parse_prediction(text)
    assert (pred.country, pred.region, pred.city) == (country, region, city)
    if lat is None:
        assert pred.lat is None and pred.lon is None and not pred.has_coordinates
    else:
        assert pred.has_coordinates
        assert pred.lat == pytest.approx(lat, abs=1e-9) and pred.lon == pytest.approx(lon, abs=1e-9)


def test_last_answer_block_wins() -> None:
    text = (
        "<think>first guess</think><answer>Country: Italy\nCoordinates: (41.9, 12.5)</answer>\n"
        "Wait, the signs are Spanish.\n<answer>Country: Spain\nCoordinates: (40.4, -3.7)</answer>"
    )
    pred = parse_prediction(text)
    assert (pred.country, pred.lat, pred.lon, pred.answer_found) == ("Spain", 40.4, -3.7, True)
    # an empty trailing block does not erase the answer before it
    assert parse_prediction(text + "<answer> </answer>").country == "Spain"


def test_last_pair_wins_in_unlabelled_text_and_labels_beat_loose_pairs() -> None:
    assert parse_prediction("Either (10, 20) or maybe (30, 40).").lat == 30
    labelled = "<answer>Coordinates: (1.5, 2.5)\nAlternatives: (3.5, 4.5)</answer>"
    assert (parse_prediction(labelled).lat, parse_prediction(labelled).lon) == (1.5, 2.5)


def test_latitude_is_always_first_without_explicit_markers() -> None:
    for text in ("(10.5, 20.5)", "[10.5, 20.5]", "10.5, 20.5", "10.5 20.5", "Coordinates: 10.5; 20.5"):
        pred = parse_prediction(text)
        assert (pred.lat, pred.lon) == (10.5, 20.5), text


def test_answer_found_flag_and_think_is_not_parsed_when_answer_exists() -> None:
    text = "<think>Country: Wrong\n(1, 1)</think><answer>Country: Right</answer>"
    pred = parse_prediction(text)
    assert pred.answer_found and pred.country == "Right" and not pred.has_coordinates
    assert not parse_prediction("Country: Right").answer_found


@pytest.mark.parametrize("value", [None, 5, 4.2, ["<answer>(1, 2)</answer>"], {"a": 1}, object()])
def test_non_text_input_gives_empty_prediction(value) -> None:
    assert parse_prediction(value) == Prediction()


def test_bytes_are_decoded() -> None:
    assert parse_prediction(b"Coordinates: (1.5, 2.5)").lat == 1.5
    assert parse_prediction(b"\xff\xfe Coordinates: (1.5, 2.5)").lon == 2.5


def test_overlong_name_is_dropped() -> None:
    long_name = "x" * (MAX_NAME_CHARS + 1)
    assert parse_prediction(f"Country: {long_name}").country is None
    assert parse_prediction(f"Country: {'x' * MAX_NAME_CHARS}").country == "x" * MAX_NAME_CHARS


def test_extract_answer_and_find_coordinate_pairs() -> None:
    assert extract_answer("no tags") is None
    assert extract_answer("<answer>a</answer><answer>b</answer>") == "b"
    assert extract_answer("<think>t</think> x </answer>") == " x "
    assert extract_answer("<answer> open") == " open"
    assert find_coordinate_pairs("(1, 2) and 3 4 5 then 6 N 7 W") == [(1.0, 2.0), (6.0, -7.0)]
    assert find_coordinate_pairs("2 E 3 N") == [(3.0, 2.0)]
    assert find_coordinate_pairs("2 E 3 E") == []
    assert find_coordinate_pairs("2, 1e3") == [] and find_coordinate_pairs("1.5e-3, 2") == []


_NAME = st.from_regex(r"[A-Z][a-zà-ÿ]{0,12}(?:[ -][A-Z][a-zà-ÿ]{0,12}){0,2}", fullmatch=True)
_LAT = st.floats(-90, 90, allow_nan=False)
_LON = st.floats(-180, 180, allow_nan=False)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(_NAME, _NAME, _NAME, _LAT, _LON)
def test_round_trip_of_render_answer(country: str, region: str, city: str, lat: float, lon: float) -> None:
    assume(
        all(
            name.lower() not in {"none", "null", "nil", "unknown", "unsure", "unclear", "tbd"}
            for name in (country, region, city)
        )
    )
    pred = parse_prediction(render_answer(country, region, city, lat, lon))
    assert (pred.country, pred.region, pred.city) == (country, region, city)
    assert pred.lat == pytest.approx(lat, abs=5.1e-7) and pred.lon == pytest.approx(lon, abs=5.1e-7)
    assert pred.answer_found


# Fragments real completions are made of, so random strings hit the parser's branches, not just junk.
_FRAGMENTS = st.sampled_from(
    [
        "<answer>",
        "</answer>",
        "<think>",
        "</think>",
        "< Answer >",
        "Country:",
        "Region:",
        "State:",
        "City:",
        "Coordinates:",
        "Latitude:",
        "Longitude:",
        "lat",
        "lon",
        '"lat":',
        '"coordinates": [',
        "**",
        "{",
        "}",
        "[",
        "]",
        "(",
        ")",
        ",",
        ", ",
        ";",
        " ",
        " ",
        "\n",
        "°",
        "'",
        '"',
        "N",
        "S",
        "E",
        "W",
        "-",
        "+",
        ".",
        "48.85",
        "2.35",
        "-33.9",
        "151.2",
        "999",
        "1e999",
        "nan",
        "90",
        "180",
        "-180",
        "0",
        "59'",
        "60'",
        "Paris",
        "unknown",
        "n/a",
        "\\u00e3",
        "```json",
        "and",
        "\u2212",
        "x",
        "é",
        "\t",
        ":",
        "=",
        "\\",
        "Candidate:",
        "Candidate #:",
        "none",
        "#",
        "3",
        "no.",
    ]
)
_NUMBER_TEXT = st.one_of(st.floats().map(str), st.integers(-1000, 1000).map(str), _FRAGMENTS)
_TEMPLATED = st.builds(
    "<answer>{}: {}\nCoordinates: ({}{}{}{})</answer>".format,
    st.sampled_from(["Country", "City", "Lat", '"lat"', "GPS"]),
    st.text(max_size=8),
    _NUMBER_TEXT,
    _FRAGMENTS,
    _NUMBER_TEXT,
    _FRAGMENTS,
)
_TEXTS = st.one_of(st.text(max_size=40), st.lists(_FRAGMENTS, max_size=24).map("".join), _TEMPLATED)


@settings(max_examples=10_000, deadline=None, derandomize=True)
@given(_TEXTS)
def test_parser_never_raises_and_returns_valid_values(text: str) -> None:
    pred = _parse(text)  # the unguarded parser: a bug here must fail the test, not be swallowed
    if pred.has_coordinates:
        assert math.isfinite(pred.lat) and math.isfinite(pred.lon)
        assert -90 <= pred.lat <= 90 and -180 <= pred.lon <= 180
    else:
        assert pred.lat is None and pred.lon is None
    for name in (pred.country, pred.region, pred.city):
        assert name is None or (isinstance(name, str) and 0 < len(name) <= MAX_NAME_CHARS)
    assert pred.candidate is None or (isinstance(pred.candidate, int) and 0 <= pred.candidate <= MAX_CANDIDATE)


MEGABYTE = 1 << 20
ADVERSARIAL = {
    "brackets": "[" * MEGABYTE,
    "parens": "(" * MEGABYTE,
    "braces": "{" * MEGABYTE,
    "digits": "7" * MEGABYTE,
    "decimals": "1.5, " * (MEGABYTE // 5),
    "open-tags": "<answer>" * (MEGABYTE // 8),
    "open-tag-then-brackets": "<answer>" + "[" * MEGABYTE,
    "close-tags": "</answer>" * (MEGABYTE // 9),
    "labels": "Country: " * (MEGABYTE // 9),
    "label-lines": "**Coordinates:** \n" * (MEGABYTE // 18),
    "degrees": "1° " * (MEGABYTE // 3),
    "hemispheres": "N 1 E " * (MEGABYTE // 6),
    "quotes": '"' * MEGABYTE,
    "spaces-after-lt": "<" + " " * MEGABYTE,
    "pair-gaps": "1 and lon: " * (MEGABYTE // 11),
    "candidate-labels": "Candidate: #" * (MEGABYTE // 12),
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_adversarial_megabyte_inputs_finish(name: str) -> None:
    pred = parse_prediction(ADVERSARIAL[name])
    assert isinstance(pred, Prediction)
    assert _parse(ADVERSARIAL[name]) == pred  # it finished without the safety net


def test_answer_at_the_end_of_a_huge_completion_is_still_read() -> None:
    text = "blah " * (MEGABYTE // 5) + render_answer("Chile", "Santiago", "Santiago", -33.45, -70.67)
    pred = parse_prediction(text)
    assert (pred.country, pred.lat, pred.lon) == ("Chile", -33.45, -70.67)


# ------------------------------------------------------------------------------------------ the Candidate line


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Candidate: 3", 3),
        ("Candidate: #3", 3),
        ("**Candidate:** 12", 12),
        ("candidate number: 2 (the Paris one)", 2),
        ("Candidate #: 4", 4),
        ("Candidate: no. 5", 5),
        ("Candidate: [1]", 1),
        ("Candidate: 3.", 3),
        ("Candidate: none", CANDIDATE_NONE),
        ("Candidate: None of them", CANDIDATE_NONE),
        ("candidate: neither", CANDIDATE_NONE),
        ("Candidate: -", CANDIDATE_NONE),
        ("Candidate: 0", None),
        ("Candidate: 3.5", None),
        ("Candidate: -3", None),
        ("Candidate: 100000", None),
        ("Candidate: Paris", None),
        ("Candidate:", None),
        ("Candidates: 3", None),  # not the label
        ("no candidate line at all", None),
    ],
)
def test_candidate_line_values(line: str, expected: int | None) -> None:
    text = f"<answer>\nCountry: France\nRegion: Ile-de-France\nCity: Paris\n{line}\nCoordinates: (48.85, 2.35)\n</answer>"
    pred = parse_prediction(text)
    assert pred.candidate == expected
    assert (pred.country, pred.city, pred.lat, pred.lon) == ("France", "Paris", 48.85, 2.35)


def test_candidate_label_ends_the_value_before_it_and_the_last_one_wins() -> None:
    pred = parse_prediction("<answer>City: Paris Candidate: 2\nCandidate: 4\nCoordinates: (48.85, 2.35)</answer>")
    assert pred.city == "Paris" and pred.candidate == 4
    # only the answer is read: a Candidate line in the reasoning does not count
    assert parse_prediction("<think>Candidate: 2 looks right</think><answer>(1, 2)</answer>").candidate is None


@settings(max_examples=300, deadline=None, derandomize=True)
@given(_NAME, _NAME, _NAME, _LAT, _LON, st.integers(0, MAX_CANDIDATE))
def test_round_trip_with_a_candidate_line(country: str, region: str, city: str, lat: float, lon: float, k: int) -> None:
    assume(all(name.lower() not in {"none", "null", "nil", "unknown", "unsure", "unclear", "tbd"}
               for name in (country, region, city)))
    pred = parse_prediction(render_answer(country, region, city, lat, lon, candidate=k))
    assert pred.candidate == k
    assert (pred.country, pred.region, pred.city) == (country, region, city)
    assert pred.lat == pytest.approx(lat, abs=5.1e-7) and pred.lon == pytest.approx(lon, abs=5.1e-7)
