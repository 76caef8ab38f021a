"""Retrieval candidates: the neighbours file reader, greedy clustering, attaching them to records, a record's own
``candidates`` field, the prompt text, and the SFT targets' Candidate line."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo_r.data import DataValidationError, load_records
from geo_r.data.candidates import (
    NeighboursFileError,
    attach_candidates,
    candidates_for,
    check_candidate_options,
    read_neighbours,
)
from geo_r.geo import haversine_km, parse_prediction
from geo_r.geo.candidates import (
    COPY_KM,
    NAME_KM,
    Candidate,
    Neighbour,
    candidate_target,
    candidates_from_column,
    cluster_neighbours,
    parse_candidates,
)
from geo_r.prompts import (
    CANDIDATE_INSTRUCTION,
    CANDIDATE_NAME_KM,
    CANDIDATES_HEADER,
    DEFAULT_QUESTION,
    question_with_candidates,
    render_candidates,
)
from geo_r.sft.examples import build_sft_examples

KM_PER_DEG_LAT = math.pi * 6371.0 / 180.0
EIFFEL = (48.858370, 2.294481)


def north(point: tuple[float, float], km: float) -> tuple[float, float]:
    """A point ``km`` due north of ``point``."""
    return point[0] + km / KM_PER_DEG_LAT, point[1]


def _write(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), encoding="utf-8")
    return path


def _toy(tmp_path: Path, n: int = 3) -> tuple[Path, Path]:
    from geo_r.demo.toy_data import write_toy_dataset

    data = write_toy_dataset(tmp_path / "toy", n=n, seed=0)
    return data, data.parent / "images"


def _neighbours_for(data: Path) -> list[dict[str, Any]]:
    """Per toy record: two photos 100 m and 300 m from it (one candidate), one 30 km away, one far."""
    out = []
    for line in data.read_text().splitlines():
        r = json.loads(line)
        p = (r["lat"], r["lon"])
        out.append({"id": r["id"], "extra": "ignored", "neighbours": [
            {"id": "g1", "lat": north(p, 0.1)[0], "lon": p[1], "score": 0.93, "author": "x"},
            {"id": "g2", "lat": north(p, 30)[0], "lon": p[1], "score": 0.90},
            {"id": "g3", "lat": north(p, 0.3)[0], "lon": p[1], "score": 0.88},
            {"id": "g4", "lat": -p[0], "lon": -p[1], "score": 0.5},
        ]})
    return out


# ------------------------------------------------------------------------------------------------ reading


def test_read_neighbours_keeps_wanted_ids_and_ignores_extra_keys(tmp_path: Path) -> None:
    path = _write(tmp_path / "n.jsonl", [
        {"id": "a", "neighbours": [{"id": "g", "lat": 1, "lon": 2, "score": 0.5, "extra": 1}]},
        "",
        {"id": 7, "neighbours": []},
        {"id": "b", "neighbours": [{"lat": -1.5, "lon": 179.9, "score": 1}]},
    ])
    found, lines = read_neighbours(path, {"a", "7"})
    assert lines == 3 and set(found) == {"a", "7"}
    assert found["a"] == [Neighbour("g", 1.0, 2.0, 0.5)] and found["7"] == []
    everything, _ = read_neighbours(path)
    assert everything["b"] == [Neighbour("", -1.5, 179.9, 1.0)]


def test_bad_lines_are_all_listed_with_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.jsonl", [
        {"id": "ok", "neighbours": []},
        "{not json",
        ["a", "list"],
        {"neighbours": []},
        {"id": "x", "neighbours": "none"},
        {"id": "y", "neighbours": [{"lat": 95, "lon": 0, "score": 0.1}]},
        {"id": "z", "neighbours": [{"lat": 1, "lon": 2, "score": float("nan")}]},
        {"id": "w", "neighbours": [{"lat": True, "lon": 2, "score": 0.3}]},
        {"id": "ok", "neighbours": []},
    ])
    with pytest.raises(NeighboursFileError) as err:
        read_neighbours(path)
    text = str(err.value)
    assert text.startswith(f"8 bad line(s) in the neighbours file {path}")
    for line, words in [(2, "not valid JSON"), (3, "expected a JSON object"), (4, "'id' must be"),
                        (5, "'neighbours' must be a list"), (6, "lat 95 is out of range"),
                        (7, "score must be a finite number"), (8, "lat must be a finite number"),
                        (9, "id 'ok' is also on line 1")]:
        assert f"{path}:{line}: " in text and words in text, (line, words, text)


def test_missing_file_and_bad_options() -> None:
    with pytest.raises(NeighboursFileError, match="no such file"):
        read_neighbours("/nonexistent/neighbours.jsonl")
    with pytest.raises(ValueError, match="--num_candidates must be an integer >= 1"):
        check_candidate_options(0, 1.0)
    with pytest.raises(ValueError, match="--candidate_radius_km must be a number of km >= 0"):
        check_candidate_options(3, float("nan"))


def test_a_photo_missing_from_the_file_names_both_files(tmp_path: Path) -> None:
    data, images = _toy(tmp_path)
    neighbours = _neighbours_for(data)
    path = _write(tmp_path / "n.jsonl", neighbours[1:])
    records, _ = load_records(str(data), str(images))
    with pytest.raises(NeighboursFileError) as err:
        attach_candidates(records, path)
    text = str(err.value)
    assert str(path) in text and f"{data}:1" in text and "'toy_00000'" in text and "1 of 3 photo(s)" in text


# ---------------------------------------------------------------------------------------------- clustering


def test_clustering_is_greedy_by_score_around_seeds() -> None:
    a, b = EIFFEL, north(EIFFEL, 5)
    ns = [
        Neighbour("5", *north(a, -0.9), 0.70),  # within 1 km of a's seed (south of it)
        Neighbour("1", *a, 0.95),
        Neighbour("2", *b, 0.90),
        Neighbour("3", *north(a, 1.5), 0.80),  # 1.5 km from the seed: a new candidate, chained or not
        Neighbour("4", *north(b, 0.2), 0.85),
        Neighbour("6", -10.0, 20.0, 0.60),  # would be a fourth candidate
    ]
    cands = cluster_neighbours(ns, num_candidates=3, radius_km=1.0)
    assert [(c.lat, c.lon) for c in cands] == [a, b, north(a, 1.5)]
    assert [c.photos for c in cands] == [2, 2, 1] and [c.score for c in cands] == [0.95, 0.90, 0.80]
    assert all(c.radius_km == 1.0 and c.country is None for c in cands)
    # a neighbour between two seeds joins the nearer one
    mid = cluster_neighbours([Neighbour("a", *a, 0.9), Neighbour("b", *north(a, 1.6), 0.8),
                              Neighbour("c", *north(a, 1.0), 0.7)], 5, 1.0)
    assert [c.photos for c in mid] == [1, 2]
    assert cluster_neighbours([], 3, 1.0) == []
    with pytest.raises(ValueError):
        cluster_neighbours(ns, 0, 1.0)


_POINT = st.tuples(st.floats(48.0, 48.1), st.floats(2.0, 2.15))
_NEIGHBOURS = st.lists(st.tuples(_POINT, st.floats(-1, 1)), max_size=40).map(
    lambda xs: [Neighbour(str(i), p[0], p[1], s) for i, (p, s) in enumerate(xs)]
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(_NEIGHBOURS, st.integers(1, 8), st.sampled_from([0.0, 0.5, 1.0, 3.0]))
def test_clustering_properties(ns: list[Neighbour], k: int, radius: float) -> None:
    cands = cluster_neighbours(ns, k, radius)
    assert len(cands) <= k and len(cands) == min(k, len(cands))
    if ns:
        best = max(ns, key=lambda n: n.score)
        assert (cands[0].lat, cands[0].lon, cands[0].score) == (best.lat, best.lon, best.score)
    assert [c.score for c in cands] == sorted((c.score for c in cands), reverse=True)
    for i, a in enumerate(cands):  # seeds are more than the radius apart
        for b in cands[i + 1:]:
            assert haversine_km(a.lat, a.lon, b.lat, b.lon) > radius - 1e-6
    assigned = sum(c.photos for c in cands)
    assert assigned <= len(ns)
    if len(cands) < k:  # nothing had to be dropped
        assert assigned == len(ns)
    for n in ns:  # every neighbour is within the radius of some seed, unless the K candidates were full
        near = min((haversine_km(n.lat, n.lon, c.lat, c.lon) for c in cands), default=math.inf)
        assert near <= radius + 1e-6 or len(cands) == k


# -------------------------------------------------------------------------------------------- attaching


def test_attach_clusters_names_and_counts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data, images = _toy(tmp_path)
    path = _write(tmp_path / "n.jsonl", [*_neighbours_for(data), {"id": "not_in_data", "neighbours": []}])
    records, _ = load_records(str(data), str(images))
    caplog.set_level("INFO")
    report = attach_candidates(records, path, num_candidates=2, radius_km=1.0)
    assert report.with_candidates == 3 and report.candidates == 6 and report.neighbours == 12
    assert report.settings() == {"file": str(path), "num_candidates": 2, "radius_km": 1.0}
    paris = records[0]
    assert paris.country == "France"
    c1, c2 = paris.candidates
    assert (c1.lat, c1.photos, c1.score) == (north((paris.lat, paris.lon), 0.1)[0], 2, 0.93)
    assert c2.photos == 1 and c2.score == 0.90
    assert c1.country == "France" and c1.region == "Ile-de-France" and c1.city  # offline reverse geocoding
    assert "3 of 3 record(s) got 6 candidate(s)" in caplog.text


def test_empty_neighbour_list_means_no_candidates_and_the_file_replaces_own(tmp_path: Path) -> None:
    data, images = _toy(tmp_path, n=2)
    rows = [json.loads(x) for x in data.read_text().splitlines()]
    rows[0]["candidates"] = [{"lat": 1.0, "lon": 2.0}]
    _write(data, rows)
    path = _write(tmp_path / "n.jsonl", [{"id": rows[0]["id"], "neighbours": []},
                                         {"id": rows[1]["id"], "neighbours": [{"lat": 1, "lon": 2, "score": 0.4}]}])
    records, _ = load_records(str(data), str(images))
    assert records[0].candidates == (Candidate(1.0, 2.0),)
    report = attach_candidates(records, path)
    assert records[0].candidates == () and len(records[1].candidates) == 1
    assert report.replaced_own == 1 and report.empty == [rows[0]["id"]]
    assert "1 with no neighbour keep the plain question" in report.summary()


def test_a_records_own_candidates_field_is_validated_with_file_and_line(tmp_path: Path) -> None:
    data, images = _toy(tmp_path, n=3)
    rows = [json.loads(x) for x in data.read_text().splitlines()]
    rows[0]["candidates"] = [{"lat": 35.68, "lon": 139.69, "country": "Japan", "region": "Tokyo", "city": "Tokyo",
                              "photos": 4, "score": 0.8, "radius_km": 2, "k": "ignored"}]
    rows[1]["candidates"] = [{"lat": 35.68, "lon": 239.69}]
    rows[2]["candidates"] = {"lat": 1}
    _write(data, rows)
    with pytest.raises(DataValidationError) as err:
        load_records(str(data), str(images))
    text = str(err.value)
    assert f"{data}:2" in text and "candidates[0]: lon 239.69 is out of range" in text
    assert f"{data}:3" in text and "candidates must be a list of objects" in text
    records, _ = load_records(str(data), str(images), skip_invalid=True)
    assert records[0].candidates == (Candidate(35.68, 139.69, "Japan", "Tokyo", "Tokyo", 4, 0.8, 2.0),)
    for bad, words in [([{"lat": 1, "lon": 2, "city": "<image>"}], "plain name"),
                       ([{"lat": 1, "lon": 2, "photos": 0}], "photos must be a positive integer"),
                       ([{"lat": 1, "lon": 2, "radius_km": -1}], "radius_km must be a positive"),
                       ([{"lat": 1, "lon": 2, "score": "high"}], "score must be a finite number"),
                       ([3], "must be an object")]:
        with pytest.raises(ValueError, match=words):
            parse_candidates(bad)


def test_candidates_column_values_are_read_leniently() -> None:
    good = Candidate(1.0, 2.0, "France", None, "Paris", 3, 0.5, 1.0)
    assert candidates_from_column([good.to_dict()]) == (good,)
    assert candidates_from_column(None) is None and candidates_from_column([]) is None
    assert candidates_from_column([good.to_dict(), {"lat": 100, "lon": 0}]) is None  # numbering would shift
    assert candidates_from_column("junk") is None


# ------------------------------------------------------------------------------------------------ prompt


def test_prompt_without_candidates_is_the_question_itself() -> None:
    assert question_with_candidates(DEFAULT_QUESTION, None) is DEFAULT_QUESTION
    assert question_with_candidates("<image>Where?", ()) == "<image>Where?"


def test_prompt_with_candidates_lists_them_after_the_question() -> None:
    cands = [Candidate(48.85837, 2.294481, "France", "Ile-de-France", "Paris", 12, 0.9134),
             Candidate(-33.8688, 151.2093, photos=1, score=None)]
    text = question_with_candidates("First <image> then <image>: where?", cands)
    assert text == (
        "First <image> then <image>: where?\n\n" + CANDIDATES_HEADER + "\n"
        "1. (48.858370, 2.294481) France / Ile-de-France / Paris; 12 photos, best similarity 0.91\n"
        "2. (-33.868800, 151.209300) unnamed place; 1 photo\n" + CANDIDATE_INSTRUCTION
    )
    assert text.endswith(render_candidates(cands))
    assert f"within {CANDIDATE_NAME_KM} km" in CANDIDATE_INSTRUCTION
    assert CANDIDATE_NAME_KM == NAME_KM  # the prompt states the rule the SFT targets and the reward apply


def test_candidate_line_of_sft_targets_follows_the_1_and_25_km_rule() -> None:
    truth = EIFFEL
    far, near, close = (10.0, 10.0), north(truth, 10), north(truth, 0.5)
    assert candidate_target([Candidate(*far)], *truth) == (0, *truth)
    assert candidate_target([], *truth) == (0, *truth)
    assert candidate_target([Candidate(*far), Candidate(*near)], *truth) == (2, *truth)
    assert candidate_target([Candidate(*near), Candidate(*close)], *truth) == (2, *close)
    assert candidate_target([Candidate(*north(truth, NAME_KM + 0.1))], *truth)[0] == 0
    assert candidate_target([Candidate(*north(truth, COPY_KM + 0.1))], *truth) == (1, *truth)


def test_sft_examples_with_candidates(tmp_path: Path) -> None:
    data, images = _toy(tmp_path, n=3)
    rows = [json.loads(x) for x in data.read_text().splitlines()]
    p = [(r["lat"], r["lon"]) for r in rows]
    rows[0]["candidates"] = [{"lat": 0.0, "lon": 0.0}, {"lat": north(p[0], 0.4)[0], "lon": p[0][1]}]  # copy 2
    rows[1]["candidates"] = [{"lat": north(p[1], 12)[0], "lon": p[1][1]}]  # name 1, true coordinates
    rows[2]["candidates"] = [{"lat": 0.0, "lon": 0.0}]  # none
    rows[2]["conversations"] = [{"from": "gpt", "value": (
        "<think> x </think>\n<answer>\nCountry: Kenya\nRegion: Nairobi Area\nCity: Nairobi\nCoordinates: (1, 2)\n"
        "</answer>")}]  # in the contract, but without the Candidate line its prompt asks for: replaced
    _write(data, rows)
    records, _ = load_records(str(data), str(images), derive_chains=True)
    examples, report = build_sft_examples(records)
    preds = [parse_prediction(e.answer) for e in examples]
    assert [x.candidate for x in preds] == [2, 1, 0]
    assert (preds[0].lat, preds[0].lon) == pytest.approx(north(p[0], 0.4), abs=1e-6)
    assert (preds[1].lat, preds[1].lon) == pytest.approx(p[1], abs=1e-6)
    assert (preds[2].lat, preds[2].lon) == pytest.approx(p[2], abs=1e-6)
    assert all(e.question.startswith("<image>" + DEFAULT_QUESTION + "\n\n" + CANDIDATES_HEADER) for e in examples)
    assert report.candidate_lines == {"copied": 1, "named": 1, "none": 1} and report.answers["replaced"] == 1
    assert "1 copy a candidate within 1 km, 1 name one within 25 km, 1 none" in report.summary()
    # a gpt turn with the Candidate line its prompt asks for is kept
    kept = examples[0].answer
    records[0].solution = kept
    again, report = build_sft_examples(records[:1])
    assert again[0].answer == kept and report.answers["solution"] == 1


def test_candidates_for_fills_chains_in_one_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    import geo_r.geo.regions as regions

    calls = []
    original = regions.reverse_geocode
    monkeypatch.setattr(regions, "reverse_geocode", lambda la, lo: calls.append(len(la)) or original(la, lo))
    lists = [[Neighbour("a", *EIFFEL, 0.9), Neighbour("b", 35.68, 139.69, 0.8)], [], [Neighbour("c", 1, 2, 0.1)]]
    out = candidates_for(lists, 5, 1.0)
    assert calls == [3] and [len(x) for x in out] == [2, 0, 1]
    assert out[0][0].country == "France" and out[0][1].country == "Japan"
