"""Several nodes: resumable checkpoints, the batch arithmetic, the heartbeat, the SLURM scripts, and 2 "nodes" on
one machine through the shipped launchers (two invocations with NNODES=2 and NODE_RANK 0 / 1).

The 2-node runs use the tiny model, ZeRO-3 on CPU, 1 prompt x 4 generations per step and a test-only reward that
records which photos each step trained on (tests/rewards_for_tests.py:record_prompts).
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from geo_r.runtime.batch_plan import BatchPlanError, eval_plan, grpo_plan
from geo_r.runtime.checkpoints import MARKER, checkpoint_problems, newest_resumable, resolve_resume
from geo_r.runtime.heartbeat import Heartbeat

REPO = Path(__file__).resolve().parents[1]
TEST_REWARDS = REPO / "tests" / "rewards_for_tests.py"


# ---------------------------------------------------------------- checkpoints (no training)


def _checkpoint(root: Path, step: int, *, world: int = 2, deepspeed: bool = True, marker: bool = True,
                ranks: int | None = None, weights_only: bool = False) -> Path:
    """A checkpoint folder with the files transformers + DeepSpeed write (contents do not matter here)."""
    ckpt = root / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    for name in ("trainer_state.json", "model.safetensors", "scheduler.pt"):
        (ckpt / name).write_text("x")
    if not weights_only:
        if deepspeed:
            (ckpt / "latest").write_text(f"global_step{step}")
            (ckpt / f"global_step{step}").mkdir()
            for r in range(world if ranks is None else ranks):
                (ckpt / f"global_step{step}" / f"zero_pp_rank_{r}_mp_rank_00_optim_states.pt").write_text("x")
        else:
            (ckpt / "optimizer.pt").write_text("x")
        for r in range(world if ranks is None else ranks):
            (ckpt / f"rng_state_{r}.pth").write_text("x")
    if marker:
        (ckpt / MARKER).write_text(json.dumps({"global_step": step, "world_size": world,
                                               "save_only_model": weights_only}))
    return ckpt


def test_resume_true_passes_over_half_written_and_weights_only_checkpoints(tmp_path):
    good = _checkpoint(tmp_path, 2)
    _checkpoint(tmp_path, 4, ranks=1, marker=False)  # node 1 died while saving: its shard and RNG file are missing
    _checkpoint(tmp_path, 6, marker=False)  # every file there, but the save never finished on every rank
    _checkpoint(tmp_path, 8, weights_only=True)
    path, note = resolve_resume("True", str(tmp_path))
    assert path == str(good)
    assert "resuming from" in note and "checkpoint-2" in note
    for text in ("passed over checkpoint-8: weights only", "passed over checkpoint-6", "checkpoint-4",
                 f"{MARKER} is missing"):
        assert text in note, (text, note)
    _, skipped = newest_resumable(tmp_path)
    assert [p.name for p, _ in skipped] == ["checkpoint-8", "checkpoint-6", "checkpoint-4"]


def test_checkpoint_problems_name_what_is_missing(tmp_path):
    assert checkpoint_problems(_checkpoint(tmp_path / "a", 3, ranks=1)) == [
        "1 of 2 DeepSpeed optimizer shards in global_step3/", "RNG state of 1 of 2 ranks"]
    plain = _checkpoint(tmp_path / "b", 3, deepspeed=False)
    (plain / "optimizer.pt").unlink()
    assert any("optimizer.pt is missing" in p for p in checkpoint_problems(plain))
    # a run from before the marker existed: a complete-looking folder is trusted
    assert checkpoint_problems(_checkpoint(tmp_path / "c", 3, world=1, deepspeed=False, marker=False)) == []


def test_save_settings_that_cannot_resume_are_warned_about():
    from types import SimpleNamespace

    from geo_r.runtime.checkpoints import save_settings_note

    def args(**kw):
        return SimpleNamespace(**{"save_strategy": "steps", "save_only_model": False, "save_total_limit": 2,
                                  "world_size": 2, **kw})

    assert "cannot be resumed" in save_settings_note(args(save_only_model=True))
    assert "keep 2" in save_settings_note(args(save_total_limit=1))
    assert save_settings_note(args()) is None and save_settings_note(args(save_strategy="no")) is None


def test_explicit_checkpoint_that_cannot_resume_is_refused(tmp_path):
    ckpt = _checkpoint(tmp_path, 5, weights_only=True)
    with pytest.raises(ValueError, match="cannot be resumed: weights only"):
        resolve_resume(str(ckpt), str(tmp_path))
    assert "starting fresh" in resolve_resume("True", str(tmp_path))[1]


# ---------------------------------------------------------------- batch arithmetic


def test_grpo_batch_plan_prints_the_arithmetic_and_refuses_what_trl_would():
    plan = grpo_plan(2, 8, ["--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "2",
                            "--num_generations", "8", "--per_device_train_batch_size", "8"])
    assert plan == ("global batch: 2 node(s) x 8 process(es) x 8 per device x 2 accumulation = 256 completions per "
                    "optimizer step; each generation batch of 256 = 32 prompts x 8 generations")
    with pytest.raises(BatchPlanError, match=r"3 per device x 1 step\(s\) per generation = 9 completions.*multiple of 4"):
        grpo_plan(3, 1, ["--per_device_train_batch_size", "3", "--num_generations", "4"])
    with pytest.raises(BatchPlanError, match="generation_batch_size 10 is not a multiple"):
        grpo_plan(1, 2, ["--per_device_train_batch_size", "2", "--generation_batch_size", "10"])
    assert "4 rank(s)" in eval_plan(2, 2, ["--batch_size", "3"])


def test_launcher_stops_before_torchrun_when_the_batch_does_not_divide(tmp_path):
    env = {**os.environ, "NNODES": "3", "NODE_RANK": "0", "MASTER_ADDR": "127.0.0.1", "NPROC_PER_NODE": "1",
           "PATH": f"{_fake_bin(tmp_path)}:{os.environ['PATH']}", "FAKE_LOG": str(tmp_path / "calls.jsonl"),
           "OUTPUT_DIR": str(tmp_path / "out")}
    proc = subprocess.run(["bash", "run_scripts/run_grpo_multinode.sh", "--per_device_train_batch_size", "3"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Geo-R grpo launcher: the generation batch (3 node(s) x 1 process(es) x 3 per device" in proc.stderr
    assert not (tmp_path / "calls.jsonl").exists(), "torchrun ran despite the bad batch"


# ---------------------------------------------------------------- one timeout, stop requests


def test_ddp_timeout_reaches_deepspeed_on_cpu_and_the_eval_barrier(monkeypatch):
    """accelerate passes --ddp_timeout to plain DDP and to DeepSpeed on GPUs; these are the two paths Geo-R owns."""
    from datetime import timedelta

    import deepspeed
    import torch.distributed as dist

    from geo_r.runtime import ranks
    from geo_r.runtime.distributed import ddp_timeout_from_argv, init_deepspeed_on_cpu

    assert ddp_timeout_from_argv(["--ddp_timeout", "60", "--x", "--ddp_timeout=90"]) == 90
    assert ddp_timeout_from_argv([]) == 1800
    with pytest.raises(ValueError, match="--ddp_timeout soon"):
        ddp_timeout_from_argv(["--ddp_timeout", "soon"])
    seen = {}
    monkeypatch.setattr(deepspeed, "init_distributed", lambda **kw: seen.update(ds=kw["timeout"]))
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.setenv(key, "")  # recorded, so that what init_deepspeed_on_cpu sets is undone afterwards
        monkeypatch.delenv(key)
    init_deepspeed_on_cpu(ddp_timeout_from_argv(["--deepspeed", "z3.json", "--ddp_timeout", "42"]))
    assert seen["ds"] == timedelta(seconds=42)
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **kw: seen.update(eval=kw["timeout"]))
    monkeypatch.setattr(ranks, "start_heartbeat", lambda timeout_s, what: seen.update(hb=timeout_s))
    ranks.join(ranks.Ranks(0, 2, 0), 7, what="eval")
    assert seen["eval"] == timedelta(seconds=7) and seen["hb"] == 7


def test_stop_file_makes_every_rank_save_and_stop(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from transformers import TrainerControl

    from geo_r.runtime.preemption import StopRequestCallback

    monkeypatch.delenv("GEO_R_STOP_FILE", raising=False)
    cb = StopRequestCallback(tmp_path)
    args, state = SimpleNamespace(device="cpu"), SimpleNamespace(global_step=7, is_world_process_zero=True)
    control = cb.on_step_end(args, state, TrainerControl())
    assert not control.should_save and not control.should_training_stop and cb.stopped_at is None
    (tmp_path / "GEO_R_STOP").touch()
    control = cb.on_step_end(args, state, TrainerControl())
    assert control.should_save and control.should_training_stop and cb.stopped_at == 7


# ---------------------------------------------------------------- heartbeat (in process)


def test_heartbeat_names_the_silent_rank_within_the_timeout(free_port, monkeypatch, caplog):
    import logging

    import torch.distributed as dist

    monkeypatch.setenv("GEO_R_LAUNCH_COMMAND", "bash run_scripts/run_grpo_multinode.sh")
    server = dist.TCPStore("127.0.0.1", free_port, is_master=True, wait_for_workers=False)
    named: list[str] = []
    watcher = Heartbeat(0, 2, 2.0, host="127.0.0.1", port=free_port, on_silence=named.append, local_world_size=1)
    silent = Heartbeat(1, 2, 2.0, host="127.0.0.1", port=free_port, on_silence=named.append, local_world_size=1)
    silent.monitors = False
    caplog.set_level(logging.WARNING, logger="geo_r.runtime.heartbeat")
    watcher.start()
    silent.start()
    time.sleep(1.5)
    assert not named, "a live rank was reported"
    silent.stop()  # rank 1 goes quiet, as a frozen or dead process would
    # a collective that fails at once (a killed rank resets its connections) is explained by the heartbeats
    assert watcher.wait_for_silent() == [1]
    assert "ranks that stopped answering: rank 1 (node 1," in watcher.describe_failure()
    deadline = time.monotonic() + 6.0
    while not named and time.monotonic() < deadline:
        time.sleep(0.1)
    assert watcher._thread.is_alive(), "the heartbeat names the rank; ending the process is the collective's job"
    watcher.stop()
    del server
    assert len(named) == 1, "named once, not at every beat"
    assert "rank 1 (node 1," in named[0] and "stopped answering" in named[0]
    assert "--ddp_timeout 2 s" in named[0] and "run_grpo_multinode.sh" in named[0]
    warned = [r.getMessage() for r in caplog.records if "half of --ddp_timeout" in r.getMessage()]
    assert warned and "rank 1 (node 1," in warned[0], "no early warning at half the timeout"


def test_a_silent_rank_ends_the_process_after_the_failed_collective(monkeypatch):
    """The main thread's RuntimeError handler: exit 75 with the rank named when a rank went silent, else re-raise."""
    from geo_r.runtime import heartbeat as hb

    exits = []
    monkeypatch.setattr(hb.os, "_exit", exits.append)

    class Beats(hb.Heartbeat):
        def __init__(self, silent):
            super().__init__(0, 2, 2.0, host="127.0.0.1", port=1, local_world_size=1)
            self._silent = silent

        def wait_for_silent(self):
            return self._silent

    hb.exit_if_a_rank_went_silent(None)
    hb.exit_if_a_rank_went_silent(Beats([]))
    assert exits == [], "an error of this rank's own is re-raised by the caller, not turned into exit 75"
    hb.exit_if_a_rank_went_silent(Beats([1]))
    assert exits == [hb.EXIT_CODE]


# ---------------------------------------------------------------- SLURM scripts under a fake srun


FAKE_SRUN = r"""#!/usr/bin/env bash
# Fake srun: record the call, then run the command once per node as SLURM would (SLURM_NODEID 0..N-1).
python3 - "$@" <<'PY'
import json, os, sys
with open(os.environ["FAKE_LOG"], "a") as fh:
    fh.write(json.dumps({"tool": "srun", "args": sys.argv[1:]}) + "\n")
PY
while [[ "$1" == --* ]]; do shift; done
for ((i = 0; i < SLURM_JOB_NUM_NODES; i++)); do
  SLURM_NODEID=$i SLURM_PROCID=$i SLURM_LOCALID=0 "$@" || exit $?
done
"""

FAKE_TOOL = r"""#!/usr/bin/env bash
# Fake {tool}: record the call and this process's rendezvous environment.
python3 - "$@" <<'PY'
import json, os, sys
keep = ("NODE_RANK", "NNODES", "NPROC_PER_NODE", "MASTER_ADDR", "MASTER_PORT", "GEO_R_STOP_FILE", "SLURM_NODEID")
with open(os.environ["FAKE_LOG"], "a") as fh:
    fh.write(json.dumps({{"tool": "{tool}", "args": sys.argv[1:], "env": {{k: os.environ.get(k) for k in keep}}}}) + "\n")
PY
{body}
"""


def _fake_bin(tmp_path: Path) -> Path:
    """srun, scontrol and torchrun stand-ins that record their arguments (torchrun sleeps $FAKE_TORCHRUN_SLEEP)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    scripts = {
        "srun": FAKE_SRUN,
        "scontrol": FAKE_TOOL.format(tool="scontrol", body='[[ "$1 $2" == "show hostnames" ]] && printf "gpu-a17\\ngpu-b03\\n"; exit 0'),
        "torchrun": FAKE_TOOL.format(tool="torchrun", body='sleep "${FAKE_TORCHRUN_SLEEP:-0}"'),
    }
    for name, text in scripts.items():
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return bin_dir


def _calls(log: Path, tool: str) -> list[dict]:
    return [c for c in map(json.loads, log.read_text().splitlines()) if c["tool"] == tool] if log.exists() else []


def _slurm_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "NNODES", "NODE_RANK", "MASTER_"))}
    env.pop("GEO_R_LAUNCH_COMMAND", None)
    return {**env, "PATH": f"{_fake_bin(tmp_path)}:{env['PATH']}", "FAKE_LOG": str(tmp_path / "calls.jsonl"),
            "SLURM_JOB_ID": "4242", "SLURM_JOB_NUM_NODES": "2", "SLURM_JOB_NODELIST": "gpu-a17,gpu-b03",
            "SLURM_GPUS_ON_NODE": "4", "SLURM_SUBMIT_DIR": str(REPO), "OUTPUT_DIR": str(tmp_path / "out"),
            "GEO_R_STOP_FILE": str(tmp_path / "geo_r_stop")}


@pytest.mark.distributed
@pytest.mark.parametrize(
    ("sbatch", "entry", "extra"),
    [
        ("grpo.sbatch", "src/geo_r/grpo_jsonl.py", ["--ddp_timeout", "--save_total_limit", "--resume_from_checkpoint"]),
        ("sft.sbatch", "geo_r.sft.train", ["--ddp_timeout", "--save_total_limit", "--resume_from_checkpoint"]),
        ("eval.sbatch", "geo_r.cli", ["--ddp_timeout"]),
    ],
)
def test_slurm_scripts_launch_torchrun_on_every_node(tmp_path, sbatch, entry, extra):
    env = _slurm_env(tmp_path)
    proc = subprocess.run(["bash", f"run_scripts/slurm/{sbatch}", "--seed", "7"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = tmp_path / "calls.jsonl"
    (srun,) = _calls(log, "srun")
    assert "--ntasks-per-node=1" in srun["args"] and "--kill-on-bad-exit=1" in srun["args"]
    runs = _calls(log, "torchrun")
    assert [r["env"]["NODE_RANK"] for r in runs] == ["0", "1"], "one torchrun per node, NODE_RANK from SLURM_NODEID"
    for run in runs:
        args = run["args"]
        for expected in ("--nproc_per_node=4", "--nnodes=2", "--rdzv_backend=c10d", "--rdzv_endpoint=gpu-a17:29500",
                         "--rdzv_id=4242", entry, *extra):
            assert expected in args, (expected, args)
        assert args[-2:] == ["--seed", "7"], "extra arguments go last"
    assert "global batch: 2 node(s) x 4 process(es)" in proc.stdout or "eval: 2 node(s) x 4" in proc.stdout
    assert not _calls(log, "scontrol")[1:], "requeued without a signal"


@pytest.mark.distributed
@pytest.mark.parametrize(("sbatch", "said"), [("grpo.sbatch", "saves a checkpoint"), ("eval.sbatch", "ending the job")])
def test_slurm_time_limit_signal_asks_for_a_checkpoint_and_requeues(tmp_path, sbatch, said):
    env = {**_slurm_env(tmp_path), "FAKE_TORCHRUN_SLEEP": "4"}
    proc = subprocess.Popen(["bash", f"run_scripts/slurm/{sbatch}"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = tmp_path / "calls.jsonl"
    deadline = time.monotonic() + 120
    while not _calls(log, "torchrun") and time.monotonic() < deadline:
        time.sleep(0.2)
    stop_file = Path(_calls(log, "torchrun")[0]["env"]["GEO_R_STOP_FILE"])
    proc.send_signal(signal.SIGUSR1)  # what --signal=B:USR1@600 sends ten minutes before the time limit
    time.sleep(1)
    if sbatch == "grpo.sbatch":  # the trainers poll it while they finish the step (eval's step is ended at once)
        assert stop_file.exists(), "the trainers were not asked to save and stop"
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert ["requeue", "4242"] in [c["args"] for c in _calls(log, "scontrol")]
    assert "requeueing job 4242" in err and said in err and not stop_file.exists()


# ---------------------------------------------------------------- 2 nodes on one machine, real training


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "GEO_R_LAUNCH"))}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONUNBUFFERED="1", NNODES="2", MASTER_ADDR="127.0.0.1", NPROC_PER_NODE="1", **extra)
    return env


def _start_nodes(script: str, args: list[str], env: dict[str, str], logs: Path) -> list[subprocess.Popen]:
    procs = []
    for rank in (0, 1):
        fh = open(logs / f"node{rank}.log", "a")  # noqa: SIM115 - closed with the process
        procs.append(subprocess.Popen(["bash", script, *args], cwd=REPO, env={**env, "NODE_RANK": str(rank)},
                                      stdout=fh, stderr=subprocess.STDOUT, start_new_session=True))
    return procs


def _wait(procs: list[subprocess.Popen], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(timeout=max(deadline - time.monotonic(), 1)))
        except subprocess.TimeoutExpired:
            codes.append(None)
    return codes


def _kill(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _store_host_worker(port: int) -> int:
    """The training process under the torchrun agent that hosts the rendezvous store on ``port``."""
    import psutil

    host = next(c.pid for c in psutil.net_connections("tcp") if c.status == "LISTEN" and c.laddr.port == port)
    return next(k.pid for k in psutil.Process(host).children(recursive=True) if "grpo_jsonl" in " ".join(k.cmdline()))


def _prompts(path: Path) -> dict[int, list[str]]:
    """Step -> the photo ids each rank trained on (rank order), from record_prompts' log."""
    by_step: dict[int, dict[int, list[str]]] = {}
    for line in path.read_text().splitlines():
        e = json.loads(line)
        by_step.setdefault(e["step"], {})[e["rank"]] = e["ids"]
    return {s: [ids for _, ids in sorted(r.items())] for s, r in sorted(by_step.items())}


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    from geo_r.demo.toy_data import write_toy_dataset

    root = tmp_path_factory.mktemp("multinode")
    return write_toy_dataset(root / "d", n=12, seed=3), root / "d" / "images"


def _grpo_env(tiny_model_dir, toy_data, out: Path, port: int, **extra: str) -> dict[str, str]:
    jsonl, images = toy_data
    return _env(MODEL_PATH=str(tiny_model_dir), DATA_PATHS=str(jsonl), IMAGE_FOLDERS=str(images),
                OUTPUT_DIR=str(out), MASTER_PORT=str(port), REPORT_TO="none",
                REWARD_FUNCS=f"format {TEST_REWARDS}:length_reward {TEST_REWARDS}:record_prompts",
                GEO_R_TEST_PROMPT_LOG=str(out) + ".prompts.jsonl", **extra)


GRPO_ARGS = ["--max_steps", "4", "--save_steps", "2", "--per_device_train_batch_size", "2",
             "--gradient_accumulation_steps", "1", "--num_generations", "4", "--max_completion_length", "8",
             "--max_pixels", "12544", "--min_pixels", "3136", "--bf16", "false", "--beta", "0", "--seed", "0",
             "--gradient_checkpointing", "false"]


SCRIPT = "run_scripts/run_grpo_multinode.sh"


@pytest.fixture(scope="module")
def uninterrupted(tiny_model_dir, toy_data, tmp_path_factory):
    """An uninterrupted 2-node run: (photo ids per step per rank, its trainer_state log lines with a loss)."""
    from geo_r.runtime.distributed import free_port
    from zero3_cpu import require_zero3_on_cpu

    require_zero3_on_cpu()
    ref = tmp_path_factory.mktemp("uninterrupted")
    procs = _start_nodes(SCRIPT, GRPO_ARGS, _grpo_env(tiny_model_dir, toy_data, ref / "out", free_port()), ref)
    try:
        assert _wait(procs, 900) == [0, 0], (ref / "node0.log").read_text()[-3000:]
    finally:
        _kill(procs)
    prompts = _prompts(Path(str(ref / "out") + ".prompts.jsonl"))
    assert sorted(prompts) == [1, 2, 3, 4]
    state = json.loads((ref / "out" / "trainer_state.json").read_text())
    return prompts, [e for e in state["log_history"] if "loss" in e]


def _assert_resumed_like_the_uninterrupted_run(out: Path, logs_text: str, uninterrupted) -> None:
    expected, ref_logs = uninterrupted
    assert "resuming from" in logs_text
    state = json.loads((out / "trainer_state.json").read_text())
    steps = [e["step"] for e in state["log_history"] if "loss" in e]
    assert steps == [1, 2, 3, 4], f"steps logged: {steps}"
    got = _prompts(Path(str(out) + ".prompts.jsonl"))  # steps 1-3 of the interrupted run, then 3-4 resumed
    assert got == expected, f"photo order differs from the uninterrupted run:\n{got}\n{expected}"
    # On CPU the resumed steps are bit-identical too (RNG of every rank restored); GPU kernels need not be.
    logs = [e for e in state["log_history"] if "loss" in e]
    for key in ("reward", "loss"):
        assert [e[key] for e in logs] == pytest.approx([e[key] for e in ref_logs], rel=1e-6, abs=1e-9), key


def _wait_for_step_3_after_checkpoint_2(out: Path, procs, logs: Path) -> Path:
    prompt_log = Path(str(out) + ".prompts.jsonl")
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and not (
        (out / "checkpoint-2" / MARKER).is_file() and prompt_log.is_file() and 3 in _prompts(prompt_log)
    ):
        assert all(p.poll() is None for p in procs), (logs / "node0.log").read_text()[-3000:]
        time.sleep(0.5)
    return prompt_log


@pytest.mark.distributed
@pytest.mark.usefixtures("zero3_on_cpu")
def test_two_nodes_frozen_then_killed_node_rerun_resumes_in_the_same_order(tiny_model_dir, toy_data, tmp_path,
                                                                            uninterrupted):
    """The issue's must-show, through run_scripts/run_grpo_multinode.sh on 2 "nodes" (ZeRO-3 on CPU): a run whose
    training process freezes (SIGSTOP) after checkpoint-2 on the node that hosts the rendezvous (the hard case: its
    torchrun agent is healthy) ends on both nodes within the timeout (the other rank's collective times out, the
    frozen one is killed by torchrun's worker watchdog) with a message naming the frozen rank and the resume
    command; that node is then killed; the same two commands rerun resume from checkpoint-2 and finish: every step
    logged once, the photos of steps 3-4 those of the uninterrupted run."""
    from geo_r.runtime.distributed import free_port

    script = SCRIPT
    out = tmp_path / "run"
    timeout_s = 20
    env = _grpo_env(tiny_model_dir, toy_data, out, free_port(), DIST_TIMEOUT=str(timeout_s),
                    GEO_R_TEST_STEP_DELAY="3")
    logs = tmp_path / "interrupted"
    logs.mkdir()
    procs = _start_nodes(script, GRPO_ARGS, env, logs)
    try:
        prompt_log = _wait_for_step_3_after_checkpoint_2(out, procs, logs)
        frozen = _store_host_worker(int(env["MASTER_PORT"]))
        frozen_rank = next(e["rank"] for e in map(json.loads, prompt_log.read_text().splitlines())
                           if e["pid"] == frozen)
        os.kill(frozen, signal.SIGSTOP)
        frozen_at = time.monotonic()
        codes = _wait(procs, timeout_s + 60)
        ended_after = time.monotonic() - frozen_at
    finally:
        _kill(procs)  # the dead node: its launcher and its frozen process are gone
        try:
            os.kill(frozen, signal.SIGKILL)
        except (ProcessLookupError, NameError):
            pass
    assert None not in codes and codes != [0, 0], f"the job did not end after a rank froze: {codes}"
    assert ended_after < timeout_s + 60
    text = (logs / "node0.log").read_text() + (logs / "node1.log").read_text()
    assert f"rank {frozen_rank} (node {frozen_rank}" in text and "stopped answering" in text, text[-3000:]
    assert "resume: rerun on every node" in text and "run_grpo_multinode.sh --max_steps 4" in text

    procs = _start_nodes(script, GRPO_ARGS, {**env, "GEO_R_TEST_STEP_DELAY": "0"}, tmp_path)  # the same commands
    try:
        assert _wait(procs, 900) == [0, 0], (tmp_path / "node0.log").read_text()[-3000:]
    finally:
        _kill(procs)
    text = (tmp_path / "node0.log").read_text() + (tmp_path / "node1.log").read_text()
    _assert_resumed_like_the_uninterrupted_run(out, text, uninterrupted)


@pytest.mark.distributed
@pytest.mark.usefixtures("zero3_on_cpu")
def test_torchrun_max_restarts_resumes_a_killed_worker_without_a_rerun(tiny_model_dir, toy_data, tmp_path,
                                                                      uninterrupted):
    """torch's own recovery: with MAX_RESTARTS=1 the launchers pass --max-restarts 1; a worker killed after
    checkpoint-2 fails the other node's collective at once, both agents restart their workers through the c10d
    rendezvous, and the restarted workers resume from checkpoint-2 and finish, with no command rerun by hand."""
    from geo_r.runtime.distributed import free_port

    out = tmp_path / "run"
    env = _grpo_env(tiny_model_dir, toy_data, out, free_port(), MAX_RESTARTS="1", GEO_R_TEST_STEP_DELAY="3")
    procs = _start_nodes(SCRIPT, GRPO_ARGS, env, tmp_path)
    try:
        prompt_log = _wait_for_step_3_after_checkpoint_2(out, procs, tmp_path)
        victim = max(e["pid"] for e in map(json.loads, prompt_log.read_text().splitlines()) if e["step"] == 3)
        os.kill(victim, signal.SIGKILL)
        codes = _wait(procs, 900)
    finally:
        _kill(procs)
    text = (tmp_path / "node0.log").read_text() + (tmp_path / "node1.log").read_text()
    assert codes == [0, 0], text[-4000:]
    assert "max restarts 1" in text, "the launcher did not pass --max-restarts"
    pids = {}
    for e in map(json.loads, prompt_log.read_text().splitlines()):
        pids.setdefault(e["step"], set()).add(e["pid"])
    assert not pids[1] & pids[4], "steps 3-4 did not run in restarted workers"
    _assert_resumed_like_the_uninterrupted_run(out, text, uninterrupted)


@pytest.mark.distributed
def test_eval_on_two_nodes_predicts_each_photo_once_with_single_process_metrics(tiny_model_dir, tmp_path):
    from geo_r.demo.toy_data import write_toy_dataset
    from geo_r.runtime.distributed import free_port

    jsonl = write_toy_dataset(tmp_path / "d", n=7, seed=5)
    common = dict(MODEL_PATH=str(tiny_model_dir), DATA_PATHS=str(jsonl), IMAGE_FOLDERS=str(tmp_path / "d" / "images"),
                  BATCH_SIZE="2", MAX_NEW_TOKENS="12", MIN_PIXELS="3136", MAX_PIXELS="12544")
    args = ["--no_progress"]
    one = subprocess.run(["bash", "run_scripts/run_eval.sh", *args], cwd=REPO, capture_output=True, text=True,
                         env={**_env(**common, OUTPUT_DIR=str(tmp_path / "one")), "NNODES": "1"}, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    env = _env(**common, OUTPUT_DIR=str(tmp_path / "two"), MASTER_PORT=str(free_port()))
    procs = _start_nodes("run_scripts/run_eval.sh", args, env, tmp_path)
    try:
        assert _wait(procs, 600) == [0, 0], (tmp_path / "node0.log").read_text()[-3000:]
    finally:
        _kill(procs)
    ids = [json.loads(x)["id"] for x in (tmp_path / "two" / "predictions.jsonl").read_text().splitlines()]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 7, ids
    m1 = json.loads((tmp_path / "one" / "metrics.json").read_text())
    m2 = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert m2["settings"]["world_size"] == 2
    for key in m1:
        if key not in ("settings",) and not key.startswith(("seconds", "time")):
            assert m1[key] == m2[key], key
    assert "eval: 2 node(s) x 1 process(es) = 2 rank(s)" in (tmp_path / "node0.log").read_text()
