"""``geo-r validate``: exit codes and the printed summary, run through the real ``geo-r`` entry point."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_fixtures import contract_row, image_folder, write_json_array, write_jsonl
from geo_r.cli import main


def _files(tmp_path: Path, bad: bool) -> tuple[str, str]:
    """``a.jsonl`` (contract + VLM-R1) and ``b.json`` (Geo-R array); with ``bad``, a.jsonl gets 3 bad lines."""
    folder = image_folder(tmp_path)
    rows_a: list = [
        contract_row(0),
        {
            "id": "v",
            "image": "1.jpg",
            "conversations": [{"from": "human", "value": "<image>?"}, {"from": "gpt", "value": "[1.5, 2.5]"}],
        },
    ]
    if bad:
        rows_a += [
            "{truncated",
            {"image": "missing.jpg", "lat": 1, "lon": 2},
            {"image": "0.jpg", "lat": 91, "lon": 0},
        ]
    a = write_jsonl(tmp_path / "a.jsonl", rows_a)
    b = write_json_array(
        tmp_path / "b.json", [{"id": "g", "image": "2.jpg", "problem": "Where?", "solution": [3, 4]}]
    )
    return f"{a}:{b}", str(folder)


def test_clean_data_exits_0_with_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, folder = _files(tmp_path, bad=False)
    assert main(["validate", "--data_file_paths", data, "--image_folders", folder]) == 0
    out = capsys.readouterr().out
    assert "a.jsonl (jsonl;" in out and "2 read, 2 valid, 0 invalid; layouts: contract 1, vlm-r1 1" in out
    assert "b.json (json-array;" in out and "1 read, 1 valid, 0 invalid; layouts: geo-r 1" in out
    assert "Records: 3 read, 3 valid, 0 invalid; 3 distinct image(s) checked" in out
    assert "Region chains: 1 of 3 complete" in out and "--derive_chains" in out
    assert "Problems" not in out
    assert out.rstrip().endswith("Result: OK")


def test_problems_exit_1_with_kinds_and_locations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, folder = _files(tmp_path, bad=True)
    assert main(["validate", "--data_file_paths", data, "--image_folders", folder]) == 1
    out = capsys.readouterr().out
    assert "5 read, 2 valid, 3 invalid" in out
    assert "Problems: 3 (" in out
    for kind, where in (
        ("malformed_json", "a.jsonl:3:"),
        ("image_not_found", "a.jsonl:4:"),
        ("bad_coordinates", "a.jsonl:5:"),
    ):
        assert f"  {kind} (1):" in out
        assert where in out
    assert "Result: FAIL: 3 invalid record(s)" in out and "(3 would remain)" in out


def test_skip_invalid_exits_0_when_records_remain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, folder = _files(tmp_path, bad=True)
    assert main(["validate", "--data_file_paths", data, "--image_folders", folder, "--skip_invalid"]) == 0
    out = capsys.readouterr().out
    assert "Problems: 3" in out and "Result: OK with --skip_invalid: 3 record(s) would be dropped" in out
    only_bad = write_jsonl(tmp_path / "bad.jsonl", ["nope"])
    assert main(["validate", "--data_file_paths", str(only_bad), "--skip_invalid"]) == 1
    assert "Result: FAIL: no valid records" in capsys.readouterr().out


def test_no_check_images_and_max_examples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, folder = _files(tmp_path, bad=True)
    args = ["validate", "--data_file_paths", data, "--image_folders", folder, "--no_check_images"]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "image_not_found" not in out and "image check skipped (--no_check_images)" in out
    rows = [{"image": "0.jpg", "lat": 100 + i, "lon": 0} for i in range(4)]
    many = write_jsonl(tmp_path / "many.jsonl", rows)
    assert (
        main(["validate", "--data_file_paths", str(many), "--image_folders", folder, "--max_examples", "2"])
        == 1
    )
    out = capsys.readouterr().out
    assert "many.jsonl:2:" in out and "many.jsonl:3:" not in out and "... and 2 more" in out


def test_duplicate_ids_are_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = image_folder(tmp_path)
    data = write_jsonl(tmp_path / "d.jsonl", [contract_row(0), contract_row(1, id="r0")])
    assert main(["validate", "--data_file_paths", str(data), "--image_folders", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "Warnings: 1 (duplicate_id: 1)" in out and "d.jsonl:2: duplicate id 'r0'" in out


def test_derive_chains_reports_filled_chains(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, folder = _files(tmp_path, bad=False)
    assert main(["validate", "--data_file_paths", data, "--image_folders", folder, "--derive_chains"]) == 0
    assert "Region chains: 3 of 3 complete after deriving 2 offline" in capsys.readouterr().out


def test_config_errors_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, folder = _files(tmp_path, bad=False)
    assert (
        main(["validate", "--data_file_paths", data, "--image_folders", f"{folder}:{folder}:{folder}"]) == 1
    )
    assert "error: 2 data file(s) but 3 image folder(s)" in capsys.readouterr().out
    assert main(["validate", "--data_file_paths", str(tmp_path / "none.jsonl")]) == 1
    assert "data file not found" in capsys.readouterr().out


def test_help_documents_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["validate", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for flag in (
        "--data_file_paths",
        "--image_folders",
        "--skip_invalid",
        "--no_check_images",
        "--decode",
        "--derive_chains",
    ):
        assert flag in out
    assert "before any model is loaded" in " ".join(out.split())
