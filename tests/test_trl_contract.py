"""GeoGRPOTrainer's contract with TRL, checked: the version gate, the hooks it overrides, the attributes it reads,
the rollout keys the group filter merges (against TRL's source and one real rollout), and the copies of TRL
formulas the filter keeps (weighted reward total, loss token count) against TRL's own results."""

from __future__ import annotations

import ast
import inspect
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from geo_r.trainer import trl_contract
from geo_r.trainer.group_filter import (
    ROLLOUT_KEYS,
    flat_groups,
    loss_token_count,
    select_rows,
    weighted_total,
)
from trainer_fixtures import recording_trainer

REPO = Path(__file__).resolve().parents[1]
LENGTH_REWARD = f"{REPO / 'tests' / 'rewards_for_tests.py'}:length_reward"


# ------------------------------------------------------------------------------------------ the version gate


def test_an_untested_trl_version_fails_at_import_with_the_override_named():
    code = "import trl; trl.__version__ = '9.9.0'; import geo_r.trainer.grpo_trainer"
    env = {k: v for k, v in os.environ.items() if k != trl_contract.ALLOW_UNTESTED_ENV}
    env["PYTHONPATH"] = str(REPO / "src")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "UntestedTRLError" in proc.stderr and "TRL 9.9.0" in proc.stderr
    assert trl_contract.ALLOW_UNTESTED_ENV in proc.stderr and "trl==1.16.0" in proc.stderr
    allowed = subprocess.run([sys.executable, "-W", "always", "-c", code],
                             env={**env, trl_contract.ALLOW_UNTESTED_ENV: "1"},
                             capture_output=True, text=True, timeout=300)
    assert allowed.returncode == 0, allowed.stderr[-2000:]
    assert "TRL 9.9.0" in allowed.stderr, "the override must still warn"


def test_the_pinned_trl_is_a_tested_one():
    import tomllib

    import trl

    pins = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"trl=={trl_contract.TESTED_TRL_VERSIONS[0]}" in pins
    trl_contract.check_trl_version(trl.__version__)


# ------------------------------------------------------------------------------------------ hooks


def test_hooks_exist_in_trl_with_the_parameters_geo_r_passes_on():
    from trl import GRPOTrainer

    from geo_r.trainer.grpo_trainer import GeoGRPOTrainer

    assert trl_contract.hook_problems(GRPOTrainer) == []
    for name, params in trl_contract.HOOKS.items():
        assert name in GeoGRPOTrainer.__dict__, f"GeoGRPOTrainer no longer overrides {name}: drop it from HOOKS"
        assert tuple(inspect.signature(getattr(GeoGRPOTrainer, name)).parameters) == params, name


def test_a_renamed_or_changed_hook_is_named():
    class Changed:
        def _generate_and_score_completions(self, inputs, extra):
            return inputs

        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
            return inputs

        def log(self, logs, start_time=None):
            return logs

    problems = trl_contract.hook_problems(Changed)
    assert any("_generate_and_score_completions" in p and "extra" in p for p in problems)
    assert any("_get_train_sampler no longer exists" in p for p in problems)
    with pytest.raises(trl_contract.UntestedTRLError, match="hooks changed"):
        trl_contract.check_hooks(Changed)


# ------------------------------------------------------------------------------------------ rollout keys


def _trl_rollout_keys() -> set[str]:
    """Every key TRL's ``_generate_and_score_completions`` can put in its output dict, read from its source."""
    from trl import GRPOTrainer

    source = textwrap.dedent(inspect.getsource(GRPOTrainer._generate_and_score_completions))
    keys: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "output" for t in node.targets):
            assert isinstance(node.value, ast.Dict)
            keys |= {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store):
            if isinstance(node.value, ast.Name) and node.value.id == "output":
                assert isinstance(node.slice, ast.Constant), "TRL sets an output key computed at run time"
                keys.add(node.slice.value)
    assert {"prompt_ids", "completion_ids", "advantages", "num_items_in_batch"} <= keys, "source not understood"
    return keys


def test_the_group_filter_knows_exactly_the_keys_trl_can_return():
    assert set(ROLLOUT_KEYS) == _trl_rollout_keys()


def test_select_rows_refuses_a_key_it_does_not_know():
    rollout = {"prompt_ids": torch.ones(2, 3, dtype=torch.long), "prompt_mask": torch.ones(2, 3, dtype=torch.long),
               "completion_ids": torch.ones(2, 4, dtype=torch.long), "completion_mask": torch.ones(2, 4),
               "advantages": torch.zeros(2), "num_items_in_batch": torch.tensor(8.0),
               "future_trl_field": torch.zeros(2, 4)}
    with pytest.raises(ValueError, match="future_trl_field"):
        select_rows([(rollout, [0, 1])], pad_token_id=0)
    # a known key whose shape does not fit its kind is refused too (here: a completion field of prompt width)
    del rollout["future_trl_field"]
    with pytest.raises(ValueError, match="ref_per_token_logps.*completion-wide"):
        select_rows([({**rollout, "ref_per_token_logps": torch.zeros(2, 3)}, [0])], pad_token_id=0)


def test_sequence_level_ratios_stay_one_per_row():
    """vLLM's sequence-level importance ratio is (rows, 1): merged by row, not padded to the completion width."""
    def rollout(width):
        return {"prompt_ids": torch.ones(2, 3, dtype=torch.long), "prompt_mask": torch.ones(2, 3, dtype=torch.long),
                "completion_ids": torch.ones(2, width, dtype=torch.long),
                "completion_mask": torch.ones(2, width, dtype=torch.long), "advantages": torch.zeros(2),
                "importance_sampling_ratio": torch.tensor([[0.5], [2.0]]), "num_items_in_batch": torch.tensor(1.0)}

    out = select_rows([(rollout(2), [1]), (rollout(5), [0])], pad_token_id=0)
    assert out["importance_sampling_ratio"].tolist() == [[2.0], [0.5]]
    assert out["completion_ids"].shape == (2, 5)


# ------------------------------------------------------------------------------------------ one real rollout


@pytest.fixture(scope="module")
def toy_set(tmp_path_factory):
    from geo_r.demo.toy_data import write_toy_dataset

    root = tmp_path_factory.mktemp("toy_contract")
    return str(write_toy_dataset(root / "a", n=8, seed=1)), str(root / "a" / "images")


def _trainer(model_dir, toy_set, out, processing_class="load", **config):
    from trl import GRPOConfig

    from geo_r.data import build_grpo_dataset, load_records
    from geo_r.models.loading import load_model
    from geo_r.models.processor import load_processor
    from geo_r.rewards import get_reward_funcs
    from geo_r.trainer.grpo_trainer import GeoGRPOTrainer

    records, _ = load_records(*toy_set)
    # a plain GRPOConfig, as TRL's own tests build it: every Geo-R setting at its default
    args = GRPOConfig(output_dir=str(out), max_steps=1, per_device_train_batch_size=8, num_generations=4,
                      max_completion_length=8, report_to="none", use_cpu=True, bf16=False, save_strategy="no",
                      seed=0, beta=0.04, scale_rewards="none", reward_weights=[0.5, 2.0], **config)
    if processing_class == "load":
        processing_class = load_processor(model_dir, min_pixels=3136, max_pixels=12544)
    return GeoGRPOTrainer(model=load_model(model_dir, dtype=torch.float32, attn_implementation="eager"), args=args,
                          train_dataset=build_grpo_dataset(records), processing_class=processing_class,
                          reward_funcs=get_reward_funcs(["format", LENGTH_REWARD]))


@pytest.mark.slow
def test_one_real_rollout_keys_attributes_and_trl_formulas(tiny_model_dir, toy_set, tmp_path):
    trainer = _trainer(tiny_model_dir, toy_set, tmp_path)
    assert trl_contract.missing_attributes(trainer) == []
    assert trainer._vision_cache is not None and not trainer._group_filter.enabled, "a GRPOConfig gets the defaults"
    trainer.model.train()
    batch = next(iter(trainer.get_train_dataloader()))
    out, rewards_per_func = trainer._rollout(batch)

    # the keys: all known, and exactly the ones this setting produces (beta > 0: reference log-probs; Qwen-VL images)
    assert set(out) <= set(ROLLOUT_KEYS)
    assert set(out) == {"prompt_ids", "prompt_mask", "completion_ids", "completion_mask", "advantages",
                        "num_items_in_batch", "ref_per_token_logps", "pixel_values", "image_grid_thw",
                        "mm_token_type_ids", "num_images"}

    # the filter's copies of TRL formulas give TRL's own numbers on this rollout
    total = weighted_total(rewards_per_func, trainer.reward_weights)
    assert float(torch.nanmean(total)) == pytest.approx(trainer._metrics["train"]["reward"][-1], rel=1e-6)
    assert torch.equal(trainer.accelerator.gather(loss_token_count(out)).sum(), out["num_items_in_batch"])
    flat = flat_groups(rewards_per_func, trainer.reward_weights, 4, "sum_then_normalize", tolerance=0.0)
    zero_advantage = (out["advantages"].view(-1, 4) == 0).all(dim=1)  # scale_rewards none: reward - group mean
    assert torch.equal(flat, zero_advantage)

    # merging every row of one rollout gives the rollout back, key for key
    merged = select_rows([(out, list(range(out["completion_ids"].size(0))))], trainer._tokenizer.pad_token_id)
    assert set(merged) == set(out)
    for key, value in out.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(merged[key], value), key
        else:
            assert merged[key] == value, key


def _stock_processor_loader(monkeypatch, model_dir):
    """TRL loads the processor with AutoProcessor itself; without torchvision (this tier) the stock Qwen-VL image
    processor cannot load, so TRL's call is answered with Geo-R's torchvision-free processor of the same folder."""
    import importlib.util

    if importlib.util.find_spec("torchvision") is not None:
        return  # the GPU-stack tier: TRL's own AutoProcessor loads the stock processor
    import trl.trainer.grpo_trainer as trl_grpo

    from geo_r.models.processor import load_processor

    calls = []

    class Loader:
        @staticmethod
        def from_pretrained(name, **kwargs):
            calls.append(name)
            return load_processor(name)

    monkeypatch.setattr(trl_grpo, "AutoProcessor", Loader)
    return calls


@pytest.mark.slow
def test_vision_tokens_are_blocked_when_trl_loads_the_processor_itself(tiny_model_dir, toy_set, tmp_path,
                                                                       monkeypatch):
    from geo_r.models.processor import vision_special_token_ids

    calls = _stock_processor_loader(monkeypatch, tiny_model_dir)
    trainer = _trainer(tiny_model_dir, toy_set, tmp_path, processing_class=None)
    if calls is not None:
        assert calls == [str(tiny_model_dir)], "TRL did not load the processor itself"
    expected = set(vision_special_token_ids(trainer.processing_class))
    assert len(expected) > 1
    assert expected <= set(trainer.generation_kwargs["suppress_tokens"])
    assert expected <= set(trainer.generation_config.suppress_tokens)


@pytest.mark.slow
def test_geo_trainer_trains_as_stock_trl_bit_for_bit(tiny_model_dir, toy_set, tmp_path):
    """Group filter off, vision reuse on with a frozen tower: the same completions, reference log-probs, losses,
    rewards and trained weights as TRL's own GRPOTrainer (given the same vision-token block), bit for bit."""
    from trl import GRPOConfig, GRPOTrainer

    from geo_r.data import build_grpo_dataset, load_records
    from geo_r.models.loading import freeze_vision_tower, load_model
    from geo_r.models.processor import load_processor, vision_special_token_ids
    from geo_r.rewards import get_reward_funcs
    from geo_r.trainer.config import GeoGRPOConfig
    from geo_r.trainer.grpo_trainer import GeoGRPOTrainer

    records, _ = load_records(*toy_set)
    processor = load_processor(tiny_model_dir, min_pixels=3136, max_pixels=12544)
    common = dict(max_steps=2, per_device_train_batch_size=8, num_generations=4, max_completion_length=8,
                  learning_rate=1e-3, logging_steps=1, report_to="none", use_cpu=True, bf16=False,
                  save_strategy="no", seed=0, beta=0.04,
                  generation_kwargs={"suppress_tokens": vision_special_token_ids(processor)})
    runs = {}
    for name, cls, config in (
        ("stock", GRPOTrainer, GRPOConfig(output_dir=str(tmp_path / "stock"), **common)),
        ("geo", GeoGRPOTrainer, GeoGRPOConfig(output_dir=str(tmp_path / "geo"), freeze_vision_modules=True,
                                              vision_reuse=True, group_filter="none", **common)),
    ):
        model = load_model(tiny_model_dir, dtype=torch.float32, attn_implementation="eager")
        if name == "stock":
            freeze_vision_tower(model)
        trainer = recording_trainer(cls)(model=model, args=config, train_dataset=build_grpo_dataset(records),
                                  reward_funcs=get_reward_funcs(["format", LENGTH_REWARD]), processing_class=processor)
        trainer.train()
        runs[name] = trainer
    stock, geo = runs["stock"], runs["geo"]
    assert geo._vision_cache is not None and not geo._group_filter.enabled
    for key in ("completion_ids", "ref", "loss"):
        assert len(stock.record[key]) == len(geo.record[key]) == 2
        for a, b in zip(stock.record[key], geo.record[key], strict=True):
            assert torch.equal(a, b), key
    logs = {n: [e for e in t.state.log_history if "reward" in e] for n, t in runs.items()}
    for a, b in zip(logs["stock"], logs["geo"], strict=True):
        for key in ["reward", "loss", "kl", *(k for k in a if k.startswith("rewards/"))]:
            assert a[key] == b[key], key
    weights = dict(stock.model.named_parameters())
    for name, p in geo.model.named_parameters():
        assert torch.equal(p, weights[name]), name
    encodings = [e["vision/encodings"] for e in geo.state.log_history if "vision/encodings" in e]
    assert encodings == [2.0, 2.0], "reuse engaged: 2 photos encoded per step instead of 24"
