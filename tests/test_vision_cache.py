"""Vision-tower reuse (geo_r.trainer.vision_cache) on the tiny models of the three Qwen-VL families.

Each test runs the same batch through the model with the wrapper and without it and checks that logits (and,
with the tower trained, gradients) agree, and that each distinct photo went through the tower once.
"""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from geo_r.models.loading import freeze_vision_tower, load_model
from geo_r.models.processor import load_processor
from geo_r.trainer.vision_cache import (
    VisionReuseCache,
    find_vision_towers,
    install_vision_reuse,
    uninstall_vision_reuse,
)

FAMILIES = ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"]


def _batch(processor, make_images, tmp_path, rows: list[list[int]]):
    """Processor inputs for chat rows, each with the listed photos (by index) and a short question."""
    paths = make_images(tmp_path / "img", 1 + max(i for row in rows for i in row), sizes=((84, 70), (56, 56)))
    photos = [Image.open(p).convert("RGB") for p in paths]
    texts, images = [], []
    for row in rows:
        content = [{"type": "image"} for _ in row] + [{"type": "text", "text": "where?"}]
        texts.append(processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True))
        images.append([photos[i] for i in row])
    return processor(images=images, text=texts, padding=True, return_tensors="pt")


def _model(tiny_model_builder, family):
    path = tiny_model_builder(family)
    torch.manual_seed(0)
    return load_model(path, dtype=torch.float32, attn_implementation="eager"), load_processor(path)


@pytest.mark.parametrize("family", FAMILIES)
def test_dedup_and_step_cache_are_exact(tiny_model_builder, make_images, tmp_path, family):
    model, processor = _model(tiny_model_builder, family)
    model.eval()
    freeze_vision_tower(model)
    # four copies of photo 0 (a GRPO group), a row with two photos (one repeated across rows), a lone photo
    inputs = _batch(processor, make_images, tmp_path, [[0], [0], [0], [0], [1, 0], [2]])
    with torch.no_grad():
        reference = model(**inputs).logits
    (tower,) = find_vision_towers(model)
    cache = VisionReuseCache()
    install_vision_reuse(tower, cache, group="policy")
    with torch.no_grad():
        first = model(**inputs).logits
        assert cache.stats.images == 7 and cache.stats.encodings == 3 and cache.stats.cache_hits == 0
        second = model(**inputs).logits  # a later pass of the same step: all from the cache
    assert cache.stats.encodings == 3 and cache.stats.cache_hits == 7
    assert torch.allclose(first, reference, atol=1e-6, rtol=0) and torch.equal(first, second)
    stats = cache.end_step()
    assert stats.peak_cache_bytes > 0 and cache.nbytes == 0
    with torch.no_grad():
        model(**inputs)
    assert cache.stats.encodings == 3  # a new step encodes again
    uninstall_vision_reuse(tower)
    assert "forward" not in vars(tower)


@pytest.mark.parametrize("family", FAMILIES)
def test_trained_tower_dedups_without_cache_and_gradients_match(tiny_model_builder, make_images, tmp_path, family):
    model, processor = _model(tiny_model_builder, family)
    model.train()
    inputs = _batch(processor, make_images, tmp_path, [[0], [0], [1, 0], [1]])

    def grads():
        model.zero_grad()
        out = model(**inputs).logits
        out.float().pow(2).mean().backward()
        return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if ".visual." in f".{n}"}

    ref_out, ref_grads = grads()
    (tower,) = find_vision_towers(model)
    cache = VisionReuseCache()
    install_vision_reuse(tower, cache, group="policy")
    out, new_grads = grads()
    out2, _ = grads()
    assert cache.stats.encodings == 4 and cache.stats.cache_hits == 0  # 2 distinct photos per pass, never cached
    assert torch.allclose(out, ref_out, atol=1e-6, rtol=0) and torch.equal(out, out2)
    assert ref_grads.keys() == new_grads.keys() and ref_grads
    for name, g in ref_grads.items():
        assert torch.allclose(new_grads[name], g, atol=1e-6, rtol=1e-5), name


def test_cache_bound_is_respected(tiny_model_builder, make_images, tmp_path):
    model, processor = _model(tiny_model_builder, "qwen2_5_vl")
    model.eval()
    freeze_vision_tower(model)
    inputs = _batch(processor, make_images, tmp_path, [[0], [1]])
    (tower,) = find_vision_towers(model)
    cache = VisionReuseCache(max_bytes=1)
    install_vision_reuse(tower, cache, group="policy")
    with torch.no_grad():
        model(**inputs)
        model(**inputs)
    assert cache.nbytes == 0 and cache.stats.cache_full == 4 and cache.stats.encodings == 4


@pytest.mark.parametrize("family", FAMILIES)
def test_image_processor_memo_matches_one_batched_call(tiny_model_builder, make_images, tmp_path, family):
    from geo_r.trainer.image_memo import ImageProcessorMemo, memoized_image_processor

    processor = load_processor(tiny_model_builder(family))
    paths = make_images(tmp_path / "img", 3, sizes=((84, 70), (56, 56)))
    photos = [Image.open(p).convert("RGB") for p in paths]
    rows = [[photos[0]], [photos[0]], [photos[1], photos[0]], [photos[2]]]
    texts = ["where?"] * len(rows)
    content = [{"type": "image"}, {"type": "text", "text": "where?"}]
    texts = [processor.apply_chat_template([{"role": "user", "content": content * len(r)}], add_generation_prompt=True)
             for r in rows]
    expected = processor(images=rows, text=texts, padding=True, return_tensors="pt")
    memo = ImageProcessorMemo(processor.image_processor)
    with memoized_image_processor(processor, memo):
        first = processor(images=rows, text=texts, padding=True, return_tensors="pt")
        second = processor(images=rows, text=texts, padding=True, return_tensors="pt")
    assert processor.image_processor is memo.image_processor  # restored
    for key in expected:
        assert torch.equal(first[key], expected[key]) and torch.equal(second[key], expected[key]), key
    assert memo.end_step() == (3, 10)  # 3 distinct photos processed once; 5 asked per call


def test_decode_memo_decodes_each_file_once(make_images, tmp_path):
    import datasets

    from geo_r.trainer.image_memo import ImageDecodeMemo, undecoded_images

    paths = [str(p) for p in make_images(tmp_path / "img", 2)]
    features = datasets.Features({"images": datasets.List(datasets.Image()), "id": datasets.Value("string")})
    ds = datasets.Dataset.from_dict({"images": [[paths[0]], [paths[0]], [paths[1], paths[0]]], "id": ["a", "b", "c"]},
                                    features=features)
    raw, decoders = undecoded_images(ds)
    assert set(decoders) == {"images"} and isinstance(raw[0]["images"][0], dict)
    memo = ImageDecodeMemo(decoders)
    rows = memo.decode_rows([raw[i] for i in range(3)])
    assert memo.end_step() == 2
    assert rows[0]["images"][0] is rows[1]["images"][0] is rows[2]["images"][1]
    for got, want in zip(rows, ds, strict=True):
        assert [im.tobytes() for im in got["images"]] == [im.tobytes() for im in want["images"]]


@pytest.mark.parametrize("timing", [False, True])
def test_tower_calls_wait_for_the_device_only_when_timed(tiny_model_builder, make_images, tmp_path, monkeypatch,
                                                         timing):
    """vision/seconds needs a device synchronisation around every tower call: only with --vision_timing."""
    from geo_r.trainer import vision_cache

    syncs = []
    monkeypatch.setattr(vision_cache, "_sync", lambda device: syncs.append(device))
    model, processor = _model(tiny_model_builder, "qwen2_5_vl")
    model.eval()
    freeze_vision_tower(model)
    inputs = _batch(processor, make_images, tmp_path, [[0], [0], [1]])
    (tower,) = find_vision_towers(model)
    cache = VisionReuseCache(timing=timing)
    install_vision_reuse(tower, cache, group="policy")
    with torch.no_grad():
        model(**inputs)
    assert cache.stats.encodings == 2
    assert len(syncs) == (2 if timing else 0)  # one tower call (the two distinct photos), synchronised before and after
    assert (cache.stats.seconds > 0) == timing
