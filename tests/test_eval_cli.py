"""``geo-r eval`` end to end: the tiny model (in-process and killed/resumed in a subprocess), ``--predictions``
scoring against hand-computed numbers, clear errors, and two torchrun ranks merging their shards."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from geo_r.demo.toy_data import write_toy_dataset
from geo_r.eval.cli import main as eval_main
from geo_r.prompts import render_answer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
OUTPUTS = ("predictions.jsonl", "metrics.json", "scores.jsonl", "report.md", "map.png", "error_cdf.png")


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = (
        str(Path(__file__).resolve().parents[1] / "src") + os.pathsep + env.get("PYTHONPATH", "")
    )
    return env


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def _toy(tmp_path: Path, n: int) -> tuple[Path, Path]:
    jsonl = write_toy_dataset(tmp_path / "toy", n=n, seed=1)
    return jsonl, jsonl.parent / "images"


def _gen_flags(model: Path, jsonl: Path, images: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--model_name_or_path",
        str(model),
        "--data_file_paths",
        str(jsonl),
        "--image_folders",
        str(images),
        "--output_dir",
        str(out),
        "--max_new_tokens",
        "12",
        "--no_progress",
        *extra,
    ]


def _assert_outputs(out: Path) -> dict:
    for name in OUTPUTS:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for name in ("map.png", "error_cdf.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 20_000, name  # a real figure, not a stub
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    for key in (
        "acc@1km",
        "acc@25km",
        "acc@200km",
        "acc@750km",
        "acc@2500km",
        "median_km",
        "mean_km",
        "geoscore",
        "parse_rate",
        "n",
        "country_acc",
        "region_acc",
        "city_acc",
        "per_continent",
    ):
        assert key in metrics, key
    return metrics


def test_eval_on_the_tiny_model_writes_every_output(tiny_model_dir: Path, tmp_path: Path) -> None:
    jsonl, images = _toy(tmp_path, 6)
    out = tmp_path / "run"
    assert eval_main(_gen_flags(tiny_model_dir, jsonl, images, out, "--batch_size", "4")) == 0
    metrics = _assert_outputs(out)
    assert metrics["n"] == 6 and metrics["settings"]["backend"] == "hf"
    assert metrics["settings"]["generation"]["do_sample"] is False  # greedy by default
    preds = _lines(out / "predictions.jsonl")
    assert sorted(p["id"] for p in preds) == [f"toy_{i:05d}" for i in range(6)]
    assert all(isinstance(p["completion"], str) and "<|image_pad|>" not in p["completion"] for p in preds)
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "![" in report and "map.png" in report
    assert "| Geo-R (AAAI'26) |" not in report and "not recognised as Im2GPS3k or YFCC4k" in report  # toy data
    assert '"max_pixels": 401408' in report  # the training default, written into the settings

    # a rerun finds everything done: same predictions, scoring only
    before = (out / "predictions.jsonl").read_bytes()
    assert eval_main(_gen_flags(tiny_model_dir, jsonl, images, out, "--batch_size", "4")) == 0
    assert (out / "predictions.jsonl").read_bytes() == before
    # other generation settings would mix two runs in one file: refused with a way out
    assert eval_main(_gen_flags(tiny_model_dir, jsonl, images, out, "--do_sample")) == 1
    assert (
        eval_main(
            _gen_flags(tiny_model_dir, jsonl, images, out, "--do_sample", "--overwrite", "--max_samples", "2")
        )
        == 0
    )
    assert len(_lines(out / "predictions.jsonl")) == 2


def test_sampling_is_reproducible_for_the_same_batches(tiny_model_dir: Path, tmp_path: Path) -> None:
    jsonl, images = _toy(tmp_path, 3)
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        flags = _gen_flags(
            tiny_model_dir, jsonl, images, out, "--do_sample", "--seed", "7", "--max_new_tokens", "24"
        )
        assert eval_main(flags) == 0
        runs.append([p["completion"] for p in _lines(out / "predictions.jsonl")])
    assert runs[0] == runs[1] and len(set(runs[0])) > 1


def test_killed_run_restarts_with_each_id_exactly_once(tiny_model_dir: Path, tmp_path: Path) -> None:
    jsonl, images = _toy(tmp_path, 40)
    out = tmp_path / "killed"
    preds = out / "predictions.jsonl"
    flags = _gen_flags(tiny_model_dir, jsonl, images, out, "--batch_size", "1", "--max_new_tokens", "48")
    proc = subprocess.Popen(
        [sys.executable, "-m", "geo_r.cli", "eval", *flags],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if preds.is_file() and preds.read_bytes().count(b"\n") >= 3:
                break
            time.sleep(0.005)
        assert proc.poll() is None, (
            f"eval ended before it could be killed:\n{proc.stderr.read().decode()[-2000:]}"
        )
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    complete = preds.read_bytes().split(b"\n")[:-1]  # a piece after the last newline is a write cut short
    kept = [json.loads(line) for line in complete]
    assert 3 <= len(kept) < 40

    assert eval_main(flags) == 0  # restart in-process
    ids = [p["id"] for p in _lines(preds)]
    assert len(ids) == len(set(ids)) == 40
    assert [p["id"] for p in _lines(preds)[: len(kept)]] == [p["id"] for p in kept]  # earlier rows untouched
    assert (
        json.loads((out / "metrics.json").read_text())["settings"]["predictions_reused_from_earlier_runs"]
        >= 3
    )


def _known_predictions(tmp_path: Path, jsonl: Path) -> tuple[Path, list[float | None]]:
    """Answers a known distance from the truth (on the sphere), plus unparseable and missing rows."""
    truth = _lines(jsonl)
    offsets_deg = [0.0, 0.005, 0.1, 1.0, 3.0, 10.0, 30.0, None, 0.02, "missing"]
    lines, expected = [], []
    for rec, off in zip(truth, offsets_deg, strict=True):
        if off == "missing":
            expected.append(None)
            continue
        if off is None:
            lines.append({"id": rec["id"], "completion": "I cannot tell where this is."})
            expected.append(None)
            continue
        lat = round(max(-90.0, min(90.0, rec["lat"] + off)), 6)
        lines.append(
            {
                "id": rec["id"],
                "completion": render_answer(rec["country"], rec["region"], rec["city"], lat, rec["lon"]),
            }
        )
        p1, p2 = math.radians(rec["lat"]), math.radians(lat)
        expected.append(6371.0 * abs(p2 - p1))  # same meridian: the great-circle distance is R * dlat
    path = tmp_path / "preds.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return path, expected


def test_predictions_mode_equals_hand_computation(tmp_path: Path) -> None:
    jsonl, _ = _toy(tmp_path, 10)
    preds, d = _known_predictions(tmp_path, jsonl)
    out = tmp_path / "scored"
    flags = ["--predictions", str(preds), "--data_file_paths", str(jsonl), "--output_dir", str(out)]
    assert eval_main(flags) == 1  # one image has no prediction: refused by default
    assert not (out / "metrics.json").exists()
    assert eval_main([*flags, "--allow_missing"]) == 0
    m = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    n = 10
    parsed = sorted(x for x in d if x is not None)
    for t in (1, 25, 200, 750, 2500):
        assert m[f"acc@{t}km"] == pytest.approx(100 * sum(x is not None and x <= t for x in d) / n, abs=1e-12)
    assert m["n"] == n and m["n_parsed"] == 8 and m["unparseable"] == 2 and m["missing_predictions"] == 1
    assert m["parse_rate"] == 80.0
    assert m["median_km"] == pytest.approx((parsed[3] + parsed[4]) / 2, rel=1e-9)
    assert m["mean_km"] == pytest.approx(sum(parsed) / 8, rel=1e-9)
    assert m["geoscore"] == pytest.approx(sum(5000 * math.exp(-x / 1492.7) for x in parsed) / n, rel=1e-9)
    # the answers repeat the true chain, so names are right wherever an answer exists (8 of 10)
    assert m["country_acc"] == 80.0 and m["city_acc"] == 80.0
    scores = _lines(out / "scores.jsonl")
    assert [s["distance_km"] is None for s in scores] == [x is None for x in d]
    for name in ("map.png", "error_cdf.png"):
        assert (out / name).read_bytes().startswith(PNG_MAGIC)
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "**80.00%**" in report and "2 of 10 unparseable, 1 without any prediction" in report

    # the conventions of other code bases are flags, and recorded
    assert eval_main([*flags, "--allow_missing", "--distance", "geodesic", "--strict_threshold"]) == 0
    g = json.loads((out / "metrics.json").read_text())
    assert (
        g["distance"] == "geodesic"
        and g["threshold_rule"] == "<"
        and g["settings"]["threshold_rule"] == "d < X km"
    )
    assert g["acc@2500km"] == m["acc@2500km"] and g["median_km"] != m["median_km"]


def test_predictions_mode_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    jsonl, _ = _toy(tmp_path, 3)
    other = tmp_path / "other.jsonl"
    other.write_text('{"id": "x1", "completion": "(1, 2)"}\n', encoding="utf-8")
    out = tmp_path / "o"
    assert (
        eval_main(["--predictions", str(other), "--data_file_paths", str(jsonl), "--output_dir", str(out)])
        == 1
    )
    assert "none of its 1 id(s) is in --data_file_paths" in capsys.readouterr().err
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "toy_00000", "completion": "x"}\n{"id": "toy_00001"\n', encoding="utf-8")
    assert (
        eval_main(["--predictions", str(broken), "--data_file_paths", str(jsonl), "--output_dir", str(out)])
        == 1
    )
    assert "broken.jsonl:2: not valid JSON" in capsys.readouterr().err
    dup = tmp_path / "dup.jsonl"
    dup.write_text(jsonl.read_text() + jsonl.read_text().splitlines()[0] + "\n", encoding="utf-8")
    assert (
        eval_main(["--predictions", str(other), "--data_file_paths", str(dup), "--output_dir", str(out)]) == 1
    )
    assert "ids must be unique" in capsys.readouterr().err
    assert eval_main(["--data_file_paths", str(jsonl), "--output_dir", str(out)]) == 1
    assert "--model_name_or_path" in capsys.readouterr().err
    bad_flags = (
        (["--do_sample", "--temperature", "0"], "temperature must be > 0"),
        (["--thresholds", "-5"], "positive"),
        (["--torch_dtype", "fp8"], "unknown dtype"),
    )
    for extra, message in bad_flags:
        assert (
            eval_main(
                [
                    "--model_name_or_path",
                    "m",
                    "--data_file_paths",
                    str(jsonl),
                    "--output_dir",
                    str(out),
                    *extra,
                ]
            )
            == 1
        )
        assert message in capsys.readouterr().err


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("vllm") is not None,
    reason="vLLM is installed: the error path is moot",
)
def test_vllm_backend_without_vllm_is_a_clear_error(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    jsonl, images = _toy(tmp_path, 2)
    assert eval_main(_gen_flags(tiny_model_dir, jsonl, images, tmp_path / "v", "--backend", "vllm")) == 1
    err = capsys.readouterr().err
    assert "--backend vllm needs the vllm package" in err and "--backend hf" in err


def test_geo_r_lists_the_eval_command(capsys: pytest.CaptureFixture[str]) -> None:
    from geo_r.cli import COMMANDS, main

    assert COMMANDS["eval"][0] == "geo_r.eval.cli"
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--help"])
    assert exc.value.code == 0
    assert "--strict_threshold" in capsys.readouterr().out


@pytest.mark.distributed
def test_torchrun_two_ranks_shard_and_merge(tiny_model_dir: Path, tmp_path: Path, free_port: int) -> None:
    jsonl, images = _toy(tmp_path, 7)
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(free_port),
        "-m",
        "geo_r.cli",
        "eval",
        *_gen_flags(tiny_model_dir, jsonl, images, out, "--batch_size", "2"),
    ]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = _assert_outputs(out)
    assert metrics["n"] == 7 and metrics["settings"]["world_size"] == 2
    ids = [p["id"] for p in _lines(out / "predictions.jsonl")]
    assert ids == [f"toy_{i:05d}" for i in range(7)]  # merged in data order, each once
    assert not list(out.glob("predictions.rank*.jsonl"))


def test_published_rows_only_for_the_benchmark_the_data_is(tmp_path: Path) -> None:
    jsonl, _ = _toy(tmp_path, 10)
    preds, _ = _known_predictions(tmp_path, jsonl)

    def report(data: Path, *extra: str) -> str:
        out = tmp_path / f"r_{data.stem}_{len(extra)}"
        flags = ["--predictions", str(preds), "--data_file_paths", str(data), "--output_dir", str(out)]
        assert eval_main([*flags, "--allow_missing", *extra]) == 0
        return (out / "report.md").read_text(encoding="utf-8")

    other = report(jsonl)  # toy photos: no published row would be comparable
    assert "| Geo-R (AAAI'26) |" not in other and "GeoCLIP" not in other.split("## Errors")[0]
    assert "Data: not recognised as Im2GPS3k or YFCC4k from the data file name(s) " in other
    assert "Data: not a published benchmark (--benchmark none)" in report(jsonl, "--benchmark", "none")

    named = tmp_path / "im2gps3k_places365.jsonl"  # recognised from the file name
    named.write_bytes(jsonl.read_bytes())
    im2gps = report(named)
    assert "| Geo-R (AAAI'26) | Qwen2.5-VL-7B, SFT + GRPO, MP16, retrieval-free | Im2GPS3k | 18.10 |" in im2gps
    assert "| YFCC4k |" not in im2gps
    assert "Data: Im2GPS3k (recognised from the data file name(s) im2gps3k_places365.jsonl) (10 of its 2,997 " in im2gps

    yfcc = report(jsonl, "--benchmark", "yfcc4k")  # said by the flag
    assert "| Geo-R (AAAI'26) | Qwen2.5-VL-7B, SFT + GRPO, MP16, retrieval-free | YFCC4k | 10.50 |" in yfcc
    assert "| Im2GPS3k |" not in yfcc and "Data: YFCC4k (--benchmark yfcc4k)" in yfcc


def test_run_eval_script_scores_a_predictions_file(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[1]
    jsonl, _ = _toy(tmp_path, 10)
    preds, _ = _known_predictions(tmp_path, jsonl)
    out = tmp_path / "script"
    env = {**_env(), "PREDICTIONS": str(preds), "DATA_PATHS": str(jsonl), "OUTPUT_DIR": str(out)}
    proc = subprocess.run(
        ["bash", str(repo / "run_scripts" / "run_eval.sh"), "--allow_missing", "--strict_threshold"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["n"] == 10 and metrics["threshold_rule"] == "<"  # extra arguments reach geo-r eval
    assert "# Geo-R evaluation: preds" in (out / "report.md").read_text(encoding="utf-8")


def test_predictions_read_once_outputs_follow_the_umask_and_thumbnails_capped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The predictions file (with samples) is parsed once; every output gets the mode the umask gives a plain
    file (mkstemp alone made metrics.json and the explorer 0600); --explorer_thumbnails N makes N thumbnails."""
    import stat

    import geo_r.eval.predictions as predictions

    jsonl, images = _toy(tmp_path, 10)
    preds, _ = _known_predictions(tmp_path, jsonl)
    lines = _lines(preds)
    for line in lines:
        line["samples"] = [line["completion"], line["completion"]]
    preds.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    parsed: list[str] = []
    original = predictions.iter_prediction_lines

    def counting(path, **kwargs):
        parsed.append(str(path))
        return original(path, **kwargs)

    monkeypatch.setattr(predictions, "iter_prediction_lines", counting)
    out = tmp_path / "scored"
    old = os.umask(0o002)
    try:
        assert eval_main(["--predictions", str(preds), "--data_file_paths", str(jsonl), "--image_folders",
                          str(images), "--output_dir", str(out), "--allow_missing", "--no_progress",
                          "--explorer_thumbnails", "3"]) == 0
    finally:
        os.umask(old)
    assert parsed == [str(preds)]
    files = [out / n for n in ("metrics.json", "scores.jsonl", "report.md", "map.png", "explorer.html")]
    files += [p for p in (out / "explorer_files").rglob("*") if p.is_file()]
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {oct(0o664)}
    folders = [p for p in (out / "explorer_files").rglob("*") if p.is_dir()] + [out / "explorer_files"]
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in folders} == {oct(0o775)}
    assert len(list((out / "explorer_files").rglob("*.jpg"))) == 3
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_samples"] == 2  # the samples came from the same single read
