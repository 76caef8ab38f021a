"""The offline tiny Qwen-VL builder: a standard checkpoint folder per family, deterministic, usable end to end."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from geo_r.demo import tiny_model
from geo_r.demo.tiny_model import BUILD_INFO_FILE, FAMILIES, build_tiny_model, default_pixel_limits
from geo_r.models.loading import SUPPORTED_MODEL_TYPES, load_model
from geo_r.models.processor import (
    IMAGE_ONLY_PROCESSORS,
    PROCESSOR_FAMILIES,
    VISION_SPECIAL_TOKENS,
    load_processor,
    pixel_limits,
    torchvision_available,
    vision_special_token_ids,
)
from geo_r.prompts import DEFAULT_QUESTION, render_answer

REPO_ROOT = Path(__file__).resolve().parents[1]

ANSWERS = [
    render_answer("Japan", "Hokkaido", "Biei", 43.452002, 142.615358),
    render_answer("Brazil", "São Paulo", "São Paulo", -23.55052, -46.633308),
    render_answer("Poland", "Lesser Poland", "Kraków", 50.064651, 19.944981),
    render_answer("Switzerland", "Zürich", "Zürich", 47.376887, 8.541694, think="Swiss German signs, trams."),
    render_answer("Japan", "東京都", "東京", 35.6895, 139.69171),
    render_answer("Côte d'Ivoire", "Abidjan", "Abidjan", 5.30966, -4.01266),
]


def _image_prompt(image: Image.Image, text: str = "Where was this photo taken?") -> list[dict]:
    return [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": text}]}]


@pytest.fixture(scope="module")
def photo(make_images, tmp_path_factory) -> Image.Image:
    """One 84x70 deterministic JPEG, loaded."""
    (path,) = make_images(tmp_path_factory.mktemp("photos"), 1, [(84, 70)])
    return Image.open(path).convert("RGB")


@pytest.mark.parametrize("family", FAMILIES)
def test_folder_is_a_standard_checkpoint(tiny_model_builder, family):
    folder = tiny_model_builder(family)
    assert "qwen" not in str(folder).lower()
    names = {p.name for p in folder.iterdir()}
    assert {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "processor_config.json",
        "chat_template.jinja",
        BUILD_INFO_FILE,
    } <= names

    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == family
    assert config["architectures"] == [SUPPORTED_MODEL_TYPES[family]]

    proc_cfg = json.loads((folder / "processor_config.json").read_text())
    fam = PROCESSOR_FAMILIES[family]
    assert proc_cfg["processor_class"] == fam.stock_processor
    assert proc_cfg["image_processor"]["image_processor_type"] == "Qwen2VLImageProcessor"
    assert proc_cfg["image_processor"]["patch_size"] == fam.patch_size
    video = proc_cfg["video_processor"]
    assert video["video_processor_type"] == fam.video_processor["video_processor_type"]
    import transformers

    assert hasattr(transformers, video["video_processor_type"])  # a name stock AutoProcessor can resolve
    tok_cfg = json.loads((folder / "tokenizer_config.json").read_text())
    assert tok_cfg["processor_class"] == fam.stock_processor
    assert tok_cfg["tokenizer_class"] == "Qwen2Tokenizer"

    gen = json.loads((folder / "generation_config.json").read_text())
    processor = load_processor(folder)
    tok = processor.tokenizer
    assert gen["eos_token_id"] == [
        tok.convert_tokens_to_ids("<|im_end|>"),
        tok.convert_tokens_to_ids("<|endoftext|>"),
    ]
    assert gen["pad_token_id"] == tok.convert_tokens_to_ids("<|endoftext|>")
    # the config's special ids are the tokenizer's
    for key, token in [
        ("image_token_id", "<|image_pad|>"),
        ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"),
        ("vision_end_token_id", "<|vision_end|>"),
    ]:
        assert config[key] == tok.convert_tokens_to_ids(token)
    assert config["text_config"]["vocab_size"] == len(tok)


@pytest.mark.parametrize("family", FAMILIES)
def test_reload_with_from_pretrained(tiny_model_builder, family):
    folder = tiny_model_builder(family)
    info = json.loads((folder / BUILD_INFO_FILE).read_text())
    model = load_model(folder)
    assert type(model).__name__ == SUPPORTED_MODEL_TYPES[family]
    assert sum(p.numel() for p in model.parameters()) == info["parameters"]
    # the generic Auto class (what TRL uses through config.architectures) gives the same weights
    from transformers import AutoModelForImageTextToText

    auto = AutoModelForImageTextToText.from_pretrained(folder)
    assert type(auto) is type(model)
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), auto.state_dict().values(), strict=True)
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_processor_loads_and_prompt_has_image_inputs(tiny_model_builder, family, photo):
    folder = tiny_model_builder(family)
    processor = load_processor(folder)
    if not torchvision_available():
        assert type(processor) is IMAGE_ONLY_PROCESSORS[family]
        assert type(processor.image_processor).__name__ == "Qwen2VLImageProcessorPil"
    assert processor.tokenizer.padding_side == "left"
    assert pixel_limits(processor) == default_pixel_limits(family)

    enc = processor.apply_chat_template(
        [_image_prompt(photo)],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
    )
    assert {"input_ids", "attention_mask", "pixel_values", "image_grid_thw", "mm_token_type_ids"} <= set(enc)
    grid = enc["image_grid_thw"]
    assert grid.shape == (1, 3)
    image_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    n_image_tokens = int((enc["input_ids"] == image_id).sum())
    assert n_image_tokens == int(grid.prod()) // 4 > 0
    # mm_token_type_ids marks exactly the image tokens (what 3D RoPE needs)
    assert torch.equal(enc["mm_token_type_ids"].bool(), enc["input_ids"] == image_id)
    assert enc["pixel_values"].shape[0] == int(grid.prod())

    model = load_model(folder)
    with torch.no_grad():
        logits = model(**enc).logits
    assert logits.shape == (1, enc["input_ids"].shape[1], len(processor.tokenizer))
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_generate_with_vision_tokens_blocked(tiny_model_builder, family, photo):
    folder = tiny_model_builder(family)
    processor = load_processor(folder)
    model = load_model(folder).eval()
    blocked = vision_special_token_ids(processor)
    assert [processor.tokenizer.convert_ids_to_tokens(i) for i in blocked] == list(VISION_SPECIAL_TOKENS)
    batch = 8
    enc = processor.apply_chat_template(
        [_image_prompt(photo)] * batch,
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        processor_kwargs={"padding": True},
    )
    prompt_len = enc["input_ids"].shape[1]
    # 8 x 64 sampled tokens: an unblocked random tiny model emits a vision token for ~9 seeds in 10.
    n_new = 64
    common = dict(
        max_new_tokens=n_new, min_new_tokens=n_new, do_sample=True, temperature=1.0, top_k=0, top_p=1.0
    )
    # Give the vision tokens a strong preference so that an unblocked model surely emits them...
    bias = {(i,): 6.0 for i in blocked}
    torch.manual_seed(0)
    free = model.generate(**enc, **common, sequence_bias=bias)[:, prompt_len:]
    assert torch.isin(free, torch.tensor(blocked)).any(), (
        "test has no teeth: unblocked run emitted no vision token"
    )
    # ...and blocking still wins, for the biased model and for plain random sampling.
    torch.manual_seed(0)
    out = model.generate(**enc, **common, sequence_bias=bias, suppress_tokens=blocked)[:, prompt_len:]
    assert out.shape == (batch, n_new)
    assert not torch.isin(out, torch.tensor(blocked)).any()
    torch.manual_seed(1)
    out = model.generate(**enc, **common, suppress_tokens=blocked)[:, prompt_len:]
    assert not torch.isin(out, torch.tensor(blocked)).any()


@pytest.mark.parametrize("family", FAMILIES)
def test_tokenizer_round_trips_answers(tiny_model_builder, family):
    tok = load_processor(tiny_model_builder(family)).tokenizer
    for text in [*ANSWERS, DEFAULT_QUESTION]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text
        assert tok.decode(ids, skip_special_tokens=True) == text  # what TRL hands the reward functions
    # trained on the prompt: it compresses far below one token per byte
    assert len(tok(DEFAULT_QUESTION)["input_ids"]) < len(DEFAULT_QUESTION.encode()) / 3


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=60))
def test_tokenizer_round_trips_any_text(tiny_model_dir, text):
    tok = _tokenizer(tiny_model_dir)
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == unicodedata.normalize("NFC", text)


_TOKENIZERS: dict[Path, object] = {}


def _tokenizer(folder: Path):
    if folder not in _TOKENIZERS:
        from transformers import AutoTokenizer

        _TOKENIZERS[folder] = AutoTokenizer.from_pretrained(folder)
    return _TOKENIZERS[folder]


def test_qwen3_has_think_tokens_others_do_not(tiny_model_builder):
    for family in FAMILIES:
        tok = _tokenizer(tiny_model_builder(family))
        ids = tok("<think> x </think>", add_special_tokens=False)["input_ids"]
        as_tokens = tok.convert_ids_to_tokens(ids)
        assert ("<think>" in as_tokens) == (family == "qwen3_vl")


def test_build_is_deterministic(tiny_model_dir, tiny_model_builder, tmp_path):
    again = build_tiny_model(tmp_path / "again")
    for name in ("tokenizer.json", "model.safetensors", "config.json", "processor_config.json"):
        assert (again / name).read_bytes() == (tiny_model_dir / name).read_bytes(), name
    other_seed = tiny_model_builder("qwen2_5_vl", seed=1)
    assert (other_seed / "tokenizer.json").read_bytes() == (tiny_model_dir / "tokenizer.json").read_bytes()
    assert (other_seed / "model.safetensors").read_bytes() != (
        tiny_model_dir / "model.safetensors"
    ).read_bytes()


def test_cli_in_a_fresh_process_writes_the_same_bytes(tiny_model_dir, tmp_path):
    """A new process has new hash seeds (Python's and the Rust tokenizer trainer's): bytes must not move."""
    out = tmp_path / "cli-build"
    result = subprocess.run(
        [sys.executable, "-m", "geo_r.cli", "tiny-model", "--out", str(out), "--family", "qwen2_5_vl"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "parameters" in result.stdout and str(out.resolve()) in result.stdout
    for name in ("tokenizer.json", "model.safetensors"):
        assert (out / name).read_bytes() == (tiny_model_dir / name).read_bytes(), name


def test_cli_arguments_have_help_and_defaults():
    parser = argparse.ArgumentParser()
    tiny_model.add_arguments(parser)
    flags = {a.dest: a for a in parser._actions if a.dest != "help"}
    assert set(flags) == {"out", "family", "size", "seed", "min_pixels", "max_pixels", "layout", "shape", "layers"}
    assert all(a.help for a in flags.values())
    assert flags["out"].required
    args = parser.parse_args(["--out", "x"])
    assert (args.family, args.size, args.seed, args.min_pixels, args.max_pixels) == (
        "qwen2_5_vl",
        "tiny",
        0,
        None,
        None,
    )
    assert (args.layout, args.shape, args.layers) == ("standard", None, None)
    with pytest.raises(SystemExit):
        parser.parse_args(["--out", "x", "--family", "llava"])


def test_run_prints_what_it_wrote(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    tiny_model.add_arguments(parser)
    args = parser.parse_args(
        ["--out", str(tmp_path / "m"), "--family", "qwen2_vl", "--max_pixels", str(28 * 28 * 8)]
    )
    assert tiny_model.run(args) == 0
    out = capsys.readouterr().out
    info = json.loads((tmp_path / "m" / BUILD_INFO_FILE).read_text())
    assert f"{info['parameters']:,} parameters" in out and f"vocab {info['vocab_size']}" in out
    assert "model.safetensors" in out
    assert pixel_limits(load_processor(tmp_path / "m")) == (4 * 28 * 28, 8 * 28 * 28)


def test_small_size_is_a_few_million_parameters(tiny_model_builder, photo):
    folder = tiny_model_builder("qwen2_5_vl", size="small")
    info = json.loads((folder / BUILD_INFO_FILE).read_text())
    assert 1_000_000 < info["parameters"] < 10_000_000
    assert info["vocab_size"] == 4096
    processor = load_processor(folder)
    assert pixel_limits(processor) == default_pixel_limits("qwen2_5_vl", "small")
    enc = processor.apply_chat_template(
        [_image_prompt(photo)],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
    )
    with torch.no_grad():
        assert torch.isfinite(load_model(folder)(**enc).logits).all()


def test_bad_arguments_and_foreign_output_folder(tmp_path):
    with pytest.raises(ValueError, match="family"):
        build_tiny_model(tmp_path / "a", family="llava")
    with pytest.raises(ValueError, match="size"):
        build_tiny_model(tmp_path / "a", size="huge")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="notes.txt"):
        build_tiny_model(busy)
    assert (busy / "notes.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="min_pixels"):
        build_tiny_model(tmp_path / "b", min_pixels=50_000, max_pixels=10_000)


def test_rebuild_over_a_previous_build_is_allowed(tmp_path):
    first = build_tiny_model(tmp_path / "m", seed=3)
    before = (first / "model.safetensors").read_bytes()
    second = build_tiny_model(tmp_path / "m", seed=4)
    assert (second / "model.safetensors").read_bytes() != before
    assert json.loads((second / BUILD_INFO_FILE).read_text())["seed"] == 4
