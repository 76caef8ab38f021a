"""Vision reuse in real GRPO steps: same seed, reuse on vs off gives the same completions, log-probs, loss, rewards.

In-process on the tiny models (frozen tower with a reference model, LoRA, a trained tower, multi-image rows, the
three Qwen-VL families), then ``torchrun`` x2 and DeepSpeed ZeRO-3 x2 through the entrypoint, plus a 2-process
check that a rank served wholly from the cache still runs the tower when the other rank encodes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from geo_r.demo.toy_data import write_toy_dataset
from trainer_fixtures import recording_trainer

REPO = Path(__file__).resolve().parents[1]
ENTRY = REPO / "src" / "geo_r" / "grpo_jsonl.py"
LENGTH_REWARD = f"{REPO / 'tests' / 'rewards_for_tests.py'}:length_reward"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def toy_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    return str(write_toy_dataset(root / "a", n=8, seed=1)), str(root / "a" / "images")


def _recorder_class():
    from geo_r.trainer.grpo_trainer import GeoGRPOTrainer

    return recording_trainer(GeoGRPOTrainer)


def _train(model_dir, toy_set, out, reuse, *, family_pixels=(3136, 12544), steps=2, multi_image=False,
           lora=False, freeze=True, beta=0.04, dtype=torch.float32, **config):
    from geo_r.data import build_grpo_dataset, load_records
    from geo_r.models.arguments import GeoModelArguments
    from geo_r.models.loading import load_model
    from geo_r.models.lora import build_lora_config
    from geo_r.models.processor import load_processor
    from geo_r.rewards import get_reward_funcs
    from geo_r.trainer.config import GeoGRPOConfig

    records, _ = load_records(*toy_set)
    if multi_image:
        # two photos per row, the first photo shared by every row: repeats across rows, not only within groups
        records = [dataclasses.replace(r, images=[*r.images, records[0].images[0]]) for r in records]
    model = load_model(model_dir, dtype=dtype, attn_implementation="eager")
    args = GeoGRPOConfig(output_dir=str(out), max_steps=steps, per_device_train_batch_size=8, num_generations=4,
                         max_completion_length=8, learning_rate=1e-3, logging_steps=1, report_to="none", bf16=False,
                         use_cpu=True, save_strategy="no", seed=0, beta=beta, freeze_vision_modules=freeze,
                         vision_reuse=reuse, **config)
    peft = build_lora_config(GeoModelArguments(use_peft=True, lora_r=4, lora_alpha=8)) if lora else None
    trainer = _recorder_class()(
        model=model, args=args, train_dataset=build_grpo_dataset(records),
        reward_funcs=get_reward_funcs(["format", LENGTH_REWARD]),
        processing_class=load_processor(model_dir, min_pixels=family_pixels[0], max_pixels=family_pixels[1]),
        peft_config=peft,
    )
    if not freeze:
        trainer.add_callback(_VisionGrads(trainer))
    trainer.train()
    return trainer


class _VisionGrads:
    """Keeps the vision tower's gradients of each optimizer step (read just before the optimizer steps)."""

    def __init__(self, trainer):
        self.trainer = trainer
        trainer.record["vision_grads"] = []

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.trainer.record["vision_grads"].append(
            {n: p.grad.detach().clone() for n, p in self.trainer.model.named_parameters()
             if ".visual." in f".{n}" and p.grad is not None})

    def __getattr__(self, name):
        if name.startswith("on_"):
            return lambda *a, **k: None
        raise AttributeError(name)


def _assert_same_run(on, off, bitwise=False):
    """Same completions and rewards; log-probs and loss within 1e-6, or bit for bit with ``bitwise``."""
    def same(a, b):
        return torch.equal(a, b) if bitwise else torch.allclose(a, b, atol=1e-6, rtol=0)

    for a, b in zip(on.record["completion_ids"], off.record["completion_ids"], strict=True):
        assert torch.equal(a, b), "completions differ"
    for key in ("ref", "old"):
        assert len(on.record[key]) == len(off.record[key])
        for a, b in zip(on.record[key], off.record[key], strict=True):
            assert same(a, b), f"{key} log-probs differ by {(a - b).abs().max()}"
    assert on.record["loss"] and len(on.record["loss"]) == len(off.record["loss"])
    for a, b in zip(on.record["loss"], off.record["loss"], strict=True):
        assert same(a, b), f"loss {a} vs {b}"
    logs_on = [e for e in on.state.log_history if "reward" in e]
    logs_off = [e for e in off.state.log_history if "reward" in e]
    assert logs_on and len(logs_on) == len(logs_off)
    for a, b in zip(logs_on, logs_off, strict=True):
        for key in [k for k in b if k.startswith("rewards/")] + ["reward"]:
            assert a[key] == b[key], key
    return [e for e in on.state.log_history if "vision/encodings" in e]


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
def test_frozen_tower_with_reference_model_is_exact(tiny_model_builder, toy_set, tmp_path, family):
    from geo_r.demo.tiny_model import default_pixel_limits

    model_dir = tiny_model_builder(family)
    pixels = default_pixel_limits(family)
    on = _train(model_dir, toy_set, tmp_path / "on", True, family_pixels=pixels)
    off = _train(model_dir, toy_set, tmp_path / "off", False, family_pixels=pixels)
    assert on.record["ref"], "beta > 0 must compute reference log-probs"
    logs = _assert_same_run(on, off, bitwise=True)
    after_off = dict(off.model.named_parameters())
    for name, p in on.model.named_parameters():  # the trained weights too, bit for bit
        assert torch.equal(p, after_off[name]), name
    # 8 rows = 2 photos x 4 generations per step; generation, reference and policy passes: 24 asked, 2 encoded
    assert [e["vision/encodings"] for e in logs] == [2.0, 2.0]
    assert [e["vision/images"] for e in logs] == [24.0, 24.0]
    assert [e["vision/images_processed"] for e in logs] == [2.0, 2.0]
    assert [e["vision/images_decoded"] for e in logs] == [2.0, 2.0]
    assert all(e["vision/cache_peak_mb"] > 0 for e in logs)
    assert not any("vision/seconds" in e for e in logs), "timed (device-synchronising) only with vision_timing"
    assert not [e for e in off.state.log_history if "vision/encodings" in e]


def test_lora_multi_image_and_old_logps_are_exact(tiny_model_dir, toy_set, tmp_path):
    # steps_per_generation 2: old log-probs are computed, and step 2 reuses step 1's rollout but not its encodings
    kw = dict(lora=True, multi_image=True, steps_per_generation=2, steps=2, vision_timing=True)
    on = _train(tiny_model_dir, toy_set, tmp_path / "on", True, **kw)
    off = _train(tiny_model_dir, toy_set, tmp_path / "off", False, **kw)
    assert on.record["old"] and on.record["ref"]
    logs = _assert_same_run(on, off, bitwise=True)
    # step 1 rolls out 16 rows (4 prompts x 4) of 2 photos: at most 5 distinct (4 own + the shared one), 112 asked
    # (generation, reference, old log-probs, policy); step 2 trains on 8 of those rows: nothing carried over
    first, second = logs
    assert first["vision/images"] == 112 and first["vision/encodings"] <= 5 and first["vision/cache_hits"] > 0
    assert second["vision/images"] == 16 and second["vision/cache_hits"] == 0 and 2 <= second["vision/encodings"] <= 5
    assert first["vision/seconds"] > 0 and second["vision/seconds"] > 0  # --vision_timing true


def test_trained_tower_dedups_and_trains_the_same(tiny_model_dir, toy_set, tmp_path):
    on = _train(tiny_model_dir, toy_set, tmp_path / "on", True, freeze=False, beta=0.0, steps=1)
    off = _train(tiny_model_dir, toy_set, tmp_path / "off", False, freeze=False, beta=0.0, steps=1)
    logs = _assert_same_run(on, off)
    # trained tower: no cache; each pass encodes each of the 2 photos once (generation, policy forward)
    assert [e["vision/encodings"] for e in logs] == [4.0] and logs[0]["vision/cache_hits"] == 0
    # the gradients reaching the tower: summed over a photo's copies by index_select's backward (reuse on) or
    # accumulated over separate encodings (off); equal up to float summation order
    (grads_on,), (grads_off,) = on.record["vision_grads"], off.record["vision_grads"]
    assert grads_on.keys() == grads_off.keys() and len(grads_on) > 10
    assert max(float(g.abs().max()) for g in grads_off.values()) > 1e-6, "the tower got no gradient to compare"
    for name, g in grads_off.items():
        assert torch.allclose(grads_on[name], g, rtol=1e-4, atol=1e-8), f"{name}: {(grads_on[name] - g).abs().max()}"
    assert _relative_gap(grads_on, grads_off) <= 1e-5  # float32 rounding only (measured 2.8e-7)


def _relative_gap(grads_on: dict, grads_off: dict) -> float:
    """|g_on - g_off| / |g_off| over every vision-tower gradient (Frobenius norms, in float32)."""
    num = sum(float((grads_on[k].float() - g.float()).pow(2).sum()) for k, g in grads_off.items())
    den = sum(float(g.float().pow(2).sum()) for g in grads_off.values())
    return (num / den) ** 0.5


def test_trained_tower_in_bf16_differs_only_by_rounding(tiny_model_dir, toy_set, tmp_path):
    """Trained tower, bf16 weights: reuse sums a photo's copies' gradients at the tower output (index_select's
    backward) and the tower backpropagates once; off, each copy backpropagates through the tower and the results
    are summed in the weights' gradients. Equal in exact arithmetic; in bf16 the two summation orders round
    differently. Same completions, loss and rewards; the tower's gradients within a few bf16 epsilons (2**-8)."""
    on = _train(tiny_model_dir, toy_set, tmp_path / "on", True, freeze=False, beta=0.0, steps=1, dtype=torch.bfloat16)
    off = _train(tiny_model_dir, toy_set, tmp_path / "off", False, freeze=False, beta=0.0, steps=1,
                 dtype=torch.bfloat16)
    _assert_same_run(on, off)
    (grads_on,), (grads_off,) = on.record["vision_grads"], off.record["vision_grads"]
    assert all(g.dtype == torch.bfloat16 for g in grads_off.values())
    gap = _relative_gap(grads_on, grads_off)
    # measured 3.3e-3 on this model (88 of 83,616 elements flip sign); in float32 the same step gives 2.8e-7
    assert gap <= 4 * 2**-8, f"bf16 vision-gradient gap {gap:.2e}"


def test_caller_config_is_not_mutated_and_positional_args_block(tiny_model_dir, toy_set, tmp_path):
    from trl import GRPOConfig

    from geo_r.data import build_grpo_dataset, load_records
    from geo_r.models.loading import load_model
    from geo_r.models.processor import load_processor, vision_special_token_ids
    from geo_r.rewards import get_reward_funcs
    from geo_r.trainer.grpo_trainer import GeoGRPOTrainer

    records, _ = load_records(*toy_set)
    processor = load_processor(tiny_model_dir, min_pixels=3136, max_pixels=12544)
    args = GRPOConfig(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=4, num_generations=4,
                      report_to="none", use_cpu=True)
    model = load_model(tiny_model_dir, dtype=torch.float32)
    # model, reward_funcs, args, train_dataset, eval_dataset, processing_class: all positional
    trainer = GeoGRPOTrainer(model, get_reward_funcs(["format"]), args, build_grpo_dataset(records), None, processor)
    assert args.generation_kwargs is None, "the caller's GRPOConfig was changed"
    blocked = set(trainer.args.generation_kwargs["suppress_tokens"])
    assert set(vision_special_token_ids(processor)) <= blocked
    assert set(vision_special_token_ids(processor)) <= set(trainer.generation_kwargs["suppress_tokens"])


# ------------------------------------------------------------------------------------------ multi-process


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO / "src"))
    return env


def _run_entry(model_dir, toy_set, out, port, reuse, extra):
    data, images = toy_set
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
           str(ENTRY), "--model_name_or_path", str(model_dir), "--data_file_paths", data, "--image_folders", images,
           "--output_dir", str(out), "--max_steps", "2", "--per_device_train_batch_size", "4",
           "--num_generations", "4", "--max_completion_length", "8", "--learning_rate", "1e-3",
           "--logging_steps", "1", "--max_pixels", "12544", "--min_pixels", "3136", "--seed", "0",
           "--reward_funcs", "format", LENGTH_REWARD, "--report_to", "none", "--save_strategy", "no",
           "--beta", "0.04", "--freeze_vision_modules", "true", "--torch_dtype", "float32",
           "--vision_reuse", str(reuse).lower(), *extra]
    proc = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise AssertionError(f"command failed ({proc.returncode})\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return json.loads((out / "trainer_state.json").read_text())["log_history"]


def _compare_logs(on, off):
    steps_on = [e for e in on if "loss" in e]
    steps_off = [e for e in off if "loss" in e]
    assert len(steps_on) == len(steps_off) == 2
    for a, b in zip(steps_on, steps_off, strict=True):
        assert abs(a["loss"] - b["loss"]) <= 1e-6 and abs(a["kl"] - b["kl"]) <= 1e-6
        assert a["reward"] == b["reward"] and a["completions/mean_length"] == b["completions/mean_length"]
    return steps_on


@pytest.mark.distributed
def test_torchrun_two_processes_exact(tiny_model_dir, toy_set, tmp_path, free_port):
    on = _run_entry(tiny_model_dir, toy_set, tmp_path / "on", free_port, True, [])
    off = _run_entry(tiny_model_dir, toy_set, tmp_path / "off", free_port, False, [])
    steps = _compare_logs(on, off)
    # 8 rows over 2 ranks = 2 photos x 4 generations; each rank encodes each photo it holds once per step
    assert all(e["vision/encodings"] <= 4 and e["vision/images"] == 24 for e in steps)


@pytest.mark.distributed
@pytest.mark.usefixtures("zero3_on_cpu")
def test_deepspeed_zero3_two_processes_exact(tiny_model_dir, toy_set, tmp_path, free_port):
    cfg = json.loads((REPO / "local_scripts" / "zero3.json").read_text())
    cfg["zero_optimization"].update(stage3_param_persistence_threshold=0, stage3_model_persistence_threshold=0)
    ds_cfg = tmp_path / "zero3_tiny.json"
    ds_cfg.write_text(json.dumps(cfg))
    extra = ["--deepspeed", str(ds_cfg), "--bf16", "false"]
    on = _run_entry(tiny_model_dir, toy_set, tmp_path / "on", free_port, True, extra)
    off = _run_entry(tiny_model_dir, toy_set, tmp_path / "off", free_port, False, extra)
    steps = _compare_logs(on, off)
    assert all(e["vision/encodings"] <= 4 and e["vision/images"] == 24 for e in steps)


def _uneven_worker(rank: int, model_dir: str, images: list[str], port: int, results) -> None:
    import torch.distributed as dist
    from PIL import Image

    from geo_r.models.loading import freeze_vision_tower, load_model
    from geo_r.models.processor import load_processor
    from geo_r.trainer.vision_cache import VisionReuseCache, find_vision_towers, install_vision_reuse

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    model = load_model(model_dir, dtype=torch.float32).eval()
    freeze_vision_tower(model)
    processor = load_processor(model_dir, min_pixels=3136, max_pixels=12544)
    (tower,) = find_vision_towers(model)
    calls = []
    tower.blocks[0].register_forward_hook(lambda *a: calls.append(1))
    cache = VisionReuseCache()
    install_vision_reuse(tower, cache, group="policy", sync_calls=True)

    def run(path):
        text = processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "where?"}]}],
            add_generation_prompt=True)
        batch = processor(images=[[Image.open(path).convert("RGB")]] * 2, text=[text] * 2, return_tensors="pt")
        with torch.no_grad():
            model(**batch)

    run(images[0])
    run(images[0] if rank == 0 else images[1])  # rank 0: all from the cache; rank 1: a new photo
    results[rank] = (len(calls), cache.stats.encodings, cache.stats.dummy_calls)
    dist.destroy_process_group()


@pytest.mark.distributed
def test_rank_served_from_cache_still_calls_the_tower(tiny_model_dir, toy_set, free_port):
    import torch.multiprocessing as mp

    images = sorted(str(p) for p in Path(toy_set[1]).iterdir())
    results = mp.Manager().dict()
    mp.spawn(_uneven_worker, args=(str(tiny_model_dir), images, free_port, results), nprocs=2)
    assert results[0] == (2, 1, 1)  # encoded once, then a dummy call to match rank 1
    assert results[1] == (2, 2, 0)
