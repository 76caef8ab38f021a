#!/usr/bin/env bash
# GRPO geolocation training of Qwen2.5-VL with torchrun + DeepSpeed ZeRO-3 (VLM-R1's run_grpo_rec.sh, for Geo-R).
#
# Every setting below can be overridden through the environment, e.g.
#   MODEL_PATH=/models/Qwen2.5-VL-7B-Instruct DATA_PATHS=a.jsonl:b.jsonl IMAGE_FOLDERS=imgs_a/:imgs_b/ \
#     bash run_scripts/run_grpo_rec.sh
# and any extra argument is passed on to grpo_jsonl.py (a repeated flag: the last one wins), e.g.
#   bash run_scripts/run_grpo_rec.sh --max_steps 200 --learning_rate 2e-6
# Multi-node: run the same command on every node with NNODES, NODE_RANK, MASTER_ADDR set
# (see run_scripts/run_grpo_multinode.sh and, on SLURM, run_scripts/slurm/grpo.sbatch).
# Checkpoints hold the full training state (weights, optimizer / DeepSpeed shards, RNG of every rank) every
# SAVE_STEPS steps, the newest SAVE_TOTAL_LIMIT kept; rerunning the same command resumes from the newest complete
# one (--resume_from_checkpoint True). A rank silent for DIST_TIMEOUT seconds ends the job with the command to resume.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/local_scripts/lib/env.sh"
cd "$GEO_R_HOME"
source local_scripts/lib/launch.sh
geo_r_remember_command bash run_scripts/run_grpo_rec.sh "$@"

MODEL_PATH="${MODEL_PATH:-Qwen/Qwen2.5-VL-3B-Instruct}"
DATA_PATHS="${DATA_PATHS:-data/geo_train.jsonl}"
IMAGE_FOLDERS="${IMAGE_FOLDERS:-data/images}"
DEEPSPEED_CONFIG="${DEEPSPEED_CONFIG:-local_scripts/zero3.json}"
RUN_NAME="${RUN_NAME:-Qwen2.5-VL-3B-GRPO-Geo-R}"
OUTPUT_DIR="${OUTPUT_DIR:-checkpoints/rl/$RUN_NAME}"
REPORT_TO="${REPORT_TO:-tensorboard}"
REWARD_FUNCS="${REWARD_FUNCS:-format distance region}"
MAX_PIXELS="${MAX_PIXELS:-$GEO_R_DEFAULT_MAX_PIXELS}"
ATTN_IMPLEMENTATION="${ATTN_IMPLEMENTATION:-flash_attention_2}"
SAVE_STEPS="${SAVE_STEPS:-100}"
SAVE_TOTAL_LIMIT="${SAVE_TOTAL_LIMIT:-2}"

# shellcheck disable=SC2206  # REWARD_FUNCS is a space-separated list of names on purpose
flags=(
  --output_dir "$OUTPUT_DIR"
  --resume_from_checkpoint True
  --model_name_or_path "$MODEL_PATH"
  --data_file_paths "$DATA_PATHS"
  --image_folders "$IMAGE_FOLDERS"
  --per_device_train_batch_size 8
  --gradient_accumulation_steps 2
  --gradient_checkpointing true
  --logging_steps 1
  --num_train_epochs 1
  --bf16
  --attn_implementation "$ATTN_IMPLEMENTATION"
  --run_name "$RUN_NAME"
  --data_seed 42
  --save_steps "$SAVE_STEPS"
  --save_total_limit "$SAVE_TOTAL_LIMIT"
  --ddp_timeout "$DIST_TIMEOUT"
  --num_generations 8
  --max_completion_length 512
  --max_pixels "$MAX_PIXELS"
  --temperature 0.9
  --learning_rate 1e-6
  --reward_funcs $REWARD_FUNCS
  --beta 0.04
  --report_to "$REPORT_TO"
  --deepspeed "$DEEPSPEED_CONFIG"
  "$@"
)
geo_r_torchrun_node_args "$OUTPUT_DIR"
echo "Geo-R GRPO: $RUN_NAME | model $MODEL_PATH | $NNODES node(s) x $NPROC_PER_NODE process(es) | $DEEPSPEED_CONFIG"
echo "data: $DATA_PATHS | images: $IMAGE_FOLDERS | output: $OUTPUT_DIR | node $NODE_RANK of $NNODES, $RDZV_BACKEND rendezvous at $MASTER_ADDR:$MASTER_PORT, max restarts $MAX_RESTARTS"
geo_r_batch_plan grpo "${flags[@]}"
mkdir -p "$OUTPUT_DIR"

torchrun "${TORCHRUN_NODE_ARGS[@]}" src/geo_r/grpo_jsonl.py "${flags[@]}"
echo "Geo-R GRPO finished: $OUTPUT_DIR"
