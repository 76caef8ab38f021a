"""Loading and validating training records: every layout, .json arrays, each kind of bad input, skip_invalid."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_fixtures import contract_row, image_folder, make_jpeg, write_json_array, write_jsonl
from geo_r.data import DataConfigError, DataValidationError, load_records, pair_sources, readers, scan_records
from geo_r.data.report import MAX_LISTED_PROBLEMS
from geo_r.prompts import render_answer


def _load(tmp_path: Path, rows: list, **kwargs):
    """Write ``rows`` to tmp/data.jsonl next to tmp/imgs and load them."""
    folder = image_folder(tmp_path)
    data = write_jsonl(tmp_path / "data.jsonl", rows)
    return load_records(str(data), str(folder), **kwargs)


def _problems(tmp_path: Path, rows: list, **kwargs) -> DataValidationError:
    """The DataValidationError that loading ``rows`` raises."""
    with pytest.raises(DataValidationError) as info:
        _load(tmp_path, rows, **kwargs)
    return info.value


# ---------------------------------------------------------------- layouts


def test_contract_layout_fields_paths_and_passthrough(tmp_path: Path) -> None:
    row = contract_row(0, extra_field={"k": 1}, accu_reward_method="default")
    row["conversations"] = [
        {"from": "human", "value": "<image>Where is this?"},
        {"from": "gpt", "value": "target text"},
    ]
    records, report = _load(tmp_path, [row])
    (r,) = records
    assert r.layout == "contract" and r.id == "r0"
    assert (r.lat, r.lon) == (48.8566, 2.3522)
    assert (r.country, r.country_code, r.region, r.city) == ("France", "FR", "Ile-de-France", "Paris")
    assert r.images == [str(tmp_path / "imgs" / "0.jpg")] and os.path.isabs(r.images[0])
    assert r.question == "<image>Where is this?" and r.solution == "target text"
    assert r.extras == {"extra_field": {"k": 1}, "accu_reward_method": "default"}
    assert r.source.endswith("data.jsonl:1")
    assert report.layouts == {"contract": 1} and report.records_kept == 1 and report.n_errors == 0


def test_contract_layout_without_conversations_has_no_question(tmp_path: Path) -> None:
    (r,), _ = _load(tmp_path, [{"id": "x", "image": "1.jpg", "lat": "-33.5", "lon": 151}])
    assert r.question is None and r.solution is None
    assert (r.lat, r.lon) == (-33.5, 151.0)  # a decimal string is accepted
    assert r.country is None and r.city is None


def test_vlm_r1_layout_coordinates_from_gpt_turn(tmp_path: Path) -> None:
    row = {
        "id": 0,
        "image": "0.jpg",
        "conversations": [
            {"from": "human", "value": "<image>Where was this photo taken?"},
            {"from": "gpt", "value": "[48.8566, 2.3522]"},
        ],
    }
    (r,), report = _load(tmp_path, [row])
    assert r.layout == "vlm-r1" and r.id == "0"
    assert (r.lat, r.lon) == pytest.approx((48.8566, 2.3522))
    assert r.solution == "[48.8566, 2.3522]"
    assert r.question == "<image>Where was this photo taken?"
    assert report.layouts == {"vlm-r1": 1}


def test_vlm_r1_layout_contract_answer_fills_chain(tmp_path: Path) -> None:
    answer = render_answer("Japan", "Hokkaido", "Biei", 43.452002, 142.615358)
    row = {
        "image": "0.jpg",
        "conversations": [{"role": "user", "content": "<image>"}, {"role": "assistant", "content": answer}],
    }
    (r,), _ = _load(tmp_path, [row])
    assert (r.lat, r.lon) == pytest.approx((43.452002, 142.615358))
    assert (r.country, r.region, r.city) == ("Japan", "Hokkaido", "Biei")
    assert r.country_code is None
    assert r.solution == answer


@pytest.mark.parametrize(
    "solution",
    [
        [48.85, 2.35],
        "[48.85, 2.35]",
        "(48.85, 2.35)",
        " ( 48.85 ,2.35 ) ",
        "<answer> [48.85, 2.35] </answer>",
    ],
)
def test_geo_r_layout_solution_forms(tmp_path: Path, solution) -> None:
    row = {"id": 3, "image": "2.jpg", "problem": "Where was this photo taken?", "solution": solution}
    (r,), report = _load(tmp_path, [row])
    assert r.layout == "geo-r"
    assert (r.lat, r.lon) == pytest.approx((48.85, 2.35))
    assert r.question == "Where was this photo taken?"
    assert r.solution == (solution if isinstance(solution, str) else "[48.85, 2.35]")
    assert report.layouts == {"geo-r": 1}


def test_multi_image_records_and_placeholders(tmp_path: Path) -> None:
    rows = [
        contract_row(0, image=["0.jpg", "1.jpg"], problem="Compare <image> with <image>."),
        {"image": ["2.jpg", "3.jpg"], "problem": "no placeholders", "solution": [1, 2]},
    ]
    records, _ = _load(tmp_path, rows)
    assert [len(r.images) for r in records] == [2, 2]
    assert records[0].images[1].endswith(os.path.join("imgs", "1.jpg"))
    assert records[0].question == "Compare <image> with <image>."


def test_images_key_is_an_alias_and_absolute_paths_stay(tmp_path: Path) -> None:
    elsewhere = make_jpeg(tmp_path / "other" / "abs.jpg")
    rows = [{"images": [str(elsewhere)], "lat": 1, "lon": 2}]
    (r,), _ = _load(tmp_path, rows)
    assert r.images == [str(elsewhere)]


def test_json_array_file_reports_element_and_line(tmp_path: Path) -> None:
    folder = image_folder(tmp_path)
    rows = [contract_row(0), {"image": "1.jpg", "lat": 123, "lon": 0}, contract_row(2)]
    data = write_json_array(tmp_path / "data.json", rows, indent=2)
    with pytest.raises(DataValidationError) as info:
        load_records(str(data), str(folder))
    (problem,) = info.value.report.errors()
    assert problem.element == 1 and problem.kind == "bad_coordinates"
    text = data.read_text()
    expected_line = text[: text.index('"image": "1.jpg"')].count("\n")  # the '{' line of element 1
    assert problem.line == expected_line
    assert f"data.json:{expected_line} [element 1]: lat 123 is out of range" in str(info.value)
    records, report = load_records(str(data), str(folder), skip_invalid=True)
    assert [r.id for r in records] == ["r0", "r2"] and report.files[0].format == "json-array"


def test_format_comes_from_content_not_extension(tmp_path: Path) -> None:
    folder = image_folder(tmp_path)
    as_jsonl = write_jsonl(tmp_path / "lines.json", [contract_row(0), contract_row(1)])
    as_array = write_json_array(tmp_path / "array.jsonl", [contract_row(2)], indent=None)
    records, report = load_records(f"{as_jsonl}:{as_array}", str(folder))
    assert [r.id for r in records] == ["r0", "r1", "r2"]
    assert [f.format for f in report.files] == ["jsonl", "json-array"]


def test_several_files_paired_folders_and_single_folder(tmp_path: Path) -> None:
    make_jpeg(tmp_path / "a_imgs" / "x.jpg")
    make_jpeg(tmp_path / "b_imgs" / "x.jpg", size=(50, 50))
    a = write_jsonl(tmp_path / "a.jsonl", [contract_row(0, image="x.jpg")])
    b = write_jsonl(tmp_path / "b.jsonl", [contract_row(1, image="x.jpg")])
    records, report = load_records(f"{a}:{b}", f"{tmp_path / 'a_imgs'}:{tmp_path / 'b_imgs'}")
    assert [Path(r.images[0]).parent.name for r in records] == ["a_imgs", "b_imgs"]
    assert [f.records_kept for f in report.files] == [1, 1]
    # one folder serves every file (so b's record uses a_imgs/x.jpg)
    records, _ = load_records([str(a), str(b)], str(tmp_path / "a_imgs"))
    assert [Path(r.images[0]).parent.name for r in records] == ["a_imgs", "a_imgs"]


def test_empty_image_folder_means_data_file_directory(tmp_path: Path) -> None:
    make_jpeg(tmp_path / "ds" / "images" / "p.jpg")
    data = write_jsonl(tmp_path / "ds" / "train.jsonl", [contract_row(0, image="images/p.jpg")])
    for folders in ("", None):
        (r,), _ = load_records(str(data), folders)
        assert r.images == [str(tmp_path / "ds" / "images" / "p.jpg")]


def test_data_config_errors(tmp_path: Path) -> None:
    folder = image_folder(tmp_path)
    a = write_jsonl(tmp_path / "a.jsonl", [contract_row(0)])
    with pytest.raises(DataConfigError, match=r"3 data file\(s\) but 2 image folder\(s\)"):
        pair_sources(f"{a}:{a}:{a}", f"{folder}:{folder}")
    with pytest.raises(DataConfigError, match="data file not found: .*missing.jsonl"):
        load_records(f"{a}:{tmp_path / 'missing.jsonl'}", str(folder))
    with pytest.raises(DataConfigError, match="image folder not found: .*nowhere"):
        load_records(str(a), str(tmp_path / "nowhere"))
    with pytest.raises(DataConfigError, match="empty path"):
        pair_sources(f"{a}:", str(folder))
    empty = write_jsonl(tmp_path / "empty.jsonl", [])
    with pytest.raises(DataConfigError, match="no records"):
        load_records(str(empty), str(folder))


# ---------------------------------------------------------------- bad input, one kind at a time

BAD_CASES = [
    ("{not json", "malformed_json", "malformed JSON line"),
    ([1, 2], "malformed_json", "expected a JSON object, found array"),
    ({"image": "0.jpg", "foo": 1}, "unknown_layout", "fields found: foo, image"),
    ({"lat": 1, "lon": 2}, "bad_image_field", "no image"),
    ({"image": [], "lat": 1, "lon": 2}, "bad_image_field", "non-empty list"),
    ({"image": ["0.jpg", 7], "lat": 1, "lon": 2}, "bad_image_field", "image[1]"),
    ({"image": "nope.jpg", "lat": 1, "lon": 2}, "image_not_found", "image not found: "),
    ({"image": "garbage.jpg", "lat": 1, "lon": 2}, "image_unreadable", "image unreadable"),
    ({"image": "0.jpg", "lon": 2}, "missing_coordinates", "lat is missing"),
    ({"image": "0.jpg", "lat": "north", "lon": 2}, "bad_coordinates", "lat is not a number"),
    ({"image": "0.jpg", "lat": True, "lon": 2}, "bad_coordinates", "lat is not a number"),
    ('{"image": "0.jpg", "lat": NaN, "lon": 2}', "bad_coordinates", "lat is NaN"),
    ('{"image": "0.jpg", "lat": 1, "lon": Infinity}', "bad_coordinates", "out of range [-180, 180]"),
    ({"image": "0.jpg", "lat": -90.5, "lon": 2}, "bad_coordinates", "out of range [-90, 90]"),
    ({"image": "0.jpg", "lat": 1, "lon": 180.01}, "bad_coordinates", "out of range [-180, 180]"),
    (
        {
            "image": "0.jpg",
            "conversations": [{"from": "human", "value": "<image>?"}, {"from": "gpt", "value": "Paris"}],
        },
        "missing_coordinates",
        "holds no coordinates",
    ),
    (
        {"image": "0.jpg", "conversations": [{"from": "human", "value": "hi"}]},
        "missing_coordinates",
        "no gpt turn",
    ),
    ({"image": "0.jpg", "solution": "somewhere"}, "missing_coordinates", "is not a [lat, lon] pair"),
    ({"image": "0.jpg", "solution": [1, 2, 3]}, "missing_coordinates", "is not a [lat, lon] pair"),
    ({"image": "0.jpg", "solution": [95, 2]}, "bad_coordinates", "solution latitude 95"),
    (
        {"image": "0.jpg", "lat": 1, "lon": 2, "problem": "<image><image>"},
        "placeholder_mismatch",
        "2 <image>",
    ),
    (
        {"image": "0.jpg", "lat": 1, "lon": 2, "conversations": {"from": "human"}},
        "bad_conversations",
        "list of turns",
    ),
    (
        {"image": "0.jpg", "lat": 1, "lon": 2, "conversations": [{"from": "bot", "value": "x"}]},
        "bad_conversations",
        "speaker 'bot'",
    ),
    (
        {
            "image": "0.jpg",
            "lat": 1,
            "lon": 2,
            "conversations": [
                {"from": "human", "value": "a"},
                {"from": "gpt", "value": "b"},
                {"from": "human", "value": "c"},
            ],
        },
        "bad_conversations",
        "2 human turns",
    ),
    (
        {"image": "0.jpg", "lat": 1, "lon": 2, "conversations": [{"from": "human", "value": 3}]},
        "bad_conversations",
        "must be a string",
    ),
    ({"image": "0.jpg", "lat": 1, "lon": 2, "city": 12}, "bad_field", "city must be a string"),
    ({"image": "0.jpg", "lat": 1, "lon": 2, "id": [1]}, "bad_field", "id must be a string or an integer"),
    ({"image": "0.jpg", "problem": 5, "solution": [1, 2]}, "bad_field", "problem must be a string"),
]


@pytest.mark.parametrize(
    ("row", "kind", "text"), BAD_CASES, ids=[c[1] + "-" + str(i) for i, c in enumerate(BAD_CASES)]
)
def test_each_bad_input_is_located_and_counted(tmp_path: Path, row, kind: str, text: str) -> None:
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "garbage.jpg").write_bytes(b"definitely not a jpeg")
    err = _problems(tmp_path, [contract_row(0), row])
    report = err.report
    assert report.error_counts == {kind: 1}
    (problem,) = report.errors()
    assert problem.line == 2 and problem.file.endswith("data.jsonl")
    assert text in problem.message
    assert f"data.jsonl:2: {problem.message}" in str(err)
    assert f"({kind}: 1)" in str(err)
    records, report = _load(tmp_path, [contract_row(0), row], skip_invalid=True)
    assert [r.id for r in records] == ["r0"]
    assert (report.records_read, report.records_kept, report.records_invalid) == (2, 1, 1)


def test_all_problems_are_collected_in_one_pass(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    rows = [
        "{bad",
        {"image": "nope.jpg", "lat": 100, "lon": "x"},
        {"foo": 1},
        contract_row(0),
        contract_row(1),
    ]
    err = _problems(tmp_path, rows)
    report = err.report
    # one record can have several problems: line 3 has a missing image and two bad coordinates
    assert report.error_counts == {
        "malformed_json": 1,
        "image_not_found": 1,
        "bad_coordinates": 2,
        "unknown_layout": 1,
    }
    assert [p.line for p in report.errors()] == [1, 2, 2, 2, 3]
    assert (report.records_read, report.records_invalid, report.records_kept) == (5, 3, 2)
    assert str(err).startswith("5 problem(s) in 3 of 5 record(s)")


def test_error_message_lists_the_first_problems_and_counts_the_rest(tmp_path: Path) -> None:
    rows = [{"image": "0.jpg", "lat": 91 + i, "lon": 0} for i in range(MAX_LISTED_PROBLEMS + 7)]
    err = _problems(tmp_path, rows)
    msg = str(err)
    assert msg.count("out of range") == MAX_LISTED_PROBLEMS
    assert "... and 7 more" in msg
    assert f"data.jsonl:{MAX_LISTED_PROBLEMS}:" in msg and f"data.jsonl:{MAX_LISTED_PROBLEMS + 1}:" not in msg


def test_skip_invalid_logs_counts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows = [contract_row(0), {"image": "0.jpg", "lat": 1}, "oops", contract_row(1)]
    with caplog.at_level(logging.WARNING, logger="geo_r.data"):
        records, report = _load(tmp_path, rows, skip_invalid=True)
    assert len(records) == 2 and report.records_invalid == 2
    assert "dropped 2 of 4 record(s)" in caplog.text
    assert "missing_coordinates: 1" in caplog.text and "malformed_json: 1" in caplog.text


def test_skip_invalid_with_nothing_left_still_raises(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError):
        _load(tmp_path, ["nope", {"x": 1}], skip_invalid=True)


def test_duplicate_ids_warn_and_keep(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="geo_r.data"):
        records, report = _load(tmp_path, [contract_row(0), contract_row(1, id="r0")])
    assert [r.id for r in records] == ["r0", "r0"]
    assert report.n_errors == 0 and report.warning_counts == {"duplicate_id": 1}
    (warning,) = report.warnings()
    assert warning.line == 2 and "first at" in warning.message and "data.jsonl:1" in warning.message
    assert "duplicate_id" in caplog.text


def test_missing_ids_get_file_and_line(tmp_path: Path) -> None:
    rows = [{"image": "0.jpg", "lat": 1, "lon": 2}, {"image": "1.jpg", "lat": 1, "lon": 2}]
    records, report = _load(tmp_path, rows)
    assert [r.id for r in records] == ["data.jsonl:1", "data.jsonl:2"] and report.n_warnings == 0


def test_check_images_false_skips_the_file_system(tmp_path: Path) -> None:
    rows = [{"image": "nope.jpg", "lat": 1, "lon": 2}]
    with pytest.raises(DataValidationError, match="image not found"):
        _load(tmp_path, rows)
    (r,), report = _load(tmp_path, rows, check_images=False)
    assert r.images[0].endswith("nope.jpg") and report.images_checked == 0


def test_images_of_invalid_records_are_checked_too(tmp_path: Path) -> None:
    err = _problems(tmp_path, [{"image": "nope.jpg", "lat": 95, "lon": 2}])
    assert err.report.error_counts == {"bad_coordinates": 1, "image_not_found": 1}


def test_shared_images_are_checked_once(tmp_path: Path) -> None:
    rows = [contract_row(i, image="0.jpg") for i in range(5)] + [contract_row(9, image=["1.jpg", "0.jpg"])]
    _, report = _load(tmp_path, rows)
    assert report.images_checked == 2


def test_image_checks_on_a_thread_pool_match_serial(tmp_path: Path) -> None:
    folder = image_folder(tmp_path, n=3)
    rows = [contract_row(i, image=f"{i}.jpg") for i in range(600)]  # 597 of 600 missing (3 thread tasks)
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    _, serial = scan_records(pair_sources(str(data), str(folder)), image_check_workers=1)
    _, pooled = scan_records(pair_sources(str(data), str(folder)), image_check_workers=4)
    assert serial.error_counts == pooled.error_counts == {"image_not_found": 597}
    assert [str(p) for p in serial.problems] == [str(p) for p in pooled.problems]


# ---------------------------------------------------------------- region chains


def test_derive_chains_fills_only_missing_fields(tmp_path: Path) -> None:
    rows = [
        {"id": "tokyo", "image": "0.jpg", "lat": 35.6895, "lon": 139.6917},
        {
            "id": "kept",
            "image": "1.jpg",
            "lat": 48.8566,
            "lon": 2.3522,
            "country": "La France",
            "country_code": "FR",
        },
        {"id": "border", "image": "2.jpg", "lat": 48.8566, "lon": 2.3522, "country_code": "DE"},
    ]
    records, report = _load(tmp_path, rows, derive_chains=True)
    tokyo, kept, border = records
    assert tokyo.country_code == "JP" and tokyo.country == "Japan"
    assert tokyo.region is not None and tokyo.city is not None
    assert kept.country == "La France" and kept.country_code == "FR" and kept.region is not None
    # a chain never mixes two countries: the geocoder says FR, the record DE -> nothing is filled
    assert border.country_code == "DE" and border.region is None and border.country is None
    assert report.chains_derived == 3
    untouched, _ = _load(tmp_path, rows)
    assert untouched[0].country is None


# ---------------------------------------------------------------- readers


def test_json_array_syntax_error_keeps_earlier_records_and_names_the_line(tmp_path: Path) -> None:
    folder = image_folder(tmp_path)
    text = "[\n" + json.dumps(contract_row(0)) + ",\n" + json.dumps(contract_row(1)) + ",\n{oops}\n]\n"
    data = tmp_path / "broken.json"
    data.write_text(text)
    with pytest.raises(DataValidationError) as info:
        load_records(str(data), str(folder))
    (problem,) = info.value.report.errors()
    assert problem.kind == "malformed_json" and problem.line == 4 and problem.element == 2
    records, _ = load_records(str(data), str(folder), skip_invalid=True)
    assert [r.id for r in records] == ["r0", "r1"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2", "file ends before ']'"),
        ("[1, 2,]", "Expecting value"),
        ("[1 2]", "expected ',' or ']'"),
        ("[1] x", "after the closing ']'"),
    ],
)
def test_json_array_structure_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "x.json"
    path.write_text(text)
    raws = list(readers.iter_raw_records(path))
    assert raws[-1].fatal and message in (raws[-1].error or "")


def test_jsonl_reader_skips_blank_lines_and_handles_bom_and_bad_utf8(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n\n   \n{"b": "\xff"}\n{"c": 3}\n')
    raws = list(readers.iter_raw_records(path))
    assert [(r.line, r.value) for r in raws if r.error is None] == [(1, {"a": 1}), (5, {"c": 3})]
    (bad,) = [r for r in raws if r.error]
    assert bad.line == 4 and "UTF-8" in bad.error


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(
        st.one_of(
            st.dictionaries(
                st.text(min_size=1, max_size=5),
                st.one_of(
                    st.integers(-(10**6), 10**6),
                    st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=8),
                ),
                max_size=4,
            ),
            # top-level scalars: a number cut at a chunk end still parses, so the reader must read on
            st.integers(-(10**9), 10**9),
            st.floats(allow_nan=False, allow_infinity=False),
        ),
        max_size=12,
    ),
    indent=st.sampled_from([None, 0, 2]),
    chunk=st.integers(min_value=1, max_value=40),
)
def test_streamed_json_array_equals_json_load(tmp_path_factory, values, indent, chunk) -> None:
    """Whatever the chunk size (numbers and strings cut at chunk ends), streaming gives json.load's values,
    and each element's line is where its text starts."""
    path = tmp_path_factory.mktemp("arr") / "a.json"
    text = json.dumps(values, indent=indent)
    path.write_text(text, encoding="utf-8")
    old = readers._CHUNK
    readers._CHUNK = chunk
    try:
        raws = list(readers.iter_raw_records(path))
    finally:
        readers._CHUNK = old
    assert all(r.error is None for r in raws)
    assert [r.value for r in raws] == json.loads(text)
    assert [r.element for r in raws] == list(range(len(values)))
    if indent is not None:  # pretty-printed: element i starts on line 2 + lines of the elements before it
        line = 2
        for raw, value in zip(raws, values, strict=True):
            assert raw.line == line
            line += json.dumps(value, indent=indent).count("\n") + 1


def test_importing_geo_r_data_is_light() -> None:
    code = "import sys, geo_r.data; print(sorted(m for m in ('torch', 'datasets', 'transformers', 'PIL') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_kept_problems_are_capped_per_category_but_counts_are_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from geo_r.data import report as report_module

    monkeypatch.setattr(report_module, "MAX_KEPT_PROBLEMS", 3)
    rows = [contract_row(0, id="same") for _ in range(4)] + ["{bad"] * 5
    err = _problems(tmp_path, rows)
    report = err.report
    assert report.error_counts == {"malformed_json": 5} and report.warning_counts == {"duplicate_id": 3}
    assert len(report.errors()) == 3 and len(report.warnings()) == 3
    assert str(err).startswith("5 problem(s) in 5 of 9 record(s)") and "... and 2 more" in str(err)


def test_gc_paused_restores_the_collector_state() -> None:
    import gc

    from geo_r.data.gc_pause import gc_paused

    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        assert not gc.isenabled()
        raise RuntimeError("boom")
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # a caller's own pause is left in place
    finally:
        gc.enable()


def test_image_check_kinds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    from geo_r.data.images import check_image

    good = make_jpeg(tmp_path / "ok.jpg", size=(40, 30))
    assert check_image(str(good)) is None
    (tmp_path / "folder.jpg").mkdir()
    assert check_image(str(tmp_path / "folder.jpg")) == (
        "image_not_found",
        f"image is a directory: {tmp_path / 'folder.jpg'}",
    )
    truncated = tmp_path / "trunc.jpg"
    truncated.write_bytes(good.read_bytes()[:10])
    kind, message = check_image(str(truncated)) or ("", "")
    assert kind == "image_unreadable" and str(truncated) in message
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 40x30 = 1200 px > 2 x 100: a decompression bomb
    kind, message = check_image(str(good)) or ("", "")
    assert kind == "image_unreadable" and "too large" in message
