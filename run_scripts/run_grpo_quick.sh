#!/usr/bin/env bash
# A short GRPO-only run on CPU, offline, in about a minute (the whole recipe is run_demo.sh): a tiny random
# Qwen2.5-VL built by the package, 32 toy photos of 16 real cities, 8 GRPO steps with the format / distance /
# region rewards, then the per-step log.
# It shows the whole pipeline working; a random tiny model earns ~0 geographic reward, so it does not learn here.
# Overrides: DEMO_DIR (default outputs/demo), STEPS (default 8). Extra arguments go to grpo_jsonl.py.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/local_scripts/lib/env.sh"
cd "$GEO_R_HOME"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
DEMO_DIR="${DEMO_DIR:-outputs/demo}"
STEPS="${STEPS:-8}"

echo "== [1/3] tiny Qwen2.5-VL -> $DEMO_DIR/tiny-model"
geo-r tiny-model --out "$DEMO_DIR/tiny-model"
echo "== [2/3] toy data -> $DEMO_DIR/data"
geo-r toy-data --out "$DEMO_DIR/data" --n 32
echo "== [3/3] GRPO, $STEPS steps -> $DEMO_DIR/grpo"
python src/geo_r/grpo_jsonl.py \
  --model_name_or_path "$DEMO_DIR/tiny-model" \
  --data_file_paths "$DEMO_DIR/data/train.jsonl" \
  --image_folders "$DEMO_DIR/data/images" \
  --output_dir "$DEMO_DIR/grpo" \
  --reward_funcs format distance region \
  --max_steps "$STEPS" \
  --per_device_train_batch_size 4 \
  --num_generations 4 \
  --max_completion_length 48 \
  --learning_rate 1e-4 \
  --beta 0.0 \
  --bf16 false \
  --logging_steps 1 \
  --save_strategy no \
  --report_to none \
  --max_pixels 12544 \
  "$@"
python -m geo_r.trainer.log_table "$DEMO_DIR/grpo/trainer_state.json"
