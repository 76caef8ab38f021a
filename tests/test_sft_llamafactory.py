"""LLaMA-Factory 0.9.5 itself on the export: its loader keeps every row and builds the same tokens as the built-in
SFT, and ``run_scripts/run_sft.sh`` trains (full and LoRA) into folders that the main environment and GRPO load.

Needs the separate LLaMA-Factory venv (``bash setup.sh --sft`` makes ``.venv-sft``; ``GEO_R_SFT_VENV`` points
elsewhere); skipped without it. LLaMA-Factory runs on CPU there because that venv holds PyPI's CUDA torch
build, which imports and runs without a GPU (the CPU torch cannot load PyPI's torchaudio, which it imports).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from data_fixtures import make_jpeg, write_jsonl
from geo_r.demo.toy_data import write_toy_dataset

REPO = Path(__file__).resolve().parents[1]
SFT_VENV = Path(os.environ.get("GEO_R_SFT_VENV") or REPO / ".venv-sft")
LF_CLI = SFT_VENV / "bin" / "llamafactory-cli"
if os.environ.get("GEO_R_REQUIRE_SFT_VENV") == "1" and not LF_CLI.is_file():  # run_tests.sh's SFT tier: no skipping
    raise RuntimeError(f"GEO_R_REQUIRE_SFT_VENV=1 but there is no {LF_CLI} (bash setup.sh --sft-only)")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not LF_CLI.is_file(),
        reason=f"no LLaMA-Factory venv at {SFT_VENV} (bash setup.sh --sft creates .venv-sft; or set GEO_R_SFT_VENV)",
    ),
]
MAX_PIXELS = 12544


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1", SFT_VENV=str(SFT_VENV))
    # run_sft.sh runs geo-r export-sft with `python` / `geo-r` from PATH: make that this test's environment.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = sys.prefix
    return env


def _run(cmd: list[str], env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=REPO, env=env or _env(), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """8 toy photos, a VLM-R1 record and a two-image record with a system turn (paths relative to their folder)."""
    root = tmp_path_factory.mktemp("lf-data")
    toy = write_toy_dataset(root / "toy", n=8, seed=7)
    images = root / "toy" / "images"
    make_jpeg(images / "sub" / "a.jpg", size=(60, 44))
    make_jpeg(images / "sub" / "b.jpg", size=(44, 60))
    extra = write_jsonl(root / "extra.jsonl", [
        {"id": "vlm", "image": "00001.jpg", "conversations": [
            {"from": "human", "value": "<image>Where is this?"}, {"from": "gpt", "value": "[35.6762, 139.6503]"}]},
        {"id": "two", "image": ["sub/a.jpg", "sub/b.jpg"], "lat": -33.8688, "lon": 151.2093,
         "conversations": [{"from": "system", "value": "You are a geolocation expert."},
                           {"from": "human", "value": "First <image>, then <image>: where?"}]},
    ])
    return f"{toy}:{extra}", f"{images}:{images}"


def test_llamafactory_loader_keeps_every_row_and_matches_the_builtin_tokens(data, tiny_model_dir, tmp_path):
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    from geo_r.data import load_records
    from geo_r.models.processor import load_processor
    from geo_r.sft.data import build_sft_dataset
    from geo_r.sft.examples import build_sft_examples
    from geo_r.sft.export import export_llamafactory

    records, _ = load_records(*data, derive_chains=True)
    examples, _ = build_sft_examples(records)
    result = export_llamafactory(examples, tmp_path / "sft")
    probe_out = tmp_path / "probe.json"
    _run([str(SFT_VENV / "bin" / "python"), str(REPO / "tests" / "llamafactory_probe.py"), str(tiny_model_dir),
          str(result.dataset_dir), result.dataset_name, str(result.media_dir), str(MAX_PIXELS), str(probe_out)])
    lf = json.loads(probe_out.read_text())
    assert lf["examples"] == len(examples) == 10, "LLaMA-Factory dropped rows as abnormal"

    dataset = build_sft_dataset(examples)
    collator = DataCollatorForVisionLanguageModeling(
        processor=load_processor(tiny_model_dir, min_pixels=3136, max_pixels=MAX_PIXELS), completion_only_loss=True)
    for i, lf_row in enumerate(lf["rows"]):
        ours = collator([dataset[i]])
        assert ours["input_ids"][0].tolist() == lf_row["input_ids"], f"input_ids differ for {examples[i].id}"
        assert ours["labels"][0].tolist() == lf_row["labels"], f"labels differ for {examples[i].id}"


def _sft_script(data, model_dir: Path, out: Path, finetuning: str) -> subprocess.CompletedProcess:
    files, folders = data
    env = _env()
    env.update(MODEL_PATH=str(model_dir), DATA_PATHS=files, IMAGE_FOLDERS=folders, SFT_DATA_DIR=str(out / "data"),
               OUTPUT_DIR=str(out / "model"), FINETUNING=finetuning, DEEPSPEED_CONFIG="", MAX_PIXELS=str(MAX_PIXELS),
               NPROC_PER_NODE="1")
    return _run(["bash", "run_scripts/run_sft.sh", "max_steps=3", "logging_steps=1", "bf16=false",
                 "preprocessing_num_workers=1", "dataloader_num_workers=0", "plot_loss=false", "learning_rate=1e-3"],
                env=env)


def _losses(folder: Path) -> list[float]:
    lines = (folder / "trainer_log.jsonl").read_text().splitlines()
    return [json.loads(line)["loss"] for line in lines if "loss" in json.loads(line)]


def test_run_sft_full_trains_and_grpo_starts_from_it(data, tiny_model_dir, tmp_path):
    from geo_r.models.loading import load_model
    from geo_r.models.processor import load_processor

    proc = _sft_script(data, tiny_model_dir, tmp_path, "full")
    model_dir = tmp_path / "model"
    assert f"MODEL_PATH={model_dir}" in proc.stdout
    assert len(_losses(model_dir)) == 3
    assert load_model(model_dir, dtype=torch.float32).config.model_type == "qwen2_5_vl"
    load_processor(model_dir, min_pixels=3136, max_pixels=MAX_PIXELS)
    files, folders = data
    out = tmp_path / "grpo"
    _run([sys.executable, str(REPO / "src" / "geo_r" / "grpo_jsonl.py"), "--model_name_or_path", str(model_dir),
          "--data_file_paths", files, "--image_folders", folders, "--output_dir", str(out), "--max_steps", "1",
          "--per_device_train_batch_size", "4", "--num_generations", "4", "--max_completion_length", "16",
          "--max_pixels", str(MAX_PIXELS), "--bf16", "false", "--report_to", "none", "--save_strategy", "no",
          "--reward_funcs", "format", "distance"])
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 1


def test_run_sft_lora_merges_an_adapter_on_the_language_model_only(data, tiny_model_dir, tmp_path):
    from safetensors.torch import load_file

    from geo_r.models.loading import load_model

    proc = _sft_script(data, tiny_model_dir, tmp_path, "lora")
    merged = tmp_path / "model" / "merged"
    assert f"MODEL_PATH={merged}" in proc.stdout
    targets = json.loads((tmp_path / "model" / "adapter_config.json").read_text())["target_modules"]
    assert targets and all(".language_model." in t for t in targets), targets
    assert load_model(merged, dtype=torch.float32).config.model_type == "qwen2_5_vl"
    before, after = load_file(str(tiny_model_dir / "model.safetensors")), load_file(str(merged / "model.safetensors"))
    changed = [k for k in before if not torch.allclose(before[k].float(), after[k].float())]
    assert changed and all(k.startswith("model.layers.") for k in changed), changed
