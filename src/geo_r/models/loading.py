"""Load Qwen-VL policy / reference models by ``config.json``'s ``model_type``, never by the path text.

Also the knobs every loading path shares (dtype and attention implementation rules, the
``model_init_kwargs`` TRL uses to rebuild the reference model the same way), and accessors for the
transformers-5 module layout (``model.model.visual`` / ``model.model.language_model``) used by vision
freezing and language-model-only LoRA. torch and transformers are imported inside functions so that
``model_type_of`` stays cheap for command-line checks.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

SUPPORTED_MODEL_TYPES: dict[str, str] = {
    "qwen2_vl": "Qwen2VLForConditionalGeneration",
    "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
    "qwen3_vl": "Qwen3VLForConditionalGeneration",
}
"""``config.json`` ``model_type`` -> transformers model class name (resolve with :func:`model_class_for`)."""

LANGUAGE_MODEL_PROJECTIONS: tuple[str, ...] = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)
"""Linear layers of a Qwen decoder block; the default LoRA targets."""

ATTN_IMPLEMENTATIONS: tuple[str, ...] = (
    "eager",
    "sdpa",
    "flex_attention",
    "flash_attention_2",
    "flash_attention_3",
    "flash_attention_4",
)

_DTYPE_NAMES: dict[str, str] = {
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
}


class AttentionFallbackWarning(UserWarning):
    """A flash-attention implementation was requested but cannot run here; ``sdpa`` is used instead."""


def model_type_of(path: str | os.PathLike) -> str:
    """``model_type`` from ``path/config.json``; a clear error naming the file if missing or unsupported."""
    config_path = Path(path) / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(
            f"{config_path}: not found; --model_name_or_path must be a saved model folder"
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{config_path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type is None:
        raise ValueError(f"{config_path}:1: no 'model_type' key")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"{config_path}: model_type {model_type!r} is not supported; "
            f"supported: {', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    return str(model_type)


def model_class_for(model_type: str) -> type[PreTrainedModel]:
    """The transformers model class for a supported ``model_type``."""
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"model_type {model_type!r} is not supported; supported: {', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    import transformers

    return getattr(transformers, SUPPORTED_MODEL_TYPES[model_type])


def _attn_usable(name: str) -> bool:
    from transformers.utils import import_utils as iu

    checks = {
        "flash_attention_2": iu.is_flash_attn_2_available,
        "flash_attention_3": iu.is_flash_attn_3_available,
        "flash_attention_4": getattr(iu, "is_flash_attn_4_available", lambda: False),
    }
    return bool(checks[name]())


def resolve_attn_implementation(requested: str | None, strict: bool = False) -> str:
    """The attention implementation to load with.

    None -> ``"sdpa"`` (works on CPU and GPU). ``flash_attention_2/3/4`` when its package is missing or
    there is no CUDA device -> ``"sdpa"`` with an :class:`AttentionFallbackWarning`, or a ``RuntimeError``
    when ``strict``. Hub kernels (``"org/repo"``) pass through unchanged. Unknown names -> ``ValueError``.
    """
    if requested is None or requested == "":
        return "sdpa"
    if "/" in requested:
        return requested
    if requested not in ATTN_IMPLEMENTATIONS:
        raise ValueError(
            f"unknown attn_implementation {requested!r}; choose one of {', '.join(ATTN_IMPLEMENTATIONS)} "
            "or a hub kernel 'org/repo'"
        )
    if requested.startswith("flash_attention") and not _attn_usable(requested):
        message = (
            f"attn_implementation={requested!r} needs the flash-attn package and a CUDA GPU, which this "
            "machine lacks"
        )
        if strict:
            raise RuntimeError(message + " (strict: not falling back)")
        warnings.warn(message + "; using 'sdpa' instead.", AttentionFallbackWarning, stacklevel=2)
        return "sdpa"
    return requested


def resolve_dtype(torch_dtype: str | None, bf16: bool = False, fp16: bool = False) -> torch.dtype | str:
    """The dtype to load weights in.

    Rule: an explicit ``torch_dtype`` wins (``"auto"`` = the dtype stored in config.json, returned as
    the string ``"auto"``; aliases bf16/fp16/fp32/half accepted); otherwise ``bf16`` -> bfloat16,
    ``fp16`` -> float16 (both -> ``ValueError``); otherwise float32 (also what TRL defaults to).
    """
    import torch

    if torch_dtype is not None and torch_dtype != "":
        if torch_dtype == "auto":
            return "auto"
        name = _DTYPE_NAMES.get(str(torch_dtype).lower().removeprefix("torch."))
        if name is None:
            raise ValueError(f"unknown torch_dtype {torch_dtype!r}; use auto, bfloat16, float16 or float32")
        return getattr(torch, name)
    if bf16 and fp16:
        raise ValueError("bf16 and fp16 are both set; choose one")
    if bf16:
        return torch.bfloat16
    if fp16:
        return torch.float16
    return torch.float32


def dtype_name(dtype: Any) -> str:
    """``"bfloat16"`` / ``"float16"`` / ``"float32"`` / ``"auto"`` for a dtype or dtype string (JSON-safe)."""
    if isinstance(dtype, str):
        if dtype == "auto":
            return "auto"
        name = _DTYPE_NAMES.get(dtype.lower().removeprefix("torch."))
        if name is None:
            raise ValueError(f"unknown dtype {dtype!r}")
        return name
    name = str(dtype).removeprefix("torch.")
    if name not in ("bfloat16", "float16", "float32"):
        raise ValueError(f"unsupported dtype {dtype!r}; use bfloat16, float16, float32 or 'auto'")
    return name


def model_init_kwargs(
    dtype: Any = "float32", attn_implementation: str | None = None, strict_attn: bool = False, **extra: Any
) -> dict[str, Any]:
    """Keyword arguments for ``GRPOConfig.model_init_kwargs`` so TRL loads the reference model like ours.

    The dtype is written as a string (TRL accepts ``bfloat16|float16|float32|auto`` and the config is
    saved as JSON). Extra keys (``revision``, ``trust_remote_code``...) are passed through.
    """
    if "torch_dtype" in extra:
        raise TypeError("pass dtype=, not torch_dtype= (transformers 5)")
    return {
        "dtype": dtype_name(dtype),
        "attn_implementation": resolve_attn_implementation(attn_implementation, strict=strict_attn),
        **extra,
    }


def load_model(
    path: str | os.PathLike,
    dtype: Any = "float32",
    attn_implementation: str | None = None,
    strict_attn: bool = False,
    **kwargs: Any,
) -> PreTrainedModel:
    """Load the checkpoint at ``path`` with the model class of its ``config.json`` ``model_type``.

    ``dtype`` is a torch dtype, a dtype name or ``"auto"``; ``attn_implementation`` goes through
    :func:`resolve_attn_implementation`. Other kwargs go to ``from_pretrained``.
    """
    if "torch_dtype" in kwargs:
        raise TypeError("pass dtype=, not torch_dtype= (transformers 5)")
    cls = model_class_for(model_type_of(path))
    dtype = dtype if not isinstance(dtype, str) or dtype == "auto" else resolve_dtype(dtype)
    return cls.from_pretrained(
        str(path),
        dtype=dtype,
        attn_implementation=resolve_attn_implementation(attn_implementation, strict=strict_attn),
        **kwargs,
    )


def _unwrap(model: Any) -> Any:
    """Strip PEFT and DDP/DeepSpeed wrappers down to the ``*ForConditionalGeneration`` (or inner) model."""
    for _ in range(8):
        if hasattr(model, "get_base_model") and callable(model.get_base_model):  # peft.PeftModel
            model = model.get_base_model()
        elif hasattr(model, "module") and not hasattr(model, "model") and not hasattr(model, "visual"):
            model = model.module  # DDP / DeepSpeed engine
        else:
            return model
    return model


def _inner(model: Any, attr: str) -> Any:
    base = _unwrap(model)
    for candidate in (getattr(base, "model", None), base):
        if candidate is not None and hasattr(candidate, attr):
            return getattr(candidate, attr)
    raise TypeError(
        f"{type(model).__name__} has no '{attr}' (expected a transformers-5 Qwen-VL model with "
        f"model.model.{attr}, possibly wrapped by PEFT)"
    )


def vision_module(model: Any) -> torch.nn.Module:
    """The vision tower (patch embed, blocks and merger): ``model.model.visual``."""
    return _inner(model, "visual")


def language_model(model: Any) -> torch.nn.Module:
    """The text decoder: ``model.model.language_model`` (``lm_head`` lives outside it)."""
    return _inner(model, "language_model")


def freeze_vision_tower(model: Any, include_merger: bool = True) -> int:
    """Set ``requires_grad=False`` on the vision tower; returns the number of parameter elements frozen.

    ``include_merger=False`` keeps the merger (the projector into the language model, and Qwen3-VL's
    deepstack mergers) trainable.
    """
    frozen = 0
    for name, param in vision_module(model).named_parameters():
        if not include_merger and name.split(".")[0] in ("merger", "deepstack_merger_list"):
            continue
        if param.requires_grad:
            param.requires_grad_(False)
        frozen += param.numel()
    return frozen


def lora_target_modules_regex(names: Iterable[str] | None = None) -> str:
    """A PEFT ``target_modules`` regex that matches the given linear layers in the language model only.

    PEFT full-matches a string against each module name. A plain list ``["q_proj", ..., "down_proj"]``
    would also match the vision tower's ``visual.blocks.N.mlp.{gate,up,down}_proj``; this regex requires
    ``language_model.layers.N.`` in the name.
    """
    chosen = list(LANGUAGE_MODEL_PROJECTIONS if names is None else names)
    if not chosen:
        raise ValueError("no module names given for LoRA")
    for name in chosen:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"LoRA target {name!r} is not a module name (letters, digits, underscore)")
    alternatives = "|".join(re.escape(n) for n in dict.fromkeys(chosen))
    return rf"(?:.*\.)?language_model\.layers\.\d+\.(?:.*\.)?(?:{alternatives})"
