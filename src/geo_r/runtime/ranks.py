"""This process's place in a ``torchrun`` launch of ``geo-r eval`` or ``geo-r index``, and the barriers they need.

Their ranks only wait for each other (a barrier before rank 0 merges the shards); nothing else is exchanged,
so a gloo group on CPU tensors serves GPU and CPU runs alike. The group's timeout is ``--ddp_timeout``. A heartbeat (:mod:`geo_r.runtime.heartbeat`) ends
the job, naming the rank, when one dies or freezes, instead of leaving the others in a barrier until the
timeout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

from geo_r.defaults import DEFAULT_DIST_TIMEOUT_S
from geo_r.runtime.heartbeat import Heartbeat, start_heartbeat


@dataclass(frozen=True)
class Ranks:
    """Rank, world size and local rank as torchrun sets them (0, 1, 0 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Ranks:
        """Read ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK``; ValueError when they are not consistent."""
        try:
            rank = int(os.environ.get("RANK", "0"))
            world = int(os.environ.get("WORLD_SIZE", "1"))
            local = int(os.environ.get("LOCAL_RANK", str(rank)))
        except ValueError as exc:
            raise ValueError(f"RANK / WORLD_SIZE / LOCAL_RANK must be integers ({exc})") from None
        if world < 1 or not 0 <= rank < world or local < 0:
            raise ValueError(f"inconsistent torchrun environment: RANK={rank} WORLD_SIZE={world} LOCAL_RANK={local}")
        return cls(rank, world, local)

    @property
    def is_main(self) -> bool:
        """Rank 0: it merges the shards and writes the results."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1


def join(ranks: Ranks, timeout_s: float = DEFAULT_DIST_TIMEOUT_S, what: str = "job") -> Heartbeat | None:
    """Join the process group (several processes only) and start the heartbeat that names a rank silent for
    ``timeout_s`` (``what`` names the job in its messages); stop both with :func:`leave`."""
    if not ranks.distributed:
        return None
    import torch.distributed as td

    if not td.is_initialized():
        td.init_process_group("gloo", rank=ranks.rank, world_size=ranks.world_size,
                              timeout=timedelta(seconds=timeout_s))
    return start_heartbeat(timeout_s, what=what)


def barrier(ranks: Ranks) -> None:
    """Wait for every rank (no-op in one process)."""
    if ranks.distributed:
        import torch.distributed as td

        td.barrier()


def leave(ranks: Ranks, heartbeat: Heartbeat | None) -> None:
    """Stop the heartbeat and leave the process group (after the last barrier every rank passes)."""
    if heartbeat is not None:
        heartbeat.stop()
    if ranks.distributed:
        import torch.distributed as td

        if td.is_initialized():
            td.destroy_process_group()
