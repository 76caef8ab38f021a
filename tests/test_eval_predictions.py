"""The resumable predictions file: durable appends, a partial last line after a kill, clear errors for bad
lines, shard merging, and a generation loop that is interrupted and resumed without duplicates."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from geo_r.data.schema import GeoRecord
from geo_r.eval.predictions import (
    PREDICTIONS_FILE,
    PredictionsFileError,
    PredictionWriter,
    done_ids,
    merge_shards,
    prediction_line,
    read_predictions,
    repair_tail,
    shard_path,
)
from geo_r.eval.runner import generate_predictions, pending_records
from geo_r.prompts import render_answer
from geo_r.runtime.ranks import Ranks


def _records(n: int) -> list[GeoRecord]:
    return [GeoRecord(id=f"r{i:03d}", images=[], lat=-60 + i * 3.1, lon=-170 + i * 7.3) for i in range(n)]


class OracleGenerator:
    """Answers 0.1 degree north of the truth; raises after ``fail_after`` batches (an interruption)."""

    name = "oracle"

    def __init__(self, fail_after: int | None = None) -> None:
        self.fail_after = fail_after
        self.seen: list[str] = []
        self.batches = 0

    def generate(self, records: Sequence[GeoRecord]) -> list[str]:
        if self.fail_after is not None and self.batches >= self.fail_after:
            raise KeyboardInterrupt("simulated kill")
        self.batches += 1
        self.seen.extend(r.id for r in records)
        return [render_answer("X", "Y", "Z", r.lat + 0.1, r.lon) for r in records]


def _ids_in(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_prediction_line_holds_raw_text_parsed_fields_and_distance() -> None:
    rec = GeoRecord(id="a", images=[], lat=10.0, lon=20.0)
    line = prediction_line(rec, render_answer("Chad", "Salamat", "Am Timan", 10.0, 21.0))
    assert line["id"] == "a" and line["completion"].startswith("<think>")
    assert (line["pred_country"], line["pred_lat"], line["pred_lon"]) == ("Chad", 10.0, 21.0)
    assert line["distance_km"] == pytest.approx(109.5, abs=0.1) and line["distance"] == "haversine"
    bad = prediction_line(rec, "somewhere warm")
    assert bad["pred_lat"] is None and bad["distance_km"] is None
    json.dumps(bad, allow_nan=False)


def test_writer_appends_and_repairs_a_partial_last_line(tmp_path: Path) -> None:
    path = tmp_path / PREDICTIONS_FILE
    with PredictionWriter(path) as w:
        assert w.append([{"id": "a", "completion": "x"}, {"id": "b", "completion": "y"}]) == 2
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"id": "c", "compl')  # a kill in the middle of a write
    assert done_ids(tmp_path) == {"a", "b"}
    assert read_predictions(path, duplicates="first", skip_partial_tail=True) == {"a": "x", "b": "y"}
    with pytest.raises(PredictionsFileError, match=r"predictions.jsonl:3: not valid JSON"):
        read_predictions(path)
    with PredictionWriter(path) as w:  # reopening cuts the broken tail before appending
        w.append([{"id": "c", "completion": "z"}])
    assert _ids_in(path) == ["a", "b", "c"]
    assert repair_tail(path) == 0 and repair_tail(tmp_path / "missing.jsonl") == 0


def test_read_predictions_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    cases = {
        '{"id": "a", "completion": "x"}\n[1, 2]\n': "p.jsonl:2: expected a JSON object",
        '{"id": "a"}\n': "p.jsonl:1: 'completion' must be the model's text",
        '\n{"id": true, "completion": "x"}\n': "p.jsonl:2: 'id' must be",
        '{"id": "a", "completion": "x"}\n{"id": "a", "completion": "y"}\n': "p.jsonl:2: id 'a' already appeared on line 1",
    }
    for text, message in cases.items():
        path.write_text(text, encoding="utf-8")
        with pytest.raises(PredictionsFileError, match=message):
            read_predictions(path)
    path.write_text('{"id": 7, "completion": "x"}\n\n{"id": "8", "completion": "y"}', encoding="utf-8")
    assert read_predictions(path) == {"7": "x", "8": "y"}  # integer ids become strings; blank lines skipped
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        read_predictions(tmp_path / "nope.jsonl")


def test_merge_shards_dedups_orders_and_removes_shards(tmp_path: Path) -> None:
    (tmp_path / PREDICTIONS_FILE).write_text('{"id": "r2", "completion": "old"}\n', encoding="utf-8")
    with PredictionWriter(shard_path(tmp_path, 0)) as w:
        w.append([{"id": "r0", "completion": "a"}, {"id": "r2", "completion": "dup"}])
    with PredictionWriter(shard_path(tmp_path, 1)) as w:
        w.append([{"id": "r1", "completion": "b"}, {"id": "zz", "completion": "extra"}])
    with open(shard_path(tmp_path, 1), "a", encoding="utf-8") as fh:
        fh.write('{"id": "r3"')  # rank 1 was killed mid-write
    assert merge_shards(tmp_path, order=["r0", "r1", "r2", "r3"]) == 4
    assert _ids_in(tmp_path / PREDICTIONS_FILE) == ["r0", "r1", "r2", "zz"]
    assert read_predictions(tmp_path / PREDICTIONS_FILE)["r2"] == "old"  # first occurrence wins
    assert not list(tmp_path.glob("predictions.rank*.jsonl"))
    assert merge_shards(tmp_path) == -1  # nothing to merge


def test_sharding_covers_every_pending_record_once() -> None:
    records = _records(11)
    done = {"r001", "r004"}
    shards = [pending_records(records, done, Ranks(rank, 3, rank)) for rank in range(3)]
    ids = [r.id for shard in shards for r in shard]
    assert sorted(ids) == sorted(r.id for r in records if r.id not in done)
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_dist_env_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert Ranks.from_env() == Ranks(0, 1, 0)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    env = Ranks.from_env()
    assert (env.rank, env.world_size, env.local_rank, env.is_main, env.distributed) == (3, 4, 1, False, True)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ValueError, match="inconsistent torchrun environment"):
        Ranks.from_env()


def test_interrupted_generation_resumes_without_duplicates(tmp_path: Path) -> None:
    records = _records(23)
    first = OracleGenerator(fail_after=3)
    with pytest.raises(KeyboardInterrupt):
        generate_predictions(records, first, tmp_path, batch_size=4, progress=False)
    path = tmp_path / PREDICTIONS_FILE
    assert _ids_in(path) == [r.id for r in records[:12]]  # 3 whole batches survived, the 4th was lost
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"id": "r012", "completion": "<think> half')  # and a kill mid-write on top
    second = OracleGenerator()
    written = generate_predictions(records, second, tmp_path, batch_size=4, progress=False)
    assert written == 11 and second.seen == [r.id for r in records[12:]]  # only the missing ones
    ids = _ids_in(path)
    assert sorted(ids) == [r.id for r in records] and len(ids) == len(set(ids)) == 23
    preds = read_predictions(path)  # strict reader: no duplicates, no broken line
    assert all("Coordinates" in text for text in preds.values())
    again = OracleGenerator()
    assert (
        generate_predictions(records, again, tmp_path, batch_size=4, progress=False) == 0 and again.seen == []
    )


def test_generation_checks_backend_output_and_batch_size(tmp_path: Path) -> None:
    class Short(OracleGenerator):
        def generate(self, records: Sequence[GeoRecord]) -> list[str]:
            return super().generate(records)[:-1]

    with pytest.raises(RuntimeError, match="returned 1 completion"):
        generate_predictions(_records(2), Short(), tmp_path, batch_size=2, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        generate_predictions(_records(2), OracleGenerator(), tmp_path, batch_size=0, progress=False)
