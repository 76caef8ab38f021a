"""The prompt with retrieval candidates is byte for byte the same in the five commands that take ``--candidates``:
``grpo_jsonl.py`` (its training dataset), ``geo-r sft`` (its SFT dataset), ``geo-r export-sft`` (the
LLaMA-Factory user turn, with each ``<image>`` replaced in place as LLaMA-Factory does), ``geo-r eval`` (the
text its generator feeds the model) and ``geo-r app`` (the example photo's prompt). Each command runs through its
own command-line code up to the point where it would train or generate: the trainers are replaced by a stub
that records what they were given, and eval generates one token for real."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from geo_r.data.dataset import content_blocks
from geo_r.demo.toy_data import write_toy_dataset
from geo_r.prompts import CANDIDATES_HEADER

PIXELS = ["--max_pixels", "12544", "--min_pixels", "3136"]


class Captured(Exception):
    """Raised by the stub trainers once they hold the training dataset."""

    def __init__(self, dataset: Any) -> None:
        super().__init__("captured")
        self.dataset = dataset


def _stub(**kwargs: Any) -> None:
    raise Captured(kwargs["train_dataset"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cand_cmds")
    data = write_toy_dataset(root / "toy", n=3, seed=5)
    rows = [json.loads(x) for x in data.read_text().splitlines()]
    lines = []
    for i, r in enumerate(rows):
        ns = [{"id": f"g{i}a", "lat": r["lat"] + 0.004, "lon": r["lon"], "score": 0.9},
              {"id": f"g{i}b", "lat": r["lat"] + 0.001, "lon": r["lon"], "score": 0.8},
              {"id": f"g{i}c", "lat": -r["lat"], "lon": r["lon"] / 2, "score": 0.4}]
        lines.append(json.dumps({"id": r["id"], "neighbours": ns}))
    neighbours = root / "neighbours.jsonl"
    neighbours.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"root": root, "data": data, "images": data.parent / "images", "neighbours": neighbours}


def _flags(world: dict[str, Path]) -> list[str]:
    return ["--data_file_paths", str(world["data"]), "--image_folders", str(world["images"]),
            "--candidates", str(world["neighbours"]), "--num_candidates", "2", "--candidate_radius_km", "0.5"]


def _templated(processor: Any, messages: list[dict[str, Any]]) -> str:
    return processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def _dataset_prompts(processor: Any, dataset: Any) -> dict[str, str]:
    return {row["id"]: _templated(processor, row["prompt"]) for row in dataset}


def test_the_prompt_is_identical_in_the_five_commands(tiny_model_dir: Path, world, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import trl

    import geo_r.eval.generate as generate
    import geo_r.trainer.grpo_trainer as grpo_trainer
    from geo_r.app.cli import example_candidates, example_records
    from geo_r.app.engine import Engine
    from geo_r.cli import main as cli_main
    from geo_r.eval.generate import GenerationSettings
    from geo_r.grpo.main import main as grpo_main
    from geo_r.models.processor import load_processor

    processor = load_processor(str(tiny_model_dir), min_pixels=3136, max_pixels=12544)
    prompts: dict[str, dict[str, str]] = {}

    # grpo_jsonl.py
    monkeypatch.setattr(grpo_trainer, "GeoGRPOTrainer", _stub)
    with pytest.raises(Captured) as got:
        grpo_main(["--model_name_or_path", str(tiny_model_dir), *_flags(world), "--output_dir", str(tmp_path / "g"),
                   "--reward_funcs", "format", "distance", "candidate", "--num_generations", "2",
                   "--per_device_train_batch_size", "2", "--report_to", "none", *PIXELS])
    prompts["grpo"] = _dataset_prompts(processor, got.value.dataset)
    assert all(len(row["candidates"]) == 2 for row in got.value.dataset)  # the column the rewards read

    # geo-r sft
    monkeypatch.setattr(trl, "SFTTrainer", _stub)
    with pytest.raises(Captured) as got:
        cli_main(["sft", "--model_name_or_path", str(tiny_model_dir), *_flags(world), "--output_dir",
                  str(tmp_path / "s"), "--report_to", "none", *PIXELS])
    prompts["sft"] = _dataset_prompts(processor, got.value.dataset)

    # geo-r export-sft: LLaMA-Factory puts each image where its <image> placeholder is
    assert cli_main(["export-sft", *_flags(world), "--out_dir", str(tmp_path / "lf")]) == 0
    export: dict[str, str] = {}
    data_rows = [json.loads(x) for x in world["data"].read_text().splitlines()]
    exported = [json.loads(x) for x in (tmp_path / "lf" / "geo_sft.jsonl").read_text().splitlines()]
    for row, line in zip(data_rows, exported, strict=True):
        user = next(m["content"] for m in line["messages"] if m["role"] == "user")
        messages = [{"role": "user", "content": content_blocks(user, len(line["images"]))}]
        export[row["id"]] = _templated(processor, messages)
    prompts["export-sft"] = export

    # geo-r eval: what the generator really feeds the model
    fed: dict[str, str] = {}
    real = generate.prompt_texts

    def recording(proc: Any, records: Any, question: Any = None) -> list[str]:
        texts = real(proc, records, question)
        fed.update({r.id: t for r, t in zip(records, texts, strict=True)})
        return texts

    monkeypatch.setattr(generate, "prompt_texts", recording)
    assert cli_main(["eval", "--model_name_or_path", str(tiny_model_dir), *_flags(world), "--output_dir",
                     str(tmp_path / "e"), "--max_new_tokens", "1", "--no_progress", *PIXELS]) == 0
    prompts["eval"] = fed
    settings = json.loads((tmp_path / "e" / "metrics.json").read_text())["settings"]
    assert settings["candidates"]["num_candidates"] == 2 and settings["candidates"]["radius_km"] == 0.5

    # geo-r app: the example photos get their candidates; the prompt of each
    import argparse

    from geo_r.app.cli import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--examples", str(world["data"]), "--example_images", str(world["images"]),
                              "--candidates", str(world["neighbours"]), "--num_candidates", "2",
                              "--candidate_radius_km", "0.5"])
    chosen = example_records(args.examples, args.example_images)
    engine = Engine(str(tiny_model_dir), GenerationSettings(max_new_tokens=1), min_pixels=3136, max_pixels=12544,
                    candidates=example_candidates(chosen, args))
    prompts["app"] = {r.id: engine.prompt(r.images[0]) for r in chosen}

    ids = {row["id"] for row in data_rows}
    reference = prompts["eval"]
    assert set(reference) == ids
    for command, by_id in prompts.items():
        assert set(by_id) == ids, command
        for rid in ids:
            assert by_id[rid] == reference[rid], (command, rid)
    for text in reference.values():
        assert CANDIDATES_HEADER in text and "\n1. (" in text and "\n2. (" in text and "\n3. (" not in text


def test_grpo_stops_before_any_model_on_a_bad_neighbours_file_or_a_reward_without_candidates(
    world, tmp_path: Path
) -> None:
    from geo_r.data.candidates import NeighboursFileError
    from geo_r.grpo.main import main as grpo_main

    short = tmp_path / "short.jsonl"
    short.write_text(world["neighbours"].read_text().splitlines()[0] + "\n", encoding="utf-8")
    base = ["--model_name_or_path", str(tmp_path / "no_model_here"), "--data_file_paths", str(world["data"]),
            "--image_folders", str(world["images"]), "--output_dir", str(tmp_path / "g"), "--report_to", "none"]
    with pytest.raises(NeighboursFileError, match=f"no line for 2 of 3 photo.*{world['data']}:2"):
        grpo_main([*base, "--candidates", str(short)])
    with pytest.raises(SystemExit, match="--reward_funcs candidate scores the answer's 'Candidate:' line, but no"):
        grpo_main([*base, "--reward_funcs", "format", "candidate"])
    with pytest.raises(SystemExit, match="--num_candidates must be an integer >= 1"):
        grpo_main([*base, "--candidates", str(world["neighbours"]), "--num_candidates", "0"])


@pytest.mark.slow
def test_grpo_entrypoint_trains_with_candidates_and_logs_the_candidate_reward(tiny_model_dir: Path, world,
                                                                              tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / "grpo"
    cmd = [sys.executable, str(repo / "src" / "geo_r" / "grpo_jsonl.py"), "--model_name_or_path", str(tiny_model_dir),
           *_flags(world), "--output_dir", str(out), "--max_steps", "2", "--per_device_train_batch_size", "4",
           "--num_generations", "4", "--max_completion_length", "16", "--learning_rate", "1e-3",
           "--logging_steps", "1", "--report_to", "none", "--save_strategy", "no", "--seed", "0",
           "--reward_funcs", "format", "distance", "region", "candidate",
           f"{repo / 'tests' / 'rewards_for_tests.py'}:length_reward", *PIXELS]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=str(repo / "src"))
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-6000:]
    assert "candidates from" in proc.stderr and "3 of 3 record(s) got 6 candidate(s)" in proc.stderr
    logs = [e for e in json.loads((out / "trainer_state.json").read_text())["log_history"] if "reward" in e]
    assert logs and all("rewards/candidate/mean" in e for e in logs)
    # a random model writes no Candidate line: 0, never None (NaN) on rows that have candidates
    assert all(e["rewards/candidate/mean"] == 0.0 for e in logs)
    assert all(e["rewards/format/mean"] == 0.0 for e in logs)
