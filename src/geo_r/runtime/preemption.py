"""Save a checkpoint and stop cleanly when asked: SLURM's warning before the time limit, or a user's ``touch``.

The SLURM scripts (run_scripts/slurm/) trap the signal SLURM sends before the time limit and create the stop
file (``$GEO_R_STOP_FILE``, or ``<output_dir>/GEO_R_STOP``); anyone may create it by hand too. After every
optimizer step, every rank looks for the file and the ranks agree (an all-reduce of one number, so they stop at
the same step); then the trainer saves a full checkpoint and returns. The launcher requeues the job, and the
next run resumes from that checkpoint.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

logger = logging.getLogger(__name__)

STOP_FILE_NAME = "GEO_R_STOP"


def stop_file(output_dir: str | os.PathLike[str]) -> Path:
    """Where a stop request is looked for: ``$GEO_R_STOP_FILE`` if set, else ``<output_dir>/GEO_R_STOP``."""
    env = os.environ.get("GEO_R_STOP_FILE", "").strip()
    return Path(env) if env else Path(output_dir) / STOP_FILE_NAME


def _any_rank(flag: bool, device: Any) -> bool:
    """True if ``flag`` is true on any rank (an all-reduce of one number; the flag itself outside torchrun)."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


class StopRequestCallback(TrainerCallback):
    """Stop training with a checkpoint at the first step end after the stop file appears."""

    def __init__(self, output_dir: str | os.PathLike[str]) -> None:
        self.path = stop_file(output_dir)
        self.stopped_at: int | None = None

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if _any_rank(self.path.exists(), args.device):
            control.should_save = True
            control.should_training_stop = True
            self.stopped_at = state.global_step
            if state.is_world_process_zero:
                logger.warning(
                    "stop requested (%s): saving checkpoint-%d and stopping; rerun the same command to resume",
                    self.path, state.global_step,
                )
        return control

    def acknowledge(self, is_main_process: bool) -> None:
        """After a stopped run: say so and remove the stop file (main process), so the rerun trains on."""
        logger.warning("stopped on request at step %d (checkpoint saved); rerun to resume", self.stopped_at)
        if is_main_process:
            self.path.unlink(missing_ok=True)
