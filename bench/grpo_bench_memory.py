"""Largest per-device batch that fits: one GRPO step per probe, each in a fresh process.

A probe runs one optimizer step of a setting at per-device batch B with gradient accumulation 1 (so
the generation batch is B too) and full-length completions, in a child process, and reports its peak
memory or an out-of-memory error. A fresh process per probe means an OOM never leaves a fragmented
allocator behind for the next probe. The search doubles B from ``start`` until a probe fails (or
``max_batch``), then bisects between the last fit and the first failure in steps of ``multiple``
(B must stay a multiple of the number of generations).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

MEMORY_SETTINGS: dict[str, tuple[str, str, dict[str, Any]]] = {
    # name -> (model size, description, Knobs overrides on top of "ours")
    "3b_full": ("3b", "3B full fine-tuning, plain PyTorch (AdamW states in bf16 on the GPU)", {}),
    "3b_zero3_offload": (
        "3b",
        "3B full fine-tuning, DeepSpeed ZeRO-3 with parameters and optimizer offloaded to CPU",
        {"deepspeed": "local_scripts/zero3_offload.json"},
    ),
    "7b_lora": ("7b", "7B with LoRA r64 on the language model, vision frozen", {"lora_r": 64, "freeze_vision": True}),
}


def largest_fitting(
    fits: Callable[[int], bool], start: int, max_batch: int, multiple: int
) -> tuple[int | None, list[int]]:
    """The largest multiple of ``multiple`` in [start, max_batch] for which ``fits`` holds, and the batches tried.

    Assumes monotonicity (if B fits, every smaller B fits). Returns (None, tried) when ``start`` fails.
    """
    if start <= 0 or multiple <= 0 or start % multiple or max_batch < start:
        raise ValueError(f"bad search range: start {start}, max {max_batch}, multiple {multiple}")
    tried: list[int] = []

    def probe(b: int) -> bool:
        tried.append(b)
        return fits(b)

    if not probe(start):
        return None, tried
    good, bad = start, None
    while bad is None:
        nxt = min(good * 2, max_batch - max_batch % multiple)
        if nxt <= good:
            return good, tried
        if probe(nxt):
            good = nxt
        else:
            bad = nxt
    while bad - good > multiple:
        mid = (good + bad) // 2
        mid -= mid % multiple
        if mid <= good:
            break
        if probe(mid):
            good = mid
        else:
            bad = mid
    return good, tried


def free_port() -> int:
    """A TCP port that was free a moment ago (for a one-process torch.distributed group)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def single_process_dist_env() -> dict[str, str]:
    """Environment for a one-process distributed group (DeepSpeed needs one even on one GPU)."""
    return {
        "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1",
        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
    }


def run_probe(
    script: Path, setting: str, batch: int, common_args: list[str], out_dir: Path, timeout_s: float
) -> dict[str, Any]:
    """Run one probe child (``script --probe SETTING --probe_batch B``) and return its JSON result."""
    out = out_dir / f"probe-{setting}-{batch}.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, str(script), "--probe", setting, "--probe_batch", str(batch), "--probe_out", str(out),
           *common_args]
    env = dict(os.environ)
    if MEMORY_SETTINGS[setting][2].get("deepspeed"):
        env.update(single_process_dist_env())
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return {"batch": batch, "fits": False, "error": f"probe timed out after {timeout_s:.0f} s"}
    if out.is_file():
        result = json.loads(out.read_text(encoding="utf-8"))
    else:
        result = {"batch": batch, "fits": False, "error": f"probe exited {proc.returncode} without a result"}
    if proc.returncode != 0 or "error" in result:
        tail = (proc.stderr or proc.stdout or "")[-1500:]
        result.setdefault("stderr_tail", tail)
    return result
