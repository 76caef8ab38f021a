"""Write a model folder the way a transformers 4.x-era hub download of Qwen2-VL / Qwen2.5-VL looks.

What researchers download from the hub (``Qwen/Qwen2.5-VL-3B-Instruct`` and the fine-tunes saved since) was
written by transformers 4.x, not by the 5.x this repository builds its tiny model with:

* ``config.json`` is flat: the text fields at the top level, ``rope_scaling: {"type": "mrope", ...}`` instead
  of ``rope_parameters``, ``torch_dtype`` instead of ``dtype``, plus the 4.x-only keys (``sliding_window``,
  ``max_window_layers``, ``vision_token_id`` ...);
* weights under the 4.x names (``model.layers.*``, ``visual.blocks.*``, ``lm_head.weight``), in shards
  ``model-0000i-of-0000n.safetensors`` with ``model.safetensors.index.json``;
* ``preprocessor_config.json`` with top-level ``min_pixels`` 3136 / ``max_pixels`` 12845056 (no ``size``);
* the chat template in its own ``chat_template.json``; no ``processor_config.json``, no video processor file.

:func:`write_hub_layout` turns a built model + tokenizer into that folder, so every entrypoint is tested on
the folder a user really has.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HUB_MAX_PIXELS = 12845056  # the published preprocessor_config.json of Qwen2-VL / Qwen2.5-VL
HUB_MIN_PIXELS = 3136
HUB_TRANSFORMERS_VERSION = "4.49.0"  # the version Qwen2.5-VL was published with
HUB_FAMILIES = ("qwen2_5_vl", "qwen2_vl")
_SHARD_BYTES = 2 * 1024**3  # a new shard after this many bytes (the hub's are a few GB each)


def legacy_weight_name(name: str) -> str:
    """The 4.x name of a transformers 5 weight name (``model.language_model.x`` -> ``model.x``,
    ``model.visual.x`` -> ``visual.x``)."""
    if name.startswith("model.language_model."):
        return "model." + name[len("model.language_model.") :]
    if name.startswith("model.visual."):
        return name[len("model.") :]
    return name


def legacy_config(config: Any, dtype: str) -> dict[str, Any]:
    """The flat 4.x ``config.json`` of a transformers 5 Qwen2-VL / Qwen2.5-VL config."""
    text = config.text_config.to_dict()
    vision = config.vision_config.to_dict()
    rope = dict(text.pop("rope_parameters", None) or {})
    for key in ("_name_or_path", "model_type", "dtype", "torch_dtype", "transformers_version", "architectures", "output_attentions",
                "output_hidden_states", "return_dict", "chunk_size_feed_forward", "is_encoder_decoder",
                "problem_type", "id2label", "label2id", "tie_word_embeddings", "layer_types", "pad_token_id",
                "base_config_key"):
        text.pop(key, None)
    flat: dict[str, Any] = {
        "architectures": [type(config).__name__.replace("Config", "ForConditionalGeneration")],
        "model_type": config.model_type,
        **text,
        "rope_theta": rope.get("rope_theta", 1000000.0),
        "rope_scaling": {"type": "mrope", "mrope_section": list(rope.get("mrope_section", []))},
        "sliding_window": 32768,
        "use_sliding_window": False,
        "max_window_layers": text.get("num_hidden_layers", 1),
        "attention_dropout": 0.0,
        "image_token_id": config.image_token_id,
        "video_token_id": config.video_token_id,
        "vision_start_token_id": config.vision_start_token_id,
        "vision_end_token_id": config.vision_end_token_id,
        "vision_token_id": config.vision_start_token_id + 2,  # <|vision_pad|>, as in the published config
        "tie_word_embeddings": bool(config.tie_word_embeddings),
        "torch_dtype": dtype,
        "transformers_version": HUB_TRANSFORMERS_VERSION,
        "use_cache": True,
    }
    for key in ("_name_or_path", "dtype", "torch_dtype", "transformers_version", "architectures", "output_attentions",
                "output_hidden_states", "return_dict", "chunk_size_feed_forward", "is_encoder_decoder",
                "problem_type", "id2label", "label2id", "base_config_key"):
        vision.pop(key, None)
    if config.model_type == "qwen2_5_vl":
        vision.update(in_chans=3, spatial_patch_size=vision.get("patch_size", 14), tokens_per_second=2)
    else:
        vision.update(in_chans=3, spatial_patch_size=vision.get("patch_size", 14))
    vision["model_type"] = config.model_type
    flat["vision_config"] = vision
    return flat


def _write_weights(model: Any, folder: Path) -> list[str]:
    """Weights under their 4.x names in hub-style shards + index; returns the shard file names."""
    from safetensors.torch import save_file

    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    tensors = {
        legacy_weight_name(name): t.detach().contiguous()
        for name, t in model.state_dict().items()
        if not (tied and name == "lm_head.weight")
    }
    # visual first, as in the published index; a new shard past _SHARD_BYTES
    names = sorted(tensors, key=lambda n: (not n.startswith("visual."), n))
    shards: list[list[str]] = [[]]
    size = 0
    for name in names:
        nbytes = tensors[name].numel() * tensors[name].element_size()
        if shards[-1] and size + nbytes > _SHARD_BYTES:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += nbytes
    files = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    weight_map: dict[str, str] = {}
    total = 0
    for file, shard in zip(files, shards, strict=True):
        save_file({n: tensors[n] for n in shard}, str(folder / file), metadata={"format": "pt"})
        for n in shard:
            weight_map[n] = file
            total += tensors[n].numel() * tensors[n].element_size()
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return files


def write_hub_layout(
    folder: str | Path,
    model: Any,
    tokenizer: Any,
    chat_template: str,
    image_processor: dict[str, Any],
    generation: dict[str, Any],
    dtype: str,
) -> None:
    """Write ``model`` + ``tokenizer`` into ``folder`` as a 4.x hub download (see the module docstring).

    ``image_processor``: patch_size, image_mean, image_std, min_pixels, max_pixels of the family;
    ``generation``: the generation_config.json fields.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    model_type = model.config.model_type
    if model_type not in HUB_FAMILIES:
        raise ValueError(f"--layout hub writes {', '.join(HUB_FAMILIES)} checkpoints, not {model_type}")
    _write_weights(model, out)
    cfg = legacy_config(model.config, dtype)
    (out / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    gen = {**generation, "transformers_version": HUB_TRANSFORMERS_VERSION}
    (out / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n", encoding="utf-8")
    stock = "Qwen2_5_VLProcessor" if model_type == "qwen2_5_vl" else "Qwen2VLProcessor"
    pre = {
        "min_pixels": image_processor["min_pixels"],
        "max_pixels": image_processor["max_pixels"],
        "patch_size": image_processor["patch_size"],
        "temporal_patch_size": 2,
        "merge_size": 2,
        "image_mean": list(image_processor["image_mean"]),
        "image_std": list(image_processor["image_std"]),
        "image_processor_type": "Qwen2VLImageProcessor",
        "processor_class": stock,
    }
    (out / "preprocessor_config.json").write_text(json.dumps(pre, indent=2) + "\n", encoding="utf-8")
    (out / "chat_template.json").write_text(
        json.dumps({"chat_template": chat_template}, indent=2) + "\n", encoding="utf-8"
    )
    tokenizer.save_pretrained(out)
    tok_cfg_path = out / "tokenizer_config.json"
    tok_cfg = json.loads(tok_cfg_path.read_text(encoding="utf-8"))
    tok_cfg.pop("chat_template", None)  # the template lives in chat_template.json
    tok_cfg.update(tokenizer_class="Qwen2Tokenizer", model_max_length=131072, padding_side="right")
    tok_cfg.pop("processor_class", None)
    tok_cfg_path.write_text(json.dumps(tok_cfg, indent=2) + "\n", encoding="utf-8")
    for name in ("chat_template.jinja", "processor_config.json"):  # 5.x-only files
        (out / name).unlink(missing_ok=True)
