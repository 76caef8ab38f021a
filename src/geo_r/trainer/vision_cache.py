"""Encode each photo once: dedupe the vision tower's input per call, and reuse its output across a step's passes.

TRL's ``RepeatSampler`` puts ``num_generations`` copies of every prompt in a batch, and a GRPO step runs the model
over them three times (generation, reference log-probs, policy forward): stock, each photo goes through the
vision tower once per copy per pass. :func:`install_vision_reuse` wraps the ``forward`` of a Qwen-VL vision tower
(``model.model.visual``: Qwen2-VL, Qwen2.5-VL and Qwen3-VL share its ``(pixel rows, grid_thw)`` contract) so that

* within one call, photos with identical pixels and grid are encoded once and their outputs are copied to every
  occurrence with ``index_select`` (autograd follows it, so a trained tower gets the summed gradient of its
  copies: equal in exact arithmetic to separate encodings, summed in another order, so not bit for bit in
  floating point);
* while the tower is frozen (no parameter requires grad), the outputs are kept in a per-step cache keyed by
  content (a device-side fingerprint, confirmed by ``torch.equal`` on the pixels) and reused by later passes of
  the same step, including the reference model's when its tower is the same module or holds equal weights. The
  trainer clears it at every optimizer step; its size is bounded (``max_bytes``) and reported.

Exactness: the tower attends within each image only (``cu_seqlens``), so an image's output does not depend on
what else is in the call; outputs are reused only under the same autocast state. With a frozen tower the results
are bit for bit those without reuse; with a trained one the tower's gradient differs by rounding (measured and
bounded in tests/test_vision_reuse_train.py; docs/training.md). Under DeepSpeed ZeRO-3 every
rank must run the partitioned tower the same number of times, so a rank whose call is served wholly from the
cache runs a 4-patch dummy encoding when any other rank encodes (:func:`_ranks_encoding`).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 2 * 1024**3
"""Default bound of the per-step cache (outputs plus the pixels kept to confirm matches): 2 GiB."""



@dataclass
class VisionStats:
    """What the towers did since the last :meth:`VisionReuseCache.end_step`."""

    images: int = 0  # images the model asked the tower for (every copy, every pass)
    encodings: int = 0  # images really encoded (dummy ZeRO-3 padding calls excluded)
    dummy_calls: int = 0  # ZeRO-3 padding calls
    cache_hits: int = 0  # images served from the per-step cache
    seconds: float = 0.0  # wall time inside the tower (encodings and dummy calls); only with the cache's timing
    peak_cache_bytes: int = 0
    cache_full: int = 0  # images not cached because the bound was reached


@dataclass
class _Entry:
    pixels: torch.Tensor
    grid: tuple[int, ...]
    pooler: torch.Tensor
    deepstack: list[torch.Tensor] | None
    out_type: type
    nbytes: int


@dataclass
class VisionReuseCache:
    """Per-step store of frozen-tower outputs plus the counters the trainer logs; one per trainer."""

    max_bytes: int = DEFAULT_MAX_BYTES
    reuse_across_passes: bool = True
    timing: bool = False  # time the tower calls (stats.seconds); on CUDA each call then waits for the device twice
    stats: VisionStats = field(default_factory=VisionStats)
    _entries: dict[tuple, list[_Entry]] = field(default_factory=dict)
    _bytes: int = 0

    def lookup(self, key: tuple, pixels: torch.Tensor) -> _Entry | None:
        """The cached entry whose pixels equal ``pixels`` under ``key`` (fingerprint), else None."""
        for entry in self._entries.get(key, ()):
            if entry.pixels.shape == pixels.shape and torch.equal(entry.pixels, pixels):
                return entry
        return None

    def store(self, key: tuple, entry: _Entry) -> None:
        """Keep ``entry`` unless the byte bound would be passed (then count it as not cached)."""
        if self._bytes + entry.nbytes > self.max_bytes:
            self.stats.cache_full += 1
            return
        self._entries.setdefault(key, []).append(entry)
        self._bytes += entry.nbytes
        self.stats.peak_cache_bytes = max(self.stats.peak_cache_bytes, self._bytes)

    @property
    def nbytes(self) -> int:
        """Bytes held now."""
        return self._bytes

    def clear(self) -> None:
        """Drop every cached output (the trainer calls it at each optimizer step)."""
        self._entries.clear()
        self._bytes = 0

    def end_step(self) -> VisionStats:
        """Clear the cache and return (and reset) the counters of the step that ended."""
        self.clear()
        stats, self.stats = self.stats, VisionStats()
        return stats


def find_vision_towers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The Qwen-VL vision towers inside ``model`` (PEFT / DeepSpeed wrappers included), each once."""
    towers: dict[int, torch.nn.Module] = {}
    for module in model.modules():
        visual = getattr(module, "visual", None)
        if isinstance(visual, torch.nn.Module) and hasattr(module, "get_image_features"):
            if hasattr(visual, "spatial_merge_size"):
                towers[id(visual)] = visual
    return list(towers.values())


def tower_is_frozen(visual: torch.nn.Module) -> bool:
    """Whether no parameter of the tower requires grad (its weights cannot change during training)."""
    return not any(p.requires_grad for p in visual.parameters())


def _is_zero3(module: torch.nn.Module) -> bool:
    """Whether DeepSpeed ZeRO-3 partitioned the module (its parameters carry ``ds_id``)."""
    first = next(module.parameters(), None)
    return first is not None and hasattr(first, "ds_id")


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    """Whether two towers hold bitwise-equal parameters (ZeRO-3: each rank's shards, agreed over ranks)."""
    pa, pb = list(a.parameters()), list(b.parameters())
    equal = len(pa) == len(pb)
    device = pa[0].device if pa else torch.device("cpu")
    if equal:
        for x, y in zip(pa, pb, strict=True):
            x_local = getattr(x, "ds_tensor", x)
            y_local = getattr(y, "ds_tensor", y)
            if x_local.shape != y_local.shape or x_local.dtype != y_local.dtype or not torch.equal(
                x_local.detach(), y_local.detach().to(x_local.device)
            ):
                equal = False
                break
    if _is_zero3(a) or _is_zero3(b):
        # agree over ranks (every rank compares its own shards): equal only if equal everywhere
        return not _ranks_encoding(not equal, device)
    return equal


def _ranks_encoding(local: bool, device: torch.device) -> bool:
    """Whether any rank encodes in this call (a max all-reduce; every rank calls it the same number of times)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return local
    flag = torch.tensor([1 if local else 0], device=device, dtype=torch.int32)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def _fingerprints(pixels: torch.Tensor, sizes: list[int]) -> list[tuple[int, int]]:
    """Two integer sums per image over the raw bits of its pixel rows (plain, and weighted): a device-side key.

    Integer sums are exact and order-free, so an image gets the same key wherever it sits in a batch (float sums
    may not: vectorised reductions depend on alignment). Collisions only cost a ``torch.equal`` check; matches
    are never trusted on the key alone.
    """
    int_type = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[pixels.element_size()]
    x = pixels.detach().contiguous().view(int_type).reshape(pixels.shape[0], -1)
    rows_plain = x.sum(dim=1, dtype=torch.int64)  # one value per patch row: no copy of the pixels is made
    rows_weighted = rows_plain & 0xFFFFF  # low bits, weighted by row position below: no int64 overflow
    row_pos = torch.cat([torch.arange(1, n + 1, dtype=torch.int64, device=x.device) for n in sizes])
    owner = torch.repeat_interleave(torch.arange(len(sizes), device=x.device), torch.tensor(sizes, device=x.device))
    plain = torch.zeros(len(sizes), dtype=torch.int64, device=x.device).index_add_(0, owner, rows_plain)
    weighted = torch.zeros(len(sizes), dtype=torch.int64, device=x.device).index_add_(
        0, owner, rows_weighted * row_pos
    )
    return list(zip(plain.tolist(), weighted.tolist(), strict=True))


def _batch_bound(kwargs: dict[str, Any]) -> bool:
    """Whether a keyword argument carries tensors (precomputed per-call positions or bounds); flags pass through."""
    for value in kwargs.values():
        if isinstance(value, torch.Tensor) or (
            isinstance(value, (list, tuple)) and any(isinstance(v, torch.Tensor) for v in value)
        ):
            return True
    return False


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _call_tower(cache: VisionReuseCache, fn: Callable[..., Any], pixels: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
    """Run the tower; with ``cache.timing``, add its wall time to ``cache.stats.seconds``, synchronising the device
    around the call (CUDA runs kernels asynchronously: without it the host time measures only their launch)."""
    if not cache.timing:
        return fn(pixels, *args, **kwargs)
    _sync(pixels.device)
    start = time.perf_counter()
    out = fn(pixels, *args, **kwargs)
    _sync(pixels.device)
    cache.stats.seconds += time.perf_counter() - start
    return out


def install_vision_reuse(
    visual: torch.nn.Module,
    cache: VisionReuseCache,
    group: Any,
    sync_calls: bool | None = None,
    frozen: Callable[[], bool] | None = None,
) -> None:
    """Wrap ``visual.forward`` (on the instance) with per-call dedup and, when frozen, the per-step ``cache``.

    ``group`` names whose outputs may be shared: towers given the same group must hold equal weights.
    ``sync_calls`` (default: whether the tower is ZeRO-3 partitioned) makes every rank run the tower whenever
    any rank does. ``frozen`` says whether the group's weights are fixed (default: no parameter of ``visual``
    requires grad); a reference model's tower passes the policy's answer. Installing twice is a no-op.
    """
    if frozen is None:
        frozen = functools.partial(tower_is_frozen, visual)
    if getattr(visual, "_geo_vision_reuse", None) is not None:
        return
    original: Callable[..., Any] = visual.forward
    merge = int(visual.spatial_merge_size)
    # ZeRO-3 may partition the tower after this (deepspeed.initialize in train()): decided at each call
    zero3: Callable[[], bool] = functools.partial(_is_zero3, visual) if sync_calls is None else lambda: sync_calls

    def forward(hidden_states: torch.Tensor, grid_thw: torch.Tensor, **kwargs: Any) -> Any:
        if _batch_bound(kwargs) or kwargs.get("return_dict") is False or grid_thw is None:
            # precomputed positions / attention bounds (tensors of the whole call), or a tuple wanted: as is
            return _timed(original, hidden_states, grid_thw, **kwargs)
        return _dedup_forward(frozen, original, cache, group, merge, zero3, hidden_states, grid_thw, kwargs)

    def _timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        out = _call_tower(cache, fn, *args, **kwargs)
        cache.stats.images += int(args[1].shape[0]) if args[1] is not None else 0
        cache.stats.encodings += int(args[1].shape[0]) if args[1] is not None else 0
        return out

    visual._geo_vision_reuse = (original, cache, group)
    visual.forward = forward


def uninstall_vision_reuse(visual: torch.nn.Module) -> None:
    """Restore the tower's own ``forward``."""
    state = getattr(visual, "_geo_vision_reuse", None)
    if state is not None:
        del visual.forward
        visual._geo_vision_reuse = None


def _dedup_forward(
    frozen: Callable[[], bool],
    original: Callable[..., Any],
    cache: VisionReuseCache,
    group: Any,
    merge: int,
    zero3: Callable[[], bool],
    pixels: torch.Tensor,
    grid_thw: torch.Tensor,
    kwargs: dict[str, Any],
) -> Any:
    """One tower call: encode each distinct image once, take frozen outputs from the cache, scatter to copies."""
    device = pixels.device
    grids = [tuple(int(v) for v in row) for row in grid_thw.tolist()]
    sizes = [t * h * w for t, h, w in grids]
    merged = [s // (merge * merge) for s in sizes]
    pieces = list(torch.split(pixels, sizes))
    use_cache = cache.reuse_across_passes and frozen()
    autocast = (torch.is_autocast_enabled(device.type), str(torch.get_autocast_dtype(device.type)))
    fps = _fingerprints(pixels, sizes)
    keys = [(group, autocast, grids[i], str(pixels.dtype), fps[i]) for i in range(len(grids))]

    # source of every image: ("new", index among the images encoded now) or ("hit", cache entry)
    sources: list[tuple[str, Any]] = []
    todo: list[int] = []  # image indices encoded now (first occurrence of each distinct content)
    for i, piece in enumerate(pieces):
        entry = cache.lookup(keys[i], piece) if use_cache else None
        if entry is not None:
            sources.append(("hit", entry))
            cache.stats.cache_hits += 1
            continue
        for j, first in enumerate(todo):
            if keys[first] == keys[i] and torch.equal(pieces[first], piece):
                sources.append(("new", j))
                break
        else:
            sources.append(("new", len(todo)))
            todo.append(i)
    cache.stats.images += len(pieces)
    # ZeRO-3: every rank takes part in this all-reduce on every call, whatever its own cache state
    must_encode = _ranks_encoding(bool(todo), device) if zero3() else bool(todo)

    if len(todo) == len(pieces):
        # nothing repeated, nothing cached: the tower's own call, untouched
        out = _encode(original, cache, pixels, grid_thw, kwargs, len(todo))
        if use_cache:
            _remember(cache, keys, pieces, grids, out, list(range(len(pieces))), merged)
        return out

    out = None
    if todo:
        sub_pixels = torch.cat([pieces[i] for i in todo]) if len(todo) > 1 else pieces[todo[0]]
        out = _encode(original, cache, sub_pixels, grid_thw[todo], kwargs, len(todo))
        if use_cache:
            _remember(cache, keys, pieces, grids, out, todo, merged)
    elif must_encode:
        # ZeRO-3: another rank runs the tower now; run it too (4 patches) so the parameter gathers match
        dummy = pixels.new_zeros((merge * merge, pixels.shape[1]))
        _encode(original, cache, dummy, grid_thw.new_tensor([[1, merge, merge]]), kwargs, 0)
        cache.stats.dummy_calls += 1

    # one bank of rows (new outputs first, then each distinct cache entry), one index_select per output field
    bank_pooler: list[torch.Tensor] = []
    bank_deep: list[list[torch.Tensor]] = []
    offsets: dict[int, int] = {}
    new_starts: list[int] = []
    rows = 0
    deep = None
    out_type = type(out) if out is not None else None
    if out is not None:
        bank_pooler.append(out.pooler_output)
        deep = getattr(out, "deepstack_features", None)
        if deep is not None:
            bank_deep.append(list(deep))
        start = 0
        for i in todo:
            new_starts.append(start)
            start += merged[i]
        rows = out.pooler_output.shape[0]
    index: list[int] = []
    for i, (kind, ref) in enumerate(sources):
        if kind == "new":
            start = new_starts[ref]
        else:
            if id(ref) not in offsets:
                offsets[id(ref)] = rows
                bank_pooler.append(ref.pooler)
                if ref.deepstack is not None:
                    bank_deep.append(ref.deepstack)
                rows += ref.pooler.shape[0]
                out_type = out_type or ref.out_type
            start = offsets[id(ref)]
        index.extend(range(start, start + merged[i]))
    idx = torch.tensor(index, device=device, dtype=torch.long)
    pooler_bank = torch.cat(bank_pooler) if len(bank_pooler) > 1 else bank_pooler[0]
    fields: dict[str, Any] = {"last_hidden_state": None, "pooler_output": pooler_bank.index_select(0, idx)}
    if bank_deep:
        layers = len(bank_deep[0])
        fields["deepstack_features"] = [
            (torch.cat([b[k] for b in bank_deep]) if len(bank_deep) > 1 else bank_deep[0][k]).index_select(0, idx)
            for k in range(layers)
        ]
    # last_hidden_state stays None: its rows are per patch of the encoded set (window-permuted on Qwen2.5-VL) and
    # the Qwen-VL models read only pooler_output and deepstack_features from the tower
    return out_type(**fields)


def _encode(
    original: Callable[..., Any],
    cache: VisionReuseCache,
    pixels: torch.Tensor,
    grid_thw: torch.Tensor,
    kwargs: dict[str, Any],
    count: int,
) -> Any:
    out = _call_tower(cache, original, pixels, grid_thw=grid_thw, **kwargs)
    cache.stats.encodings += count
    return out


def _remember(
    cache: VisionReuseCache,
    keys: list[tuple],
    pieces: list[torch.Tensor],
    grids: list[tuple[int, ...]],
    out: Any,
    encoded: Iterable[int],
    merged: list[int],
) -> None:
    """Cache the rows of each image encoded in ``out`` (frozen tower: nothing here requires grad)."""
    pooler = out.pooler_output.detach()
    deep = getattr(out, "deepstack_features", None)
    start = 0
    for i in encoded:
        rows = slice(start, start + merged[i])
        start += merged[i]
        if cache.lookup(keys[i], pieces[i]) is not None:
            continue
        entry_pooler = pooler[rows]
        entry_deep = [d.detach()[rows] for d in deep] if deep is not None else None
        nbytes = pieces[i].numel() * pieces[i].element_size() + entry_pooler.numel() * entry_pooler.element_size()
        nbytes += sum(d.numel() * d.element_size() for d in entry_deep or [])
        cache.store(keys[i], _Entry(pieces[i].detach(), grids[i], entry_pooler, entry_deep, type(out), nbytes))
