"""Name the rank that stopped answering, and renew torchrun's worker watchdog: what torch's own mechanisms leave out.

torch ends a job whose rank died or froze by itself, and Geo-R leans on that (docs/multinode.md has the table):
the process-group timeout (``--ddp_timeout``) fails every collective that waits on a silent rank (NCCL's watchdog
then tears the process down and, with the launchers' flight recorder settings, dumps each rank's last collectives;
gloo raises); torchrun's agent ends (or, with ``--max-restarts``, restarts) the job when a worker exits; its c10d
rendezvous ends the other nodes' agents when one leaves; its worker watchdog (``TORCHELASTIC_ENABLE_FILE_TIMER=1``)
kills a process that stops renewing its timer. Two things are missing: an error that says *which* rank and host
went silent, and what command resumes the run (gloo's timeout names neither; NCCL's flight recorder names the rank
only after ``torchfrtrace`` analyses the dumps), and someone to renew the worker watchdog's timer, without which
a frozen process (``kill -STOP``, a hung driver call) is never killed on its own node.

So every rank runs a :class:`Heartbeat`: a daemon thread that bumps a counter for its rank in torchrun's key-value
store (``MASTER_ADDR:MASTER_PORT``), renews its worker-watchdog timer (``timeout + 3`` beats, so the ranks still
alive name the silent one first), and, on each node's first process, reads the other ranks' counters. A counter
that has not moved (timed with this machine's clock, so node clocks need not agree) is logged with the rank, its
host and the resume command: a warning at half the timeout, an error at the timeout. The thread never ends the
process: the collective that waits on the silent rank does, when the process-group timeout fires, and the
entrypoints then log :meth:`Heartbeat.describe_failure` (:func:`exit_if_a_rank_went_silent`). Each top-level launcher puts its own command line in
``GEO_R_LAUNCH_COMMAND``.
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


def _log_error(message: str) -> None:
    print(f"\n[geo-r ERROR] {message}\n", file=sys.stderr, flush=True)


class Heartbeat:
    """A daemon thread that publishes this rank's liveness, renews torchrun's worker watchdog, and names a rank that
    goes silent (``on_silence(message)``, at half the timeout as a warning and at the timeout as an error)."""

    def __init__(
        self,
        rank: int,
        world_size: int,
        timeout_s: float,
        *,
        host: str | None = None,
        port: int | None = None,
        what: str = "training",
        on_silence: Callable[[str], None] | None = None,
        local_world_size: int | None = None,
    ) -> None:
        self.rank, self.world_size, self.timeout_s = rank, world_size, float(timeout_s)
        self.host = host or os.environ.get("MASTER_ADDR", "127.0.0.1")
        self.port = int(port if port is not None else os.environ.get("MASTER_PORT", "29500"))
        self.local_world_size = local_world_size or int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        self.interval = min(max(self.timeout_s / 10.0, 0.5), 30.0)
        self.what = what
        self.on_silence = on_silence or _log_error
        self._stop = threading.Event()
        # One monitor per node (local rank 0) reads every counter; every rank bumps its own.
        self.monitors = int(os.environ.get("LOCAL_RANK", "0")) == 0
        self._thread: threading.Thread | None = None
        self._store = None
        self._seen: dict[int, tuple[bytes, float]] = {}
        self._hosts: dict[int, str] = {}
        self._reported: dict[int, str] = {}  # rank -> the last level logged about it ("warning" / "error")
        self._store_lost = False
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
        # a torchrun restart (--max-restarts) starts a new round of counters: the old round's ranks are gone
        restart = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        self._store = dist.PrefixStore(f"{_PREFIX}{restart}/", store)
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

    def wait_for_silent(self) -> list[int]:
        """The ranks that stopped answering, for an error that just happened on this rank.

        A rank that died (its node lost, its process killed) breaks the connection at once, before its heartbeat
        is overdue, so this watches the counters for up to four beats to see which one stopped.
        """
        deadline = time.monotonic() + 4 * self.interval + 1
        silent = self.silent_ranks(2 * self.interval)
        while not silent and self.monitors and self._seen and time.monotonic() < deadline:
            time.sleep(self.interval / 2)
            silent = self.silent_ranks(2 * self.interval)
        return silent

    def describe_failure(self, silent: list[int] | None = None) -> str:
        """What went wrong, as far as the heartbeats tell (``silent``: default :meth:`wait_for_silent`)."""
        silent = self.wait_for_silent() if silent is None else silent
        who = ", ".join(self._node(r) for r in silent) if silent else "none silent (a rank may be stuck or erred)"
        return self._message(f"a collective failed; ranks that stopped answering: {who}")

    def _message(self, what: str) -> str:
        return (
            f"Geo-R {self.what}: {what}. The job ends when the collective waiting on it times out (--ddp_timeout "
            f"{self.timeout_s:g} s). Fix or replace the node, then resume: {resume_hint()}"
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
                self._reported.pop(r, None)  # it answers again
        # Hosts are read here, in the heartbeat thread, so that the message never has to ask a store that is gone.
        missing = [r for r in others if r not in self._hosts and self._store.check([f"host/{r}"])]
        for r in missing:
            self._hosts[r] = self._store.get(f"host/{r}").decode()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._beat()
            except Exception as exc:  # noqa: BLE001 - the store went away or timed out
                if not self._store_lost:
                    self._store_lost = True
                    silent = self.silent_ranks(self.timeout_s / 2)
                    names = ", ".join(self._node(r) for r in silent)
                    logger.warning(
                        "Geo-R %s: the rendezvous store at %s:%s stopped answering (%s)%s; torchrun ends this node's "
                        "part of the job when its agent loses the store", self.what, self.host, self.port,
                        exc.__class__.__name__, f", after {names} went silent" if silent else "")
                continue
            self._report(self.silent_ranks(self.timeout_s), "error", f"no heartbeat for {self.timeout_s:g} s")
            self._report(self.silent_ranks(self.timeout_s / 2), "warning",
                         f"no heartbeat for {self.timeout_s / 2:g} s (half of --ddp_timeout)")

    def _report(self, silent: list[int], level: str, what: str) -> None:
        """Log the ranks newly silent at ``level`` (each rank once per level until it answers again)."""
        new = [r for r in silent if self._reported.get(r) not in (level, "error")]
        if not new or self._stop.is_set():
            return
        for r in new:
            self._reported[r] = level
        names = ", ".join(self._node(r) for r in new)
        if level == "error":
            self.on_silence(self._message(f"{names} stopped answering: {what}"))
        else:
            logger.warning("Geo-R %s: %s: %s", self.what, names, what)


def exit_if_a_rank_went_silent(heartbeat: Heartbeat | None) -> None:
    """For a RuntimeError caught in a distributed run's main thread: when the heartbeats show a rank that stopped
    answering, log the error's traceback and which rank and host it was, then end this process with
    :data:`EXIT_CODE` (a process group whose peer is gone can hang the interpreter's own shutdown). Otherwise
    (no heartbeat, or every rank still beats: an error of this rank's own) return, and the caller re-raises."""
    if heartbeat is None:
        return
    silent = heartbeat.wait_for_silent()
    if not silent:
        logger.error("%s", heartbeat.describe_failure(silent))
        return
    logger.exception("a collective failed")
    _log_error(heartbeat.describe_failure(silent))
    sys.stdout.flush()
    sys.stderr.flush()
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
