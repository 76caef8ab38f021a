"""Process-group housekeeping shared by the GRPO and SFT entrypoints."""

from __future__ import annotations


def shutdown_process_group() -> None:
    """Wait for every rank, then close the process group.

    A rank that exits while another still saves (gloo on CPU, DeepSpeed's comm threads) aborts with
    "terminate called without an active exception", and torchrun then fails the whole job.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
