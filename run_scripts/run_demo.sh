#!/usr/bin/env bash
# The whole Geo-R recipe on CPU, offline, in about 6 minutes on 2 cores: a tiny Qwen2.5-VL built by the
# package, a toy world of synthetic photos of 36 real cities (train / held-out photos), then evaluate ->
# SFT warm-up -> evaluate -> GRPO (format + distance + region rewards, through src/geo_r/grpo_jsonl.py) ->
# evaluate, and one table: untrained / after SFT / after GRPO on the held-out photos. Reports and maps:
# $DEMO_DIR/eval/<stage>/. Overrides: DEMO_DIR (default outputs/demo_full), SEED (default 0). Extra arguments
# go to `geo-r demo` (geo-r demo --help lists the recipe's flags). Uses every core (torch's default) unless
# OMP_NUM_THREADS is set.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/local_scripts/lib/env.sh"
cd "$GEO_R_HOME"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
DEMO_DIR="${DEMO_DIR:-outputs/demo_full}"
SEED="${SEED:-0}"
geo-r demo --out_dir "$DEMO_DIR" --seed "$SEED" "$@"
