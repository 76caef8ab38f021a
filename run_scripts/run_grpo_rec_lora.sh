#!/usr/bin/env bash
# LoRA variant of run_grpo_rec.sh: adapters on the language model only, vision tower frozen, ZeRO-2.
# Same environment overrides as run_grpo_rec.sh; extra arguments go to grpo_jsonl.py.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export DEEPSPEED_CONFIG="${DEEPSPEED_CONFIG:-local_scripts/zero2.json}"
export RUN_NAME="${RUN_NAME:-Qwen2.5-VL-3B-GRPO-Geo-R-LoRA}"
exec bash "$HERE/run_grpo_rec.sh" \
  --use_peft true \
  --lora_r 64 \
  --lora_alpha 128 \
  --lora_dropout 0.05 \
  --lora_task_type CAUSAL_LM \
  --freeze_vision_modules true \
  --learning_rate 1e-5 \
  "$@"
