#!/usr/bin/env bash
# Fetch, as wheels, the Python packages bench/bench_grpo_gpu.py needs that the lent GPU machine's image lacks
# (it has torch, transformers 5.17, accelerate 1.15, triton, scipy, pandas, pyarrow ...; see the device
# tool's package list). Run it on the machine with PyPI access, in the repository root:
#
#   echo /.whl/ >> .git/info/exclude      # once: keep the wheels out of git
#   bash bench/fetch_gpu_wheels.sh        # -> .whl/ (about 30 MB)
#
# then carry .whl to the GPU machine and start the command there with
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
#     .whl/*.whl && export PYTHONPATH=/tmp/site || exit;
# Versions are the project's pins (pyproject.toml) or the ones in .venv. The GPU image runs Python 3.12.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DEST="${1:-.whl}"
PY="${PYTHON:-.venv/bin/python}"
mkdir -p "$DEST"

# Binary wheels for CPython 3.12 on manylinux x86-64 (pure-Python ones match too).
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$DEST" \
  trl==1.16.0 peft==0.21.2 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 \
  pycountry==26.2.16 liger-kernel==0.8.5 \
  hjson==3.1.0 pydantic==2.14.3 pydantic-core==2.50.4 annotated-types==0.8.0 typing-inspection==0.4.5 \
  typing-extensions==4.16.0

# Published as source only: build pure-Python wheels here. DeepSpeed's C++/CUDA ops are left to its
# just-in-time builder on the GPU machine (DS_BUILD_OPS=0), which has nvcc and ninja.
DS_BUILD_OPS=0 "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$DEST" deepspeed==0.19.8 reverse_geocoder==1.5.1

ls -1 "$DEST"
du -sh "$DEST"
