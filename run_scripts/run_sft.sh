#!/usr/bin/env bash
# SFT warm-up of Qwen2.5-VL on Chain-of-Region answers, before GRPO (same jsonl, same image size limits).
#
#   bash run_scripts/run_sft.sh             LLaMA-Factory 0.9.5 in its own venv (.venv-sft: bash setup.sh --sft)
#   bash run_scripts/run_sft.sh --builtin   the built-in SFT (geo-r sft, TRL SFTTrainer) in the main environment
#
# Settings come from the environment, e.g.
#   MODEL_PATH=/models/Qwen2.5-VL-7B-Instruct DATA_PATHS=a.jsonl:b.jsonl IMAGE_FOLDERS=imgs_a/:imgs_b/ \
#     FINETUNING=lora bash run_scripts/run_sft.sh
# Extra arguments go to the trainer: key=value overrides of the yaml for LLaMA-Factory (e.g. num_train_epochs=2),
# flags for --builtin (e.g. --num_train_epochs 2). The model for GRPO is printed at the end (MODEL_PATH of
# run_grpo_rec.sh): OUTPUT_DIR (full), OUTPUT_DIR/merged (LLaMA-Factory LoRA) or OUTPUT_DIR (built-in LoRA,
# merged; adapter in OUTPUT_DIR/adapter).
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/local_scripts/lib/env.sh"
cd "$GEO_R_HOME"

BUILTIN=0
if [[ "${1:-}" == "--builtin" ]]; then
  BUILTIN=1
  shift
fi

MODEL_PATH="${MODEL_PATH:-Qwen/Qwen2.5-VL-3B-Instruct}"
DATA_PATHS="${DATA_PATHS:-data/geo_train.jsonl}"
IMAGE_FOLDERS="${IMAGE_FOLDERS:-data/images}"
FINETUNING="${FINETUNING:-full}"                  # full | lora
case "$FINETUNING" in
  full) DEFAULT_DS="local_scripts/zero3.json" ;;
  lora) DEFAULT_DS="local_scripts/zero2.json" ;;
  *) echo "run_sft.sh: FINETUNING must be full or lora, got '$FINETUNING'" >&2; exit 2 ;;
esac
DEEPSPEED_CONFIG="${DEEPSPEED_CONFIG-$DEFAULT_DS}"  # set to '' for no DeepSpeed
RUN_NAME="${RUN_NAME:-Qwen2.5-VL-SFT-Geo-R-$FINETUNING}"
OUTPUT_DIR="${OUTPUT_DIR:-checkpoints/sft/$RUN_NAME}"
MAX_PIXELS="${MAX_PIXELS:-$GEO_R_DEFAULT_MAX_PIXELS}"                # = GRPO --max_pixels
MIN_PIXELS="${MIN_PIXELS:-$GEO_R_DEFAULT_MIN_PIXELS}"
source local_scripts/lib/launch.sh                    # NNODES NODE_RANK MASTER_ADDR MASTER_PORT NPROC_PER_NODE DIST_TIMEOUT
geo_r_remember_command bash run_scripts/run_sft.sh "$@"
SAVE_STEPS="${SAVE_STEPS:-500}"
SAVE_TOTAL_LIMIT="${SAVE_TOTAL_LIMIT:-2}"

if [[ "$BUILTIN" == 1 ]]; then
  BF16="${BF16:-true}"
  ATTN_IMPLEMENTATION="${ATTN_IMPLEMENTATION:-flash_attention_2}"
  extra=()
  if [[ -n "$DEEPSPEED_CONFIG" ]]; then extra+=(--deepspeed "$DEEPSPEED_CONFIG"); fi
  if [[ "$FINETUNING" == lora ]]; then
    extra+=(--use_peft true --lora_r 64 --lora_alpha 128 --lora_dropout 0.05 --learning_rate 1e-4)
  fi
  flags=(
    --model_name_or_path "$MODEL_PATH"
    --data_file_paths "$DATA_PATHS"
    --image_folders "$IMAGE_FOLDERS"
    --output_dir "$OUTPUT_DIR"
    --run_name "$RUN_NAME"
    --max_pixels "$MAX_PIXELS"
    --min_pixels "$MIN_PIXELS"
    --freeze_vision_modules true
    --bf16 "$BF16"
    --attn_implementation "$ATTN_IMPLEMENTATION"
    --gradient_checkpointing true
    --per_device_train_batch_size 1
    --gradient_accumulation_steps 2
    --learning_rate 1e-5
    --num_train_epochs 1
    --lr_scheduler_type cosine
    --warmup_steps 0.1
    --max_length 2048
    --logging_steps 10
    --save_steps "$SAVE_STEPS"
    --save_total_limit "$SAVE_TOTAL_LIMIT"
    --resume_from_checkpoint True
    --ddp_timeout "$DIST_TIMEOUT"
    --report_to none
    "${extra[@]}"
    "$@"
  )
  geo_r_torchrun_node_args "$OUTPUT_DIR"
  echo "Geo-R built-in SFT ($FINETUNING): $RUN_NAME | model $MODEL_PATH | $NNODES node(s) x $NPROC_PER_NODE process(es) | deepspeed: ${DEEPSPEED_CONFIG:-none}"
  geo_r_batch_plan sft "${flags[@]}"
  torchrun "${TORCHRUN_NODE_ARGS[@]}" -m geo_r.sft.train "${flags[@]}"
  echo "Geo-R SFT finished. Next: MODEL_PATH=$OUTPUT_DIR bash run_scripts/run_grpo_rec.sh"
  exit 0
fi

# LLaMA-Factory: export the jsonl (main environment), then train in the SFT venv.
SFT_VENV="${SFT_VENV:-$GEO_R_HOME/.venv-sft}"
SFT_DATA_DIR="${SFT_DATA_DIR:-data/sft}"
DATASET_NAME="${DATASET_NAME:-geo_sft}"
SFT_CONFIG="${SFT_CONFIG:-data_config/sft/qwen2_5vl_${FINETUNING}_sft.yaml}"
SKIP_EXPORT="${SKIP_EXPORT:-0}"                   # 1: reuse the export already in SFT_DATA_DIR
if [[ ! -x "$SFT_VENV/bin/llamafactory-cli" ]]; then
  echo "run_sft.sh: no LLaMA-Factory in $SFT_VENV; run 'bash setup.sh --sft' (or use --builtin)" >&2
  exit 1
fi
if [[ "$SKIP_EXPORT" != 1 ]]; then
  echo "== export $DATA_PATHS -> $SFT_DATA_DIR ($DATASET_NAME)"
  geo-r export-sft --data_file_paths "$DATA_PATHS" --image_folders "$IMAGE_FOLDERS" \
    --out_dir "$SFT_DATA_DIR" --dataset_name "$DATASET_NAME"
fi
if [[ -n "$DEEPSPEED_CONFIG" ]]; then
  export FORCE_TORCHRUN=1                         # LLaMA-Factory launches DeepSpeed through torchrun only
fi
export NNODES NODE_RANK MASTER_ADDR MASTER_PORT NPROC_PER_NODE
echo "Geo-R LLaMA-Factory SFT ($FINETUNING): $RUN_NAME | model $MODEL_PATH | $SFT_CONFIG | deepspeed: ${DEEPSPEED_CONFIG:-none}"
"$SFT_VENV/bin/llamafactory-cli" train "$SFT_CONFIG" \
  model_name_or_path="$MODEL_PATH" \
  dataset="$DATASET_NAME" \
  dataset_dir="$SFT_DATA_DIR" \
  media_dir="$SFT_DATA_DIR" \
  output_dir="$OUTPUT_DIR" \
  run_name="$RUN_NAME" \
  image_max_pixels="$MAX_PIXELS" \
  image_min_pixels="$MIN_PIXELS" \
  deepspeed="${DEEPSPEED_CONFIG:-null}" \
  "$@"
GRPO_MODEL="$OUTPUT_DIR"
if [[ "$FINETUNING" == lora ]]; then
  GRPO_MODEL="$OUTPUT_DIR/merged"
  echo "== merge the LoRA adapter -> $GRPO_MODEL"
  "$SFT_VENV/bin/llamafactory-cli" export data_config/sft/qwen2_5vl_lora_merge.yaml \
    model_name_or_path="$MODEL_PATH" \
    adapter_name_or_path="$OUTPUT_DIR" \
    export_dir="$GRPO_MODEL"
fi
echo "Geo-R SFT finished. Next: MODEL_PATH=$GRPO_MODEL bash run_scripts/run_grpo_rec.sh"
