"""``geo-r eval --candidates``: retrieval top-1 and candidate-oracle accuracy (no model), how the answers used the
candidates (named, named the best, ignored a correct one) in metrics.json, report.md and scores.jsonl, all
against numbers computed by hand; nothing of it without candidates; a resumed run may not change them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from geo_r.demo.toy_data import write_toy_dataset
from geo_r.eval.cli import main as eval_main
from geo_r.geo import haversine_km
from geo_r.prompts import render_answer

KM_PER_DEG_LAT = math.pi * 6371.0 / 180.0


def _north(lat: float, lon: float, km: float) -> tuple[float, float]:
    return lat + km / KM_PER_DEG_LAT, lon


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


@pytest.fixture()
def setup(tmp_path: Path):
    """Six toy photos; per photo: candidate 1 at 0.5/30/300/0.5/3000/- km, candidate 2 at 40/0.2/5000/-/-/- km
    (photo 4 has one candidate, photo 5 a far one, photo 6 none); answers named below."""
    jsonl = write_toy_dataset(tmp_path / "toy", n=6, seed=3)
    rows = _lines(jsonl)
    plan = [(0.5, 40.0), (30.0, 0.2), (300.0, 5000.0), (0.5,), (3000.0,), ()]
    neighbours, truths = [], []
    for row, kms in zip(rows, plan, strict=True):
        truths.append((row["lat"], row["lon"]))
        ns = [{"id": f"g{j}", "lat": _north(row["lat"], row["lon"], km)[0], "lon": row["lon"], "score": 0.9 - j / 10}
              for j, km in enumerate(kms)]
        neighbours.append({"id": row["id"], "neighbours": ns})
    nfile = tmp_path / "neighbours.jsonl"
    nfile.write_text("".join(json.dumps(x) + "\n" for x in neighbours), encoding="utf-8")

    def answer(row: dict, km: float, k: int | None) -> str:
        lat, lon = _north(row["lat"], row["lon"], km)
        return render_answer(row["country"], row["region"], row["city"], lat, lon, candidate=k)

    # photo 1: names candidate 1 (0.5 km) and copies it; 2: says none, answers 100 km off although candidate 2
    # is 0.2 km away (ignored); 3: names 2, far; 4: no Candidate line, 10 km off; 5: names 7 (not listed);
    # 6 (no candidates): none
    completions = [answer(rows[0], 0.5, 1), answer(rows[1], 100.0, 0), answer(rows[2], 5000.0, 2),
                   answer(rows[3], 10.0, None), answer(rows[4], 1.0, 7), answer(rows[5], 2.0, 0)]
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps({"id": r["id"], "completion": c}) + "\n"
                             for r, c in zip(rows, completions, strict=True)), encoding="utf-8")
    return jsonl, nfile, preds, tmp_path / "out"


def test_retrieval_metrics_report_and_per_photo_fields(setup) -> None:
    jsonl, nfile, preds, out = setup
    flags = ["--predictions", str(preds), "--data_file_paths", str(jsonl), "--output_dir", str(out), "--no_progress"]
    assert eval_main([*flags, "--candidates", str(nfile), "--num_candidates", "2"]) == 0
    m = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    n = 6
    top1 = [0.5, 30.0, 300.0, 0.5, 3000.0, None]
    oracle = [0.5, 0.2, 300.0, 0.5, 3000.0, None]
    for t in (1, 25, 200, 750, 2500):
        assert m[f"retrieval_top1_acc@{t}km"] == pytest.approx(100 * sum(x is not None and x <= t for x in top1) / n)
        assert m[f"candidate_oracle_acc@{t}km"] == pytest.approx(
            100 * sum(x is not None and x <= t for x in oracle) / n)
    assert m["retrieval_top1_acc@1km"] == pytest.approx(100 * 2 / 6)
    assert m["candidate_oracle_acc@1km"] == pytest.approx(100 * 3 / 6)
    assert m["retrieval_top1_median_km"] == pytest.approx(30.0, rel=1e-3)
    assert m["candidate_oracle_median_km"] == pytest.approx(0.5, rel=1e-3)
    c = m["candidates"]
    assert c["n_with_candidates"] == 5 and c["mean_candidates"] == pytest.approx(8 / 5)
    assert c["file"].endswith("neighbours.jsonl") and c["num_candidates"] == 2 and c["radius_km"] == 1.0
    assert c["named_pct"] == pytest.approx(40.0)  # photos 1 and 3
    assert c["named_best_pct"] == pytest.approx(20.0)  # photo 1 (photo 3 named 2, the farther one)
    assert c["named_top1_pct"] == pytest.approx(20.0)
    assert c["none_pct"] == pytest.approx(20.0) and c["no_line_pct"] == pytest.approx(20.0)
    assert c["not_offered_pct"] == pytest.approx(20.0)
    # a correct candidate within 1 km for photos 1, 2, 4; the answers of 2 (100 km) and 4 (10 km) are farther
    assert c["n_correct_available@1km"] == 3 and c["ignored_correct_pct@1km"] == pytest.approx(200 / 3)
    assert c["n_correct_available@25km"] == 3 and c["ignored_correct_pct@25km"] == pytest.approx(100 / 3)
    assert c["n_correct_available@2500km"] == 4 and c["ignored_correct_pct@2500km"] == pytest.approx(25.0)
    assert m["settings"]["candidates"]["num_candidates"] == 2

    scores = _lines(out / "scores.jsonl")
    assert [s["n_candidates"] for s in scores] == [2, 2, 2, 1, 1, 0]
    assert [s["pred_candidate"] for s in scores] == [1, 0, 2, None, 7, 0]
    assert [s["oracle_candidate"] for s in scores] == [1, 2, 1, 1, 1, None]
    for s, want in zip(scores, oracle, strict=True):
        assert (s["oracle_km"] is None) if want is None else s["oracle_km"] == pytest.approx(want, rel=1e-3)
    assert scores[0]["retrieval_top1_km"] == pytest.approx(0.5, rel=1e-3)

    report = (out / "report.md").read_text(encoding="utf-8")
    assert "## Retrieval candidates" in report and "5 of 6 images had candidates from `" in report
    assert "| retrieval top-1 (candidate 1, no model) | 33.33 |" in report
    assert "| candidate oracle (nearest candidate) | 50.00 |" in report
    assert "| named the best one (nearest to the truth) | 20.00 |" in report
    assert "| 1 km | 3 | 66.67 |" in report


def test_without_candidates_no_retrieval_keys_or_fields(setup) -> None:
    jsonl, _, preds, out = setup
    assert eval_main(["--predictions", str(preds), "--data_file_paths", str(jsonl), "--output_dir", str(out),
                      "--no_progress"]) == 0
    m = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert not [k for k in m if "retrieval" in k or "oracle" in k or "candidate" in k]
    assert "candidates" not in m["settings"]
    scores = _lines(out / "scores.jsonl")
    assert not {"n_candidates", "oracle_km", "pred_candidate"} & set(scores[0])
    assert "Retrieval candidates" not in (out / "report.md").read_text(encoding="utf-8")


def test_a_photo_missing_from_the_neighbours_file_is_an_error_before_any_model(setup, tmp_path: Path, capsys) -> None:
    jsonl, nfile, _, out = setup
    lines = nfile.read_text().splitlines()
    short = tmp_path / "short.jsonl"
    short.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    # the model folder does not even exist: the neighbours file is checked first
    code = eval_main(["--model_name_or_path", str(tmp_path / "no_model"), "--data_file_paths", str(jsonl),
                      "--image_folders", str(jsonl.parent / "images"), "--output_dir", str(out),
                      "--candidates", str(short), "--no_progress"])
    err = capsys.readouterr().err
    assert code == 1 and str(short) in err and f"{jsonl}:6" in err and "no line for 1 of 6 photo(s)" in err
    assert eval_main(["--predictions", "x", "--data_file_paths", str(jsonl), "--output_dir", str(out),
                      "--candidates", str(nfile), "--num_candidates", "0"]) == 1
    assert "--num_candidates must be an integer >= 1" in capsys.readouterr().err


def test_resuming_with_other_candidates_is_refused(tmp_path: Path) -> None:
    from geo_r.eval.cli import EvalConfigError, _check_run_config

    (tmp_path / "predictions.jsonl").write_text('{"id": "a", "completion": "x"}\n', encoding="utf-8")
    base = {"model_name_or_path": "/m", "num_samples": 1}
    with_c = {**base, "candidates": {"file": "/n.jsonl", "num_candidates": 10, "radius_km": 1.0}}
    (tmp_path / "run_config.json").write_text(json.dumps(with_c), encoding="utf-8")
    _check_run_config(tmp_path, with_c)
    with pytest.raises(EvalConfigError, match="candidates: was"):
        _check_run_config(tmp_path, base)
    (tmp_path / "run_config.json").write_text(json.dumps(base), encoding="utf-8")
    _check_run_config(tmp_path, base)  # an old run without the key resumes as before
    with pytest.raises(EvalConfigError, match="candidates: was None"):
        _check_run_config(tmp_path, with_c)


def test_haversine_of_the_plan_is_what_the_fixture_says() -> None:
    assert haversine_km(*_north(10.0, 20.0, 30.0), 10.0, 20.0) == pytest.approx(30.0, rel=1e-9)
