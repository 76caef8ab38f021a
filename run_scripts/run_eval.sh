#!/usr/bin/env bash
# Evaluate a Geo-R model on a geolocation benchmark: acc@1/25/200/750/2500 km, report.md, map.png, error_cdf.png.
#
# Every setting below can be overridden through the environment, e.g.
#   MODEL_PATH=checkpoints/rl/Qwen2.5-VL-3B-GRPO-Geo-R DATA_PATHS=data/im2gps3k.jsonl IMAGE_FOLDERS=data/im2gps3k/ \
#     NPROC_PER_NODE=8 bash run_scripts/run_eval.sh
# and any extra argument is passed on to `geo-r eval` (a repeated flag: the last one wins), e.g.
#   bash run_scripts/run_eval.sh --distance geodesic --strict_threshold --max_samples 500
# NPROC_PER_NODE > 1 runs one data-parallel rank per GPU with torchrun (each rank a shard, merged at the end).
# Several nodes: run the same command on every node with NNODES, NODE_RANK, MASTER_ADDR (MASTER_PORT) set, as for
# training (run_grpo_multinode.sh); OUTPUT_DIR must be on a filesystem every node sees. SLURM: run_scripts/slurm/eval.sbatch.
# The run is resumable: rerunning the same command continues from OUTPUT_DIR/predictions.jsonl.
# Score an existing predictions file without a model:
#   PREDICTIONS=preds.jsonl DATA_PATHS=data/im2gps3k.jsonl bash run_scripts/run_eval.sh
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/local_scripts/lib/env.sh"
cd "$GEO_R_HOME"
NPROC_PER_NODE="${NPROC_PER_NODE:-1}"
source local_scripts/lib/launch.sh
geo_r_remember_command bash run_scripts/run_eval.sh "$@"

MODEL_PATH="${MODEL_PATH:-checkpoints/rl/Qwen2.5-VL-3B-GRPO-Geo-R}"
DATA_PATHS="${DATA_PATHS:-data/im2gps3k.jsonl}"
IMAGE_FOLDERS="${IMAGE_FOLDERS:-data/im2gps3k}"
PREDICTIONS="${PREDICTIONS:-}"
if [[ -n "$PREDICTIONS" ]]; then
  RUN_NAME="${RUN_NAME:-$(basename "$PREDICTIONS" .jsonl)}"
else
  RUN_NAME="${RUN_NAME:-$(basename "$MODEL_PATH")}"
fi
OUTPUT_DIR="${OUTPUT_DIR:-results/eval/$RUN_NAME/$(basename "${DATA_PATHS%%:*}" .jsonl)}"
BACKEND="${BACKEND:-hf}"
BATCH_SIZE="${BATCH_SIZE:-16}"
MAX_NEW_TOKENS="${MAX_NEW_TOKENS:-512}"
MIN_PIXELS="${MIN_PIXELS:-$GEO_R_DEFAULT_MIN_PIXELS}"
MAX_PIXELS="${MAX_PIXELS:-$GEO_R_DEFAULT_MAX_PIXELS}"
DISTANCE="${DISTANCE:-haversine}"
ATTN_IMPLEMENTATION="${ATTN_IMPLEMENTATION:-sdpa}"

mkdir -p "$OUTPUT_DIR"

if [[ -n "$PREDICTIONS" ]]; then
  echo "Geo-R eval: scoring $PREDICTIONS against $DATA_PATHS -> $OUTPUT_DIR"
  python -m geo_r.cli eval \
    --predictions "$PREDICTIONS" \
    --data_file_paths "$DATA_PATHS" \
    --output_dir "$OUTPUT_DIR" \
    --run_name "$RUN_NAME" \
    --distance "$DISTANCE" \
    "$@"
  exit 0
fi

flags=(
  --model_name_or_path "$MODEL_PATH"
  --data_file_paths "$DATA_PATHS"
  --image_folders "$IMAGE_FOLDERS"
  --output_dir "$OUTPUT_DIR"
  --run_name "$RUN_NAME"
  --backend "$BACKEND"
  --batch_size "$BATCH_SIZE"
  --max_new_tokens "$MAX_NEW_TOKENS"
  --min_pixels "$MIN_PIXELS"
  --max_pixels "$MAX_PIXELS"
  --distance "$DISTANCE"
  --attn_implementation "$ATTN_IMPLEMENTATION"
  --ddp_timeout "$DIST_TIMEOUT"
)
echo "Geo-R eval: $RUN_NAME | $BACKEND x $NNODES node(s) x $NPROC_PER_NODE process(es) | data $DATA_PATHS | output $OUTPUT_DIR"
geo_r_batch_plan eval "${flags[@]}" "$@"
if [[ "$NNODES" -gt 1 || "$NPROC_PER_NODE" -gt 1 ]]; then
  geo_r_torchrun_node_args "$OUTPUT_DIR"
  torchrun "${TORCHRUN_NODE_ARGS[@]}" -m geo_r.cli eval "${flags[@]}" "$@"
else
  python -m geo_r.cli eval "${flags[@]}" "$@"
fi
echo "Geo-R eval finished: $OUTPUT_DIR/report.md"
