"""Pluggable image encoders for the gallery and its queries: one photo in, one L2-normalised vector out.

* ``vision_tower``: the checkpoint's own Qwen-VL vision tower (Qwen2-VL, Qwen2.5-VL, Qwen3-VL, loaded with
  :mod:`geo_r.models`), mean-pooled over each image's merged patch tokens (the vectors the language model
  sees). Works offline with every checkpoint the project loads; images are resized into ``min_pixels`` ..
  ``max_pixels`` as in training. Its dimension is the language model's width (2048 for a 3B, 3584 for a 7B).
* ``clip:PATH``: a local CLIP or SigLIP folder (``config.json`` + weights + ``preprocessor_config.json``),
  through transformers' ``get_image_features`` (the projected image embedding; ViT-L/14 gives 768, what G3
  and Img2Loc index).

:func:`describe_encoder` reads only config files, so a wrong folder, an unsupported model or a dimension that
differs from an index's is reported before any weights load; :func:`load_encoder` then builds the encoder the
description names.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from geo_r.defaults import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS
from geo_r.retrieval.layout import RetrievalInputError

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

VISION_TOWER = "vision_tower"
CLIP = "clip"
CLIP_MODEL_TYPES = ("clip", "siglip", "siglip2")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")
_PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")


@dataclass(frozen=True)
class EncoderSpec:
    """Which encoder: ``kind`` (``vision_tower`` or ``clip``) and the folder its weights are in (absolute)."""

    kind: str
    path: str

    @property
    def name(self) -> str:
        """The ``--encoder`` value: ``vision_tower`` or ``clip:PATH``."""
        return VISION_TOWER if self.kind == VISION_TOWER else f"{CLIP}:{self.path}"


def parse_encoder(encoder: str, model_name_or_path: str | None) -> EncoderSpec:
    """``--encoder vision_tower`` (the tower of ``--model_name_or_path``) or ``--encoder clip:PATH``."""
    if encoder == VISION_TOWER:
        if not model_name_or_path:
            raise RetrievalInputError("--encoder vision_tower needs --model_name_or_path (the Qwen-VL checkpoint)")
        return EncoderSpec(VISION_TOWER, str(Path(model_name_or_path).resolve()))
    if encoder.startswith(f"{CLIP}:") and encoder[len(CLIP) + 1 :].strip():
        return EncoderSpec(CLIP, str(Path(encoder[len(CLIP) + 1 :]).resolve()))
    raise RetrievalInputError(
        f"--encoder {encoder!r}: expected 'vision_tower' or 'clip:PATH' (a local CLIP or SigLIP folder)"
    )


def _read_config(folder: Path) -> tuple[dict[str, Any], str]:
    path = folder / "config.json"
    if not folder.is_dir():
        raise RetrievalInputError(f"{folder}: encoder folder not found")
    if not path.is_file():
        raise RetrievalInputError(f"{path}: not found; the encoder folder must be a saved model (config + weights)")
    raw = path.read_bytes()
    try:
        config = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RetrievalInputError(f"{path}: invalid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise RetrievalInputError(f"{path}: expected a JSON object")
    return config, hashlib.sha256(raw).hexdigest()


def _dimension(kind: str, model_type: str, config: dict[str, Any], path: Path) -> int:
    """The embedding width the config promises (checked against the real output after loading)."""
    vision = config.get("vision_config") or {}
    if kind == VISION_TOWER:
        value = vision.get("out_hidden_size") or (vision.get("hidden_size") if model_type == "qwen2_vl" else None)
    elif model_type == "clip":
        value = config.get("projection_dim", 512)
    else:  # siglip, siglip2: the pooled vision output, no projection
        value = vision.get("hidden_size", 768)
    if not isinstance(value, int) or value < 1:
        raise RetrievalInputError(f"{path / 'config.json'}: cannot tell the {model_type} image embedding width")
    return value


def _weights_signature(folder: Path) -> list[list[Any]]:
    """``[[file name, bytes], ...]`` of the weight files: a cheap stand-in for hashing gigabytes of weights."""
    return sorted([p.name, p.stat().st_size] for p in folder.iterdir() if p.name.endswith(_WEIGHT_SUFFIXES))


def describe_encoder(
    spec: EncoderSpec, dtype: str, min_pixels: int | None = None, max_pixels: int | None = None
) -> dict[str, Any]:
    """What the manifest records about an encoder, from its config files only (no weights are read).

    Raises :class:`RetrievalInputError` naming the file for a missing folder or config, an unsupported
    ``model_type``, or (``clip:``) a folder without an image processor config.
    """
    folder = Path(spec.path)
    config, config_sha = _read_config(folder)
    model_type = config.get("model_type")
    if spec.kind == VISION_TOWER:
        from geo_r.models.loading import SUPPORTED_MODEL_TYPES

        if model_type not in SUPPORTED_MODEL_TYPES:
            raise RetrievalInputError(
                f"{folder / 'config.json'}: model_type {model_type!r} has no Qwen-VL vision tower "
                f"(supported: {', '.join(SUPPORTED_MODEL_TYPES)}); for a CLIP/SigLIP folder use --encoder clip:PATH"
            )
        lo = DEFAULT_MIN_PIXELS if min_pixels is None else min_pixels
        hi = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
        from geo_r.models.processor import check_pixel_limits

        try:
            check_pixel_limits(lo, hi)
        except ValueError as exc:
            raise RetrievalInputError(f"--min_pixels/--max_pixels: {exc}") from None
        pixels: dict[str, Any] = {"min_pixels": lo, "max_pixels": hi, "pooling": "mean of merged patch tokens"}
    else:
        if model_type not in CLIP_MODEL_TYPES:
            raise RetrievalInputError(
                f"{folder / 'config.json'}: model_type {model_type!r} is not a CLIP or SigLIP model "
                f"(supported: {', '.join(CLIP_MODEL_TYPES)}); for a Qwen-VL checkpoint use --encoder vision_tower"
            )
        if not any((folder / name).is_file() for name in _PROCESSOR_FILES):
            raise RetrievalInputError(
                f"{folder / _PROCESSOR_FILES[0]}: not found; save the image processor beside the weights "
                "(image_processor.save_pretrained(folder))"
            )
        pixels = {"pooling": "get_image_features"}
    processor_sha = {
        name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
        for name in _PROCESSOR_FILES if (folder / name).is_file()
    }
    return {
        "name": spec.name,
        "kind": spec.kind,
        "path": spec.path,
        "model_type": model_type,
        "dimension": _dimension(spec.kind, str(model_type), config, folder),
        "config_sha256": config_sha,
        "processor_sha256": processor_sha,
        "weights": _weights_signature(folder),
        "dtype": dtype,
        **pixels,
    }


# The parts of a description that change the vectors (the path may differ between machines).
IDENTITY_KEYS = ("kind", "model_type", "dimension", "config_sha256", "processor_sha256", "weights", "dtype",
                 "min_pixels", "max_pixels", "pooling")


def identity(description: dict[str, Any]) -> dict[str, Any]:
    """The keys of a description that decide the vectors (not the folder's path)."""
    return {key: description.get(key) for key in IDENTITY_KEYS}


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda:<LOCAL_RANK>`` when CUDA is available, else ``cpu``; anything else as given."""
    if device != "auto":
        return device
    import torch

    return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if torch.cuda.is_available() else "cpu"


def resolve_dtype_name(dtype: str, device: str) -> str:
    """``auto`` -> ``bfloat16`` on a GPU, ``float32`` on CPU; names as :func:`geo_r.models.loading.dtype_name`."""
    from geo_r.models.loading import dtype_name

    if dtype == "auto":
        return "bfloat16" if device.startswith("cuda") else "float32"
    try:
        return dtype_name(dtype)
    except ValueError as exc:
        raise RetrievalInputError(f"--dtype: {exc}") from None


class Encoder:
    """Embeds PIL images: :meth:`encode` returns float32 rows of width ``dimension``, L2-normalised."""

    dimension: int

    def encode(self, images: list[Image.Image]) -> np.ndarray:
        """One L2-normalised float32 row per image (RuntimeError if the model gives a non-finite vector)."""
        import numpy as np
        import torch

        if not images:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with torch.inference_mode():
            vectors = self._forward(images).float()
        if vectors.shape != (len(images), self.dimension):
            raise RuntimeError(f"encoder gave shape {tuple(vectors.shape)} for {len(images)} image(s) of width "
                               f"{self.dimension}")
        out = vectors.cpu().numpy()
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        if not np.all(np.isfinite(out)) or np.any(norms == 0):
            raise RuntimeError("the encoder returned a non-finite or zero vector (try --dtype float32)")
        return out / norms

    def _forward(self, images: list[Image.Image]) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError


class VisionTowerEncoder(Encoder):
    """A Qwen-VL checkpoint's vision tower alone (the language model is dropped after loading), mean-pooled."""

    def __init__(self, description: dict[str, Any], device: str) -> None:
        import torch

        from geo_r.models.loading import load_model, vision_module
        from geo_r.models.processor import load_processor

        path = description["path"]
        processor = load_processor(path, description["min_pixels"], description["max_pixels"])
        self.image_processor = processor.image_processor
        model = load_model(path, dtype=description["dtype"])
        self.tower = vision_module(model).to(device).eval()
        del model  # the tower keeps its own parameters; the language model and head are freed
        self.merge = int(getattr(self.tower, "spatial_merge_size", 2))
        self.device = torch.device(device)
        self.dimension = int(description["dimension"])

    def _forward(self, images: list[Image.Image]) -> Any:
        import torch

        inputs = self.image_processor(images=images, return_tensors="pt")
        pixels = inputs["pixel_values"].to(self.device, dtype=next(self.tower.parameters()).dtype)
        grid = inputs["image_grid_thw"].to(self.device)
        out = self.tower(pixels, grid_thw=grid)
        merged = out.pooler_output if hasattr(out, "pooler_output") else out  # merged tokens, all images
        sizes = (grid.prod(-1) // self.merge**2).tolist()
        return torch.stack([part.float().mean(0) for part in torch.split(merged, sizes)])


class ClipEncoder(Encoder):
    """A CLIP / SigLIP model's ``get_image_features`` (its image processor resizes and crops)."""

    def __init__(self, description: dict[str, Any], device: str) -> None:
        import torch
        from transformers import AutoModel

        # Not ``from transformers import AutoImageProcessor``: without torchvision that name is a placeholder
        # that refuses even backend="pil" (see geo_r.models.processor).
        from transformers.models.auto.image_processing_auto import AutoImageProcessor

        from geo_r.models.loading import resolve_dtype
        from geo_r.models.processor import torchvision_available

        path = description["path"]
        backend = None if torchvision_available() else "pil"
        self.image_processor = AutoImageProcessor.from_pretrained(path, backend=backend)
        self.model = AutoModel.from_pretrained(path, dtype=resolve_dtype(description["dtype"])).to(device).eval()
        self.device = torch.device(device)
        self.dimension = int(description["dimension"])

    def _forward(self, images: list[Image.Image]) -> Any:
        inputs = self.image_processor(images=images, return_tensors="pt")
        pixels = inputs["pixel_values"].to(self.device, dtype=self.model.dtype)
        out = self.model.get_image_features(pixel_values=pixels)
        return out.pooler_output if hasattr(out, "pooler_output") else out


def load_encoder(description: dict[str, Any], device: str) -> Encoder:
    """The encoder a :func:`describe_encoder` description names, on ``device``."""
    if description["kind"] == VISION_TOWER:
        return VisionTowerEncoder(description, device)
    return ClipEncoder(description, device)
