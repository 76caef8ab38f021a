#!/usr/bin/env bash
# Multi-node GRPO: run THIS script on every node, with the same MASTER_ADDR (node 0's address, reachable from
# all nodes) and each node's own NODE_RANK, e.g. on 2 nodes of 8 GPUs:
#   node 0:  NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 bash run_scripts/run_grpo_multinode.sh
#   node 1:  NNODES=2 NODE_RANK=1 MASTER_ADDR=10.0.0.1 bash run_scripts/run_grpo_multinode.sh
# Data, images and the model must be at the same paths on every node (shared filesystem). OUTPUT_DIR should be
# shared too: checkpoints are written by the main process of node 0. Other overrides as in run_grpo_rec.sh.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${NNODES:?set NNODES (number of nodes)}"
: "${NODE_RANK:?set NODE_RANK (0 .. NNODES-1)}"
: "${MASTER_ADDR:?set MASTER_ADDR (address of node 0)}"
export NNODES NODE_RANK MASTER_ADDR
export MASTER_PORT="${MASTER_PORT:-29500}"
# Same settings as VLM-R1's multinode example: ~0.4 MP images, per-device batch 4, weights-only checkpoints.
export MAX_PIXELS="${MAX_PIXELS:-401408}"
exec bash "$HERE/run_grpo_rec.sh" --per_device_train_batch_size 4 --save_only_model true "$@"
