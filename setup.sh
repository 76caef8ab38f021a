#!/usr/bin/env bash
# Install Geo-R and everything the tests and the demo need.
#
#   bash setup.sh            CPU/GPU core stack + dev tools (tests, ruff)
#   bash setup.sh --gpu      also vLLM 0.31, torchvision 0.28, qwen-vl-utils, liger-kernel and flash-attn
#
# Where it installs: the active virtualenv ($VIRTUAL_ENV) or conda env ($CONDA_PREFIX) if there is one,
# otherwise a new .venv at the repository root. torch==2.13.0 is installed first and repeated in every
# later pip call, so no dependency can pull in a different (multi-GB CUDA) torch.
set -euo pipefail

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }

WITH_GPU=0
for arg in "$@"; do
  case "$arg" in
    --gpu) WITH_GPU=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg'" >&2; usage >&2; exit 2 ;;
  esac
done

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$REPO"
TORCH_PIN="torch==2.13.0"

if [[ -n "${VIRTUAL_ENV:-}" ]]; then
  PY="$VIRTUAL_ENV/bin/python"; WHERE="active virtualenv $VIRTUAL_ENV"
elif [[ -n "${CONDA_PREFIX:-}" ]]; then
  PY="$CONDA_PREFIX/bin/python"; WHERE="active conda env $CONDA_PREFIX"
else
  if [[ ! -x "$REPO/.venv/bin/python" ]]; then
    BASE_PY="${PYTHON:-python3}"
    "$BASE_PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
      echo "setup.sh: Geo-R needs Python >= 3.11 ($BASE_PY is $("$BASE_PY" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
      exit 1; }
    echo "==> creating .venv with $("$BASE_PY" --version 2>&1)"
    "$BASE_PY" -m venv "$REPO/.venv"
  fi
  PY="$REPO/.venv/bin/python"; WHERE="$REPO/.venv (activate with: source .venv/bin/activate)"
fi
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
  echo "setup.sh: $PY is $("$PY" --version 2>&1); Geo-R needs Python >= 3.11" >&2; exit 1; }

PIP=("$PY" -m pip install --disable-pip-version-check)
start=$(date +%s)

echo "==> [1/3] $TORCH_PIN (first, so nothing else chooses a torch build)"
"${PIP[@]}" "$TORCH_PIN"

echo "==> [2/3] geo-r (editable) with its pinned training stack and dev tools"
# DS_BUILD_OPS=0: DeepSpeed compiles its ops just in time on first use instead of at install time.
DS_BUILD_OPS=0 "${PIP[@]}" -e ".[dev]" "$TORCH_PIN"

if [[ "$WITH_GPU" == 1 ]]; then
  echo "==> [3/3] GPU extras: vLLM, torchvision, qwen-vl-utils, liger-kernel, flash-attn"
  "${PIP[@]}" -e ".[dev,gpu]" "$TORCH_PIN"
  # flash-attn ships only an sdist that must be compiled against the installed CUDA torch.
  if ! "${PIP[@]}" --no-build-isolation "flash-attn>=2.7" "$TORCH_PIN"; then
    echo "setup.sh: flash-attn failed to build (needs CUDA and nvcc); training falls back to --attn_implementation sdpa" >&2
  fi
else
  echo "==> [3/3] GPU extras skipped (run 'bash setup.sh --gpu' on a CUDA machine for vLLM and flash-attn)"
fi

echo "==> installed into $WHERE in $(( $(date +%s) - start )) s:"
"$PY" - <<'PYEOF'
import importlib
for name in ["torch", "transformers", "trl", "peft", "accelerate", "datasets", "deepspeed",
             "reverse_geocoder", "pycountry", "vllm", "torchvision", "flash_attn"]:
    try:
        mod = importlib.import_module(name)
        print(f"    {name:18s} {getattr(mod, '__version__', 'installed')}")
    except Exception as exc:  # noqa: BLE001 - report, never fail, on optional packages
        print(f"    {name:18s} not available ({type(exc).__name__})")
PYEOF
echo "==> next: bash run_scripts/run_tests.sh   (or see README.md)"
