"""The GPU install's own code paths, run on CPU: PyPI's CUDA torch, torchvision 0.28 (so the *stock*
``Qwen2_5_VLProcessor`` with torchvision's image processor), qwen-vl-utils and vLLM 0.31's classes.

These tests run in the GPU-stack venv (``bash setup.sh --gpu-venv`` -> ``.venv-gpu``; run_scripts/run_tests.sh
runs them there). In another environment they skip, unless ``GEO_R_REQUIRE_GPU_STACK=1`` (set by run_tests.sh
for that tier), which turns a missing package into a failure: the tier cannot pass by skipping.
Starting a vLLM engine needs a GPU and is not done here; every piece before it is.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from geo_r.demo.hub_layout import HUB_MAX_PIXELS
from geo_r.demo.tiny_model import build_tiny_model
from photo_fixtures import ROTATE_90_CW, camera_jpeg, write_quirks

REQUIRED = os.environ.get("GEO_R_REQUIRE_GPU_STACK") == "1"


def _stack_missing() -> str | None:
    for name in ("torchvision", "vllm", "qwen_vl_utils"):
        if importlib.util.find_spec(name) is None:
            return f"{name} is not installed (the GPU-stack venv: bash setup.sh --gpu-venv)"
    try:
        import torchvision  # noqa: F401
    except Exception as exc:  # a CUDA torchvision next to a CPU torch fails here
        return f"torchvision does not import: {exc}"
    return None


MISSING = _stack_missing()
if MISSING and REQUIRED:
    raise RuntimeError(f"GEO_R_REQUIRE_GPU_STACK=1 but {MISSING}")
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")

LIMITS = [(3136, 12544), (3136, 200704)]


@pytest.fixture(scope="module")
def hub_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("gpu-hub") / "ckpt", layout="hub")


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("gpu-photos")
    quirks = write_quirks(folder)
    good = [quirks[n] for n in ("cmyk", "grey16", "palette_alpha", "rgba", "tiny", "exif_rotated")]
    return [*good, camera_jpeg(folder / "phone.jpg", (1024, 768), orientation=ROTATE_90_CW),
            camera_jpeg(folder / "camera.jpg", (4032, 3024), seed=2)]


def test_torch_is_pypis_build_and_torchvision_imports() -> None:
    import torch
    import torchvision

    assert torch.__version__.startswith("2.13.0") and "+cpu" not in torch.__version__
    assert torch.version.cuda is not None  # PyPI's CUDA build (it runs on CPU here)
    assert torchvision.__version__.startswith("0.28.0")


@pytest.mark.parametrize("layout", ["standard", "hub"])
def test_load_processor_returns_the_stock_class(tiny_model_dir: Path, hub_dir: Path, layout: str) -> None:
    from transformers import Qwen2_5_VLProcessor

    from geo_r.models.processor import load_processor, pixel_limits

    folder = tiny_model_dir if layout == "standard" else hub_dir
    processor = load_processor(folder, min_pixels=3136, max_pixels=12544)
    assert type(processor) is Qwen2_5_VLProcessor
    assert type(processor.image_processor).__name__ == "Qwen2VLImageProcessor"  # torchvision's, not ...Pil
    assert pixel_limits(processor) == (3136, 12544)
    if layout == "hub":
        assert pixel_limits(load_processor(folder)) == (3136, HUB_MAX_PIXELS)


@pytest.mark.parametrize(("min_px", "max_px"), LIMITS)
def test_stock_and_image_only_processors_give_the_same_tokens(
    tiny_model_dir: Path, hub_dir: Path, photos: list[Path], monkeypatch: pytest.MonkeyPatch, min_px: int,
    max_px: int,
) -> None:
    """Same photos and limits: the same image-token count, image grid and pixel_values shape whichever
    processor is installed, so training, SFT and eval see the same tokens on a GPU box and on CPU."""
    import torch

    from geo_r.data.image_decode import open_rgb
    from geo_r.data.schema import GeoRecord
    from geo_r.eval.generate import prompt_texts
    from geo_r.models import processor as proc_mod

    images = [open_rgb(str(p)) for p in photos]
    for folder in (tiny_model_dir, hub_dir):
        stock = proc_mod.load_processor(folder, min_pixels=min_px, max_pixels=max_px)
        with monkeypatch.context() as m:
            m.setattr(proc_mod, "torchvision_available", lambda: False)
            image_only = proc_mod.load_processor(folder, min_pixels=min_px, max_pixels=max_px)
        assert type(image_only).__name__ == "Qwen2_5_VLImageOnlyProcessor"
        pad = stock.tokenizer.convert_tokens_to_ids("<|image_pad|>")
        for path, img in zip(photos, images, strict=True):
            text = prompt_texts(stock, [GeoRecord(id="x", images=[str(path)], lat=0.0, lon=0.0)])
            a = stock(text=text, images=[img], return_tensors="pt")
            b = image_only(text=text, images=[img], return_tensors="pt")
            assert torch.equal(a["image_grid_thw"], b["image_grid_thw"]), path.name
            assert a["pixel_values"].shape == b["pixel_values"].shape, path.name
            assert int((a["input_ids"] == pad).sum()) == int((b["input_ids"] == pad).sum()), path.name
            t, h, w = (int(x) for x in a["image_grid_thw"][0])
            assert int((a["input_ids"] == pad).sum()) == t * h * w // 4
            assert h * w * 14 * 14 <= max_px  # the limit holds at every resolution, 10x10 to 4032x3024


@pytest.mark.parametrize(("min_px", "max_px"), LIMITS)
def test_qwen_vl_utils_resizes_like_our_vllm_requests(photos: list[Path], min_px: int, max_px: int) -> None:
    """VLM-R1 users resize with qwen-vl-utils: it agrees with the sizes geo-r gives vLLM and the processor."""
    from qwen_vl_utils import fetch_image, smart_resize

    from geo_r.data.image_decode import open_rgb
    from geo_r.eval.vllm_backend import resized_size

    for path in photos:
        img = open_rgb(str(path))
        ours = resized_size(img.width, img.height, 28, min_px, max_px)
        h, w = smart_resize(img.height, img.width, factor=28, min_pixels=min_px, max_pixels=max_px)
        assert ours == (w, h), path.name
        fetched = fetch_image({"image": img, "min_pixels": min_px, "max_pixels": max_px})
        assert fetched.size == ours, path.name


def test_vllm_requests_sampling_params_and_engine_args_are_real_vllm_objects(
    hub_dir: Path, photos: list[Path]
) -> None:
    import vllm

    from geo_r.data.schema import GeoRecord
    from geo_r.eval import vllm_backend as vb
    from geo_r.eval.generate import GenerationSettings
    from geo_r.models.processor import load_processor, vision_special_token_ids

    assert vllm.__version__.startswith("0.31")
    processor = load_processor(hub_dir, min_pixels=3136, max_pixels=200704)
    records = [GeoRecord(id=p.stem, images=[str(p)], lat=0.0, lon=0.0) for p in photos[-2:]]
    requests = vb.build_requests(processor, records, factor=28, min_pixels=3136, max_pixels=200704)
    prompts = [vllm.TextPrompt(prompt=r["prompt"], multi_modal_data=r["multi_modal_data"]) for r in requests]
    assert [p["prompt"].count("<|image_pad|>") for p in prompts] == [1, 1]
    for settings in (GenerationSettings(), GenerationSettings(do_sample=True, temperature=0.7, seed=3)):
        kwargs = vb.sampling_kwargs(settings, vision_special_token_ids(processor))
        params = vllm.SamplingParams(**kwargs, seed=vb.request_seed(settings.seed, "x"))
        assert params.max_tokens == settings.max_new_tokens and params.logit_bias
    engine = vllm.EngineArgs(**vb.llm_kwargs(str(hub_dir), min_pixels=3136, max_pixels=200704, max_images=1,
                                             dtype=None, seed=0, world_size=2, gpu_memory_utilization=0.5,
                                             max_model_len=4096))
    assert engine.mm_processor_kwargs == {"min_pixels": 3136, "max_pixels": 200704}
    assert engine.distributed_executor_backend == "external_launcher"
    # Starting the engine (vllm.LLM) needs a CUDA GPU: not done here.


def test_trl_vllm_colocate_config_is_built_and_validated(tmp_path: Path) -> None:
    """The GRPO entrypoint's own parser and checks accept --use_vllm --vllm_mode colocate here (the vLLM
    import check of geo_r.grpo.compat passes), and the rollout's token block is a real vLLM logit bias."""
    import vllm
    from trl.import_utils import is_vllm_available

    from geo_r.grpo.compat import reconcile
    from geo_r.grpo_jsonl import parse_args
    from geo_r.trainer.grpo_trainer import _block_tokens_kwargs

    assert is_vllm_available()
    script, _rewards, model, compat, training = parse_args([
        "--model_name_or_path", "m", "--data_file_paths", "a.jsonl", "--output_dir", str(tmp_path),
        "--use_vllm", "true", "--vllm_mode", "colocate", "--vllm_gpu_memory_utilization", "0.3",
        "--per_device_train_batch_size", "2", "--num_generations", "2", "--report_to", "none",
        "--vllm_guided_decoding_regex", "Country: .*",
    ])
    notes = reconcile(script, model, compat, training)
    assert training.use_vllm and training.vllm_mode == "colocate" and training.vllm_gpu_memory_utilization == 0.3
    assert training.vllm_structured_outputs_regex == "Country: .*" and any("structured" in n for n in notes)
    bias = _block_tokens_kwargs([5, 7], use_vllm=True)
    params = vllm.SamplingParams(max_tokens=4, **bias)
    assert params.logit_bias == {5: -100.0, 7: -100.0}
