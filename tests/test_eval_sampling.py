"""``geo-r eval --num_samples K``: both backends' sample requests, the K = 4 run on the tiny model (every file,
resume), hand-made samples scored through ``--predictions``, and clear errors for impossible flags."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from geo_r.data.schema import GeoRecord
from geo_r.demo.toy_data import write_toy_dataset
from geo_r.eval import vllm_backend as vb
from geo_r.eval.cli import main as eval_main
from geo_r.eval.generate import GenerationSettings, split_samples
from geo_r.prompts import render_answer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def _toy(tmp_path: Path, n: int) -> tuple[Path, Path]:
    jsonl = write_toy_dataset(tmp_path / "toy", n=n, seed=1)
    return jsonl, jsonl.parent / "images"


def test_vllm_sampling_kwargs_ask_for_n_answers() -> None:
    sampled = GenerationSettings(do_sample=True, temperature=0.7)
    assert vb.sampling_kwargs(sampled, [], n=8)["n"] == 8
    with pytest.raises(ValueError, match="do_sample"):
        vb.sampling_kwargs(GenerationSettings(), [], n=4)
    with pytest.raises(ValueError, match="n must be"):
        vb.sampling_kwargs(sampled, [], n=0)


def test_vllm_generate_samples_sends_one_request_per_image_with_n(
    tiny_model_dir: Path, make_images, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from geo_r.models.processor import family_of, load_processor

    class SamplingParams:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    class FakeLLM:
        def __init__(self, returned: int | None = None):
            self.calls: list = []
            self.returned = returned

        def generate(self, requests, sampling_params, use_tqdm):
            self.calls.append((requests, sampling_params))
            outs = []
            for _req, p in zip(requests, sampling_params, strict=True):
                n = self.returned or p.kwargs["n"]
                outs.append(types.SimpleNamespace(outputs=[types.SimpleNamespace(text=f"{p.kwargs['seed']}:{j}")
                                                           for j in range(n)]))
            return outs

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(SamplingParams=SamplingParams))
    paths = make_images(tmp_path / "imgs", 2)
    records = [GeoRecord(id=f"r{i}", images=[str(p)], lat=0.0, lon=0.0) for i, p in enumerate(paths)]
    gen = object.__new__(vb.VLLMGenerator)
    gen.processor = load_processor(tiny_model_dir, min_pixels=3136, max_pixels=20_000)
    gen.factor, gen.min_pixels, gen.max_pixels, gen.question = family_of("qwen2_5_vl").factor, 3136, 20_000, None
    gen.settings = GenerationSettings(max_new_tokens=16, seed=3)
    gen.sample_settings = GenerationSettings(max_new_tokens=16, do_sample=True, temperature=0.7, seed=3)
    gen.blocked_token_ids = [5]
    gen.sampling = vb.sampling_kwargs(gen.settings, gen.blocked_token_ids)
    gen.llm = FakeLLM()
    out = gen.generate_samples(records, 4)
    requests, params = gen.llm.calls[0]
    assert len(requests) == 2 and all(p.kwargs["n"] == 4 and p.kwargs["temperature"] == 0.7 for p in params)
    assert [p.kwargs["seed"] for p in params] == [vb.request_seed(3, "r0"), vb.request_seed(3, "r1")]
    assert params[0].kwargs["logit_bias"] == {5: -100.0}
    assert out == [[f"{vb.request_seed(3, r.id)}:{j}" for j in range(4)] for r in records]
    assert gen.generate(records) == [f"{vb.request_seed(3, r.id)}:0" for r in records]  # greedy: n = 1
    assert gen.llm.calls[1][1][0].kwargs["n"] == 1 and gen.llm.calls[1][1][0].kwargs["temperature"] == 0.0
    gen.llm = FakeLLM(returned=3)
    with pytest.raises(RuntimeError, match="expected 4"):
        gen.generate_samples(records, 4)


def test_split_samples_keeps_each_records_rows_together() -> None:
    assert split_samples(["a0", "a1", "b0", "b1"], 2, 2) == [["a0", "a1"], ["b0", "b1"]]
    with pytest.raises(RuntimeError, match="expected 2 x 2"):
        split_samples(["a0", "a1", "b0"], 2, 2)


def _flags(model: Path, jsonl: Path, images: Path, out: Path, *extra: str) -> list[str]:
    return ["--model_name_or_path", str(model), "--data_file_paths", str(jsonl), "--image_folders", str(images),
            "--output_dir", str(out), "--max_new_tokens", "12", "--no_progress", "--batch_size", "2", *extra]


def test_k4_run_on_the_tiny_model_writes_every_file(tiny_model_dir: Path, tmp_path: Path) -> None:
    jsonl, images = _toy(tmp_path, 3)
    out = tmp_path / "k4"
    k4 = ("--num_samples", "4", "--temperature", "1.5", "--aggregate", "greedy,medoid,vote", "--abstain_km", "500")
    assert eval_main(_flags(tiny_model_dir, jsonl, images, out, *k4)) == 0
    preds = _lines(out / "predictions.jsonl")
    assert len(preds) == 3
    for p in preds:
        assert len(p["samples"]) == 4 and all(isinstance(s, str) for s in p["samples"])
    assert len({s for p in preds for s in p["samples"]}) > 3  # sampled, not four copies of one answer

    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["aggregate"] == "greedy" and metrics["num_samples"] == 4
    assert list(metrics["aggregates"]) == ["greedy", "medoid", "vote"]
    for block in metrics["aggregates"].values():
        assert block["n"] == 3 and "acc@25km" in block and "median_km" in block
        conf = block["confidence"]
        assert {"deciles", "spearman_spread_error", "abstention", "spread_km_median"} <= conf.keys()
        assert conf["abstention"]["abstain_km"] == 500.0
    assert metrics["acc@25km"] == metrics["aggregates"]["greedy"]["acc@25km"]
    assert metrics["settings"]["num_samples"] == 4 and metrics["settings"]["sampling"]["temperature"] == 1.5

    scores = _lines(out / "scores.jsonl")
    assert len(scores) == 3
    for s in scores:
        assert set(s["aggregates"]) == {"greedy", "medoid", "vote"}
        assert s["aggregates"]["greedy"]["chosen_sample"] is None
        for name in ("medoid", "vote"):
            k = s["aggregates"][name]["chosen_sample"]
            assert k is None or 0 <= k < 4
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "## Test-time scaling: 4 samples per image" in report
    for name in ("greedy", "medoid", "vote"):
        assert f"| **{name}** |" in report and f"### Confidence of {name}" in report
    assert "confidence.png" in report and "--abstain_km" in report
    for name in ("map.png", "error_cdf.png", "confidence.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000, name

    # resume: everything done, nothing regenerated; another K would mix two runs and is refused
    before = (out / "predictions.jsonl").read_bytes()
    assert eval_main(_flags(tiny_model_dir, jsonl, images, out, *k4[:4], "--aggregate", "vote")) == 0
    assert (out / "predictions.jsonl").read_bytes() == before
    assert json.loads((out / "metrics.json").read_text())["aggregate"] == "vote"
    assert eval_main(_flags(tiny_model_dir, jsonl, images, out, "--num_samples", "2", "--temperature", "1.5")) == 1
    assert eval_main(_flags(tiny_model_dir, jsonl, images, out)) == 1  # K = 1 into a K = 4 folder

    # the same samples come back for the same batches (seeded per batch)
    again = tmp_path / "again"
    assert eval_main(_flags(tiny_model_dir, jsonl, images, again, *k4)) == 0
    assert [p["samples"] for p in _lines(again / "predictions.jsonl")] == [p["samples"] for p in preds]


def test_hand_made_samples_are_scored_per_aggregate(tmp_path: Path) -> None:
    jsonl, _ = _toy(tmp_path, 2)
    recs = _lines(jsonl)
    lines = []
    for r in recs:
        lat, lon = r["lat"], r["lon"]
        near = render_answer(r["country"], r["region"], r["city"], lat, lon)  # 0 km
        far = render_answer("Chile", "Magallanes", "Punta Arenas", -53.16, -70.91)
        # greedy is far; two of four samples sit at the truth: medoid and vote both pick a true one
        lines.append({"id": r["id"], "completion": far, "samples": [far, near, "no answer", near]})
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    out = tmp_path / "scored"
    flags = ["--predictions", str(preds), "--data_file_paths", str(jsonl), "--output_dir", str(out)]
    assert eval_main([*flags, "--abstain_km", "1"]) == 0
    m = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert list(m["aggregates"]) == ["greedy", "medoid", "vote"]  # the default when samples exist
    agg = m["aggregates"]
    assert agg["medoid"]["acc@1km"] == 100.0 and agg["vote"]["acc@1km"] == 100.0
    far_ok = all(abs(r["lat"] + 53.16) < 1 for r in recs)
    assert agg["greedy"]["acc@1km"] == (100.0 if far_ok else 0.0)
    scores = _lines(out / "scores.jsonl")
    assert all(s["aggregates"]["medoid"]["chosen_sample"] == 1 for s in scores)  # equal sums: the first
    # around the medoid (truth): distances 0, 0 and Punta Arenas; median 0; 2 of 4 samples in its country
    assert all(s["aggregates"]["vote"]["spread_km"] == 0.0 for s in scores)
    assert all(s["aggregates"]["vote"]["country_agreement"] == 0.5 for s in scores)
    ab = agg["vote"]["confidence"]["abstention"]
    assert ab["coverage"] == 100.0 and ab["acc@1km"] == 100.0
    assert agg["greedy"]["confidence"]["abstention"]["coverage"] == 0.0  # samples far from the greedy point

    # a plain file (no samples) cannot be aggregated: a clear error, not a traceback
    plain = tmp_path / "plain.jsonl"
    plain.write_text("".join(json.dumps({"id": x["id"], "completion": x["completion"]}) + "\n" for x in lines))
    assert eval_main(["--predictions", str(plain), "--data_file_paths", str(jsonl), "--output_dir",
                      str(tmp_path / "p"), "--aggregate", "medoid"]) == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": recs[0]["id"], "completion": "x", "samples": "not a list"}) + "\n")
    assert eval_main(["--predictions", str(bad), "--data_file_paths", str(jsonl), "--output_dir",
                      str(tmp_path / "b"), "--allow_missing"]) == 1


def test_impossible_sampling_flags_are_refused(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    jsonl, images = _toy(tmp_path, 1)
    out = tmp_path / "x"
    assert eval_main(_flags(tiny_model_dir, jsonl, images, out, "--aggregate", "medoid")) == 1
    assert "--num_samples K" in capsys.readouterr().err
    assert eval_main(_flags(tiny_model_dir, jsonl, images, out, "--num_samples", "4", "--do_sample")) == 1
    assert "drop --do_sample" in capsys.readouterr().err
    assert eval_main(_flags(tiny_model_dir, jsonl, images, out, "--num_samples", "4", "--aggregate", "mean")) == 1
    assert "unknown 'mean'" in capsys.readouterr().err
    assert eval_main(_flags(tiny_model_dir, jsonl, images, out, "--num_samples", "0")) == 1
    assert eval_main(_flags(tiny_model_dir, jsonl, images, out, "--num_samples", "2", "--abstain_km", "-3")) == 1
    assert not (out / "predictions.jsonl").exists()  # refused before any model was loaded
