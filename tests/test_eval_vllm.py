"""The CPU-testable parts of the vLLM backend: sampling and engine parameters, the per-image seed, the
missing-package error, and prompts/images identical in content and size to what the HF backend feeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from geo_r.data.schema import GeoRecord
from geo_r.eval import vllm_backend as vb
from geo_r.eval.generate import GenerationSettings, prompt_texts


def test_sampling_kwargs_greedy_and_sampled() -> None:
    greedy = vb.sampling_kwargs(GenerationSettings(max_new_tokens=64), [7, 9])
    assert greedy["temperature"] == 0.0 and greedy["top_k"] == -1 and greedy["max_tokens"] == 64
    assert greedy["logit_bias"] == {7: -100.0, 9: -100.0} and greedy["n"] == 1
    sampled = vb.sampling_kwargs(GenerationSettings(do_sample=True, temperature=0.7, top_p=0.9, top_k=20), [])
    assert (sampled["temperature"], sampled["top_p"], sampled["top_k"]) == (0.7, 0.9, 20)
    assert "logit_bias" not in sampled


def test_llm_kwargs_one_engine_per_rank() -> None:
    common = {
        "min_pixels": 3136,
        "max_pixels": 401408,
        "max_images": 2,
        "dtype": None,
        "seed": 1,
        "gpu_memory_utilization": 0.8,
        "max_model_len": None,
    }
    single = vb.llm_kwargs("/m", world_size=1, **common)
    assert single["tensor_parallel_size"] == 1 and "distributed_executor_backend" not in single
    assert single["limit_mm_per_prompt"] == {"image": 2} and single["dtype"] == "auto"
    assert single["mm_processor_kwargs"] == {"min_pixels": 3136, "max_pixels": 401408}
    multi = vb.llm_kwargs("/m", world_size=8, **{**common, "max_model_len": 4096})
    assert multi["distributed_executor_backend"] == "external_launcher" and multi["max_model_len"] == 4096
    with pytest.raises(ValueError, match="gpu_memory_utilization"):
        vb.llm_kwargs("/m", world_size=1, **{**common, "gpu_memory_utilization": 1.5})


def test_request_seed_depends_only_on_seed_and_id() -> None:
    assert vb.request_seed(1, "a") == vb.request_seed(1, "a")
    assert len({vb.request_seed(1, "a"), vb.request_seed(1, "b"), vb.request_seed(2, "a")}) == 3
    assert 0 <= vb.request_seed(10**9, "x") < 2**31 - 1


def test_missing_vllm_is_reported_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vb.importlib.util, "find_spec", lambda name: None)
    assert not vb.vllm_available()
    with pytest.raises(ImportError, match=r"pip install -e '\.\[gpu\]'"):
        vb.require_vllm()


def test_requests_match_the_hf_prompt_and_image_size(
    tiny_model_dir: Path, make_images, tmp_path: Path
) -> None:
    from PIL import Image

    from geo_r.models.processor import family_of, load_processor

    min_px, max_px = 3136, 20_000
    processor = load_processor(tiny_model_dir, min_pixels=min_px, max_pixels=max_px)
    paths = make_images(tmp_path / "imgs", 3, sizes=((84, 70), (300, 200), (40, 30)))
    records = [
        GeoRecord(id="one", images=[str(paths[0])], lat=0.0, lon=0.0),
        GeoRecord(
            id="two",
            images=[str(paths[1]), str(paths[2])],
            lat=0.0,
            lon=0.0,
            question="<image><image> Where?",
        ),
    ]
    factor = family_of("qwen2_5_vl").factor
    requests = vb.build_requests(processor, records, factor=factor, min_pixels=min_px, max_pixels=max_px)
    assert [r["prompt"] for r in requests] == prompt_texts(processor, records)
    assert [r["prompt"].count("<|image_pad|>") for r in requests] == [1, 2]
    for record, request in zip(records, requests, strict=True):
        for path, img in zip(record.images, request["multi_modal_data"]["image"], strict=True):
            # the HF processor's own grid for the original image: grid * patch = resized side
            grid = processor.image_processor(images=[Image.open(path).convert("RGB")], return_tensors="pt")[
                "image_grid_thw"
            ][0]
            patch = factor // 2
            assert img.size == (int(grid[2]) * patch, int(grid[1]) * patch)
            assert min_px <= img.size[0] * img.size[1] <= max_px and img.size[0] % factor == 0


def test_llm_kwargs_on_vllms_cpu_build_default_to_float32_and_eager() -> None:
    common = {"min_pixels": 3136, "max_pixels": 12544, "max_images": 1, "seed": 0, "world_size": 1,
              "gpu_memory_utilization": 0.5, "max_model_len": None}
    cpu = vb.llm_kwargs("/m", dtype=None, on_cpu=True, **common)
    assert cpu["dtype"] == "float32" and cpu["enforce_eager"] is True
    assert vb.llm_kwargs("/m", dtype="bfloat16", on_cpu=True, **common)["dtype"] == "bfloat16"
    gpu = vb.llm_kwargs("/m", dtype=None, **common)
    assert gpu["dtype"] == "auto" and "enforce_eager" not in gpu


def test_colocate_helpers_leave_other_setups_alone() -> None:
    """The CPU weight sync is installed only for a colocated engine on vLLM's CPU platform; the shutdown helper
    does nothing without an engine."""
    from types import SimpleNamespace

    from geo_r.trainer.vllm_colocate import close_colocated_engine, install_cpu_weight_sync

    server = SimpleNamespace(mode="server", sync_weights="trl's")
    assert install_cpu_weight_sync(server) is False and server.sync_weights == "trl's"
    assert close_colocated_engine(SimpleNamespace(use_vllm=False)) is False
    assert close_colocated_engine(SimpleNamespace(use_vllm=True, vllm_generation=SimpleNamespace(llm=None))) is False
