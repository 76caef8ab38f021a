"""Processor loading without torchvision: pixel limits, standard saved folders, clear errors, vision token ids."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from PIL import Image

from geo_r.models import processor as processor_module
from geo_r.models.processor import (
    IMAGE_ONLY_PROCESSORS,
    build_image_processor,
    load_processor,
    pixel_limits,
    standardize_processor_folder,
    vision_special_token_ids,
    write_pixel_limits,
)

PATCH = 28  # Qwen2/2.5-VL: 14-pixel patches merged 2x2 -> one image token per 28x28 pixels


@pytest.fixture
def image_only(monkeypatch):
    """Force the no-torchvision path, whatever is installed."""
    monkeypatch.setattr(processor_module, "torchvision_available", lambda: False)


def _n_image_tokens(processor, image: Image.Image) -> int:
    messages = [
        {"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": "Where?"}]}
    ]
    enc = processor.apply_chat_template(
        [messages], add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    image_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    n = int((enc["input_ids"] == image_id).sum())
    assert n == int(enc["image_grid_thw"].prod()) // 4
    return n


def _copy(folder, dest):
    shutil.copytree(folder, dest)
    return dest


def test_image_only_class_is_used_without_torchvision(tiny_model_dir, image_only):
    processor = load_processor(tiny_model_dir)
    assert type(processor) is IMAGE_ONLY_PROCESSORS["qwen2_5_vl"]
    assert processor.get_attributes() == ["image_processor", "tokenizer"]
    assert type(processor.image_processor).__name__ == "Qwen2VLImageProcessorPil"
    assert processor.tokenizer.padding_side == "left"
    assert processor.chat_template == (tiny_model_dir / "chat_template.jinja").read_text()


def test_pixel_limits_change_image_token_count(tiny_model_dir, make_images, tmp_path, image_only):
    (small_path, big_path) = make_images(tmp_path, 2, [(56, 56), (448, 448)])
    small, big = Image.open(small_path), Image.open(big_path)
    default = load_processor(tiny_model_dir)  # folder: 4..16 tokens
    assert pixel_limits(default) == (4 * PATCH**2, 16 * PATCH**2)
    assert _n_image_tokens(default, big) == 16
    assert _n_image_tokens(default, small) == 4

    wide = load_processor(tiny_model_dir, max_pixels=64 * PATCH**2)
    assert pixel_limits(wide) == (4 * PATCH**2, 64 * PATCH**2)
    assert pixel_limits(wide.image_processor) == pixel_limits(wide)
    assert _n_image_tokens(wide, big) == 64

    upscaled = load_processor(tiny_model_dir, min_pixels=9 * PATCH**2)
    assert _n_image_tokens(upscaled, small) == 9
    # the folder is untouched and a fresh load is back at the folder's limits
    assert pixel_limits(load_processor(tiny_model_dir)) == (4 * PATCH**2, 16 * PATCH**2)


@pytest.mark.parametrize(
    ("min_pixels", "max_pixels", "message"),
    [
        (10_000, 5_000, "must not exceed"),
        (0, None, "positive"),
        (None, -1, "positive"),
        (3.5, None, "integer"),
    ],
)
def test_bad_pixel_limits_are_refused(tiny_model_dir, min_pixels, max_pixels, message):
    with pytest.raises(ValueError, match=message):
        load_processor(tiny_model_dir, min_pixels=min_pixels, max_pixels=max_pixels)


def test_overrides_win_over_legacy_min_max_keys(tiny_model_dir, tmp_path, image_only):
    """Hub folders saved by transformers 4.x carry top-level min_pixels/max_pixels that beat ``size``."""
    folder = _copy(tiny_model_dir, tmp_path / "legacy")
    proc = json.loads((folder / "processor_config.json").read_text())
    legacy = {
        **proc["image_processor"],
        "min_pixels": 3136,
        "max_pixels": 12544,
        "processor_class": "Qwen2_5_VLProcessor",
    }
    (folder / "processor_config.json").unlink()
    (folder / "preprocessor_config.json").write_text(json.dumps(legacy))
    assert pixel_limits(load_processor(folder)) == (3136, 12544)
    assert pixel_limits(load_processor(folder, min_pixels=1000, max_pixels=40_000)) == (1000, 40_000)


def test_write_pixel_limits_into_saved_folder(tiny_model_dir, tmp_path, image_only):
    folder = _copy(tiny_model_dir, tmp_path / "ckpt")
    changed = write_pixel_limits(folder, 2 * PATCH**2, 32 * PATCH**2)
    assert changed == [folder / "processor_config.json"]
    saved = json.loads((folder / "processor_config.json").read_text())["image_processor"]["size"]
    assert saved == {"shortest_edge": 2 * PATCH**2, "longest_edge": 32 * PATCH**2}
    assert pixel_limits(load_processor(folder)) == (2 * PATCH**2, 32 * PATCH**2)
    # legacy file too
    (folder / "preprocessor_config.json").write_text(
        json.dumps({"min_pixels": 1, "max_pixels": 2, "size": {}})
    )
    assert len(write_pixel_limits(folder, 5000, 6000)) == 2
    legacy = json.loads((folder / "preprocessor_config.json").read_text())
    assert (legacy["min_pixels"], legacy["max_pixels"], legacy["size"]["longest_edge"]) == (5000, 6000, 6000)
    with pytest.raises(FileNotFoundError):
        write_pixel_limits(tmp_path, 5000, 6000)


def test_saving_a_loaded_processor_gives_a_standard_folder_with_its_limits(
    tiny_model_dir, tmp_path, image_only
):
    processor = load_processor(tiny_model_dir, min_pixels=1000, max_pixels=20_000)
    out = tmp_path / "checkpoint-10"
    processor.save_pretrained(out)  # what the trainer does at every checkpoint
    cfg = json.loads((out / "processor_config.json").read_text())
    assert cfg["processor_class"] == "Qwen2_5_VLProcessor"
    assert cfg["image_processor"]["image_processor_type"] == "Qwen2VLImageProcessor"
    assert cfg["image_processor"]["size"] == {"shortest_edge": 1000, "longest_edge": 20_000}
    assert cfg["video_processor"]["video_processor_type"] == "Qwen2VLVideoProcessor"
    assert json.loads((out / "tokenizer_config.json").read_text())["processor_class"] == "Qwen2_5_VLProcessor"
    shutil.copy(tiny_model_dir / "config.json", out / "config.json")
    assert pixel_limits(load_processor(out)) == (1000, 20_000)
    before = (out / "processor_config.json").read_bytes()
    standardize_processor_folder(out, "qwen2_5_vl")
    assert (out / "processor_config.json").read_bytes() == before  # idempotent


def test_videos_are_refused_not_dropped(tiny_model_dir, image_only):
    processor = load_processor(tiny_model_dir)
    frames = [Image.new("RGB", (56, 56))] * 2
    with pytest.raises(ValueError, match="images only"):
        processor(text=["<|vision_start|><|video_pad|><|vision_end|>hi"], videos=[frames])


def test_model_type_comes_from_config_not_path(tiny_model_builder, tmp_path, image_only):
    """A Qwen2-VL checkpoint in a folder whose name says Qwen2.5-VL is still loaded as Qwen2-VL."""
    folder = _copy(tiny_model_builder("qwen2_vl"), tmp_path / "Qwen2.5-VL-7B-Instruct")
    assert type(load_processor(folder)) is IMAGE_ONLY_PROCESSORS["qwen2_vl"]


def test_missing_pieces_give_helpful_errors(tiny_model_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_processor(tmp_path / "nowhere")
    no_tok = _copy(tiny_model_dir, tmp_path / "no-tok")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (no_tok / name).unlink()
    with pytest.raises(FileNotFoundError, match=r"no-tok: no tokenizer"):
        load_processor(no_tok)
    no_proc = _copy(tiny_model_dir, tmp_path / "no-proc")
    (no_proc / "processor_config.json").unlink()
    with pytest.raises(FileNotFoundError, match="no image processor config"):
        load_processor(no_proc)
    other = _copy(tiny_model_dir, tmp_path / "other")
    cfg = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**cfg, "model_type": "llava"}))
    with pytest.raises(ValueError, match=r"config.json: model_type 'llava' is not supported"):
        load_processor(other)
    broken = _copy(tiny_model_dir, tmp_path / "broken")
    (broken / "processor_config.json").write_text('{\n  "image_processor": \n')
    with pytest.raises(ValueError, match=r"processor_config.json:3"):
        write_pixel_limits(broken, 1000, 2000)


def test_vision_special_token_ids(tiny_model_dir):
    processor = load_processor(tiny_model_dir)
    ids = vision_special_token_ids(processor)
    assert ids == vision_special_token_ids(processor.tokenizer)
    assert processor.tokenizer.convert_ids_to_tokens(ids) == [
        "<|vision_start|>",
        "<|vision_end|>",
        "<|vision_pad|>",
        "<|image_pad|>",
        "<|video_pad|>",
    ]
    from transformers import Qwen2Tokenizer

    partial = Qwen2Tokenizer(
        vocab={"a": 0, "b": 1, "<|endoftext|>": 2, "<|image_pad|>": 3},
        merges=[],
        unk_token=None,
        extra_special_tokens=["<|image_pad|>"],
    )
    assert vision_special_token_ids(partial) == [3]  # only the tokens that exist


def test_building_image_processors_does_not_leak_sizes():
    """transformers 5.17's constructor writes min_pixels= into the class default; ours passes a fresh size."""
    from transformers import Qwen2VLImageProcessorPil

    default_before = Qwen2VLImageProcessorPil().size
    ip = build_image_processor("qwen2_5_vl", 5000, 20_000)
    assert pixel_limits(ip) == (5000, 20_000)
    assert Qwen2VLImageProcessorPil().size == default_before
    assert build_image_processor("qwen3_vl", 4096, 8192).patch_size == 16


def test_pixel_values_match_between_loads(tiny_model_dir, make_images, tmp_path, image_only):
    """Two loads of the same folder (policy side and a later reload) preprocess identically."""
    (path,) = make_images(tmp_path, 1, [(100, 60)])
    image = Image.open(path)
    a = load_processor(tiny_model_dir).image_processor(images=[image], return_tensors="pt")
    b = load_processor(tiny_model_dir).image_processor(images=[image], return_tensors="pt")
    assert torch.equal(a["pixel_values"], b["pixel_values"])
