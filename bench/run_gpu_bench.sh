#!/usr/bin/env bash
# The GPU measurements of the performance issue, one part per call of the lent GPU machine (each part is
# sized to end inside its 10-minute command limit), in order of priority:
#
#   compare       1-minute preflight on a 2-layer model, then ours vs stock TRL vs VLM-R1's settings (3B)
#   vlmr1         fallback if compare ran out of time before vlmr1: ours and vlmr1, one measured step each
#   variants      single-change variants of ours (no KL, per-micro-batch generation, static cache,
#                 compiled decoding, Liger), each beside ours in the same process
#   variants2     ours without gradient checkpointing, at VLM-R1's pixels, at 2048 tokens, with LoRA
#   vision        vision reuse: ours vs ours without reuse vs stock TRL, vision tower frozen (VLM-R1's setting)
#   memory-3b     largest per-device batch, 3B full fine-tuning, capped at an H100's 79.6 GiB
#   memory-7b     the same for 7B with LoRA
#   memory-zero3  the same for 3B with DeepSpeed ZeRO-3 + CPU offload (compiles DeepSpeed's CPU Adam first)
#
# Usage, in the repository root of the GPU machine, with the wheels of bench/fetch_gpu_wheels.sh in .whl/:
#   bash bench/run_gpu_bench.sh compare "$OUT"
# Results (JSON + log) go to the folder given (default bench/results). Each part also prints its tables last.
set -uo pipefail
PART="${1:?usage: run_gpu_bench.sh compare|vlmr1|variants|variants2|vision|memory-3b|memory-7b|memory-zero3 [OUT_DIR]}"
OUT_DIR="${2:-bench/results}"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p "$OUT_DIR"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site || exit 1
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY="${PYTHON:-python3}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" -c "import torch, transformers, trl, datasets, peft, pyarrow; print('torch', torch.__version__, \
'| transformers', transformers.__version__, '| trl', trl.__version__, '| datasets', datasets.__version__, \
'| pyarrow', pyarrow.__version__, '| cuda', torch.version.cuda)" || exit 1

bench() {  # bench LOGNAME TIMEOUT_S ARGS...: run the bench, keep the full log, print it without the noise
  local log="$OUT_DIR/$1.log" limit="$2"
  shift 2
  timeout "$limit" "$PY" bench/bench_grpo_gpu.py "$@" 2>&1 | tee "$log" | grep -v -e "tokenizer has new PAD" -e "^Loading weights"
}

case "$PART" in
  compare)
    bench preflight 110 --model_size 3b --layers 2 --small_workload --configs ours,stock_trl --steps 1 \
      --warmup_steps 0 --no_measure_peaks --work_dir /tmp/geo_r_bench_preflight --out "$OUT_DIR/preflight.json" \
      || { echo "preflight failed: see $OUT_DIR/preflight.log"; exit 1; }
    bench compare 460 --configs ours,stock_trl,vlmr1 --steps 2 --warmup_steps 1 --out "$OUT_DIR/bench_grpo_gpu.json"
    ;;
  vlmr1)
    bench vlmr1 560 --configs ours,vlmr1 --steps 1 --warmup_steps 1 --out "$OUT_DIR/bench_grpo_gpu_vlmr1.json"
    ;;
  variants)
    bench variants 560 --configs ours,ours_beta0,ours_gen_per_microbatch,ours_static_cache,ours_compile,ours_liger \
      --steps 1 --warmup_steps 1 --out "$OUT_DIR/bench_grpo_gpu_variants.json"
    ;;
  variants2)
    bench variants2 560 --configs ours,ours_no_ckpt,ours_vlmr1_pixels,ours_len2048,ours_lora \
      --steps 1 --warmup_steps 1 --out "$OUT_DIR/bench_grpo_gpu_variants2.json"
    ;;
  vision)
    bench vision 560 --configs ours_frozen_vision,ours_frozen_vision_no_reuse,stock_trl_frozen_vision \
      --steps 1 --warmup_steps 1 --out "$OUT_DIR/bench_grpo_gpu_vision.json"
    ;;
  memory-3b)
    bench memory-3b 570 --memory_search 3b_full --memory_limit_gib 79.6 --max_batch 128 --batch_resolution 16 \
      --probe_timeout_s 150 --out "$OUT_DIR/bench_grpo_gpu_memory_3b.json"
    ;;
  memory-7b)
    bench memory-7b 570 --memory_search 7b_lora --memory_limit_gib 79.6 --max_batch 128 --batch_resolution 16 \
      --probe_timeout_s 150 --out "$OUT_DIR/bench_grpo_gpu_memory_7b.json"
    ;;
  memory-zero3)
    bench memory-zero3 570 --memory_search 3b_zero3_offload --memory_limit_gib 79.6 --max_batch 128 \
      --batch_resolution 32 --probe_timeout_s 270 --out "$OUT_DIR/bench_grpo_gpu_memory_zero3.json"
    ;;
  *)
    echo "unknown part $PART" >&2
    exit 2
    ;;
esac
