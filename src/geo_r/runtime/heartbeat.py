"""Name the rank that stopped answering, and end the job, within the process-group timeout (``--ddp_timeout``).

A collective that waits on a dead or frozen rank fails after the process-group timeout on gloo and NCCL
alike, but the error names neither the rank nor what to do next (NCCL's watchdog even aborts the process
from C++). Every rank therefore runs a :class:`Heartbeat`: a daemon thread that bumps a counter for its rank
in torchrun's key-value store (``MASTER_ADDR:MASTER_PORT``) and reads everyone else's. A counter that has not
moved for the timeout (timed with this machine's clock, so node clocks need not agree), or a store that stops
answering (node 0 is gone), ends this process with a message naming the rank and its host and the command
that resumes the run. Each top-level launcher puts its own command line in ``GEO_R_LAUNCH_COMMAND``.

A frozen process cannot end itself, and its node's torchrun agent does not notice it. The launchers therefore
turn on torchrun's worker watchdog (``TORCHELASTIC_ENABLE_FILE_TIMER=1``): each beat also renews a timer with
the node's agent, which kills this process with SIGKILL if the timer runs out (``timeout + 3`` beats, so the
ranks still alive name the silent one first), and the agent then ends that node's part of the job.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta

logger = logging.getLogger(__name__)

EXIT_CODE = 75  # EX_TEMPFAIL: the job can be resumed
_PREFIX = "geo_r_heartbeat/"
_TIMER_SCOPE = "geo-r-heartbeat"


def resume_hint(argv: Sequence[str] | None = None) -> str:
    """The command that resumes this run: the launcher's (``GEO_R_LAUNCH_COMMAND``) or this process's own."""
    launcher = os.environ.get("GEO_R_LAUNCH_COMMAND", "").strip()
    if launcher:
        return f"rerun on every node (same NNODES/MASTER_ADDR/MASTER_PORT, each node its NODE_RANK): {launcher}"
    args = list(sys.argv if argv is None else argv)
    if not any(a.startswith("--resume_from_checkpoint") for a in args):
        args += ["--resume_from_checkpoint", "True"]
    return "rerun the same torchrun command on every node: torchrun ... " + " ".join(args)


class Heartbeat:
    """A daemon thread that publishes this rank's liveness and ends the process when another rank goes silent."""

    def __init__(
        self,
        rank: int,
        world_size: int,
        timeout_s: float,
        *,
        host: str | None = None,
        port: int | None = None,
        what: str = "training",
        on_failure: Callable[[str], None] | None = None,
        local_world_size: int | None = None,
    ) -> None:
        self.rank, self.world_size, self.timeout_s = rank, world_size, float(timeout_s)
        self.host = host or os.environ.get("MASTER_ADDR", "127.0.0.1")
        self.port = int(port if port is not None else os.environ.get("MASTER_PORT", "29500"))
        self.local_world_size = local_world_size or int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        self.interval = min(max(self.timeout_s / 10.0, 0.5), 30.0)
        self.what = what
        self.on_failure = on_failure or _exit_with
        self._stop = threading.Event()
        # One monitor per node (local rank 0) reads every counter; every rank bumps its own.
        self.monitors = int(os.environ.get("LOCAL_RANK", "0")) == 0
        self._thread: threading.Thread | None = None
        self._store = None
        self._seen: dict[int, tuple[bytes, float]] = {}
        self._hosts: dict[int, str] = {}
        self._timer = None

    def start(self) -> Heartbeat:
        """Connect to the store, publish this rank's host, and start beating (no-op for a single process)."""
        if self.world_size <= 1:
            return self
        import torch.distributed as dist

        store = dist.TCPStore(
            self.host, self.port, is_master=False, timeout=timedelta(seconds=max(self.timeout_s, 5.0)),
            wait_for_workers=False,
        )
        self._store = dist.PrefixStore(_PREFIX, store)
        self._store.set(f"host/{self.rank}", socket.gethostname())
        self._store.add(str(self.rank), 1)
        timer_file = os.environ.get("TORCHELASTIC_TIMER_FILE")
        if timer_file:
            from torch.distributed.elastic.timer import FileTimerClient

            self._timer = FileTimerClient(timer_file)
            self._renew_timer()
        now = time.monotonic()
        if self.monitors:
            # Create every counter (add 0 leaves an existing one alone), so that multi_get never blocks.
            for r in range(self.world_size):
                self._store.add(str(r), 0)
            self._seen = {r: (b"", now) for r in range(self.world_size) if r != self.rank}
        self._thread = threading.Thread(target=self._run, name="geo-r-heartbeat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop beating (before the final barrier: the store goes away when node 0 finishes)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval * 2 + 5)
        if self._timer is not None:
            try:
                self._timer.release(_TIMER_SCOPE)
            except Exception:  # noqa: BLE001 - the agent is gone already
                pass

    def _renew_timer(self) -> None:
        """Tell torchrun's agent to kill this process if it does not beat again within timeout + 3 beats."""
        if self._timer is not None:
            self._timer.acquire(_TIMER_SCOPE, time.time() + self.timeout_s + 3 * self.interval)

    def _node(self, rank: int) -> str:
        host = self._hosts.get(rank, "host not published yet")
        return f"rank {rank} (node {rank // max(self.local_world_size, 1)}, {host})"

    def silent_ranks(self, older_than_s: float) -> list[int]:
        """Ranks whose counter has not moved for ``older_than_s`` seconds (this machine's clock)."""
        now = time.monotonic()
        return sorted(r for r, (_, since) in self._seen.items() if now - since > older_than_s)

    def describe_failure(self) -> str:
        """What went wrong, as far as the heartbeats tell: for a collective that failed on this rank.

        A rank that died (its node lost, its process killed) breaks the connection at once, before its heartbeat
        is overdue, so this watches the counters for up to four beats to see which one stopped.
        """
        deadline = time.monotonic() + 4 * self.interval + 1
        silent = self.silent_ranks(2 * self.interval)
        while not silent and self.monitors and self._seen and time.monotonic() < deadline:
            time.sleep(self.interval / 2)
            silent = self.silent_ranks(2 * self.interval)
        who = ", ".join(self._node(r) for r in silent) if silent else "none silent (a rank may be stuck or erred)"
        return self._message(f"a collective failed; ranks that stopped answering: {who}")

    def _message(self, what: str) -> str:
        return (
            f"Geo-R {self.what}: {what}. Ending the job (--ddp_timeout {self.timeout_s:g} s). Fix or replace the "
            f"node, then resume: {resume_hint()}"
        )

    def _beat(self) -> None:
        assert self._store is not None
        try:
            self._renew_timer()
        except Exception:  # noqa: BLE001 - no agent to renew with: the store check below decides
            pass
        self._store.add(str(self.rank), 1)
        others = list(self._seen)
        values = self._store.multi_get([str(r) for r in others]) if others else []
        now = time.monotonic()
        for r, value in zip(others, values, strict=True):
            if value != self._seen[r][0]:
                self._seen[r] = (value, now)
        # Hosts are read here, in the heartbeat thread, so that the message never has to ask a store that is gone.
        missing = [r for r in others if r not in self._hosts and self._store.check([f"host/{r}"])]
        for r in missing:
            self._hosts[r] = self._store.get(f"host/{r}").decode()

    def _run(self) -> None:
        last_ok = time.monotonic()
        while not self._stop.wait(self.interval):
            try:
                self._beat()
                last_ok = time.monotonic()
            except Exception as exc:  # noqa: BLE001 - the store went away or timed out
                silent = self.silent_ranks(self.timeout_s / 2)
                if silent:  # a rank went quiet, then its node (hosting the store) went away: name the rank
                    names = ", ".join(f"rank {r} (node {r // max(self.local_world_size, 1)})" for r in silent)
                    self._fail(f"{names} stopped answering, then the rendezvous store at {self.host}:{self.port} did")
                    return
                if time.monotonic() - last_ok > self.timeout_s:
                    self._fail(
                        f"the rendezvous store at {self.host}:{self.port} (node 0) stopped answering for "
                        f"{self.timeout_s:g} s ({exc.__class__.__name__}): node 0 is down or unreachable"
                    )
                    return
                continue
            silent = self.silent_ranks(self.timeout_s)
            if silent:
                names = ", ".join(self._node(r) for r in silent)
                self._fail(f"{names} stopped answering: no heartbeat for {self.timeout_s:g} s")
                return

    def _fail(self, what: str) -> None:
        if self._stop.is_set():
            return
        self.on_failure(self._message(what))


def _exit_with(message: str) -> None:
    """Log the message on stderr and end this process at once (a frozen collective never returns)."""
    print(f"\n[geo-r ERROR] {message}\n", file=sys.stderr, flush=True)
    os._exit(EXIT_CODE)


def start_heartbeat(timeout_s: float, what: str = "training") -> Heartbeat | None:
    """Start a :class:`Heartbeat` for this torchrun rank (None outside torchrun or in a single process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or "MASTER_ADDR" not in os.environ:
        return None
    try:
        return Heartbeat(int(os.environ.get("RANK", "0")), world, timeout_s, what=what).start()
    except Exception as exc:  # noqa: BLE001 - never stop a run for want of its watchdog
        logger.warning(
            "no heartbeat (torchrun's store at %s:%s: %s): a silent rank still ends the job after --ddp_timeout, "
            "without naming it", os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT"), exc,
        )
        return None
