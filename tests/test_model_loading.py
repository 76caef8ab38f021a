"""Model loading by model_type, dtype / attention rules, TRL init kwargs, module accessors, freezing and LoRA."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch

from geo_r.demo.tiny_model import FAMILIES
from geo_r.models.loading import (
    LANGUAGE_MODEL_PROJECTIONS,
    SUPPORTED_MODEL_TYPES,
    AttentionFallbackWarning,
    freeze_vision_tower,
    language_model,
    load_model,
    lora_target_modules_regex,
    model_init_kwargs,
    model_type_of,
    resolve_attn_implementation,
    resolve_dtype,
    vision_module,
)


def _flash_attn_usable() -> bool:
    from transformers.utils import is_flash_attn_2_available

    return is_flash_attn_2_available()


# -- model_type_of / load_model -------------------------------------------------------------------


def test_model_type_of_reads_config(tiny_model_builder):
    for family in FAMILIES:
        assert model_type_of(tiny_model_builder(family)) == family


def test_model_type_of_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "config.json"))):
        model_type_of(tmp_path)
    (tmp_path / "config.json").write_text('{\n "architectures": []\n}')
    with pytest.raises(ValueError, match=r"config.json:1: no 'model_type'"):
        model_type_of(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "llava"}')
    with pytest.raises(
        ValueError, match=r"config.json: model_type 'llava' is not supported; supported: qwen2_vl"
    ):
        model_type_of(tmp_path)
    (tmp_path / "config.json").write_text('{\n "model_type": "qwen2_vl",\n oops\n}')
    with pytest.raises(ValueError, match=r"config.json:3: invalid JSON"):
        model_type_of(tmp_path)


def test_class_comes_from_model_type_not_path(tiny_model_builder, tmp_path):
    folder = shutil.copytree(tiny_model_builder("qwen2_vl"), tmp_path / "Qwen2.5-VL-3B-Instruct")
    model = load_model(folder)
    assert type(model).__name__ == SUPPORTED_MODEL_TYPES["qwen2_vl"] == "Qwen2VLForConditionalGeneration"


def test_load_model_dtype_and_attention(tiny_model_dir):
    model = load_model(tiny_model_dir, dtype="bfloat16")
    assert next(model.parameters()).dtype == torch.bfloat16
    assert model.config._attn_implementation == "sdpa"
    assert load_model(tiny_model_dir, dtype=torch.float16).dtype == torch.float16
    assert load_model(tiny_model_dir, dtype="auto").dtype == torch.float32  # the dtype saved in config.json
    eager = load_model(tiny_model_dir, attn_implementation="eager")
    assert eager.config._attn_implementation == "eager"
    with pytest.raises(TypeError, match="dtype="):
        load_model(tiny_model_dir, torch_dtype=torch.float32)


@pytest.mark.skipif(_flash_attn_usable(), reason="flash-attn works here, so there is no fallback to observe")
def test_flash_attention_falls_back_with_a_warning(tiny_model_dir):
    with pytest.warns(AttentionFallbackWarning, match="flash_attention_2"):
        assert resolve_attn_implementation("flash_attention_2") == "sdpa"
    with pytest.warns(AttentionFallbackWarning):
        assert resolve_attn_implementation("flash_attention_3") == "sdpa"
    with pytest.raises(RuntimeError, match="strict"):
        resolve_attn_implementation("flash_attention_2", strict=True)
    with pytest.warns(AttentionFallbackWarning):
        model = load_model(tiny_model_dir, attn_implementation="flash_attention_2")
    assert model.config._attn_implementation == "sdpa"


def test_attention_defaults_and_validation():
    assert resolve_attn_implementation(None) == "sdpa"
    assert resolve_attn_implementation("eager") == "eager"
    assert resolve_attn_implementation("sdpa") == "sdpa"
    assert resolve_attn_implementation("kernels-community/flash-attn2") == "kernels-community/flash-attn2"
    with pytest.raises(ValueError, match="unknown attn_implementation 'flash'"):
        resolve_attn_implementation("flash")


@pytest.mark.parametrize(
    ("torch_dtype", "bf16", "fp16", "expected"),
    [
        (None, False, False, torch.float32),
        (None, True, False, torch.bfloat16),
        (None, False, True, torch.float16),
        ("bfloat16", False, False, torch.bfloat16),
        ("float32", True, False, torch.float32),  # explicit wins over the flag
        ("fp16", False, False, torch.float16),
        ("torch.bfloat16", False, False, torch.bfloat16),
        ("auto", True, False, "auto"),
    ],
)
def test_resolve_dtype_rule(torch_dtype, bf16, fp16, expected):
    assert resolve_dtype(torch_dtype, bf16=bf16, fp16=fp16) == expected


def test_resolve_dtype_errors():
    with pytest.raises(ValueError, match="both"):
        resolve_dtype(None, bf16=True, fp16=True)
    with pytest.raises(ValueError, match="unknown torch_dtype 'int8'"):
        resolve_dtype("int8")


def test_model_init_kwargs_load_the_reference_model_like_ours(tiny_model_dir):
    """TRL rebuilds the reference model with create_model_from_path(path, **model_init_kwargs)."""
    from trl.trainer.utils import create_model_from_path

    kwargs = model_init_kwargs(torch.bfloat16, "eager")
    assert kwargs == {"dtype": "bfloat16", "attn_implementation": "eager"}
    json.dumps(kwargs)  # GRPOConfig is saved as JSON
    ref = create_model_from_path(str(tiny_model_dir), **kwargs)
    ours = load_model(tiny_model_dir, dtype=torch.bfloat16, attn_implementation="eager")
    assert type(ref) is type(ours)
    assert ref.dtype == ours.dtype == torch.bfloat16
    assert ref.config._attn_implementation == "eager"
    assert all(
        torch.equal(a, b) for a, b in zip(ref.state_dict().values(), ours.state_dict().values(), strict=True)
    )
    assert model_init_kwargs("auto", None, revision="main") == {
        "dtype": "auto",
        "attn_implementation": "sdpa",
        "revision": "main",
    }
    with pytest.raises(TypeError):
        model_init_kwargs(torch_dtype="bfloat16")


# -- module accessors, freezing, LoRA ---------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_accessors_and_freezing(tiny_model_builder, family):
    model = load_model(tiny_model_builder(family))
    assert vision_module(model) is model.model.visual
    assert language_model(model) is model.model.language_model
    visual_names = {f"model.visual.{n}" for n, _ in model.model.visual.named_parameters()}
    n_visual = sum(p.numel() for p in model.model.visual.parameters())

    assert freeze_vision_tower(model) == n_visual > 0
    for name, param in model.named_parameters():
        assert param.requires_grad == (name not in visual_names), name


def test_freeze_can_keep_the_merger_trainable(tiny_model_dir):
    model = load_model(tiny_model_dir)
    merger = sum(p.numel() for p in model.model.visual.merger.parameters())
    total = sum(p.numel() for p in model.model.visual.parameters())
    assert freeze_vision_tower(model, include_merger=False) == total - merger
    assert all(p.requires_grad for p in model.model.visual.merger.parameters())
    assert not any(p.requires_grad for p in model.model.visual.blocks.parameters())


def test_accessors_see_through_peft_and_reject_other_models(tiny_model_dir):
    from peft import LoraConfig, get_peft_model

    model = load_model(tiny_model_dir)
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=lora_target_modules_regex(["q_proj"])))
    assert vision_module(peft_model) is model.model.visual
    assert language_model(peft_model) is model.model.language_model
    with pytest.raises(TypeError, match="visual"):
        vision_module(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_regex_matches_only_language_model_projections(tiny_model_builder, family):
    model = load_model(tiny_model_builder(family))
    pattern = lora_target_modules_regex()
    modules = [name for name, _ in model.named_modules()]
    hits = [n for n in modules if re.fullmatch(pattern, n)]
    n_layers = model.config.text_config.num_hidden_layers
    assert len(hits) == n_layers * len(LANGUAGE_MODEL_PROJECTIONS)
    assert all(".language_model.layers." in n for n in hits)
    assert not any("visual" in n for n in hits)


def test_plain_name_list_would_hit_the_vision_tower_but_regex_does_not(tiny_model_dir):
    from peft import LoraConfig, get_peft_model

    plain = get_peft_model(
        load_model(tiny_model_dir), LoraConfig(r=2, target_modules=list(LANGUAGE_MODEL_PROJECTIONS))
    )
    assert any(
        "visual" in n for n, _ in plain.named_parameters() if "lora_" in n
    )  # the trap the regex avoids

    model = get_peft_model(
        load_model(tiny_model_dir), LoraConfig(r=2, target_modules=lora_target_modules_regex())
    )
    lora = [n for n, _ in model.named_parameters() if "lora_" in n]
    assert lora and not any("visual" in n for n in lora)
    assert len(lora) == 2 * 2 * len(LANGUAGE_MODEL_PROJECTIONS)  # A and B, 2 layers, 7 projections
    assert all(p.requires_grad == ("lora_" in n) for n, p in model.named_parameters())


def test_lora_regex_subset_and_validation():
    pattern = lora_target_modules_regex(["q_proj", "v_proj"])
    assert re.fullmatch(pattern, "model.language_model.layers.0.self_attn.q_proj")
    assert re.fullmatch(pattern, "base_model.model.model.language_model.layers.11.self_attn.v_proj")
    assert not re.fullmatch(pattern, "model.language_model.layers.0.self_attn.k_proj")
    assert not re.fullmatch(pattern, "model.visual.blocks.0.attn.q_proj")
    assert not re.fullmatch(pattern, "model.language_model.layers.0.self_attn.q_proj.lora_A")
    with pytest.raises(ValueError, match="not a module name"):
        lora_target_modules_regex(["q_proj|.*"])
    with pytest.raises(ValueError, match="no module names"):
        lora_target_modules_regex([])
