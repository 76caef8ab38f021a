#!/usr/bin/env bash
# Multi-node GRPO: run THIS script on every node, with the same MASTER_ADDR (node 0's address, reachable from
# all nodes) and each node's own NODE_RANK, e.g. on 2 nodes of 8 GPUs:
#   node 0:  NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 bash run_scripts/run_grpo_multinode.sh
#   node 1:  NNODES=2 NODE_RANK=1 MASTER_ADDR=10.0.0.1 bash run_scripts/run_grpo_multinode.sh
# Data, images and the model must be at the same paths on every node (shared filesystem). OUTPUT_DIR must be
# shared too: every rank writes its part of each checkpoint there. After a failure (a node died, the job was
# pre-empted) rerun the same two commands: training resumes from the newest complete checkpoint. MASTER_PORT
# (default 29500, local_scripts/lib/defaults.sh) must be free on node 0 and open between the nodes. Other settings as in run_grpo_rec.sh;
# README "Several nodes" covers network variables, timeouts and SLURM (run_scripts/slurm/grpo.sbatch).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${NNODES:?set NNODES (number of nodes)}"
: "${NODE_RANK:?set NODE_RANK (0 .. NNODES-1)}"
: "${MASTER_ADDR:?set MASTER_ADDR (address of node 0)}"
export NNODES NODE_RANK MASTER_ADDR
if [[ -z "${GEO_R_LAUNCH_COMMAND:-}" ]]; then
  GEO_R_LAUNCH_COMMAND="NNODES=$NNODES NODE_RANK=<this node's rank> MASTER_ADDR=$MASTER_ADDR bash run_scripts/run_grpo_multinode.sh$(printf ' %q' "$@")"
  export GEO_R_LAUNCH_COMMAND
fi
exec bash "$HERE/run_grpo_rec.sh" "$@"
