"""Hub-format checkpoints: ``geo-r tiny-model --layout hub`` writes what a transformers 4.x-era download holds,
and every entrypoint loads it, with the command line's pixel limits winning over its max_pixels 12845056."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from geo_r.demo.hub_layout import HUB_MAX_PIXELS, legacy_weight_name
from geo_r.demo.tiny_model import build_tiny_model
from geo_r.demo.toy_data import write_toy_dataset

REPO = Path(__file__).resolve().parents[1]
PIXELS = ["--max_pixels", "12544", "--min_pixels", "3136"]


@pytest.fixture(scope="module")
def hub_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("hub") / "ckpt", layout="hub")


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("hub-toy")
    return write_toy_dataset(root, n=8, seed=3), root / "images"


def _env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")


def _run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc.stdout + proc.stderr


def test_hub_folder_has_the_4x_file_set_and_keys(hub_dir: Path) -> None:
    names = {p.name for p in hub_dir.iterdir()}
    assert {"config.json", "generation_config.json", "preprocessor_config.json", "chat_template.json",
            "tokenizer.json", "tokenizer_config.json", "model.safetensors.index.json",
            "model-00001-of-00001.safetensors"} <= names
    assert not names & {"processor_config.json", "chat_template.jinja", "model.safetensors",
                        "video_preprocessor_config.json"}
    config = json.loads((hub_dir / "config.json").read_text())
    assert config["rope_scaling"]["type"] == "mrope" and "rope_parameters" not in config
    assert "text_config" not in config and config["hidden_size"] == 64 and config["torch_dtype"] == "float32"
    assert config["transformers_version"].startswith("4.")
    pre = json.loads((hub_dir / "preprocessor_config.json").read_text())
    assert pre["max_pixels"] == HUB_MAX_PIXELS == 12845056 and pre["min_pixels"] == 3136 and "size" not in pre
    index = json.loads((hub_dir / "model.safetensors.index.json").read_text())["weight_map"]
    assert any(k.startswith("visual.blocks.") for k in index) and any(k.startswith("model.layers.") for k in index)
    assert not any(k.startswith(("model.language_model.", "model.visual.")) for k in index)


def test_every_saved_tensor_loads_into_the_model(hub_dir: Path) -> None:
    from safetensors.torch import load_file

    from geo_r.models.loading import load_model

    model = load_model(hub_dir, dtype="float32")
    params = {legacy_weight_name(k): v for k, v in model.state_dict().items()}
    saved = load_file(str(hub_dir / "model-00001-of-00001.safetensors"))
    assert saved and all(torch.equal(params[k], v) for k, v in saved.items())
    assert model.config.text_config.rope_parameters["mrope_section"] == [2, 3, 3]


def test_command_line_pixel_limits_win_with_a_log_line(hub_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    from geo_r.models.processor import load_processor, pixel_limits

    assert pixel_limits(load_processor(hub_dir)) == (3136, HUB_MAX_PIXELS)
    with caplog.at_level(logging.INFO, logger="geo_r.models.processor"):
        processor = load_processor(hub_dir, min_pixels=3136, max_pixels=12544)
    assert pixel_limits(processor) == (3136, 12544)
    assert any("max_pixels=12544 (command line) override" in r.getMessage() and "12845056" in r.getMessage()
               for r in caplog.records)


def test_real_shape_config_is_the_published_3b_cut_to_n_layers() -> None:
    from geo_r.demo.real_shapes import qwen2_5_vl_config

    ids = {"bos": 0, "eos": 1, "pad": 0, "image": 2, "video": 3, "vision_start": 4, "vision_end": 5}
    for layers, full in ((2, [1]), (9, [7]), (None, [7, 15, 23, 31])):
        cfg = qwen2_5_vl_config("3b", ids, layers=layers)
        text, vision = cfg.text_config, cfg.vision_config
        assert (text.vocab_size, text.hidden_size, text.intermediate_size) == (151936, 2048, 11008)
        assert (text.num_attention_heads, text.num_key_value_heads) == (16, 2)
        assert (vision.hidden_size, vision.window_size, vision.out_hidden_size) == (1280, 112, 2048)
        assert vision.fullatt_block_indexes == full and all(i < vision.depth for i in full)
        assert text.num_hidden_layers == (layers or 36)
    seven = qwen2_5_vl_config("7b", ids, layers=1)
    assert (seven.text_config.hidden_size, seven.text_config.num_key_value_heads) == (3584, 4)


def test_bad_shape_flags_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="give --shape too"):
        build_tiny_model(tmp_path / "a", layers=2)
    with pytest.raises(ValueError, match="Qwen2.5-VL shape"):
        build_tiny_model(tmp_path / "b", family="qwen2_vl", shape="3b", layers=1)
    with pytest.raises(ValueError, match="unknown shape"):
        build_tiny_model(tmp_path / "c", shape="1b")


def test_vllm_requests_from_a_hub_folder(hub_dir: Path, toy: tuple[Path, Path]) -> None:
    from geo_r.data import load_records
    from geo_r.eval import vllm_backend as vb
    from geo_r.models.processor import family_of, load_processor

    records, _ = load_records(str(toy[0]), str(toy[1]))
    processor = load_processor(hub_dir, min_pixels=3136, max_pixels=12544)
    requests = vb.build_requests(processor, records[:2], factor=family_of("qwen2_5_vl").factor,
                                 min_pixels=3136, max_pixels=12544)
    for request in requests:
        (img,) = request["multi_modal_data"]["image"]
        assert img.size[0] * img.size[1] <= 12544 and request["prompt"].count("<|image_pad|>") == 1


@pytest.mark.slow
def test_grpo_sft_and_eval_run_on_a_hub_folder(hub_dir: Path, toy: tuple[Path, Path], tmp_path: Path) -> None:
    from geo_r.eval.cli import main as eval_main

    data, images = toy
    common = ["--model_name_or_path", str(hub_dir), "--data_file_paths", str(data), "--image_folders", str(images),
              "--max_steps", "1", "--report_to", "none", "--save_strategy", "no", *PIXELS]
    log = _run([sys.executable, str(REPO / "src" / "geo_r" / "grpo_jsonl.py"), *common,
                "--output_dir", str(tmp_path / "grpo"), "--per_device_train_batch_size", "2",
                "--num_generations", "2", "--max_completion_length", "8", "--torch_dtype", "float32",
                "--reward_funcs", "format", "distance"])
    assert "(command line) override" in log and "12845056" in log
    assert json.loads((tmp_path / "grpo" / "trainer_state.json").read_text())["global_step"] == 1
    _run([sys.executable, "-m", "geo_r.cli", "sft", *common, "--output_dir", str(tmp_path / "sft"),
          "--per_device_train_batch_size", "2", "--use_cpu", "true", "--bf16", "false"])
    assert (tmp_path / "sft" / "model.safetensors").is_file()
    out = tmp_path / "eval"
    assert eval_main(["--model_name_or_path", str(hub_dir), "--data_file_paths", str(data), "--image_folders",
                      str(images), "--output_dir", str(out), "--max_new_tokens", "4", "--no_progress",
                      "--max_samples", "2", *PIXELS]) == 0
    assert json.loads((out / "metrics.json").read_text())["n"] == 2
