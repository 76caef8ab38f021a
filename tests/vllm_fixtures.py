"""Helpers of the vLLM tier (tests/test_vllm_tier.py): photos with ground truth, and a tiny model biased to emit
vision special tokens, so that blocking them (vLLM's ``logit_bias``) visibly matters."""

from __future__ import annotations

import shutil
from pathlib import Path

from data_fixtures import write_jsonl

# Photo sizes (w, h): square, landscape, tiny (scaled up to min_pixels), camera-sized (scaled down to
# max_pixels), a 1:7 strip and a portrait: every resize path of smart_resize.
PHOTO_SIZES = ((112, 112), (300, 200), (84, 70), (640, 480), (56, 392), (200, 300))
PLACES = ((48.86, 2.35), (35.68, 139.69), (-1.29, 36.82), (-33.87, 151.21), (40.71, -74.01), (-22.91, -43.17))


def write_photo_set(root: Path, make_images) -> tuple[Path, Path]:
    """Six photos (one per size above) and their ground truth jsonl; returns (jsonl, image folder)."""
    images = root / "images"
    paths = make_images(images, len(PHOTO_SIZES), sizes=PHOTO_SIZES)
    rows = [{"id": f"p{i}", "image": p.name, "lat": lat, "lon": lon}
            for i, (p, (lat, lon)) in enumerate(zip(paths, PLACES, strict=True))]
    return write_jsonl(root / "photos.jsonl", rows), images


def write_vision_biased_model(src: Path, out: Path, strength: float = 1.0) -> list[int]:
    """Copy the checkpoint ``src`` to ``out`` with its weights changed so that every vision special token
    outscores all other tokens at every position; returns those token ids.

    The last decoder layer's attention adds a constant to the residual stream (value projection 0, value bias 1:
    the attention output is the same vector for any attention weights; the output projection writes it into
    hidden dimension 0), so the final hidden state is dominated by dimension 0 and is about sqrt(hidden) there.
    The vision tokens' output rows read dimension 0 with weight ``strength``: their logits are about
    16 * strength for the small model (hidden 256), the others' about 0.3; a -100 logit bias still removes them.
    """
    import torch

    from geo_r.models.loading import load_model
    from geo_r.models.processor import load_processor, vision_special_token_ids

    shutil.copytree(src, out)
    model = load_model(src, dtype=torch.float32)
    blocked = vision_special_token_ids(load_processor(src))
    attn = model.model.language_model.layers[-1].self_attn
    with torch.no_grad():
        attn.v_proj.weight.zero_()
        attn.v_proj.bias.fill_(1.0)
        attn.o_proj.weight.zero_()
        attn.o_proj.weight[0].fill_(1000.0 / attn.o_proj.weight.shape[1])
        for token in blocked:
            model.lm_head.weight[token].zero_()
            model.lm_head.weight[token, 0] = strength
    model.save_pretrained(out)
    return blocked
