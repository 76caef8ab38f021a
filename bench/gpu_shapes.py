"""Real Qwen2.5-VL shapes, GPU peak numbers and the roofline arithmetic of the GRPO GPU bench.

Speed and memory depend on shapes, not weight values, so the bench builds models from the published
``config.json`` fields (:mod:`geo_r.demo.real_shapes`, re-exported here) with random weights. The
peak table holds datasheet numbers (dense bf16, HBM bandwidth); ``roofline`` turns measured times into
the ratios the bench reports:

* decode bandwidth use = bytes of weights a decode step reads x decode steps / time, over peak bandwidth.
  A decode step reads every weight of the text decoder and the LM head once (the vision tower is not run
  and the embedding lookup touches one row per sequence). Qwen2.5-VL-3B: 3.086e9 parameters -> 6.17 GB
  per step in bf16, so an H100 (3.35 TB/s) cannot decode faster than 1.84 ms per step at any batch size.
* update MFU = model FLOPs of the policy forward + backward / time, over peak bf16 FLOP/s. Model FLOPs
  count 6 x parameters x tokens for each part on the tokens it really processes (decoder: prompt +
  completion tokens; LM head: completion tokens only, TRL scores nothing else; vision tower: image
  patches, merger: patches / 4) plus causal attention; recomputation by gradient checkpointing is not
  counted (the usual MFU convention), so checkpointing lowers MFU.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

# ----------------------------------------------------------------------------------------------- shapes
# The shapes live in the package (geo-r tiny-model --shape builds them too); re-exported here for the bench.
from geo_r.demo.real_shapes import REAL_SHAPES, qwen2_5_vl_config  # noqa: E402, F401

# ----------------------------------------------------------------------------------------- GPU peaks


@dataclass(frozen=True)
class GpuPeak:
    """Datasheet limits of one GPU model: dense bf16 tensor-core FLOP/s and HBM bandwidth."""

    name: str
    bf16_tflops: float
    hbm_tbps: float
    memory_gb: float


GPU_PEAKS: tuple[tuple[tuple[str, ...], GpuPeak], ...] = (
    # (substrings that must all appear in torch.cuda.get_device_name(), peak); first match wins
    (("H200",), GpuPeak("NVIDIA H200 SXM", 989.0, 4.8, 141.0)),
    (("H100", "PCIE"), GpuPeak("NVIDIA H100 PCIe", 756.0, 2.0, 80.0)),
    (("H100", "NVL"), GpuPeak("NVIDIA H100 NVL", 835.0, 3.9, 94.0)),
    (("H100",), GpuPeak("NVIDIA H100 SXM", 989.0, 3.35, 80.0)),
    (("H800",), GpuPeak("NVIDIA H800 SXM", 989.0, 3.35, 80.0)),
    (("A100", "40GB"), GpuPeak("NVIDIA A100 SXM 40GB", 312.0, 1.555, 40.0)),
    (("A100",), GpuPeak("NVIDIA A100 SXM 80GB", 312.0, 2.039, 80.0)),
    (("L40S",), GpuPeak("NVIDIA L40S", 362.0, 0.864, 48.0)),
)


def gpu_peak(device_name: str | None) -> GpuPeak | None:
    """The datasheet peak for a CUDA device name (e.g. "NVIDIA H100 80GB HBM3"), or None when unknown."""
    if not device_name:
        return None
    upper = device_name.upper()
    for keys, peak in GPU_PEAKS:
        if all(k in upper for k in keys):
            return peak
    return None


# ------------------------------------------------------------------------------------ model arithmetic


@dataclass(frozen=True)
class ModelCounts:
    """Parameter counts of a Qwen-VL model by the part of a GRPO step that reads them."""

    total: int  # every parameter (shared tensors once)
    decoder: int  # text decoder layers + final norm, embedding excluded
    embedding: int  # input embedding matrix
    lm_head: int  # output projection (equal to the embedding when tied; read again at every step)
    vision_per_patch: int  # vision tower parts applied to every patch (patch embed + blocks)
    vision_merger: int  # merger MLP, applied to every 2x2 group of patches
    layers: int
    heads: int
    head_dim: int
    kv_heads: int
    vision_layers: int
    vision_hidden: int
    vision_window_patches: int  # patches per attention window in the windowed vision layers
    vision_full_layers: int  # vision layers with full attention over the image
    dtype_bytes: int

    @property
    def decode_weight_bytes(self) -> int:
        """Bytes of weights one decode step reads: decoder + LM head (no vision, one embedding row)."""
        return (self.decoder + self.lm_head) * self.dtype_bytes

    @property
    def kv_bytes_per_token(self) -> int:
        """Bytes of K and V cache one token occupies (and every later decode step reads)."""
        return 2 * self.layers * self.kv_heads * self.head_dim * self.dtype_bytes


def _numel(params: Iterable[Any]) -> int:
    """Elements of the parameters, counting DeepSpeed ZeRO-3 partitioned ones at their full size."""
    return sum(int(getattr(p, "ds_numel", 0) or p.numel()) for p in params)


def count_parameters(model: Any, dtype_bytes: int | None = None) -> ModelCounts:
    """:class:`ModelCounts` of a (possibly PEFT-wrapped) transformers-5 Qwen2-VL / Qwen2.5-VL model.

    Works on meta-device models too (only shapes are read). ``dtype_bytes`` defaults to the element
    size of the decoder weights.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    inner = base.model
    lm = inner.language_model
    visual = inner.visual
    embed = lm.embed_tokens.weight
    total = _numel(base.parameters())
    lm_params = _numel(lm.parameters())
    merger = _numel(visual.merger.parameters())
    vision = _numel(visual.parameters())
    text_cfg = base.config.get_text_config()
    vis_cfg = base.config.vision_config
    heads = int(text_cfg.num_attention_heads)
    head_dim = int(getattr(text_cfg, "head_dim", None) or text_cfg.hidden_size // heads)
    window = int(getattr(vis_cfg, "window_size", 0) or 0)
    patch = int(vis_cfg.patch_size)
    window_patches = (window // patch) ** 2 if window else 0
    full_layers = getattr(vis_cfg, "fullatt_block_indexes", None)
    depth = int(vis_cfg.depth)
    return ModelCounts(
        total=total,
        decoder=lm_params - embed.numel(),
        embedding=_numel([embed]),
        lm_head=_numel([base.lm_head.weight]),
        vision_per_patch=vision - merger,
        vision_merger=merger,
        layers=int(text_cfg.num_hidden_layers),
        heads=heads,
        head_dim=head_dim,
        kv_heads=int(text_cfg.num_key_value_heads),
        vision_layers=depth,
        vision_hidden=int(getattr(vis_cfg, "hidden_size", 0) or getattr(vis_cfg, "embed_dim", 0)),
        vision_window_patches=window_patches,
        vision_full_layers=depth if full_layers is None or not window else len(full_layers),
        dtype_bytes=int(dtype_bytes if dtype_bytes is not None else embed.element_size()),
    )


def forward_flops(
    counts: ModelCounts,
    sequence_lengths: Iterable[int],
    scored_tokens: int,
    image_patches: Sequence[int],
) -> float:
    """Model FLOPs of one forward pass over a batch (see the module docstring for what is counted).

    ``sequence_lengths``: non-padding tokens per sequence (prompt + completion); ``scored_tokens``:
    tokens whose log-prob is computed (the LM head's work); ``image_patches``: patches per image
    (``image_grid_thw.prod(-1)``). Padding is not counted: MFU credits only useful work.
    """
    lengths = [int(n) for n in sequence_lengths]
    tokens = sum(lengths)
    text_dim = counts.heads * counts.head_dim
    flops = 2.0 * counts.decoder * tokens
    # causal self-attention: QK^T and AV, each 2 * dim FLOPs per (query, key) pair, ~n^2/2 pairs
    flops += sum(2.0 * counts.layers * text_dim * n * n for n in lengths)
    flops += 2.0 * counts.lm_head * int(scored_tokens)
    patches = [int(p) for p in image_patches]
    flops += 2.0 * counts.vision_per_patch * sum(patches)
    flops += 2.0 * counts.vision_merger * sum(patches) / 4.0
    windowed = counts.vision_layers - counts.vision_full_layers
    for p in patches:
        window = min(p, counts.vision_window_patches) if counts.vision_window_patches else p
        # bidirectional attention: 4 * dim FLOPs per (query, key) pair
        flops += 4.0 * counts.vision_hidden * p * (counts.vision_full_layers * p + windowed * window)
    return flops


def pct(numerator: float | None, denominator: float | None) -> float | None:
    """100 * a / b rounded to 0.1, or None when either is missing or b is not positive."""
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return round(100.0 * numerator / denominator, 1)
