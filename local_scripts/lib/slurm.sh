# Sourced by run_scripts/slurm/*.sbatch: a SLURM allocation -> the launchers' NNODES / MASTER_ADDR / MASTER_PORT,
# torchrun's c10d rendezvous (node ranks from SLURM_NODEID), and save-then-requeue on SLURM's time-limit signal.
#   geo_r_slurm_run SCRIPT ARGS...   runs "bash SCRIPT ARGS..." once per node through srun, waits, requeues if asked
# Set in the environment or the sbatch lines: NPROC_PER_NODE (default: SLURM_GPUS_ON_NODE, else 1),
# MASTER_PORT (defaults.sh: 29500), DIST_TIMEOUT (defaults.sh: 1800 s), GEO_R_REQUEUE (1: requeue after a stop on the signal; 0: don't).
set -euo pipefail
: "${SLURM_JOB_ID:?not inside a SLURM allocation (submit with sbatch)}"
# shellcheck source=defaults.sh
source "$(dirname "${BASH_SOURCE[0]}")/defaults.sh"
NNODES="${SLURM_JOB_NUM_NODES:-${SLURM_NNODES:?SLURM_JOB_NUM_NODES is not set}}"
MASTER_ADDR="${MASTER_ADDR:-$(scontrol show hostnames "$SLURM_JOB_NODELIST" | awk 'NR == 1')}"
MASTER_PORT="${MASTER_PORT:-$GEO_R_DEFAULT_MASTER_PORT}"
NPROC_PER_NODE="${NPROC_PER_NODE:-${SLURM_GPUS_ON_NODE:-1}}"
RDZV_BACKEND=c10d
RDZV_ID="$SLURM_JOB_ID"
GEO_R_REQUEUE="${GEO_R_REQUEUE:-1}"
# Shared with every node (the submit directory is on the shared filesystem); the trainers poll it every step.
GEO_R_STOP_FILE="${GEO_R_STOP_FILE:-$PWD/.geo_r_stop.$SLURM_JOB_ID}"
export NNODES MASTER_ADDR MASTER_PORT NPROC_PER_NODE RDZV_BACKEND RDZV_ID GEO_R_STOP_FILE
GEO_R_STOP_MODE="${GEO_R_STOP_MODE:-save}"   # save: trainers checkpoint and stop; kill: end the step at once (eval)

_geo_r_on_signal() {
  touch "$GEO_R_STOP_FILE"
  if [[ "$GEO_R_STOP_MODE" == kill && -n "${_GEO_R_SRUN_PID:-}" ]]; then
    echo "Geo-R SLURM: $1 received (time limit near): ending the job step, to be requeued" >&2
    kill -TERM "$_GEO_R_SRUN_PID" 2>/dev/null || true
  else
    echo "Geo-R SLURM: $1 received (time limit near): every rank saves a checkpoint at the next step end and stops" >&2
  fi
}

geo_r_slurm_run() {
  local script="$1"
  shift
  rm -f "$GEO_R_STOP_FILE"
  export GEO_R_LAUNCH_COMMAND="sbatch the same script again from the same folder with the same settings (or scontrol requeue $SLURM_JOB_ID)"
  echo "Geo-R SLURM job $SLURM_JOB_ID (restart ${SLURM_RESTART_COUNT:-0}): $NNODES node(s) x $NPROC_PER_NODE process(es), c10d rendezvous at $MASTER_ADDR:$MASTER_PORT"
  # USR1: --signal=B:USR1@N, N seconds before the time limit. A pre-emption (SIGTERM to every step) is left to
  # SLURM: torchrun stops at once and --requeue restarts the job from the newest complete checkpoint.
  trap '_geo_r_on_signal USR1' USR1
  # One task per node; NODE_RANK from SLURM_NODEID (c10d assigns the ranks, the launchers check the range).
  # --kill-on-bad-exit: a node that fails ends the others at once instead of leaving them to time out.
  srun --ntasks-per-node=1 --ntasks="$NNODES" --kill-on-bad-exit=1 \
    bash -c 'NODE_RANK="$SLURM_NODEID" exec bash "$0" "$@"' "$script" "$@" &
  _GEO_R_SRUN_PID=$!
  local rc=0
  # wait returns early when a trapped signal arrives; keep waiting for srun itself.
  while true; do
    wait "$_GEO_R_SRUN_PID" && rc=0 || rc=$?
    if ! kill -0 "$_GEO_R_SRUN_PID" 2>/dev/null; then break; fi
  done
  trap - USR1
  if [[ -f "$GEO_R_STOP_FILE" ]]; then
    rm -f "$GEO_R_STOP_FILE"
    if [[ "$GEO_R_REQUEUE" == 1 ]]; then
      echo "Geo-R SLURM: stopped on request (exit $rc); requeueing job $SLURM_JOB_ID to resume" >&2
      scontrol requeue "$SLURM_JOB_ID"
      return 0
    fi
    echo "Geo-R SLURM: stopped on request (exit $rc); GEO_R_REQUEUE=0, resubmit to resume" >&2
  fi
  return "$rc"
}
