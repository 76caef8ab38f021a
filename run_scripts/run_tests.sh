#!/usr/bin/env bash
# Run the test suite on CPU, offline, in the environment setup.sh installed into.
# Extra arguments go to pytest, e.g.: bash run_scripts/run_tests.sh -k rewards -x
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/local_scripts/env.sh"
cd "$GEO_R_HOME"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python -m pytest "$@"
