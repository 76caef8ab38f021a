"""Progress on long passes: a log line with rows, percent, rows/s and ETA off a terminal; the streaming scanner
reports duplicate ids exactly (also when id hashes collide) while keeping no records."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_fixtures import contract_row, image_folder, write_jsonl
from geo_r.data import load_records, pair_sources
from geo_r.data.progress import RowProgress
from geo_r.data.records import RecordScanner


def test_log_mode_prints_rows_percent_rate_and_eta(capsys: pytest.CaptureFixture[str]) -> None:
    bar = RowProgress("checking data", total_bytes=1000, mode="log", log_every_s=0.0)
    for i in range(1, 601):
        bar.update(1, position=i)
    bar.close()
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("[geo-r] checking data:")]
    assert lines and "rows/s" in lines[0] and "ETA" in lines[0] and "%" in lines[0]
    assert "600 rows" in lines[-1] and "done in" in lines[-1]
    assert RowProgress("x", total_rows=10, mode="off").fraction() == 0.0


def test_validate_shows_progress_off_a_terminal(tmp_path: Path, capsys, monkeypatch) -> None:
    import geo_r.data.progress as progress
    from geo_r.cli import main as cli_main

    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.0)
    folder = image_folder(tmp_path, 1)
    data = write_jsonl(tmp_path / "d.jsonl", [contract_row(i, image="0.jpg") for i in range(600)])
    assert cli_main(["validate", "--data_file_paths", str(data), "--image_folders", str(folder)]) == 0
    captured = capsys.readouterr()
    assert "geo-r validate:" in captured.err and "rows/s" in captured.err
    assert "Records: 600 read, 600 valid" in captured.out
    assert cli_main(["validate", "--data_file_paths", str(data), "--image_folders", str(folder),
                     "--no_progress"]) == 0
    assert "rows/s" not in capsys.readouterr().err


def test_duplicate_ids_across_chunks_and_hash_collisions(tmp_path: Path, monkeypatch) -> None:
    """Every record's hash made equal: all are candidates, and only true duplicates are reported."""
    folder = image_folder(tmp_path, 1)
    rows = [contract_row(i, image="0.jpg") for i in range(9)] + [contract_row(3, image="0.jpg")]
    rows.append(contract_row(5, image="0.jpg"))
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    expected = [f"{data}:10: duplicate id 'r3' (first at {data}:4)", f"{data}:11: duplicate id 'r5' (first at {data}:6)"]
    for collide in (False, True):
        if collide:
            monkeypatch.setattr(RecordScanner, "_note_id",
                                lambda self, rid, where: (self._id_hash.append(7), self._id_file.append(where.file_index),
                                                          self._id_line.append(where.line),
                                                          self._id_element.append(-1)))
        scanner = RecordScanner(pair_sources(str(data), str(folder)), chunk_size=3, progress="off")
        kept = sum(len(chunk) for chunk in scanner.chunks())
        assert kept == 11 and [str(p) for p in scanner.report.warnings()] == expected
    records, report = load_records(str(data), str(folder))
    assert len(records) == 11 and report.n_warnings == 2
