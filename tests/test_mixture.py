"""Dataset mixtures (data_config/*.yaml): every sampling strategy's counts, grpo_rec.py's rounding, seeded
reproducibility, image folders, located yaml errors, and the shipped data_config/geo_example.yaml."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_fixtures import contract_row, make_jpeg, write_json_array, write_jsonl
from geo_r.data import DataConfigError, DataValidationError
from geo_r.data.mixture import (
    SamplingStrategy,
    is_mixture_config,
    load_mixture,
    parse_sampling_strategy,
    read_mixture,
)

REPO = Path(__file__).resolve().parents[1]


def _contract_file(root: Path, name: str, n: int, prefix: str) -> Path:
    """``root/name`` with n contract records ``{prefix}0..``; images ``root/imgs_{prefix}/i.jpg`` exist."""
    for i in range(n):
        make_jpeg(root / f"imgs_{prefix}" / f"{i}.jpg", size=(16 + i % 5, 16))
    rows = [contract_row(i, id=f"{prefix}{i}", image=f"{i}.jpg") for i in range(n)]
    return write_jsonl(root / name, rows)


def _geo_r_rows(n: int) -> list[dict]:
    """Geo-R's released layout: problem + solution [lat, lon], no id (ids become file:line)."""
    return [
        {"image": f"{i}.jpg", "problem": "Where is this?", "solution": [10.0 + i, 20.0 - i]} for i in range(n)
    ]


def _yaml(path: Path, entries: list[dict]) -> Path:
    """A mixture yaml with one ``datasets:`` item per dict (keys written as given)."""
    lines = ["datasets:"]
    for entry in entries:
        first = True
        for key, value in entry.items():
            lines.append(f"  {'- ' if first else '  '}{key}: {value}")
            first = False
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _ids(records) -> list[str]:
    return [r.id for r in records]


# ---------------------------------------------------------------- parsing the strategy text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("all", SamplingStrategy("all")),
        ("first:1000", SamplingStrategy("first", count=1000)),
        ("end:3000", SamplingStrategy("end", count=3000)),
        ("random:999", SamplingStrategy("random", count=999)),
        ("random:10%", SamplingStrategy("random", percent=Fraction(10))),
        ("first:12.5%", SamplingStrategy("first", percent=Fraction(25, 2))),
        (" End : 7 ", SamplingStrategy("end", count=7)),
        ("RANDOM:0", SamplingStrategy("random", count=0)),
    ],
)
def test_strategy_texts_parse(text: str, expected: SamplingStrategy) -> None:
    assert parse_sampling_strategy(text) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("frist:10", "unknown sampling_strategy"),
        ("last:5", "unknown sampling_strategy"),
        ("first", "needs a number"),
        ("random:", "needs a number"),
        ("all:5", "takes no number"),
        ("first:-5", "not a record count"),
        ("first:1e3", "not a record count"),
        ("random:ten%", "not a record count"),
        ("random:10%%", "not a record count"),
        ("first:10:20", "not a record count"),
        (1000, "must be a string"),
        (None, "must be a string"),
        ({"end": 3000}, "without a space after ':'"),
    ],
)
def test_bad_strategies_are_refused_with_the_reason(value, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_sampling_strategy(value)


def test_strategy_prints_as_written() -> None:
    for text in ("all", "first:3", "end:7", "random:10%", "random:12.5%"):
        assert str(parse_sampling_strategy(text)) == text


# ---------------------------------------------------------------- counts and selection vs grpo_rec.py


def _grpo_rec_count(amount: str, n: int) -> int:
    """grpo_rec.py's number: ``math.ceil(int(P) * len / 100)`` for ``P%``, else ``int(N)``."""
    if "%" in amount:
        return math.ceil(int(amount.split("%")[0]) * n / 100)
    return int(amount)


@pytest.mark.parametrize(
    ("text", "n", "expected"),
    [
        ("random:10%", 1005, 101),  # 100.5 rounds up
        ("first:33%", 10, 4),  # 3.3 rounds up
        ("end:1%", 1, 1),  # a non-zero percentage of a non-empty file keeps at least one record
        ("random:0%", 50, 0),
        ("first:100%", 7, 7),
        ("end:150%", 7, 7),  # capped at the file (with a warning in load_mixture)
        ("first:12.5%", 9, 2),  # 1.125 rounds up: fractional percentages go beyond grpo_rec.py, same rule
        ("random:999", 100, 100),
        ("all", 13, 13),
        ("end:0", 13, 0),  # grpo_rec.py's list[-0:] kept everything; nothing is what end:0 says
    ],
)
def test_counts(text: str, n: int, expected: int) -> None:
    assert parse_sampling_strategy(text).size(n) == expected


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["first", "end", "random"]), percent=st.integers(0, 100), n=st.integers(0, 5_000_000)
)
def test_percent_rounding_equals_grpo_rec(kind: str, percent: int, n: int) -> None:
    """Exact Fraction arithmetic gives grpo_rec.py's float ceil for every integer percentage."""
    strategy = parse_sampling_strategy(f"{kind}:{percent}%")
    assert strategy.size(n) == min(_grpo_rec_count(f"{percent}%", n), n)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 300), count=st.integers(1, 400), seed=st.integers(0, 2**32))
def test_selection_equals_grpo_rec_slicing(n: int, count: int, seed: int) -> None:
    """first:N is lst[:N], end:N is lst[-N:] (N >= 1), random:N is min(N, n) distinct records, in file order."""
    records = list(range(n))
    first = parse_sampling_strategy(f"first:{count}").select(n, random.Random(seed))
    end = parse_sampling_strategy(f"end:{count}").select(n, random.Random(seed))
    drawn = parse_sampling_strategy(f"random:{count}").select(n, random.Random(seed))
    assert [records[i] for i in first] == records[:count]
    assert [records[i] for i in end] == records[-count:]
    assert len(drawn) == min(count, n) and len(set(drawn)) == len(drawn)
    assert drawn == sorted(drawn) and all(0 <= i < n for i in drawn)


# ---------------------------------------------------------------- whole mixtures


@pytest.fixture()
def two_files(tmp_path: Path) -> dict[str, Path]:
    """a.jsonl: 20 contract records (ids a0..a19); b.json: a JSON array of 10 Geo-R records; both with images."""
    a = _contract_file(tmp_path, "a.jsonl", 20, "a")
    for i in range(10):
        make_jpeg(tmp_path / "imgs_b" / f"{i}.jpg")
    b = write_json_array(tmp_path / "b.json", _geo_r_rows(10))
    return {"root": tmp_path, "a": a, "b": b, "imgs_a": tmp_path / "imgs_a", "imgs_b": tmp_path / "imgs_b"}


def test_every_strategy_on_real_files(two_files: dict[str, Path]) -> None:
    f = two_files
    config = _yaml(
        f["root"] / "mix.yaml",
        [
            {"json_path": f["b"], "image_folder": f["imgs_b"]},  # no strategy: all
            {"json_path": f["a"], "image_folder": f["imgs_a"], "sampling_strategy": "first:7"},
            {"json_path": f["a"], "image_folder": f["imgs_a"], "sampling_strategy": "end:25%"},
            {"json_path": f["a"], "image_folder": f["imgs_a"], "sampling_strategy": "random:30%"},
            {"json_path": f["b"], "image_folder": f["imgs_b"], "sampling_strategy": "random:3"},
        ],
    )
    records, report = load_mixture(config, seed=7)
    assert [(e.records_available, e.records_selected) for e in report.entries] == [
        (10, 10),
        (20, 7),
        (20, 5),
        (20, 6),
        (10, 3),
    ]
    assert len(records) == report.records_selected == 31
    ids = _ids(records)
    assert ids[:10] == [f"b.json[{i}]" for i in range(10)]
    assert ids[10:17] == [f"a{i}" for i in range(7)]
    assert ids[17:22] == [f"a{i}" for i in range(15, 20)]
    drawn_a = ids[22:28]
    assert len(set(drawn_a)) == 6 and set(drawn_a) <= {f"a{i}" for i in range(20)}
    assert drawn_a == sorted(drawn_a, key=lambda s: int(s[1:])), "drawn records keep file order"
    # Geo-R records carry their coordinates from `solution`
    by_id = {r.id: r for r in records}
    assert (by_id["b.json[3]"].lat, by_id["b.json[3]"].lon) == (13.0, 17.0)
    assert by_id["b.json[3]"].layout == "geo-r"
    # only drawn records' images are checked, each distinct path once
    assert report.images_checked == 10 + len({i for i in ids if i.startswith("a")}) < 30


def test_random_draws_are_reproducible_per_seed_and_entry(two_files: dict[str, Path]) -> None:
    f = two_files
    entries = [
        {"json_path": f["a"], "image_folder": f["imgs_a"], "sampling_strategy": "random:5"},
        {"json_path": f["a"], "image_folder": f["imgs_a"], "sampling_strategy": "random:5"},
    ]
    config = _yaml(f["root"] / "mix.yaml", entries)
    first, _ = load_mixture(config, seed=42)
    again, _ = load_mixture(config, seed=42)
    other, _ = load_mixture(config, seed=43)
    assert _ids(first) == _ids(again)
    assert _ids(first) != _ids(other)
    assert _ids(first)[:5] != _ids(first)[5:], "the same file listed twice is drawn independently"
    # editing the second entry does not re-draw the first one
    edited = _yaml(f["root"] / "edited.yaml", [entries[0], {**entries[1], "sampling_strategy": "first:2"}])
    records, _ = load_mixture(edited, seed=42)
    assert _ids(records)[:5] == _ids(first)[:5]


def test_random_draw_is_the_same_in_another_process(two_files: dict[str, Path]) -> None:
    """The draw depends on --data_seed only: not on PYTHONHASHSEED, the process, or the rank."""
    f = two_files
    config = _yaml(
        f["root"] / "mix.yaml",
        [{"json_path": f["a"], "image_folder": f["imgs_a"], "sampling_strategy": "random:40%"}],
    )
    here = _ids(load_mixture(config, seed=5, check_images=False)[0])
    code = (
        "import json, sys; from geo_r.data.mixture import load_mixture; "
        "print(json.dumps([r.id for r in load_mixture(sys.argv[1], seed=5, check_images=False)[0]]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(config)], capture_output=True, text=True, check=True, env=env
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == here


def test_image_folder_entry_then_image_root_then_data_file_folder(tmp_path: Path) -> None:
    for folder in ("own", "root", "data"):
        make_jpeg(tmp_path / folder / "0.jpg")
    write_jsonl(tmp_path / "data" / "x.jsonl", [contract_row(0, id="x0", image="0.jpg")])
    x = tmp_path / "data" / "x.jsonl"
    config = _yaml(
        tmp_path / "m.yaml", [{"json_path": x, "image_folder": tmp_path / "own"}, {"json_path": x}]
    )
    with_root, _ = load_mixture(config, image_root=str(tmp_path / "root"))
    assert [r.images[0] for r in with_root] == [
        str(tmp_path / "own" / "0.jpg"),
        str(tmp_path / "root" / "0.jpg"),
    ]
    without_root, _ = load_mixture(config)
    assert without_root[1].images[0] == str(tmp_path / "data" / "0.jpg")
    with pytest.raises(DataConfigError, match="--image_root .*no such folder"):
        load_mixture(config, image_root=str(tmp_path / "nowhere"))


def test_relative_paths_are_taken_from_the_working_directory(
    two_files, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = two_files
    monkeypatch.chdir(f["root"])
    config = _yaml(
        f["root"] / "sub.yaml",
        [{"json_path": "a.jsonl", "image_folder": "imgs_a", "sampling_strategy": "end:2"}],
    )
    records, _ = load_mixture(config)
    assert _ids(records) == ["a18", "a19"]
    (f["root"] / "cfg").mkdir()
    nested = _yaml(f["root"] / "cfg" / "n.yaml", [{"json_path": "../a.jsonl"}])
    with pytest.raises(
        DataConfigError, match=r"n.yaml:2: data file not found: \.\./a.jsonl .*working directory"
    ):
        read_mixture(nested)


def test_only_drawn_images_are_checked_but_every_line_is_validated(tmp_path: Path, caplog) -> None:
    rows = [contract_row(i, id=f"r{i}", image=f"{i}.jpg") for i in range(6)]
    for i in range(6):
        if i != 4:  # line 5 (r4) points to a missing image
            make_jpeg(tmp_path / "imgs" / f"{i}.jpg")
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    first = _yaml(
        tmp_path / "first.yaml",
        [{"json_path": data, "image_folder": tmp_path / "imgs", "sampling_strategy": "first:3"}],
    )
    records, report = load_mixture(first)
    assert _ids(records) == ["r0", "r1", "r2"] and report.images_checked == 3

    every = _yaml(tmp_path / "all.yaml", [{"json_path": data, "image_folder": tmp_path / "imgs"}])
    with pytest.raises(DataValidationError, match=r"d.jsonl:5: image not found"):
        load_mixture(every)
    with caplog.at_level(logging.WARNING, logger="geo_r.data.mixture"):
        kept, report = load_mixture(every, skip_invalid=True)
    assert _ids(kept) == ["r0", "r1", "r2", "r3", "r5"]
    assert report.entries[0].images_failed == 1 and report.records_selected == 5
    assert "dropped 1 of 6 drawn record(s) with bad images" in caplog.text

    write_jsonl(data, [*rows[:5], "{not json"])  # a malformed line that first:2 would never draw
    two = _yaml(
        tmp_path / "two.yaml",
        [{"json_path": data, "image_folder": tmp_path / "imgs", "sampling_strategy": "first:2"}],
    )
    with pytest.raises(DataValidationError, match=r"d.jsonl:6: malformed JSON"):
        load_mixture(two)


def test_oversized_request_takes_all_with_a_warning_and_overlaps_are_reported(two_files, caplog) -> None:
    f = two_files
    config = _yaml(
        f["root"] / "m.yaml",
        [
            {"json_path": f["b"], "image_folder": f["imgs_b"], "sampling_strategy": "first:500"},
            {"json_path": f["b"], "image_folder": f["imgs_b"], "sampling_strategy": "end:4"},
        ],
    )
    with caplog.at_level(logging.INFO):
        records, report = load_mixture(config)
    assert len(records) == 14 and report.duplicate_ids == 4
    assert sum(r.name == "geo_r.data.records" and "loaded 10 record(s)" in r.message for r in caplog.records) == 1
    assert "asks for first:500 but" in caplog.text and "has 10 valid record(s)" in caplog.text
    assert "4 record(s) repeat an id" in caplog.text


def test_a_mixture_that_selects_nothing_is_an_error(two_files) -> None:
    f = two_files
    config = _yaml(
        f["root"] / "m.yaml",
        [{"json_path": f["a"], "image_folder": f["imgs_a"], "sampling_strategy": "end:0"}],
    )
    with pytest.raises(DataConfigError, match="selects no records"):
        load_mixture(config)


def test_yaml_problems_are_all_reported_with_their_lines(two_files) -> None:
    f = two_files
    config = f["root"] / "bad.yaml"
    config.write_text(
        "datasets:\n"
        f"  - json_path: {f['a']}\n"  # 2: fine
        "    sampling_strategy: frist:10\n"  # 3
        "  - json_path: missing.jsonl\n"  # 4
        f"  - json_path: {f['a']}\n"  # 5
        "    image_foler: x\n"  # unknown key, reported at the entry's line 5
        "  - sampling_strategy: all\n"  # 7: no json_path
        f"  - json_path: {f['a']}\n"  # 8
        "    image_folder: nowhere\n"  # 9
        "  - just text\n",  # 10
        encoding="utf-8",
    )
    with pytest.raises(DataConfigError) as info:
        read_mixture(config)
    text = str(info.value)
    assert text.startswith(f"6 problem(s) in dataset mixture {config}")
    for needle in (
        "bad.yaml:3: unknown sampling_strategy 'frist:10'",
        "bad.yaml:4: data file not found: missing.jsonl",
        "bad.yaml:5: unknown key(s) image_foler in entry 3; known keys: json_path, image_folder, sampling_strategy",
        "bad.yaml:7: entry 4 needs a json_path",
        "bad.yaml:9: image folder not found: nowhere",
        "bad.yaml:10: entry 6 must be a mapping",
    ):
        assert needle in text, needle


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("datasets:\n  - json_path: a\n   sampling_strategy: all\n", r"m.yaml:3: not valid YAML"),
        ("- json_path: a.jsonl\n", r"m.yaml:1: expected a mapping with a 'datasets:' list"),
        ("datasets: []\n", r"m.yaml:1: 'datasets' must be a non-empty list"),
        ("other: 1\ndatasets:\n  - json_path: a\n", r"m.yaml:1: unknown top-level key\(s\) other"),
        ("dataset:\n  - json_path: a\n", r"unknown top-level key\(s\) dataset"),
        ("datasets:\n  json_path: a\n", r"m.yaml:2: 'datasets' must be a non-empty list"),
    ],
)
def test_yaml_shape_errors(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "m.yaml"
    config.write_text(text, encoding="utf-8")
    with pytest.raises(DataConfigError, match=message):
        read_mixture(config)


def test_missing_yaml_and_mixture_names() -> None:
    with pytest.raises(DataConfigError, match="dataset mixture not found: nope.yaml"):
        read_mixture("nope.yaml")
    assert is_mixture_config("data_config/rec.yaml") and is_mixture_config("X.YML")
    assert not is_mixture_config("this_is_not_used") and not is_mixture_config(None)
    assert not is_mixture_config("train.jsonl")


# ---------------------------------------------------------------- the shipped example


def test_geo_example_yaml_works_with_the_demo_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """data_config/geo_example.yaml reads what run_scripts/run_grpo_quick.sh writes (outputs/demo/data, 32 photos)."""
    from geo_r.demo.toy_data import write_toy_dataset

    monkeypatch.chdir(tmp_path)
    train = write_toy_dataset(tmp_path / "outputs" / "demo" / "data", n=32, seed=0)
    records, report = load_mixture(REPO / "data_config" / "geo_example.yaml", seed=42)
    truth = {row["id"]: row for row in map(json.loads, train.read_text().splitlines())}
    assert [(e.records_available, e.records_selected) for e in report.entries] == [(32, 16), (32, 8)]
    assert _ids(records) == [f"toy_{i:05d}" for i in [*range(16), *range(24, 32)]]
    assert all((r.lat, r.lon) == (truth[r.id]["lat"], truth[r.id]["lon"]) for r in records)
    assert report.duplicate_ids == 0
