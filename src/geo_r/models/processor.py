"""Load the processor of a Qwen-VL checkpoint the same way everywhere, with or without torchvision.

Stock ``AutoProcessor`` for Qwen2-VL / Qwen2.5-VL / Qwen3-VL needs a video processor, and every video
processor needs torchvision. CPU installs (CI, the demo) have no working torchvision, so there
``load_processor`` builds an *image-only* subclass of the stock processor (its ``__init__`` has no
``video_processor``, so ``ProcessorMixin`` needs only image processor + tokenizer) with the PIL image
processor. With torchvision it returns the stock processor. Either way:

- the model family comes from ``config.json``'s ``model_type``, never from the folder name;
- image size limits go into the image processor's ``size`` (``shortest_edge`` = min pixels,
  ``longest_edge`` = max pixels) at load time, so every processor of a run agrees, and
  ``write_pixel_limits`` puts the same values into a saved folder (vLLM re-reads the folder);
- the tokenizer pads on the left (generation);
- a folder saved by the image-only class is a *standard* Qwen folder (stock class names and a
  ``video_processor`` entry), so stock ``AutoProcessor`` and vLLM load it where torchvision exists.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import (
    AutoProcessor,
    AutoTokenizer,
    ProcessorMixin,
    Qwen2_5_VLProcessor,
    Qwen2VLProcessor,
    Qwen3VLProcessor,
)

# Not ``from transformers import AutoImageProcessor``: without torchvision, transformers 5.17 exports a
# placeholder under that name that raises "requires the Torchvision library" even for backend="pil".
from transformers.models.auto.image_processing_auto import AutoImageProcessor

from geo_r.atomic_io import write_json_atomic
from geo_r.models.loading import model_type_of

VISION_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
"""Tokens a model must never generate in an answer: feeding them back breaks the next forward pass
("image features and image tokens do not match"). Every generation path of Geo-R blocks them."""

PROCESSOR_CONFIG = "processor_config.json"  # transformers 5 nested format
LEGACY_PREPROCESSOR_CONFIG = "preprocessor_config.json"  # hub checkpoints saved by transformers 4.x
TOKENIZER_CONFIG = "tokenizer_config.json"
_TOKENIZER_FILES = ("tokenizer.json", TOKENIZER_CONFIG, "vocab.json")

logger = logging.getLogger(__name__)

_OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
_OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
_HALF = [0.5, 0.5, 0.5]


@dataclass(frozen=True)
class ProcessorFamily:
    """What differs between the Qwen-VL families on the processor side."""

    stock_processor: str  # transformers class name written into saved folders
    patch_size: int  # vision patch side; images are resized to multiples of patch_size * merge_size
    image_mean: list[float]
    image_std: list[float]
    video_processor: dict[str, Any] = field(default_factory=dict)  # the stock video processor's config

    @property
    def factor(self) -> int:
        """Side granularity of resized images (patch size x merge size 2): one image token per factor**2 pixels."""
        return self.patch_size * 2


_QWEN2_VIDEO = {
    "video_processor_type": "Qwen2VLVideoProcessor",
    "patch_size": 14,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "size": {"shortest_edge": 128 * 28 * 28, "longest_edge": 768 * 28 * 28},
    "image_mean": _OPENAI_CLIP_MEAN,
    "image_std": _OPENAI_CLIP_STD,
}

PROCESSOR_FAMILIES: dict[str, ProcessorFamily] = {
    "qwen2_vl": ProcessorFamily("Qwen2VLProcessor", 14, _OPENAI_CLIP_MEAN, _OPENAI_CLIP_STD, _QWEN2_VIDEO),
    "qwen2_5_vl": ProcessorFamily(
        "Qwen2_5_VLProcessor", 14, _OPENAI_CLIP_MEAN, _OPENAI_CLIP_STD, _QWEN2_VIDEO
    ),
    "qwen3_vl": ProcessorFamily(
        "Qwen3VLProcessor",
        16,
        _HALF,
        _HALF,
        {
            "video_processor_type": "Qwen3VLVideoProcessor",
            "patch_size": 16,
            "temporal_patch_size": 2,
            "merge_size": 2,
            "size": {"shortest_edge": 128 * 32 * 32, "longest_edge": 768 * 32 * 32},
            "image_mean": _HALF,
            "image_std": _HALF,
        },
    ),
}


class _ImageOnlyMixin:
    """Shared behaviour of the image-only processors: refuse videos, save as a standard Qwen folder."""

    _model_type: str = ""

    def __call__(self, images: Any = None, text: Any = None, videos: Any = None, **kwargs: Any) -> Any:
        """Process images + text exactly like the stock processor; videos are refused, never dropped."""
        if videos is not None:
            raise ValueError(
                f"{type(self).__name__} handles images only (torchvision is not importable, so no video "
                "processor can be built). Install torchvision for video inputs."
            )
        return super().__call__(images=images, text=text, **kwargs)  # type: ignore[misc]

    def save_pretrained(
        self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs: Any
    ) -> Any:
        """Save, then rewrite class names so stock ``AutoProcessor`` (and vLLM) can load the folder."""
        files = super().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)  # type: ignore[misc]
        standardize_processor_folder(save_directory, self._model_type)
        return files


class Qwen2VLImageOnlyProcessor(_ImageOnlyMixin, Qwen2VLProcessor):
    """Qwen2-VL processor without a video processor (for installs without torchvision)."""

    _model_type = "qwen2_vl"

    def __init__(
        self, image_processor: Any = None, tokenizer: Any = None, chat_template: Any = None, **kwargs: Any
    ):
        super().__init__(
            image_processor, tokenizer, video_processor=None, chat_template=chat_template, **kwargs
        )


class Qwen2_5_VLImageOnlyProcessor(_ImageOnlyMixin, Qwen2_5_VLProcessor):
    """Qwen2.5-VL processor without a video processor (for installs without torchvision)."""

    _model_type = "qwen2_5_vl"

    def __init__(
        self, image_processor: Any = None, tokenizer: Any = None, chat_template: Any = None, **kwargs: Any
    ):
        super().__init__(
            image_processor, tokenizer, video_processor=None, chat_template=chat_template, **kwargs
        )


class Qwen3VLImageOnlyProcessor(_ImageOnlyMixin, Qwen3VLProcessor):
    """Qwen3-VL processor without a video processor (for installs without torchvision)."""

    _model_type = "qwen3_vl"

    def __init__(
        self, image_processor: Any = None, tokenizer: Any = None, chat_template: Any = None, **kwargs: Any
    ):
        super().__init__(
            image_processor, tokenizer, video_processor=None, chat_template=chat_template, **kwargs
        )


IMAGE_ONLY_PROCESSORS: dict[str, type[ProcessorMixin]] = {
    "qwen2_vl": Qwen2VLImageOnlyProcessor,
    "qwen2_5_vl": Qwen2_5_VLImageOnlyProcessor,
    "qwen3_vl": Qwen3VLImageOnlyProcessor,
}


@functools.cache
def torchvision_available() -> bool:
    """True when ``import torchvision`` really works (a CUDA torchvision next to CPU torch fails on import)."""
    try:
        import torchvision  # noqa: F401
    except Exception:  # ImportError, or RuntimeError "operator torchvision::nms does not exist"
        return False
    return True


def family_of(model_type: str) -> ProcessorFamily:
    """The processor facts for ``model_type``; ``ValueError`` naming the supported types otherwise."""
    try:
        return PROCESSOR_FAMILIES[model_type]
    except KeyError:
        raise ValueError(
            f"no processor support for model_type {model_type!r}; supported: {', '.join(PROCESSOR_FAMILIES)}"
        ) from None


def check_pixel_limits(min_pixels: int, max_pixels: int) -> None:
    """``ValueError`` unless both limits are positive integers and ``min_pixels <= max_pixels``."""
    for name, value in (("min_pixels", min_pixels), ("max_pixels", max_pixels)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer number of pixels, got {value!r}")
    if min_pixels > max_pixels:
        raise ValueError(f"min_pixels ({min_pixels}) must not exceed max_pixels ({max_pixels})")


def pixel_limits(processor_or_image_processor: Any) -> tuple[int, int]:
    """``(min_pixels, max_pixels)`` that a processor (or its image processor) resizes images into."""
    ip = getattr(processor_or_image_processor, "image_processor", processor_or_image_processor)
    size = ip.size
    get = size.get if isinstance(size, dict) else functools.partial(getattr, size)
    return int(get("shortest_edge")), int(get("longest_edge"))


def build_image_processor(model_type: str, min_pixels: int, max_pixels: int) -> Any:
    """A fresh PIL image processor of the family with the given pixel limits (used to build checkpoints).

    PIL works on every install; the saved type name is backend-neutral, so a later load picks
    torchvision where it exists. ``size`` is always passed as a new dict: in transformers 5.17 passing
    ``min_pixels=`` alone to the constructor writes into the *class-level* default ``size``, which then
    leaks into every later instance.
    """
    from transformers import Qwen2VLImageProcessorPil

    check_pixel_limits(min_pixels, max_pixels)
    fam = family_of(model_type)
    return Qwen2VLImageProcessorPil(
        size={"shortest_edge": min_pixels, "longest_edge": max_pixels},
        patch_size=fam.patch_size,
        temporal_patch_size=2,
        merge_size=2,
        image_mean=list(fam.image_mean),
        image_std=list(fam.image_std),
    )


def build_processor(
    model_type: str, image_processor: Any, tokenizer: Any, chat_template: str
) -> ProcessorMixin:
    """Assemble a processor from parts: stock class (with its video processor) when torchvision works, else image-only."""
    fam = family_of(model_type)
    tokenizer.padding_side = "left"
    if torchvision_available():
        import transformers

        video_cls = getattr(transformers, fam.video_processor["video_processor_type"])
        video_kwargs = {k: v for k, v in fam.video_processor.items() if k != "video_processor_type"}
        stock = getattr(transformers, fam.stock_processor)
        return stock(image_processor, tokenizer, video_cls(**video_kwargs), chat_template=chat_template)
    return IMAGE_ONLY_PROCESSORS[model_type](image_processor, tokenizer, chat_template=chat_template)


def _check_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a directory (expected a saved model / processor folder)")
    if not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        raise FileNotFoundError(
            f"{folder}: no tokenizer (none of {', '.join(_TOKENIZER_FILES)}). Save the processor next to the "
            "model with processor.save_pretrained(folder), or copy the tokenizer files from the base model."
        )
    if not any((folder / name).is_file() for name in (PROCESSOR_CONFIG, LEGACY_PREPROCESSOR_CONFIG)):
        raise FileNotFoundError(
            f"{folder}: no image processor config ({PROCESSOR_CONFIG} or {LEGACY_PREPROCESSOR_CONFIG}). Save the "
            "processor with processor.save_pretrained(folder), or copy it from the base model."
        )


def load_processor(
    path: str | os.PathLike, min_pixels: int | None = None, max_pixels: int | None = None
) -> ProcessorMixin:
    """The processor of the checkpoint at ``path``, left-padded, with optional pixel limits.

    Stock ``AutoProcessor`` when torchvision imports; otherwise the image-only class for the folder's
    ``config.json`` ``model_type`` with the PIL image processor. ``min_pixels`` / ``max_pixels`` (None:
    keep the folder's) are set through the image processor's ``size`` at load time.
    """
    folder = Path(path)
    _check_folder(folder)
    model_type = model_type_of(folder)
    family_of(model_type)
    stock = torchvision_available()
    backend = None if stock else "pil"

    image_processor = AutoImageProcessor.from_pretrained(folder, backend=backend)
    if min_pixels is not None or max_pixels is not None:
        cur_min, cur_max = pixel_limits(image_processor)
        new_min = cur_min if min_pixels is None else min_pixels
        new_max = cur_max if max_pixels is None else max_pixels
        check_pixel_limits(new_min, new_max)
        if (new_min, new_max) != (cur_min, cur_max):
            logger.info(
                "pixel limits min_pixels=%d max_pixels=%d (command line) override %s's min_pixels=%d max_pixels=%d",
                new_min, new_max, folder, cur_min, cur_max,
            )
        # min_pixels/max_pixels are passed too: legacy (4.x) configs carry top-level min_pixels/max_pixels
        # keys that the constructor applies *over* ``size``; ours must win.
        image_processor = AutoImageProcessor.from_pretrained(
            folder,
            backend=backend,
            size={"shortest_edge": new_min, "longest_edge": new_max},
            min_pixels=new_min,
            max_pixels=new_max,
        )
        if pixel_limits(image_processor) != (new_min, new_max):
            raise RuntimeError(
                f"{folder}: pixel limits did not take effect: asked {(new_min, new_max)}, "
                f"image processor has {pixel_limits(image_processor)}"
            )

    if stock:
        processor = AutoProcessor.from_pretrained(folder)
        if not isinstance(processor, ProcessorMixin):
            raise RuntimeError(
                f"{folder}: AutoProcessor returned a {type(processor).__name__}, not a multimodal processor; "
                f"is {PROCESSOR_CONFIG} complete (processor_class, image_processor, video_processor)?"
            )
        processor.image_processor = image_processor
    else:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        cls = IMAGE_ONLY_PROCESSORS[model_type]
        processor_dict, _ = cls.get_processor_dict(folder)
        chat_template = processor_dict.get("chat_template") or getattr(tokenizer, "chat_template", None)
        if chat_template is None:
            raise FileNotFoundError(
                f"{folder}: no chat template (chat_template.jinja, chat_template.json or tokenizer_config.json)"
            )
        processor = cls(image_processor, tokenizer, chat_template=chat_template)
    processor.tokenizer.padding_side = "left"
    return processor


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}:1: expected a JSON object, got {type(data).__name__}")
    return data


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically (temp file + rename) so a crash never leaves half a config behind."""
    write_json_atomic(path, data, sort_keys=True)


def standardize_processor_folder(folder: str | os.PathLike, model_type: str) -> None:
    """Make a saved processor folder look like a stock Qwen checkpoint of ``model_type``.

    Sets ``processor_class`` to the stock class (processor and tokenizer configs), the image processor
    type to the backend-neutral name (``Qwen2VLImageProcessor``: torchvision where available, PIL
    otherwise) and adds the family's ``video_processor`` entry when missing. Idempotent.
    """
    fam = family_of(model_type)
    folder = Path(folder)
    proc_path = folder / PROCESSOR_CONFIG
    if proc_path.is_file():
        data = _read_json(proc_path)
        data["processor_class"] = fam.stock_processor
        ip = data.get("image_processor")
        if isinstance(ip, dict) and str(ip.get("image_processor_type", "")).endswith("Pil"):
            ip["image_processor_type"] = ip["image_processor_type"][: -len("Pil")]
        data.setdefault("video_processor", json.loads(json.dumps(fam.video_processor)))
        _write_json(proc_path, data)
    for name in (TOKENIZER_CONFIG, LEGACY_PREPROCESSOR_CONFIG):
        path = folder / name
        if path.is_file():
            data = _read_json(path)
            if "processor_class" in data:
                data["processor_class"] = fam.stock_processor
                _write_json(path, data)


def write_pixel_limits(folder: str | os.PathLike, min_pixels: int, max_pixels: int) -> list[Path]:
    """Write ``min_pixels`` / ``max_pixels`` into a saved folder's image processor config(s).

    vLLM and stock ``AutoProcessor`` build their own processor from the folder, so the folder must carry
    the limits the run trained with, or image token counts differ between rollout and training. Returns
    the files changed.
    """
    check_pixel_limits(min_pixels, max_pixels)
    folder = Path(folder)
    size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
    changed: list[Path] = []
    proc_path = folder / PROCESSOR_CONFIG
    if proc_path.is_file():
        data = _read_json(proc_path)
        ip = data.get("image_processor")
        if not isinstance(ip, dict):
            raise ValueError(f"{proc_path}:1: no 'image_processor' object to write pixel limits into")
        ip["size"] = dict(size)
        for key, value in (("min_pixels", min_pixels), ("max_pixels", max_pixels)):
            if key in ip:
                ip[key] = value
        _write_json(proc_path, data)
        changed.append(proc_path)
    legacy = folder / LEGACY_PREPROCESSOR_CONFIG
    if legacy.is_file():
        data = _read_json(legacy)
        data["size"] = dict(size)
        data["min_pixels"], data["max_pixels"] = min_pixels, max_pixels
        _write_json(legacy, data)
        changed.append(legacy)
    if not changed:
        raise FileNotFoundError(
            f"{folder}: neither {PROCESSOR_CONFIG} nor {LEGACY_PREPROCESSOR_CONFIG} to update"
        )
    return changed


def vision_special_token_ids(tokenizer_or_processor: Any) -> list[int]:
    """Ids of the vision special tokens the tokenizer has, to pass as ``suppress_tokens`` / bad words."""
    tok = getattr(tokenizer_or_processor, "tokenizer", tokenizer_or_processor)
    ids: list[int] = []
    for token in VISION_SPECIAL_TOKENS:
        idx = tok.convert_tokens_to_ids(token)
        if isinstance(idx, int) and tok.convert_ids_to_tokens(idx) == token and idx not in ids:
            ids.append(idx)
    return ids
