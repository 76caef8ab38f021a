# Sourced by the launchers in run_scripts/ after env.sh (which brings defaults.sh): the multi-node settings and
# helpers all of them share.
#   NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT  where this node sits (NODE_RANK 0 is MASTER_ADDR's node)
#   NPROC_PER_NODE   processes per node (one per GPU; default: the GPUs torch sees, 1 without GPUs)
#   RDZV_BACKEND     c10d (default): torchrun's rendezvous at MASTER_ADDR:MASTER_PORT, RDZV_ID its job id; node
#                    ranks follow arrival order (NODE_RANK is only range-checked), and when one node's launcher
#                    ends, the others' notice and end too. static: NODE_RANK fixes node ranks (torchrun's
#                    --node_rank/--master_addr), but a node whose process froze is left waiting.
#   DIST_TIMEOUT     seconds a collective may wait for a silent rank before the job ends (--ddp_timeout)
#   MAX_RESTARTS     torchrun's --max-restarts (default 0): a failed or killed worker restarts every node's workers
#                    through the rendezvous, and they resume from the newest complete checkpoint (training scripts
#                    pass --resume_from_checkpoint True; eval skips photos already predicted)
# On GPUs NCCL's watchdog tears a process down when a collective exceeds DIST_TIMEOUT; its flight recorder keeps each
# rank's last collectives and dumps them then (OUTPUT_DIR/flight_recorder/rank_<r>; `torchfrtrace DIR` names the
# rank that never joined). docs/multinode.md says which mechanism handles which failure.
NNODES="${NNODES:-1}"
NODE_RANK="${NODE_RANK:-0}"
MASTER_ADDR="${MASTER_ADDR:-127.0.0.1}"
MASTER_PORT="${MASTER_PORT:-$GEO_R_DEFAULT_MASTER_PORT}"
RDZV_BACKEND="${RDZV_BACKEND:-c10d}"
RDZV_ID="${RDZV_ID:-geo-r}"
DIST_TIMEOUT="${DIST_TIMEOUT:-$GEO_R_DEFAULT_DIST_TIMEOUT}"
MAX_RESTARTS="${MAX_RESTARTS:-0}"
GEO_R_GPUS="$(python -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 0)"
if [[ -z "${NPROC_PER_NODE:-}" ]]; then
  NPROC_PER_NODE=$(( GEO_R_GPUS > 0 ? GEO_R_GPUS : 1 ))
fi
export NNODES NODE_RANK MASTER_ADDR MASTER_PORT NPROC_PER_NODE RDZV_BACKEND RDZV_ID DIST_TIMEOUT MAX_RESTARTS
# torchrun's worker watchdog: Geo-R's heartbeat renews a timer with this node's agent, which kills a frozen
# process once DIST_TIMEOUT has passed (src/geo_r/runtime/heartbeat.py), so a frozen node ends its part of the job.
export TORCHELASTIC_ENABLE_FILE_TIMER="${TORCHELASTIC_ENABLE_FILE_TIMER:-1}"

# torchrun's node arguments for this node, in the array TORCHRUN_NODE_ARGS; $1 (optional): the run's output folder,
# where NCCL's flight recorder dumps on a collective timeout (GPU runs).
geo_r_torchrun_node_args() {
  if [[ ! "$MAX_RESTARTS" =~ ^[0-9]+$ ]]; then
    echo "Geo-R: MAX_RESTARTS must be a whole number, got '$MAX_RESTARTS'" >&2
    return 2
  fi
  TORCHRUN_NODE_ARGS=(--nproc_per_node="$NPROC_PER_NODE" --nnodes="$NNODES" --max-restarts="$MAX_RESTARTS")
  if (( MAX_RESTARTS > 0 )); then
    # torchrun's c10d rendezvous shares one store server across rounds by default, and the restarted workers then
    # read the dead workers' process-group keys from it and hang connecting to them (measured: torch 2.13, gloo).
    # torch's own opt-out gives every round a fresh store (hosted by the round's rank 0 worker).
    export TORCH_DISABLE_SHARE_RDZV_TCP_STORE="${TORCH_DISABLE_SHARE_RDZV_TCP_STORE:-1}"
  fi
  if (( GEO_R_GPUS > 0 )); then
    # torch's own watchdog on NCCL (teardown on a timed-out collective is torch's default, 3) plus its flight
    # recorder: the last 2000 collectives of each rank, dumped when the watchdog fires. Any value already set wins.
    export TORCH_NCCL_ASYNC_ERROR_HANDLING="${TORCH_NCCL_ASYNC_ERROR_HANDLING:-3}"
    export TORCH_FR_BUFFER_SIZE="${TORCH_FR_BUFFER_SIZE:-2000}"
    export TORCH_NCCL_DUMP_ON_TIMEOUT="${TORCH_NCCL_DUMP_ON_TIMEOUT:-1}"
    if [[ -n "${1:-}" && -z "${TORCH_FR_DUMP_TEMP_FILE:-}" ]]; then
      mkdir -p "$1/flight_recorder"
      export TORCH_FR_DUMP_TEMP_FILE="$1/flight_recorder/rank_"
    fi
  fi
  case "$RDZV_BACKEND" in
    static) TORCHRUN_NODE_ARGS+=(--node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" --master_port="$MASTER_PORT") ;;
    c10d) TORCHRUN_NODE_ARGS+=(--rdzv_backend=c10d --rdzv_endpoint="$MASTER_ADDR:$MASTER_PORT" --rdzv_id="$RDZV_ID") ;;
    *) echo "Geo-R: RDZV_BACKEND must be static or c10d, got '$RDZV_BACKEND'" >&2; return 2 ;;
  esac
  if (( NODE_RANK < 0 || NODE_RANK >= NNODES )); then
    echo "Geo-R: NODE_RANK=$NODE_RANK is outside 0..$((NNODES - 1)) (NNODES=$NNODES)" >&2
    return 2
  fi
}

# Remember the command that started this launch (the first launcher wins), for the resume hint of a failed job.
geo_r_remember_command() {
  if [[ -z "${GEO_R_LAUNCH_COMMAND:-}" ]]; then
    GEO_R_LAUNCH_COMMAND="$(printf '%q ' "$@")"
    export GEO_R_LAUNCH_COMMAND
  fi
}

# Print the batch arithmetic for KIND (grpo | sft | eval) and the flags about to be passed; stop if it cannot work.
geo_r_batch_plan() {
  local kind="$1"
  shift
  python -m geo_r.runtime.batch_plan "$kind" "$NNODES" "$NPROC_PER_NODE" -- "$@"
}
