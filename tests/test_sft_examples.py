"""SFT examples: which answer is learned (auto / solution / render), placeholders, and what is skipped."""

from __future__ import annotations

import pytest

from geo_r.data.schema import GeoRecord
from geo_r.prompts import DEFAULT_QUESTION, render_answer
from geo_r.rewards.format import follows_contract
from geo_r.sft.examples import (
    FROM_SOLUTION,
    RENDERED,
    REPLACED,
    SKIP_INCOMPLETE_CHAIN,
    SKIP_MEDIA_PLACEHOLDER,
    SKIP_PLACEHOLDER_COUNT,
    build_sft_examples,
    choose_answer,
    question_with_placeholders,
)

CONTRACT_ANSWER = render_answer(
    "Japan", "Hokkaido", "Biei", 43.452002, 142.615358, think="Snow, wide fields and a Japanese road sign."
)


def _record(i: int = 0, **kw) -> GeoRecord:
    fields = dict(
        id=f"r{i}", images=[f"/data/img{i}.jpg"], lat=48.8566, lon=2.3522,
        country="France", country_code="FR", region="Ile-de-France", city="Paris", source=f"t.jsonl:{i + 1}",
    )
    fields.update(kw)
    return GeoRecord(**fields)


def test_auto_keeps_a_gpt_turn_in_the_answer_contract():
    answer, how = choose_answer(_record(solution=CONTRACT_ANSWER), "auto")
    assert how == FROM_SOLUTION and answer == CONTRACT_ANSWER


def test_auto_replaces_a_bare_coordinate_answer_with_the_rendered_chain():
    answer, how = choose_answer(_record(solution="[48.8566, 2.3522]"), "auto")
    assert how == REPLACED
    assert answer == render_answer("France", "Ile-de-France", "Paris", 48.8566, 2.3522)
    assert follows_contract(answer)


def test_solution_policy_keeps_any_gpt_turn_and_render_policy_ignores_it():
    record = _record(solution="It is Paris, at [48.8566, 2.3522].")
    assert choose_answer(record, "solution") == ("It is Paris, at [48.8566, 2.3522].", FROM_SOLUTION)
    answer, how = choose_answer(record, "render")
    assert how == RENDERED and "Coordinates: (48.856600, 2.352200)" in answer


def test_blank_solution_is_rendered_under_every_policy():
    for target in ("auto", "solution", "render"):
        answer, how = choose_answer(_record(solution="   "), target)
        assert how == RENDERED and follows_contract(answer)


def test_missing_country_name_comes_from_the_code_and_a_missing_city_skips():
    answer, _ = choose_answer(_record(country=None, country_code="NA", region="Khomas", city="Windhoek"), "render")
    assert "Country: Namibia" in answer
    assert choose_answer(_record(city=None), "auto") == (None, SKIP_INCOMPLETE_CHAIN)
    assert choose_answer(_record(country=None, country_code=None), "auto") == (None, SKIP_INCOMPLETE_CHAIN)


def test_unknown_target_is_refused():
    with pytest.raises(ValueError, match="unknown SFT target 'best'"):
        choose_answer(_record(), "best")


def test_question_placeholders_are_put_first_or_kept_in_place():
    assert question_with_placeholders("Where?", 2) == "<image><image>Where?"
    assert question_with_placeholders("A <image> then <image>?", 2) == "A <image> then <image>?"
    with pytest.raises(ValueError, match="1 <image> placeholder"):
        question_with_placeholders("<image> and?", 2)


def test_build_counts_answers_and_skips_with_a_first_example():
    records = [
        _record(0, solution=CONTRACT_ANSWER),
        _record(1, solution="[1.0, 2.0]"),
        _record(2),
        _record(3, region=None),
        _record(4, question="Where is this <video>?"),
        _record(5, question="<image><image> where?"),
    ]
    examples, report = build_sft_examples(records)
    assert [e.id for e in examples] == ["r0", "r1", "r2"]
    assert report.answers == {FROM_SOLUTION: 1, REPLACED: 1, RENDERED: 1}
    assert report.skipped == {SKIP_INCOMPLETE_CHAIN: 1, SKIP_MEDIA_PLACEHOLDER: 1, SKIP_PLACEHOLDER_COUNT: 1}
    assert report.first_skipped[SKIP_INCOMPLETE_CHAIN].startswith("t.jsonl:4:")
    assert "6 record(s) -> 3 SFT example(s)" in report.summary() and "skipped 3" in report.summary()
    # records without their own question get the GRPO question, images first
    assert examples[2].question == "<image>" + DEFAULT_QUESTION


def test_own_questions_are_kept_unless_replaced():
    records = [_record(0, question="<image>\nWhere was this taken?", system="Be brief.")]
    (kept,), _ = build_sft_examples(records, question="Q?")
    assert kept.question == "<image>\nWhere was this taken?" and kept.system == "Be brief."
    (replaced,), _ = build_sft_examples(records, question="Q?", replace_questions=True)
    assert replaced.question == "<image>Q?"


def test_image_placeholder_inside_an_answer_is_skipped():
    _, report = build_sft_examples([_record(solution="<image> looks like Paris")], target="solution")
    assert report.skipped == {SKIP_MEDIA_PLACEHOLDER: 1}
