"""Process-group housekeeping shared by the GRPO and SFT entrypoints (CPU DeepSpeed set-up, clean exits)."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence

from geo_r.defaults import DEFAULT_DIST_TIMEOUT_S


def uses_deepspeed(argv: Sequence[str]) -> bool:
    """True when the command line passes ``--deepspeed CONFIG``."""
    return any(a == "--deepspeed" or a.startswith("--deepspeed=") for a in argv)


def free_port() -> int:
    """A TCP port free on this machine right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


DEFAULT_TIMEOUT_S = DEFAULT_DIST_TIMEOUT_S


def ddp_timeout_from_argv(argv: Sequence[str], default: int = DEFAULT_TIMEOUT_S) -> int:
    """The value of ``--ddp_timeout`` on a command line (the last one wins), or ``default``."""
    value: str | None = None
    for i, arg in enumerate(argv):
        if arg == "--ddp_timeout" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--ddp_timeout="):
            value = arg.split("=", 1)[1]
    if value is None:
        return default
    try:
        seconds = int(float(value))
    except ValueError:
        raise ValueError(f"--ddp_timeout {value}: expected a number of seconds") from None
    if seconds <= 0:
        raise ValueError(f"--ddp_timeout {value}: must be > 0 seconds")
    return seconds


def init_deepspeed_on_cpu(timeout_s: int = DEFAULT_TIMEOUT_S) -> None:
    """Give DeepSpeed a gloo process group on a machine without CUDA, before any TrainingArguments is built.

    accelerate sets up torch.distributed for CPU but not deepspeed.comm; without this, the reference model's
    ZeRO-3 init sees world size 1 and fails its batch-size check (train_batch_size != micro batch x world size,
    seen with 2 ranks on CPU). A plain
    ``python ... --deepspeed`` (no torchrun) has no rendezvous variables and DeepSpeed would try MPI
    discovery; one local process is what such a run means. ``timeout_s`` (``--ddp_timeout``) bounds every
    collective, as accelerate does on the GPU paths; DeepSpeed's own default would apply otherwise.
    """
    from datetime import timedelta

    import deepspeed

    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1"}.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("MASTER_PORT", str(free_port()))
    deepspeed.init_distributed(dist_backend="gloo", timeout=timedelta(seconds=timeout_s))


def shutdown_process_group() -> None:
    """Wait for every rank, then close the process group.

    A rank that exits while another still saves (gloo on CPU, DeepSpeed's comm threads) aborts with
    "terminate called without an active exception", and torchrun then fails the whole job.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def exit_if_deepspeed_on_cpu(argv: list[str]) -> None:
    """End a finished DeepSpeed-on-CPU process with ``os._exit(0)`` instead of a normal interpreter shutdown.

    With DeepSpeed on CPU (gloo + its shared-memory comm op), a rank sometimes aborts during interpreter
    teardown ("terminate called without an active exception", SIGABRT) after everything was saved and the
    process group closed: about 1 run in 5 of our 2-process ZeRO-3 test, and seen when VLM-R1's and Geo-R's
    released code ran on CPU too. torchrun then fails a job that succeeded. Called only
    from the entrypoints' ``__main__`` blocks, after main() returned; GPU runs shut down normally.
    """
    import sys

    import torch

    if uses_deepspeed(argv) and not torch.cuda.is_available():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
