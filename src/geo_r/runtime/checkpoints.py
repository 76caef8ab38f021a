"""Which ``checkpoint-N`` folders can really be resumed, and a marker that says a save finished on every rank.

transformers writes a checkpoint piece by piece from every rank (weights, optimizer or DeepSpeed shards, one
RNG file per rank, ``trainer_state.json``); a node that dies while saving leaves a folder that looks like a
checkpoint but cannot be loaded. :class:`CompleteCheckpointCallback` waits for every rank after each save and
then writes ``geo_r_checkpoint.json`` (atomically) into the folder: a checkpoint with that marker was finished
by every rank. :func:`checkpoint_problems` lists what keeps a folder from being resumed, and
:func:`newest_resumable` picks the newest folder without problems, saying why it passed over the others.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from geo_r.atomic_io import write_json_atomic

MARKER = "geo_r_checkpoint.json"
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no", ""}
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
_WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "adapter_model.safetensors",
    "adapter_model.bin",
)


def checkpoint_folders(output_dir: str | os.PathLike[str]) -> list[Path]:
    """The ``checkpoint-N`` folders under ``output_dir``, newest (largest N) first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _CHECKPOINT_RE.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def _deepspeed_problems(ckpt: Path, world_size: int | None) -> list[str]:
    """What is missing from a DeepSpeed checkpoint: the ``latest`` tag, its folder, one optimizer shard per rank."""
    tag_file = ckpt / "latest"
    if not tag_file.is_file():
        return ["DeepSpeed's 'latest' file is missing"]
    tag = tag_file.read_text().strip()
    shards = sorted((ckpt / tag).glob("*optim_states.pt")) if (ckpt / tag).is_dir() else []
    if not shards:
        return [f"DeepSpeed optimizer shards are missing from {tag}/"]
    if world_size is not None and len(shards) < world_size:
        return [f"{len(shards)} of {world_size} DeepSpeed optimizer shards in {tag}/"]
    return []


def checkpoint_problems(ckpt: str | os.PathLike[str]) -> list[str]:
    """Why ``ckpt`` cannot be resumed (empty list: it can): unfinished save, weights only, missing state files."""
    ckpt = Path(ckpt)
    if not ckpt.is_dir():
        return ["no such folder"]
    names = {p.name for p in ckpt.iterdir()}
    marker: dict[str, Any] = {}
    if MARKER in names:
        try:
            marker = json.loads((ckpt / MARKER).read_text())
        except (OSError, ValueError):
            return [f"{MARKER} is unreadable"]
        if marker.get("save_only_model"):
            return ["weights only (saved with --save_only_model true): no optimizer or RNG state to resume"]
    problems = []
    if "trainer_state.json" not in names:
        problems.append("trainer_state.json is missing")
    if not names & set(_WEIGHTS) and not any(n.startswith("global_step") for n in names):
        problems.append("model weights are missing")
    world = marker.get("world_size")
    if "latest" in names or any(n.startswith("global_step") for n in names):
        problems += _deepspeed_problems(ckpt, world)
    elif "optimizer.pt" not in names:
        problems.append(
            "optimizer.pt is missing (weights only: saved with --save_only_model true, or the save was cut short)"
        )
    rng = sorted(n for n in names if n.startswith("rng_state"))
    if not rng:
        problems.append("RNG state is missing")
    elif world is not None and world > 1 and len(rng) < world:
        problems.append(f"RNG state of {len(rng)} of {world} ranks")
    if not marker and not _legacy_ok(ckpt):
        problems.append(f"{MARKER} is missing: the save did not finish on every rank")
    return problems


def _legacy_ok(ckpt: Path) -> bool:
    """A checkpoint without a marker is trusted only if no sibling has one (a run from before markers existed)."""
    return not any((p / MARKER).is_file() for p in checkpoint_folders(ckpt.parent))


def newest_resumable(output_dir: str | os.PathLike[str]) -> tuple[Path | None, list[tuple[Path, list[str]]]]:
    """The newest checkpoint under ``output_dir`` that can be resumed, and the newer ones passed over (with why)."""
    skipped = []
    for ckpt in checkpoint_folders(output_dir):
        problems = checkpoint_problems(ckpt)
        if not problems:
            return ckpt, skipped
        skipped.append((ckpt, problems))
    return None, skipped


def save_settings_note(args: Any) -> str | None:
    """A warning when the save settings cannot give a resumable checkpoint after a failure, else None."""
    if getattr(args, "save_strategy", "no") in ("no", None):
        return None
    if args.save_only_model:
        return (
            "--save_only_model true: checkpoints hold weights only and cannot be resumed (--resume_from_checkpoint "
            "True passes over them); drop it to save optimizer, scheduler and RNG state as well"
        )
    if args.save_total_limit == 1 and args.world_size > 1:
        return (
            "--save_total_limit 1: the previous checkpoint is deleted before every rank has finished the new one, so "
            "a node lost during a save leaves nothing to resume; keep 2"
        )
    return None


class CompleteCheckpointCallback(TrainerCallback):
    """After each save, wait for every rank, then mark the folder complete (``geo_r_checkpoint.json``)."""

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.barrier()
        if not state.is_world_process_zero:
            return
        ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if ckpt.is_dir():
            write_json_atomic(
                ckpt / MARKER,
                {
                    "global_step": state.global_step,
                    "world_size": args.world_size,
                    "save_only_model": bool(args.save_only_model),
                    "deepspeed": bool(args.deepspeed),
                },
            )


def newest_checkpoint(output_dir: str | os.PathLike[str]) -> Path | None:
    """The ``checkpoint-N`` folder with the largest N under ``output_dir``, or None if there is none."""
    found = checkpoint_folders(output_dir)
    return found[0] if found else None


def resolve_resume(value: str | None, output_dir: str) -> tuple[str | None, str | None]:
    """Turn ``--resume_from_checkpoint`` into a checkpoint path (or None) and a message for the log.

    ``True`` (VLM-R1's scripts, Geo-R's launchers) means: the newest checkpoint in ``output_dir`` that can be
    resumed (complete on every rank, with optimizer and RNG state; see :func:`checkpoint_problems`), saying
    why newer ones were passed over; a fresh start when there is none. ``False``/empty means a fresh start.
    Anything else must be a checkpoint folder that can be resumed.
    """
    if value is None or value.strip().lower() in _FALSE:
        return None, None
    if value.strip().lower() in _TRUE:
        ckpt, skipped = newest_resumable(output_dir)
        passed = "".join(f"; passed over {p.name}: {', '.join(why)}" for p, why in skipped)
        if ckpt is None:
            found = "no checkpoint-* in" if not skipped else "no resumable checkpoint in"
            return None, f"--resume_from_checkpoint True: {found} {output_dir}; starting fresh{passed}"
        return str(ckpt), f"--resume_from_checkpoint True: resuming from {ckpt}{passed}"
    if not Path(value).is_dir():
        raise FileNotFoundError(f"--resume_from_checkpoint {value}: no such checkpoint folder")
    problems = checkpoint_problems(value)
    if problems:
        raise ValueError(f"--resume_from_checkpoint {value} cannot be resumed: {'; '.join(problems)}")
    return value, f"resuming from {value}"
