"""Batched answer generation with Hugging Face ``generate``: the project's prompt, left padding, greedy by default.

A generator takes a batch of :class:`~geo_r.data.GeoRecord` and returns one completion (the raw text after the
prompt) per record. The prompt is built exactly as for GRPO training (:func:`geo_r.data.build_prompt`: the
record's own question, else ``question``, else :data:`geo_r.prompts.DEFAULT_QUESTION`), rendered with the
checkpoint's chat template, and the processor resizes images into the same ``min_pixels``/``max_pixels`` as
training. Vision special tokens are suppressed so a weak model can never emit ``<|image_pad|>``.

Decoding is explicit: only the checkpoint's end-of-sequence / padding ids are taken from its
``generation_config``; its sampling settings (Qwen2.5-VL ships temperature 0.1, top_k 1, repetition_penalty
1.05) are ignored, so a run's settings are the ones in :class:`GenerationSettings` and the report. Sampling
is seeded per batch from ``seed`` and the batch's ids, so a resumed run regenerates the same text for the same
batch. ``generate_samples`` (``geo-r eval --num_samples K``) draws K answers per record in the same call with
``num_return_sequences=K``, under the separate sampling settings the generator was given.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

from geo_r.data.schema import GeoRecord

if TYPE_CHECKING:
    from PIL import Image


@dataclass(frozen=True)
class GenerationSettings:
    """How answers are decoded: greedy unless ``do_sample``; ``top_k=0`` disables top-k."""

    max_new_tokens: int = 512
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if not (math.isfinite(self.repetition_penalty) and self.repetition_penalty > 0):
            raise ValueError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-able dict (written into run_config.json and the report)."""
        return asdict(self)


class Generator(Protocol):
    """What the evaluation loop needs from a backend."""

    name: str

    def generate(self, records: Sequence[GeoRecord]) -> list[str]:
        """One completion per record, in order."""
        ...

    def generate_samples(self, records: Sequence[GeoRecord], num_samples: int) -> list[list[str]]:
        """``num_samples`` sampled completions per record, in order (``geo-r eval --num_samples``)."""
        ...


def split_samples(flat: Sequence[str], n_records: int, num_samples: int) -> list[list[str]]:
    """``generate``'s flat output (each record's ``num_samples`` rows together) as one list per record."""
    if len(flat) != n_records * num_samples:
        raise RuntimeError(f"expected {n_records} x {num_samples} completions, got {len(flat)}")
    return [list(flat[i * num_samples : (i + 1) * num_samples]) for i in range(n_records)]


def batch_seed(seed: int, ids: Sequence[str]) -> int:
    """A sampling seed that depends only on ``seed`` and the batch's ids (stable across resumed runs)."""
    return (seed * 1_000_003 + zlib.crc32("\x1f".join(ids).encode("utf-8"))) % (2**31 - 1)


def load_image(path: str) -> Image.Image:
    """Open an image as RGB (fully decoded, EXIF orientation applied, alpha on white, 16-bit scaled), raising
    :class:`~geo_r.data.image_decode.UnreadableImageError` (an OSError naming the file and the reason)."""
    from geo_r.data.image_decode import open_rgb

    return open_rgb(path)


def prompt_texts(processor: Any, records: Sequence[GeoRecord], question: str | None = None) -> list[str]:
    """The chat-templated prompt of each record (one vision placeholder per image), generation prompt added."""
    from geo_r.data.dataset import build_prompt
    from geo_r.prompts import DEFAULT_QUESTION

    q = DEFAULT_QUESTION if question is None else question
    return [
        processor.apply_chat_template(build_prompt(r, q), tokenize=False, add_generation_prompt=True)
        for r in records
    ]


def default_device(local_rank: int = 0) -> str:
    """``cuda:<local_rank>`` when a GPU is visible, else ``cpu``."""
    import torch

    if torch.cuda.is_available():
        return f"cuda:{local_rank % torch.cuda.device_count()}"
    return "cpu"


class HFGenerator:
    """Generation with ``model.generate`` on one device (one per torchrun rank for data parallelism)."""

    name = "hf"

    def __init__(
        self,
        model_path: str,
        settings: GenerationSettings,
        *,
        min_pixels: int,
        max_pixels: int,
        dtype: str | None = None,
        attn_implementation: str | None = None,
        device: str | None = None,
        question: str | None = None,
        sample_settings: GenerationSettings | None = None,
    ) -> None:
        import torch

        from geo_r.models.loading import load_model
        from geo_r.models.processor import load_processor, vision_special_token_ids

        self.settings = settings
        self.sample_settings = sample_settings
        self.question = question
        self.device = torch.device(device or default_device())
        self.processor = load_processor(model_path, min_pixels=min_pixels, max_pixels=max_pixels)
        if dtype is None:
            dtype = "bfloat16" if self.device.type == "cuda" else "float32"
        self.model = load_model(model_path, dtype=dtype, attn_implementation=attn_implementation)
        self.model.to(self.device).eval()
        self.blocked_token_ids = vision_special_token_ids(self.processor)
        tok = self.processor.tokenizer
        stock = self.model.generation_config
        eos = stock.eos_token_id if stock.eos_token_id is not None else tok.eos_token_id
        pad = tok.pad_token_id if tok.pad_token_id is not None else stock.pad_token_id
        if pad is None:
            pad = eos[0] if isinstance(eos, list) else eos
        self._special_ids = {"eos_token_id": eos, "pad_token_id": pad, "bos_token_id": stock.bos_token_id}
        self.generation_config = self._config(settings)

    def _config(self, settings: GenerationSettings, num_return_sequences: int = 1) -> Any:
        """A ``GenerationConfig`` for ``settings`` (``num_return_sequences`` answers per prompt)."""
        from transformers import GenerationConfig

        kwargs: dict[str, Any] = {
            "max_new_tokens": settings.max_new_tokens,
            "do_sample": settings.do_sample,
            **self._special_ids,
            "suppress_tokens": list(self.blocked_token_ids) or None,
            "repetition_penalty": settings.repetition_penalty,
            "num_return_sequences": num_return_sequences,
        }
        if settings.do_sample:
            kwargs.update(
                temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k or None
            )
        return GenerationConfig(**kwargs)

    def inputs(self, records: Sequence[GeoRecord]) -> Any:
        """The processor's tensors for a batch (prompt, resized images, left padding), on the model's device."""
        texts = prompt_texts(self.processor, records, self.question)
        images = [load_image(p) for r in records for p in r.images]
        inputs = self.processor(text=texts, images=images or None, padding=True, return_tensors="pt")
        return inputs.to(self.device)

    def _run(self, records: Sequence[GeoRecord], settings: GenerationSettings, config: Any) -> list[str]:
        """Decoded completions of one ``generate`` call (``num_return_sequences`` rows per record, in order)."""
        import torch

        inputs = self.inputs(records)
        if settings.do_sample:
            torch.manual_seed(batch_seed(settings.seed, [r.id for r in records]))
        with torch.inference_mode():
            out = self.model.generate(**inputs, generation_config=config)
        new_tokens = out[:, inputs["input_ids"].shape[1] :]
        return self.processor.batch_decode(new_tokens, skip_special_tokens=True)

    def generate(self, records: Sequence[GeoRecord]) -> list[str]:
        """Completions for a batch (left-padded together), decoded without special tokens."""
        if not records:
            return []
        return self._run(records, self.settings, self.generation_config)

    def generate_samples(self, records: Sequence[GeoRecord], num_samples: int) -> list[list[str]]:
        """``num_samples`` sampled completions per record (one ``generate`` call, ``num_return_sequences``)."""
        if self.sample_settings is None or not self.sample_settings.do_sample:
            raise ValueError("generate_samples needs sample_settings with do_sample=True")
        if not records:
            return []
        flat = self._run(records, self.sample_settings, self._config(self.sample_settings, num_samples))
        return split_samples(flat, len(records), num_samples)

    def stream(self, record: GeoRecord) -> Iterator[str]:
        """The completion of one record, yielded piece by piece as it is decoded (same inputs, settings and
        blocked tokens as :meth:`generate`; ``geo-r app`` shows the answer while it is written)."""
        import threading

        import torch
        from transformers import TextIteratorStreamer

        inputs = self.inputs([record])
        streamer = TextIteratorStreamer(self.processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
        if self.settings.do_sample:
            torch.manual_seed(batch_seed(self.settings.seed, [record.id]))
        failure: list[BaseException] = []

        def work() -> None:
            try:
                with torch.inference_mode():
                    self.model.generate(**inputs, generation_config=self.generation_config, streamer=streamer)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread below
                failure.append(exc)
                streamer.end()

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        yield from streamer
        thread.join()
        if failure:
            raise failure[0]
