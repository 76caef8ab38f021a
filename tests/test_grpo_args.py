"""The GRPO entrypoint's command line: VLM-R1's flag set parses, each foreign flag is explained, --help is complete."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from geo_r.grpo.arguments import GeoModelArguments, GeoScriptArguments, VLMR1CompatArguments
from geo_r.grpo.compat import reconcile
from geo_r.grpo_jsonl import parse_args
from geo_r.runtime.checkpoints import newest_checkpoint, resolve_resume
from geo_r.trainer.config import GEO_FIELDS, GeoGRPOConfig, geo_option, group_filter_config

REPO = Path(__file__).resolve().parents[1]

# VLM-R1's run_grpo_rec.sh, flag for flag (paths replaced), plus the flags its other scripts and the seed README use.
VLMR1_FLAGS = [
    "--use_vllm", "False",
    "--output_dir", "OUT",
    "--resume_from_checkpoint", "True",
    "--model_name_or_path", "MODEL",
    "--data_file_paths", "a.jsonl:b.jsonl",
    "--image_folders", "imgs_a/:imgs_b/",
    "--is_reward_customized_from_vlm_module", "True",
    "--task_type", "rec",
    "--per_device_train_batch_size", "8",
    "--gradient_accumulation_steps", "2",
    "--gradient_checkpointing", "true",
    "--logging_steps", "1",
    "--num_train_epochs", "2",
    "--bf16",
    "--attn_implementation", "flash_attention_2",
    "--run_name", "Qwen2.5-VL-3B-GRPO-REC",
    "--data_seed", "42",
    "--save_steps", "100",
    "--num_generations", "8",
    "--max_completion_length", "2048",
    "--reward_funcs", "accuracy", "format",
    "--beta", "0.04",
    "--report_to", "wandb",
    "--dataset-name", "this_is_not_used",
    "--max_prompt_length", "1024",
    "--max_pixels", "401408",
    "--min_pixels", "3136",
    "--torch_dtype", "bfloat16",
    "--use_peft", "true", "--lora_r", "64", "--lora_alpha", "128", "--lora_dropout", "0.05",
    "--lora_task_type", "CAUSAL_LM", "--freeze_vision_modules", "true",
    "--epsilon", "0.2", "--epsilon_high", "0.28", "--temperature", "0.9",
    "--val_split_ratio", "0.1", "--save_only_model", "true", "--learning_rate", "1e-5",
]


@pytest.fixture(scope="module")
def parsed():
    script, rewards, model, compat, training = parse_args(VLMR1_FLAGS)
    return script, rewards, model, compat, training


def test_vlmr1_flag_set_parses_and_is_honoured(parsed):
    script, _rewards, model, _compat, training = parsed
    assert script.data_file_paths == "a.jsonl:b.jsonl" and script.image_folders == "imgs_a/:imgs_b/"
    assert script.reward_funcs == ["accuracy", "format"]
    assert (script.max_pixels, script.min_pixels, script.val_split_ratio) == (401408, 3136, 0.1)
    assert model.use_peft and model.lora_r == 64 and model.lora_alpha == 128 and training.freeze_vision_modules
    assert training.beta == 0.04 and training.epsilon == 0.2 and training.epsilon_high == 0.28
    assert training.temperature == 0.9 and training.num_generations == 8 and training.max_completion_length == 2048
    assert training.bf16 is True and training.data_seed == 42 and training.save_only_model is True
    assert training.use_vllm is False and training.gradient_checkpointing is True


def test_foreign_flags_are_explained_not_ignored(parsed, monkeypatch):
    script, _rewards, model, compat, training = parsed
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    script, model, compat = (dataclasses.replace(x) for x in (script, model, compat))
    training = SimpleNamespace(report_to=list(training.report_to))
    notes = "\n".join(reconcile(script, model, compat, training))
    for needle in ("--max_prompt_length 1024 ignored", "--max_pixels 401408", "--task_type rec ignored",
                   "--is_reward_customized_from_vlm_module True ignored", "--dataset_name this_is_not_used ignored",
                   "--report_to wandb dropped", "--torch_dtype bfloat16"):
        assert needle in notes, needle
    assert model.dtype == "bfloat16"
    assert "wandb" not in training.report_to


def test_dtype_conflict_is_refused(parsed):
    script, _rewards, model, compat, _training = parsed
    model = dataclasses.replace(model, dtype="float32")
    with pytest.raises(ValueError, match="contradicts"):
        reconcile(dataclasses.replace(script), model, compat, SimpleNamespace(report_to=[]))


def test_mixture_yaml_is_refused_clearly(parsed, tmp_path):
    script, _rewards, model, _compat, _training = parsed
    script = dataclasses.replace(script, dataset_name="data_config/rec.yaml")
    with pytest.raises(ValueError, match="--data_file_paths"):
        reconcile(script, dataclasses.replace(model), VLMR1CompatArguments(), SimpleNamespace(report_to=[]))


def test_resume_true_finds_newest_checkpoint_or_starts_fresh(tmp_path):
    assert resolve_resume("True", str(tmp_path))[0] is None
    assert "starting fresh" in resolve_resume("True", str(tmp_path))[1]
    for step in (5, 40, 100):
        ckpt = tmp_path / f"checkpoint-{step}"
        ckpt.mkdir()
        for name in ("trainer_state.json", "model.safetensors", "optimizer.pt", "rng_state.pth"):
            (ckpt / name).write_text("x")
    (tmp_path / "checkpoint-final").mkdir()
    assert newest_checkpoint(tmp_path) == tmp_path / "checkpoint-100"
    assert resolve_resume("True", str(tmp_path))[0] == str(tmp_path / "checkpoint-100")
    assert resolve_resume("False", str(tmp_path)) == (None, None)
    with pytest.raises(FileNotFoundError):
        resolve_resume(str(tmp_path / "nope"), str(tmp_path))


@pytest.mark.parametrize("cls", [GeoScriptArguments, GeoModelArguments, VLMR1CompatArguments, GeoGRPOConfig])
def test_every_geo_flag_has_help(cls):
    for f in dataclasses.fields(cls):
        assert f.metadata.get("help", "").strip(), f"{cls.__name__}.{f.name} has no help text"


def test_trainer_settings_live_in_one_config(parsed):
    """The settings that change GeoGRPOTrainer's behaviour are GeoGRPOConfig fields, parsed from the command line."""
    training = parsed[-1]
    assert isinstance(training, GeoGRPOConfig)
    assert set(GEO_FIELDS) == {"freeze_vision_modules", "vision_reuse", "vision_cache_max_mb", "vision_timing",
                               "group_filter", "group_filter_tol", "group_filter_max_tries"}
    _s, _r, _m, _c, training = parse_args(["--output_dir", "OUT", "--group_filter", "zero_std", "--vision_reuse",
                                           "false", "--vision_timing", "true", "--group_filter_max_tries", "5"])
    assert (training.group_filter, training.group_filter_max_tries) == ("zero_std", 5)
    assert not training.vision_reuse and training.vision_timing


def test_out_of_range_trainer_settings_are_refused_with_the_flag_named():
    from geo_r.grpo.main import main

    with pytest.raises(SystemExit, match="--group_filter_tol must be >= 0"):
        main(["--output_dir", "OUT", "--group_filter_tol", "-1"])
    with pytest.raises(SystemExit, match="--vision_cache_max_mb must be >= 0"):
        main(["--output_dir", "OUT", "--vision_cache_max_mb", "-5"])


def test_plain_grpo_config_gets_the_geo_defaults():
    from trl import GRPOConfig

    plain = GRPOConfig(output_dir="OUT", use_cpu=True, report_to="none")
    assert {name: geo_option(plain, name) for name in GEO_FIELDS} == GEO_FIELDS
    assert group_filter_config(plain).mode == "none"


def test_old_trainer_keyword_arguments_point_to_the_config():
    from geo_r.trainer.grpo_trainer import GeoGRPOTrainer

    with pytest.raises(TypeError, match="vision_reuse are GeoGRPOConfig fields"):
        GeoGRPOTrainer(model="unused", vision_reuse=False)


def test_help_documents_every_vlmr1_flag():
    out = subprocess.run(
        [sys.executable, str(REPO / "src/geo_r/grpo_jsonl.py"), "--help"],
        capture_output=True, text=True, timeout=300, check=True,
    ).stdout
    flags = {a for a in VLMR1_FLAGS if a.startswith("--")} | {"--reward_weights", "--deepspeed", "--dtype"}
    flags |= {f"--{name}" for name in GEO_FIELDS}
    for flag in flags:
        assert flag in out, f"{flag} missing from --help"
    assert "never truncated" in out  # the reason --max_prompt_length is ignored is in the help itself


def test_geo_r_grpo_is_the_entrypoint_run():
    """``geo-r grpo`` takes the same flags as ``grpo_jsonl.py`` (one parser: the help texts are the same)."""
    def options(cmd):
        out = subprocess.run([sys.executable, *cmd, "--help"], capture_output=True, text=True, timeout=300,
                             check=True, env={**os.environ, "COLUMNS": "200"}).stdout
        return sorted(set(re.findall(r"--[a-z][a-z0-9_]+", out)))

    entry = options([str(REPO / "src/geo_r/grpo_jsonl.py")])
    assert options(["-m", "geo_r.cli", "grpo"]) == entry
    assert "--vision_reuse" in entry and "--group_filter" in entry


def test_old_trainer_flags_are_renamed_or_explained():
    script, _rewards, model, compat, training = parse_args([
        "--output_dir", "OUT", "--vllm_device", "cuda:7", "--vllm_enable_prefix_caching",
        "--vllm_guided_decoding_regex", "[0-9]+", "--gradient_checkpointing_use_reentrant", "true",
        "--dataset_train_split", "train", "--ignore_bias_buffers", "--trust_remote_code", "true",
    ])
    notes = "\n".join(reconcile(script, model, compat, training))
    assert "--vllm_device cuda:7 ignored" in notes and "--vllm_enable_prefix_caching True ignored" in notes
    assert "--dataset_train_split train ignored" in notes and "--ignore_bias_buffers True ignored" in notes
    assert training.vllm_structured_outputs_regex == "[0-9]+"
    assert training.gradient_checkpointing_kwargs == {"use_reentrant": True}
    assert "--trust_remote_code has no effect" in notes


@pytest.mark.parametrize("flags, match", [
    (["--load_in_4bit", "true"], "quantized"),
    pytest.param(["--use_vllm", "True"], "vLLM is not installed",
                 marks=pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed")),
    (["--model_revision", "v1.0"], "--model_revision v1.0"),
])
def test_unsupported_model_flags_are_refused(flags, match):
    script, _rewards, model, compat, training = parse_args(["--output_dir", "OUT", *flags])
    with pytest.raises(ValueError, match=match):
        reconcile(script, model, compat, training)
