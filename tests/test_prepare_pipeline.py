"""The shared conversion pipeline and ``geo-r prepare``: batching (memory bounded by the batch), the summary and
skipped-rows list, interrupted runs, chain modes, conversations, and the command's exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from geo_r.cli import main
from geo_r.data import load_records
from geo_r.data.prepare import PrepareOptions, prepare, skipped_path
from geo_r.data.prepare import pipeline as pipeline_module
from geo_r.geo import reverse_geocode
from prepare_fixtures import (
    MP16PRO_HEADER,
    answer_of,
    convert,
    make_row,
    read_jsonl,
    touch_images,
    write_table,
)

CITIES = [(48.8566, 2.3522), (51.5074, -0.1278), (52.52, 13.405), (35.6762, 139.6503), (-33.8688, 151.2093),
          (40.7128, -74.006), (-22.9068, -43.1729), (64.1466, -21.9426), (-34.6037, -58.3816), (37.7749, -122.4194)]  # fmt: skip


def _csv(tmp_path: Path, n: int = 10) -> Path:
    rows = [[f"{i}.jpg", lat, lon] for i, (lat, lon) in enumerate(CITIES[:n])]
    return write_table(tmp_path / "photos.csv", ["image", "lat", "lon"], rows)


def test_rows_flow_in_bounded_batches_and_batching_does_not_change_the_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _csv(tmp_path)
    sizes: list[int] = []
    real = pipeline_module.complete_chains

    def spy(rows, mode="source"):
        sizes.append(len(rows))
        return real(rows, mode)

    monkeypatch.setattr(pipeline_module, "complete_chains", spy)
    convert("csv", tmp_path / "small.jsonl", input=path, batch_size=3)
    assert sizes == [3, 3, 3, 1]
    sizes.clear()
    convert("csv", tmp_path / "big.jsonl", input=path)
    assert sizes == [10]
    assert (tmp_path / "small.jsonl").read_bytes() == (tmp_path / "big.jsonl").read_bytes()


def test_summary_text_skip_list_and_stale_list_removal(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("image,lat,lon\na.jpg,48.8566,2.3522\nb.jpg,,2\nc.jpg,1000,1\nd.jpg,51.5,-0.12\n", encoding="utf-8")
    touch_images(tmp_path / "imgs", ["a.jpg", "b.jpg", "c.jpg"])
    out = tmp_path / "out.jsonl"
    summary = prepare("csv", PrepareOptions(input=path, images=tmp_path / "imgs", coordinate_order="lat_lon"), out)
    text = summary.format_text()
    assert "Rows: 4 read, 1 written, 3 skipped" in text
    assert f"missing_coordinates: {path}:3: latitude (column lat) is empty" in text
    assert "Images: 1 found (1 as written), 1 missing" in text
    assert "Top countries (1 in all): FR 1" in text
    lines = skipped_path(out).read_text(encoding="utf-8").splitlines()
    assert lines[0] == "where\treason\tdetail" and len(lines) == 4
    assert lines[3].startswith(f"{path}:5\timage_not_found\td.jpg not in ")
    assert json.loads(json.dumps(summary.to_dict()))["skipped"] == {
        "missing_coordinates": 1, "bad_coordinates": 1, "image_not_found": 1,
    }  # fmt: skip
    # a clean re-run removes the list of the earlier run
    prepare("csv", PrepareOptions(input=_csv(tmp_path, 2)), out)
    assert not skipped_path(out).exists() and len(read_jsonl(out)) == 2


def test_rows_that_are_not_utf8_are_skipped_alone(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes(b"image,lat,lon,city\na.jpg,48.85,2.35,Paris\nb.jpg,41.9,12.5,Rom\xe4\nc.jpg,52.5,13.4,Berlin\n")
    summary, records = convert("csv", tmp_path / "o.jsonl", input=path)
    assert [r["image"] for r in records] == ["a.jpg", "c.jpg"]
    assert summary.examples["malformed_row"] == [f"{path}:3: not valid UTF-8 (re-encode the file as UTF-8)"]


def test_an_interrupted_run_leaves_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "p.csv"
    path.write_text("image,lat,lon\na.jpg,48.85,2.35\nb.jpg,x,1\nc.jpg,51.5,-0.12\n", encoding="utf-8")
    real = pipeline_module.complete_chains
    calls = []

    def interrupted(rows, mode="source"):
        calls.append(len(rows))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(rows, mode)

    monkeypatch.setattr(pipeline_module, "complete_chains", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare("csv", PrepareOptions(input=path, coordinate_order="lat_lon", batch_size=1), tmp_path / "out.jsonl")
    assert calls == [1, 1]  # the first batch was written, the bad row listed, then the run stopped
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.csv"]  # no out.jsonl, .partial or skipped list


def test_geonames_mode_relabels_and_border_rows_stay_incomplete(tmp_path: Path) -> None:
    h = MP16PRO_HEADER
    rows = [
        make_row(h, IMG_ID="1.jpg", LAT="43.5883", LON="142.4669", city="美瑛町", state="Hokkaido", country_code="jp"),
        # Strasbourg labelled Germany by its source: the geocoder says France, so its gaps are not filled from France
        make_row(h, IMG_ID="2.jpg", LAT="48.5734", LON="7.7521", country_code="DE"),
    ]  # fmt: skip
    path = write_table(tmp_path / "m.csv", h, rows)
    summary, records = convert("mp16pro", tmp_path / "src.jsonl", input=path)
    assert records[0]["city"] == "美瑛町"
    assert (records[1]["country"], records[1]["country_code"]) == ("Germany", "DE") and "region" not in records[1]
    assert summary.chains.incomplete == 1 and "incomplete" in summary.format_text()
    summary, records = convert("mp16pro", tmp_path / "gn.jsonl", input=path, chains="geonames")
    biei = reverse_geocode(43.5883, 142.4669)[0]
    assert (records[0]["city"], records[0]["region"]) == (biei.city, biei.region)
    assert (records[1]["country_code"], records[1]["city"]) == ("FR", "Strasbourg")
    assert summary.chains.completed == 2 and summary.chains.incomplete == 0


def test_without_conversations_and_with_a_custom_question(tmp_path: Path) -> None:
    path = _csv(tmp_path, 2)
    _, plain = convert("csv", tmp_path / "plain.jsonl", input=path, conversations=False)
    assert "conversations" not in plain[0]
    loaded, _ = load_records(str(tmp_path / "plain.jsonl"), check_images=False)
    assert loaded[0].question is None and loaded[0].solution is None
    _, asked = convert("csv", tmp_path / "q.jsonl", input=path, question="Where is this?")
    assert asked[0]["conversations"][0] == {"from": "human", "value": "<image>Where is this?"}
    assert answer_of(asked[0]).endswith("Coordinates: (48.856600, 2.352200)\n</answer>")


def test_limit_and_progress_bar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    summary = prepare("csv", PrepareOptions(input=_csv(tmp_path), limit=4), tmp_path / "o.jsonl", progress=True)
    assert summary.rows_read == 4 and summary.written == 4
    assert "prepare csv" in capsys.readouterr().err


def test_cli_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _csv(tmp_path, 3)
    question = tmp_path / "q.txt"
    question.write_text("Guess the place.\n", encoding="utf-8")
    out, summary_json = tmp_path / "o.jsonl", tmp_path / "s.json"
    code = main(["prepare", "--format", "csv", "--input", str(path), "--out", str(out), "--question_file", str(question),
                 "--summary_json", str(summary_json), "--id_prefix", "x_", "--no_progress"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "Rows: 3 read, 3 written, 0 skipped" in printed and "Images: not checked" in printed
    records = read_jsonl(out)
    assert records[0]["id"] == "x_0.jpg" and records[0]["conversations"][0]["value"] == "<image>Guess the place."
    assert json.loads(summary_json.read_text(encoding="utf-8"))["written"] == 3


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prepare", "--format", "csv", "--input", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o.jsonl")]) == 1
    assert "input file not found" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("image,lat,lon\na.jpg,x,y\n", encoding="utf-8")
    assert main(["prepare", "--format", "csv", "--input", str(bad), "--out", str(tmp_path / "o.jsonl")]) == 1
    captured = capsys.readouterr()
    assert "bad_coordinates 1" in captured.out and "no rows written" in captured.err
    assert main(["prepare", "--format", "csv", "--input", str(bad), "--out", str(tmp_path / "o.jsonl"),
                 "--image_pattern", "x.jpg"]) == 1  # fmt: skip
    assert "must contain {id}" in capsys.readouterr().err
    assert main(["prepare", "--format", "csv", "--input", str(bad), "--out", str(bad)]) == 1
    assert "is the input itself" in capsys.readouterr().err and bad.read_text().startswith("image,lat,lon")
    with pytest.raises(SystemExit):
        main(["prepare", "--format", "parquet", "--input", str(bad), "--out", "o.jsonl"])
