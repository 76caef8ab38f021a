"""Online group filtering (DAPO's dynamic sampling) for GRPO: drop groups whose rewards all agree, refill the batch.

A GRPO group whose completions all earn the same reward has zero advantage: it costs a rollout and a backward
pass and teaches nothing (with ``scale_rewards`` group, near-ties are worse: a spread of 1e-5 is divided by
``std + 1e-4`` and becomes a full-size advantage of noise). ``zero_std`` drops such groups and rolls out groups
of further prompts until every process holds a full batch of informative rows, or ``max_tries`` extra rollouts
were made; the rows still missing then are filled with dropped rows taken out of the loss the way TRL's
``mask_truncated_completions`` takes truncated ones out (completion mask and advantage 0), so the batch keeps its
shape on every process.

Every decision is taken from the rewards that TRL gathers from all processes, so every process takes the same
one and makes the same number of rollouts (no collective can wait forever). The helpers here are pure
functions of tensors; :class:`geo_r.trainer.grpo_trainer.GeoGRPOTrainer` runs the loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

GROUP_FILTERS = ("none", "zero_std")

# How each key of TRL 1.16's rollout dict (``_generate_and_score_completions``) is merged. Every key TRL can return is
# here, and a key that is not makes :func:`select_rows` raise: padding an unknown key the wrong way shifts tokens or
# image marks silently (the ``mm_token_type_ids`` bug was exactly that). tests/test_trl_contract.py checks this table
# against TRL's source and a real rollout.
PROMPT = "prompt"  # (rows, prompt width): left-padded like prompt_ids
COMPLETION = "completion"  # (rows, completion width): right-padded like completion_ids
COMPLETION_OR_ROW = "completion_or_row"  # (rows, completion width) per token, or (rows, 1) per sequence
SEQUENCE = "sequence"  # (rows, prompt [+ completion] width): each side re-padded like its tokens
ROW = "row"  # (rows,): one value per row
ROW_LIST = "row_list"  # a Python list, one item per row
IMAGE = "image"  # per image; TRL's split_pixel_values_by_grid turns it into one tensor per row
BATCH = "batch"  # one value for the whole batch of every process: recounted by the caller
ROLLOUT_KEYS: dict[str, str] = {
    "prompt_ids": PROMPT,
    "prompt_mask": PROMPT,
    "completion_ids": COMPLETION,
    "completion_mask": COMPLETION,
    "old_per_token_logps": COMPLETION,
    "sampling_per_token_logps": COMPLETION,
    "ref_per_token_logps": COMPLETION,
    "tool_mask": COMPLETION,
    "importance_sampling_ratio": COMPLETION_OR_ROW,
    "token_type_ids": SEQUENCE,
    "mm_token_type_ids": SEQUENCE,
    "advantages": ROW,
    "num_images": ROW_LIST,
    "num_tiles": ROW_LIST,
    "pixel_values": IMAGE,
    "image_grid_thw": IMAGE,
    "image_position_ids": IMAGE,
    "pixel_attention_mask": IMAGE,
    "spatial_shapes": IMAGE,
    "image_sizes": IMAGE,
    "num_items_in_batch": BATCH,
}
# tensors padded with something other than 0: token ids with the pad token; TRL pads tool_mask with 1
TOKEN_KEYS = frozenset({"prompt_ids", "completion_ids"})
ONE_PADDED_KEYS = frozenset({"tool_mask"})


@dataclass(frozen=True)
class GroupFilterConfig:
    """``mode`` (none / zero_std), the reward tolerance within which a group counts as agreeing, the extra
    rollouts allowed per generation batch."""

    mode: str = "none"
    tolerance: float = 1e-4
    max_tries: int = 3

    def __post_init__(self) -> None:
        if self.mode not in GROUP_FILTERS:
            raise ValueError(f"--group_filter must be one of {', '.join(GROUP_FILTERS)}, got {self.mode!r}")
        if not self.tolerance >= 0.0:
            raise ValueError(f"--group_filter_tol must be >= 0, got {self.tolerance}")
        if self.max_tries < 0:
            raise ValueError(f"--group_filter_max_tries must be >= 0, got {self.max_tries}")

    @property
    def enabled(self) -> bool:
        """True when groups are filtered."""
        return self.mode != "none"


def _spread(values: torch.Tensor) -> torch.Tensor:
    """max - min over the last dim, ignoring NaN; rows with fewer than two finite values give 0."""
    finite = torch.isfinite(values)
    hi = torch.where(finite, values, torch.full_like(values, -torch.inf)).amax(dim=-1)
    lo = torch.where(finite, values, torch.full_like(values, torch.inf)).amin(dim=-1)
    spread = hi - lo
    return torch.where(finite.sum(dim=-1) >= 2, spread, torch.zeros_like(spread))


def weighted_total(rewards_per_func: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Each row's weighted total reward, NaN where no function scored it: the total TRL 1.16 centres per group with
    ``sum_then_normalize`` (a copy of its formula; tests/test_trl_contract.py compares it with TRL's logged reward)."""
    rewards = rewards_per_func.detach().to(torch.float64)
    total = (rewards * weights.to(rewards).unsqueeze(0)).nansum(dim=1)
    total[torch.isnan(rewards).all(dim=1)] = torch.nan  # unscorable rows, as TRL marks them
    return total


def flat_groups(
    rewards_per_func: torch.Tensor,
    weights: torch.Tensor,
    num_generations: int,
    aggregation: str = "sum_then_normalize",
    tolerance: float = 1e-4,
) -> torch.Tensor:
    """One bool per group (``num_generations`` consecutive rows): True where the group's rewards agree.

    ``rewards_per_func`` is TRL's (rows x reward functions) tensor, gathered from every process, NaN where a
    function did not score a row. With ``sum_then_normalize`` (TRL's default) a group agrees when its weighted
    total reward spans at most ``tolerance`` (max - min): that total is what TRL centres per group. With
    ``normalize_then_sum`` each function is normalised per group first, so a group agrees only when every
    function's rewards span at most ``tolerance``. A group with fewer than two scored rows agrees (no signal).
    """
    if rewards_per_func.dim() != 2 or rewards_per_func.size(0) % num_generations:
        raise ValueError(
            f"rewards of shape {tuple(rewards_per_func.shape)} do not split into groups of {num_generations}"
        )
    if aggregation == "sum_then_normalize":
        return _spread(weighted_total(rewards_per_func, weights).view(-1, num_generations)) <= tolerance
    if aggregation == "normalize_then_sum":
        rewards = rewards_per_func.detach().to(torch.float64)
        grouped = rewards.view(-1, num_generations, rewards.size(1)).transpose(1, 2)  # groups x funcs x gens
        return (_spread(grouped) <= tolerance).all(dim=1)
    raise ValueError(f"unknown multi_objective_aggregation {aggregation!r}")


def local_rows(
    flat: torch.Tensor, num_generations: int, process_index: int, local_size: int
) -> tuple[list[int], list[int]]:
    """(kept, dropped) row indices of process ``process_index``'s ``local_size`` rows.

    TRL lays the gathered rows out process after process, so the process's rows are global rows
    ``process_index * local_size ...``; a group may straddle two processes (each keeps or drops its part)."""
    kept, dropped = [], []
    for i in range(local_size):
        group = (process_index * local_size + i) // num_generations
        (dropped if bool(flat[group]) else kept).append(i)
    return kept, dropped


def kept_counts(flat: torch.Tensor, num_generations: int, num_processes: int, local_size: int) -> list[int]:
    """How many informative rows each process holds after one rollout (every process computes the same list)."""
    return [len(local_rows(flat, num_generations, p, local_size)[0]) for p in range(num_processes)]


def replacement_indices(
    dataset_size: int, num_prompts: int, num_generations: int, seed: int, process_index: int, local_size: int
) -> list[int]:
    """Dataset indices of this process's rows in one extra rollout: ``num_prompts`` prompts drawn with ``seed``
    (the same on every process), each repeated ``num_generations`` times, dealt out as TRL's sampler does."""
    if dataset_size < 1:
        raise ValueError("the training set is empty: no prompts to refill filtered groups")
    generator = torch.Generator().manual_seed(seed)
    prompts: list[int] = []
    while len(prompts) < num_prompts:
        prompts += torch.randperm(dataset_size, generator=generator).tolist()
    rows = [i for i in prompts[:num_prompts] for _ in range(num_generations)]
    return rows[process_index * local_size : (process_index + 1) * local_size]


def rollout_seed(base_seed: int, step: int, attempt: int) -> int:
    """The seed of the extra prompts of one rollout: a function of the step, so a resumed run draws the same."""
    return (int(base_seed) * 1_000_003 + int(step) * 1_009 + int(attempt)) % (2**63 - 1)


def _pad_cat(tensors: Sequence[torch.Tensor], value: float, left: bool) -> torch.Tensor:
    """Concatenate (rows x length x ...) tensors along rows, padding dim 1 to the longest (left or right)."""
    width = max(t.size(1) for t in tensors)
    out = []
    for t in tensors:
        missing = width - t.size(1)
        if missing:
            pad = t.new_full((t.size(0), missing, *t.shape[2:]), value)
            t = torch.cat([pad, t] if left else [t, pad], dim=1)
        out.append(t)
    return torch.cat(out, dim=0)


def _merge_sequence_key(key: str, picked: Sequence[torch.Tensor], prompt_widths: Sequence[int]) -> torch.Tensor:
    """Merge a field that spans the prompt and (when TRL extended it) the completion: the prompt columns are
    left-padded and the completion columns right-padded separately, so the field stays aligned with
    ``cat(prompt_ids, completion_ids)``; padding the whole row on one side would shift every image-token mark."""
    if all(t.size(1) == w for t, w in zip(picked, prompt_widths, strict=True)):
        return _pad_cat(picked, 0.0, left=True)  # prompt side only
    if not all(t.size(1) > w for t, w in zip(picked, prompt_widths, strict=True)):
        raise ValueError(f"group filter: rollout key {key!r} is neither prompt-wide nor prompt + completion wide")
    prompts = _pad_cat([t[:, :w] for t, w in zip(picked, prompt_widths, strict=True)], 0.0, left=True)
    completions = _pad_cat([t[:, w:] for t, w in zip(picked, prompt_widths, strict=True)], 0.0, left=False)
    return torch.cat([prompts, completions], dim=1)


def _check_width(key: str, picked: Sequence[torch.Tensor], widths: Sequence[int], side: str) -> None:
    for t, w in zip(picked, widths, strict=True):
        if t.dim() < 2 or t.size(1) != w:
            raise ValueError(
                f"group filter: rollout key {key!r} of shape {tuple(t.shape)} is not {side}-wide ({w} columns)"
            )


def _merge_tensor(key: str, picked: list[torch.Tensor], split: list[dict[str, Any]], pad_token_id: int) -> torch.Tensor:
    """Merge the picked rows of one tensor key by its kind in :data:`ROLLOUT_KEYS`."""
    kind = ROLLOUT_KEYS[key]
    prompt_widths = [part["prompt_ids"].size(1) for part in split]
    completion_widths = [part["completion_ids"].size(1) for part in split]
    pad = float(pad_token_id) if key in TOKEN_KEYS else 1.0 if key in ONE_PADDED_KEYS else 0.0
    if kind == ROW:
        if any(t.dim() != 1 for t in picked):
            raise ValueError(f"group filter: rollout key {key!r} should hold one value per row")
        return torch.cat(picked, dim=0)
    if kind == PROMPT:
        _check_width(key, picked, prompt_widths, "prompt")
        return _pad_cat(picked, pad, left=True)
    if kind == COMPLETION:
        _check_width(key, picked, completion_widths, "completion")
        return _pad_cat(picked, pad, left=False)
    if kind == COMPLETION_OR_ROW:
        if all(t.dim() == 2 and t.size(1) == 1 for t in picked):
            return torch.cat(picked, dim=0)  # one value per sequence
        _check_width(key, picked, completion_widths, "completion")
        return _pad_cat(picked, pad, left=False)
    if kind == SEQUENCE:
        return _merge_sequence_key(key, picked, prompt_widths)
    raise ValueError(f"group filter: rollout key {key!r} ({kind}) is not a per-row tensor")


def select_rows(parts: Sequence[tuple[dict[str, Any], Sequence[int]]], pad_token_id: int) -> dict[str, Any]:
    """One rollout dict made of the given rows of several TRL rollout dicts, in order.

    Each part is ``(rollout, rows)``; ``rollout`` is the dict ``_generate_and_score_completions`` returns. Every key
    is merged by its kind in :data:`ROLLOUT_KEYS`: prompt tensors left-padded to the longest prompt, completion
    tensors right-padded to the longest completion (token ids with ``pad_token_id``, masks and log-probs with 0, as
    TRL pads them: padding is masked out of every pass), images following their rows. A key the table does not
    know, or a tensor whose shape does not fit its kind, raises ValueError: this TRL returns something the filter
    was not written for. ``num_items_in_batch`` is left to the caller (it counts tokens over every process;
    :func:`loss_token_count`).
    """
    from trl.trainer.utils import split_pixel_values_by_grid, unsplit_pixel_values_by_grid

    keys = list(dict.fromkeys(k for part, _ in parts for k in part))
    unknown = [k for k in keys if k not in ROLLOUT_KEYS]
    if unknown:
        raise ValueError(
            f"group filter: TRL's rollout holds key(s) {unknown} that geo_r.trainer.group_filter.ROLLOUT_KEYS does "
            "not know; merging them could misalign rows. Add each with its kind (see tests/test_trl_contract.py)."
        )
    split = [(split_pixel_values_by_grid(dict(part)), list(rows)) for part, rows in parts]
    out: dict[str, Any] = {}
    for key in keys:
        kind = ROLLOUT_KEYS[key]
        values = [part.get(key) for part, _ in split]
        if kind == BATCH:
            out[key] = values[0]
        elif all(v is None for v in values):
            out[key] = None
        elif any(v is None for v in values):
            raise ValueError(f"group filter: rollout key {key!r} is missing from some rollouts")
        elif kind in (ROW_LIST, IMAGE):
            if not all(isinstance(v, list) for v in values):
                raise ValueError(
                    f"group filter: rollout key {key!r} ({kind}) is not a per-row list after TRL's "
                    "split_pixel_values_by_grid; this image layout cannot be merged by row"
                )
            out[key] = [v[i] for v, (_, rows) in zip(values, split, strict=True) for i in rows]
        elif isinstance(values[0], torch.Tensor):
            picked = [v[torch.as_tensor(rows, dtype=torch.long, device=v.device)]
                      for v, (_, rows) in zip(values, split, strict=True)]
            out[key] = _merge_tensor(key, picked, [part for part, _ in split], pad_token_id)
        else:
            raise ValueError(f"group filter: cannot merge rollout key {key!r} of type {type(values[0]).__name__}")
    return unsplit_pixel_values_by_grid(out)


def loss_token_count(rollout: dict[str, Any]) -> torch.Tensor:
    """This process's count of tokens in the loss: TRL's ``completion_mask * tool_mask`` summed (a copy of its
    ``num_items_in_batch`` formula, before the gather; tests/test_trl_contract.py compares the two)."""
    mask = rollout["completion_mask"]
    if rollout.get("tool_mask") is not None:
        mask = mask * rollout["tool_mask"]
    return mask.sum()


def mask_rows_out(rollout: dict[str, Any], rows: slice) -> None:
    """Take ``rows`` out of the loss in place, the way TRL's ``mask_truncated_completions`` does: completion mask
    (and tool mask) 0, advantage 0. They stay in the batch, so every process keeps its shape."""
    rollout["completion_mask"][rows] = 0
    if rollout.get("tool_mask") is not None:
        rollout["tool_mask"][rows] = 0
    rollout["advantages"][rows] = 0.0


@dataclass
class FilterOutcome:
    """What one generation batch's filtering did (global counts, the same on every process)."""

    groups: int = 0  # groups of the step's own prompts
    filtered: int = 0  # of those, dropped
    extra_rollouts: int = 0
    extra_completions: int = 0
    extra_groups_filtered: int = 0
    extra_groups: int = 0
    filler_rows: int = 0  # rows kept with their loss masked out (max_tries reached), over every process
    rows: int = 0  # rows of the batch, over every process

    def metrics(self) -> dict[str, float]:
        """Log keys of this outcome."""
        return {
            "group_filter/filtered_frac": self.filtered / self.groups if self.groups else 0.0,
            "group_filter/extra_rollouts": float(self.extra_rollouts),
            "group_filter/extra_completions": float(self.extra_completions),
            "group_filter/extra_filtered_frac": (self.extra_groups_filtered / self.extra_groups
                                                 if self.extra_groups else 0.0),
            "group_filter/masked_frac": self.filler_rows / self.rows if self.rows else 0.0,
        }
