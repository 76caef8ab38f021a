"""Built-in SFT on the tiny model: loss on the answer only, the loss falls, LoRA merges, the output feeds GRPO."""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from geo_r.demo.toy_data import write_toy_dataset

REPO = Path(__file__).resolve().parents[1]
GRPO_ENTRY = REPO / "src" / "geo_r" / "grpo_jsonl.py"
PIXELS = {"max_pixels": 12544, "min_pixels": 3136}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONUNBUFFERED="1")
    return env


def _run(cmd: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def _parse(flags: list[str]):
    from geo_r.sft.arguments import parse_namespace
    from geo_r.sft.train import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parse_namespace(parser.parse_args(flags))


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("sft-toy")
    return write_toy_dataset(root, n=16, seed=5), root / "images"


def _configs(model_dir, toy, out, **training):
    from trl import SFTConfig

    from geo_r.models.arguments import GeoModelArguments
    from geo_r.sft.arguments import SFTScriptArguments

    data, images = toy
    lora = training.pop("lora", False)
    script = SFTScriptArguments(data_file_paths=str(data), image_folders=str(images), freeze_vision_modules=True,
                                **PIXELS)
    model_args = GeoModelArguments(model_name_or_path=str(model_dir), use_peft=lora, lora_r=4, lora_alpha=8)
    defaults = dict(output_dir=str(out), per_device_train_batch_size=4, per_device_eval_batch_size=8, bf16=False,
                    use_cpu=True, report_to="none", save_strategy="no", seed=0, logging_steps=5)
    return script, model_args, SFTConfig(**{**defaults, **training})


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    """The saved tensors, by checkpoint name: the language model under ``model.``, the vision tower under ``visual.``."""
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_collator_puts_the_loss_on_the_answer_and_end_of_turn_only(tiny_model_dir, toy, tmp_path):
    from geo_r.sft.train import build_sft_trainer

    trainer, report = build_sft_trainer(*_configs(tiny_model_dir, toy, tmp_path, max_steps=1))
    assert report.examples == 16 and report.answers["rendered"] == 16
    rows = [trainer.train_dataset[i] for i in range(3)]
    answers = [r["completion"][0]["content"][0]["text"] for r in rows]
    batch = trainer.data_collator(rows)
    tok = trainer.processing_class.tokenizer
    image_pad = tok.convert_tokens_to_ids("<|image_pad|>")
    assert "pixel_values" in batch and "mm_token_type_ids" in batch
    for i, answer in enumerate(answers):
        ids, labels = batch["input_ids"][i], batch["labels"][i]
        learned = ids[labels != -100]
        assert tok.decode(learned) == answer + "<|im_end|>\n"
        assert (ids == image_pad).sum() > 0 and not (labels == image_pad).any()
        prompt_text = tok.decode(ids[(labels == -100) & (batch["attention_mask"][i] == 1)])
        assert prompt_text.endswith("<|im_start|>assistant\n") and "You are a geographic reasoning agent" in prompt_text


@pytest.fixture(scope="module")
def trained(tiny_model_builder, toy, tmp_path_factory):
    """40 full-SFT steps on 16 toy photos, evaluated on the same fixed set before and after, then saved."""
    from geo_r.sft.train import build_sft_trainer, save_for_grpo

    base = tiny_model_builder("qwen2_5_vl", "tiny", 0)
    out = tmp_path_factory.mktemp("sft-full")
    script, model_args, args = _configs(base, toy, out, max_steps=40, learning_rate=2e-3,
                                        lr_scheduler_type="constant")
    trainer, _ = build_sft_trainer(script, model_args, args)
    before = trainer.evaluate(eval_dataset=trainer.train_dataset)["eval_loss"]
    trainer.train()
    after = trainer.evaluate(eval_dataset=trainer.train_dataset)["eval_loss"]
    save_for_grpo(trainer, script, model_args, str(out))
    trainer.save_state()
    return {"base": base, "out": out, "before": before, "after": after,
            "losses": [e["loss"] for e in trainer.state.log_history if "loss" in e]}


@pytest.mark.slow
def test_loss_on_a_fixed_set_falls_clearly(trained):
    assert trained["before"] > 6.0  # a random 1.5k-token model starts near ln(vocab) = 7.3
    assert trained["after"] < 0.6 * trained["before"], (trained["before"], trained["after"])
    losses = trained["losses"]
    assert len(losses) == 8 and losses[-1] < losses[0]


@pytest.mark.slow
def test_saved_folder_is_a_standard_checkpoint_with_the_grpo_pixel_limits(trained):
    from geo_r.models.loading import load_model
    from geo_r.models.processor import load_processor, pixel_limits

    out, base = trained["out"], trained["base"]
    assert pixel_limits(load_processor(out)) == (3136, 12544)
    model = load_model(out, dtype=torch.float32)
    assert model.config.model_type == "qwen2_5_vl"
    before, after = _weights(base), _weights(out)
    assert set(before) == set(after)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any(k.startswith("model.layers.") for k in changed)
    assert not [k for k in changed if k.startswith("visual.")], "the frozen vision tower changed"
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 40


@pytest.mark.slow
def test_grpo_entrypoint_trains_from_the_sft_output(trained, toy, tmp_path):
    data, images = toy
    out = tmp_path / "grpo"
    _run([sys.executable, str(GRPO_ENTRY), "--model_name_or_path", str(trained["out"]),
          "--data_file_paths", str(data), "--image_folders", str(images), "--output_dir", str(out),
          "--max_steps", "1", "--per_device_train_batch_size", "4", "--num_generations", "4",
          "--max_completion_length", "16", "--max_pixels", "12544", "--bf16", "false", "--report_to", "none",
          "--save_strategy", "no", "--reward_funcs", "format", "distance", "region", "--logging_steps", "1"])
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 1
    assert any("rewards/format/mean" in e for e in state["log_history"])


@pytest.mark.slow
def test_lora_sft_keeps_the_adapter_and_writes_a_merged_model(tiny_model_dir, toy, tmp_path):
    from geo_r.sft.train import ADAPTER_SUBDIR, train_sft

    out = tmp_path / "lora"
    script, model_args, args = _configs(tiny_model_dir, toy, out, max_steps=3, learning_rate=1e-2, lora=True)
    assert train_sft(script, model_args, args) == out
    adapter = json.loads((out / ADAPTER_SUBDIR / "adapter_config.json").read_text())
    targets = adapter["target_modules"]
    assert "language_model" in (targets if isinstance(targets, str) else " ".join(targets))
    assert not (out / "adapter_config.json").exists(), "a top-level adapter would be re-applied on load"
    before, after = _weights(tiny_model_dir), _weights(out)
    assert set(before) == set(after)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed and all(k.startswith("model.layers.") for k in changed)


def test_max_length_that_cuts_image_tokens_is_refused(tiny_model_dir, toy, caplog):
    from geo_r.data import load_records
    from geo_r.models.processor import load_processor
    from geo_r.sft.examples import build_sft_examples
    from geo_r.sft.train import SFTSetupError, check_lengths

    records, _ = load_records(str(toy[0]), str(toy[1]), derive_chains=True)
    examples, _ = build_sft_examples(records)
    processor = load_processor(tiny_model_dir, **PIXELS)
    prompt_len, full_len = check_lengths(examples, processor, 4096, 12544)
    assert 16 < prompt_len < full_len < 4096  # 16 image tokens at most at 12544 pixels, then the question and answer
    with pytest.raises(SFTSetupError, match=r"is too short.*up to 16 tokens at --max_pixels 12544"):
        check_lengths(examples, processor, prompt_len, 12544)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="geo_r.sft"):
        check_lengths(examples, processor, prompt_len + 1, 12544)  # the prompt fits, the longest answer does not
        assert "may cut the longest answer" in caplog.text
        caplog.clear()
        check_lengths(examples, processor, full_len, 12544)
        assert "may cut" not in caplog.text


def test_flags_bare_booleans_and_yaml_config(tmp_path):
    config = tmp_path / "recipe.yaml"
    config.write_text("learning_rate: 3.0e-5\nmax_pixels: 12544\nlora_r: 16\nenv:\n  GEO_R_TEST_SFT_ENV: set\n")
    script, model_args, training = _parse([
        "--config", str(config), "--data_file_paths", "a.jsonl", "--model_name_or_path", "m", "--bf16",
        "--use_peft", "--lora_r", "8", "--output_dir", str(tmp_path / "o"), "--use_cpu", "true"])
    assert training.bf16 is True and model_args.use_peft is True
    assert model_args.lora_r == 8 and training.learning_rate == 3e-5 and script.max_pixels == 12544
    assert script.target == "auto" and script.merge_lora is True and os.environ["GEO_R_TEST_SFT_ENV"] == "set"
    config.write_text("learning_rat: 1.0\n")
    with pytest.raises(ValueError, match="unknown setting.*learning_rat"):
        _parse(["--config", str(config), "--output_dir", str(tmp_path / "o"), "--use_cpu", "true"])


def test_cli_help_lists_geo_and_trl_flags_and_bad_data_is_reported(tmp_path, capsys):
    from geo_r.cli import main as cli_main

    with pytest.raises(SystemExit) as exc:
        cli_main(["sft", "--help"])
    assert exc.value.code == 0
    help_text = capsys.readouterr().out
    for flag in ("--data_file_paths", "--max_pixels", "--target", "--use_peft", "--deepspeed", "--max_length"):
        assert flag in help_text
    rc = cli_main(["sft", "--model_name_or_path", "m", "--data_file_paths", str(tmp_path / "nope.jsonl"),
                   "--output_dir", str(tmp_path / "o"), "--bf16", "false"])
    assert rc == 1 and "nope.jsonl" in capsys.readouterr().err


@pytest.mark.distributed
@pytest.mark.usefixtures("zero3_on_cpu")
def test_torchrun_two_processes_with_the_zero3_config(tiny_model_dir, toy, tmp_path, free_port):
    """The GRPO ZeRO-3 config (partitioning forced on the tiny model) under torchrun; the gathered save is whole."""
    cfg = json.loads((REPO / "local_scripts" / "zero3.json").read_text())
    cfg["zero_optimization"].update(stage3_param_persistence_threshold=0, stage3_model_persistence_threshold=0)
    ds_cfg = tmp_path / "zero3_tiny.json"
    ds_cfg.write_text(json.dumps(cfg))
    data, images = toy
    out = tmp_path / "z3"
    _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port),
          "-m", "geo_r.sft.train", "--model_name_or_path", str(tiny_model_dir), "--data_file_paths", str(data),
          "--image_folders", str(images), "--output_dir", str(out), "--max_steps", "2",
          "--per_device_train_batch_size", "2", "--learning_rate", "1e-3", "--bf16", "false", "--report_to", "none",
          "--save_strategy", "no", "--max_pixels", "12544", "--deepspeed", str(ds_cfg), "--logging_steps", "1"],
         timeout=900)
    before, after = _weights(tiny_model_dir), _weights(out)
    assert set(before) == set(after)
    assert all(before[k].shape == after[k].shape for k in before), "a ZeRO-3 shard was saved instead of the whole"
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("model.layers."))
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and any("loss" in e for e in state["log_history"])


@pytest.mark.slow
def test_run_sft_builtin_script_trains_with_env_overrides(tiny_model_dir, toy, tmp_path, free_port):
    """``run_scripts/run_sft.sh --builtin``: torchrun -m geo_r.sft.train with the script's flags, extra flags last."""
    data, images = toy
    env = _env()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(VIRTUAL_ENV=sys.prefix, MODEL_PATH=str(tiny_model_dir), DATA_PATHS=str(data), IMAGE_FOLDERS=str(images),
               OUTPUT_DIR=str(tmp_path / "out"), DEEPSPEED_CONFIG="", BF16="false", MAX_PIXELS="12544",
               NPROC_PER_NODE="1", MASTER_PORT=str(free_port))
    proc = subprocess.run(["bash", "run_scripts/run_sft.sh", "--builtin", "--max_steps", "2", "--logging_steps", "1",
                           "--save_strategy", "no", "--attn_implementation", "sdpa"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert f"MODEL_PATH={tmp_path / 'out'}" in proc.stdout
    state = json.loads((tmp_path / "out" / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and [e for e in state["log_history"] if "loss" in e]
    assert (tmp_path / "out" / "model.safetensors").is_file()
