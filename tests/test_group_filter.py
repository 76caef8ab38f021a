"""Online group filtering (``--group_filter zero_std``): the decision on hand-made rewards, the merge of rollouts,
the refill loop and its limit in real GRPO steps, identity when nothing is filtered, and ``torchrun`` x2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from geo_r.trainer.group_filter import (
    FilterOutcome,
    GroupFilterConfig,
    flat_groups,
    kept_counts,
    local_rows,
    replacement_indices,
    rollout_seed,
    select_rows,
)
from zero3_cpu import require_zero3_on_cpu

REPO = Path(__file__).resolve().parents[1]
ENTRY = REPO / "src" / "geo_r" / "grpo_jsonl.py"
TEST_REWARDS = REPO / "tests" / "rewards_for_tests.py"
NAN = float("nan")


# ------------------------------------------------------------------------------------------ the decision


def test_flat_groups_drops_agreeing_groups_and_keeps_mixed_ones():
    rewards = torch.tensor([
        [1.0, 0.5], [1.0, 0.5], [1.0, 0.5], [1.0, 0.5],  # all the same: flat
        [1.0, 0.5], [1.0, 0.9], [0.0, 0.0], [1.0, 0.5],  # mixed: kept
        [1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0],  # same total, different parts
        [0.3, 0.3], [0.3, 0.30005], [0.3, 0.3], [0.3, 0.3],  # spread 5e-5: within the tolerance
    ])
    weights = torch.ones(2)
    assert flat_groups(rewards, weights, 4).tolist() == [True, False, True, True]
    # normalize_then_sum normalises each function per group: the third group then carries signal
    assert flat_groups(rewards, weights, 4, "normalize_then_sum").tolist() == [True, False, False, True]
    assert flat_groups(rewards, weights, 4, tolerance=0.0).tolist() == [True, False, True, False]
    # weights count: with the second function weighted 0 the second group is still mixed (format 1 vs 0)
    assert flat_groups(rewards, torch.tensor([1.0, 0.0]), 4).tolist() == [True, False, False, True]


def test_flat_groups_with_unscored_rows():
    rewards = torch.tensor([
        [NAN, NAN], [NAN, NAN], [NAN, NAN], [NAN, NAN],  # nothing scored: no signal
        [1.0, NAN], [NAN, NAN], [NAN, NAN], [NAN, NAN],  # one scored row: no signal
        [1.0, NAN], [NAN, NAN], [0.0, NAN], [NAN, NAN],  # two different scored rows: kept
    ])
    assert flat_groups(rewards, torch.ones(2), 4).tolist() == [True, True, False]
    assert flat_groups(rewards, torch.ones(2), 4, "normalize_then_sum").tolist() == [True, True, False]
    with pytest.raises(ValueError, match="groups of 5"):
        flat_groups(rewards, torch.ones(2), 5)
    with pytest.raises(ValueError, match="aggregation"):
        flat_groups(rewards, torch.ones(2), 4, "mean")


def test_rows_of_groups_that_straddle_processes():
    # 2 processes x 2 rows, groups of 4: group 0 spans both processes, group 1 too
    flat = torch.tensor([True, False])
    assert local_rows(flat, 4, 0, 4) == ([], [0, 1, 2, 3])
    assert local_rows(flat, 2, 0, 2) == ([], [0, 1]) and local_rows(flat, 2, 1, 2) == ([0, 1], [])
    # groups of 4 over 2 processes x 2 rows: rank 0 holds half of group 0, rank 1 the other half
    assert local_rows(torch.tensor([True]), 4, 1, 2) == ([], [0, 1])
    assert kept_counts(torch.tensor([True, False, False]), 2, 3, 2) == [0, 2, 2]


def test_replacement_prompts_are_the_same_on_every_process():
    parts = [replacement_indices(10, 3, 4, seed=7, process_index=p, local_size=6) for p in range(2)]
    rows = parts[0] + parts[1]
    assert len(rows) == 12 and all(rows[i] == rows[i - i % 4] for i in range(12))  # 3 prompts x 4 copies
    assert rows == replacement_indices(10, 3, 4, 7, 0, 12)  # one process holding it all draws the same
    assert replacement_indices(10, 3, 4, 8, 0, 12) != rows  # another step or try draws other prompts
    assert sorted(set(replacement_indices(2, 5, 1, 0, 0, 5))) == [0, 1]  # fewer prompts than asked: cycles
    assert rollout_seed(0, 3, 1) != rollout_seed(0, 3, 2) != rollout_seed(0, 4, 1)
    with pytest.raises(ValueError, match="empty"):
        replacement_indices(0, 1, 2, 0, 0, 2)


def test_config_refuses_bad_values():
    assert not GroupFilterConfig().enabled and GroupFilterConfig("zero_std").enabled
    for bad, match in ((("nope",), "group_filter"), (("zero_std", -1.0), "tol"), (("zero_std", 1e-4, -1), "tries")):
        with pytest.raises(ValueError, match=match):
            GroupFilterConfig(*bad)
    outcome = FilterOutcome(groups=4, filtered=1, extra_rollouts=1, extra_completions=8, extra_groups=4,
                            extra_groups_filtered=2, filler_rows=2, rows=8)
    assert outcome.metrics() == {"group_filter/filtered_frac": 0.25, "group_filter/extra_rollouts": 1.0,
                                 "group_filter/extra_completions": 8.0, "group_filter/extra_filtered_frac": 0.5,
                                 "group_filter/masked_frac": 0.25}


# ------------------------------------------------------------------------------------------ the merge


def _rollout(prompts, completions, grids, tag):
    """A hand-made TRL rollout: left-padded prompts, right-padded completions, one image per row."""
    p_len, c_len = max(map(len, prompts)), max(map(len, completions))
    prompt_ids = torch.tensor([[0] * (p_len - len(p)) + p for p in prompts])
    completion_ids = torch.tensor([c + [0] * (c_len - len(c)) for c in completions])
    patches = [int(torch.tensor(g).prod()) for g in grids]
    pixel_values = torch.cat([torch.full((n, 3), float(tag * 10 + i)) for i, n in enumerate(patches)])
    return {
        "prompt_ids": prompt_ids, "prompt_mask": (prompt_ids != 0).long(),
        "completion_ids": completion_ids, "completion_mask": (completion_ids != 0).long(),
        "old_per_token_logps": completion_ids.float() / 10, "advantages": torch.arange(len(prompts)) + tag * 10.0,
        "num_items_in_batch": torch.tensor(99), "pixel_values": pixel_values,
        "image_grid_thw": torch.tensor(grids), "num_images": [1] * len(prompts), "sampling_per_token_logps": None,
    }


def test_select_rows_repads_and_keeps_images_with_their_rows():
    a = _rollout([[5, 6], [7]], [[1, 2, 3], [4]], [[1, 2, 2], [1, 2, 4]], tag=1)
    b = _rollout([[8, 9, 9, 9]], [[2]], [[1, 4, 2]], tag=2)
    out = select_rows([(a, [1]), (b, [0]), (a, [0])], pad_token_id=0)
    assert out["prompt_ids"].tolist() == [[0, 0, 0, 7], [8, 9, 9, 9], [0, 0, 5, 6]]  # left-padded
    assert out["prompt_mask"].tolist() == [[0, 0, 0, 1], [1, 1, 1, 1], [0, 0, 1, 1]]
    assert out["completion_ids"].tolist() == [[4, 0, 0], [2, 0, 0], [1, 2, 3]]  # right-padded
    assert out["completion_mask"].tolist() == [[1, 0, 0], [1, 0, 0], [1, 1, 1]]
    assert torch.allclose(out["old_per_token_logps"], torch.tensor([[0.4, 0, 0], [0.2, 0, 0], [0.1, 0.2, 0.3]]))
    assert out["advantages"].tolist() == [11.0, 20.0, 10.0]
    assert out["image_grid_thw"].tolist() == [[1, 2, 4], [1, 4, 2], [1, 2, 2]]
    assert out["pixel_values"][:, 0].tolist() == [11.0] * 8 + [20.0] * 8 + [10.0] * 4  # row 1 of a, b, row 0 of a
    assert out["num_images"] == [1, 1, 1] and out["sampling_per_token_logps"] is None
    with pytest.raises(ValueError, match="missing"):
        select_rows([(a, [0]), ({**b, "old_per_token_logps": None}, [0])], pad_token_id=0)


def test_select_rows_keeps_whole_sequence_fields_aligned_with_their_tokens():
    """TRL's (mm_)token_type_ids cover prompt + completion: each side is re-padded like its own tokens."""
    image = 9

    def rollout(prompts, completions):
        out = _rollout(prompts, completions, [[1, 2, 2]] * len(prompts), tag=1)
        types = (torch.cat([out["prompt_ids"], out["completion_ids"]], dim=1) == image).long()
        return {**out, "mm_token_type_ids": types, "token_type_ids": types.clone()}

    a = rollout([[5, 9, 9, 6], [7, 9]], [[1, 2, 3, 4, 5], [4]])  # longer completions, longer prompts
    b = rollout([[9, 8]], [[2, 3]])
    out = select_rows([(b, [0]), (a, [0]), (a, [1])], pad_token_id=0)
    tokens = torch.cat([out["prompt_ids"], out["completion_ids"]], dim=1)
    for key in ("mm_token_type_ids", "token_type_ids"):
        assert out[key].shape == tokens.shape
        assert torch.equal(out[key], (tokens == image).long()), key


# ------------------------------------------------------------------------------------------ real GRPO steps


@pytest.fixture(scope="module")
def toy_set(tmp_path_factory):
    from geo_r.demo.toy_data import write_toy_dataset

    root = tmp_path_factory.mktemp("toy_filter")
    return str(write_toy_dataset(root / "a", n=8, seed=1)), str(root / "a" / "images")


def _trainer_class():
    from geo_r.trainer.grpo_trainer import GeoGRPOTrainer

    class Recording(GeoGRPOTrainer):
        """Counts rollouts and keeps the batches the loss saw."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.rollouts, self.batches, self.losses, self.completions = 0, [], [], []

        def _rollout(self, inputs):
            self.rollouts += 1
            return super()._rollout(inputs)

        def _generate_and_score_completions(self, inputs):
            out = super()._generate_and_score_completions(inputs)
            self.completions.append(out["completion_ids"].clone())
            return out

        def _compute_loss(self, model, inputs):
            loss = super()._compute_loss(model, inputs)
            self.batches.append({k: v for k, v in inputs.items() if isinstance(v, torch.Tensor)})
            self.losses.append(loss.detach().clone())
            return loss

    return Recording


def _train(model_dir, toy_set, out, reward, group_filter=None, steps=2, per_device_train_batch_size=8,
           stop_tokens=(), **config):
    from geo_r.data import build_grpo_dataset, load_records
    from geo_r.models.loading import load_model
    from geo_r.models.processor import load_processor
    from geo_r.rewards import get_reward_funcs
    from geo_r.trainer.config import GeoGRPOConfig

    records, _ = load_records(*toy_set)
    if group_filter is not None:
        config.update(group_filter=group_filter.mode, group_filter_tol=group_filter.tolerance,
                      group_filter_max_tries=group_filter.max_tries)
    args = GeoGRPOConfig(output_dir=str(out), max_steps=steps, per_device_train_batch_size=per_device_train_batch_size,
                         num_generations=4,
                         max_completion_length=8, learning_rate=1e-3, logging_steps=1, report_to="none", bf16=False,
                         use_cpu=True, save_strategy="no", seed=0, beta=0.04, scale_rewards="none", **config)
    model = load_model(model_dir, dtype=torch.float32, attn_implementation="eager")
    if stop_tokens:  # more end-of-turn ids (as Qwen's two): completions of many lengths from a random model
        ends = model.generation_config.eos_token_id
        model.generation_config.eos_token_id = [*(ends if isinstance(ends, list) else [ends]), *stop_tokens]
    trainer = _trainer_class()(
        model=model, args=args,
        train_dataset=build_grpo_dataset(records), reward_funcs=get_reward_funcs([f"{TEST_REWARDS}:{reward}"]),
        processing_class=load_processor(model_dir, min_pixels=3136, max_pixels=12544))
    trainer.train()
    return trainer


def _timeless(log, drop_prefix="-"):
    """A log line without its wall-clock values (and keys starting with ``drop_prefix``)."""
    return {k: v for k, v in log.items() if not k.startswith(drop_prefix)
            and not any(t in k for t in ("time", "per_second", "seconds"))}


def _step_logs(trainer):
    return [e for e in trainer.state.log_history if "loss" in e]


@pytest.mark.slow
def test_filter_on_with_nothing_to_filter_is_the_stock_run(tiny_model_dir, toy_set, tmp_path):
    on = _train(tiny_model_dir, toy_set, tmp_path / "on", "position_reward", GroupFilterConfig("zero_std"))
    off = _train(tiny_model_dir, toy_set, tmp_path / "off", "position_reward")
    assert on.rollouts == off.rollouts == 2
    for a, b in zip(on.completions, off.completions, strict=True):
        assert torch.equal(a, b)
    assert len(on.losses) == len(off.losses) == 2
    for a, b in zip(on.losses, off.losses, strict=True):
        assert torch.equal(a, b)
    for a, b in zip(_step_logs(on), _step_logs(off), strict=True):
        assert a.pop("group_filter/filtered_frac") == 0.0 and a.pop("group_filter/extra_completions") == 0.0
        assert _timeless(a, "group_filter/") == _timeless(b)
    assert not any(k.startswith("group_filter/") for e in off.state.log_history for k in e)


@pytest.mark.slow
def test_flat_groups_are_replaced_by_informative_ones(tiny_model_dir, toy_set, tmp_path):
    # half the vocabulary ends a completion: rollouts differ in completion width, so the merge must re-pad
    trainer = _train(tiny_model_dir, toy_set, tmp_path / "mixed", "southern_flat_reward",
                     GroupFilterConfig("zero_std", max_tries=4), steps=3, stop_tokens=range(200, 900))
    logs = _step_logs(trainer)
    # 4 of the 8 toy photos lie south of the equator: their groups earn 0 everywhere and are dropped
    assert any(e["group_filter/filtered_frac"] > 0 for e in logs)
    for e in logs:
        if e["group_filter/filtered_frac"] > 0:
            assert e["group_filter/extra_completions"] >= 8
    for batch in trainer.batches:
        assert batch["completion_ids"].size(0) == 8  # a full batch on every step
        rows = batch["completion_mask"] * batch.get("tool_mask", torch.ones_like(batch["completion_mask"]))
        assert rows.sum() > 0
    assert all(torch.isfinite(loss) for loss in trainer.losses)
    # step 1 runs the reference model's weights: the merged batch's log-probs must equal the ones each rollout
    # computed, so the KL is zero (a misaligned merge shows up here as a large KL)
    assert logs[0]["group_filter/filtered_frac"] > 0 and abs(logs[0]["kl"]) < 1e-5


@pytest.mark.slow
def test_refill_stops_at_the_limit_and_masks_the_rest(tiny_model_dir, toy_set, tmp_path):
    # a constant reward: every group is flat in every rollout
    trainer = _train(tiny_model_dir, toy_set, tmp_path / "flat", "record_prompts",
                     GroupFilterConfig("zero_std", max_tries=2))
    assert trainer.rollouts == 2 * (1 + 2)  # each step: its own rollout plus the 2 allowed
    for e in _step_logs(trainer):
        assert e["group_filter/filtered_frac"] == 1.0 and e["group_filter/extra_rollouts"] == 2.0
        assert e["group_filter/extra_completions"] == 16.0 and e["group_filter/masked_frac"] == 1.0
    for batch in trainer.batches:
        assert batch["completion_ids"].size(0) == 8 and int(batch["completion_mask"].sum()) == 0
        assert "tool_mask" not in batch, "filler rows are masked the way TRL masks truncated ones, not via tool_mask"
        assert torch.all(batch["advantages"] == 0)
    # every row masked: no token counts, the loss is exactly 0 and stays finite
    assert all(float(loss) == 0.0 for loss in trainer.losses)

    none = _train(tiny_model_dir, toy_set, tmp_path / "none", "record_prompts",
                  GroupFilterConfig("zero_std", max_tries=0), steps=1)
    assert none.rollouts == 1 and _step_logs(none)[0]["group_filter/masked_frac"] == 1.0


# ------------------------------------------------------------------------------------------ torchrun x2


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize("backend", ["ddp", "zero3"])
def test_torchrun_two_processes_with_the_filter(tiny_model_dir, toy_set, tmp_path, free_port, backend):
    if backend == "zero3":
        require_zero3_on_cpu()
    data, images = toy_set
    extra = []
    if backend == "zero3":
        cfg = json.loads((REPO / "local_scripts" / "zero3.json").read_text())
        cfg["zero_optimization"].update(stage3_param_persistence_threshold=0, stage3_model_persistence_threshold=0)
        ds_cfg = tmp_path / "zero3_tiny.json"
        ds_cfg.write_text(json.dumps(cfg))
        extra = ["--deepspeed", str(ds_cfg), "--bf16", "false"]
    out = tmp_path / "run"
    # 6 rows per process, groups of 4: 3 groups a step, the middle one straddles the two processes
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port),
           str(ENTRY), "--model_name_or_path", str(tiny_model_dir), "--data_file_paths", data,
           "--image_folders", images, "--output_dir", str(out), "--max_steps", "2",
           "--per_device_train_batch_size", "6", "--num_generations", "4", "--max_completion_length", "8",
           "--learning_rate", "1e-3", "--logging_steps", "1", "--max_pixels", "12544", "--min_pixels", "3136",
           "--seed", "0", "--reward_funcs", f"{TEST_REWARDS}:southern_flat_reward", "--report_to", "none",
           "--save_strategy", "no", "--beta", "0.04", "--torch_dtype", "float32",
           "--group_filter", "zero_std", "--group_filter_max_tries", "2", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    logs = [e for e in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in e]
    assert len(logs) == 2 and all("group_filter/filtered_frac" in e for e in logs)
    assert any(e["group_filter/filtered_frac"] > 0 for e in logs)  # southern photos' groups were dropped
    assert all(0.0 <= e["group_filter/filtered_frac"] <= 1.0 and e["group_filter/masked_frac"] <= 1.0 for e in logs)


@pytest.mark.slow
def test_filter_with_gradient_accumulation(tiny_model_dir, toy_set, tmp_path):
    # 2 accumulation steps of 4 rows: TRL generates 8 rows at once (steps_per_generation 2); the filter refills
    # those 8, then TRL splits them into the two micro-batches
    trainer = _train(tiny_model_dir, toy_set, tmp_path / "accum", "southern_flat_reward",
                     GroupFilterConfig("zero_std", max_tries=3), per_device_train_batch_size=4,
                     gradient_accumulation_steps=2)
    assert len(trainer.batches) == 4 and all(b["completion_ids"].size(0) == 4 for b in trainer.batches)
    assert len(_step_logs(trainer)) == 2 and all(torch.isfinite(loss) for loss in trainer.losses)
    assert any(e["group_filter/filtered_frac"] > 0 for e in _step_logs(trainer))


def test_filter_refuses_an_iterable_training_set(tiny_model_dir, toy_set, tmp_path):
    import datasets

    from geo_r.data import build_grpo_dataset, load_records
    from geo_r.models.loading import load_model
    from geo_r.models.processor import load_processor
    from geo_r.rewards import get_reward_funcs
    from geo_r.trainer.config import GeoGRPOConfig
    from geo_r.trainer.grpo_trainer import GeoGRPOTrainer

    records, _ = load_records(*toy_set)
    stream = build_grpo_dataset(records).to_iterable_dataset()
    assert isinstance(stream, datasets.IterableDataset)
    args = GeoGRPOConfig(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=8, num_generations=4,
                         max_completion_length=8, report_to="none", use_cpu=True, bf16=False, save_strategy="no",
                         group_filter="zero_std")
    with pytest.raises(ValueError, match="map-style"):
        GeoGRPOTrainer(model=load_model(tiny_model_dir, dtype=torch.float32), args=args, train_dataset=stream,
                       reward_funcs=get_reward_funcs([f"{TEST_REWARDS}:position_reward"]),
                       processing_class=load_processor(tiny_model_dir, min_pixels=3136, max_pixels=12544))
