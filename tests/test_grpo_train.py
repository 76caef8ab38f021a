"""Real GRPO steps on the tiny model: in-process, LoRA, the VLM-R1 command line, resume, torchrun x2, ZeRO-3.

A random model earns 0 from the geographic rewards, so each run adds a test-only length reward
(tests/rewards_for_tests.py, loaded by the entrypoint as ``file.py:function``) to give the groups variance;
the tests then check that weights really changed and that every reward and geo metric was logged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from geo_r.demo.toy_data import write_toy_dataset

REPO = Path(__file__).resolve().parents[1]
ENTRY = REPO / "src" / "geo_r" / "grpo_jsonl.py"
LENGTH_REWARD = f"{REPO / 'tests' / 'rewards_for_tests.py'}:length_reward"
pytestmark = pytest.mark.slow

# VLM-R1's run_grpo_rec.sh flags as written (paths, batch sizes and the GPU-only DeepSpeed config aside), plus the
# test-only length reward and fp32 weights for a fast CPU run.
VLMR1_FLAGS = [
    "--use_vllm", "False", "--resume_from_checkpoint", "True",
    "--is_reward_customized_from_vlm_module", "True", "--task_type", "rec",
    "--gradient_accumulation_steps", "1", "--gradient_checkpointing", "true",
    "--num_train_epochs", "2", "--bf16", "--attn_implementation", "flash_attention_2",
    "--run_name", "tiny-vlmr1", "--data_seed", "42", "--save_steps", "2",
    "--reward_funcs", "accuracy", "format", LENGTH_REWARD, "--beta", "0.04", "--report_to", "wandb",
    "--dataset-name", "this_is_not_used", "--max_prompt_length", "1024", "--torch_dtype", "float32",
]


@pytest.fixture(scope="module")
def toy_sets(tmp_path_factory):
    """Two toy data files with their own image folders, as --data_file_paths a:b --image_folders x:y."""
    root = tmp_path_factory.mktemp("toy")
    a = write_toy_dataset(root / "a", n=12, seed=1)
    b = write_toy_dataset(root / "b", n=12, seed=2)
    return f"{a}:{b}", f"{root / 'a' / 'images'}:{root / 'b' / 'images'}"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               WANDB_MODE="", PYTHONUNBUFFERED="1")
    env.pop("WANDB_API_KEY", None)
    return env


def _common_flags(model_dir, data, images, out, steps: int) -> list[str]:
    return [
        "--model_name_or_path", str(model_dir),
        "--data_file_paths", data, "--image_folders", images,
        "--output_dir", str(out),
        "--max_steps", str(steps),
        "--per_device_train_batch_size", "4", "--num_generations", "4",
        "--max_completion_length", "16",
        "--learning_rate", "1e-3",
        "--logging_steps", "1",
        "--max_pixels", "12544", "--min_pixels", "3136",
        "--seed", "0",
    ]


def _run(cmd: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-8000:]}")
    return proc


def _state(out: Path) -> dict:
    return json.loads((out / "trainer_state.json").read_text())


def _assert_logged(state: dict, reward_names: list[str]) -> None:
    logs = [e for e in state["log_history"] if "reward" in e]
    assert logs, "no training log entries"
    for name in reward_names:
        assert all(f"rewards/{name}/mean" in e for e in logs), f"rewards/{name}/mean not logged"
    for key in ("geo/parse_rate", "geo/acc@2500km", "geo/best_of_group_acc@25km", "geo/best_of_group_acc@750km"):
        assert all(key in e for e in logs), f"{key} not logged"
    assert all(0.0 <= e["geo/parse_rate"] <= 1.0 for e in logs)
    # a group's best answer is at least as good as its average one
    assert all(e["geo/best_of_group_acc@750km"] >= e["geo/acc@750km"] for e in logs)


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().float() for k, v in model.state_dict().items()}


def _changed(before: dict, after: dict) -> list[str]:
    return [k for k in before if not torch.equal(before[k], after[k])]


def test_inprocess_grpo_changes_weights_and_logs_each_reward(tiny_model_dir, toy_sets, tmp_path):
    from trl import GRPOConfig

    from geo_r.data import build_grpo_dataset, load_records
    from geo_r.models.loading import load_model
    from geo_r.models.processor import load_processor
    from geo_r.rewards import get_reward_funcs
    from geo_r.trainer.grpo_trainer import GeoGRPOTrainer

    data, images = toy_sets
    records, _ = load_records(data, images, derive_chains=True)
    dataset = build_grpo_dataset(records)
    model = load_model(tiny_model_dir, dtype=torch.float32, attn_implementation="sdpa")
    before = _weights(model)
    args = GRPOConfig(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4, num_generations=4,
                      max_completion_length=16, learning_rate=1e-3, logging_steps=1, report_to="none", bf16=False,
                      use_cpu=True, save_strategy="no", seed=0, beta=0.04)
    trainer = GeoGRPOTrainer(
        model=model, args=args, train_dataset=dataset,
        reward_funcs=get_reward_funcs(["format", "distance", "region", LENGTH_REWARD]),
        processing_class=load_processor(tiny_model_dir, min_pixels=3136, max_pixels=12544),
    )
    trainer.train()
    assert trainer.state.global_step == 2
    changed = _changed(before, _weights(trainer.model))
    assert len(changed) > len(before) // 2, f"only {len(changed)}/{len(before)} tensors changed"
    assert any(".visual." in k for k in changed), "the vision tower got no update"
    _assert_logged({"log_history": trainer.state.log_history}, ["format", "distance", "region", "length_reward"])


def test_lora_stays_out_of_the_vision_tower_and_trains(tiny_model_dir, toy_sets, tmp_path):
    from geo_r.data import build_grpo_dataset, load_records
    from geo_r.models.arguments import GeoModelArguments
    from geo_r.models.loading import load_model
    from geo_r.models.lora import build_lora_config
    from geo_r.models.processor import load_processor
    from geo_r.rewards import get_reward_funcs
    from geo_r.trainer.config import GeoGRPOConfig
    from geo_r.trainer.grpo_trainer import GeoGRPOTrainer

    data, images = toy_sets
    records, _ = load_records(data, images)
    model = load_model(tiny_model_dir, dtype=torch.float32, attn_implementation="sdpa")
    args = GeoGRPOConfig(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4, num_generations=4,
                         max_completion_length=16, learning_rate=1e-2, logging_steps=1, report_to="none", bf16=False,
                         use_cpu=True, save_strategy="no", seed=0, freeze_vision_modules=True)
    lora = build_lora_config(GeoModelArguments(use_peft=True, lora_r=4, lora_alpha=8))
    trainer = GeoGRPOTrainer(
        model=model, args=args, train_dataset=build_grpo_dataset(records),
        reward_funcs=get_reward_funcs(["format", LENGTH_REWARD]),
        processing_class=load_processor(tiny_model_dir, min_pixels=3136, max_pixels=12544),
        peft_config=lora,
    )
    names = [n for n, _ in trainer.model.named_parameters() if "lora_" in n]
    assert names and not [n for n in names if ".visual." in n], "LoRA adapter inside the vision tower"
    assert any(".language_model." in n for n in names)
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    lora_before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_B" in n}
    trainer.train()
    after = dict(trainer.model.named_parameters())
    assert any(not torch.equal(v, after[n].detach()) for n, v in lora_before.items()), "LoRA weights did not move"


def test_vlmr1_command_line_checkpoint_and_resume(tiny_model_dir, toy_sets, tmp_path):
    """The VLM-R1 flag set as written (minus GPU-only DeepSpeed), then --resume_from_checkpoint True continues."""
    data, images = toy_sets
    out = tmp_path / "run"
    vlmr1 = VLMR1_FLAGS
    first = _run([sys.executable, str(ENTRY), *_common_flags(tiny_model_dir, data, images, out, 2), *vlmr1])
    log = first.stdout + first.stderr
    for needle in ("no checkpoint-* in", "--max_prompt_length 1024 ignored", "--task_type rec ignored",
                   "--report_to wandb dropped", "using 'sdpa' instead"):
        assert needle.lower() in log.lower(), f"missing log line: {needle}"
    assert (out / "checkpoint-2").is_dir()
    _assert_logged(_state(out), ["distance", "format", "length_reward"])

    second = _run([sys.executable, str(ENTRY), *_common_flags(tiny_model_dir, data, images, out, 3), *vlmr1])
    assert "resuming from" in (second.stdout + second.stderr) and "checkpoint-2" in (second.stdout + second.stderr)
    assert _state(out)["global_step"] == 3


@pytest.mark.distributed
def test_torchrun_two_processes_two_datasets(tiny_model_dir, toy_sets, tmp_path, free_port):
    """The issue's must-show: torchrun x2, two jsonl files with their image folders, the VLM-R1 flag set."""
    from transformers import AutoModelForImageTextToText

    data, images = toy_sets
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port),
           str(ENTRY), *_common_flags(tiny_model_dir, data, images, out, 2),
           "--per_device_train_batch_size", "2", "--num_generations", "4", *VLMR1_FLAGS,
           "--reward_funcs", "format", "distance", "region", LENGTH_REWARD]
    _run(cmd)
    _assert_logged(_state(out), ["format", "distance", "region", "length_reward"])
    model = AutoModelForImageTextToText.from_pretrained(out / "checkpoint-2")
    assert model.config.model_type == "qwen2_5_vl"
    assert (out / "checkpoint-2" / "trainer_state.json").is_file()


@pytest.mark.distributed
@pytest.mark.usefixtures("zero3_on_cpu")
def test_deepspeed_zero3_with_reference_model(tiny_model_dir, toy_sets, tmp_path, free_port):
    """ZeRO-3 really partitions (persistence thresholds 0) and beta > 0 loads a reference model: VLM-R1 crashes here."""
    data, images = toy_sets
    cfg = json.loads((REPO / "local_scripts" / "zero3.json").read_text())
    cfg["zero_optimization"].update(stage3_param_persistence_threshold=0, stage3_model_persistence_threshold=0)
    ds_cfg = tmp_path / "zero3_tiny.json"
    ds_cfg.write_text(json.dumps(cfg))
    out = tmp_path / "z3"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port),
           str(ENTRY), *_common_flags(tiny_model_dir, data, images, out, 2),
           "--per_device_train_batch_size", "2", "--num_generations", "4",
           "--deepspeed", str(ds_cfg), "--beta", "0.04", "--bf16", "false", "--save_strategy", "no",
           "--reward_funcs", "format", LENGTH_REWARD, "--report_to", "none"]
    _run(cmd, timeout=900)
    state = _state(out)
    assert state["global_step"] == 2
    logs = [e for e in state["log_history"] if "kl" in e]
    assert logs and abs(logs[0]["kl"]) < 1e-6, "KL at the first step must be 0 (policy == reference)"
    _assert_logged(state, ["format", "length_reward"])
