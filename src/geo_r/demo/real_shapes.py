"""The published shapes of Qwen2.5-VL-3B / 7B, as a ``Qwen2_5_VLConfig`` whose depth can be cut to fit a CPU.

Speed, memory and image-token counts depend on shapes, not weight values, so the GPU bench
(``bench/gpu_shapes.py`` re-exports these names) and ``geo-r tiny-model --shape 3b|7b --layers N`` build
models from the ``config.json`` fields published with the Qwen2.5-VL-3B/7B-Instruct checkpoints, with random
weights: real hidden sizes, heads, KV heads, MLP widths, vocabulary and the real vision tower (window
attention with ``window_size`` 112 and full attention at ``fullatt_block_indexes``).
"""

from __future__ import annotations

from typing import Any

_VISION_2_5 = {
    "depth": 32,
    "hidden_size": 1280,
    "intermediate_size": 3420,
    "num_heads": 16,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "window_size": 112,
    "fullatt_block_indexes": [7, 15, 23, 31],
    "hidden_act": "silu",
}

REAL_SHAPES: dict[str, dict[str, Any]] = {
    "3b": {
        "name": "Qwen2.5-VL-3B-Instruct",
        "text": {
            "vocab_size": 151936,
            "hidden_size": 2048,
            "intermediate_size": 11008,
            "num_hidden_layers": 36,
            "num_attention_heads": 16,
            "num_key_value_heads": 2,
            "max_position_embeddings": 128000,
            "rms_norm_eps": 1e-6,
            "hidden_act": "silu",
            "rope_parameters": {"rope_type": "default", "mrope_section": [16, 24, 24], "rope_theta": 1e6},
        },
        "vision": {**_VISION_2_5, "out_hidden_size": 2048},
        "tie_word_embeddings": True,
        "approx_parameters": 3.75e9,
    },
    "7b": {
        "name": "Qwen2.5-VL-7B-Instruct",
        "text": {
            "vocab_size": 152064,
            "hidden_size": 3584,
            "intermediate_size": 18944,
            "num_hidden_layers": 28,
            "num_attention_heads": 28,
            "num_key_value_heads": 4,
            "max_position_embeddings": 128000,
            "rms_norm_eps": 1e-6,
            "hidden_act": "silu",
            "rope_parameters": {"rope_type": "default", "mrope_section": [16, 24, 24], "rope_theta": 1e6},
        },
        "vision": {**_VISION_2_5, "out_hidden_size": 3584},
        "tie_word_embeddings": False,
        "approx_parameters": 8.29e9,
    },
}
"""Published config fields of the real checkpoints (token ids aside: the bench's tokenizer supplies those)."""


def qwen2_5_vl_config(size: str, token_ids: dict[str, int], layers: int | None = None) -> Any:
    """A ``Qwen2_5_VLConfig`` with the real ``size`` ("3b" / "7b") shapes and the given special-token ids.

    ``token_ids`` maps ``bos``, ``eos``, ``pad``, ``image``, ``video``, ``vision_start``, ``vision_end`` to ids
    of the tokenizer the bench runs with; every id must be below the real vocabulary size. ``layers``
    (for quick checks only) cuts both the decoder and the vision tower to that many layers, keeping
    every width and the vocabulary; the last vision layer then has full attention.
    """
    if size not in REAL_SHAPES:
        raise ValueError(f"unknown model size {size!r}; choose one of {', '.join(REAL_SHAPES)}")
    from transformers import Qwen2_5_VLConfig

    shape = REAL_SHAPES[size]
    vocab = shape["text"]["vocab_size"]
    needed = ("bos", "eos", "pad", "image", "video", "vision_start", "vision_end")
    missing = [k for k in needed if k not in token_ids]
    if missing:
        raise ValueError(f"token_ids lacks {', '.join(missing)}")
    bad = {k: v for k, v in token_ids.items() if not 0 <= int(v) < vocab}
    if bad:
        raise ValueError(f"token ids {bad} do not fit the {size} vocabulary of {vocab}")
    vision = dict(shape["vision"])
    text = {
        **shape["text"],
        "rope_parameters": dict(shape["text"]["rope_parameters"]),
        "bos_token_id": token_ids["bos"],
        "eos_token_id": token_ids["eos"],
        "pad_token_id": token_ids["pad"],
        "tie_word_embeddings": shape["tie_word_embeddings"],
    }
    if layers is not None:
        if layers < 1:
            raise ValueError(f"layers must be >= 1, not {layers}")
        text["num_hidden_layers"] = min(layers, text["num_hidden_layers"])
        vision["depth"] = min(layers, vision["depth"])
        full = [i for i in vision["fullatt_block_indexes"] if i < vision["depth"]]
        vision["fullatt_block_indexes"] = full or [vision["depth"] - 1]
    return Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=token_ids["image"],
        video_token_id=token_ids["video"],
        vision_start_token_id=token_ids["vision_start"],
        vision_end_token_id=token_ids["vision_end"],
        tie_word_embeddings=shape["tie_word_embeddings"],
    )
